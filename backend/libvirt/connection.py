"""One libvirt connection per host URI, used from asyncio.

libvirt-python is blocking: every call runs in a worker thread (``call``). Events arrive
through libvirt's default event loop implementation, run by one daemon thread per process, and
are handed to the asyncio loop with ``call_soon_threadsafe``. A connection that breaks (the
daemon restarted) is opened again at the next call and its event callbacks re-registered.

libvirt-python is imported lazily so that the rest of Nimbo runs without it (it needs
libvirt-dev to build: ``pip install 'nimbo[libvirt]'`` after ``apt-get install libvirt-dev``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Optional

from backend.driver import DriverError

log = logging.getLogger(__name__)

_EVENT_THREAD: Optional[threading.Thread] = None
_EVENT_LOCK = threading.Lock()


def import_libvirt() -> Any:
    try:
        import libvirt   # noqa: PLC0415
    except ImportError as exc:
        raise DriverError("libvirt-python is not installed: apt-get install libvirt-dev pkg-config gcc, "
                          "then pip install libvirt-python (or pip install 'nimbo[libvirt]')") from exc
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)   # errors arrive as exceptions
    return libvirt


def ensure_event_loop(libvirt: Any) -> None:
    global _EVENT_THREAD
    with _EVENT_LOCK:
        if _EVENT_THREAD is not None:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:   # noqa: BLE001 (keep delivering events)
                    log.exception("libvirt event loop")
        _EVENT_THREAD = threading.Thread(target=run, name="libvirt-events", daemon=True)
        _EVENT_THREAD.start()


class Connection:
    """A lazily opened, self-healing ``virConnect`` to ``uri``."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.libvirt = import_libvirt()
        self._conn: Any = None
        self._lock = threading.Lock()
        self._subscribers: list[tuple[int, Callable]] = []   # (event id, callback(conn, dom, *args))
        self._callback_ids: list[int] = []

    def subscribe(self, event_id: int, callback: Callable) -> None:
        """``callback(dom, *args)`` runs on the libvirt event thread for every domain's event."""
        self._subscribers.append((event_id, callback))

    def _open(self) -> Any:
        lv = self.libvirt
        with self._lock:
            conn = self._conn
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except lv.libvirtError:
                    pass
                self._conn = None
            ensure_event_loop(lv)
            try:
                conn = lv.open(self.uri)
            except lv.libvirtError as exc:
                raise DriverError(f"cannot connect to {self.uri}: {exc.get_error_message()}") from None
            try:
                conn.setKeepAlive(5, 3)
            except lv.libvirtError:   # test:/// and some local drivers have no keep-alive
                pass
            self._callback_ids = []
            for event_id, callback in self._subscribers:
                def relay(_conn, dom, *args, _cb=callback):
                    _cb(dom, *args[:-1])   # the last argument is the opaque value
                try:
                    self._callback_ids.append(conn.domainEventRegisterAny(None, event_id, relay, None))
                except lv.libvirtError as exc:
                    log.warning("%s: no events of kind %s: %s", self.uri, event_id, exc.get_error_message())
            self._conn = conn
            return conn

    def sync(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(virConnect)`` here (a worker thread); libvirt errors become DriverError."""
        lv = self.libvirt
        conn = self._open()
        try:
            return fn(conn)
        except lv.libvirtError as exc:
            if exc.get_error_code() in (lv.VIR_ERR_SYSTEM_ERROR, lv.VIR_ERR_RPC, lv.VIR_ERR_NO_CONNECT,
                                        lv.VIR_ERR_INTERNAL_ERROR) and not conn.isAlive():
                with self._lock:
                    self._conn = None
            raise

    async def call(self, fn: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(self.sync, fn)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            for cid in self._callback_ids:
                try:
                    conn.domainEventDeregisterAny(cid)
                except Exception:   # noqa: BLE001
                    pass
            try:
                conn.close()
            except Exception:   # noqa: BLE001
                pass
