"""The lifecycle runner: executes the buckets' lifecycle rules in the server, once a day.

``lifecycle_runner`` (a ``storage.periodic_pass.PeriodicPass``) is started with the S3 state (``s3_api.service``) and stopped before the store
closes. Each pass (every ``day`` seconds: 86,400 unless ``s3_lifecycle_day_seconds`` shortens it,
as other S3 servers let tests do) runs only in the process holding ``<data_dir>/s3-lifecycle.lock``
(with several workers over one data directory, one of them is the leader; another takes over at
its next pass when the leader dies), and in one gateway of a cluster. A pass, per bucket with rules, per enabled rule:

- Expiration (Days, Date): current objects whose time has come are deleted as a DELETE without a
  version id deletes (unversioned: gone; versioned: a delete marker on top);
- ExpiredObjectDeleteMarker: a delete marker that is a key's only version is removed (by an
  Expiration with Days too, once the marker is that many days old);
- NoncurrentVersionExpiration: noncurrent versions noncurrent for NoncurrentDays (since their
  successor was written), beyond the NewerNoncurrentVersions newest, are removed (not while an
  object lock protects them);
- AbortIncompleteMultipartUpload: uploads older than DaysAfterInitiation are aborted.

Crash story: every deletion goes through the object store's group commit like a client's DELETE
(usage events in the same transaction, blobs unlinked after the commit, start-up collects
orphans), in chunks of at most ``CHUNK`` keys, each re-checked inside its transaction (the version
evaluated must still be the one there). A crash mid-pass loses nothing; the next pass finds what
is left to do. Expiring is metered (stored bytes drop in the ledger) and logged.
"""
from __future__ import annotations

import asyncio
import logging

from s3_api import lifecycle
from s3_api.object_lock import is_locked
from storage.objects import BUCKET_COLUMNS, Batch, Bucket, ObjectVersion, prefix_end
from storage.periodic_pass import PeriodicPass

log = logging.getLogger("nimbo.s3.lifecycle")
CHUNK = 256
PAGE = 1000


def _range(prefix: str) -> tuple[str, list]:
    end = prefix_end(prefix) if prefix else None
    return ("key >= ?" + (" AND key < ?" if end is not None else ""),
            [prefix] + ([end] if end is not None else []))


