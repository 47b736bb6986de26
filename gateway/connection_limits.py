"""Connection timeouts and the connection cap of ``nimbo serve``.

aiohttp keeps a connection open for as long as its client likes: one that sends nothing, or a
header byte every few seconds (slowloris), or a body that stops half way, holds a descriptor and
a slot forever. Here every connection of the listening socket is wrapped (``GuardedSite``) and
watched by one ``ConnectionGuard`` (a check every second or less, over all connections):

- **header timeout** (``http_header_timeout``): a request's headers must be complete within this
  many seconds of its first byte (of the connection's opening, for its first request);
- **body timeout** (``http_body_timeout``): while a request's body is still due and the server
  waits for it, some of it must arrive at least this often; likewise, a response the client does
  not read (the send buffer not draining) is given up after this long;
- **keep-alive timeout** (``http_keepalive_timeout``): an idle connection between requests is
  closed after this long (aiohttp's own keep-alive timer gets the same value);
- **connection cap** (``http_max_connections``, bounded by the process's descriptor limit): a
  new connection beyond it first evicts the connection that has waited longest for a request (an
  idle or slow one); when every connection is busy with a request, the new one is answered
  ``503 Service Unavailable`` and closed.

A timed-out connection is closed without an answer (a late reply could be mistaken for the
answer to the client's next request); the closures are counted and logged once per check. The
guard learns which connections are inside a request from ``track_requests``, a thin wrapper of
the application's handler. Nothing here is persistent.
"""
from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

log = logging.getLogger("nimbo.http")

