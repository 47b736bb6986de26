"""The cluster's EC2 leader: one gateway among those that share a PostgreSQL database.

On one machine (SQLite) a data directory's leader process (``gateway.leader``) runs the VM driver,
the instance network, the metadata service, EC2's housekeeping and billing. With several gateways
on one PostgreSQL database (``storage.postgres``) there must still be one such process for the
whole cluster, or each gateway's driver would manage (and its housekeeping would settle) the
instances of the others. So:

* **Election.** Each gateway's leader process (the one holding its data directory's ``flock``, or
  the only process) tries a PostgreSQL *session* advisory lock, ``nimbo-ec2-leader:<schema>``
  (``lock_name``: one cluster per schema), held on a connection of its own
  (``storage.postgres.try_session_lock``). The holder runs the leader's parts; the others retry
  every ``RETRY_SECONDS``. A gateway configured with ``ec2_leader = false``
  never tries: it only relays (for an operator who wants compute on chosen machines only). On
  SQLite there is no cluster: the data directory's leader leads, as before.
* **Address.** The holder listens on an internal address (``cluster_address = "HOST:PORT"`` in the
  config; default the gateway's host and a free port) and records it in ``cluster_leaders``.
* **Relay.** A gateway that does not lead relays the leader's services (EC2, Cost Explorer, CUR,
  the console's API: what its workers relay to it, ``gateway.leader.LEADER_SERVICES``) unchanged
  to that address over HTTP, signed with the cluster's relay key (``gateway.cluster_relay``), so
  that the leader believes the client's address and scheme the relay reports; the client's own
  signature is checked by the leader as for any request.
* **Fencing.** The holder checks every ``RETRY_SECONDS`` that its lock is still its own (the
  connection answers and holds it). A holder that lost it (PostgreSQL restarted, the connection
  broke) stops at once, cleanly (SIGTERM to itself: its VMs keep running, the supervisor or the
  operator's init starts it again as a follower): another gateway may already lead.
* **Failover.** When the leader's gateway dies (kill -9, a machine lost), PostgreSQL drops its
  session and its lock; the next gateway to try takes it within ``RETRY_SECONDS``, opens EC2's state
  as a restarted server does and re-adopts what its driver reaches: libvirt domains on hosts known
  by a URI that names their machine (``qemu+ssh://rack2/system``; ``backend/libvirt``) are looked
  up again by name from any gateway (``qemu:///system`` names whichever machine leads); QEMU
  processes of the machine that died cannot be (they died with it, and their disks are files of its data directory). Such
  an instance's VM is missing to the new leader, which settles it as AWS settles an instance whose
  host failed: *stopped*, StateReason ``Server.InternalError`` ("The instance stopped
  unexpectedly"); one still ``pending`` is launched again, and fails to
  (``Server.InternalError``, terminated) when its image's files are out of reach.
  Requests relayed while no gateway leads wait up to ``gateway.leader.FORWARD_WAIT_SECONDS`` for
  one; a request whose leader died while serving it is ServiceUnavailable (it may or may not have
  taken effect; EC2's ClientToken makes a retried RunInstances safe).

Crash story: ``cluster_leaders`` holds one row per role (``address``: http://HOST:PORT of the
leader's internal listener; ``gateway``: its host name and data directory, for operators), written by the lock's holder after it
leads; a row left by a dead leader names an address nobody serves (relays to it are refused and
the relay reads the row again) until the next leader overwrites it. The lock itself is not
persistent: it lives and dies with the holder's session.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from storage.db import Schema

log = logging.getLogger("nimbo.cluster")

ROLE = "ec2"
LOCK_NAME = "nimbo-ec2-leader"
RETRY_SECONDS = 1.0

SCHEMA = Schema("cluster", [
    """
    CREATE TABLE cluster_leaders (
        role TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        gateway TEXT NOT NULL,
        pid INTEGER NOT NULL,
        since_us INTEGER NOT NULL
    );
    """,
])


def lock_name(schema: str) -> str:
    """The EC2 leader's lock in a database schema: advisory locks are per database, and clusters
    in different schemas of one database (``search_path``) are different clusters."""
    return f"{LOCK_NAME}:{schema}"


def is_cluster(db: Any) -> bool:
    """Whether several gateways may share this metadata database (PostgreSQL)."""
    return getattr(db, "engine", "sqlite") == "postgresql"


def listen_address(config: Any) -> tuple[str, int]:
    """(host, port) of the internal listener: ``cluster_address`` or the gateway's host, port 0."""
    text = getattr(config, "cluster_address", None) or ""
    host, port = config.host, 0
    if text:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "0")
        host = host.strip("[]") or config.host
        port = int(port_text or 0)
    return host, port


def advertised(host: str, port: int) -> str:
    """The URL other gateways reach the listener at (a wildcard host: this machine's name)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class ClusterSeat:
    """The EC2 leader's seat in one PostgreSQL database: the lock and the address table."""

    def __init__(self, config: Any, db: Any) -> None:
        self.config = config
        self.db = db
        self._migrated = False
        self._address: str | None = None     # the leader's, as last read
        self._lock_name: str | None = None

    async def _migrate(self) -> None:
        if not self._migrated:
            await self.db.migrate(SCHEMA)
            self._migrated = True

    async def try_take(self) -> Any:
        """The held lock (``storage.postgres.SessionLock``), or None when another gateway leads."""
        from storage.postgres import try_session_lock  # noqa: PLC0415
        await self._migrate()
        if self._lock_name is None:
            row = await self.db.fetchone("SELECT current_schema() AS name")
            self._lock_name = lock_name(row["name"])
        return await try_session_lock(self.db.url, self._lock_name)

    async def register(self, address: str) -> None:
        """Record this gateway (which holds the lock) as the leader at ``address``."""
        await self._migrate()
        gateway = f"{socket.gethostname()}:{self.config.data_dir}"
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO cluster_leaders (role, address, gateway, pid, since_us)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(role) DO UPDATE SET address = excluded.address,"
                " gateway = excluded.gateway, pid = excluded.pid, since_us = excluded.since_us",
                (ROLE, address, gateway, os.getpid(), int(time.time() * 1_000_000)))
        log.info("this gateway (pid %d) leads EC2 for the cluster; other gateways relay to %s",
                 os.getpid(), address)

    async def leader_address(self, fresh: bool = False) -> str | None:
        """The leader's internal URL (cached; ``fresh``: read again, e.g. after a refused relay)."""
        if self._address is None or fresh:
            await self._migrate()
            row = await self.db.fetchone("SELECT address FROM cluster_leaders WHERE role = ?", (ROLE,))
            self._address = row["address"] if row else None
        return self._address
