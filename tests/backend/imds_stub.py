"""A tiny instance metadata service on a unix socket, for booting test VMs.

QEMU's guestfwd runs ``socat - UNIX-CONNECT:<socket>`` per guest connection to
169.254.169.254:80, so each HTTP request of the guest arrives here as one connection.
"""
from __future__ import annotations

import asyncio
import os
import secrets
from typing import Optional


class IMDSStub:
    def __init__(self, path: str, metadata: dict[str, str], user_data: Optional[bytes] = None,
                 require_token: bool = True, token_enabled: bool = True,
                 by_interface: Optional[dict[str, dict[str, str]]] = None):
        self.path = path
        self.metadata = metadata          # e.g. {"instance-id": "i-0123"}
        self.by_interface = by_interface or {}   # eni -> metadata, for relayed connections
        self.user_data = user_data
        self.require_token = require_token
        self.token_enabled = token_enabled
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.interfaces: list[str] = []    # the data path relay's "NIMBO-IMDS <eni>" preambles
        self._server: Optional[asyncio.AbstractServer] = None

    async def __aenter__(self) -> "IMDSStub":
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._handle, self.path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def answer(self, method: str, path: str, headers: dict[str, str],
               interface: Optional[str] = None) -> tuple[int, bytes]:
        metadata = self.by_interface.get(interface or "", self.metadata)
        if path == "/latest/api/token":
            if method != "PUT" or not self.token_enabled:
                return 405 if self.token_enabled else 404, b""
            if "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
                return 400, b""
            token = secrets.token_urlsafe(24)
            self.tokens.add(token)
            return 200, token.encode()
        if method != "GET":
            return 405, b""
        if self.require_token and headers.get("x-aws-ec2-metadata-token") not in self.tokens:
            return 401, b""
        if path == "/latest/user-data":
            return (200, self.user_data) if self.user_data is not None else (404, b"")
        prefix = "/latest/meta-data/"
        if path.startswith(prefix) and path[len(prefix):] in metadata:
            return 200, metadata[path[len(prefix):]].encode()
        return 404, b""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            interface = None
            if request[:1] == ["NIMBO-IMDS"]:   # from backend.network's relay: who is asking
                interface = request[1] if len(request) > 1 else ""
                self.interfaces.append(interface)
                request = (await reader.readline()).decode("latin-1").split()
            headers = {}
            while True:
                line = (await reader.readline()).decode("latin-1").strip()
                if not line:
                    break
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            if len(request) < 2:
                return
            method, path = request[0], request[1]
            self.requests.append((method, path))
            status, body = self.answer(method, path, headers, interface)
            writer.write(f"HTTP/1.0 {status} X\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
