"""Object lock: buckets created with it, default retention, retention modes and the bypass header,
legal holds, the server's (injected) clock deciding, and S3's refusals."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

from s3_api import errors
from tests.s3.helpers import BOB

MD5 = {"Content-MD5": base64.b64encode(hashlib.md5(b"x").digest()).decode()}
DAY = 86400


@pytest.fixture
async def locked(s3):
    await s3.call("CreateBucket", Bucket="vault", ObjectLockEnabledForBucket=True)
    return "vault"


def later(s3, seconds: float) -> dt.datetime:
    return s3.clock.now + dt.timedelta(seconds=seconds)


async def put(s3, bucket, key, data=b"x", **params):
    return await s3.put(bucket, key, data, ctx=s3.ctx(headers=MD5), **params)


async def test_bucket_created_with_object_lock(s3, locked):
    assert (await s3.call("GetBucketVersioning", Bucket=locked))["Status"] == "Enabled"
    out = await s3.call("GetObjectLockConfiguration", Bucket=locked)
    assert out == {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}}
    with pytest.raises(errors.InvalidBucketState):
        await s3.call("PutBucketVersioning", Bucket=locked,
                      VersioningConfiguration={"Status": "Suspended"})


async def test_compliance_retention_refuses_deletion_until_the_date(s3, locked):
    vid = (await put(s3, locked, "k", ObjectLockMode="COMPLIANCE",
                     ObjectLockRetainUntilDate=later(s3, DAY)))["VersionId"]
    head = await s3.call("HeadObject", Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == later(s3, DAY)
    for bypass in (False, True):
        with pytest.raises(errors.AccessDenied) as info:
            await s3.call("DeleteObject", Bucket=locked, Key="k", VersionId=vid,
                          BypassGovernanceRetention=bypass)
        assert info.value.message == "Access Denied because object protected by object lock."
    # a plain DELETE only adds a delete marker: allowed
    marker = await s3.call("DeleteObject", Bucket=locked, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(errors.AccessDenied):        # shortening COMPLIANCE is refused
        await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                      VersionId=vid, Retention={"Mode": "COMPLIANCE",
                                                "RetainUntilDate": later(s3, 3600)})
    await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                  VersionId=vid, Retention={"Mode": "COMPLIANCE",
                                            "RetainUntilDate": later(s3, 2 * DAY)})
    got = await s3.call("GetObjectRetention", Bucket=locked, Key="k", VersionId=vid)
    assert got["Retention"]["RetainUntilDate"] == later(s3, 2 * DAY)
    s3.clock.advance(2 * DAY + 1)                      # the server's clock decides
    await s3.call("DeleteObject", Bucket=locked, Key="k", VersionId=vid)
    with pytest.raises(errors.NoSuchVersion):
        await s3.get(locked, "k", VersionId=vid)


async def test_governance_yields_to_the_bypass_header(s3, locked):
    vid = (await put(s3, locked, "k", ObjectLockMode="GOVERNANCE",
                     ObjectLockRetainUntilDate=later(s3, DAY)))["VersionId"]
    with pytest.raises(errors.AccessDenied):
        await s3.call("DeleteObject", Bucket=locked, Key="k", VersionId=vid)
    with pytest.raises(errors.AccessDenied):
        await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                      Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(s3, 60)})
    with pytest.raises(errors.AccessDenied):        # a mode change alters it too
        await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                      Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(s3, 2 * DAY)})
    await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                  Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(s3, 2 * DAY)})
    await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                  Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(s3, 60)},
                  BypassGovernanceRetention=True)
    await s3.call("DeleteObject", Bucket=locked, Key="k", VersionId=vid,
                  BypassGovernanceRetention=True)
    out = await s3.call("ListObjectVersions", Bucket=locked)
    assert "Versions" not in out


async def test_legal_hold(s3, locked):
    vid = (await put(s3, locked, "k", ObjectLockLegalHoldStatus="ON"))["VersionId"]
    assert (await s3.call("GetObjectLegalHold", Bucket=locked, Key="k"))["LegalHold"] == \
        {"Status": "ON"}
    with pytest.raises(errors.AccessDenied):
        await s3.call("DeleteObject", Bucket=locked, Key="k", VersionId=vid,
                      BypassGovernanceRetention=True)
    await s3.call("PutObjectLegalHold", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                  LegalHold={"Status": "OFF"})
    head = await s3.call("HeadObject", Bucket=locked, Key="k")
    assert head["ObjectLockLegalHoldStatus"] == "OFF"
    await s3.call("DeleteObject", Bucket=locked, Key="k", VersionId=vid)
    with pytest.raises(errors.MalformedXML):
        await s3.call("PutObjectLegalHold", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                      LegalHold={"Status": "MAYBE"})


async def test_default_retention_applies_to_new_versions(s3, locked):
    await s3.call("PutObjectLockConfiguration", s3.ctx(headers=MD5), Bucket=locked,
                  ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {
                      "DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}})
    out = await s3.call("GetObjectLockConfiguration", Bucket=locked)
    assert out["ObjectLockConfiguration"]["Rule"] == {
        "DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}
    vid = (await put(s3, locked, "k"))["VersionId"]
    got = await s3.call("GetObjectRetention", Bucket=locked, Key="k", VersionId=vid)
    assert got["Retention"] == {"Mode": "GOVERNANCE", "RetainUntilDate": later(s3, 2 * DAY)}
    with pytest.raises(errors.InvalidRequest):      # a lock needs Content-MD5 or a checksum
        await s3.put(locked, "k2", b"x")


@pytest.mark.parametrize("config, error", [
    ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE",
                                                                    "Days": 1, "Years": 1}}},
     errors.MalformedXML),
    ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE",
                                                                    "Days": 0}}},
     errors.InvalidRetentionPeriod),
    ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "FOREVER",
                                                                    "Days": 1}}},
     errors.MalformedXML),
    ({"ObjectLockEnabled": "Disabled"}, errors.MalformedXML),
])
async def test_lock_configuration_is_validated(s3, locked, config, error):
    with pytest.raises(error):
        await s3.call("PutObjectLockConfiguration", s3.ctx(headers=MD5), Bucket=locked,
                      ObjectLockConfiguration=config)


async def test_lock_needs_an_object_lock_bucket(s3, bucket):
    with pytest.raises(errors.ObjectLockConfigurationNotFoundError):
        await s3.call("GetObjectLockConfiguration", Bucket=bucket)
    with pytest.raises(errors.InvalidRequest):
        await put(s3, bucket, "k", ObjectLockLegalHoldStatus="ON")
    await put(s3, bucket, "k")
    with pytest.raises(errors.InvalidRequest):
        await s3.call("GetObjectRetention", Bucket=bucket, Key="k")
    enabled = {"ObjectLockEnabled": "Enabled"}
    with pytest.raises(errors.InvalidBucketState):     # versioning must be Enabled first
        await s3.call("PutObjectLockConfiguration", s3.ctx(headers=MD5), Bucket=bucket,
                      ObjectLockConfiguration=enabled)
    await s3.call("PutBucketVersioning", Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(errors.InvalidRequest):         # Content-MD5 required
        await s3.call("PutObjectLockConfiguration", Bucket=bucket, ObjectLockConfiguration=enabled)
    await s3.call("PutObjectLockConfiguration", s3.ctx(headers=MD5), Bucket=bucket,
                  ObjectLockConfiguration=enabled)
    assert (await s3.call("GetObjectLockConfiguration", Bucket=bucket))[
        "ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


async def test_bad_retention_requests(s3, locked):
    with pytest.raises(errors.InvalidArgument):        # a date in the past
        await put(s3, locked, "k", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=later(s3, -60))
    with pytest.raises(errors.InvalidArgument):        # mode without a date
        await put(s3, locked, "k", ObjectLockMode="COMPLIANCE")
    with pytest.raises(errors.InvalidArgument):
        await put(s3, locked, "k", ObjectLockMode="FOREVER",
                  ObjectLockRetainUntilDate=later(s3, 60))
    await put(s3, locked, "k")
    with pytest.raises(errors.NoSuchObjectLockConfiguration):
        await s3.call("GetObjectRetention", Bucket=locked, Key="k")
    with pytest.raises(errors.NoSuchObjectLockConfiguration):
        await s3.call("GetObjectLegalHold", Bucket=locked, Key="k")
    with pytest.raises(errors.InvalidArgument):
        await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                      Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(s3, -1)})
    with pytest.raises(errors.MalformedXML):
        await s3.call("PutObjectRetention", s3.ctx(headers=MD5), Bucket=locked, Key="k",
                      Retention={"Mode": "SOFT", "RetainUntilDate": later(s3, 60)})


async def test_copy_and_multipart_take_lock_headers(s3, locked):
    await put(s3, locked, "src")
    out = await s3.call("CopyObject", Bucket=locked, Key="dst", CopySource=f"{locked}/src",
                        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(s3, 60))
    head = await s3.call("HeadObject", Bucket=locked, Key="dst", VersionId=out["VersionId"])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    upload = await s3.call("CreateMultipartUpload", s3.ctx(headers=MD5), Bucket=locked, Key="mp",
                           ObjectLockLegalHoldStatus="ON")
    from tests.s3.helpers import Body
    part = await s3.call("UploadPart", Bucket=locked, Key="mp", UploadId=upload["UploadId"],
                         PartNumber=1, Body=Body(b"abc"), ContentLength=3)
    await s3.call("CompleteMultipartUpload", Bucket=locked, Key="mp", UploadId=upload["UploadId"],
                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert (await s3.call("GetObjectLegalHold", Bucket=locked, Key="mp"))["LegalHold"] == \
        {"Status": "ON"}


async def test_other_accounts_cannot_lock_or_read_locks(s3, locked):
    await put(s3, locked, "k", ObjectLockLegalHoldStatus="ON")
    bob = s3.ctx(account=BOB, headers=MD5)
    for operation, params in [
            ("GetObjectLockConfiguration", {}),
            ("PutObjectLockConfiguration", {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}}),
            ("GetObjectRetention", {"Key": "k"}), ("GetObjectLegalHold", {"Key": "k"}),
            ("PutObjectLegalHold", {"Key": "k", "LegalHold": {"Status": "OFF"}}),
            ("PutObjectRetention", {"Key": "k", "Retention": {
                "Mode": "GOVERNANCE", "RetainUntilDate": later(s3, 60)}})]:
        with pytest.raises(errors.AccessDenied):
            await s3.call(operation, bob, Bucket=locked, **params)
    assert (await s3.call("GetObjectLegalHold", Bucket=locked, Key="k"))["LegalHold"] == \
        {"Status": "ON"}
