"""Multipart uploads that were completed: what a repeated CompleteMultipartUpload answers.

S3 answers a retried CompleteMultipartUpload that already succeeded (a client whose first
answer was lost) with the same result, 200. The upload itself is gone once completed, so its
outcome is kept here: the upload id, the object (bucket, key, version id) it made and the
members of its answer. A row is written in the same transaction as the completion (so it exists
exactly when the object does) and rows older than ``KEEP_US`` are pruned as new ones are written.
Crash story: nothing beyond that transaction; a lost row only means a retry gets NoSuchUpload.
"""
from __future__ import annotations

import json
from typing import Any

from storage.db import Database, Schema, Transaction

SCHEMA = Schema("s3_completed_uploads", [
    """
    CREATE TABLE s3_completed_uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        version_id TEXT NOT NULL,
        answer TEXT NOT NULL,
        completed_us INTEGER NOT NULL
    );
    CREATE INDEX s3_completed_uploads_by_time ON s3_completed_uploads (completed_us)
    """,
])

KEEP_US = 7 * 24 * 3600 * 1_000_000   # a week: retries come within seconds or minutes


async def record(tx: Transaction, upload_id: str, bucket: str, key: str, version_id: str,
                 answer: dict[str, Any], now_us: int) -> None:
    await tx.execute("DELETE FROM s3_completed_uploads WHERE completed_us < ?",
                     (now_us - KEEP_US,))
    await tx.execute(
        "INSERT INTO s3_completed_uploads (upload_id, bucket, key, version_id, answer,"
        " completed_us) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (upload_id) DO UPDATE SET"
        " bucket = excluded.bucket, key = excluded.key, version_id = excluded.version_id,"
        " answer = excluded.answer, completed_us = excluded.completed_us",
        (upload_id, bucket, key, version_id, json.dumps(answer), now_us))


async def lookup(db: Database, upload_id: str, bucket: str,
                 key: str) -> tuple[str, dict[str, Any]] | None:
    """(version id, answer) of ``upload_id`` completed as ``bucket``/``key``, or None."""
    row = await db.fetchone(
        "SELECT version_id, answer FROM s3_completed_uploads WHERE upload_id = ? AND bucket = ?"
        " AND key = ?", (upload_id, bucket, key))
    if row is None:
        return None
    return row["version_id"], json.loads(row["answer"])
