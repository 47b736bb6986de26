"""The metadata relay: 169.254.169.254:80 inside each VPC router namespace -> Nimbo's unix socket.

Each VPC namespace carries 169.254.169.254/32 on its loopback; the guests reach it through their
default gateway (the subnet's router), and the relay listens there. Its listening socket is made
inside the namespace by a short-lived thread that ``setns()``-es into it (network namespaces are
per thread), then served by Nimbo's event loop: no helper process, and the relay lives and dies
with Nimbo (the guests' other connectivity does not).

Which interface a connection comes from: the bridge chain marks every packet from a tap with the
port's index (see ``nftables``), and ``net.ipv4.tcp_fwmark_accept=1`` copies the SYN's mark to
the accepted socket (``SO_MARK``), so the relay knows the tap even where addresses overlap or a
guest without source/dest check uses a foreign address; the source address is the fallback. The
relay sends ``NIMBO-IMDS <interface-id>\\r\\n`` to Nimbo's socket, then relays bytes both ways;
answers leave with IP TTL = the interface's ``metadata_hop_limit``. Unknown sources and
interfaces with ``metadata_enabled`` off are closed at once (the input chain drops them too).
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

IMDS_ADDRESS = "169.254.169.254"
CLONE_NEWNET = 0x40000000
SO_MARK = 36
_libc = ctypes.CDLL(None, use_errno=True)


def netns_listener(netns: str, address: str, port: int) -> socket.socket:
    """A listening TCP socket bound inside the named network namespace."""
    result: dict = {}

    def work() -> None:
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
            result["sock"] = sock
        except BaseException as exc:   # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=work, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


@dataclass(frozen=True)
class Source:
    interface_id: str
    enabled: bool
    hop_limit: int


class VpcDirectory:
    """Who is who inside one VPC namespace: mark index and private address -> interface."""

    def __init__(self) -> None:
        self.by_mark: dict[int, Source] = {}
        self.by_ip: dict[str, Source] = {}

    def lookup(self, mark: int, ip: str) -> Source | None:
        return self.by_mark.get(mark & 0xFFF) if mark & 0xFFF else self.by_ip.get(ip)


class MetadataRelay:
    def __init__(self, socket_path: str, connect_timeout: float = 5.0, connection_seconds: float = 60.0,
                 max_connections: int = 256) -> None:
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout
        self.connection_seconds = connection_seconds   # a relayed connection lives at most this long
        self.max_connections = max_connections         # per VPC namespace
        self._active: dict[str, int] = {}
        self.directories: dict[str, VpcDirectory] = {}   # netns -> directory
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._tasks: set[asyncio.Task] = set()

    def serving(self) -> set[str]:
        return set(self._servers)

    async def serve(self, netns: str) -> None:
        if netns in self._servers:
            return
        sock = await asyncio.get_running_loop().run_in_executor(
            None, netns_listener, netns, IMDS_ADDRESS, 80)
        self._servers[netns] = await asyncio.start_server(
            lambda r, w: self._handle(netns, r, w), sock=sock)

    async def stop_serving(self, netns: str) -> None:
        server = self._servers.pop(netns, None)
        self.directories.pop(netns, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    async def close(self) -> None:
        for netns in list(self._servers):
            await self.stop_serving(netns)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, netns: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        peer = writer.get_extra_info("peername") or ("", 0)
        self._active[netns] = self._active.get(netns, 0) + 1
        try:
            if self._active[netns] > self.max_connections:
                log.warning("metadata relay: too many connections in %s", netns)
                return
            mark = sock.getsockopt(socket.SOL_SOCKET, SO_MARK) if sock is not None else 0
            directory = self.directories.get(netns)
            source = directory.lookup(mark, peer[0]) if directory else None
            if source is None or not source.enabled:
                log.info("metadata relay: refused %s (mark %#x) in %s", peer[0], mark, netns)
                return
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, max(1, min(64, int(source.hop_limit))))
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self.socket_path), self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                log.warning("metadata relay: cannot reach %s: %s", self.socket_path, exc)
                return
            try:
                up_writer.write(f"NIMBO-IMDS {source.interface_id}\r\n".encode())
                await asyncio.wait_for(asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer)),
                                       self.connection_seconds)
            finally:
                up_writer.close()
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        finally:
            self._active[netns] -= 1
            writer.close()
            if task is not None:
                self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
