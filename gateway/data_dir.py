"""The data directory: which one a command means, and the lock a server holds on it.

* ``nimbo serve`` is the only command that creates a data directory. It takes an exclusive lock on
  ``DIR/nimbo.lock`` (``flock``) and holds it for the server's life, so that a second server on the
  same directory refuses to start (before it binds a port or touches the database, so the first
  one's ``DIR/endpoint`` stays as it is); once it holds the lock it removes a ``DIR/endpoint`` a
  killed server left, and writes it again when it serves. It records itself for the other commands in the runtime
  directory (``NIMBO_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/nimbo``, else ``~/.local/state/nimbo``)
  as ``server-<pid>.json``: the data directory and the endpoint.
* ``nimbo credentials``, ``admin`` and ``billing`` never create one. They use ``--data-dir`` (or
  ``NIMBO_DATA_DIR``) when given, else ``./nimbo-data`` when it holds a database, else the one
  running server recorded in the runtime directory; otherwise they refuse with a message that says
  what to pass.

Crash story: the kernel drops a dead server's ``flock``, so a killed server leaves no stale lock;
its runtime record stays behind and is ignored (and removed) by the next reader, which sees that
no one holds the record's lock any more. A clean exit removes the record.
"""
from __future__ import annotations

import fcntl
import json
import contextlib
import os
import time
from dataclasses import dataclass

DEFAULT_DATA_DIR = "nimbo-data"
DATABASE = "nimbo.db"
METADATA_FILE = "metadata.url"   # the PostgreSQL URL of a cluster's gateway (owner only)
LOCK_FILE = "nimbo.lock"


class DataDirError(Exception):
    """A command cannot use the data directory it was given, or found none."""


class DataDirInUse(DataDirError):
    pass


def runtime_dir() -> str:
    explicit = os.environ.get("NIMBO_RUNTIME_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "nimbo")
    return os.path.join(os.path.expanduser("~"), ".local", "state", "nimbo")


# -- the server's side ---------------------------------------------------------------------------

@dataclass
class ServerLock:
    """The exclusive lock of a running server on its data directory (held until ``release``)."""

    data_dir: str
    fd: int
    record: str | None = None

    def announce(self, endpoint: str) -> None:
        """Record the running server for the other commands (once it is serving)."""
        folder = runtime_dir()
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            path = os.path.join(folder, f"server-{os.getpid()}.json")
            temp = path + ".tmp"
            with open(temp, "w") as fh:
                json.dump({"data_dir": self.data_dir, "endpoint": endpoint, "pid": os.getpid()}, fh)
            os.replace(temp, path)
            self.record = path
        except OSError:
            self.record = None      # the record is a convenience: --data-dir still works

    def release(self) -> None:
        if self.record:
            try:
                os.unlink(self.record)
            except OSError:
                pass
            self.record = None
        if self.fd >= 0:
            os.close(self.fd)       # closing the descriptor drops the flock
            self.fd = -1


def lock_for_server(data_dir: str) -> ServerLock:
    """Create ``data_dir`` if needed and lock it for this server, or raise ``DataDirInUse``."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(data_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock_or_wait_for_dying(fd)
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        endpoint = _endpoint_of(data_dir)
        detail = ", ".join(part for part in (f"pid {holder}" if holder else "",
                                             endpoint or "") if part)
        raise DataDirInUse(f"another Nimbo server{f' ({detail})' if detail else ''} is using the "
                           f"data directory {data_dir}; stop it or pass another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    # ``endpoint`` says "a server serves here": one a killed server left is not true any more, and
    # whoever waits for this start must not take it for the new server's readiness
    try:
        os.unlink(os.path.join(data_dir, "endpoint"))
    except FileNotFoundError:
        pass
    return ServerLock(data_dir, fd)


def _lock_or_wait_for_dying(fd: int, wait: float = 5.0) -> None:
    """The exclusive lock, or BlockingIOError. The workers of a server (``--workers``) share its
    lock; when the server's parent was killed, the kernel kills them too, a moment later: while
    the recorded holder is dead, wait up to ``wait`` seconds for them to go."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _read(fd)
            if not holder.isdigit() or _alive(int(holder)) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _endpoint_of(data_dir: str) -> str | None:
    try:
        with open(os.path.join(data_dir, "endpoint")) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def is_served(data_dir: str) -> bool:
    """True while a server holds the lock of ``data_dir``."""
    try:
        fd = os.open(os.path.join(data_dir, LOCK_FILE), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)    # drops a lock taken just to look
    return False


# -- the other commands' side --------------------------------------------------------------------

def running_servers() -> list[dict]:
    """The servers recorded in the runtime directory that still hold their lock (stale records of
    servers that died are removed)."""
    folder = runtime_dir()
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for name in names:
        if not (name.startswith("server-") and name.endswith(".json")):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path) as fh:
                record = json.load(fh)
            data_dir = record["data_dir"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if is_served(data_dir):
            found.append(record)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    return found


def record_metadata(data_dir: str, metadata: str | None) -> None:
    """Note where a gateway's metadata lives (a PostgreSQL URL may hold a password: 0600), so
    that ``nimbo admin``/``credentials --data-dir`` reach the same database; none for SQLite."""
    path = os.path.join(data_dir, METADATA_FILE)
    if not metadata:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(metadata + "\n")
    os.replace(path + ".tmp", path)


def metadata_url(data_dir: str) -> str | None:
    """The PostgreSQL URL a gateway of ``data_dir`` serves from, None for SQLite."""
    try:
        with open(os.path.join(data_dir, METADATA_FILE)) as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def _has_data(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in (DATABASE, METADATA_FILE))


def existing_data_dir(given: str | None) -> str:
    """The data directory a command other than ``serve`` works on; never creates one."""
    if given:
        path = os.path.abspath(given)
        if not _has_data(path):
            raise DataDirError(f"no Nimbo data in {path} (no {DATABASE}); `nimbo serve --data-dir "
                               f"{given}` creates it, other commands never do")
        return path
    local = os.path.abspath(DEFAULT_DATA_DIR)
    if _has_data(local):
        return local
    servers = running_servers()
    dirs = sorted({record["data_dir"] for record in servers})
    if len(dirs) == 1 and os.path.isfile(os.path.join(dirs[0], DATABASE)):
        return dirs[0]
    if len(dirs) > 1:
        listing = "; ".join(f"{r['data_dir']} ({r.get('endpoint', '?')})" for r in servers)
        raise DataDirError(f"several Nimbo servers are running: {listing}; pass --data-dir DIR")
    raise DataDirError("no running Nimbo server found and no ./nimbo-data here: start one with "
                       "`nimbo serve` (or `make run`), or pass --data-dir DIR (the directory "
                       "`nimbo serve` uses)")
