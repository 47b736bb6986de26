"""The metadata database on PostgreSQL (``metadata = "postgresql://..."``), reached through psycopg 3.

The same interface as ``storage.db.Database`` (SQLite): ``transaction()``, ``fetchone/fetchall``,
``migrate(Schema)``, ``sync_reader()``, ``cluster_lock(name)``; the same statements, translated by
``storage.sql_dialect``; the same schema and migrations. Several gateways (and their worker
processes) share one database.

Why psycopg 3 (not asyncpg): it has both an asyncio and a blocking connection over one libpq, and
S3's object store reads synchronously on the event loop (``storage.objects``: a point lookup there
is cheaper than a thread hop); asyncpg has no blocking API. Its ``executemany`` pipelines the rows
of a group commit in one round trip.

Transactions: serial, as on SQLite. Nimbo's writers read then write inside one transaction and
rely on nothing committing in between (SQLite's ``BEGIN IMMEDIATE``: one writer at a time): S3's
group commit reads the rows it replaces through the *other* connection, EC2 checks quotas and
uniqueness before it inserts, the billing pass moves a checkpoint. Each write transaction here
therefore begins by taking one transaction-level advisory lock (``pg_advisory_xact_lock``, the
*writers' lock*), held until COMMIT or ROLLBACK: write transactions run one after the other across
every gateway, and each statement (READ COMMITTED) sees every commit before it, exactly SQLite's
guarantee, with no serialization failures to retry. Reads take no lock and see every committed
write at once (read-after-write across gateways). The cost is SQLite's too: one writer at a time,
which the group commit amortises (many PUTs per transaction). SERIALIZABLE with retries would let
writers overlap but every call site would have to be safe to run twice; not done.

Parameters are bound on the client (psycopg's ``ClientCursor``): each value reaches the server
as a literal whose type the statement decides, as SQLite's flexible typing lets Nimbo's
statements assume (``? IS NULL``, a number given as text); values are escaped by libpq.

Inside a transaction each single statement runs under a savepoint, so that a statement that fails
(a uniqueness violation the caller catches, as SQLite lets it) leaves the transaction usable; the
group commit's ``executemany`` runs without one (a failure there fails the whole batch, which
``storage.objects`` then retries one operation at a time).

Cost, measured here (2 shared cores, unix socket): a point read ~0.2-0.3 ms against SQLite's
~0.01 ms, so S3 reads on PostgreSQL are several times slower per gateway than on SQLite
(``python -m bench.cluster``); a write transaction ~4 ms, most of it the WAL flush, which the
group commit shares among the writes of a batch.
Engine errors reach callers as the DB-API classes they already catch: a uniqueness or foreign-key
violation as ``sqlite3.IntegrityError``, an unknown table or column as
``sqlite3.OperationalError``, a full disk as ``OSError(ENOSPC)``.

Background passes that must run once across the cluster (the billing pass, S3 lifecycle) take
``cluster_lock(name)``: a session-level ``pg_try_advisory_lock`` on a connection of their own,
released when the pass ends or, if the gateway dies, when PostgreSQL sees its connection close.
A role held for as long as a gateway lives (the cluster's EC2 leader, ``gateway.cluster``) takes
``try_session_lock(url, name)``: the same kind of lock on a connection kept open, whose ``alive()`` the
holder asks now and then (a lock whose connection broke may already be another gateway's).

Crash story: nothing lives here but connections. A gateway killed mid-transaction leaves an open
transaction that PostgreSQL rolls back when the connection drops (and its advisory locks go with
it); an acknowledged write was committed (``synchronous_commit`` on, the server's default).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import sqlite3
import zlib
from decimal import Decimal
from typing import Any, AsyncIterator, Iterable, Sequence

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Loader
from psycopg.types.numeric import Int8Dumper

from storage.metadata import is_postgres_url  # noqa: F401 (named here too, as before)
from storage.space import SpaceAware, SpaceGuard
from storage.sql_dialect import to_postgres

log = logging.getLogger(__name__)

WRITERS_LOCK = 0x6E696D62   # "nimb": the writers' advisory lock (see the module docstring)


class Row(tuple):
    """A result row by position or by column name, as ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int]

    def __getitem__(self, key):   # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor):
    return _row_class(tuple(d.name for d in cursor.description or ()))


