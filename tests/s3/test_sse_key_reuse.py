"""An SSE-S3 object's data key is unwrapped once per process and reused by later reads of the same
object (``s3_api.encryption.for_read``); what a read must check is checked on every read: a
customer key sent for an SSE-S3 object is refused, an SSE-C object needs its own key, a replaced
object gets its new key."""
from __future__ import annotations

import base64
import hashlib
import os

from s3_api.errors import S3Error


def ssec(key: bytes) -> dict:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


async def test_a_hot_objects_key_is_unwrapped_once(s3, bucket, monkeypatch):
    keys = s3.state.keys
    unwraps = []
    real = keys.unwrap_s3

    def counted(wrapped):
        unwraps.append(wrapped)
        return real(wrapped)
    monkeypatch.setattr(keys, "unwrap_s3", counted)
    await s3.put(bucket, "hot", b"first" * 1000)
    for _ in range(3):
        out, body = await s3.get(bucket, "hot")
        assert body == b"first" * 1000 and out["ServerSideEncryption"] == "AES256"
    assert len(unwraps) == 1
    await s3.put(bucket, "hot", b"second" * 1000)         # a new version: a new data key
    _, body = await s3.get(bucket, "hot")
    assert body == b"second" * 1000 and len(unwraps) == 2


async def test_every_read_still_checks_customer_keys(s3, bucket):
    await s3.put(bucket, "plain-sse", b"x" * 100)
    await s3.get(bucket, "plain-sse")                    # its key is known now
    try:
        await s3.get(bucket, "plain-sse", **ssec(os.urandom(32)))
        raise AssertionError("a customer key for an SSE-S3 object was accepted")
    except S3Error as err:
        assert (err.code, err.status) == ("InvalidRequest", 400)
    key = os.urandom(32)
    await s3.put(bucket, "customer", b"y" * 100, **ssec(key))
    _, body = await s3.get(bucket, "customer", **ssec(key))
    assert body == b"y" * 100
    for params in ({}, ssec(os.urandom(32))):
        try:
            await s3.get(bucket, "customer", **params)
            raise AssertionError("an SSE-C object was read without its key")
        except S3Error as err:
            assert err.code in ("InvalidRequest", "AccessDenied")
