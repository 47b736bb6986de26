"""Object and bucket tagging: the operations, x-amz-tagging on writes, the tag count on reads,
S3's limits (InvalidTag), versions, and bucket tags in the usage ledger."""
from __future__ import annotations

import json

import pytest

from s3_api import errors
from tests.s3.helpers import BOB, Body


def tag_set(**tags):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


async def test_put_object_with_tagging_header_and_tag_count(s3, bucket):
    await s3.put(bucket, "k", b"x", Tagging="project=blue&team=a%20b")
    got, _ = await s3.get(bucket, "k")
    assert got["TagCount"] == 2
    head = await s3.call("HeadObject", Bucket=bucket, Key="k")
    assert head["TagCount"] == 2
    out = await s3.call("GetObjectTagging", Bucket=bucket, Key="k")
    assert out["TagSet"] == [{"Key": "project", "Value": "blue"}, {"Key": "team", "Value": "a b"}]
    await s3.put(bucket, "plain", b"x")
    assert "TagCount" not in (await s3.get(bucket, "plain"))[0]
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="plain"))["TagSet"] == []


async def test_put_get_delete_object_tagging(s3, bucket):
    await s3.put(bucket, "k", b"x")
    await s3.call("PutObjectTagging", Bucket=bucket, Key="k", Tagging=tag_set(a="1", b=""))
    out = await s3.call("GetObjectTagging", Bucket=bucket, Key="k")
    assert out["TagSet"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]
    deleted = await s3.call("DeleteObjectTagging", Bucket=bucket, Key="k")
    assert deleted["__status__"] == 204
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="k"))["TagSet"] == []
    _, body = await s3.get(bucket, "k")
    assert body == b"x"                       # tagging changes no bytes
    with pytest.raises(errors.NoSuchKey):
        await s3.call("PutObjectTagging", Bucket=bucket, Key="nope", Tagging=tag_set(a="1"))


async def test_tagging_a_noncurrent_version(s3, bucket):
    await s3.call("PutBucketVersioning", Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = (await s3.put(bucket, "k", b"1"))["VersionId"]
    v2 = (await s3.put(bucket, "k", b"2", Tagging="new=yes"))["VersionId"]
    out = await s3.call("PutObjectTagging", Bucket=bucket, Key="k", VersionId=v1,
                        Tagging=tag_set(old="yes"))
    assert out["VersionId"] == v1
    got = await s3.call("GetObjectTagging", Bucket=bucket, Key="k", VersionId=v1)
    assert got["TagSet"] == [{"Key": "old", "Value": "yes"}] and got["VersionId"] == v1
    got = await s3.call("GetObjectTagging", Bucket=bucket, Key="k")
    assert got["TagSet"] == [{"Key": "new", "Value": "yes"}] and got["VersionId"] == v2
    _, body = await s3.get(bucket, "k", VersionId=v1)
    assert body == b"1"
    listed = await s3.call("ListObjectVersions", Bucket=bucket)
    assert [v["VersionId"] for v in listed["Versions"]] == [v2, v1]


@pytest.mark.parametrize("tags, message", [
    ({f"k{i}": "v" for i in range(11)}, "Object tags cannot be greater than 10"),
    ({"k" * 129: "v"}, "The TagKey you have provided is invalid"),
    ({"k": "v" * 257}, "The TagValue you have provided is invalid"),
    ({"aws:reserved": "v"}, "Your TagKey cannot be prefixed with aws:"),
    ({"bad<key": "v"}, "The TagKey you have provided is invalid"),
])
async def test_object_tag_limits(s3, bucket, tags, message):
    await s3.put(bucket, "k", b"x")
    with pytest.raises(errors.InvalidTag) as info:
        await s3.call("PutObjectTagging", Bucket=bucket, Key="k", Tagging=tag_set(**tags))
    assert info.value.message == message and info.value.status == 400


async def test_tagging_header_is_validated(s3, bucket):
    with pytest.raises(errors.InvalidTag):
        await s3.put(bucket, "k", b"x", Tagging="&".join(f"k{i}=v" for i in range(11)))
    with pytest.raises(errors.InvalidArgument):
        await s3.put(bucket, "k", b"x", Tagging="a=1&a=2")
    with pytest.raises(errors.NoSuchKey):
        await s3.call("HeadObject", Bucket=bucket, Key="k")     # refused before any byte


async def test_copy_tagging_directive(s3, bucket):
    await s3.put(bucket, "src", b"x", Tagging="a=1")
    await s3.call("CopyObject", Bucket=bucket, Key="copied", CopySource=f"{bucket}/src")
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="copied"))["TagSet"] == \
        [{"Key": "a", "Value": "1"}]
    await s3.call("CopyObject", Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src",
                  TaggingDirective="REPLACE", Tagging="b=2")
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="replaced"))["TagSet"] == \
        [{"Key": "b", "Value": "2"}]
    with pytest.raises(errors.InvalidArgument):
        await s3.call("CopyObject", Bucket=bucket, Key="x", CopySource=f"{bucket}/src",
                      TaggingDirective="MERGE")


