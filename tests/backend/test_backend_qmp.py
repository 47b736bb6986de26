"""The QMP client against a fake QMP server on a unix socket."""
from __future__ import annotations

import asyncio
import json

import pytest

from backend.qmp import QMPClient, QMPConnectionError, QMPError


class FakeQMPServer:
    """Greets, requires qmp_capabilities, answers scripted commands, can push events."""

    def __init__(self, path: str, greet: bool = True):
        self.path = path
        self.greet = greet
        self.received: list[dict] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server = None

    async def __aenter__(self):
        self.server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def __aexit__(self, *exc):
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()

    def send(self, msg: dict) -> None:
        for w in self.writers:
            w.write(json.dumps(msg).encode() + b"\r\n")

    def event(self, name: str, data: dict | None = None) -> None:
        self.send({"event": name, "data": data or {}, "timestamp": {"seconds": 1700000000, "microseconds": 500000}})

    async def _serve(self, reader, writer):
        self.writers.append(writer)
        if self.greet:
            writer.write(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\r\n')
        negotiated = False
        while line := await reader.readline():
            msg = json.loads(line)
            self.received.append(msg)
            cmd, mid = msg.get("execute"), msg.get("id")
            if cmd == "qmp_capabilities":
                negotiated = True
                reply = {"return": {}}
            elif not negotiated:
                reply = {"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation"}}
            elif cmd == "query-status":
                reply = {"return": {"status": "running", "running": True}}
            elif cmd == "slow":
                await asyncio.sleep(0.2)
                reply = {"return": "slow-done"}
            elif cmd == "device_del":
                self.event("DEVICE_DELETED", {"device": "other"})
                reply = {"return": {}}
                self.send({**reply, "id": mid})
                self.event("DEVICE_DELETED", {"device": msg["arguments"]["id"]})
                continue
            elif cmd == "quit":
                writer.write(json.dumps({"return": {}, "id": mid}).encode() + b"\r\n")
                self.event("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
                await writer.drain()
                writer.close()
                return
            else:
                reply = {"error": {"class": "CommandNotFound", "desc": f"The command {cmd} has not been found"}}
            writer.write(json.dumps({**reply, "id": mid}).encode() + b"\r\n")
            await writer.drain()


@pytest.fixture
def sock(tmp_path):
    return str(tmp_path / "qmp.sock")


async def test_execute_and_errors(sock):
    async with FakeQMPServer(sock) as server:
        qmp = await QMPClient.connect(sock)
        assert qmp.greeting["QMP"]["version"]["qemu"]["major"] == 7
        assert server.received[0]["execute"] == "qmp_capabilities"
        assert await qmp.execute("query-status") == {"status": "running", "running": True}
        with pytest.raises(QMPError) as err:
            await qmp.execute("nonsense", {"a": 1})
        assert err.value.error_class == "CommandNotFound" and "nonsense" in str(err.value)
        assert server.received[-1] == {"execute": "nonsense", "id": server.received[-1]["id"], "arguments": {"a": 1}}
        await qmp.close()


async def test_concurrent_commands_match_ids(sock):
    async with FakeQMPServer(sock):
        async with await QMPClient.connect(sock) as qmp:
            slow, fast = await asyncio.gather(qmp.execute("slow"), qmp.execute("query-status"))
            assert slow == "slow-done" and fast["status"] == "running"


async def test_events_callbacks_and_waiters(sock):
    async with FakeQMPServer(sock) as server:
        qmp = await QMPClient.connect(sock)
        seen = []
        qmp.on_event(lambda name, data, stamp: seen.append((name, data, stamp["seconds"])))
        deleted = qmp.expect_event("DEVICE_DELETED", lambda d: d.get("device") == "v-vol-1")
        await qmp.execute("device_del", {"id": "v-vol-1"})
        assert await asyncio.wait_for(deleted, 2) == {"device": "v-vol-1"}
        assert [s[1]["device"] for s in seen] == ["other", "v-vol-1"]
        server.event("RESET", {"guest": True})
        data = await qmp.wait_event("RESET", timeout=2)
        assert data == {"guest": True}
        await qmp.close()


async def test_connection_loss_fails_pending_and_waiters(sock):
    async with FakeQMPServer(sock):
        qmp = await QMPClient.connect(sock)
        shutdown = qmp.expect_event("SHUTDOWN")
        never = qmp.expect_event("STOP")
        await qmp.execute("quit")
        assert (await shutdown)["reason"] == "host-qmp-quit"
        await asyncio.wait_for(qmp.closed.wait(), 2)
        assert not qmp.is_connected
        with pytest.raises(QMPConnectionError):
            await never
        with pytest.raises(QMPConnectionError):
            await qmp.execute("query-status")
        await qmp.close()


async def test_connect_failures(sock, tmp_path):
    with pytest.raises(QMPConnectionError):
        await QMPClient.connect(str(tmp_path / "absent.sock"), timeout=1)
    async with FakeQMPServer(sock, greet=False):   # e.g. another client holds QEMU's monitor
        with pytest.raises(QMPConnectionError):
            await QMPClient.connect(sock, timeout=0.3)
