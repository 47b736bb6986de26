"""Lifecycle: the configuration and its validation, x-amz-expiration, and passes of the runner
under the harness's injected clock (expiration, noncurrent versions, delete markers, uploads)."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from s3_api import errors
from s3_api.lifecycle_runner import run_lifecycle
from tests.s3.helpers import BOB

DAY = 86400


def rule(**extra):
    return {"ID": extra.pop("ID", "r1"), "Status": extra.pop("Status", "Enabled"),
            "Filter": extra.pop("Filter", {"Prefix": ""}), **extra}


async def configure(s3, bucket, *rules):
    return await s3.call("PutBucketLifecycleConfiguration", s3.ctx(headers={"Content-MD5": "x"}),
                         Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})


async def test_configuration_round_trip(s3, bucket):
    with pytest.raises(errors.NoSuchLifecycleConfiguration):
        await s3.call("GetBucketLifecycleConfiguration", Bucket=bucket)
    rules = [
        rule(ID="logs", Filter={"And": {"Prefix": "logs/", "Tags": [{"Key": "t", "Value": "1"}],
                                        "ObjectSizeGreaterThan": 10}},
             Expiration={"Days": 30},
             Transitions=[{"Days": 10, "StorageClass": "GLACIER"}]),
        rule(ID="old", Filter={"Prefix": "tmp/"},
             NoncurrentVersionExpiration={"NoncurrentDays": 5, "NewerNoncurrentVersions": 2},
             AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}),
        rule(ID="dm", Filter={"Tag": {"Key": "x", "Value": "y"}}, Status="Disabled",
             Expiration={"Date": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)}),
    ]
    await configure(s3, bucket, *rules)
    out = await s3.call("GetBucketLifecycleConfiguration", Bucket=bucket)
    assert out["Rules"] == rules
    await s3.call("DeleteBucketLifecycle", Bucket=bucket)
    with pytest.raises(errors.NoSuchLifecycleConfiguration):
        await s3.call("GetBucketLifecycleConfiguration", Bucket=bucket)


@pytest.mark.parametrize("bad, error", [
    (rule(), errors.InvalidRequest),                                    # no action
    (rule(Expiration={"Days": 0}), errors.InvalidArgument),
    (rule(Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True}), errors.MalformedXML),
    (rule(Status="On", Expiration={"Days": 1}), errors.MalformedXML),
    ({"ID": "x", "Status": "Enabled", "Prefix": "a", "Filter": {"Prefix": "a"},
      "Expiration": {"Days": 1}}, errors.MalformedXML),
    (rule(Expiration={"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)}),
     errors.InvalidArgument),                                           # not at midnight
    (rule(Expiration={"Days": 10}, Transitions=[{"Days": 20, "StorageClass": "GLACIER"}]),
     errors.InvalidArgument),                                           # transition after expiry
    (rule(Expiration={"Days": 40}, Transitions=[{"Days": 5, "StorageClass": "STANDARD_IA"}]),
     errors.InvalidArgument),                                           # IA needs 30 days
    (rule(Expiration={"Days": 40}, Transitions=[{"Date": dt.datetime(2030, 1, 1),
                                                  "StorageClass": "GLACIER"}]),
     errors.InvalidRequest),                                            # Date and Days mixed
    (rule(Expiration={"Days": 1}, Transitions=[{"Days": 0, "StorageClass": "FLOPPY"}]),
     errors.MalformedXML),
    (rule(Filter={"Tag": {"Key": "a", "Value": "b"}},
          AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1}), errors.InvalidRequest),
    (rule(ID="i" * 256, Expiration={"Days": 1}), errors.InvalidArgument),
])
async def test_invalid_configurations(s3, bucket, bad, error):
    with pytest.raises(error):
        await configure(s3, bucket, bad)


async def test_duplicate_ids_and_checksum_are_refused(s3, bucket):
    with pytest.raises(errors.InvalidArgument):
        await configure(s3, bucket, rule(Expiration={"Days": 1}), rule(Expiration={"Days": 2}))
    with pytest.raises(errors.InvalidRequest):
        await s3.call("PutBucketLifecycleConfiguration", Bucket=bucket,
                      LifecycleConfiguration={"Rules": [rule(Expiration={"Days": 1})]})
    with pytest.raises(errors.MalformedXML):
        await configure(s3, bucket)


async def test_expiration_header_and_pass(s3, bucket):
    await configure(s3, bucket, rule(ID="tmp-rule", Filter={"Prefix": "tmp/"},
                                     Expiration={"Days": 1}))
    put = await s3.put(bucket, "tmp/a", os.urandom(1000))
    await s3.put(bucket, "keep/b", b"kept")
    assert put["Expiration"] == 'expiry-date="Sun, 03 May 2026 00:00:00 GMT", rule-id="tmp-rule"'
    head = await s3.call("HeadObject", Bucket=bucket, Key="tmp/a")
    # written 2026-05-01 12:00: one day later, rounded up to midnight
    assert head["Expiration"] == 'expiry-date="Sun, 03 May 2026 00:00:00 GMT", rule-id="tmp-rule"'
    assert "Expiration" not in await s3.call("HeadObject", Bucket=bucket, Key="keep/b")
    assert (await run_lifecycle(s3.state))["expired"] == 0
    s3.clock.advance(DAY + 12 * 3600)               # 2026-05-03 00:00: due
    assert (await run_lifecycle(s3.state))["expired"] == 1
    with pytest.raises(errors.NoSuchKey):
        await s3.call("HeadObject", Bucket=bucket, Key="tmp/a")
    assert (await s3.get(bucket, "keep/b"))[1] == b"kept"
    assert await s3.stored_bytes(bucket) == 4        # expiring is metered like a delete


async def test_versioned_bucket_pass(s3, bucket):
    await s3.call("PutBucketVersioning", Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    await configure(s3, bucket, rule(
        NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}),
        rule(ID="markers", Expiration={"ExpiredObjectDeleteMarker": True}))
    ids = [(await s3.put(bucket, "k", data))["VersionId"] for data in (b"1", b"2", b"3")]
    await s3.call("DeleteObject", Bucket=bucket, Key="k")
    s3.clock.advance(3 * DAY)
    counts = await run_lifecycle(s3.state)
    assert counts["noncurrent"] == 2             # the newest noncurrent one is kept
    out = await s3.call("ListObjectVersions", Bucket=bucket)
    assert [v["VersionId"] for v in out["Versions"]] == [ids[2]]
    await s3.call("DeleteObject", Bucket=bucket, Key="k", VersionId=ids[2])
    counts = await run_lifecycle(s3.state)
    assert counts["markers"] == 1               # a marker alone goes
    assert await s3.call("ListObjectVersions", Bucket=bucket) == {
        "Name": bucket, "Prefix": "", "KeyMarker": "", "VersionIdMarker": "", "MaxKeys": 1000,
        "IsTruncated": False}


async def test_abort_incomplete_uploads(s3, bucket):
    await configure(s3, bucket, rule(AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2}))
    upload = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="big")
    s3.clock.advance(DAY)
    assert (await run_lifecycle(s3.state))["uploads"] == 0
    s3.clock.advance(2 * DAY)
    assert (await run_lifecycle(s3.state))["uploads"] == 1
    with pytest.raises(errors.NoSuchUpload):
        await s3.call("ListParts", Bucket=bucket, Key="big", UploadId=upload["UploadId"])


async def test_locked_noncurrent_versions_are_kept(s3):
    await s3.call("CreateBucket", Bucket="vault", ObjectLockEnabledForBucket=True)
    await configure(s3, "vault", rule(NoncurrentVersionExpiration={"NoncurrentDays": 1}))
    md5 = s3.ctx(headers={"Content-MD5": "x"})
    await s3.put("vault", "k", b"1", ctx=md5, ObjectLockLegalHoldStatus="ON")
    await s3.put("vault", "k", b"2")
    s3.clock.advance(3 * DAY)
    assert (await run_lifecycle(s3.state))["noncurrent"] == 0


async def test_other_accounts_cannot_touch_lifecycle(s3, bucket):
    await configure(s3, bucket, rule(Expiration={"Days": 1}))
    bob = s3.ctx(account=BOB, headers={"Content-MD5": "x"})
    for operation, params in [
            ("GetBucketLifecycleConfiguration", {}), ("DeleteBucketLifecycle", {}),
            ("PutBucketLifecycleConfiguration",
             {"LifecycleConfiguration": {"Rules": [rule(Expiration={"Days": 9})]}})]:
        with pytest.raises(errors.AccessDenied):
            await s3.call(operation, bob, Bucket=bucket, **params)
    out = await s3.call("GetBucketLifecycleConfiguration", Bucket=bucket)
    assert out["Rules"][0]["Expiration"] == {"Days": 1}


async def test_rules_without_an_id_get_one(s3, bucket):
    await configure(s3, bucket, {"Status": "Enabled", "Filter": {},
                                 "Expiration": {"ExpiredObjectDeleteMarker": True}})
    out = await s3.call("GetBucketLifecycleConfiguration", Bucket=bucket)
    assert len(out["Rules"][0]["ID"]) > 10 and out["Rules"][0]["Filter"] == {"Prefix": ""}


async def test_days_expiration_also_removes_old_lone_delete_markers(s3, bucket):
    await s3.call("PutBucketVersioning", Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    await configure(s3, bucket, rule(Expiration={"Days": 2}))
    vid = (await s3.put(bucket, "k", b"1"))["VersionId"]
    await s3.call("DeleteObject", Bucket=bucket, Key="k")
    await s3.call("DeleteObject", Bucket=bucket, Key="k", VersionId=vid)   # the marker is alone
    s3.clock.advance(DAY)
    assert (await run_lifecycle(s3.state))["markers"] == 0          # not old enough yet
    s3.clock.advance(2 * DAY)
    assert (await run_lifecycle(s3.state))["markers"] == 1
    assert "DeleteMarkers" not in await s3.call("ListObjectVersions", Bucket=bucket)
