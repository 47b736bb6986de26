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


def _open_fds(pid: int) -> int:
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_slow_and_idle_connections_time_out_and_do_not_starve_others(fresh_server, tmp_path):
    """300 connections on 127.0.0.1 that are idle, trickle a header byte at a time (slowloris) or
    stop half way through a body, against a cap of 150 connections and 2-second timeouts: the
    server closes every one of them within a few seconds, its descriptors stay bounded, and a
    boto3 client meanwhile gets quick answers."""
    import statistics
    import threading
    config = tmp_path / "limits.toml"
    config.write_text("http_header_timeout = 2\nhttp_body_timeout = 2\n"
                      "http_keepalive_timeout = 3\nhttp_max_connections = 150\n")
    srv: NimboServer = fresh_server
    srv.extra_args = ["--config", str(config)]
    srv.start()
    s3 = srv.client("s3")
    s3.list_buckets()
    baseline_fds = _open_fds(srv.process.pid)

    kinds = ["idle", "slowloris", "stalled-body"]
    socks = []
    for i in range(300):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        kind = kinds[i % 3]
        if kind == "slowloris":
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        elif kind == "stalled-body":
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nContent-Type:"
                         b" application/x-www-form-urlencoded\r\n\r\nAction=" + b"x" * 10)
        sock.setblocking(False)
        socks.append((kind, sock))

    latencies: list[float] = []

    def client():
        for _ in range(20):
            started = time.monotonic()
            s3.list_buckets()
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)
    worker = threading.Thread(target=client)
    worker.start()

    closed: dict[int, float] = {}
    started = time.monotonic()
    max_fds = 0
    while len(closed) < len(socks) and time.monotonic() - started < 12:
        for index, (kind, sock) in enumerate(socks):
            if index in closed:
                continue
            try:
                if kind == "slowloris":
                    sock.send(b"X-Slow: 1\r\n")
                data = sock.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 503"):
                    closed[index] = time.monotonic() - started
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:          # reset or broken pipe: closed by the server
                closed[index] = time.monotonic() - started
        max_fds = max(max_fds, _open_fds(srv.process.pid))
        time.sleep(0.5)
    worker.join(timeout=30)
    for _, sock in socks:
        sock.close()

    assert len(closed) == len(socks), f"{len(socks) - len(closed)} slow connections still open"
    assert max(closed.values()) < 8, sorted(closed.values())[-5:]
    assert max_fds <= baseline_fds + 150 + 20, (baseline_fds, max_fds)
    assert len(latencies) == 20
    assert statistics.median(latencies) < 0.5 and max(latencies) < 2.0, latencies
    log = srv.log()
    assert "header timeout" in log and "body timeout" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_chunked_framing_broken_mid_body_is_never_a_500(fresh_server, tmp_path):
    """A chunked body whose framing breaks after the handler started reading: aiohttp's Python
    parser fails the read (IncompleteBody, 400); its C parser leaves the read waiting, which the
    body timeout ends. Either way: no 500, no traceback, bounded in time."""
    config = tmp_path / "limits.toml"
    config.write_text("http_body_timeout = 2\n")
    srv: NimboServer = fresh_server
    srv.extra_args = ["--config", str(config), "--access-log"]
    srv.start()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nAct=1\r\n")
        time.sleep(0.3)
        sock.sendall(b"zz\r\nbroken\r\n")
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    assert time.monotonic() - started < 8
    assert not answer.startswith(b"HTTP/1.1 5"), answer
    time.sleep(0.5)
    log = srv.log()
    assert "Traceback" not in log and "-> 500" not in log, log
