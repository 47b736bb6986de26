"""The metadata service as the tap data path reaches it: one unix socket of Nimbo's,
``<data_dir>/imds.sock`` (``socket_path``), that the data path's relay connects to for each guest
connection to 169.254.169.254:80 (see ``backend.network.model.DataPath.open``).

The relay first sends one line, ``NIMBO-IMDS <interface-id>\\r\\n``, naming the interface the
connection came from; then the guest's HTTP both ways. This listener reads that line, finds the
instance the interface is attached to, and serves the same metadata service as the per-instance
sockets of user-mode networking (``ec2_api.imds``: IMDSv1 and v2 tokens, HttpTokens=required,
HttpEndpoint=disabled answering 404; the IMDSv2 hop limit is the relay's, which sets the TTL of
its answers from the desired state). A line that is not that, an unknown interface, or one whose
instance has no VM gets the connection closed without an answer.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
from typing import Any

from ec2_api import imds
from ec2_api.imds_http import MAX_HEAD, Reply, Request, _connection, serve_then_close
from ec2_api.instance_store import ACTIVE_STATES

PREFIX = b"NIMBO-IMDS "
LINE_SECONDS = 5.0
_ENI_RE = re.compile(r"^eni-[0-9a-f]{8,17}$")


def socket_path(config: Any) -> str:
    """``<data_dir>/imds.sock``; a data dir too deep for a unix socket name (108 bytes) uses a
    short path under /tmp named after the data dir (as ``ec2_api.imds.socket_path`` does)."""
    path = os.path.join(config.data_dir, "imds.sock")
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha256(os.path.abspath(config.data_dir).encode()).hexdigest()[:12]
    return os.path.join("/tmp", f"nimbo-imds-{digest}", "imds.sock")


async def instance_of_interface(db: Any, interface_id: str) -> str | None:
    row = await db.fetchone(
        "SELECT x.instance_id, x.state FROM net_interfaces i JOIN ec2_instances x ON x.instance_id = i.instance_id"
        " WHERE i.network_interface_id = ?", (interface_id,))
    if row is None or row["state"] not in ACTIVE_STATES:
        return None
    return row["instance_id"]


class ImdsRelayListener:
    """The unix socket the data path's metadata relay connects to."""

    def __init__(self, server: imds.ImdsServer, path: str) -> None:
        self.server = server
        self.path = path
        self._listener: asyncio.AbstractServer | None = None

    async def open(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._listener = await asyncio.start_unix_server(self._connected, path=self.path, limit=MAX_HEAD)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_then_close(writer, self._serve(reader, writer), "relayed metadata connection failed")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        instance_id = await self._introduction(reader)
        if instance_id is not None:
            async def handle(request: Request) -> Reply:
                return await imds._handle(self.server, instance_id, request)  # noqa: SLF001
            await _connection(reader, writer, handle)

    async def _introduction(self, reader: asyncio.StreamReader) -> str | None:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), LINE_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            return None
        if not line.startswith(PREFIX):
            return None
        interface_id = line[len(PREFIX):-2].decode("ascii", "replace").strip()
        if not _ENI_RE.match(interface_id):
            return None
        return await instance_of_interface(self.server.db, interface_id)
