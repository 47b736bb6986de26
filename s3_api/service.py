"""The S3 service's state: made once at start-up (``open_state``), closed at shut-down.

``open_state`` migrates the tables, opens the blob store under ``<data_dir>/blobs`` and, when no
other process has the store open, collects what a crash left behind (temp files, blobs no row
points to) *before* the first request is served. It loads (or makes) the data directory's master
key, which wraps the data keys of encrypted objects (``s3_api.encryption``), refusing one that
is not the key those objects were written with (``check_master_key``), and starts the lifecycle
runner (stopped first at shut-down).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass

from storage import bucket_cors, completed_uploads, master_key
from storage.key_wrap import KeyRing
from storage.s3_access import sweep_object_acls
from storage.blobs import BlobStore
from storage.objects import ObjectStore

log = logging.getLogger(__name__)

INLINE_MAX = 64 * 1024
DAY_SECONDS = 86400


@dataclass
class S3State:
    store: ObjectStore
    blobs: BlobStore
    inline_max: int = INLINE_MAX
    day_us: int = DAY_SECONDS * 1_000_000      # a lifecycle day (shortened in tests)
    lifecycle: object = None                   # the LifecycleRunner
    keys: object = None                        # storage.key_wrap.KeyRing (encryption at rest)
    plaintext_writes: bool = False             # NIMBO_S3_PLAINTEXT_WRITES (benchmarks only)


def _microseconds(clock):
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

    def now_us() -> int:
        delta = clock() - epoch
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return now_us


def to_us(value: dt.datetime) -> int:
    return _microseconds(lambda: value)()


async def open_state(app) -> S3State:
    config = app.config
    data_dir = getattr(config, "data_dir", None) or config["data_dir"]
    blobs = BlobStore(getattr(config, "blob_dir", None) or os.path.join(data_dir, "blobs"))
    blobs.space = getattr(app.db, "space", None)   # new data is checked against the watermark
    await blobs.run(blobs.setup)
    from s3_api.bucket_access import defaults  # noqa: PLC0415
    defaults(config)       # a wrong s3_default_object_ownership stops start-up, not CreateBucket
    store = ObjectStore(app.db, blobs, _microseconds(app.clock))
    await store.open()
    await app.db.migrate(completed_uploads.SCHEMA)
    await app.db.migrate(bucket_cors.SCHEMA)
    if blobs.try_exclusive():
        try:
            temps, orphans = await blobs.run(blobs.collect, store.referenced_blobs())
            async with app.db.transaction() as tx:      # ACLs of versions that went away
                await sweep_object_acls(tx)
            if temps or orphans:
                log.info("collected %d temp files and %d unreferenced blobs", temps, orphans)
        finally:
            blobs.share()
    else:
        log.info("another process serves this data directory: no blob collection")
        # shared, as the others hold it: a process (re)started later must not collect while
        # this one writes (waits while a starting process collects alone)
        await blobs.run(blobs.share)
    inline_max = getattr(config, "s3_inline_max", None)
    day = float(getattr(config, "s3_lifecycle_day_seconds", None) or DAY_SECONDS)
    state = S3State(store, blobs, INLINE_MAX if inline_max is None else int(inline_max),
                    int(day * 1_000_000))
    try:
        state.keys = KeyRing(master_key.load_or_create(master_key.key_dir(config)))    # never logged
        await check_master_key(app.db, state.keys, master_key.key_dir(config))
    except BaseException:
        await store.close()
        blobs.close()
        raise
    # the benchmark's plaintext baseline (s3_api.encryption): never on a server with real data
    state.plaintext_writes = os.environ.get("NIMBO_S3_PLAINTEXT_WRITES") == "1"
    if state.plaintext_writes:
        log.warning("NIMBO_S3_PLAINTEXT_WRITES=1: new objects are NOT encrypted at rest")
    from s3_api import sealed_reads  # noqa: PLC0415 (EC2's reads of objects decrypt through it)
    sealed_reads.install(state, app)
    # lifecycle rules run in the background, a pass per day (s3_api.lifecycle_runner)
    from s3_api.lifecycle_runner import lifecycle_runner  # noqa: PLC0415 (it imports the handlers)
    state.lifecycle = lifecycle_runner(state, os.path.join(data_dir, "s3-lifecycle.lock"), day)
    state.lifecycle.start()
    return state


class WrongMasterKey(master_key.MasterKeyError):
    """``master.key`` is not the key this data directory's objects were encrypted with."""


async def check_master_key(db, keys: KeyRing, data_dir: str) -> None:
    """Refuse to serve with a master key other than the one the stored data keys are wrapped
    with (a ``master.key`` lost and made anew, or copied from another data directory): every
    encrypted object would fail to read. The first start records the key's check value."""
    check = keys.check_value()
    async with db.transaction() as tx:
        await tx.execute("INSERT OR IGNORE INTO s3_master_key_check (id, value) VALUES (1, ?)",
                         (check,))
    row = await db.fetchone("SELECT value FROM s3_master_key_check WHERE id = 1")
    if bytes(row["value"]) == check:
        return
    encrypted = await db.fetchone(
        "SELECT 1 AS found FROM s3_objects WHERE sse IS NOT NULL UNION ALL SELECT 1 FROM"
        " s3_versions WHERE sse IS NOT NULL UNION ALL SELECT 1 FROM s3_uploads WHERE sse IS NOT"
        " NULL LIMIT 1")
    if encrypted is None:      # nothing was encrypted with the old key: the new one takes over
        async with db.transaction() as tx:
            await tx.execute("UPDATE s3_master_key_check SET value = ? WHERE id = 1", (check,))
        return
    raise WrongMasterKey(
        f"{os.path.join(data_dir, master_key.FILE_NAME)} is not the master key this data"
        " directory's objects were encrypted with: restore it from this data directory's"
        " backup (Nimbo will not serve with another key)")


async def close_state(state: S3State) -> None:
    if state.lifecycle is not None:
        await state.lifecycle.stop()
    await state.store.close()
    state.blobs.close()
