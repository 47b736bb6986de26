"""PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject, GetObjectAttributes."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import zlib

import pytest

from s3_api import errors
from tests.s3.helpers import BOB, Body, md5_hex


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_put_get_small_object_inline(s3, bucket):
    out = await s3.put(bucket, "a.txt", b"hello", ContentType="text/plain",
                       Metadata={"Colour": "blue"})
    assert out["ETag"] == f'"{md5_hex(b"hello")}"'
    assert "ChecksumCRC64NVME" in out and out["ChecksumType"] == "FULL_OBJECT"
    got, data = await s3.get(bucket, "a.txt")
    assert data == b"hello"
    assert got["ContentLength"] == 5 and got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"colour": "blue"}
    assert got["LastModified"] == s3.clock.now.replace(microsecond=0)
    assert s3.blob_files() == []          # small objects live in the metadata row
    assert await s3.stored_bytes(bucket) == 5


async def test_put_large_object_streams_to_a_blob(s3, bucket):
    data = os.urandom(3 * 1024 * 1024 + 17)
    out = await s3.put(bucket, "big.bin", data)
    assert out["ETag"] == f'"{md5_hex(data)}"'
    assert len(s3.blob_files()) == 1
    got, body = await s3.get(bucket, "big.bin")
    assert body == data and got["ContentLength"] == len(data)
    assert got["ContentType"] == "binary/octet-stream"


async def test_overwrite_removes_old_blob_and_accounts_bytes(s3, bucket):
    await s3.put(bucket, "k", os.urandom(200_000))
    first = s3.blob_files()
    await s3.put(bucket, "k", b"tiny")
    # unlinks run after the commit, off the loop: wait for them
    await s3.state.store.settled()
    assert not any(os.path.exists(p) for p in first)
    assert await s3.stored_bytes(bucket) == 4
    _, body = await s3.get(bucket, "k")
    assert body == b"tiny"


async def test_head_object_and_missing_key(s3, bucket):
    await s3.put(bucket, "k", b"abc")
    head = await s3.call("HeadObject", Bucket=bucket, Key="k")
    assert head["ContentLength"] == 3 and "Body" not in head
    with pytest.raises(errors.NoSuchKey):
        await s3.call("HeadObject", Bucket=bucket, Key="nope")
    with pytest.raises(errors.NoSuchBucket):
        await s3.call("GetObject", Bucket="nobucket", Key="k")


async def test_other_accounts_and_anonymous_are_denied(s3, bucket):
    await s3.put(bucket, "k", b"abc")
    with pytest.raises(errors.AccessDenied):
        await s3.call("GetObject", s3.ctx(account=BOB), Bucket=bucket, Key="k")
    with pytest.raises(errors.AccessDenied):
        await s3.put(bucket, "k", b"x", ctx=s3.ctx(account=BOB))
    with pytest.raises(errors.AccessDenied):
        await s3.call("ListObjectsV2", s3.ctx(account=None), Bucket=bucket)


async def test_content_md5(s3, bucket):
    good = b64(hashlib.md5(b"data").digest())
    await s3.put(bucket, "k", b"data", ContentMD5=good)
    with pytest.raises(errors.BadDigest):
        await s3.put(bucket, "k", b"DATA", ContentMD5=good)
    with pytest.raises(errors.InvalidDigest):
        await s3.put(bucket, "k", b"data", ContentMD5="not-base64!")
    _, body = await s3.get(bucket, "k")
    assert body == b"data"          # the failed PUTs left the first version alone


async def test_sha256_payload_hash_is_verified(s3, bucket):
    data = os.urandom(100_000)
    good = hashlib.sha256(data).hexdigest()
    await s3.put(bucket, "k", data, ctx=s3.ctx(payload_hash=good))
    with pytest.raises(errors.XAmzContentSHA256Mismatch):
        await s3.put(bucket, "k", data + b"!", ctx=s3.ctx(payload_hash=good))
    assert len(s3.blob_files()) == 1    # the refused body's temp file is gone


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
async def test_flexible_checksums_stored_and_returned(s3, bucket, algorithm):
    from s3_api.checksums import compute
    data = os.urandom(150_000)
    value = compute(algorithm, data)
    out = await s3.put(bucket, "k", data, **{f"Checksum{algorithm}": value})
    assert out[f"Checksum{algorithm}"] == value
    got, _ = await s3.get(bucket, "k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == value and got["ChecksumType"] == "FULL_OBJECT"
    got, _ = await s3.get(bucket, "k")
    assert f"Checksum{algorithm}" not in got
    with pytest.raises(errors.BadDigest, match=f"The {algorithm} you specified did not match"):
        await s3.put(bucket, "k", data[:-1] + bytes([data[-1] ^ 1]), **{f"Checksum{algorithm}": value})


async def test_crc32_matches_zlib(s3, bucket):
    out = await s3.put(bucket, "k", b"hello", ChecksumAlgorithm="CRC32")
    assert out["ChecksumCRC32"] == b64(zlib.crc32(b"hello").to_bytes(4, "big"))


async def test_malformed_checksum_header(s3, bucket):
    with pytest.raises(errors.InvalidRequest):
        await s3.put(bucket, "k", b"x", ChecksumCRC32="AAAA")
    with pytest.raises(errors.InvalidRequest):
        await s3.put(bucket, "k", b"x", ChecksumCRC32=b64(b"\0" * 4), ChecksumSHA1=b64(b"\0" * 20))


async def test_key_and_metadata_limits(s3, bucket):
    await s3.put(bucket, "k" * 1024, b"x")
    with pytest.raises(errors.KeyTooLongError):
        await s3.put(bucket, "k" * 1025, b"x")
    with pytest.raises(errors.KeyTooLongError):
        await s3.put(bucket, "é" * 513, b"x")     # 1026 bytes of UTF-8
    with pytest.raises(errors.MetadataTooLarge):
        await s3.put(bucket, "k", b"x", Metadata={"a": "v" * 2048})


async def test_short_body_is_incomplete_and_leaves_nothing(s3, bucket):
    await s3.put(bucket, "k", b"old")
    with pytest.raises(errors.IncompleteBody):
        await s3.call("PutObject", Bucket=bucket, Key="k", Body=Body(b"x" * 500_000),
                      ContentLength=600_000)
    with pytest.raises(errors.IncompleteBody):
        await s3.call("PutObject", Bucket=bucket, Key="k",
                      Body=Body(b"x" * 500_000, fail_after=200_000), ContentLength=500_000)
    assert s3.blob_files() == []
    _, body = await s3.get(bucket, "k")
    assert body == b"old"


async def test_too_large_and_missing_length(s3, bucket):
    with pytest.raises(errors.EntityTooLarge):
        await s3.call("PutObject", Bucket=bucket, Key="k", Body=Body(b""),
                      ContentLength=5 * 1024 ** 3 + 1)
    with pytest.raises(errors.MissingContentLength):
        await s3.call("PutObject", Bucket=bucket, Key="k", Body=Body(b"abc"))


async def test_disk_full_is_reported_and_cleaned(s3, bucket, monkeypatch):
    import errno
    from storage.blobs import BlobWriter
    real = BlobWriter.write_pieces
    calls = {"n": 0}

    def full(self, pieces):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, pieces)

    monkeypatch.setattr(BlobWriter, "write_pieces", full)
    from storage.space import StorageFull
    with pytest.raises(StorageFull):      # rendered as ServiceUnavailable (gateway.errors)
        await s3.put(bucket, "k", os.urandom(4 * 1024 * 1024))
    assert s3.blob_files() == []


async def test_conditional_writes(s3, bucket):
    await s3.put(bucket, "k", b"one", IfNoneMatch="*")
    with pytest.raises(errors.PreconditionFailed):
        await s3.put(bucket, "k", b"two", IfNoneMatch="*")
    etag = md5_hex(b"one")
    await s3.put(bucket, "k", b"two", IfMatch=f'"{etag}"')
    with pytest.raises(errors.PreconditionFailed):
        await s3.put(bucket, "k", b"three", IfMatch=f'"{etag}"')
    with pytest.raises(errors.NoSuchKey):
        await s3.put(bucket, "absent", b"x", IfMatch=f'"{etag}"')
    with pytest.raises(errors.NotImplementedOperation):
        await s3.put(bucket, "k", b"x", IfNoneMatch='"abc"')
    _, body = await s3.get(bucket, "k")
    assert body == b"two"


async def test_concurrent_puts_of_one_key_leave_one_version(s3, bucket):
    import asyncio
    bodies = [bytes([i]) * (100_000 + i) for i in range(12)]
    await asyncio.gather(*(s3.put(bucket, "same", b) for b in bodies))
    await s3.state.store.settled()
    _, body = await s3.get(bucket, "same")
    assert body in bodies
    assert len(s3.blob_files()) == 1
    assert await s3.stored_bytes(bucket) == len(body)


async def test_concurrent_if_none_match_only_one_wins(s3, bucket):
    import asyncio
    results = await asyncio.gather(*(s3.put(bucket, "once", bytes([i]) * 10, IfNoneMatch="*")
                                     for i in range(8)), return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, dict)) == 1
    assert all(isinstance(r, (dict, errors.PreconditionFailed)) for r in results)


async def test_range_reads(s3, bucket):
    data = bytes(range(256)) * 1000
    for key in ("small", "large"):
        payload = data[:1000] if key == "small" else data
        await s3.put(bucket, key, payload)
        got, body = await s3.get(bucket, key, Range="bytes=10-19")
        assert body == payload[10:20] and got["__status__"] == 206
        assert got["ContentRange"] == f"bytes 10-19/{len(payload)}" and got["ContentLength"] == 10
        _, body = await s3.get(bucket, key, Range="bytes=-5")
        assert body == payload[-5:]
        _, body = await s3.get(bucket, key, Range="bytes=990-")
        assert body == payload[990:]
        _, body = await s3.get(bucket, key, Range=f"bytes=900-{10 ** 9}")
        assert body == payload[900:]
        got, body = await s3.get(bucket, key, Range="bytes=0-1,5-6")
        assert body == payload and "__status__" not in got
        with pytest.raises(errors.InvalidRange) as info:
            await s3.get(bucket, key, Range=f"bytes={len(payload)}-")
        assert info.value.extra["ActualObjectSize"] == len(payload)


async def test_conditional_reads(s3, bucket):
    await s3.put(bucket, "k", b"abc")
    etag = f'"{md5_hex(b"abc")}"'
    now = s3.clock.now
    earlier, later = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    await s3.get(bucket, "k", IfMatch=etag)
    with pytest.raises(errors.PreconditionFailed):
        await s3.get(bucket, "k", IfMatch='"other"')
    with pytest.raises(errors.NotModified) as info:
        await s3.get(bucket, "k", IfNoneMatch=etag)
    assert info.value.extra["ETag"] == etag
    with pytest.raises(errors.NotModified):
        await s3.get(bucket, "k", IfModifiedSince=later)
    await s3.get(bucket, "k", IfModifiedSince=earlier)
    with pytest.raises(errors.PreconditionFailed):
        await s3.get(bucket, "k", IfUnmodifiedSince=earlier)
    # If-Match true wins over If-Unmodified-Since false; If-None-Match false wins over IMS true
    await s3.get(bucket, "k", IfMatch=etag, IfUnmodifiedSince=earlier)
    with pytest.raises(errors.NotModified):
        await s3.get(bucket, "k", IfNoneMatch=etag, IfModifiedSince=earlier)
    await s3.get(bucket, "k", IfNoneMatch='"other"', IfModifiedSince=later)


async def test_response_overrides(s3, bucket):
    await s3.put(bucket, "k", b"abc", ContentType="text/plain")
    got, _ = await s3.get(bucket, "k", ResponseContentType="application/json",
                          ResponseContentDisposition="attachment")
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "attachment"


async def test_delete_object_is_idempotent(s3, bucket):
    await s3.put(bucket, "k", os.urandom(100_000))
    assert await s3.call("DeleteObject", Bucket=bucket, Key="k") == {"__status__": 204}
    assert await s3.call("DeleteObject", Bucket=bucket, Key="k") == {"__status__": 204}
    with pytest.raises(errors.NoSuchKey):
        await s3.get(bucket, "k")
    await s3.state.store.settled()
    assert s3.blob_files() == [] and await s3.stored_bytes(bucket) == 0


async def test_delete_objects(s3, bucket):
    for i in range(5):
        await s3.put(bucket, f"k{i}", b"x" * i)
    out = await s3.call("DeleteObjects", Bucket=bucket, Delete={
        "Objects": [{"Key": "k1"}, {"Key": "k3"}, {"Key": "missing"}, {"Key": "k" * 1100}]})
    assert [d["Key"] for d in out["Deleted"]] == ["k1", "k3", "missing"]
    assert out["Errors"][0]["Code"] == "KeyTooLongError"
    out = await s3.call("DeleteObjects", Bucket=bucket,
                        Delete={"Objects": [{"Key": "k0"}], "Quiet": True})
    assert out == {}
    listing = await s3.call("ListObjectsV2", Bucket=bucket)
    assert [c["Key"] for c in listing["Contents"]] == ["k2", "k4"]
    with pytest.raises(errors.MalformedXML):
        await s3.call("DeleteObjects", Bucket=bucket,
                      Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
    with pytest.raises(errors.MalformedXML):
        await s3.call("DeleteObjects", Bucket=bucket, Delete={"Objects": []})


async def test_copy_object(s3, bucket):
    data = os.urandom(300_000)
    await s3.put(bucket, "src", data, ContentType="image/png", Metadata={"a": "1"})
    out = await s3.call("CopyObject", Bucket=bucket, Key="dst", CopySource=f"{bucket}/src")
    assert out["CopyObjectResult"]["ETag"] == f'"{md5_hex(data)}"'
    got, body = await s3.get(bucket, "dst")
    assert body == data and got["ContentType"] == "image/png" and got["Metadata"] == {"a": "1"}
    await s3.call("CopyObject", Bucket=bucket, Key="dst2", CopySource=f"/{bucket}/src?versionId=null",
                  MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"b": "2"})
    got, body = await s3.get(bucket, "dst2")
    assert body == data and got["ContentType"] == "text/plain" and got["Metadata"] == {"b": "2"}
    with pytest.raises(errors.InvalidRequest):
        await s3.call("CopyObject", Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    await s3.call("CopyObject", Bucket=bucket, Key="src", CopySource=f"{bucket}/src",
                  MetadataDirective="REPLACE", Metadata={"c": "3"})
    got, body = await s3.get(bucket, "src")
    assert body == data and got["Metadata"] == {"c": "3"}
    with pytest.raises(errors.PreconditionFailed):
        await s3.call("CopyObject", Bucket=bucket, Key="x", CopySource=f"{bucket}/src",
                      CopySourceIfMatch='"nope"')
    with pytest.raises(errors.NoSuchKey):
        await s3.call("CopyObject", Bucket=bucket, Key="x", CopySource=f"{bucket}/absent")


async def test_copy_source_key_is_url_decoded(s3, bucket):
    await s3.put(bucket, "dir/a b+c?.txt", b"content")
    await s3.call("CopyObject", Bucket=bucket, Key="copy",
                  CopySource=f"{bucket}/dir/a%20b%2Bc%3F.txt")
    _, body = await s3.get(bucket, "copy")
    assert body == b"content"


async def test_copy_from_another_accounts_bucket_is_denied(s3, bucket):
    await s3.put(bucket, "k", b"x")
    bob = s3.ctx(account=BOB)
    await s3.call("CreateBucket", bob, Bucket="bobs")
    with pytest.raises(errors.AccessDenied):
        await s3.call("CopyObject", bob, Bucket="bobs", Key="k", CopySource=f"{bucket}/k")


async def test_get_object_attributes(s3, bucket):
    await s3.put(bucket, "k", b"hello", ChecksumAlgorithm="SHA256")
    out = await s3.call("GetObjectAttributes", Bucket=bucket, Key="k",
                        ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass"])
    assert out["ETag"] == md5_hex(b"hello") and out["ObjectSize"] == 5
    assert out["StorageClass"] == "STANDARD"
    assert out["Checksum"]["ChecksumSHA256"] == b64(hashlib.sha256(b"hello").digest())


async def test_version_ids(s3, bucket):
    await s3.put(bucket, "k", b"x")
    await s3.get(bucket, "k", VersionId="null")
    with pytest.raises(errors.NoSuchVersion):
        await s3.get(bucket, "k", VersionId="3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")


async def test_empty_object(s3, bucket):
    out = await s3.put(bucket, "empty", b"")
    assert out["ETag"] == f'"{md5_hex(b"")}"'
    got, body = await s3.get(bucket, "empty")
    assert body == b"" and got["ContentLength"] == 0
    with pytest.raises(errors.InvalidRange):
        await s3.get(bucket, "empty", Range="bytes=0-")
    got, body = await s3.get(bucket, "empty", Range="bytes=-1")
    assert body == b"" and "__status__" not in got


async def test_ledger_events_are_in_the_bucket_owners_name(s3):
    eu = s3.ctx(region="eu-west-1")
    await s3.call("CreateBucket", eu, Bucket="eu-bucket",
                  CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    await s3.put("eu-bucket", "a", b"x" * 10, ctx=eu)
    await s3.put("eu-bucket", "a", b"x" * 4, ctx=eu)
    await s3.call("DeleteObject", eu, Bucket="eu-bucket", Key="a")
    rows = await s3.app.db.fetchall(
        "SELECT account_id, region, service, kind, resource_id, quantity, dedupe_key, attrs"
        " FROM usage_events WHERE kind = 'stored_bytes' ORDER BY seq")
    assert [r["quantity"] for r in rows] == [10, -6, -4]
    assert {(r["account_id"], r["region"], r["service"], r["resource_id"]) for r in rows} == \
        {("111111111111", "eu-west-1", "AmazonS3", "eu-bucket")}
    assert len({r["dedupe_key"] for r in rows}) == 3
    assert '"storage_class": "STANDARD"' in rows[0]["attrs"]


def test_metadata_values_decoded_and_encoded_as_s3_does():
    from s3_api.metadata import decode_metadata_value, encode_metadata_value
    assert decode_metadata_value("=?UTF-8?B?Y2Fmw6k=?=") == "café"
    assert decode_metadata_value("=?utf-8?q?caf=C3=A9_au_lait?=") == "café au lait"
    assert decode_metadata_value("=?UTF-8?B?Y2Fm?= =?UTF-8?B?w6k=?=") == "café"
    assert decode_metadata_value("a =?x-unknown?B?AAAA?= b") == "a =?x-unknown?B?AAAA?= b"
    assert decode_metadata_value("caf\udce9") == "café"          # a Latin-1 byte
    assert decode_metadata_value("plain =? not a word") == "plain =? not a word"
    assert encode_metadata_value("plain") == "plain"
    assert encode_metadata_value("café") == "=?UTF-8?B?Y2Fmw6k=?="
    assert encode_metadata_value("tab\there").startswith("=?UTF-8?B?")
