"""The object store's metadata: buckets, object versions, multipart uploads and their parts.

Reads go through a read-only SQLite connection of this module, used synchronously on the event
loop: a point lookup costs ~10 us, a thread hop ~100-200 us on this hardware (WAL readers never
wait for the writer). Writes go through ``Database.transaction()`` and are *group-committed*: a
single task takes the queued operations, runs consecutive batchable ones inside one transaction
(one WAL fsync for all of them) and an exclusive one alone in its own transaction. On SQLite a
batch goes to the writer's thread in ONE trip (``Database.run_in_transaction``): the writers' lock
(which other ``--workers`` processes wait for), BEGIN IMMEDIATE, the operations (reading through
the writer's own connection), their statements and COMMIT, so the lock is held for database work
only, never across a wait for a busy event loop; what arrives while the trip waits for the lock
joins the batch. On PostgreSQL (and for exclusive operations) the task first waits until no other
process writes (``Database.wait_for_writers``), then runs the batch through ``transaction()``.

An operation sees the current state through a ``Batch``: ``get``/``put``/``delete`` of object
versions work on an overlay over the committed rows (read after ``BEGIN IMMEDIATE``, so nothing can
commit in between, not even another process), and are written with a handful of ``executemany``
statements when the batch ends (``storage.object_batch``; rows: ``storage.object_rows``; the
version model and its crash story: ``storage.object_versions``). Exclusive operations may also run their own statements on
``batch.tx``; they read through ``batch.reader`` before they write. Blobs that the commit leaves
unreferenced are unlinked after the commit; stored-bytes changes go to the usage ledger in the same
transaction, one event per bucket and batch.

Nothing here knows about HTTP; operations raise their own exceptions, which reach their caller.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
from typing import Any, Awaitable, Callable, Iterator

from storage.blobs import BlobStore
from storage.db import Database, Schema, WriterTransaction
from storage.object_read_cache import ReadCache
from storage.object_batch import SERVICE, Batch, record_stored_bytes  # noqa: F401
from storage.object_rows import (_OBJECT_FROM, _OBJECT_SELECT, _UPSERT,  # noqa: F401
                                 _VERSION_FROM, _VERSION_INSERT, _VERSION_SELECT, BUCKET_COLUMNS,
                                 LIST_COLUMNS, OBJECT_COLUMNS, VERSION_COLUMNS,
                                 VERSION_LIST_COLUMNS, Bucket, ObjectVersion, new_id, prefix_end)
from storage.object_versions import SCHEMA as VERSIONS_SCHEMA
from storage.s3_access import COLUMNS as ACCESS_COLUMNS
from storage.s3_access import SCHEMA as ACCESS_SCHEMA
from storage.object_versions import STORED_VERSION_COLUMNS
from storage.sealed import SCHEMA as SEALED_SCHEMA

log = logging.getLogger(__name__)

SCHEMA = Schema(
    "s3",
    [
        f"""
        CREATE TABLE s3_buckets (
            name TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            created_us INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX s3_buckets_by_account ON s3_buckets(account_id, name);
        CREATE TABLE s3_objects (
            bucket TEXT NOT NULL REFERENCES s3_buckets(name),
{STORED_VERSION_COLUMNS}            PRIMARY KEY (bucket, key)
        ) WITHOUT ROWID;
        CREATE TABLE s3_inline (
            id INTEGER PRIMARY KEY,
            data BLOB NOT NULL
        );
        CREATE TABLE s3_object_parts (
            version_id TEXT NOT NULL,
            part_number INTEGER NOT NULL,
            start INTEGER NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            checksum TEXT,
            blob TEXT NOT NULL,
            PRIMARY KEY (version_id, part_number)
        ) WITHOUT ROWID;
        CREATE TABLE s3_uploads (
            upload_id TEXT PRIMARY KEY,
            bucket TEXT NOT NULL REFERENCES s3_buckets(name),
            key TEXT NOT NULL,
            initiated_us INTEGER NOT NULL,
            owner_id TEXT NOT NULL,
            checksum_algorithm TEXT,
            checksum_type TEXT,
            headers TEXT
        ) WITHOUT ROWID;
        CREATE INDEX s3_uploads_by_key ON s3_uploads(bucket, key, upload_id);
        CREATE TABLE s3_upload_parts (
            upload_id TEXT NOT NULL,
            part_number INTEGER NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            modified_us INTEGER NOT NULL,
            checksums TEXT,
            blob TEXT NOT NULL,
            PRIMARY KEY (upload_id, part_number)
        ) WITHOUT ROWID
        """
    ],
)

MAX_BATCH = 256
GATHER_ROUNDS = 2


class _Op:
    __slots__ = ("fn", "exclusive", "future")

    def __init__(self, fn, exclusive: bool, future: asyncio.Future) -> None:
        self.fn, self.exclusive, self.future = fn, exclusive, future


class ObjectStore:
    def __init__(self, db: Database, blobs: BlobStore, clock_us: Callable[[], int]) -> None:
        self.db = db
        self.blobs = blobs
        self.clock_us = clock_us
        self.reader: sqlite3.Connection | None = None
        self._queue: collections.deque[_Op] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._unlinks: set[asyncio.Task] = set()
        self.data_key_of = None     # storage.object_files.DataKeyOf, set by the S3 service
        # SQLite: a batch of writes goes to the writer's thread in one trip (_run_on_writer)
        self._one_trip = getattr(db, "engine", "") == "sqlite"
        self._read_cache: ReadCache | None = None      # storage.object_read_cache

    # --- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        await self.db.migrate(SCHEMA)
        await self.db.migrate(VERSIONS_SCHEMA)
        await self.db.migrate(SEALED_SCHEMA)
        await self.db.migrate(ACCESS_SCHEMA)
        self.reader = self.db.sync_reader()   # SQLite: read-only, mmap; PostgreSQL: autocommit
        if self._one_trip:      # SQLite: object reads' answers kept while nothing commits
            self._read_cache = ReadCache(self.reader)
        self._task = asyncio.get_running_loop().create_task(self._commit_loop())

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task:
            await self._task
        if self._unlinks:
            await asyncio.gather(*self._unlinks, return_exceptions=True)
        if self.reader:
            self.reader.close()
            self.reader = None

    def referenced_blobs(self) -> Iterator[str]:
        """Every blob id a row points to, ascending (for ``BlobStore.collect``)."""
        cursor = self.reader.execute(
            "SELECT blob FROM s3_objects WHERE blob IS NOT NULL"
            " UNION ALL SELECT blob FROM s3_versions WHERE blob IS NOT NULL"
            " UNION ALL SELECT blob FROM s3_object_parts"
            " UNION ALL SELECT blob FROM s3_upload_parts ORDER BY 1")
        for (blob_id,) in cursor:
            yield blob_id

    # --- reads (synchronous, on the loop) -----------------------------------------------------
    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self.reader.execute(sql, params).fetchall()

    def bucket(self, name: str) -> Bucket | None:
        rows = self.query(f"SELECT {BUCKET_COLUMNS} FROM s3_buckets WHERE name = ?", (name,))
        return Bucket(*rows[0]) if rows else None

    def buckets(self, account_id: str, after: str = "", prefix: str = "",
                region: str | None = None, limit: int = 10000) -> list[Bucket]:
        sql = (f"SELECT {BUCKET_COLUMNS} FROM s3_buckets"
               " WHERE account_id = ? AND name > ? AND name >= ?")
        params: list[Any] = [account_id, after, prefix]
        end = prefix_end(prefix) if prefix else None
        if end is not None:
            sql += " AND name < ?"
            params.append(end)
        if region:
            sql += " AND region = ?"
            params.append(region)
        rows = self.query(sql + " ORDER BY name LIMIT ?", params + [limit])
        return [Bucket(*r) for r in rows]

    def object_meta(self, bucket: str, key: str) -> ObjectVersion | None:
        """The version without its inline bytes (what a write needs to know of the one it
        replaces)."""
        rows = self.query(f"SELECT {', '.join(OBJECT_COLUMNS)}, NULL FROM s3_objects"
                          " WHERE bucket = ? AND key = ?", (bucket, key))
        return ObjectVersion.from_row(rows[0]) if rows else None

    def object(self, bucket: str, key: str) -> ObjectVersion | None:
        rows = self.query(f"SELECT {_OBJECT_SELECT} FROM {_OBJECT_FROM}"
                          " WHERE o.bucket = ? AND o.key = ?", (bucket, key))
        return ObjectVersion.from_row(rows[0]) if rows else None

    def bucket_and_object(self, bucket: str, key: str) -> tuple[Bucket | None, ObjectVersion | None]:
        """One query for the two lookups of every object read."""
        rows = self.reader.execute(_BUCKET_AND_OBJECT, (key, bucket)).fetchall()
        if not rows:
            return None, None
        row = rows[0]
        found = Bucket(*row[:_BUCKET_WIDTH])
        rest = row[_BUCKET_WIDTH:]
        return found, (ObjectVersion.from_row(rest) if rest[0] is not None else None)

    def bucket_object_access(self, bucket: str, key: str
                             ) -> tuple[Bucket | None, ObjectVersion | None, tuple]:
        """``bucket_and_object`` and the bucket's access settings row (``storage.s3_access``
        COLUMNS, all None without a row), in one query: what every object read needs (the
        answer is kept while the database does not change: ``storage.object_read_cache``)."""
        cache = self._read_cache
        if cache is not None:
            answers = cache.current()
            answer = answers.get((bucket, key))
            if answer is not None:
                return answer
        rows = self.reader.execute(_BUCKET_OBJECT_ACCESS, (key, bucket)).fetchall()
        if not rows:
            return None, None, (None, None, None, None)
        row = rows[0]
        found = Bucket(*row[:_BUCKET_WIDTH])
        rest = row[_BUCKET_WIDTH:-_ACCESS_WIDTH]
        version = ObjectVersion.from_row(rest) if rest[0] is not None else None
        answer = (found, version, tuple(row[-_ACCESS_WIDTH:]))
        if cache is not None:
            data = version.data if version is not None else None
            cache.keep(answers, bucket, key, answer, len(data) if data is not None else 0)
        return answer

    def bucket_write_settings(self, bucket: str) -> tuple[Bucket | None, tuple, str | None]:
        """The bucket, its access settings row (``storage.s3_access`` COLUMNS) and its default
        encryption configuration (JSON text, or None), in one query: what every object write
        needs before it reads the body."""
        rows = self.reader.execute(_BUCKET_WRITE_SETTINGS, (bucket,)).fetchall()
        if not rows:
            return None, (None, None, None, None), None
        row = rows[0]
        return Bucket(*row[:_BUCKET_WIDTH]), tuple(row[_BUCKET_WIDTH:-1]), row[-1]

    # --- versions (storage.object_versions) ---------------------------------------------------
    def history(self, bucket: str, key: str, limit: int | None = None) -> list[ObjectVersion]:
        """The key's noncurrent versions and delete markers, newest first, without inline bytes."""
        sql = (f"SELECT {', '.join(VERSION_COLUMNS)}, NULL FROM s3_versions"
               " WHERE bucket = ? AND key = ? ORDER BY seq DESC")
        params: list[Any] = [bucket, key]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [ObjectVersion.from_row(r, VERSION_COLUMNS) for r in self.query(sql, params)]

    def noncurrent_version(self, bucket: str, key: str, vid: str, data: bool = False
                           ) -> ObjectVersion | None:
        """A noncurrent version or delete marker by S3 version id (with its inline bytes when
        ``data``)."""
        if data:
            rows = self.query(f"SELECT {_VERSION_SELECT} FROM {_VERSION_FROM}"
                              " WHERE o.bucket = ? AND o.key = ? AND o.vid = ?", (bucket, key, vid))
        else:
            rows = self.query(f"SELECT {', '.join(VERSION_COLUMNS)}, NULL FROM s3_versions"
                              " WHERE bucket = ? AND key = ? AND vid = ?", (bucket, key, vid))
        return ObjectVersion.from_row(rows[0], VERSION_COLUMNS) if rows else None

    def version(self, bucket: str, key: str, vid: str,
                current: ObjectVersion | None = None) -> ObjectVersion | None:
        """Any version (object or delete marker) by S3 version id, with its inline bytes;
        ``current``: the key's current version when the caller has it already."""
        if current is None:
            current = self.object(bucket, key)
        if current is not None and current.vid == vid:
            return current
        return self.noncurrent_version(bucket, key, vid, data=True)

    def latest_marker(self, bucket: str, key: str) -> ObjectVersion | None:
        """The delete marker that is the key's newest version, if there is one (call when the
        key has no current object)."""
        rows = self.history(bucket, key, 1)
        return rows[0] if rows and rows[0].delete_marker else None

    def scan_versions(self, bucket: str, start: str, inclusive: bool, after_seq: int | None,
                      end: str | None, limit: int) -> list[tuple]:
        """Rows (key, seq, vid, delete_marker, size, etag, modified_us, owner_id,
        checksum_algorithm, checksum_type, headers) of every version from key ``start``
        (inclusive or not; ``after_seq``: the versions of ``start`` older than that come first)
        up to key ``end`` (excluded), ordered by key and newest first."""
        def bounds(table_has_history: bool) -> tuple[str, list]:
            if after_seq is not None and table_has_history:
                sql, params = "bucket = ? AND (key > ? OR (key = ? AND seq < ?))", \
                    [bucket, start, start, after_seq]
            else:
                sql = f"bucket = ? AND key {'>=' if inclusive and after_seq is None else '>'} ?"
                params = [bucket, start]
            if end is not None:
                sql += " AND key < ?"
                params.append(end)
            return sql, params
        sql, params = bounds(False)
        current = self.query(f"SELECT {VERSION_LIST_COLUMNS.format(dm='0')} FROM s3_objects"
                             f" WHERE {sql} ORDER BY key LIMIT ?", params + [limit])
        sql, params = bounds(True)
        older = self.query(f"SELECT {VERSION_LIST_COLUMNS.format(dm='delete_marker')} FROM"
                           f" s3_versions WHERE {sql} ORDER BY key, seq DESC LIMIT ?",
                           params + [limit])
        if not older:
            return current
        if not current:
            return older
        merged = sorted(current + older, key=_newest_first)
        return merged[:limit]

    def object_parts(self, version_id: str, after: int = 0, limit: int = 100000) -> list[tuple]:
        """(part_number, start, size, etag, checksum, blob) of a multipart version."""
        return self.query(
            "SELECT part_number, start, size, etag, checksum, blob FROM s3_object_parts"
            " WHERE version_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
            (version_id, after, limit))

    def version_blobs(self, version: ObjectVersion) -> list[str]:
        if version.parts:
            if version.part_rows is not None:
                return [r[5] for r in version.part_rows]
            return [r[0] for r in self.query(
                "SELECT blob FROM s3_object_parts WHERE version_id = ?", (version.version_id,))]
        return [version.blob] if version.blob else []

    def scan_objects(self, bucket: str, start: str, inclusive: bool, end: str | None,
                     limit: int) -> list[tuple]:
        """Rows (LIST_COLUMNS) of keys from ``start`` up to (excluding) ``end``, in byte order."""
        sql = (f"SELECT {LIST_COLUMNS} FROM s3_objects WHERE bucket = ? AND key "
               f"{'>=' if inclusive else '>'} ?")
        params: list[Any] = [bucket, start]
        if end is not None:
            sql += " AND key < ?"
            params.append(end)
        return self.query(sql + " ORDER BY key LIMIT ?", params + [limit])

    def bucket_has_objects(self, bucket: str) -> bool:
        """Any version at all (current, noncurrent or a delete marker)."""
        return bool(self.query("SELECT 1 FROM s3_objects WHERE bucket = ? LIMIT 1", (bucket,))
                    or self.query("SELECT 1 FROM s3_versions WHERE bucket = ? LIMIT 1", (bucket,)))

    def upload(self, upload_id: str) -> tuple | None:
        """(upload_id, bucket, key, initiated_us, owner_id, checksum_algorithm, checksum_type,
        headers)"""
        rows = self.query("SELECT upload_id, bucket, key, initiated_us, owner_id, checksum_algorithm,"
                          " checksum_type, headers FROM s3_uploads WHERE upload_id = ?", (upload_id,))
        return rows[0] if rows else None

    def scan_uploads(self, bucket: str, start: str, start_upload: str | None, end: str | None,
                     limit: int) -> list[tuple]:
        """Uploads (key, upload_id, initiated_us, owner_id, checksum_algorithm, checksum_type)
        after (start, start_upload) -- or from key ``start`` inclusive when start_upload is None --
        up to key ``end`` (excluded), ordered by key then upload id."""
        if start_upload is None:
            sql, params = "bucket = ? AND key >= ?", [bucket, start]
        else:
            sql, params = ("bucket = ? AND (key > ? OR (key = ? AND upload_id > ?))",
                           [bucket, start, start, start_upload])
        if end is not None:
            sql += " AND key < ?"
            params.append(end)
        return self.query(
            "SELECT key, upload_id, initiated_us, owner_id, checksum_algorithm, checksum_type"
            f" FROM s3_uploads WHERE {sql} ORDER BY key, upload_id LIMIT ?", params + [limit])

    def upload_parts(self, upload_id: str, after: int = 0, limit: int = 100000) -> list[tuple]:
        """(part_number, size, etag, modified_us, checksums, blob), ascending."""
        return self.query(
            "SELECT part_number, size, etag, modified_us, checksums, blob FROM s3_upload_parts"
            " WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
            (upload_id, after, limit))

    # --- writes ------------------------------------------------------------------------------
    def write(self, fn: Callable[[Batch], Any]) -> Awaitable[Any]:
        """Run ``fn(batch)`` (synchronous, overlay only) in the next group commit. On SQLite it
        runs on the writer's thread: it must use nothing but the batch and its own values."""
        return self._submit(fn, False)

    def write_alone(self, fn: Callable[[Batch], Awaitable[Any]]) -> Awaitable[Any]:
        """Run ``await fn(batch)`` in a transaction of its own; it may use ``batch.tx``."""
        return self._submit(fn, True)

    def _submit(self, fn, exclusive: bool) -> asyncio.Future:
        if self._closing:
            raise RuntimeError("object store is closed")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(fn, exclusive, future))
        self._wake.set()
        return future

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # let the handlers that are ready to submit do so: bigger batches, fewer fsyncs
            for _ in range(GATHER_ROUNDS):
                await asyncio.sleep(0)
            while self._queue:
                if self._one_trip and not self._queue[0].exclusive:
                    await self._run_on_writer(self._take(), more=True)
                    continue
                # other processes (--workers) commit meanwhile: their time gathers a bigger batch
                await self.db.wait_for_writers()
                ops = self._take()
                try:
                    await self._run(ops)
                except Exception as exc:  # never let the one committer die: fail these, go on
                    log.exception("object store commit failed")
                    for op in ops:
                        _settle(op.future, False, exc)
            if self._closing:
                return

    def _take(self, ops: list[_Op] | None = None) -> list[_Op]:
        """The next batch from the queue: one exclusive operation, or up to ``MAX_BATCH``
        batchable ones (added to ``ops``)."""
        ops = [] if ops is None else ops
        if not ops and self._queue[0].exclusive:
            ops.append(self._queue.popleft())
            return ops
        while self._queue and not self._queue[0].exclusive and len(ops) < MAX_BATCH:
            ops.append(self._queue.popleft())
        return ops

    async def _run_on_writer(self, ops: list[_Op], more: bool = False) -> None:
        """SQLite: a batch of ``write`` operations in ONE trip to the writer's thread (the
        writers' lock, BEGIN IMMEDIATE, the operations, their statements, COMMIT, unlock), so
        that the lock, which other processes wait for, is held for the database work only and
        never across a wait for the event loop. ``more``: operations that arrive while this
        process waits for the lock join the batch."""
        outcomes: list[tuple[_Op, bool, Any]] = []
        try:
            garbage = await self.db.run_in_transaction(self._batch_on_writer, ops, more, outcomes)
        except BaseException as exc:
            await self._batch_failed(ops, exc, self._run_on_writer)
            return
        for op, ok, value in outcomes:
            _settle(op.future, ok, value)
        if garbage:
            self.discard(garbage)

    def _batch_on_writer(self, conn: sqlite3.Connection, ops: list[_Op], more: bool,
                         outcomes: list) -> list[str]:
        """On the writer's thread, inside the transaction: the operations (each one's refusal
        undone alone) and their writes; returns the blobs to unlink after the commit. Only the
        batch is touched here (``write``'s contract); the futures are settled on the loop."""
        if more and self._queue:   # the loop only appends meanwhile: a deque's ends are atomic
            self._take(ops)
        outcomes.clear()           # a second run (storage.db: the disk was full) starts afresh
        batch = Batch(self, WriterTransaction(conn), self.clock_us(), reads=_WriterReads(conn))
        for op in ops:
            _apply(batch, op, outcomes)
        batch.flush_now()
        return batch.garbage

    async def _run(self, ops: list[_Op]) -> None:
        outcomes: list[tuple[_Op, bool, Any]] = []
        try:
            async with self.db.transaction() as tx:
                batch = Batch(self, tx, self.clock_us())
                for op in ops:
                    if op.exclusive:
                        outcomes.append((op, True, await op.fn(batch)))
                    else:
                        _apply(batch, op, outcomes)
                await batch.flush()
        except BaseException as exc:
            await self._batch_failed(ops, exc, self._run)
            return
        for op, ok, value in outcomes:
            _settle(op.future, ok, value)
        if batch.garbage:
            self.discard(batch.garbage)

    async def _batch_failed(self, ops: list[_Op], exc: BaseException, run) -> None:
        """A batch's transaction failed as a whole: its operations go again one by one through
        ``run`` (one of them may be the cause; the others then commit); a lone operation gets
        the error. A cancellation settles every future and goes on up."""
        if len(ops) > 1 and isinstance(exc, Exception):
            log.warning("group commit of %d failed (%r); committing one by one", len(ops), exc)
            for op in ops:
                await run([op])
            return
        for op in ops:
            _settle(op.future, False, exc)
        if not isinstance(exc, Exception):
            raise exc

    async def settled(self) -> None:
        """Wait for the blob unlinks started so far."""
        if self._unlinks:
            await asyncio.gather(*list(self._unlinks), return_exceptions=True)

    def discard(self, blob_ids: list[str]) -> None:
        """Unlink blobs off the loop, without waiting (close() waits for the stragglers)."""
        task = asyncio.get_running_loop().create_task(self.blobs.run(self.blobs.delete, list(blob_ids)))
        self._unlinks.add(task)
        task.add_done_callback(self._unlinks.discard)


