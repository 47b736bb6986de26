"""Multipart uploads: assembly without copying, ETags, checksums, errors, accounting."""
from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from awscrt import checksums as crt

from s3_api import errors
from tests.s3.helpers import Body, md5_hex

MiB = 1024 * 1024


async def upload(s3, bucket, key, upload_id, number, data, **params):
    return await s3.call("UploadPart", Bucket=bucket, Key=key, UploadId=upload_id,
                         PartNumber=number, Body=Body(data), ContentLength=len(data), **params)


def multipart_etag(parts: list[bytes]) -> str:
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


async def test_complete_assembles_parts_without_copying(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="big", ContentType="video/mp4",
                       Metadata={"m": "1"})
    uid = up["UploadId"]
    etags = [(await upload(s3, bucket, "big", uid, i + 1, p))["ETag"] for i, p in enumerate(parts)]
    assert etags == [f'"{md5_hex(p)}"' for p in parts]
    assert await s3.stored_bytes(bucket) == sum(map(len, parts))
    blobs_before = sorted(s3.blob_files())
    out = await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="big", UploadId=uid,
                        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                                   for i, e in enumerate(etags)]})
    assert out["ETag"] == f'"{multipart_etag(parts)}"'
    assert sorted(s3.blob_files()) == blobs_before          # the parts became the object
    got, body = await s3.get(bucket, "big", ChecksumMode="ENABLED")
    whole = b"".join(parts)
    assert body == whole and got["ContentType"] == "video/mp4" and got["Metadata"] == {"m": "1"}
    crc = base64.b64encode(crt.crc64nvme(whole).to_bytes(8, "big")).decode()
    assert got["ChecksumCRC64NVME"] == crc and got["ChecksumType"] == "FULL_OBJECT"
    assert await s3.stored_bytes(bucket) == len(whole)
    # a part by number, and a range across a part boundary
    got, body = await s3.get(bucket, "big", PartNumber=2)
    assert body == parts[1] and got["PartsCount"] == 3 and got["__status__"] == 206
    assert got["ContentRange"] == f"bytes {5 * MiB}-{10 * MiB - 1}/{len(whole)}"
    _, body = await s3.get(bucket, "big", Range=f"bytes={5 * MiB - 10}-{10 * MiB + 5}")
    assert body == whole[5 * MiB - 10:10 * MiB + 6]
    with pytest.raises(errors.InvalidPartNumber):
        await s3.get(bucket, "big", PartNumber=4)
    attrs = await s3.call("GetObjectAttributes", Bucket=bucket, Key="big",
                          ObjectAttributes=["ObjectParts", "ETag"])
    assert attrs["ObjectParts"]["TotalPartsCount"] == 3
    assert [p["Size"] for p in attrs["ObjectParts"]["Parts"]] == [5 * MiB, 5 * MiB, 1234]
    with pytest.raises(errors.NoSuchUpload):
        await s3.call("ListParts", Bucket=bucket, Key="big", UploadId=uid)


async def test_part_number_on_single_part_object(s3, bucket):
    await s3.put(bucket, "k", b"abcdef")
    got, body = await s3.get(bucket, "k", PartNumber=1)
    assert body == b"abcdef" and got["__status__"] == 206
    with pytest.raises(errors.InvalidPartNumber):
        await s3.get(bucket, "k", PartNumber=2)
    with pytest.raises(errors.InvalidRequest):
        await s3.get(bucket, "k", PartNumber=1, Range="bytes=0-1")


async def test_complete_errors(s3, bucket):
    uid = (await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k"))["UploadId"]
    e1 = (await upload(s3, bucket, "k", uid, 1, b"a" * 1000))["ETag"]
    e2 = (await upload(s3, bucket, "k", uid, 2, b"b" * 1000))["ETag"]

    async def complete(parts):
        return await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="k", UploadId=uid,
                             MultipartUpload={"Parts": parts})

    with pytest.raises(errors.EntityTooSmall):
        await complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}])
    with pytest.raises(errors.InvalidPartOrder):
        await complete([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}])
    with pytest.raises(errors.InvalidPart):
        await complete([{"PartNumber": 1, "ETag": '"0123"'}])
    with pytest.raises(errors.InvalidPart):
        await complete([{"PartNumber": 3, "ETag": e1}])
    with pytest.raises(errors.MalformedXML):
        await complete([])
    # a single small part is fine (the last part may be small); the unused part is dropped
    out = await complete([{"PartNumber": 2, "ETag": e2}])
    assert out["ETag"] == f'"{multipart_etag([b"b" * 1000])}"'
    await s3.state.store.settled()
    assert len(s3.blob_files()) == 1 and await s3.stored_bytes(bucket) == 1000
    # a retry of that completion: S3's same answer; another part list: the upload is gone
    assert (await complete([{"PartNumber": 2, "ETag": e2}]))["ETag"] == out["ETag"]
    with pytest.raises(errors.NoSuchUpload):
        await complete([{"PartNumber": 1, "ETag": e1}])


