"""The batch: what one group commit of the object store sees and changes (``storage.objects``).

An operation sees the current state through a ``Batch``: the current object version of a key and
the changes to its noncurrent versions and delete markers work on an overlay over the committed
rows (read after ``BEGIN IMMEDIATE``, so nothing can commit in between, not even another process),
and are written with a handful of ``executemany`` statements when the batch ends (``flush``),
with the stored-bytes usage events, in the same transaction. The versioning rules (which version
a PUT or a DELETE makes, the null version, promotion) are applied here, from the bucket's
versioning status; their crash story is ``storage.object_versions``'s.
"""
from __future__ import annotations

import asyncio
import collections

from storage import s3_access, usage
from storage.db import Transaction, run_now
from storage.object_rows import (_UPSERT, _VERSION_INSERT, Bucket, ObjectVersion, new_id)
from storage.object_versions import NULL_VERSION, new_vid

SERVICE = "AmazonS3"


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

    def __init__(self, store: "ObjectStore", tx: Transaction, now_us: int, reads=None) -> None:
        self.store = store
        self.reader = store.reader
        # where the batch reads committed rows: the store's reader on the event loop, or (a batch
        # run on the writer's thread) the writer's own connection, inside the transaction
        self.reads = reads if reads is not None else store
        self.tx = tx
        self.now_us = now_us
        self._buckets: dict[str, Bucket | None] = {}
        self._objects: dict[tuple[str, str], _Entry] = {}
        self._journal: list[tuple] = []
        self._deltas: dict[str, int] = collections.defaultdict(int)
        self._created: dict[str, ObjectVersion] = {}
        self.garbage: list[str] = []
        self.acls: list[tuple[str, str | None]] = []   # object ACLs set (storage.s3_access)

    # --- reads ---------------------------------------------------------------------------
    def bucket(self, name: str) -> Bucket | None:
        if name not in self._buckets:
            self._buckets[name] = self.reads.bucket(name)
        return self._buckets[name]

    def forget_bucket(self, name: str) -> None:
        self._buckets.pop(name, None)

    def _entry(self, bucket: str, key: str) -> _Entry:
        entry = self._objects.get((bucket, key))
        if entry is None:
            entry = self._objects[(bucket, key)] = _Entry(self.reads.object_meta(bucket, key))
        return entry

    def get(self, bucket: str, key: str) -> ObjectVersion | None:
        """The current version when it is an object (None: no object, or a delete marker)."""
        return self._entry(bucket, key).current

    def noncurrent(self, bucket: str, key: str, limit: int | None = None) -> list[ObjectVersion]:
        """The key's noncurrent versions and delete markers as this batch sees them, newest
        first (``limit``: at least that many when there are)."""
        entry = self._entry(bucket, key)
        want = None if limit is None else limit + len(entry.removed)
        rows = [v for v in self.reads.history(bucket, key, want)
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
        found = self.reads.noncurrent_version(bucket, key, vid)
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
        found = self.reads.noncurrent_version(bucket, key, NULL_VERSION)
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

    def set_acl(self, version_id: str, acl: str | None) -> None:
        """Give a version (made or found in this batch) its ACL (None: the default), written
        with the version rows."""
        self.acls.append((version_id, acl))

    def mark(self) -> tuple[int, int, dict, int]:
        return len(self._journal), len(self.garbage), dict(self._deltas), len(self.acls)

    def undo(self, mark: tuple[int, int, dict, int]) -> None:
        """Forget overlay changes made since ``mark`` (by an operation that raised)."""
        journal_len, garbage_len, deltas, acls_len = mark
        del self.acls[acls_len:]
        while len(self._journal) > journal_len:
            bucket, key, (current, added, removed) = self._journal.pop()
            entry = self._objects[(bucket, key)]
            entry.current, entry.added, entry.removed = current, added, removed
        del self.garbage[garbage_len:]
        self._deltas = collections.defaultdict(int, deltas)

    # --- end of batch --------------------------------------------------------------------
    async def flush(self) -> None:
        """Write the batch's changes through ``tx`` (its tables' statements side by side)."""
        await _all(self._writes())

    def flush_now(self) -> None:
        """``flush`` on the writer's thread (``tx`` a ``storage.db.WriterTransaction``): the
        statements one after the other, none left unstarted when one fails."""
        chains = self._writes()
        try:
            while chains:
                run_now(chains.pop(0))
        finally:
            for chain in chains:
                chain.close()

    def _writes(self) -> list:
        """The coroutines that write the batch's changes, one chain of statements per table."""
        deletes, upserts, part_deletes, part_inserts = [], [], [], []
        inline_deletes, inline_inserts = [], []
        version_deletes, version_inserts = [], []
        kept: set[str] = set()
        gone: list[str] = []
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
                gone.append(version.version_id)
                self._deltas[bucket] -= version.size
                self.garbage.extend(self.reads.version_blobs(version))
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
                self.garbage.extend(self.reads.version_blobs(version))
                gone.append(version_id)
        tx = self.tx
        chains = []     # each table's statements in order; the tables' chains side by side
        if inline_deletes or inline_inserts:
            chains.append(_statements(tx, ("DELETE FROM s3_inline WHERE id = ?", inline_deletes),
                                      ("INSERT INTO s3_inline (id, data) VALUES (?, ?)", inline_inserts)))
        if deletes or upserts:
            chains.append(_statements(tx, ("DELETE FROM s3_objects WHERE bucket = ? AND key = ?", deletes),
                                      (_UPSERT, upserts)))
        if version_deletes or version_inserts:
            chains.append(_statements(
                tx, ("DELETE FROM s3_versions WHERE bucket = ? AND key = ? AND seq = ?", version_deletes),
                (_VERSION_INSERT, version_inserts)))
        if part_deletes or part_inserts:
            chains.append(_statements(
                tx, ("DELETE FROM s3_object_parts WHERE version_id = ?", part_deletes),
                ("INSERT INTO s3_object_parts (version_id, part_number, start, size, etag, checksum,"
                 " blob) VALUES (?, ?, ?, ?, ?, ?, ?)", part_inserts)))
        if self.acls or gone:
            chains.append(s3_access.flush_object_acls(tx, self.acls, gone))
        batch_id = new_id()
        for bucket, delta in self._deltas.items():
            if not delta:
                continue
            row = self.bucket(bucket)
            if row is None:
                continue  # the bucket went away in this batch (all its bytes went with it)
            chains.append(record_stored_bytes(tx, row, f"s3:{batch_id}:{bucket}", self.now_us, delta))
        return chains


async def _statements(tx: Transaction, *steps: tuple[str, list]) -> None:
    for sql, rows in steps:
        if rows:
            await tx.executemany(sql, rows)


async def _all(chains: list) -> None:
    """Run the chains of statements side by side, and return once every one has ended.

    The writer's connection runs its calls one at a time in the order they arrive, so the chains'
    statements follow each other on its thread without a trip through the event loop between
    them: a batch's writes take one or two wake-ups of the loop instead of one per statement,
    and the writers' lock (held from BEGIN to COMMIT, across processes) is held that much less
    (4 KiB PUTs with two workers: ~2.5-4.6 ms a batch, most of it waiting for a busy loop to
    come round). Every chain ends before a failure is raised, so no statement of this batch can
    reach the connection after the rollback that the failure causes."""
    if len(chains) == 1:
        await chains[0]
        return
    outcomes = await asyncio.gather(*chains, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


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
