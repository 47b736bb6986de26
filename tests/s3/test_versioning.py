"""Versioning: PutBucketVersioning/GetBucketVersioning, ListObjectVersions, versionId on every
object operation, delete markers, suspended versioning's null version, space and billing."""
from __future__ import annotations

import os

import pytest

from s3_api import errors
from tests.s3.helpers import BOB, Body

ENABLED = {"Status": "Enabled"}
SUSPENDED = {"Status": "Suspended"}


async def enable(s3, bucket, config=ENABLED):
    await s3.call("PutBucketVersioning", Bucket=bucket, VersioningConfiguration=config)


async def versions(s3, bucket, **params):
    out = await s3.call("ListObjectVersions", Bucket=bucket, **params)
    rows = [("v", v["Key"], v["VersionId"], v["IsLatest"]) for v in out.get("Versions", [])]
    rows += [("dm", m["Key"], m["VersionId"], m["IsLatest"]) for m in out.get("DeleteMarkers", [])]
    return out, rows


async def test_unversioned_bucket_lists_null_versions(s3, bucket):
    await s3.put(bucket, "a", b"1")
    await s3.put(bucket, "b", b"22")
    assert await s3.call("GetBucketVersioning", Bucket=bucket) == {}
    out, rows = await versions(s3, bucket)
    assert rows == [("v", "a", "null", True), ("v", "b", "null", True)]
    assert out["Versions"][1]["Size"] == 2 and out["IsTruncated"] is False
    put = await s3.put(bucket, "a", b"x")
    assert "VersionId" not in put            # unversioned buckets send no version id