async def test_multipart_upload_tags_its_object(s3, bucket):
    upload = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="k", Tagging="mp=1")
    part = await s3.call("UploadPart", Bucket=bucket, Key="k", UploadId=upload["UploadId"],
                         PartNumber=1, Body=Body(b"abc"), ContentLength=3)
    await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="k", UploadId=upload["UploadId"],
                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="k"))["TagSet"] == \
        [{"Key": "mp", "Value": "1"}]


async def test_bucket_tagging_and_the_ledger(s3, bucket):
    with pytest.raises(errors.NoSuchTagSet):
        await s3.call("GetBucketTagging", Bucket=bucket)
    await s3.call("PutBucketTagging", Bucket=bucket, Tagging=tag_set(CostCenter="42", env="prod"))
    out = await s3.call("GetBucketTagging", Bucket=bucket)
    assert out["TagSet"] == [{"Key": "CostCenter", "Value": "42"}, {"Key": "env", "Value": "prod"}]
    await s3.put(bucket, "k", b"12345")
    rows = await s3.app.db.fetchall(
        "SELECT quantity, attrs FROM usage_events WHERE kind = 'stored_bytes' AND resource_id = ?"
        " ORDER BY seq", (bucket,))
    assert [r["quantity"] for r in rows] == [0, 5]
    assert all(json.loads(r["attrs"])["tags"] == {"CostCenter": "42", "env": "prod"} for r in rows)
    await s3.call("DeleteBucketTagging", Bucket=bucket)
    with pytest.raises(errors.NoSuchTagSet):
        await s3.call("GetBucketTagging", Bucket=bucket)
    with pytest.raises(errors.InvalidTag):
        await s3.call("PutBucketTagging", Bucket=bucket,
                      Tagging=tag_set(**{f"k{i}": "v" for i in range(51)}))
    with pytest.raises(errors.MalformedXML):
        await s3.call("PutBucketTagging", Bucket=bucket, Tagging={})


async def test_other_accounts_cannot_tag(s3, bucket):
    await s3.put(bucket, "k", b"x", Tagging="a=1")
    bob = s3.ctx(account=BOB)
    for operation, params in [
            ("GetObjectTagging", {"Key": "k"}), ("DeleteObjectTagging", {"Key": "k"}),
            ("PutObjectTagging", {"Key": "k", "Tagging": tag_set(b="2")}),
            ("GetBucketTagging", {}), ("DeleteBucketTagging", {}),
            ("PutBucketTagging", {"Tagging": tag_set(b="2")})]:
        with pytest.raises(errors.AccessDenied):
            await s3.call(operation, bob, Bucket=bucket, **params)
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="k"))["TagSet"] == \
        [{"Key": "a", "Value": "1"}]


async def test_post_object_tagging_field(s3, bucket):
    from s3_api import post_object
    from tests.s3.test_post_object import form_reader
    xml = ("<Tagging><TagSet><Tag><Key>from</Key><Value>form</Value></Tag></TagSet></Tagging>")
    form = await post_object.read_form(form_reader(b"data", key="posted", tagging=xml))
    await post_object.post_object(s3.ctx(), bucket, form, None)
    assert (await s3.call("GetObjectTagging", Bucket=bucket, Key="posted"))["TagSet"] == \
        [{"Key": "from", "Value": "form"}]
    form = await post_object.read_form(form_reader(b"data", key="bad", tagging="<Tagging><oops"))
    with pytest.raises(errors.MalformedXML):
        await post_object.post_object(s3.ctx(), bucket, form, None)
