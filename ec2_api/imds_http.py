"""A small HTTP/1.1 server on a unix socket, for the metadata service.

Why not aiohttp here: the guest's connection reaches the socket through QEMU's guestfwd and
``socat``, which half-closes the socket as soon as the guest has sent its request (busybox ``nc``
does, for one). aiohttp drops a connection whose client half-closed before the answer is written;
this server reads the request, answers it, and only then closes. It speaks what IMDS clients use:
GET/HEAD/PUT, Content-Length bodies (read and ignored), keep-alive for HTTP/1.1.
"""
from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import urllib.parse
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from multidict import CIMultiDict

log = logging.getLogger("nimbo.imds")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_SECONDS = 30.0


@dataclass
class Request:
    method: str
    path: str
    headers: CIMultiDict


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Reply]]


async def serve_then_close(writer: asyncio.StreamWriter, serving: Awaitable[None], failure: str) -> None:
    """Await one connection's ``serving``; a failure is logged as ``failure`` (one bad connection
    must not disturb the others); the connection is closed either way."""
    try:
        await serving
    except Exception:  # noqa: BLE001
        log.exception(failure)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def serve_unix(path: str, handler: Handler) -> asyncio.AbstractServer:
    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_then_close(writer, _connection(reader, writer, handler), "metadata connection failed")
    return await asyncio.start_unix_server(connected, path=path, limit=MAX_HEAD)


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler) -> None:
    while True:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            return
        parsed = _parse_head(head)
        if parsed is None:
            await _write(writer, "HTTP/1.1", "GET", Reply(400), close=True)
            return
        request, version = parsed
        length = request.headers.get("Content-Length", "0")
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower() or not length.isdigit() \
                or int(length) > MAX_BODY:
            await _write(writer, version, request.method, Reply(400), close=True)
            return
        if int(length):
            try:
                await reader.readexactly(int(length))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
        reply = await handler(request)
        connection = request.headers.get("Connection", "").lower()
        close = (version == "HTTP/1.0" and connection != "keep-alive") or connection == "close" \
            or reader.at_eof()
        await _write(writer, version, request.method, reply, close=close)
        if close:
            return


def _parse_head(head: bytes) -> tuple[Request, str] | None:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if version not in ("HTTP/1.0", "HTTP/1.1") or not method.isalpha():
        return None
    headers: CIMultiDict = CIMultiDict()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return None
        headers.add(name.strip(), value.strip())
    path = urllib.parse.unquote(urllib.parse.urlsplit(target).path or "/")
    return Request(method.upper(), path, headers), version


async def _write(writer: asyncio.StreamWriter, version: str, method: str, reply: Reply, *, close: bool) -> None:
    try:
        reason = http.HTTPStatus(reply.status).phrase
    except ValueError:
        reason = ""
    headers = {"Date": email.utils.formatdate(usegmt=True), **reply.headers,
               "Content-Length": str(len(reply.body)), "Connection": "close" if close else "keep-alive"}
    lines = [f"{version} {reply.status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if method != "HEAD":
        writer.write(reply.body)
    try:
        await writer.drain()
    except ConnectionError:
        pass