async def test_overwrite_delete_and_restore_in_a_versioned_bucket(s3, bucket):
    await s3.put(bucket, "k", b"null version")       # from before versioning: the null version
    await enable(s3, bucket)
    assert await s3.call("GetBucketVersioning", Bucket=bucket) == {"Status": "Enabled"}
    v1 = (await s3.put(bucket, "k", b"one"))["VersionId"]
    v2 = (await s3.put(bucket, "k", b"two"))["VersionId"]
    assert v1 != v2 and len(v1) == 32 and v1 < v2    # opaque, unique, sortable by time
    got, body = await s3.get(bucket, "k")
    assert body == b"two" and got["VersionId"] == v2
    _, body = await s3.get(bucket, "k", VersionId=v1)
    assert body == b"one"
    _, body = await s3.get(bucket, "k", VersionId="null")
    assert body == b"null version"
    _, rows = await versions(s3, bucket)
    assert rows == [("v", "k", v2, True), ("v", "k", v1, False), ("v", "k", "null", False)]

    deleted = await s3.call("DeleteObject", Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["__status__"] == 204
    marker = deleted["VersionId"]
    with pytest.raises(errors.NoSuchKey) as info:
        await s3.get(bucket, "k")
    assert info.value.headers == {"x-amz-delete-marker": "true", "x-amz-version-id": marker}
    with pytest.raises(errors.MethodNotAllowed) as info:
        await s3.get(bucket, "k", VersionId=marker)
    assert info.value.status == 405 and info.value.headers["x-amz-delete-marker"] == "true"
    with pytest.raises(errors.MethodNotAllowed):
        await s3.call("HeadObject", Bucket=bucket, Key="k", VersionId=marker)
    listed = await s3.call("ListObjectsV2", Bucket=bucket)
    assert listed["Contents"] == []
    _, rows = await versions(s3, bucket)
    assert ("dm", "k", marker, True) in rows and ("v", "k", v2, False) in rows

    # deleting the marker by version id brings the object back
    out = await s3.call("DeleteObject", Bucket=bucket, Key="k", VersionId=marker)
    assert out["DeleteMarker"] is True and out["VersionId"] == marker
    _, body = await s3.get(bucket, "k")
    assert body == b"two"
    # restore an old version by copying it over the key
    copied = await s3.call("CopyObject", Bucket=bucket, Key="k",
                           CopySource=f"{bucket}/k?versionId={v1}")
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"] not in (v1, v2)
    _, body = await s3.get(bucket, "k")
    assert body == b"one"


async def test_deleting_a_version_frees_its_space_and_promotes_the_next(s3, bucket):
    await enable(s3, bucket)
    old, new = os.urandom(200_000), os.urandom(300_000)
    v1 = (await s3.put(bucket, "k", old))["VersionId"]
    v2 = (await s3.put(bucket, "k", new))["VersionId"]
    assert await s3.stored_bytes(bucket) == 500_000    # every version is billed
    assert len(s3.blob_files()) == 2
    await s3.call("DeleteObject", Bucket=bucket, Key="k", VersionId=v2)
    await s3.state.store.settled()
    assert await s3.stored_bytes(bucket) == 200_000
    assert len(s3.blob_files()) == 1
    got, body = await s3.get(bucket, "k")
    assert body == old and got["VersionId"] == v1
    await s3.call("DeleteObject", Bucket=bucket, Key="k", VersionId=v1)
    await s3.state.store.settled()
    assert s3.blob_files() == [] and await s3.stored_bytes(bucket) == 0
    await s3.call("DeleteBucket", Bucket=bucket)


async def test_bucket_with_only_versions_is_not_empty(s3, bucket):
    await enable(s3, bucket)
    await s3.put(bucket, "k", b"x")
    await s3.call("DeleteObject", Bucket=bucket, Key="k")
    with pytest.raises(errors.BucketNotEmpty):
        await s3.call("DeleteBucket", Bucket=bucket)


async def test_suspended_versioning_overwrites_the_null_version(s3, bucket):
    await enable(s3, bucket)
    v1 = (await s3.put(bucket, "k", b"versioned"))["VersionId"]
    await enable(s3, bucket, SUSPENDED)
    assert (await s3.call("GetBucketVersioning", Bucket=bucket))["Status"] == "Suspended"
    assert (await s3.put(bucket, "k", b"null 1"))["VersionId"] == "null"
    assert (await s3.put(bucket, "k", b"null 2"))["VersionId"] == "null"
    _, rows = await versions(s3, bucket)
    assert rows == [("v", "k", "null", True), ("v", "k", v1, False)]
    assert await s3.stored_bytes(bucket) == len(b"versioned") + len(b"null 2")
    marker = await s3.call("DeleteObject", Bucket=bucket, Key="k")
    assert marker["VersionId"] == "null" and marker["DeleteMarker"] is True
    _, rows = await versions(s3, bucket)     # the null object made way for the null marker
    assert rows == [("v", "k", v1, False), ("dm", "k", "null", True)]
    assert await s3.stored_bytes(bucket) == len(b"versioned")


async def test_version_ids_are_checked(s3, bucket):
    await enable(s3, bucket)
    await s3.put(bucket, "k", b"x")
    with pytest.raises(errors.InvalidArgument) as info:
        await s3.get(bucket, "k", VersionId="not-a-version")
    assert info.value.message == "Invalid version id specified"
    with pytest.raises(errors.NoSuchVersion):
        await s3.get(bucket, "k", VersionId="A" * 32)
    with pytest.raises(errors.InvalidArgument):
        await s3.call("DeleteObject", Bucket=bucket, Key="k", VersionId="bad")
    with pytest.raises(errors.InvalidArgument):
        await s3.call("ListObjectVersions", Bucket=bucket, VersionIdMarker="A" * 32)


async def test_versioning_configuration_is_validated(s3, bucket):
    with pytest.raises(errors.MalformedXML):
        await enable(s3, bucket, {"Status": "On"})
    with pytest.raises(errors.AccessDenied):      # MFA delete needs an MFA
        await enable(s3, bucket, {"Status": "Enabled", "MFADelete": "Enabled"})
    await enable(s3, bucket, {"Status": "Enabled", "MFADelete": "Disabled"})
    assert await s3.call("GetBucketVersioning", Bucket=bucket) == {"Status": "Enabled",
                                                                  "MFADelete": "Disabled"}


async def test_list_object_versions_pages_with_markers_and_prefixes(s3, bucket):
    await enable(s3, bucket)
    expected = []
    for key in ("a", "b/1", "b/2", "c"):
        ids = [(await s3.put(bucket, key, b"x"))["VersionId"] for _ in range(3)]
        expected += [(key, vid) for vid in reversed(ids)]
    seen, params = [], {}
    for _ in range(20):
        out = await s3.call("ListObjectVersions", Bucket=bucket, MaxKeys=2, **params)
        seen += [(v["Key"], v["VersionId"]) for v in out.get("Versions", [])]
        if not out["IsTruncated"]:
            break
        params = {"KeyMarker": out["NextKeyMarker"], "VersionIdMarker": out["NextVersionIdMarker"]}
    assert seen == expected
    out = await s3.call("ListObjectVersions", Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in out["Versions"]} == {"a", "c"}
    out = await s3.call("ListObjectVersions", Bucket=bucket, Prefix="b/", KeyMarker="b/1")
    assert {v["Key"] for v in out["Versions"]} == {"b/2"}
    latest = [v["IsLatest"] for v in out["Versions"]]
    assert latest == [True, False, False]
    out = await s3.call("ListObjectVersions", Bucket=bucket, Prefix="b/",
                        KeyMarker="b/1", VersionIdMarker=expected[3][1])
    assert [(v["Key"], v["IsLatest"]) for v in out["Versions"]][:2] == [("b/1", False), ("b/1", False)]
    assert len(out["Versions"]) == 5


async def test_delete_objects_with_versions(s3, bucket):
    await enable(s3, bucket)
    v1 = (await s3.put(bucket, "k", b"1"))["VersionId"]
    v2 = (await s3.put(bucket, "k", b"2"))["VersionId"]
    out = await s3.call("DeleteObjects", Bucket=bucket, Delete={"Objects": [
        {"Key": "k", "VersionId": v1}, {"Key": "other"}, {"Key": "k", "VersionId": "bad"}]})
    assert out["Deleted"][0] == {"Key": "k", "VersionId": v1}
    assert out["Deleted"][1]["DeleteMarker"] is True and out["Deleted"][1]["DeleteMarkerVersionId"]
    assert out["Errors"][0]["Code"] == "NoSuchVersion"
    _, rows = await versions(s3, bucket)
    assert ("v", "k", v2, True) in rows and not any(r[2] == v1 for r in rows)


async def test_multipart_completes_into_a_new_version(s3, bucket):
    await enable(s3, bucket)
    v1 = (await s3.put(bucket, "k", b"small"))["VersionId"]
    upload = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k")
    part = await s3.call("UploadPart", Bucket=bucket, Key="k", UploadId=upload["UploadId"],
                         PartNumber=1, Body=Body(b"part"), ContentLength=4)
    done = await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="k",
                         UploadId=upload["UploadId"],
                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["VersionId"] not in (None, v1)
    _, body = await s3.get(bucket, "k", VersionId=v1)
    assert body == b"small"
    _, body = await s3.get(bucket, "k")
    assert body == b"part"


async def test_conditional_write_sees_a_delete_marker_as_no_object(s3, bucket):
    await enable(s3, bucket)
    await s3.put(bucket, "k", b"1")
    await s3.call("DeleteObject", Bucket=bucket, Key="k")
    await s3.put(bucket, "k", b"2", IfNoneMatch="*")      # the current version is a marker
    with pytest.raises(errors.PreconditionFailed):
        await s3.put(bucket, "k", b"3", IfNoneMatch="*")


async def test_other_accounts_cannot_touch_versions(s3, bucket):
    await enable(s3, bucket)
    vid = (await s3.put(bucket, "k", b"1"))["VersionId"]
    bob = s3.ctx(account=BOB)
    for operation, params in [
            ("ListObjectVersions", {}), ("GetBucketVersioning", {}),
            ("PutBucketVersioning", {"VersioningConfiguration": SUSPENDED}),
            ("GetObject", {"Key": "k", "VersionId": vid}),
            ("DeleteObject", {"Key": "k", "VersionId": vid})]:
        with pytest.raises(errors.AccessDenied):
            await s3.call(operation, bob, Bucket=bucket, **params)
    _, body = await s3.get(bucket, "k", VersionId=vid)
    assert body == b"1"


async def test_list_object_versions_url_encoding(s3, bucket):
    await s3.put(bucket, "a b/ü", b"x")
    out = await s3.call("ListObjectVersions", Bucket=bucket, EncodingType="url", Delimiter="/")
    assert out["CommonPrefixes"] == [{"Prefix": "a%20b/"}] and out["EncodingType"] == "url"
    out = await s3.call("ListObjectVersions", Bucket=bucket, EncodingType="url")
    assert out["Versions"][0]["Key"] == "a%20b/%C3%BC"
    with pytest.raises(errors.InvalidArgument):
        await s3.call("ListObjectVersions", Bucket=bucket, EncodingType="base64")


async def test_upload_part_copy_from_a_version(s3, bucket):
    await enable(s3, bucket)
    v1 = (await s3.put(bucket, "src", b"old bytes"))["VersionId"]
    await s3.put(bucket, "src", b"new bytes")
    upload = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="dst")
    out = await s3.call("UploadPartCopy", Bucket=bucket, Key="dst", UploadId=upload["UploadId"],
                        PartNumber=1, CopySource=f"{bucket}/src?versionId={v1}")
    assert out["CopySourceVersionId"] == v1
    await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="dst", UploadId=upload["UploadId"],
                  MultipartUpload={"Parts": [{"PartNumber": 1,
                                              "ETag": out["CopyPartResult"]["ETag"]}]})
    assert (await s3.get(bucket, "dst"))[1] == b"old bytes"


async def test_concurrent_puts_and_deletes_in_one_group_commit(s3, bucket):
    """Writes of one key batched into one transaction each make their own version, in order."""
    import asyncio
    await enable(s3, bucket)
    results = await asyncio.gather(
        *[s3.put(bucket, "k", bytes([i]) * (i + 1)) for i in range(20)],
        s3.call("DeleteObject", Bucket=bucket, Key="k"))
    ids = [r["VersionId"] for r in results]
    assert len(set(ids)) == 21
    out = await s3.call("ListObjectVersions", Bucket=bucket)
    entries = out["Versions"] + out["DeleteMarkers"]
    assert sum(e["IsLatest"] for e in entries) == 1 and len(entries) == 21
    assert await s3.stored_bytes(bucket) == sum(range(1, 21))
    # the listing is newest first: the order the writes were committed in
    listed = [v["VersionId"] for v in out["Versions"]]
    assert listed == sorted(listed, reverse=True)