class _NumericAsNumber(Loader):
    """``numeric`` (SUM of BIGINTs) as int when whole, else float: what SQLite returns."""

    def load(self, data) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class _BoolAsInt(Int8Dumper):
    """Python booleans as 0/1 into the INTEGER (BIGINT) columns that hold them on SQLite."""

    def dump(self, obj) -> bytes:
        return b"1" if obj else b"0"


def _configure(conn) -> None:
    conn.adapters.register_loader("numeric", _NumericAsNumber)
    conn.adapters.register_dumper(bool, _BoolAsInt)


def engine_error(exc: BaseException) -> BaseException:
    """A psycopg error as the DB-API class callers catch (see the module docstring)."""
    if isinstance(exc, pg_errors.IntegrityError):
        return sqlite3.IntegrityError(str(exc).strip())
    if isinstance(exc, pg_errors.DiskFull):
        return OSError(errno.ENOSPC, str(exc).strip())
    if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.UndefinedColumn,
                        pg_errors.UndefinedFunction, pg_errors.SyntaxError)):
        return sqlite3.OperationalError(str(exc).strip())
    return exc


def _params(params: Sequence[Any] | dict) -> Sequence[Any]:
    if isinstance(params, dict):
        raise TypeError("named parameters are not supported on PostgreSQL: use ?")
    return tuple(params)