async def test_part_numbers_and_unknown_uploads(s3, bucket):
    uid = (await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k"))["UploadId"]
    for bad in (0, 10001):
        with pytest.raises(errors.InvalidArgument):
            await upload(s3, bucket, "k", uid, bad, b"x")
    with pytest.raises(errors.NoSuchUpload):
        await upload(s3, bucket, "k", "nope", 1, b"x")
    with pytest.raises(errors.NoSuchUpload):
        await upload(s3, bucket, "other-key", uid, 1, b"x")
    assert s3.blob_files() == []


async def test_reupload_part_replaces_it(s3, bucket):
    uid = (await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k"))["UploadId"]
    await upload(s3, bucket, "k", uid, 1, b"a" * 5000)
    await upload(s3, bucket, "k", uid, 1, b"b" * 3000)
    await s3.state.store.settled()
    assert len(s3.blob_files()) == 1 and await s3.stored_bytes(bucket) == 3000
    parts = await s3.call("ListParts", Bucket=bucket, Key="k", UploadId=uid)
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 3000)]


async def test_abort_removes_parts(s3, bucket):
    uid = (await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k"))["UploadId"]
    await upload(s3, bucket, "k", uid, 1, b"a" * 5000)
    await upload(s3, bucket, "k", uid, 2, b"a" * 5000)
    assert await s3.call("AbortMultipartUpload", Bucket=bucket, Key="k", UploadId=uid) == \
        {"__status__": 204}
    await s3.state.store.settled()
    assert s3.blob_files() == [] and await s3.stored_bytes(bucket) == 0
    with pytest.raises(errors.NoSuchUpload):
        await s3.call("AbortMultipartUpload", Bucket=bucket, Key="k", UploadId=uid)


async def test_composite_crc32_checksum(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(100)]
    up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32")
    assert up["ChecksumType"] == "COMPOSITE"
    uid = up["UploadId"]
    crcs = [zlib.crc32(p).to_bytes(4, "big") for p in parts]
    done = []
    for i, (p, c) in enumerate(zip(parts, crcs)):
        out = await upload(s3, bucket, "k", uid, i + 1, p, ChecksumCRC32=base64.b64encode(c).decode())
        assert out["ChecksumCRC32"] == base64.b64encode(c).decode()
        done.append({"PartNumber": i + 1, "ETag": out["ETag"], "ChecksumCRC32": out["ChecksumCRC32"]})
    with pytest.raises(errors.InvalidRequest):       # the upload's algorithm is CRC32
        await upload(s3, bucket, "k", uid, 3, b"x", ChecksumSHA256=base64.b64encode(
            hashlib.sha256(b"x").digest()).decode())
    out = await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="k", UploadId=uid,
                        MultipartUpload={"Parts": done})
    expected = base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode() + "-2"
    assert out["ChecksumCRC32"] == expected and out["ChecksumType"] == "COMPOSITE"
    got, _ = await s3.get(bucket, "k", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == expected


async def test_full_object_crc32c(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(777)]
    up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k", ChecksumAlgorithm="CRC32C",
                       ChecksumType="FULL_OBJECT")
    uid = up["UploadId"]
    done = []
    for i, p in enumerate(parts):
        out = await upload(s3, bucket, "k", uid, i + 1, p)
        done.append({"PartNumber": i + 1, "ETag": out["ETag"]})
    import crc32c
    whole = base64.b64encode(crc32c.crc32c(b"".join(parts)).to_bytes(4, "big")).decode()
    with pytest.raises(errors.BadDigest):
        await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="k", UploadId=uid,
                      MultipartUpload={"Parts": done}, ChecksumCRC32C="AAAAAA==")
    out = await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="k", UploadId=uid,
                        MultipartUpload={"Parts": done}, ChecksumCRC32C=whole)
    assert out["ChecksumCRC32C"] == whole and out["ChecksumType"] == "FULL_OBJECT"
    with pytest.raises(errors.InvalidRequest):
        await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k", ChecksumAlgorithm="SHA1",
                      ChecksumType="FULL_OBJECT")


