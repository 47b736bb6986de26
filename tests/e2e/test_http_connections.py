"""The HTTP connection layer of a live server (``gateway.connections``): malformed messages,
timeouts and the connection cap, with raw sockets on 127.0.0.1 (bounded in count and time)."""
from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import NimboServer

MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
]


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_malformed_http_messages_are_one_warning_line_each(fresh_server):
    srv: NimboServer = fresh_server.start()
    for data in MALFORMED:
        answer = _exchange(srv.port, data)
        assert answer.startswith(b"HTTP/1.") and answer[9:10] == b"4", (data[:60], answer[:100])
    deadline = time.monotonic() + 5
    while srv.log().count("malformed HTTP request") < len(MALFORMED) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = srv.log()
    lines = [line for line in log.splitlines() if "malformed HTTP request" in line]
    assert len(lines) == len(MALFORMED), log
    assert all(" WARNING " in line and "from 127.0.0.1" in line for line in lines), lines
    assert "Traceback" not in log and " ERROR " not in log, log
