"""The connection guard's rules (``gateway.connection_limits``) on fake transports and a fake
clock: header, body and keep-alive timeouts, a response the client does not read, and the
connection cap (evict the longest-waiting idle connection, else refuse)."""
from __future__ import annotations

import asyncio

from gateway.connection_limits import ConnectionGuard, Limits


class FakeTransport:
    def __init__(self) -> None:
        self.closed = self.aborted = False
        self.reading = True
        self.buffered = 0
        self.written = b""

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def is_reading(self) -> bool:
        return self.reading

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class FakeInner(asyncio.Protocol):
    def __init__(self) -> None:
        self.made = self.lost = False
        self.data = b""

    def connection_made(self, transport) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc) -> None:
        self.lost = True


class FakeContent:
    def __init__(self, eof: bool) -> None:
        self.eof = eof

    def is_eof(self) -> bool:
        return self.eof


class FakeRequest:
    def __init__(self, eof: bool) -> None:
        self.content = FakeContent(eof)


class Clock:
    now = 1000.0


async def _guard(**limits) -> tuple[ConnectionGuard, Clock]:
    guard = ConnectionGuard(Limits(**limits))
    clock = Clock()
    guard.now = lambda: clock.now
    return guard, clock


def _connect(guard):
    inner, transport = FakeInner(), FakeTransport()
    conn = guard.protocol(inner)
    conn.connection_made(transport)
    return conn, inner, transport


async def test_header_timeout_from_the_first_byte_and_keepalive_when_idle():
    guard, clock = await _guard(header_timeout=5, body_timeout=5, keepalive_timeout=30)
    conn, inner, transport = _connect(guard)
    conn.data_received(b"GET / HTTP/1.1\r\n")
    clock.now += 4
    assert guard.check() == {}
    clock.now += 2
    assert guard.check() == {"header timeout": 1} and transport.closed
    # a connection that finished a request and sends nothing: keep-alive applies, not headers
    conn, inner, transport = _connect(guard)
    conn.begin(FakeRequest(eof=True))
    conn.end()
    clock.now += 20
    assert guard.check() == {}
    clock.now += 11
    assert guard.check() == {"keep-alive timeout": 1} and transport.closed


async def test_body_timeout_only_while_the_server_waits_for_the_body():
    guard, clock = await _guard(header_timeout=5, body_timeout=5, keepalive_timeout=30)
    conn, inner, transport = _connect(guard)
    request = FakeRequest(eof=False)
    conn.begin(request)
    transport.reading = False          # the handler is slow: aiohttp paused reading
    clock.now += 60
    assert guard.check() == {}
    transport.reading = True
    clock.now += 4
    assert guard.check() == {}
    conn.data_received(b"more body")
    clock.now += 4
    assert guard.check() == {}
    request.content.eof = True         # the body is in: the handler may take its time
    clock.now += 60
    assert guard.check() == {}
    request.content.eof = False
    assert guard.check() == {"body timeout": 1} and transport.aborted


async def test_a_response_the_client_does_not_read():
    guard, clock = await _guard(header_timeout=5, body_timeout=5, keepalive_timeout=30)
    conn, inner, transport = _connect(guard)
    conn.begin(FakeRequest(eof=True))
    transport.buffered = 1 << 20
    assert guard.check() == {}
    clock.now += 3
    transport.buffered = 1 << 19        # draining: progress
    assert guard.check() == {}
    clock.now += 4
    assert guard.check() == {}
    clock.now += 2
    assert guard.check() == {"response not read": 1} and transport.aborted


async def test_the_cap_evicts_the_longest_waiting_idle_connection_else_refuses():
    guard, clock = await _guard(max_connections=16)
    guard.cap = 3
    first, _, first_t = _connect(guard)
    clock.now += 1
    busy, _, _ = _connect(guard)
    busy.begin(FakeRequest(eof=True))
    clock.now += 1
    third, _, third_t = _connect(guard)
    new, new_inner, new_t = _connect(guard)        # at the cap: the oldest idle one goes
    assert first_t.closed and not third_t.closed and new_inner.made
    third.begin(FakeRequest(eof=True))
    new.begin(FakeRequest(eof=True))
    refused, refused_inner, refused_t = _connect(guard)   # every one busy: 503 and closed
    assert refused_t.written.startswith(b"HTTP/1.1 503") and refused_t.closed
    assert not refused_inner.made and len(guard.connections) == 3