class _WriterReads:
    """The reads a batch makes (``ObjectStore``'s own queries), through the writer's connection
    on its thread: inside the batch's transaction, with plain tuples as rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._cursor = conn.cursor()
        self._cursor.row_factory = None

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self._cursor.execute(sql, params).fetchall()

    bucket = ObjectStore.bucket
    object_meta = ObjectStore.object_meta
    history = ObjectStore.history
    noncurrent_version = ObjectStore.noncurrent_version
    version_blobs = ObjectStore.version_blobs


def _newest_first(row: tuple) -> tuple:
    return row[0].encode("utf-8"), -row[1]


_BUCKET_WIDTH = len(BUCKET_COLUMNS.split(", "))
_BUCKET_AND_OBJECT = (
    f"SELECT {', '.join('b.' + c for c in BUCKET_COLUMNS.split(', '))}, {_OBJECT_SELECT}"
    " FROM s3_buckets b LEFT JOIN s3_objects o ON o.bucket = b.name AND o.key = ?"
    " LEFT JOIN s3_inline d ON d.id = o.inline_id WHERE b.name = ?")
_ACCESS_WIDTH = len(ACCESS_COLUMNS)
_BUCKET_OBJECT_ACCESS = (
    f"SELECT {', '.join('b.' + c for c in BUCKET_COLUMNS.split(', '))}, {_OBJECT_SELECT},"
    f" {', '.join('a.' + c for c in ACCESS_COLUMNS)}"
    " FROM s3_buckets b LEFT JOIN s3_objects o ON o.bucket = b.name AND o.key = ?"
    " LEFT JOIN s3_inline d ON d.id = o.inline_id"
    " LEFT JOIN s3_bucket_access a ON a.bucket = b.name WHERE b.name = ?")

_BUCKET_WRITE_SETTINGS = (
    f"SELECT {', '.join('b.' + c for c in BUCKET_COLUMNS.split(', '))},"
    f" {', '.join('a.' + c for c in ACCESS_COLUMNS)}, e.config"
    " FROM s3_buckets b LEFT JOIN s3_bucket_access a ON a.bucket = b.name"
    " LEFT JOIN s3_bucket_encryption e ON e.bucket = b.name WHERE b.name = ?")


def _apply(batch: "Batch", op: "_Op", outcomes: list) -> None:
    """One operation of a batch, its outcome appended; its own refusal is undone alone (the
    batch's other operations go on)."""
    mark = batch.mark()
    try:
        outcomes.append((op, True, op.fn(batch)))
    except Exception as exc:
        batch.undo(mark)
        outcomes.append((op, False, exc))


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
