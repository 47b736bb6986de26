"""The S3 service's state: made once at start-up (``open_state``), closed at shut-down.

``open_state`` migrates the tables, opens the blob store under ``<data_dir>/blobs`` and, when no
other process has the store open, collects what a crash left behind (temp files, blobs no row
points to) *before* the first request is served. It starts the lifecycle runner (stopped first
at shut-down).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass

from storage import completed_uploads
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
    blobs = BlobStore(os.path.join(data_dir, "blobs"))
    blobs.space = getattr(app.db, "space", None)   # new data is checked against the watermark
    await blobs.run(blobs.setup)
    store = ObjectStore(app.db, blobs, _microseconds(app.clock))
    await store.open()
    await app.db.migrate(completed_uploads.SCHEMA)
    if blobs.try_exclusive():
        try:
            temps, orphans = await blobs.run(blobs.collect, store.referenced_blobs())
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
    # lifecycle rules run in the background, a pass per day (s3_api.lifecycle_runner)
    from s3_api.lifecycle_runner import LifecycleRunner  # noqa: PLC0415 (it imports the handlers)
    state.lifecycle = LifecycleRunner(state, os.path.join(data_dir, "s3-lifecycle.lock"), day)
    state.lifecycle.start()
    return state


async def close_state(state: S3State) -> None:
    if state.lifecycle is not None:
        await state.lifecycle.stop()
    await state.store.close()
    state.blobs.close()
