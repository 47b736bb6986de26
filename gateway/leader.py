"""The leader among a data directory's worker processes (``nimbo serve --workers N``).

Some work must run once per data directory, not once per process: the VM driver and its events,
the instance network data path and the metadata service's relay (``imds.sock``), EC2's
housekeeping, the EBS sweep and import recovery (all inside EC2's state, ``ec2_api.operations``),
and the billing pass. One worker, the *leader*, holds an exclusive ``flock`` on
``<data_dir>/leader.lock`` and runs all of it; it also serves the services that need it (``ec2``,
and Cost Explorer ``ce`` and CUR ``cur``, which rate through the leader's billing pass: see
``LEADER_SERVICES``) on a private unix socket, ``<data_dir>/leader.sock`` (owner only).

Every other worker serves S3, STS and SSM itself (their state is the database and the blob store,
shared by every process) and *forwards* a request for a leader's service, unchanged (method,
path, headers, body: the signature still covers it), to that socket, then relays the answer. The
leader authenticates and serves it as any request; so there is one copy of the EC2 state machine,
its per-instance locks and its driver, and nothing in ``ec2_api`` needs to know about processes.
EC2 is the control plane (requests per second are few); S3, the data plane, scales with the
workers. Why forwarding rather than running EC2 in every worker: the driver watches its VMs
(QMP sockets, pidfiles) and the data path owns one network namespace, both from one process;
sharing them would need a second protocol between workers, which forwarding avoids.

Takeover: a worker that is not the leader tries the lock every ``RETRY_SECONDS``. The kernel drops
a dead leader's lock with its descriptors (``kill -9`` included; the lock's descriptor is not
inherited by QEMU's processes), so another worker becomes the leader within that time: it opens
EC2's state as a restarted server does (the QEMU driver re-adopts the VMs that still run from
their pidfiles and QMP sockets, ``backend/qemu.py``; instances follow the driver's state), starts
billing, and serves the socket. A forwarded request waits for a leader up to
``FORWARD_WAIT_SECONDS`` (a request that reaches no leader is ServiceUnavailable, 503, which
clients retry); one whose leader died while serving it is ServiceUnavailable too, since it cannot
be known whether it took effect (EC2's ClientToken makes a retried RunInstances safe).

Crash story: nothing here is persistent. The lock dies with its holder; a stale ``leader.sock``
is replaced by the next leader (it holds the lock when it does so).

With one worker (``--workers 1``, or an application made by ``create_app`` in tests) the process
is the leader without a lock file or socket, as before.

Several gateways on one PostgreSQL database (``gateway.cluster``): the data directory's leader
process (or the only one) leads only if it also holds the cluster's EC2 lock; if not, it relays
what its workers relay to it (and what its own clients send) one hop further, over HTTP, to the
cluster leader's internal address, signed with the cluster's relay key (``gateway.cluster_relay``).
The same ``forward`` serves both hops; only the transport differs (a unix socket within a data
directory, TCP between gateways). A relay that reaches a gateway that does not lead (a stale
address) is answered 421 with ``X-Nimbo-Not-Leader`` and sent again to the address read afresh.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import time
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from gateway import cluster_relay
from gateway.cluster import RETRY_SECONDS as CLUSTER_RETRY_SECONDS
from gateway.cluster import ClusterSeat, advertised, is_cluster, listen_address
from gateway.errors import GatewayError

log = logging.getLogger("nimbo.leader")

LOCK_FILE = "leader.lock"
SOCKET_FILE = "leader.sock"
LEADER_SERVICES = frozenset({"ec2", "ce", "cur"})
RETRY_SECONDS = 0.25
FORWARD_WAIT_SECONDS = 30.0
FORWARDED_PROTO = "X-Nimbo-Forwarded-Proto"
FORWARDED_FOR = "X-Nimbo-Forwarded-For"    # the client's address, as the worker saw it

# headers of one hop only (RFC 9110 7.6.1), and those aiohttp sets from the body it sends
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                         "transfer-encoding", "content-length", "expect", FORWARDED_PROTO.lower(),
                         FORWARDED_FOR.lower(), *(h.lower() for h in cluster_relay.HEADERS),
                         cluster_relay.NOT_LEADER.lower()})


class ServiceUnavailable(GatewayError):
    code = "ServiceUnavailable"
    status = 503
    message = "The service is unavailable: no process leads this server right now. Please try again."


def workers_of(config: Any) -> int:
    """The number of worker processes of the server (1 for an application made in-process)."""
    return int(getattr(config, "workers", None) or 1)


class Leadership:
    """Whether this process leads, the leader's parts (opened by ``lead``) and the forwarding.

    ``local``: this process holds its data directory's lock (or is alone in it) and serves its
    workers' socket. ``leader``: it runs the leader's parts (``local``, and on PostgreSQL the holder
    of the cluster's EC2 lock too)."""

    def __init__(self, config: Any, lead: Callable[[], Awaitable[None]], db: Any = None) -> None:
        self.config = config
        self.shared = workers_of(config) > 1
        self.cluster = ClusterSeat(config, db) if is_cluster(db) else None
        self.local = False
        self.leader = False
        self.stopping = False     # set when this process begins to stop (gateway.cli.run_server)
        self._lead = lead
        self._fd = -1
        self._runner: web.AppRunner | None = None
        self._site: web.UnixSite | None = None
        self._watcher: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._relay_session: aiohttp.ClientSession | None = None
        self._seat: Any = None            # the cluster's EC2 lock, while this gateway holds it
        self._seat_site: web.SockSite | None = None
        self._cluster_task: asyncio.Task | None = None
        self.relay_key: bytes | None = cluster_relay.relay_key(config) if self.cluster else None
        self.socket_path = os.path.join(config.data_dir, SOCKET_FILE)

    # -- becoming the leader ---------------------------------------------------------------
    async def start(self) -> None:
        """At start-up: lead when alone or when the lock is free; else watch for the lock."""
        if not self.shared:
            await self._lead_locally()
            return
        if self._try_lock():
            await self._lead_locally()
        else:
            log.info("worker %d: another process leads; EC2 and billing requests go to it",
                     os.getpid())
            self._watcher = asyncio.create_task(self._watch(), name="nimbo-leader-watch")

    async def _lead_locally(self) -> None:
        """This process leads its data directory: it leads, or on PostgreSQL it seeks the cluster's
        EC2 lock (now, then every ``gateway.cluster.RETRY_SECONDS``)."""
        self.local = True
        if self.cluster is None:
            await self._become()
            return
        if not getattr(self.config, "ec2_leader", True):
            log.info("process %d relays EC2 to the cluster's leader (ec2_leader = false)", os.getpid())
            return
        self._seat = await self.cluster.try_take()
        if self._seat is not None:
            await self._become()
        else:
            log.info("process %d: another gateway leads EC2 for the cluster; its requests are "
                     "relayed there", os.getpid())
        self._cluster_task = asyncio.create_task(self._hold_or_seek(), name="nimbo-cluster-seat")

    async def attach(self, runner: web.AppRunner) -> None:
        """Once the application serves: the leader's socket (now, or when this process leads),
        and the cluster leader's internal listener."""
        self._runner = runner
        if self.shared and self.local:
            await self._serve_socket()
        if self._seat is not None and self.leader:
            await self._open_seat()

    def _try_lock(self) -> bool:
        if self._fd < 0:
            self._fd = os.open(os.path.join(self.config.data_dir, LOCK_FILE),
                               os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        return True

    async def _become(self) -> None:
        log.info("process %d leads: the VM driver, EC2 housekeeping, the network and billing run here",
                 os.getpid())
        await self._lead()
        self.leader = True      # from now on this process serves the leader's services itself

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            if self.stopping:
                return
            if not self._try_lock():
                continue
            try:
                await self._lead_locally()
                if self._runner is not None:      # the workers' requests: served or relayed on
                    await self._serve_socket()    # (after leading: never to itself meanwhile)
                    if self.leader and self._seat is not None:
                        await self._open_seat()
            except Exception:   # noqa: BLE001 (a half-open leader must not keep the lock)
                self._give_up("could not take over as the leader")
            return

    async def _hold_or_seek(self) -> None:
        """On PostgreSQL: seek the cluster's EC2 lock while another gateway holds it; hold it
        while this one leads, checking that it is still this session's (``gateway.cluster``)."""
        while not self.stopping:
            await asyncio.sleep(CLUSTER_RETRY_SECONDS)
            if self.stopping:
                return
            if self._seat is not None:
                if not await self._seat.alive():
                    self._give_up("lost the cluster's EC2 lock (its database session ended): "
                                  "another gateway may lead now", failed=False)
                    return
                continue
            try:
                seat = await self.cluster.try_take()
            except Exception as exc:   # noqa: BLE001 (the database is away: try again later)
                log.warning("process %d could not try the cluster's EC2 lock: %s", os.getpid(), exc)
                continue
            if seat is None:
                continue
            self._seat = seat
            try:
                await self._become()
                if self._runner is not None:
                    await self._open_seat()
            except Exception:   # noqa: BLE001 (a half-open leader must not keep the lock)
                self._give_up("could not take over as the cluster's EC2 leader")
                return

    def _give_up(self, why: str, failed: bool = True) -> None:
        (log.exception if failed else log.error)("process %d %s; stopping it", os.getpid(), why)
        self.stopping = True
        os.kill(os.getpid(), 15)     # a clean stop; a supervisor starts a new worker

    async def _open_seat(self) -> None:
        """The cluster leader's internal listener, and its address in ``cluster_leaders``."""
        host, port = listen_address(self.config)
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    backlog=256)
        self._seat_site = web.SockSite(self._runner, sock)
        await self._seat_site.start()
        await self.cluster.register(advertised(host, sock.getsockname()[1]))   # port 0: the one chosen

    async def _serve_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)     # a dead leader's (this process holds the lock)
        self._site = web.UnixSite(self._runner, self.socket_path)
        await self._site.start()
        os.chmod(self.socket_path, 0o600)

    def check_relay(self, request: web.Request) -> None:
        """Believe a relay from another gateway of the cluster when its signature verifies."""
        if self.relay_key is not None and cluster_relay.RELAY_SIGNATURE in request.headers:
            cluster_relay.check(request, self.relay_key, FORWARDED_FOR, FORWARDED_PROTO)

    # -- forwarding ------------------------------------------------------------------------
    def forwards(self, service: str) -> bool:
        return (self.shared or self.cluster is not None) and not self.leader \
            and service in LEADER_SERVICES

    async def forward(self, request: web.Request, ctx: Any, body: bytes) -> web.StreamResponse:
        """Serve ``request`` (its ``body`` read already) through the leader; the answer as is:
        over the data directory's socket from a worker, over HTTP from a gateway's leader process
        to the cluster's (``gateway.cluster``)."""
        if cluster_relay.trusted(request):   # another gateway thinks this one leads: it does not
            return web.Response(status=421, headers={cluster_relay.NOT_LEADER: "1"})
        headers = [(name, value) for name, value in request.headers.items()
                   if name.lower() not in _HOP_BY_HOP]
        proto = "https" if is_https(request) else "http"
        remote = client_address(request)
        headers.append((FORWARDED_PROTO, proto))
        headers.append((FORWARDED_FOR, remote))
        ctx.requested_operation = "forwarded-to-leader"
        over_tcp = self.cluster is not None and self.local
        deadline = time.monotonic() + FORWARD_WAIT_SECONDS
        fresh = False
        while True:
            try:
                if over_tcp:
                    address = await self.cluster.leader_address(fresh=fresh)
                    if address is None:
                        raise ConnectionRefusedError("no gateway leads yet")
                    url = URL(f"{address}{request.raw_path}", encoded=True)
                    sent = headers + list(cluster_relay.sign(
                        self.relay_key, request.method, request.raw_path, request.headers,
                        remote, proto).items())
                    client = self._relay_client()
                else:
                    url, sent, client = (URL(f"http://leader{request.raw_path}", encoded=True),
                                         headers, self._client())
                async with client.request(
                        request.method, url, headers=sent,
                        data=body, allow_redirects=False, auto_decompress=False,
                        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
                ) as answer:
                    if answer.status == 421 and cluster_relay.NOT_LEADER in answer.headers:
                        raise ConnectionRefusedError("a gateway that does not lead (a stale address)")
                    data = await answer.read()
                    relayed = [(name, value) for name, value in answer.headers.items()
                               if name.lower() not in _HOP_BY_HOP and name.lower() != "date"
                               and name.lower() != "server"]
                    ctx.request_id = answer.headers.get("x-amzn-RequestId", ctx.request_id)
                    response = web.Response(status=answer.status, body=data)
                    for name, value in relayed:
                        response.headers.add(name, value)
                    return response
            except (aiohttp.ClientConnectorError, FileNotFoundError, ConnectionRefusedError,
                    aiohttp.ConnectionTimeoutError):
                # no leader serves there right now (one is taking over, maybe this process)
                if time.monotonic() > deadline or self.stopping:
                    raise ServiceUnavailable() from None
                fresh = True
                await asyncio.sleep(0.05 if not over_tcp else 0.2)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning("the leader went away while serving a forwarded request: %s", exc)
                raise ServiceUnavailable("The server's leader stopped while serving the request; "
                                         "it may or may not have taken effect.") from None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.UnixConnector(self.socket_path, force_close=True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar())   # a relay: one client's cookies never reach another
        return self._session

    def _relay_client(self) -> aiohttp.ClientSession:
        """Connections to the cluster leader's internal listener (kept alive between relays)."""
        if self._relay_session is None:
            connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=30)
            self._relay_session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        return self._relay_session

    # -- the end ---------------------------------------------------------------------------
    async def stop_watching(self) -> None:
        for task in (self._watcher, self._cluster_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._watcher = self._cluster_task = None

    async def close(self) -> None:
        """After the leader's parts are closed: the client and, last, the lock."""
        await self.stop_watching()
        for session in (self._session, self._relay_session):
            if session is not None:
                await session.close()
        self._session = self._relay_session = None
        if self._seat is not None:
            await self._seat.release()     # another gateway may lead EC2 now
            self._seat = None
        if self._fd >= 0:
            os.close(self._fd)      # drops the flock: another worker may lead now
            self._fd = -1


def _from_a_worker(request: web.Request) -> bool:
    """Whether the request came over the leader's unix socket (mode 0600: only workers reach it),
    or from another gateway of the cluster with a relay signature that verifies
    (``gateway.cluster_relay``), so that its forwarding headers can be believed; a client's own
    copies were dropped by the worker (``_HOP_BY_HOP``), and otherwise they are ignored."""
    if cluster_relay.trusted(request):
        return True
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return sock is not None and sock.family == socket.AF_UNIX


def forwarded_https(request: web.Request) -> bool:
    """Whether a request the leader received from a worker over its unix socket (or relayed by
    another gateway) came to that worker over TLS (SigV2 canonicalises the Host's default port by the scheme)."""
    return request.headers.get(FORWARDED_PROTO) == "https" and _from_a_worker(request)


def is_https(request: web.Request) -> bool:
    """The client's request came over TLS: to this process, or to the worker that relayed it."""
    return request.secure or forwarded_https(request)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or for a request a worker relayed, the worker's peer."""
    if FORWARDED_FOR in request.headers and _from_a_worker(request):
        return request.headers[FORWARDED_FOR]
    return request.remote or ""
