"""S3 access settings on disk: each bucket's object ownership, ACL, policy and public access
block (``s3_bucket_access``), and the ACLs of object versions (``s3_object_acls``).

``s3_bucket_access`` has one row per bucket (made by CreateBucket with the operator's defaults,
in the same transaction as the bucket row; removed by DeleteBucket in the bucket's own
transaction). A NULL column means "none set": no ownership controls (ObjectWriter's rules), the
owner's FULL_CONTROL as the ACL, no policy, no public access block. The policy is kept as the
text the user gave (GetBucketPolicy returns it as given).

``s3_object_acls`` holds the ACL of an object version (keyed by the version's internal id, which
is never reused) only when it is not the default (the owner's FULL_CONTROL): with ACLs disabled
(BucketOwnerEnforced, the default) the table stays empty and the read path never looks at it.
The object's owner is the version's ``owner_id`` (an account id; the canonical id is the
account's).

Crash story
-----------
Every change here commits in one SQLite transaction with what it belongs to: a bucket's
settings with the bucket row (CreateBucket, DeleteBucket) or alone (Put/Delete of one setting:
the row is updated in place); an object ACL given with a write (PutObject, CopyObject,
CompleteMultipartUpload, POST) is written by the group commit that makes the version current
(``Batch.set_acl``, flushed with the version rows), so after a crash a version exists with its
ACL or not at all; PutObjectAcl updates one row. The ACL rows of versions that go away are
deleted in the transaction that removes the versions. An ACL row whose version is gone (none
should remain; a row from a version written by an older build that did not know this table
cannot exist) grants nothing: no new version can take its id. Start-up deletes such rows.

Migration (``SCHEMA``, after ``storage.objects``'s): the two tables; buckets that existed before
get what they had (BucketOwnerEnforced, every public access blocked).
"""
from __future__ import annotations

import json

from storage.db import Schema, Transaction

ALL_BLOCKED = json.dumps({"BlockPublicAcls": True, "IgnorePublicAcls": True,
                          "BlockPublicPolicy": True, "RestrictPublicBuckets": True},
                         separators=(",", ":"))

SCHEMA = Schema(
    "s3_access",
    [
        f"""
        CREATE TABLE s3_bucket_access (
            bucket TEXT PRIMARY KEY,
            ownership TEXT,
            acl TEXT,
            policy TEXT,
            public_access_block TEXT
        ) WITHOUT ROWID;
        INSERT INTO s3_bucket_access (bucket, ownership, public_access_block)
            SELECT name, 'BucketOwnerEnforced', '{ALL_BLOCKED}' FROM s3_buckets;
        CREATE TABLE s3_object_acls (
            version_id TEXT PRIMARY KEY,
            acl TEXT NOT NULL
        ) WITHOUT ROWID
        """
    ],
)

COLUMNS = ("ownership", "acl", "policy", "public_access_block")


class BucketSettings:
    """A bucket's access settings row (None for each column not set)."""

    __slots__ = COLUMNS

    def __init__(self, ownership=None, acl=None, policy=None, public_access_block=None) -> None:
        self.ownership, self.acl, self.policy = ownership, acl, policy
        self.public_access_block = public_access_block

    def block(self) -> dict | None:
        return json.loads(self.public_access_block) if self.public_access_block else None


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM s3_bucket_access WHERE bucket = ?"


def settings_row(store, bucket: str) -> tuple:
    """The settings of ``bucket`` as a tuple of ``COLUMNS`` (read through the store's reader;
    all None without a row)."""
    rows = store.query(_SELECT, (bucket,))
    return tuple(rows[0]) if rows else (None, None, None, None)


def bucket_settings(store, bucket: str) -> BucketSettings:
    return BucketSettings(*settings_row(store, bucket))


async def create_bucket_settings(tx: Transaction, bucket: str, ownership: str | None,
                                 acl: str | None, block: dict | None) -> None:
    await tx.execute(
        "INSERT INTO s3_bucket_access (bucket, ownership, acl, policy, public_access_block)"
        " VALUES (?, ?, ?, NULL, ?) ON CONFLICT(bucket) DO UPDATE SET ownership ="
        " excluded.ownership, acl = excluded.acl, policy = NULL, public_access_block ="
        " excluded.public_access_block",
        (bucket, ownership, acl, json.dumps(block, separators=(",", ":")) if block else None))


async def set_bucket_setting(tx: Transaction, bucket: str, column: str, value: str | None) -> None:
    """Set (or, with None, remove) one of ``COLUMNS`` of a bucket's settings."""
    if column not in COLUMNS:
        raise ValueError(column)
    await tx.execute(
        f"INSERT INTO s3_bucket_access (bucket, {column}) VALUES (?, ?)"
        f" ON CONFLICT(bucket) DO UPDATE SET {column} = excluded.{column}", (bucket, value))


async def delete_bucket_settings(tx: Transaction, bucket: str) -> None:
    await tx.execute("DELETE FROM s3_bucket_access WHERE bucket = ?", (bucket,))


def object_acl(store, version_id: str) -> str | None:
    rows = store.query("SELECT acl FROM s3_object_acls WHERE version_id = ?", (version_id,))
    return rows[0][0] if rows else None


async def flush_object_acls(tx: Transaction, changes: list[tuple[str, str | None]],
                            gone: list[str]) -> None:
    """Write the ACLs a batch set (``(version_id, text or None for the default)``), and drop
    those of the versions that went away (``gone``)."""
    gone_set = set(gone)
    latest: dict[str, str | None] = {}
    for version_id, text in changes:
        if version_id not in gone_set:
            latest[version_id] = text
    upserts = [(v, t) for v, t in latest.items() if t is not None]
    deletes = [(v,) for v, t in latest.items() if t is None] + [(v,) for v in gone_set]
    if deletes:
        await tx.executemany("DELETE FROM s3_object_acls WHERE version_id = ?", deletes)
    if upserts:
        await tx.executemany(
            "INSERT INTO s3_object_acls (version_id, acl) VALUES (?, ?)"
            " ON CONFLICT(version_id) DO UPDATE SET acl = excluded.acl", upserts)


async def sweep_object_acls(tx: Transaction) -> int:
    """Start-up: remove the ACL rows no version points to."""
    return await tx.execute(
        "DELETE FROM s3_object_acls WHERE version_id NOT IN (SELECT version_id FROM s3_objects)"
        " AND version_id NOT IN (SELECT version_id FROM s3_versions)")
