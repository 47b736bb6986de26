"""The metadata database: one SQLite file in WAL mode, reached through aiosqlite.

Writes go through one connection, serialised by a lock, inside explicit transactions
(``async with db.transaction() as tx``, one thread hop per statement), or as one plain function
run inside a transaction on the writer's thread in a single hop (``await
db.run_in_transaction(fn)``, for batches such as S3's group commit); reads use a second connection
and see every committed write (WAL), so a write acknowledged to a client is visible to the next
read. A transaction whose body or COMMIT fails (an error, a full disk) is rolled back, so the
writer is never left inside an open transaction. An out-of-space error (SQLITE_FULL, ENOSPC) is
raised as ``storage.space.StorageFull``; with a ``SpaceGuard`` set (``db.space``), its reserve is
released before a write when the disk is nearly full, so deletes can still commit.

Several processes (``nimbo serve --workers N``) may write the same file: SQLite lets one writer in
at a time (``BEGIN IMMEDIATE``); before it, a write waits on an ``flock`` of ``<file>.writer-lock``
(on the writer's thread), so that a process waiting for another's commit gets in the moment it
ends: SQLite's own busy handler sleeps 1, 2, 5, 10 ... ms between tries, and polling the lock
every 0.2-2 ms did no better (4 KiB PUTs with two workers: ~1,200-1,500/s either way, ~1,800-2,500/s
with the blocking wait, as with one process). Each process still groups its own writes (S3's
group commit). The lock is only about waiting well: SQLite's locks keep the file correct without
it. A process that dies holding it loses it with its descriptors (no stale lock); a wait lasts as
long as the other's transaction (transactions are short; SQLite alone would fail a write with
``database is locked`` after the 5 s busy timeout instead).

Each component owns its tables and declares them as an ordered list of migrations
(``Schema("objects", [sql_v1, sql_v2, ...])``); ``Database.migrate`` applies the ones a file has not
seen yet, each in its own transaction, and records the component's version.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable, Sequence, TypeVar

import aiosqlite

from storage.space import SpaceAware, SpaceGuard

log = logging.getLogger(__name__)
T = TypeVar("T")
READER_MMAP_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Schema:
    """A component's tables: migrations applied in order, never edited once released."""

    component: str
    migrations: Sequence[str]

    def __post_init__(self) -> None:
        SCHEMAS[self.component] = self     # every component's, for ``storage.metadata_migration``


SCHEMAS: dict[str, "Schema"] = {}


class Transaction:
    """The write connection while a transaction is open."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        cursor = await self._conn.execute(sql, params)
        changed = cursor.rowcount
        await cursor.close()
        return changed

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def insert(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run an INSERT; returns the new row id."""
        cursor = await self._conn.execute(sql, params)
        rowid = cursor.lastrowid
        await cursor.close()
        return rowid

    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


