"""Free space on the data directory's filesystem: a watermark for new data and a reserve file.

A full disk must not wedge the store: deletes and metadata commits must always be possible, or no
one could free space through the API. Two mechanisms keep it so:

- **The watermark** (``min_free_bytes``): new data (an object's body, a part, a copy) is refused
  with ``StorageFull`` when accepting it would leave less free space than this, before a byte is
  written. What stays free is room for the metadata database (its WAL) to commit deletes.
- **The reserve** (``reserve_bytes``, R): a file of that size in the data directory. When the
  disk is (nearly) full, whoever filled it (free space below R/2), the reserve is released
  before the next write transaction (and at start-up), so that the database can still commit
  deletes. It is made again as soon as there is room for it (free space of 2R: before any new
  data, which the watermark refuses until then), checked after every blob deletion and before
  every write transaction.

Every out-of-space condition (ENOSPC or EDQUOT from the OS, SQLITE_FULL from the database) is
reported as ``StorageFull``; the gateway renders it as one documented error (ServiceUnavailable,
503). Crash story: the reserve is a plain file of zeros, written to ``space-reserve.tmp`` and
renamed; a crash leaves at most a stale temp file, removed at the next start-up; its absence only
means it is made again.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

RESERVE_FILE = "space-reserve"
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13


class StorageFull(Exception):
    """No room for this write: below the free-space watermark, or the disk is full."""

    def __init__(self, message: str = "The server's storage is full: new data is refused until"
                 " space is freed (delete objects or add disk space).") -> None:
        super().__init__(message)
        self.message = message


def is_out_of_space(exc: BaseException) -> bool:
    """True for an OS or SQLite error that means the disk (or the quota) is full."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == _SQLITE_FULL
        return "database or disk is full" in str(exc)
    return False


class SpaceAware:
    """What a metadata engine does about space (``storage.db``, ``storage.postgres``): before each
    write transaction its ``space`` guard may release or remake the reserve, and an out-of-space
    error becomes ``StorageFull`` (the reserve released, so that the next write, a delete, can
    commit: ``_released`` says whether it was, for one more try)."""

    space: "SpaceGuard | None" = None
    _released = False

    def _before_write(self) -> None:
        self._released = False
        if self.space is not None:
            self.space.before_write()

    def _storage_full(self, exc: BaseException) -> "StorageFull | None":
        """``StorageFull`` for an out-of-space error (the reserve released for the next write),
        None for any other error."""
        if isinstance(exc, StorageFull):
            return exc
        if not is_out_of_space(exc):
            return None
        self._released = self.space is not None and self.space.release_reserve()
        full = StorageFull()
        full.__cause__ = exc
        return full


class SpaceGuard:
    """The watermark and the reserve of one data directory."""

    def __init__(self, data_dir: str, min_free_bytes: int, reserve_bytes: int) -> None:
        self.data_dir = data_dir
        self.min_free_bytes = max(0, int(min_free_bytes))
        self.reserve_bytes = max(0, int(reserve_bytes))
        self.reserve_path = os.path.join(data_dir, RESERVE_FILE)
        self.has_reserve = os.path.exists(self.reserve_path)
        self._lock = threading.Lock()   # blob threads (after_free) and the event loop

    def free_bytes(self) -> int:
        st = os.statvfs(self.data_dir)
        return st.f_bavail * st.f_frsize

    def check_room(self, incoming: int = 0) -> None:
        """StorageFull unless ``incoming`` more bytes leave the watermark's free space."""
        free = self.before_write()
        if free - max(0, incoming) < self.min_free_bytes:
            raise StorageFull()

    def before_write(self) -> int:
        """Release the reserve when the disk is (nearly) full, so a commit can go through; make
        it again when there is room for it. Returns the free bytes (after that)."""
        free = self.free_bytes()
        if not self.reserve_bytes:
            return free
        if self.has_reserve:
            if free < self.reserve_bytes // 2 and self.release_reserve():
                free += self.reserve_bytes
        elif free >= 2 * self.reserve_bytes and self.make_reserve():
            free -= self.reserve_bytes
        return free

    after_free = before_write   # called once blobs were deleted

    def release_reserve(self) -> bool:
        with self._lock:
            if not self.has_reserve:
                return False
            try:
                os.unlink(self.reserve_path)
            except FileNotFoundError:
                pass
            self.has_reserve = False
        log.warning("the disk of %s is full: released the %d-byte space reserve so that deletes"
                    " can commit; new data is refused until space is freed", self.data_dir,
                    self.reserve_bytes)
        return True

    def make_reserve(self) -> bool:
        """Allocate the reserve file (when there is room for it above the watermark)."""
        with self._lock:
            if self.has_reserve or not self.reserve_bytes:
                return self.has_reserve
            made = self._make()
        if made:
            log.info("made the %d-byte space reserve in %s", self.reserve_bytes, self.data_dir)
        return made

    def _make(self) -> bool:
        tmp = self.reserve_path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                _allocate(fd, self.reserve_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.reserve_path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if not is_out_of_space(exc):
                raise
            return False
        self.has_reserve = True
        return True

    def start(self) -> None:
        """At start-up: drop a stale temp file, release the reserve if the disk is full (so the
        database can open and commit), else make it if there is room."""
        try:
            os.unlink(self.reserve_path + ".tmp")
        except FileNotFoundError:
            pass
        self.before_write()


def _allocate(fd: int, size: int) -> None:
    """Real blocks, not a sparse file: posix_fallocate, else zeros written."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", -1)):
            raise
    block = b"\0" * (1 << 20)
    left = size
    while left > 0:
        left -= os.write(fd, block[:min(left, len(block))])