class _Cursor:
    """What a SQLite-style ``execute`` returns: rows, row count."""

    def __init__(self, rows: list, rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def fetchall(self) -> list:
        return self._rows

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def __iter__(self):
        return iter(self._rows)


class SyncReader:
    """A blocking, autocommit connection for the object store's reads on the event loop."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        try:
            cursor = self._conn.execute(to_postgres(sql), _params(params))
            rows = cursor.fetchall() if cursor.description else []
            return _Cursor(rows, cursor.rowcount)
        except psycopg.Error as exc:
            raise engine_error(exc) from exc

    def close(self) -> None:
        self._conn.close()


class Transaction:
    """The writer connection while a transaction is open (and the writers' lock held)."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self._conn = conn

    @contextlib.asynccontextmanager
    async def _statement(self):
        await self._conn.execute("SAVEPOINT s")
        try:
            yield
        except psycopg.Error as exc:
            await self._conn.execute("ROLLBACK TO SAVEPOINT s")
            raise engine_error(exc) from exc
        await self._conn.execute("RELEASE SAVEPOINT s")

    async def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        async with self._statement():
            cursor = await self._conn.execute(to_postgres(sql), _params(params))
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """No savepoint here (the group commit's writes): a failure fails the transaction, which
        its caller retries one operation at a time (``storage.objects``)."""
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        try:
            async with self._conn.cursor() as cursor:
                await cursor.executemany(to_postgres(sql), rows)
        except psycopg.Error as exc:
            raise engine_error(exc) from exc

    async def insert(self, sql: str, params: Sequence[Any] | dict = ()) -> int | None:
        """Run an INSERT; returns the new row's identity (``lastval()``), None without one."""
        async with self._statement():
            await self._conn.execute(to_postgres(sql), _params(params))
        try:
            async with self._statement():
                cursor = await self._conn.execute("SELECT lastval()")
                return (await cursor.fetchone())[0]
        except sqlite3.OperationalError:
            return None
        except psycopg.Error:
            return None

    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()):
        async with self._statement():
            cursor = await self._conn.execute(to_postgres(sql), _params(params))
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list:
        async with self._statement():
            cursor = await self._conn.execute(to_postgres(sql), _params(params))
            return list(await cursor.fetchall())


async def _connect(url: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=_row_factory,
                                                 cursor_factory=psycopg.AsyncClientCursor)
    _configure(conn)
    return conn


class PostgresDatabase(SpaceAware):
    """The metadata database on a PostgreSQL server, shared by every gateway that names it."""

    engine = "postgresql"

    def __init__(self, url: str, writer: psycopg.AsyncConnection, reader: psycopg.AsyncConnection) -> None:
        self.path = url          # what the SQLite engine calls its file: here, the server's URL
        self.url = url
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self.space: SpaceGuard | None = None
        self._released = False

    @classmethod
    async def open(cls, url: str) -> "PostgresDatabase":
        writer = await _connect(url)
        reader = await _connect(url)
        db = cls(url, writer, reader)
        await db._ensure_versions_table()
        return db

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def _ensure_versions_table(self) -> None:
        async with self.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                             " component TEXT PRIMARY KEY, version INTEGER NOT NULL)")

    from storage.db import Database as _Sqlite
    migrate = _Sqlite.migrate     # the same steps: it reads, then writes inside transaction()
    del _Sqlite

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction, serial across every gateway (the writers' lock): committed when
        the block ends, rolled back if the block or the COMMIT raises."""
        async with self._write_lock:
            self._before_write()
            try:
                # one round trip (no parameters: the simple protocol takes both statements)
                await self._writer.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITERS_LOCK})")
            except BaseException as exc:
                await asyncio.shield(self._rollback())
                error = engine_error(exc) if isinstance(exc, psycopg.Error) else exc
                raise self._storage_full(error) or error from exc
            try:
                yield Transaction(self._writer)
            except BaseException as exc:
                await asyncio.shield(self._rollback())
                raise self._storage_full(exc) or exc
            try:
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                await asyncio.shield(self._rollback())
                error = engine_error(exc) if isinstance(exc, psycopg.Error) else exc
                raise self._storage_full(error) or error from exc

    async def wait_for_writers(self) -> None:
        """SQLite's hint for the group commit; here the writers' lock is taken inside BEGIN."""

    async def run_in_transaction(self, fn, *args):
        raise NotImplementedError("run_in_transaction passes a sqlite3 connection: SQLite only")

    async def _rollback(self) -> None:
        try:
            await self._writer.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 (the original error is the one to report)
            log.exception("rollback failed")

    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()):
        try:
            cursor = await self._reader.execute(to_postgres(sql), _params(params))
            return await cursor.fetchone()
        except psycopg.Error as exc:
            raise engine_error(exc) from exc

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list:
        try:
            cursor = await self._reader.execute(to_postgres(sql), _params(params))
            return list(await cursor.fetchall())
        except psycopg.Error as exc:
            raise engine_error(exc) from exc

    def sync_reader(self) -> SyncReader:
        conn = psycopg.Connection.connect(self.url, autocommit=True, row_factory=_row_factory,
                                          cursor_factory=psycopg.ClientCursor)
        _configure(conn)
        return SyncReader(conn)

    @contextlib.asynccontextmanager
    async def cluster_lock(self, name: str) -> AsyncIterator[bool]:
        """Whether this gateway holds ``name`` across the cluster for the block (never waits)."""
        key = zlib.crc32(name.encode())
        conn = await _connect(self.url)
        try:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            held = bool((await cursor.fetchone())[0])
            yield held
        finally:
            await conn.close()     # drops the session lock with the session


class SessionLock:
    """A session advisory lock held on a connection of its own until ``release()`` (or until the
    connection, or the process, dies: PostgreSQL then drops it)."""

    def __init__(self, conn: psycopg.AsyncConnection, key: int) -> None:
        self._conn, self.key = conn, key

    async def alive(self) -> bool:
        """Whether the lock is still this session's (its connection answers and holds it)."""
        try:
            cursor = await self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objsubid = 1 AND classid::bigint = %s"
                " AND objid::bigint = %s", (self.key >> 32, self.key & 0xFFFFFFFF))
            return bool((await cursor.fetchone())[0])
        except (psycopg.Error, OSError):
            return False

    async def release(self) -> None:
        with contextlib.suppress(psycopg.Error, OSError):
            await self._conn.close()     # the lock goes with the session


async def try_session_lock(url: str, name: str) -> SessionLock | None:
    """``name``'s session advisory lock on a new connection, or None when another session holds it
    (never waits)."""
    key = zlib.crc32(name.encode())
    conn = await _connect(url)
    try:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        if (await cursor.fetchone())[0]:
            return SessionLock(conn, key)
    except BaseException:
        await conn.close()
        raise
    await conn.close()
    return None