_BUSY_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\nRetry-After: 1\r\n\r\n")
_DESCRIPTORS_KEPT = 128     # for the database, blobs, VMs' sockets: not for connections


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 20.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    max_connections: int = 1024

    @classmethod
    def from_config(cls, config: Any) -> "Limits":
        return cls(float(config.http_header_timeout), float(config.http_body_timeout),
                   float(config.http_keepalive_timeout), int(config.http_max_connections))

    def connection_cap(self) -> int:
        """``max_connections``, lowered to fit the process's open-file limit."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return max(1, self.max_connections)
        return max(16, min(self.max_connections, soft - _DESCRIPTORS_KEPT))


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's protocol inside, with the times the guard checks."""

    __slots__ = ("guard", "inner", "transport", "opened", "idle_since", "first_byte", "last_rx",
                 "request", "refused", "buffered", "buffered_since")

    def __init__(self, guard: "ConnectionGuard", inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: Any = None
        self.request: web.BaseRequest | None = None   # the request being handled, if any
        self.refused = False
        now = guard.now()
        self.opened = self.idle_since = self.last_rx = now
        self.first_byte: float | None = now           # the first request: timed from the start
        self.buffered = 0
        self.buffered_since = now

    # --- asyncio.Protocol, passed on ------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if not self.guard.admit(self):
            self.refused = True
            transport.write(_BUSY_REFUSAL)
            transport.close()
            return
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.last_rx = now = self.guard.now()
        if self.request is None and self.first_byte is None:
            self.first_byte = now
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.refused:
            return None
        return self.inner.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.refused:
            return
        self.guard.forget(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if not self.refused:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if not self.refused:
            self.inner.resume_writing()

    # --- requests (from track_requests) -------------------------------------------------------
    def begin(self, request: web.BaseRequest) -> None:
        self.request = request
        self.first_byte = None

    def end(self) -> None:
        self.request = None
        self.idle_since = self.guard.now()

    # --- the check ------------------------------------------------------------------------------
    def overdue(self, now: float, limits: Limits) -> str | None:
        """Why this connection is to be closed now, or None."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        pending = transport.get_write_buffer_size()
        if pending != self.buffered:
            if pending == 0 or pending < self.buffered:
                self.buffered_since = now       # the client is reading
            self.buffered = pending
        elif pending and now - self.buffered_since > limits.body_timeout:
            return "response not read"
        if pending:
            return None
        request = self.request
        if request is not None:
            if request.content.is_eof():
                return None                     # the body is in: the handler works
            if not transport.is_reading():      # paused: the handler has not caught up
                self.last_rx = now
                return None
            if now - self.last_rx > limits.body_timeout:
                return "body timeout"
            return None
        if self.first_byte is not None:
            if now - self.first_byte > limits.header_timeout:
                return "header timeout"
            return None
        if now - self.idle_since > limits.keepalive_timeout:
            return "keep-alive timeout"
        return None

    def waiting_since(self) -> float | None:
        """When this connection started waiting for a request (None: busy with one)."""
        if self.request is not None or self.buffered:
            return None
        return self.first_byte if self.first_byte is not None else self.idle_since


class ConnectionGuard:
    """Every connection of one listening socket, its timeouts and the cap."""

    def __init__(self, limits: Limits, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.limits = limits
        self.cap = limits.connection_cap()
        self.loop = loop or asyncio.get_running_loop()
        self.connections: dict[Any, GuardedConnection] = {}   # aiohttp's protocol -> ours
        self.refused = 0
        self._evicted = 0     # since the last check (logged there)
        self._task: asyncio.Task | None = None

    def now(self) -> float:
        return self.loop.time()

    def protocol(self, inner: asyncio.Protocol) -> GuardedConnection:
        return GuardedConnection(self, inner)

    def admit(self, conn: GuardedConnection) -> bool:
        if len(self.connections) >= self.cap and not self._evict_one():
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warning("%d connections, all busy: refused a new one (%d so far)",
                            len(self.connections), self.refused)
            return False
        self.connections[conn.inner] = conn
        return True

    def _evict_one(self) -> bool:
        oldest, since = None, None
        for conn in self.connections.values():
            waiting = conn.waiting_since()
            if waiting is not None and (since is None or waiting < since):
                oldest, since = conn, waiting
        if oldest is None:
            return False
        self._close(oldest, "evicted at the connection cap")
        self._evicted += 1
        return True

    def forget(self, conn: GuardedConnection) -> None:
        self.connections.pop(conn.inner, None)

    def start(self) -> None:
        if self._task is None:
            self._task = self.loop.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _watch(self) -> None:
        limits = self.limits
        period = max(0.05, min(1.0, limits.header_timeout / 4, limits.body_timeout / 4,
                               limits.keepalive_timeout / 4))
        while True:
            await asyncio.sleep(period)
            self.check()

    def check(self) -> dict[str, int]:
        """Close the connections that are overdue; returns how many, by reason."""
        now = self.now()
        closed: dict[str, int] = {}
        for conn in list(self.connections.values()):
            reason = conn.overdue(now, self.limits)
            if reason is not None:
                self._close(conn, reason)
                closed[reason] = closed.get(reason, 0) + 1
        if self._evicted:
            closed["evicted at the connection cap"] = self._evicted
            self._evicted = 0
        if closed:
            log.info("closed %s", ", ".join(f"{n} connection{'s' if n > 1 else ''} ({why})"
                                            for why, n in sorted(closed.items())))
        return closed

    def _close(self, conn: GuardedConnection, reason: str) -> None:
        log.debug("closing the connection of %s: %s",
                  conn.transport.get_extra_info("peername") if conn.transport else "-", reason)
        self.forget(conn)
        if conn.transport is not None:
            conn.transport.abort() if conn.request is not None else conn.transport.close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are watched by a ``ConnectionGuard``."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *, limits: Limits,
                 ssl_context: Any = None, backlog: int = 1024,
                 reuse_address: bool | None = None, sock: Any = None) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock      # a socket bound already (``nimbo serve`` binds before start-up)
        self._host = host
        self._port = port
        self._reuse_address = reuse_address
        self.limits = limits
        self.guard: ConnectionGuard | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        guard = self.guard = ConnectionGuard(self.limits, loop)
        _GUARDS.append(guard)
        if self._sock is not None:
            self._server = await loop.create_server(
                lambda: guard.protocol(server()), sock=self._sock, ssl=self._ssl_context,
                backlog=self._backlog)
        else:
            self._server = await loop.create_server(
                lambda: guard.protocol(server()), self._host, self._port, ssl=self._ssl_context,
                backlog=self._backlog, reuse_address=self._reuse_address)
        guard.start()

    async def stop(self) -> None:
        if self.guard is not None:
            await self.guard.stop()
            if self.guard in _GUARDS:
                _GUARDS.remove(self.guard)
        await super().stop()


_GUARDS: list[ConnectionGuard] = []    # the guards of the sites serving in this process


def track_requests(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """``handler``, telling the connection's guard (if any) when a request begins and ends."""

    async def tracked(request: web.Request) -> web.StreamResponse:
        conn = None
        if _GUARDS:
            protocol = request.protocol
            for guard in _GUARDS:
                conn = guard.connections.get(protocol)
                if conn is not None:
                    break
        if conn is None:
            return await handler(request)
        conn.begin(request)
        try:
            return await handler(request)
        finally:
            conn.end()
    return tracked
