"""Default encryption of a bucket: Put/Get/DeleteBucketEncryption.

Every bucket encrypts new objects: with SSE-S3 (AES256) unless its configuration names SSE-KMS
(``aws:kms`` or ``aws:kms:dsse``, optionally with ``KMSMasterKeyID`` and ``BucketKeyEnabled``).
As S3 has since January 2023, a bucket without a configuration answers GetBucketEncryption with
that AES256 default, and DeleteBucketEncryption returns a bucket to it. ``BlockedEncryptionTypes``
(``SSE-C`` or ``NONE``) decides whether writes may use customer keys: blocked writes are refused
with 403 AccessDenied (``s3_api.encryption``); existing SSE-C objects stay readable.

CHOICE: S3 blocks SSE-C on buckets created since April 2026 unless the configuration unblocks it;
Nimbo allows SSE-C on a bucket whose configuration does not block it (tools and test suites
written before that change upload with SSE-C into fresh buckets), unless the server's
``s3_block_sse_c_by_default`` is set: then a bucket without a configuration blocks SSE-C and shows
it, as S3's new buckets do. A configuration that names ``SSE-C`` blocks it exactly as S3 does.

A bucket's configuration is one row of ``s3_bucket_encryption`` (JSON: algorithm ``a``, KMS key
``k``, bucket key ``bk``, blocked types ``b``), deleted with the bucket. Crash story: one row,
written or deleted in one transaction.
"""
from __future__ import annotations

import json

from s3_api.buckets import owned_bucket
from s3_api.errors import InvalidArgument, MalformedXML, NoSuchBucket
from s3_api.object_lock import require_checksum
from storage.objects import Batch, ObjectStore

ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
BLOCKABLE = ("NONE", "SSE-C")


def default_of(store: ObjectStore, bucket: str) -> dict | None:
    """The bucket's stored configuration (``a``, ``k``, ``bk``, ``b``), or None: SSE-S3."""
    rows = store.query("SELECT config FROM s3_bucket_encryption WHERE bucket = ?", (bucket,))
    return json.loads(rows[0][0]) if rows else None


def blocked_by_default(ctx) -> bool:
    return bool(getattr(getattr(getattr(ctx, "app", None), "config", None),
                        "s3_block_sse_c_by_default", False))


def customer_keys_blocked(config: dict | None, by_default: bool = False) -> bool:
    if config is None:
        return by_default
    return "SSE-C" in (config.get("b") or ())


def _rule(config: dict | None, by_default: bool = False) -> dict:
    config = config or ({"a": "AES256", "b": ["SSE-C"]} if by_default else {"a": "AES256"})
    default = {"SSEAlgorithm": config["a"]}
    if config.get("k"):
        default["KMSMasterKeyID"] = config["k"]
    rule = {"ApplyServerSideEncryptionByDefault": default,
            "BucketKeyEnabled": bool(config.get("bk"))}
    if config.get("b"):
        rule["BlockedEncryptionTypes"] = {"EncryptionType": list(config["b"])}
    return rule


async def get_bucket_encryption(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    config = default_of(ctx.state.store, bucket.name)
    return {"ServerSideEncryptionConfiguration": {
        "Rules": [_rule(config, blocked_by_default(ctx))]}}


def parse_configuration(value) -> dict:
    """The stored form of a ServerSideEncryptionConfiguration body (S3's errors otherwise)."""
    if not isinstance(value, dict):
        raise MalformedXML()
    rules = value.get("Rules")
    if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], dict):
        raise MalformedXML()
    rule = rules[0]
    default = rule.get("ApplyServerSideEncryptionByDefault")
    if not isinstance(default, dict) or not default.get("SSEAlgorithm"):
        raise MalformedXML()
    algorithm = default["SSEAlgorithm"]
    if algorithm not in ALGORITHMS:
        raise MalformedXML()
    key_id = default.get("KMSMasterKeyID")
    if key_id is not None and algorithm not in KMS_ALGORITHMS:
        raise InvalidArgument("a KMSMasterKeyID is not applicable if the default sse algorithm is"
                              " not aws:kms or aws:kms:dsse",
                              ArgumentName="ApplyServerSideEncryptionByDefault")
    if key_id is not None and not str(key_id).strip():
        raise InvalidArgument("KMSMasterKeyID must not be empty",
                              ArgumentName="ApplyServerSideEncryptionByDefault")
    config: dict = {"a": algorithm}
    if key_id:
        config["k"] = str(key_id)
    if rule.get("BucketKeyEnabled"):
        config["bk"] = True
    blocked = rule.get("BlockedEncryptionTypes")
    if blocked is not None:
        types = blocked.get("EncryptionType") if isinstance(blocked, dict) else None
        if types is None:
            types = []
        if not isinstance(types, list) or any(t not in BLOCKABLE for t in types):
            raise MalformedXML()
        if "NONE" in types and len(types) > 1:
            raise MalformedXML()
        if types:
            config["b"] = list(dict.fromkeys(types))
    return config


async def put_bucket_encryption(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    require_checksum(ctx)
    config = parse_configuration(params.get("ServerSideEncryptionConfiguration"))
    text = json.dumps(config, separators=(",", ":"))

    async def put(batch: Batch) -> None:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await batch.tx.execute(
            "INSERT INTO s3_bucket_encryption (bucket, config) VALUES (?, ?)"
            " ON CONFLICT(bucket) DO UPDATE SET config = excluded.config", (bucket.name, text))

    await ctx.state.store.write_alone(put)
    return {}


async def delete_bucket_encryption(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)

    async def delete(batch: Batch) -> None:
        await forget(batch, bucket.name)

    await ctx.state.store.write_alone(delete)
    return {"__status__": 204}


async def forget(batch: Batch, bucket: str) -> None:
    """Drop a bucket's configuration (DeleteBucketEncryption, DeleteBucket), in ``batch``."""
    await batch.tx.execute("DELETE FROM s3_bucket_encryption WHERE bucket = ?", (bucket,))


OPERATIONS = {
    "GetBucketEncryption": get_bucket_encryption,
    "PutBucketEncryption": put_bucket_encryption,
    "DeleteBucketEncryption": delete_bucket_encryption,
}