class WriterTransaction:
    """The ``Transaction`` interface over the writer's ``sqlite3`` connection, for a function that
    ``Database.run_in_transaction`` runs on the writer's thread: its methods are coroutines that
    never suspend (the statement runs when the coroutine is started), so code written for a
    ``Transaction`` (``storage.usage.record_event`` ...) runs here unchanged, driven by
    ``run_now``. Rows are ``sqlite3.Row``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    async def insert(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        return self._conn.execute(sql, params).lastrowid

    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        return self._conn.execute(sql, params).fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()


def run_now(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (one over a ``WriterTransaction``) to its end, on this
    thread, and return its result; one that does suspend is closed and is a RuntimeError."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a coroutine run on the writer's thread waited for something")


class Database(SpaceAware):
    """The metadata database of one data directory (the SQLite engine; ``storage.metadata``)."""

    engine = "sqlite"

    def __init__(self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._writer_fd = os.open(path + ".writer-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.space: SpaceGuard | None = None   # set at start-up: see storage.space
        self._released = False

    @classmethod
    async def open(cls, path: str) -> "Database":
        """Open (creating if needed) the database file, readable by its owner only."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        writer = await _connect(path)
        await _pragma(writer, "PRAGMA journal_mode=WAL")
        reader = await _connect(path)
        db = cls(path, writer, reader)
        await db._ensure_versions_table()
        return db

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
        if self._writer_fd >= 0:
            os.close(self._writer_fd)
            self._writer_fd = -1

    async def _ensure_versions_table(self) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )

    async def migrate(self, schema: Schema) -> None:
        """Apply the migrations of ``schema`` that this file has not seen yet."""
        while True:
            row = await self.fetchone(
                "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
            )
            if (row["version"] if row else 0) >= len(schema.migrations):
                return
            async with self.transaction() as tx:
                # read again inside the write transaction: another process may have migrated
                row = await tx.fetchone(
                    "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
                )
                current = row["version"] if row else 0
                if current >= len(schema.migrations):
                    return
                version, sql = current + 1, schema.migrations[current]
                for statement in _statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (schema.component, version),
                )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back if the block or the
        COMMIT itself raises (SQLite may keep a transaction open after a failed COMMIT, e.g. on
        a full disk: it must not stay open on the one writer connection)."""
        async with self._write_lock:
            self._before_write()
            try:
                await self._writer._execute(_begin, self._writer._conn, self._writer_fd)
            except sqlite3.Error as exc:
                raise self._storage_full(exc) or exc
            except BaseException:
                # cancelled while BEGIN ran on the writer's thread, where it may still have begun:
                # the one writer connection must not stay inside a transaction
                await asyncio.shield(self._rollback())
                raise
            try:
                yield Transaction(self._writer)
            except BaseException as exc:
                await self._rollback()
                raise self._storage_full(exc) or exc
            try:
                await self._writer._execute(_commit, self._writer._conn, self._writer_fd)
            except BaseException as exc:
                await self._rollback()
                raise self._storage_full(exc) or exc

    async def wait_for_writers(self) -> None:
        """Wait until no other process is writing, and keep the writers' lock for this process's
        next transaction (its commit or rollback drops it; call only when one follows). A group
        commit waits here before it takes its batch, so what arrives meanwhile joins the batch."""
        await self._writer._execute(_lock_writers, self._writer_fd)

    async def run_in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the writer's thread inside BEGIN IMMEDIATE ... COMMIT, in
        one thread hop, and return what it returns. ``conn`` is the writer's ``sqlite3``
        connection (rows are ``sqlite3.Row``); ``fn`` must not begin, commit or roll back
        itself. If ``fn`` or the COMMIT raises, the transaction is rolled back and the
        exception raised here. ``fn`` blocks the writer: keep it to database work."""
        async with self._write_lock:
            # aiosqlite runs every call of a connection on that connection's one thread, in
            # order; ``_execute`` is how its own methods get there.
            self._before_write()
            try:
                return await self._writer._execute(_run_in_transaction, self._writer._conn,
                                                   self._writer_fd, fn, args)
            except Exception as exc:
                full = self._storage_full(exc)
                if full is None:
                    raise
                if not self._released:   # the reserve freed room: once more
                    raise full from exc
            try:
                return await self._writer._execute(_run_in_transaction, self._writer._conn,
                                                   self._writer_fd, fn, args)
            except Exception as exc:
                raise self._storage_full(exc) or exc

    async def _rollback(self) -> None:
        try:   # a no-op when no transaction is open any more; drops the writers' lock
            await self._writer._execute(_rollback, self._writer._conn, self._writer_fd)
        except Exception:  # the original error is the one to report
            log.exception("rollback failed")

    def sync_reader(self) -> sqlite3.Connection:
        """A read-only connection used synchronously on the event loop (``storage.objects``)."""
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA busy_timeout=2000")
        reader.execute("PRAGMA query_only=1")
        # pages come from a mapping instead of one pread each: ~40% off a point lookup here
        reader.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
        return reader

    @contextlib.asynccontextmanager
    async def cluster_lock(self, name: str) -> AsyncIterator[bool]:
        """Whether this process may run the pass ``name`` now: always, on SQLite (one data
        directory, whose leader alone runs passes: ``gateway.leader``)."""
        yield True

    # A read is one trip to the reader's thread: execute, fetch, close. A statement that stayed
    # open across an await (execute in one trip, fetch in the next) would hold the connection's
    # read transaction, and every other read on it meanwhile would see that older snapshot, not
    # the writes acknowledged since (read-after-write broken under load).
    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        return await self._reader._execute(_read_one, self._reader._conn, sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        return await self._reader._execute(_read_all, self._reader._conn, sql, params)


def _read_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict) -> sqlite3.Row | None:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _read_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict) -> list[sqlite3.Row]:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _lock_writers(fd: int) -> None:
    """On the writer's thread: the writers' lock of the file (see the module docstring)."""
    fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock_writers(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass


def _begin(conn: sqlite3.Connection, fd: int) -> None:
    """On the writer's thread: the writers' lock, then BEGIN IMMEDIATE (the lock dropped if it fails)."""
    _lock_writers(fd)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        _unlock_writers(fd)
        raise


def _commit(conn: sqlite3.Connection, fd: int) -> None:
    """On the writer's thread: COMMIT, then drop the writers' lock (a failed COMMIT keeps it until
    the rollback that follows)."""
    conn.commit()
    _unlock_writers(fd)


def _rollback(conn: sqlite3.Connection, fd: int) -> None:
    try:
        conn.rollback()
    finally:
        _unlock_writers(fd)


def _run_in_transaction(conn: sqlite3.Connection, fd: int, fn: Callable[..., T], args: tuple) -> T:
    """On the writer's thread: BEGIN IMMEDIATE, fn, COMMIT; ROLLBACK if anything fails."""
    _begin(conn, fd)
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed")
        raise
    finally:
        _unlock_writers(fd)
    return result


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in ("PRAGMA busy_timeout=5000", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"):
        await _pragma(conn, pragma)
    return conn


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    async with conn.execute(pragma) as cursor:
        await cursor.fetchall()


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (migrations hold no ';' inside literals)."""
    return [part.strip() for part in sql.split(";") if part.strip()]
