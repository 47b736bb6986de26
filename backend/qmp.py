"""A small asyncio client for the QEMU Machine Protocol over a unix socket.

One connection carries commands (matched to replies by id, several may be in flight) and
asynchronous events, which go to callbacks registered with ``on_event`` and to waiters created
with ``expect_event`` (register the waiter *before* sending the command that causes the event).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict, dict], None]  # (name, data, timestamp)


class QMPError(Exception):
    """QEMU answered a command with an error."""

    def __init__(self, error_class: str, desc: str, command: str = ""):
        super().__init__(f"{command}: {error_class}: {desc}" if command else f"{error_class}: {desc}")
        self.error_class = error_class
        self.desc = desc
        self.command = command


class QMPConnectionError(Exception):
    """Could not connect, or the connection was lost (QEMU exited)."""


class QMPClient:
    def __init__(self) -> None:
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._callbacks: list[EventCallback] = []
        self._waiters: list[tuple[str, Callable[[dict], bool], asyncio.Future]] = []
        self._read_task: Optional[asyncio.Task] = None
        self.closed: asyncio.Event = asyncio.Event()
        self.greeting: dict = {}

    @classmethod
    async def connect(cls, path: str, timeout: float = 5.0) -> "QMPClient":
        client = cls()
        await client._connect(path, timeout)
        return client

    async def _connect(self, path: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(path, limit=1 << 24)
                line = await self._reader.readline()
                if not line:
                    raise QMPConnectionError(f"{path}: closed before greeting")
                self.greeting = json.loads(line)
                if "QMP" not in self.greeting:
                    raise QMPConnectionError(f"{path}: not a QMP greeting: {line[:200]!r}")
                self._read_task = asyncio.create_task(self._read_loop())
                await self.execute("qmp_capabilities")
        except (OSError, TimeoutError, ValueError) as exc:
            await self.close()
            raise QMPConnectionError(f"{path}: {exc!r}") from exc
        except BaseException:
            await self.close()
            raise

    @property
    def is_connected(self) -> bool:
        return self._writer is not None and not self.closed.is_set()

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    def expect_event(self, name: str, match: Optional[Callable[[dict], bool]] = None) -> asyncio.Future:
        """A future resolved with the data of the next event ``name`` for which ``match(data)``."""
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        if self.closed.is_set():
            fut.set_exception(QMPConnectionError("connection closed"))
        else:
            self._waiters.append((name, match or (lambda _d: True), fut))
        return fut

    async def wait_event(self, name: str, match: Optional[Callable[[dict], bool]] = None,
                         timeout: Optional[float] = None) -> dict:
        return await asyncio.wait_for(self.expect_event(name, match), timeout)

    async def execute(self, command: str, arguments: Optional[dict] = None,
                      timeout: Optional[float] = 30.0) -> Any:
        if not self.is_connected:
            raise QMPConnectionError("not connected")
        msg_id = f"n{next(self._ids)}"
        msg: dict[str, Any] = {"execute": command, "id": msg_id}
        if arguments:
            msg["arguments"] = arguments
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        try:
            self._writer.write(json.dumps(msg).encode() + b"\n")
            await self._writer.drain()
            reply = await asyncio.wait_for(fut, timeout)
        except (ConnectionError, BrokenPipeError) as exc:
            raise QMPConnectionError(f"{command}: {exc!r}") from exc
        finally:
            self._pending.pop(msg_id, None)
        if "error" in reply:
            err = reply["error"]
            raise QMPError(err.get("class", "GenericError"), err.get("desc", ""), command)
        return reply.get("return")

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("QMP: unparsable line %r", line[:200])
                    continue
                if "event" in msg:
                    self._dispatch_event(msg)
                elif "id" in msg:
                    fut = self._pending.get(msg["id"])
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self._fail_all()

    def _dispatch_event(self, msg: dict) -> None:
        name, data = msg["event"], msg.get("data") or {}
        stamp = msg.get("timestamp") or {}
        for callback in list(self._callbacks):
            try:
                callback(name, data, stamp)
            except Exception:
                log.exception("QMP event callback failed")
        keep = []
        for waiter in self._waiters:
            wname, match, fut = waiter
            if fut.done():
                continue
            if wname == name and match(data):
                fut.set_result(data)
            else:
                keep.append(waiter)
        self._waiters = keep

    def _fail_all(self) -> None:
        self.closed.set()
        exc = QMPConnectionError("connection closed")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        for _name, _match, fut in self._waiters:
            if not fut.done():
                fut.set_exception(exc)
        self._waiters = []

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        if self._read_task is not None:
            self._read_task.cancel()
            try:
                await self._read_task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_all()

    async def __aenter__(self) -> "QMPClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _retrieve(fut: asyncio.Future) -> None:
    """Mark a waiter's exception as seen, so an abandoned waiter does not log noise."""
    if not fut.cancelled():
        fut.exception()
