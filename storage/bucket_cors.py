"""A bucket's CORS configuration: one row per bucket, the JSON of its rules.

The rules are written and removed inside the object store's own transactions (``batch.tx`` of
``ObjectStore.write_alone``), after the bucket was read in the same transaction, so a
configuration never outlives its bucket nor lands on a bucket deleted meanwhile. The row refers to
``s3_buckets(name)`` with ``ON DELETE CASCADE`` (the writer runs with ``foreign_keys=ON``):
DeleteBucket removes the configuration in its own transaction, whatever code deletes the row, and
a bucket of the same name made later by anyone starts without one.

Crash story: one row, written by one statement in one transaction; a crash before COMMIT leaves
the previous configuration (or none), after it the new one. Nothing lives outside the database,
so start-up has nothing to sweep.

Reads are synchronous point lookups on the store's read-only connection (``ObjectStore.query``),
cheap enough for every request that carries an ``Origin`` header.
"""
from __future__ import annotations

from typing import Callable

from storage.db import Schema, Transaction

SCHEMA = Schema("s3_bucket_cors", [
    """
    CREATE TABLE s3_bucket_cors (
        bucket TEXT PRIMARY KEY REFERENCES s3_buckets(name) ON DELETE CASCADE,
        rules TEXT NOT NULL
    ) WITHOUT ROWID
    """,
])


async def save(tx: Transaction, bucket: str, rules_json: str) -> None:
    """Set (or replace) the bucket's rules."""
    await tx.execute(
        "INSERT INTO s3_bucket_cors (bucket, rules) VALUES (?, ?)"
        " ON CONFLICT(bucket) DO UPDATE SET rules = excluded.rules", (bucket, rules_json))


async def remove(tx: Transaction, bucket: str) -> None:
    await tx.execute("DELETE FROM s3_bucket_cors WHERE bucket = ?", (bucket,))


def load(query: Callable[[str, tuple], list], bucket: str) -> str | None:
    """The JSON of the bucket's rules, or None (``query``: ``ObjectStore.query``)."""
    rows = query("SELECT rules FROM s3_bucket_cors WHERE bucket = ?", (bucket,))
    return rows[0][0] if rows else None
