"""Object reads find the bucket, the key's current version and the bucket's access settings in
one query (``ObjectStore.bucket_object_access``): the same answers as the three lookups apart,
and a settings change is seen by the very next read."""
from __future__ import annotations

import json

from s3_api.errors import S3Error
from storage import s3_access
from tests.s3.helpers import BOB


async def test_one_query_gives_what_the_three_lookups_give(s3, bucket):
    store = s3.state.store
    await s3.put(bucket, "k", b"data")
    found, version, settings = store.bucket_object_access(bucket, "k")
    assert found.name == bucket and found.account_id == store.bucket(bucket).account_id
    assert version.version_id == store.object(bucket, "k").version_id and version.data is not None
    assert settings == s3_access.settings_row(store, bucket)
    found, version, settings = store.bucket_object_access(bucket, "missing")
    assert found.name == bucket and version is None
    assert settings == s3_access.settings_row(store, bucket)
    assert store.bucket_object_access("no-such-bucket", "k") == (None, None, (None,) * 4)


async def test_a_policy_change_is_seen_by_the_next_read(s3, bucket):
    await s3.put(bucket, "k", b"data")
    ctx = s3.ctx(account=BOB)
    try:
        await s3.get(bucket, "k", ctx=ctx)
        raise AssertionError("another account read a private object")
    except S3Error as err:
        assert err.code == "AccessDenied"
    await s3.call("PutPublicAccessBlock", Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{BOB.account_id}:root"},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=json.dumps(policy))
    _, body = await s3.get(bucket, "k", ctx=s3.ctx(account=BOB))
    assert body == b"data"
    await s3.call("DeleteBucketPolicy", Bucket=bucket)
    try:
        await s3.get(bucket, "k", ctx=s3.ctx(account=BOB))
        raise AssertionError("the deleted policy still allowed the read")
    except S3Error as err:
        assert err.code == "AccessDenied"


async def test_a_write_reads_bucket_settings_and_default_encryption_in_one_query(s3, bucket):
    """``bucket_write_settings``: what ``bucket``, ``settings_row`` and ``default_of`` give apart."""
    from s3_api.bucket_encryption import default_of
    store = s3.state.store
    found, settings, config = store.bucket_write_settings(bucket)
    assert found.name == bucket and settings == s3_access.settings_row(store, bucket)
    assert (json.loads(config) if config else None) == default_of(store, bucket)
    await s3.call("PutBucketEncryption", s3.ctx(headers={"Content-MD5": "x"}), Bucket=bucket,
                  ServerSideEncryptionConfiguration={"Rules": [{
                      "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                      "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}]})
    _, _, config = store.bucket_write_settings(bucket)
    assert json.loads(config) == default_of(store, bucket) and json.loads(config)["b"] == ["SSE-C"]
    assert store.bucket_write_settings("no-such-bucket") == (None, (None,) * 4, None)