async def test_upload_part_copy(s3, bucket):
    source = os.urandom(6 * MiB)
    await s3.put(bucket, "src", source)
    await s3.put(bucket, "small", b"0123456789")
    uid = (await s3.call("CreateMultipartUpload", Bucket=bucket, Key="dst"))["UploadId"]
    p1 = await s3.call("UploadPartCopy", Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                       CopySource=f"{bucket}/src", CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    assert p1["CopyPartResult"]["ETag"] == f'"{md5_hex(source[:5 * MiB])}"'
    p2 = await s3.call("UploadPartCopy", Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                       CopySource=f"{bucket}/small", CopySourceRange="bytes=2-4")
    with pytest.raises(errors.InvalidRange):
        await s3.call("UploadPartCopy", Bucket=bucket, Key="dst", UploadId=uid, PartNumber=3,
                      CopySource=f"{bucket}/small", CopySourceRange="bytes=5-10")
    with pytest.raises(errors.InvalidArgument):
        await s3.call("UploadPartCopy", Bucket=bucket, Key="dst", UploadId=uid, PartNumber=3,
                      CopySource=f"{bucket}/small", CopySourceRange="0-1")
    await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="dst", UploadId=uid,
                  MultipartUpload={"Parts": [
                      {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                      {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    _, body = await s3.get(bucket, "dst")
    assert body == source[:5 * MiB] + b"234"
    # CopyObject of a multipart object makes a single-part copy with an MD5 ETag
    out = await s3.call("CopyObject", Bucket=bucket, Key="flat", CopySource=f"{bucket}/dst")
    assert out["CopyObjectResult"]["ETag"] == f'"{md5_hex(body)}"'


async def test_list_multipart_uploads(s3, bucket):
    ids = {}
    for key in ["a/1", "a/2", "b", "c/x/1", "b"]:
        s3.clock.advance(1)
        up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key=key)
        ids.setdefault(key, []).append(up["UploadId"])
    out = await s3.call("ListMultipartUploads", Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in out["Uploads"]] == [
        ("a/1", ids["a/1"][0]), ("a/2", ids["a/2"][0]), ("b", ids["b"][0]), ("b", ids["b"][1]),
        ("c/x/1", ids["c/x/1"][0])]
    out = await s3.call("ListMultipartUploads", Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in out["Uploads"]] == ["b", "b"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/", "c/"]
    out = await s3.call("ListMultipartUploads", Bucket=bucket, MaxUploads=3)
    assert out["IsTruncated"] and out["NextKeyMarker"] == "b"
    assert out["NextUploadIdMarker"] == ids["b"][0]
    out = await s3.call("ListMultipartUploads", Bucket=bucket, KeyMarker=out["NextKeyMarker"],
                        UploadIdMarker=out["NextUploadIdMarker"])
    assert [(u["Key"], u["UploadId"]) for u in out["Uploads"]] == [
        ("b", ids["b"][1]), ("c/x/1", ids["c/x/1"][0])]
    out = await s3.call("ListMultipartUploads", Bucket=bucket, KeyMarker="b")
    assert [u["Key"] for u in out["Uploads"]] == ["c/x/1"]
    out = await s3.call("ListMultipartUploads", Bucket=bucket, Prefix="a/")
    assert [u["Key"] for u in out["Uploads"]] == ["a/1", "a/2"]


async def test_list_parts_pagination(s3, bucket):
    uid = (await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k"))["UploadId"]
    for n in range(1, 6):
        await upload(s3, bucket, "k", uid, n, bytes([n]) * 10)
    out = await s3.call("ListParts", Bucket=bucket, Key="k", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in out["Parts"]] == [1, 2] and out["IsTruncated"]
    assert out["NextPartNumberMarker"] == 2 and out["Owner"]["ID"] == "a" * 64
    out = await s3.call("ListParts", Bucket=bucket, Key="k", UploadId=uid, PartNumberMarker=2)
    assert [p["PartNumber"] for p in out["Parts"]] == [3, 4, 5] and not out["IsTruncated"]
