"""The blob store: object data as files named by id, never by key.

Layout: ``<root>/<first 3 hex digits of the id>/<id>`` (up to 4,096 folders, each made, and the
root fsynced, when its first blob is written). A blob is written to ``<id>.tmp`` in its final folder, fsynced, renamed to ``<id>``
and the folder fsynced; only then may a metadata row point at it. A crash before the rename leaves
a ``.tmp`` file, a crash before the metadata commit leaves a blob nothing points to: ``collect``
removes both, at start-up, before anything is served.

Everything here is synchronous and may block on the disk: callers run it off the event loop
(``BlobStore.run``). Nothing here knows about S3.

Several gateways may share one store (``blob_dir`` on NFS, CephFS, GlusterFS: README "Operating a
cluster"): what it needs of the filesystem is an atomic, durable ``rename`` (and ``fsync`` of files
and folders), ``flock`` seen by every client (``try_exclusive``: no collection while another
gateway has the store open) and ``link`` that fails on an existing name (the master key).

An object backend (Ceph RADOS through librados, say) would implement the same few calls on
another class: ``create`` -> a writer whose ``write``/``write_pieces`` append to a RADOS object
named ``<id>.tmp`` (or stream to a striper) and whose ``commit`` makes it visible under ``<id>``
(an atomic rename is not in RADOS: write the object under its final id and let the metadata
commit, which alone makes it reachable, be the publication; ``abort`` removes it), ``delete``,
``collect`` (list the pool's objects against the referenced ids; ``try_exclusive`` becomes a RADOS
lock), and reads by id through a range-read call instead of ``open``'s descriptor (S3's readers,
``s3_api.streaming`` and ``s3_api.sealed_io``, take descriptors for sendfile and preadv: they would
take a reader object instead). The metadata side does not change: rows name blobs by id only.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import fcntl
import os
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

FANOUT_DIGITS = 3
TMP_SUFFIX = ".tmp"
WRITEBACK_BYTES = 8 << 20   # start the disk writing every 8 MiB, so the final fsync finds little


def _sync_file_range():
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    return fn


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2
_IOV_MAX = 512


def new_blob_id() -> str:
    """A fresh id: 32 random hex digits (the first three name the folder)."""
    return secrets.token_hex(16)


def _folder(blob_id: str) -> str:
    return blob_id[:FANOUT_DIGITS]


class BlobWriter:
    """One blob being written: write(), then commit() (durable, visible under its id) or abort()."""

    def __init__(self, store: "BlobStore", blob_id: str) -> None:
        self.store = store
        self.blob_id = blob_id
        self.folder = os.path.join(store.root, _folder(blob_id))
        self.tmp_path = os.path.join(self.folder, blob_id + TMP_SUFFIX)
        self.path = os.path.join(self.folder, blob_id)
        # The file is opened by the first write (or an empty blob's commit), not here: a writer
        # is made on the event loop, and the folder's first blob makes the folder and fsyncs the
        # root (milliseconds), which belongs on the store's threads with the writes.
        self.fd = -1
        self._opened = False
        self.size = 0
        self._written_back = 0
        self._done = False

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self.fd = os.open(self.tmp_path, flags, 0o600)
        except FileNotFoundError:       # the folder's first blob
            self.store.make_folder(self.folder)
            self.fd = os.open(self.tmp_path, flags, 0o600)
        self._opened = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._opened:
            self._open()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            self.size += written
            view = view[written:]
        self._write_back()

    def write_pieces(self, pieces: list[bytes]) -> None:
        """Append several buffers with as few system calls as possible (writev)."""
        if not self._opened:
            self._open()
        for first in range(0, len(pieces), _IOV_MAX):
            group = pieces[first:first + _IOV_MAX]
            total = sum(len(p) for p in group)
            written = os.writev(self.fd, group)
            self.size += written
            if written < total:     # short write: finish the rest buffer by buffer
                rest = b"".join(group)[written:]
                view = memoryview(rest)
                while view:
                    n = os.write(self.fd, view)
                    self.size += n
                    view = view[n:]
        self._write_back()

    def _write_back(self) -> None:
        if _SYNC_FILE_RANGE is not None and self.size - self._written_back >= WRITEBACK_BYTES:
            # asynchronous: the kernel starts writing these pages, the call does not wait
            _SYNC_FILE_RANGE(self.fd, self._written_back, self.size - self._written_back,
                             _SYNC_FILE_RANGE_WRITE)
            self._written_back = self.size

    def commit(self) -> None:
        """fsync the data, rename into place, fsync the folder."""
        if not self._opened:
            self._open()     # an empty blob
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1
        os.rename(self.tmp_path, self.path)
        self._done = True
        self.store.sync_folder(self.folder)

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self._done:
            _unlink(self.tmp_path)
        else:
            _unlink(self.path)
        self._done = True


class SerialLane:
    """Jobs run on an executor one at a time and in submission order, without the submitter
    waiting for the previous one (an incremental hash must see its blocks in order)."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self._pending: collections.deque = collections.deque()
        self._running = False

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        with self._lock:
            self._pending.append((fn, args, future))
            if self._running:
                return future
            self._running = True
        self._executor.submit(self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                fn, args, future = self._pending.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever awaits the job
                future.set_exception(exc)


class BlobStore:
    def __init__(self, root: str, *, threads: int = 8) -> None:
        self.root = root
        self.space = None   # a storage.space.SpaceGuard: new data checked against its watermark
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="blobs")
        self._lock_fd = -1

    # --- lifecycle -------------------------------------------------------------------------
    def setup(self) -> None:
        """Make the root and take a shared lock for as long as this store is open (folders are
        made when their first blob is written)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)

    def try_exclusive(self) -> bool:
        """True when no other process has this store open (then ``collect`` is safe); the caller
        must call ``share`` afterwards."""
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def share(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def lane(self) -> SerialLane:
        return SerialLane(self._executor)

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run blocking blob work on the store's threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- blobs -----------------------------------------------------------------------------
    def path(self, blob_id: str) -> str:
        return os.path.join(self.root, _folder(blob_id), blob_id)

    def create(self, blob_id: str | None = None, expected_size: int = 0) -> BlobWriter:
        """A new blob; ``StorageFull`` (``storage.space``) when ``expected_size`` more bytes
        would pass the free-space watermark."""
        if self.space is not None:
            self.space.check_room(expected_size)
        return BlobWriter(self, blob_id or new_blob_id())

    def open(self, blob_id: str) -> int:
        """An fd to read the blob (FileNotFoundError if it is gone)."""
        return os.open(self.path(blob_id), os.O_RDONLY | os.O_CLOEXEC)

    def delete(self, blob_ids: Iterable[str]) -> None:
        for blob_id in blob_ids:
            _unlink(self.path(blob_id))
        if self.space is not None:
            self.space.after_free()    # room again: the space reserve comes back first

    def make_folder(self, folder: str) -> None:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            return
        self.sync_folder(self.root)     # the new folder's entry must survive a crash too

    def sync_folder(self, folder: str) -> None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- start-up collection ---------------------------------------------------------------
    def collect(self, referenced: Iterator[str]) -> tuple[int, int]:
        """Delete temp files and blobs that ``referenced`` (ids in ascending order, duplicates
        allowed) does not name. Call only while no writer is active. Returns (temps, orphans)."""
        # Folders are id prefixes, so walking folders in order and the ids in order is a merge:
        # memory holds one folder's ids at a time.
        pending = next(referenced, None)
        temps = orphans = 0
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir() or len(entry.name) != FANOUT_DIGITS:
                continue
            while pending is not None and _folder(pending) < entry.name:
                pending = next(referenced, None)
            keep = set()
            while pending is not None and _folder(pending) == entry.name:
                keep.add(pending)
                pending = next(referenced, None)
            for blob in os.scandir(entry.path):
                if blob.name.endswith(TMP_SUFFIX):
                    _unlink(blob.path)
                    temps += 1
                elif blob.name not in keep:
                    _unlink(blob.path)
                    orphans += 1
        return temps, orphans


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - e.g. EROFS; leave it for the next collection
        if exc.errno not in (errno.ENOENT,):
            raise
