"""Counted usage (requests, bytes in and out) buffered in memory and flushed into the ledger.

Request counts and transfer bytes are summed per account, hour and usage type and written every
few seconds (and at shutdown) in one transaction. A hard crash loses at most the last interval of
counts; it never affects stored data or time-based usage, which is written with the change itself.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from storage.db import Database
from storage.space import StorageFull
from storage.usage import HOUR_US, add_counts

log = logging.getLogger("nimbo.metering")

S3_SERVICE = "AmazonS3"
S3_TIER1 = frozenset({
    "PutObject", "CopyObject", "PostObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
    "CompleteMultipartUpload", "ListObjects", "ListObjectsV2", "ListBuckets", "ListMultipartUploads",
    "ListParts", "ListObjectVersions", "CreateBucket",
})
S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "DeleteBucket", "AbortMultipartUpload"})


def s3_request_tier(operation: str) -> str | None:
    """AWS's request tier for an S3 operation: PUT, COPY, POST and LIST are Tier1; DELETE is free;
    GET and everything else Tier2."""
    if operation in S3_FREE:
        return None
    if operation in S3_TIER1 or operation.startswith("Put"):
        return "Requests-Tier1"
    return "Requests-Tier2"


class MeterBuffer:
    def __init__(self, db: Database, flush_seconds: float = 5.0) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._counts: dict[tuple, int] = defaultdict(int)
        self._task: asyncio.Task | None = None

    def add(self, account_id: str, region: str, service: str, usage_type: str, operation: str,
            resource_id: str, at_us: int, amount: int) -> None:
        if amount:
            hour = at_us - at_us % HOUR_US
            self._counts[(account_id, region, service, usage_type, operation, resource_id, hour)] += amount

    async def flush(self) -> None:
        if not self._counts:
            return
        batch, self._counts = self._counts, defaultdict(int)
        rows = [(*key, amount) for key, amount in batch.items()]
        try:
            async with self.db.transaction() as tx:
                await add_counts(tx, rows)
        except Exception:
            for *key, amount in rows:
                self._counts[tuple(key)] += amount
            raise

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except StorageFull:
                log.warning("metering flush: the disk is full; %d counts kept for the next try",
                            len(self._counts))
            except Exception:
                log.exception("metering flush failed; will retry")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except StorageFull:     # shutting down on a full disk: say so, and stop anyway
            log.warning("the disk is full: %d usage counts of the last %.0f s not recorded",
                        len(self._counts), self.flush_seconds)


class Meter:
    """The meter of one request: counts go to the account that pays for the request."""

    def __init__(self, buffer: MeterBuffer | None, account_id: str | None, region: str,
                 service: str, at_us: int) -> None:
        self.buffer = buffer
        self.account_id = account_id
        self.region = region
        self.service = service
        self.at_us = at_us

    def count(self, usage_type: str, operation: str, amount: int, resource_id: str = "") -> None:
        if self.buffer is not None and self.account_id:
            self.buffer.add(self.account_id, self.region, self.service, usage_type, operation,
                            resource_id, self.at_us, amount)