class Pass:
    """One pass over every bucket with rules, at ``now_us``."""

    def __init__(self, state, now_us: int) -> None:
        self.state = state
        self.store = state.store
        self.now = now_us
        self.day_us = state.day_us
        self.counts = {"expired": 0, "markers": 0, "noncurrent": 0, "uploads": 0}

    async def run(self) -> dict:
        rows = self.store.query(f"SELECT {BUCKET_COLUMNS} FROM s3_buckets"
                                " WHERE lifecycle IS NOT NULL ORDER BY name")
        for row in rows:
            bucket = Bucket(*row)
            for rule in lifecycle.rules_of(bucket):
                if rule["status"] != "Enabled":
                    continue
                if "days" in rule or "date" in rule:
                    await self._expire_current(bucket, rule)
                if rule.get("expired_marker") or "days" in rule:
                    await self._expire_markers(bucket, rule)
                if "noncurrent" in rule:
                    await self._expire_noncurrent(bucket, rule)
                if "abort_days" in rule:
                    await self._abort_uploads(bucket, rule)
        if any(self.counts.values()):
            log.info("lifecycle pass: %(expired)d objects expired, %(markers)d delete markers"
                     " removed, %(noncurrent)d noncurrent versions removed, %(uploads)d uploads"
                     " aborted", self.counts)
        return self.counts

    # --- current objects ------------------------------------------------------------------
    def _due(self, rule: dict, written_us: int, days: int | None = None) -> bool:
        if days is None and "date" in rule:
            return lifecycle.date_us(rule["date"]) <= self.now
        return lifecycle.midnight_after(written_us, days if days is not None else rule["days"],
                                        self.day_us) <= self.now

    async def _expire_current(self, bucket: Bucket, rule: dict) -> None:
        where, params = _range(rule["filter"]["prefix"])
        after, due = None, []
        while True:
            sql = (f"SELECT key, version_id, size, modified_us, tags FROM s3_objects"
                   f" WHERE bucket = ? AND {where}")
            args = [bucket.name, *params]
            if after is not None:
                sql += " AND key > ?"
                args.append(after)
            rows = self.store.query(sql + " ORDER BY key LIMIT ?", args + [PAGE])
            for key, version_id, size, modified_us, tags in rows:
                probe = ObjectVersion(bucket.name, key, version_id, size, "", modified_us, "",
                                      tags=tags)
                if lifecycle.matches(rule, key, size, probe.tag_list()) and \
                        self._due(rule, modified_us):
                    due.append((key, version_id))
            if len(rows) < PAGE:
                break
            after = rows[-1][0]
            await asyncio.sleep(0)      # a page at a time: requests go on between pages
        for start in range(0, len(due), CHUNK):
            chunk = due[start:start + CHUNK]

            def expire(batch: Batch, chunk=chunk) -> int:
                done = 0
                for key, version_id in chunk:
                    current = batch.get(bucket.name, key)
                    if current is None or current.version_id != version_id:
                        continue        # changed since it was evaluated: the next pass decides
                    batch.delete(bucket.name, key, bucket.account_id)
                    done += 1
                return done

            self.counts["expired"] += await self.store.write(expire)

    # --- delete markers ---------------------------------------------------------------------
    async def _expire_markers(self, bucket: Bucket, rule: dict) -> None:
        where, params = _range(rule["filter"]["prefix"])
        rows = self.store.query(
            f"SELECT v.key, v.vid, v.modified_us FROM s3_versions v WHERE v.bucket = ?"
            " AND v.delete_marker = 1"
            f" AND {where.replace('key', 'v.key')}"
            " AND NOT EXISTS (SELECT 1 FROM s3_objects o WHERE o.bucket = v.bucket AND o.key = v.key)"
            " AND (SELECT COUNT(*) FROM s3_versions w WHERE w.bucket = v.bucket AND w.key = v.key) = 1",
            [bucket.name, *params])
        if not rule.get("expired_marker"):
            # an Expiration with Days removes such markers once they are that old (S3's rule)
            rows = [r for r in rows if self._due(rule, r[2])]
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]

            def expire(batch: Batch, chunk=chunk) -> int:
                done = 0
                for key, vid, _ in chunk:
                    versions = batch.noncurrent(bucket.name, key, 2)
                    if batch.get(bucket.name, key) is not None or len(versions) != 1 or \
                            versions[0].vid != vid or not versions[0].delete_marker:
                        continue
                    batch.delete_version(bucket.name, key, vid)
                    done += 1
                return done

            self.counts["markers"] += await self.store.write(expire)

    # --- noncurrent versions ----------------------------------------------------------------
    async def _expire_noncurrent(self, bucket: Bucket, rule: dict) -> None:
        where, params = _range(rule["filter"]["prefix"])
        keys = [r[0] for r in self.store.query(
            f"SELECT DISTINCT key FROM s3_versions WHERE bucket = ? AND {where} ORDER BY key",
            [bucket.name, *params])]
        days = rule["noncurrent"]["days"]
        keep = rule["noncurrent"].get("newer", 0)
        due: list[tuple[str, str]] = []
        for number, key in enumerate(keys):
            if number % 100 == 99:
                await asyncio.sleep(0)
            current = self.store.object_meta(bucket.name, key)
            newer = ([current] if current is not None else []) + self.store.history(bucket.name, key)
            kept = 0
            for successor, version in zip(newer, newer[1:]):
                if version.delete_marker:
                    continue
                kept += 1
                if kept <= keep:
                    continue
                if not lifecycle.matches(rule, key, version.size, version.tag_list()):
                    continue
                if self._due(rule, successor.modified_us, days) and not is_locked(version, self.now):
                    due.append((key, version.vid))
        for start in range(0, len(due), CHUNK):
            chunk = due[start:start + CHUNK]

            def expire(batch: Batch, chunk=chunk) -> int:
                done = 0
                for key, vid in chunk:
                    found = batch.find(bucket.name, key, vid)
                    if found is None or found is batch.get(bucket.name, key) or \
                            is_locked(found, self.now):
                        continue
                    batch.delete_version(bucket.name, key, vid)
                    done += 1
                return done

            self.counts["noncurrent"] += await self.store.write(expire)

    # --- multipart uploads ------------------------------------------------------------------
    async def _abort_uploads(self, bucket: Bucket, rule: dict) -> None:
        where, params = _range(rule["filter"]["prefix"])
        rows = self.store.query(f"SELECT upload_id, initiated_us FROM s3_uploads WHERE bucket = ?"
                                f" AND {where}", [bucket.name, *params])
        for upload_id, initiated_us in rows:
            if not self._due(rule, initiated_us, rule["abort_days"]):
                continue
            store = self.store

            async def abort(batch: Batch, upload_id=upload_id) -> int:
                if store.upload(upload_id) is None:
                    return 0
                parts = store.upload_parts(upload_id)
                batch.add_usage(bucket.name, -sum(p[1] for p in parts))
                batch.discard_blobs([p[5] for p in parts])
                await batch.tx.execute("DELETE FROM s3_upload_parts WHERE upload_id = ?", (upload_id,))
                await batch.tx.execute("DELETE FROM s3_uploads WHERE upload_id = ?", (upload_id,))
                return 1

            self.counts["uploads"] += await store.write_alone(abort)


async def run_lifecycle(state, now_us: int | None = None) -> dict:
    """One lifecycle pass now (the server's clock unless ``now_us``); the counts of what it did."""
    return await Pass(state, state.store.clock_us() if now_us is None else now_us).run()


def lifecycle_runner(state, lock_path: str, interval: float) -> PeriodicPass:
    """The periodic task: a pass every ``interval`` seconds, once per data directory and cluster."""
    return PeriodicPass("s3-lifecycle", lock_path, interval, lambda: run_lifecycle(state),
                        state.store.db)
