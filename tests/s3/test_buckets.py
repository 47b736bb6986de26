"""Buckets: names, regions, ownership, listing."""
from __future__ import annotations

import pytest

from s3_api import errors
from s3_api.buckets import valid_bucket_name
from tests.s3.helpers import BOB


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.01", "a" * 63, "1bucket"])
def test_valid_names(name):
    assert valid_bucket_name(name)


@pytest.mark.parametrize("name", ["ab", "a" * 64, "My-Bucket", "-bucket", "bucket-", "my..bucket",
                                  "192.168.1.1", "xn--bucket", "bucket-s3alias", "my_bucket",
                                  "sthree-bucket", "bucket.", ""])
def test_invalid_names(name):
    assert not valid_bucket_name(name)


async def test_create_head_delete(s3):
    out = await s3.call("CreateBucket", Bucket="photos")
    assert out["Location"] == "/photos"
    head = await s3.call("HeadBucket", Bucket="photos")
    assert head["BucketRegion"] == "us-east-1"
    loc = await s3.call("GetBucketLocation", Bucket="photos")
    assert loc["LocationConstraint"] is None
    assert await s3.call("DeleteBucket", Bucket="photos") == {"__status__": 204}
    with pytest.raises(errors.NoSuchBucket):
        await s3.call("HeadBucket", Bucket="photos")


async def test_invalid_name_refused(s3):
    with pytest.raises(errors.InvalidBucketName):
        await s3.call("CreateBucket", Bucket="Bad_Name")


async def test_recreate_rules(s3):
    await s3.call("CreateBucket", Bucket="photos")
    await s3.call("CreateBucket", Bucket="photos")       # us-east-1: 200 OK again
    with pytest.raises(errors.BucketAlreadyExists):
        await s3.call("CreateBucket", s3.ctx(account=BOB), Bucket="photos")
    eu = s3.ctx(region="eu-west-1")
    await s3.call("CreateBucket", eu, Bucket="eu-photos",
                  CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(errors.BucketAlreadyOwnedByYou):
        await s3.call("CreateBucket", eu, Bucket="eu-photos",
                      CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    loc = await s3.call("GetBucketLocation", Bucket="eu-photos")
    assert loc["LocationConstraint"] == "eu-west-1"
    head = await s3.call("HeadBucket", Bucket="eu-photos")
    assert head["BucketRegion"] == "eu-west-1"


async def test_location_constraints(s3):
    with pytest.raises(errors.IllegalLocationConstraintException):
        await s3.call("CreateBucket", s3.ctx(region="eu-west-1"), Bucket="bkt1")
    with pytest.raises(errors.IllegalLocationConstraintException):
        await s3.call("CreateBucket", s3.ctx(region="eu-west-1"), Bucket="bkt1",
                      CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with pytest.raises(errors.InvalidLocationConstraint):
        await s3.call("CreateBucket", Bucket="bkt1",
                      CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    with pytest.raises(errors.IllegalLocationConstraintException):
        await s3.call("CreateBucket", Bucket="bkt1",
                      CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


async def test_other_account_is_denied(s3):
    await s3.call("CreateBucket", Bucket="photos")
    bob = s3.ctx(account=BOB)
    for op in ("HeadBucket", "DeleteBucket", "GetBucketLocation", "ListObjects"):
        with pytest.raises(errors.AccessDenied):
            await s3.call(op, bob, Bucket="photos")
    with pytest.raises(errors.AccessDenied):
        await s3.call("ListBuckets", s3.ctx(account=None))
    with pytest.raises(errors.AccessDenied):
        await s3.call("HeadBucket", Bucket="photos", ExpectedBucketOwner=BOB.account_id)


async def test_delete_non_empty_bucket(s3):
    await s3.call("CreateBucket", Bucket="photos")
    await s3.put("photos", "k", b"x")
    with pytest.raises(errors.BucketNotEmpty):
        await s3.call("DeleteBucket", Bucket="photos")
    await s3.call("DeleteObject", Bucket="photos", Key="k")
    await s3.call("DeleteBucket", Bucket="photos")


async def test_delete_bucket_aborts_uploads_in_progress(s3):
    from tests.s3.helpers import Body
    await s3.call("CreateBucket", Bucket="photos")
    up = await s3.call("CreateMultipartUpload", Bucket="photos", Key="big")
    await s3.call("UploadPart", Bucket="photos", Key="big", UploadId=up["UploadId"], PartNumber=1,
                  Body=Body(b"x" * 1000), ContentLength=1000)
    assert await s3.stored_bytes("photos") == 1000
    await s3.call("DeleteBucket", Bucket="photos")
    await s3.state.store.settled()
    assert s3.blob_files() == [] and await s3.stored_bytes("photos") == 0


async def test_list_buckets(s3):
    for name in ("alpha", "beta", "gamma", "delta"):
        await s3.call("CreateBucket", Bucket=name)
    await s3.call("CreateBucket", s3.ctx(account=BOB), Bucket="bobs-bucket")
    out = await s3.call("ListBuckets")
    assert [b["Name"] for b in out["Buckets"]] == ["alpha", "beta", "delta", "gamma"]
    assert out["Owner"]["ID"] == "a" * 64 and out["Buckets"][0]["BucketRegion"] == "us-east-1"
    assert "ContinuationToken" not in out
    page = await s3.call("ListBuckets", MaxBuckets=3)
    assert [b["Name"] for b in page["Buckets"]] == ["alpha", "beta", "delta"]
    rest = await s3.call("ListBuckets", MaxBuckets=3, ContinuationToken=page["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == ["gamma"] and "ContinuationToken" not in rest
    out = await s3.call("ListBuckets", Prefix="de")
    assert [b["Name"] for b in out["Buckets"]] == ["delta"] and out["Prefix"] == "de"
    with pytest.raises(errors.InvalidArgument):
        await s3.call("ListBuckets", MaxBuckets=0)


async def test_acls_are_owner_only(s3):
    with pytest.raises(errors.InvalidBucketAclWithObjectOwnership):
        await s3.call("CreateBucket", Bucket="photos", ACL="public-read")
    await s3.call("CreateBucket", Bucket="photos", ACL="private")
    await s3.put("photos", "k", b"x", ACL="bucket-owner-full-control")
    with pytest.raises(errors.AccessControlListNotSupported):
        await s3.put("photos", "k", b"x", ACL="public-read")
    with pytest.raises(errors.AccessControlListNotSupported):
        await s3.put("photos", "k", b"x", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"')
    acl = await s3.call("GetBucketAcl", Bucket="photos")
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
