"""The object store's metadata: buckets, object versions, multipart uploads and their parts.

Reads go through a read-only SQLite connection of this module, used synchronously on the event
loop: a point lookup costs ~10 us, a thread hop ~100-200 us on this hardware (WAL readers never
wait for the writer). Writes go through ``Database.transaction()`` and are *group-committed*: a
single task takes the queued operations, runs consecutive batchable ones inside one transaction
(one WAL fsync for all of them) and an exclusive one alone in its own transaction.

An operation sees the current state through a ``Batch``: ``get``/``put``/``delete`` of object
versions work on an overlay over the committed rows (read after ``BEGIN IMMEDIATE``, so nothing can
commit in between, not even another process), and are written with a handful of ``executemany``
statements when the batch ends. Exclusive operations may also run their own statements on
``batch.tx``; they read through ``batch.reader`` before they write. Blobs that the commit leaves
unreferenced are unlinked after the commit; stored-bytes changes go to the usage ledger in the same
transaction, one event per bucket and batch.

Nothing here knows about HTTP; operations raise their own exceptions, which reach their caller.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import sqlite3
from typing import Any, Awaitable, Callable, Iterator

from storage import usage
from storage.blobs import BlobStore
from storage.db import Database, Schema, Transaction
from storage.object_versions import NULL_VERSION, new_vid
from storage.object_versions import SCHEMA as VERSIONS_SCHEMA

log = logging.getLogger(__name__)

SCHEMA = Schema(
    "s3",
    [
        """
        CREATE TABLE s3_buckets (
            name TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            created_us INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX s3_buckets_by_account ON s3_buckets(account_id, name);
        CREATE TABLE s3_objects (
            bucket TEXT NOT NULL REFERENCES s3_buckets(name),
            key TEXT NOT NULL,
            version_id TEXT NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            modified_us INTEGER NOT NULL,
            owner_id TEXT NOT NULL,
            parts INTEGER NOT NULL DEFAULT 0,
            checksum_algorithm TEXT,
            checksum_type TEXT,
            checksum_value TEXT,
            headers TEXT,
            blob TEXT,
            inline_id INTEGER,
            PRIMARY KEY (bucket, key)
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

OBJECT_COLUMNS = ("bucket", "key", "version_id", "size", "etag", "modified_us", "owner_id",
                  "parts", "checksum_algorithm", "checksum_type", "checksum_value", "headers",
                  "blob", "inline_id", "vid", "seq", "tags", "lock_mode", "lock_until_us",
                  "legal_hold")
VERSION_COLUMNS = OBJECT_COLUMNS + ("delete_marker",)
_OBJECT_SELECT = ", ".join(f"o.{c}" for c in OBJECT_COLUMNS) + ", d.data"
_OBJECT_FROM = "s3_objects o LEFT JOIN s3_inline d ON d.id = o.inline_id"
_VERSION_SELECT = ", ".join(f"o.{c}" for c in VERSION_COLUMNS) + ", d.data"
_VERSION_FROM = "s3_versions o LEFT JOIN s3_inline d ON d.id = o.inline_id"
_UPSERT = (
    f"INSERT INTO s3_objects ({', '.join(OBJECT_COLUMNS)}) VALUES ({', '.join('?' * len(OBJECT_COLUMNS))})"
    " ON CONFLICT(bucket, key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in OBJECT_COLUMNS[2:])
)
_VERSION_INSERT = (f"INSERT INTO s3_versions ({', '.join(VERSION_COLUMNS)}) VALUES"
                   f" ({', '.join('?' * len(VERSION_COLUMNS))})")
LIST_COLUMNS = ("key, size, etag, modified_us, owner_id, checksum_algorithm, checksum_type,"
                " headers")
VERSION_LIST_COLUMNS = ("key, seq, vid, {dm}, size, etag, modified_us, owner_id,"
                        " checksum_algorithm, checksum_type, headers")
BUCKET_COLUMNS = "name, account_id, region, created_us, versioning, object_lock, tags, lifecycle"
MAX_BATCH = 256
GATHER_ROUNDS = 2
READER_MMAP_BYTES = 256 * 1024 * 1024
SERVICE = "AmazonS3"


class Bucket:
    """A bucket row. ``versioning``: None (never enabled), 'Enabled' or 'Suspended';
    ``object_lock``, ``tags``, ``lifecycle``: JSON texts of those configurations, or None."""

    __slots__ = ("name", "account_id", "region", "created_us", "versioning", "object_lock", "tags",
                 "lifecycle")

    def __init__(self, name: str, account_id: str, region: str, created_us: int,
                 versioning: str | None = None, object_lock: str | None = None,
                 tags: str | None = None, lifecycle: str | None = None) -> None:
        self.name, self.account_id, self.region, self.created_us = name, account_id, region, created_us
        self.versioning, self.object_lock, self.tags, self.lifecycle = \
            versioning, object_lock, tags, lifecycle

    @property
    def status(self) -> str | None:
        """Versioning: None (never enabled), 'Enabled' or 'Suspended' (``versioning`` holds
        ``Status[/MFADelete]``)."""
        return self.versioning.partition("/")[0] if self.versioning else None

    def tag_dict(self) -> dict:
        return dict(json.loads(self.tags)) if self.tags else {}


class ObjectVersion:
    """One stored version: inline ``data`` (a row of ``s3_inline``), one ``blob``, or ``parts``
    (> 0) rows of blobs; or a delete marker (no bytes). See ``storage.object_versions``.

    ``part_rows`` is set on a new multipart version: (part_number, start, size, etag, checksum,
    blob) tuples written with it."""

    __slots__ = VERSION_COLUMNS + ("data", "part_rows")

    def __init__(self, bucket: str, key: str, version_id: str, size: int, etag: str,
                 modified_us: int, owner_id: str, parts: int = 0,
                 checksum_algorithm: str | None = None, checksum_type: str | None = None,
                 checksum_value: str | None = None, headers: str | None = None,
                 blob: str | None = None, data: bytes | None = None,
                 part_rows: list[tuple] | None = None, inline_id: int | None = None, *,
                 vid: str = NULL_VERSION, seq: int = 0, tags: str | None = None,
                 lock_mode: str | None = None, lock_until_us: int | None = None,
                 legal_hold: int = 0, delete_marker: int = 0) -> None:
        self.bucket, self.key, self.version_id, self.size = bucket, key, version_id, size
        self.etag, self.modified_us, self.owner_id, self.parts = etag, modified_us, owner_id, parts
        self.checksum_algorithm, self.checksum_type = checksum_algorithm, checksum_type
        self.checksum_value, self.headers, self.blob, self.data = checksum_value, headers, blob, data
        self.part_rows = part_rows
        if data is not None and inline_id is None:
            inline_id = secrets.randbits(63)
        self.inline_id = inline_id
        self.vid, self.seq, self.tags = vid, seq, tags
        self.lock_mode, self.lock_until_us, self.legal_hold = lock_mode, lock_until_us, legal_hold
        self.delete_marker = delete_marker

    @classmethod
    def from_row(cls, row: tuple, columns: tuple = OBJECT_COLUMNS) -> "ObjectVersion":
        """From ``columns`` followed by the inline data."""
        version = cls.__new__(cls)
        for name, value in zip(columns, row):
            setattr(version, name, value)
        version.data = row[len(columns)]
        version.part_rows = None
        if len(columns) == len(OBJECT_COLUMNS):
            version.delete_marker = 0
        return version

    @classmethod
    def marker(cls, bucket: str, key: str, owner_id: str, modified_us: int) -> "ObjectVersion":
        return cls(bucket, key, new_id(), 0, "", modified_us, owner_id, delete_marker=1)

    def as_row(self) -> tuple:
        return tuple(getattr(self, c) for c in OBJECT_COLUMNS)

    def as_version_row(self) -> tuple:
        return tuple(getattr(self, c) for c in VERSION_COLUMNS)

    def copy(self, **changes) -> "ObjectVersion":
        """The same version (same internal id, bytes and place) with some attributes changed."""
        other = ObjectVersion.__new__(ObjectVersion)
        for name in ObjectVersion.__slots__:
            setattr(other, name, getattr(self, name))
        for name, value in changes.items():
            setattr(other, name, value)
        return other

    def tag_list(self) -> list[tuple[str, str]]:
        return [tuple(t) for t in json.loads(self.tags)] if self.tags else []


def new_id() -> str:
    return secrets.token_hex(16)


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``, or None when there is
    none. UTF-8 byte order (SQLite's BINARY collation on TEXT) is code point order, so
    incrementing the last code point that can be incremented gives it."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


class _Op:
    __slots__ = ("fn", "exclusive", "future")

    def __init__(self, fn, exclusive: bool, future: asyncio.Future) -> None:
        self.fn, self.exclusive, self.future = fn, exclusive, future


class _Entry:
    """One key's state in a batch: the current object version (``original``: as committed) and
    the changes to its noncurrent versions and delete markers (``s3_versions``): rows ``added``
    (newest last) and committed rows ``removed`` (by internal id)."""

    __slots__ = ("original", "current", "added", "removed")

    def __init__(self, original: ObjectVersion | None) -> None:
        self.original = self.current = original
        self.added: tuple = ()
        self.removed: dict[str, ObjectVersion] = {}

    def snapshot(self) -> tuple:
        return self.current, self.added, dict(self.removed)


class Batch:
    """The state one or more write operations see and change inside one transaction."""

    def __init__(self, store: "ObjectStore", tx: Transaction, now_us: int) -> None:
        self.store = store
        self.reader = store.reader
        self.tx = tx
        self.now_us = now_us
        self._buckets: dict[str, Bucket | None] = {}
        self._objects: dict[tuple[str, str], _Entry] = {}
        self._journal: list[tuple] = []
        self._deltas: dict[str, int] = collections.defaultdict(int)
        self._created: dict[str, ObjectVersion] = {}
        self.garbage: list[str] = []

    # --- reads ---------------------------------------------------------------------------
    def bucket(self, name: str) -> Bucket | None:
        if name not in self._buckets:
            self._buckets[name] = self.store.bucket(name)
        return self._buckets[name]

    def forget_bucket(self, name: str) -> None:
        self._buckets.pop(name, None)

    def _entry(self, bucket: str, key: str) -> _Entry:
        entry = self._objects.get((bucket, key))
        if entry is None:
            entry = self._objects[(bucket, key)] = _Entry(self.store.object_meta(bucket, key))
        return entry

    def get(self, bucket: str, key: str) -> ObjectVersion | None:
        """The current version when it is an object (None: no object, or a delete marker)."""
        return self._entry(bucket, key).current

    def noncurrent(self, bucket: str, key: str, limit: int | None = None) -> list[ObjectVersion]:
        """The key's noncurrent versions and delete markers as this batch sees them, newest
        first (``limit``: at least that many when there are)."""
        entry = self._entry(bucket, key)
        want = None if limit is None else limit + len(entry.removed)
        rows = [v for v in self.store.history(bucket, key, want)
                if v.version_id not in entry.removed]
        rows.extend(entry.added)
        rows.sort(key=lambda v: v.seq, reverse=True)
        return rows if limit is None else rows[:limit]

    def latest(self, bucket: str, key: str) -> ObjectVersion | None:
        """The newest version of the key: the current object, or the newest delete marker."""
        current = self.get(bucket, key)
        if current is not None:
            return current
        rows = self.noncurrent(bucket, key, 1)
        return rows[0] if rows else None

    def find(self, bucket: str, key: str, vid: str) -> ObjectVersion | None:
        """The version (object or delete marker) with S3 version id ``vid``."""
        entry = self._entry(bucket, key)
        if entry.current is not None and entry.current.vid == vid:
            return entry.current
        for version in entry.added:
            if version.vid == vid:
                return version
        found = self.store.noncurrent_version(bucket, key, vid)
        if found is None or found.version_id in entry.removed:
            return None
        return found

    # --- writes --------------------------------------------------------------------------
    def _change(self, entry: _Entry, bucket: str, key: str) -> None:
        self._journal.append((bucket, key, entry.snapshot()))

    def _next_seq(self, bucket: str, key: str, status: str | None) -> int:
        newest = self.get(bucket, key)
        if newest is None and status is not None:
            newest = self.latest(bucket, key)
        return max(self.now_us, (newest.seq + 1) if newest is not None else 0)

    def _drop_null(self, entry: _Entry, bucket: str, key: str) -> None:
        """Suspended versioning: the key's null version (if any, noncurrent) goes away."""
        for version in entry.added:
            if version.vid == NULL_VERSION:
                entry.added = tuple(v for v in entry.added if v is not version)
                return
        found = self.store.noncurrent_version(bucket, key, NULL_VERSION)
        if found is not None and found.version_id not in entry.removed:
            entry.removed[found.version_id] = found

    def _make_current(self, entry: _Entry, version: ObjectVersion | None, status: str | None,
                      bucket: str, key: str) -> ObjectVersion | None:
        previous = entry.current
        if status == "Suspended":
            # the new version (or marker) is the null version: an older null version goes
            self._drop_null(entry, bucket, key)
        if status is not None and previous is not None and (
                status == "Enabled" or previous.vid != NULL_VERSION):
            entry.added = entry.added + (previous,)     # now noncurrent
        entry.current = version
        return previous

    def put(self, version: ObjectVersion) -> ObjectVersion | None:
        """Make ``version`` the current one of its key, with the version id the bucket's
        versioning gives it; returns the current object version it replaces (if any)."""
        bucket = self.bucket(version.bucket)
        status = bucket.status if bucket is not None else None
        entry = self._entry(version.bucket, version.key)
        self._change(entry, version.bucket, version.key)
        version.seq = self._next_seq(version.bucket, version.key, status)
        version.vid = new_vid(version.seq) if status == "Enabled" else NULL_VERSION
        self._created[version.version_id] = version
        return self._make_current(entry, version, status, version.bucket, version.key)

    def delete(self, bucket: str, key: str, owner_id: str = "") -> ObjectVersion | None:
        """A DELETE without a version id. Unversioned bucket: the object goes (returned).
        Versioned: a delete marker becomes the newest version (returned; Enabled: a new version
        id; Suspended: the null version, replacing the key's null version)."""
        row = self.bucket(bucket)
        status = row.status if row is not None else None
        entry = self._entry(bucket, key)
        if status is None:
            previous = entry.current
            if previous is not None:
                self._change(entry, bucket, key)
                entry.current = None
            return previous
        self._change(entry, bucket, key)
        marker = ObjectVersion.marker(bucket, key, owner_id, self.now_us)
        marker.seq = self._next_seq(bucket, key, status)
        marker.vid = new_vid(marker.seq) if status == "Enabled" else NULL_VERSION
        self._created[marker.version_id] = marker
        self._make_current(entry, None, status, bucket, key)
        entry.added = entry.added + (marker,)
        return marker

    def delete_version(self, bucket: str, key: str, vid: str) -> ObjectVersion | None:
        """Remove one version for good (object or delete marker); when the key is left without
        a current object, its newest remaining version becomes current if it is an object."""
        entry = self._entry(bucket, key)
        found = self.find(bucket, key, vid)
        if found is None:
            return None
        self._change(entry, bucket, key)
        if entry.current is found:
            entry.current = None
        else:
            self._remove_noncurrent(entry, found)
        if entry.current is None:
            # the newest remaining version is current now: an object moves to s3_objects
            following = self.noncurrent(bucket, key, 1)
            if following and not following[0].delete_marker:
                self._remove_noncurrent(entry, following[0])
                entry.current = following[0]
        return found

    def _remove_noncurrent(self, entry: _Entry, version: ObjectVersion) -> None:
        if any(v is version for v in entry.added):
            entry.added = tuple(v for v in entry.added if v is not version)
        else:
            entry.removed[version.version_id] = version

    def update(self, old: ObjectVersion, new: ObjectVersion) -> None:
        """Replace version ``old`` by ``new`` (``old.copy(...)``: tags, retention, legal hold)."""
        entry = self._entry(old.bucket, old.key)
        self._change(entry, old.bucket, old.key)
        if entry.current is old:
            entry.current = new
            return
        self._remove_noncurrent(entry, old)
        entry.added = entry.added + (new,)

    def add_usage(self, bucket: str, delta: int) -> None:
        """Stored bytes that changed outside object versions (parts of multipart uploads)."""
        self._deltas[bucket] += delta

    def discard_blobs(self, blob_ids: list[str]) -> None:
        """Unlink these blobs once the transaction has committed."""
        self.garbage.extend(blob_ids)

    def mark(self) -> tuple[int, int, dict]:
        return len(self._journal), len(self.garbage), dict(self._deltas)

    def undo(self, mark: tuple[int, int, dict]) -> None:
        """Forget overlay changes made since ``mark`` (by an operation that raised)."""
        journal_len, garbage_len, deltas = mark
        while len(self._journal) > journal_len:
            bucket, key, (current, added, removed) = self._journal.pop()
            entry = self._objects[(bucket, key)]
            entry.current, entry.added, entry.removed = current, added, removed
        del self.garbage[garbage_len:]
        self._deltas = collections.defaultdict(int, deltas)

    # --- end of batch --------------------------------------------------------------------
    async def flush(self) -> None:
        deletes, upserts, part_deletes, part_inserts = [], [], [], []
        inline_deletes, inline_inserts = [], []
        version_deletes, version_inserts = [], []
        kept: set[str] = set()
        for (bucket, key), entry in self._objects.items():
            if entry.original is not entry.current:
                if entry.current is None:
                    deletes.append((bucket, key))
                else:
                    upserts.append(entry.current.as_row())
            version_deletes.extend((bucket, key, v.seq) for v in entry.removed.values())
            version_inserts.extend(v.as_version_row() for v in entry.added)
            after = ([entry.current] if entry.current is not None else []) + list(entry.added)
            after_ids = {v.version_id for v in after}
            kept |= after_ids
            before = ([entry.original] if entry.original is not None else []) + \
                list(entry.removed.values())
            before_ids = {v.version_id for v in before}
            for version in before:
                if version.version_id in after_ids:
                    continue     # moved between the tables, or changed in place
                self._deltas[bucket] -= version.size
                self.garbage.extend(self.store.version_blobs(version))
                if version.parts:
                    part_deletes.append((version.version_id,))
                if version.inline_id is not None:
                    inline_deletes.append((version.inline_id,))
            for version in after:
                if version.version_id in before_ids or version.version_id not in self._created:
                    continue
                self._deltas[bucket] += version.size
                if version.inline_id is not None and version.data is not None:
                    inline_inserts.append((version.inline_id, version.data))
                if version.part_rows:
                    part_inserts.extend((version.version_id,) + r for r in version.part_rows)
        # versions made and replaced again within this batch never reach the database
        for version_id, version in self._created.items():
            if version_id not in kept:
                self.garbage.extend(self.store.version_blobs(version))
        if inline_deletes:
            await self.tx.executemany("DELETE FROM s3_inline WHERE id = ?", inline_deletes)
        if inline_inserts:
            await self.tx.executemany("INSERT INTO s3_inline (id, data) VALUES (?, ?)",
                                      inline_inserts)
        if deletes:
            await self.tx.executemany("DELETE FROM s3_objects WHERE bucket = ? AND key = ?", deletes)
        if upserts:
            await self.tx.executemany(_UPSERT, upserts)
        if version_deletes:
            await self.tx.executemany(
                "DELETE FROM s3_versions WHERE bucket = ? AND key = ? AND seq = ?", version_deletes)
        if version_inserts:
            await self.tx.executemany(_VERSION_INSERT, version_inserts)
        if part_deletes:
            await self.tx.executemany("DELETE FROM s3_object_parts WHERE version_id = ?", part_deletes)
        if part_inserts:
            await self.tx.executemany(
                "INSERT INTO s3_object_parts (version_id, part_number, start, size, etag, checksum,"
                " blob) VALUES (?, ?, ?, ?, ?, ?, ?)", part_inserts)
        batch_id = new_id()
        for bucket, delta in self._deltas.items():
            if not delta:
                continue
            row = self.bucket(bucket)
            if row is None:
                continue  # the bucket went away in this batch (all its bytes went with it)
            await record_stored_bytes(self.tx, row, f"s3:{batch_id}:{bucket}", self.now_us, delta)


async def record_stored_bytes(tx: Transaction, bucket: Bucket, dedupe_key: str, at_us: int,
                              delta: int) -> None:
    """A stored-bytes change of a bucket for the ledger, with the bucket's tags (cost
    allocation tags: Cost Explorer's GroupBy TAG and the CUR's ``resourceTags/user:`` columns)."""
    attrs: dict = {"storage_class": "STANDARD"}
    tags = bucket.tag_dict()
    if tags:
        attrs["tags"] = tags
    await usage.record_event(
        tx, dedupe_key=dedupe_key, account_id=bucket.account_id, region=bucket.region,
        service=SERVICE, kind="stored_bytes", resource_id=bucket.name, at_us=at_us,
        quantity=delta, attrs=attrs)


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

    # --- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        await self.db.migrate(SCHEMA)
        await self.db.migrate(VERSIONS_SCHEMA)
        self.reader = sqlite3.connect(self.db.path, isolation_level=None, check_same_thread=False)
        self.reader.execute("PRAGMA busy_timeout=2000")
        self.reader.execute("PRAGMA query_only=1")
        # pages come from a mapping instead of one pread each: ~40% off a point lookup here
        self.reader.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
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
        rows = self.query(
            f"SELECT {', '.join('b.' + c for c in BUCKET_COLUMNS.split(', '))}, {_OBJECT_SELECT}"
            " FROM s3_buckets b LEFT JOIN s3_objects o ON o.bucket = b.name AND o.key = ?"
            " LEFT JOIN s3_inline d ON d.id = o.inline_id WHERE b.name = ?", (key, bucket))
        if not rows:
            return None, None
        row = rows[0]
        found = Bucket(*row[:_BUCKET_WIDTH])
        rest = row[_BUCKET_WIDTH:]
        return found, (ObjectVersion.from_row(rest) if rest[0] is not None else None)

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
        """Run ``fn(batch)`` (synchronous, overlay only) in the next group commit."""
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
                if self._queue[0].exclusive:
                    ops = [self._queue.popleft()]
                else:
                    ops = []
                    while self._queue and not self._queue[0].exclusive and len(ops) < MAX_BATCH:
                        ops.append(self._queue.popleft())
                try:
                    await self._run(ops)
                except Exception as exc:  # never let the one committer die: fail these, go on
                    log.exception("object store commit failed")
                    for op in ops:
                        _settle(op.future, False, exc)
            if self._closing:
                return

    async def _run(self, ops: list[_Op]) -> None:
        outcomes: list[tuple[_Op, bool, Any]] = []
        try:
            async with self.db.transaction() as tx:
                batch = Batch(self, tx, self.clock_us())
                for op in ops:
                    if op.exclusive:
                        outcomes.append((op, True, await op.fn(batch)))
                        continue
                    mark = batch.mark()
                    try:
                        outcomes.append((op, True, op.fn(batch)))
                    except Exception as exc:  # the op's own refusal: the others go on
                        batch.undo(mark)
                        outcomes.append((op, False, exc))
                await batch.flush()
        except BaseException as exc:
            if len(ops) > 1 and isinstance(exc, Exception):
                log.warning("group commit of %d failed (%r); committing one by one", len(ops), exc)
                for op in ops:
                    await self._run([op])
                return
            for op in ops:
                _settle(op.future, False, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for op, ok, value in outcomes:
            _settle(op.future, ok, value)
        if batch.garbage:
            self.discard(batch.garbage)

    async def settled(self) -> None:
        """Wait for the blob unlinks started so far."""
        if self._unlinks:
            await asyncio.gather(*list(self._unlinks), return_exceptions=True)

    def discard(self, blob_ids: list[str]) -> None:
        """Unlink blobs off the loop, without waiting (close() waits for the stragglers)."""
        task = asyncio.get_running_loop().create_task(self.blobs.run(self.blobs.delete, list(blob_ids)))
        self._unlinks.add(task)
        task.add_done_callback(self._unlinks.discard)


def _newest_first(row: tuple) -> tuple:
    return row[0].encode("utf-8"), -row[1]


_BUCKET_WIDTH = len(BUCKET_COLUMNS.split(", "))


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
