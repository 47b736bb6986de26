"""Versioning, tagging and object lock through boto3 and aws-cli against a live server."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(call, *args, **kwargs) -> dict:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    return info.value.response


def empty_bucket(s3, bucket: str) -> None:
    """What every conformance suite's cleanup does: delete every version, then the bucket."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if items:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def test_list_object_versions_on_an_unversioned_bucket_empties_it(server):
    s3 = server.client("s3")
    bucket = name("plain")
    s3.create_bucket(Bucket=bucket)
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"dir/{i}", Body=b"x" * i)
    out = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert [v["VersionId"] for v in out["Versions"]] == ["null", "null"]
    assert out["IsTruncated"] and out["NextKeyMarker"] == "dir/1"
    empty_bucket(s3, bucket)
    assert error_of(s3.head_bucket, Bucket=bucket)["Error"]["Code"] == "404"


def test_versioned_object_walk_through_boto3(server):
    s3 = server.client("s3")
    bucket = name("versions")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"second")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["Body"].read() == b"first"
    head = s3.head_object(Bucket=bucket, Key="doc")
    assert head["VersionId"] == v2
    deleted = s3.delete_object(Bucket=bucket, Key="doc")
    assert deleted["DeleteMarker"] is True
    missing = error_of(s3.get_object, Bucket=bucket, Key="doc")
    assert missing["Error"]["Code"] == "NoSuchKey"
    assert missing["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    assert missing["ResponseMetadata"]["HTTPHeaders"]["x-amz-version-id"] == deleted["VersionId"]
    marker = error_of(s3.get_object, Bucket=bucket, Key="doc", VersionId=deleted["VersionId"])
    assert marker["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert marker["Error"]["Code"] == "MethodNotAllowed"
    listed = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listed["Versions"]] == [v2, v1]
    assert listed["DeleteMarkers"][0]["IsLatest"] is True
    bad = error_of(s3.get_object, Bucket=bucket, Key="doc", VersionId="nope")
    assert (bad["Error"]["Code"], bad["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidArgument", 400)
    gone = error_of(s3.get_object, Bucket=bucket, Key="doc", VersionId="B" * 32)
    assert gone["Error"]["Code"] == "NoSuchVersion"
    s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": v1})
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"first"
    empty_bucket(s3, bucket)


def test_versions_are_isolated_between_accounts(server, tenant):
    s3, other = server.client("s3"), server.client("s3", account=tenant)
    bucket = name("mine")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    vid = s3.put_object(Bucket=bucket, Key="k", Body=b"secret")["VersionId"]
    for call, kwargs in [
            (other.list_object_versions, {}), (other.get_bucket_versioning, {}),
            (other.put_bucket_versioning, {"VersioningConfiguration": {"Status": "Suspended"}}),
            (other.get_object, {"Key": "k", "VersionId": vid}),
            (other.delete_object, {"Key": "k", "VersionId": vid}),
            (other.get_object_tagging, {"Key": "k"}),
            (other.put_object_tagging, {"Key": "k", "Tagging": {"TagSet": []}}),
            (other.get_bucket_tagging, {}), (other.delete_bucket_tagging, {}),
            (other.put_bucket_tagging, {"Tagging": {"TagSet": [{"Key": "a", "Value": "b"}]}}),
            (other.get_object_lock_configuration, {}),
            (other.get_object_retention, {"Key": "k"}),
            (other.get_object_legal_hold, {"Key": "k"}),
            (other.get_bucket_lifecycle_configuration, {}), (other.delete_bucket_lifecycle, {}),
            (other.put_bucket_lifecycle_configuration, {"LifecycleConfiguration": {"Rules": [
                {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
                 "Expiration": {"Days": 1}}]}})]:
        assert error_of(call, Bucket=bucket, **kwargs)["Error"]["Code"] == "AccessDenied", call
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=vid)["Body"].read() == b"secret"
    empty_bucket(s3, bucket)


def test_aws_cli_lists_versions(server):
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", **server.credentials()}
    s3 = server.client("s3")
    bucket = name("cli")
    s3.create_bucket(Bucket=bucket)

    def aws(*args):
        done = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    aws("s3api", "put-bucket-versioning", "--bucket", bucket,
        "--versioning-configuration", "Status=Enabled")
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    s3.put_object(Bucket=bucket, Key="a", Body=b"2")
    aws("s3api", "delete-object", "--bucket", bucket, "--key", "a")
    out = aws("s3api", "list-object-versions", "--bucket", bucket)
    assert len(out["Versions"]) == 2 and len(out["DeleteMarkers"]) == 1
    empty_bucket(s3, bucket)


def test_tagging_through_boto3(server):
    s3 = server.client("s3")
    bucket = name("tags")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b=two")
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"][
        "x-amz-tagging-count"] == "2"
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.copy_object(Bucket=bucket, Key="k2", CopySource=f"{bucket}/k", TaggingDirective="REPLACE",
                   Tagging="d=4")
    assert s3.get_object_tagging(Bucket=bucket, Key="k2")["TagSet"] == [{"Key": "d", "Value": "4"}]
    bad = error_of(s3.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": [
        {"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    assert (bad["Error"]["Code"], bad["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidTag", 400)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "x"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "x"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    assert error_of(s3.get_bucket_tagging, Bucket=bucket)["Error"]["Code"] == "NoSuchTagSet"
    empty_bucket(s3, bucket)


def test_object_lock_through_boto3(fresh_server):
    """(A server of its own: the COMPLIANCE version it leaves cannot be deleted for days.)"""
    import datetime as dt
    s3 = fresh_server.start().client("s3")
    bucket = name("lock")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}
    until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=3)
    vid = s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until)["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] == until
    refused = error_of(s3.delete_object, Bucket=bucket, Key="k", VersionId=vid,
                       BypassGovernanceRetention=True)
    assert (refused["Error"]["Code"], refused["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("AccessDenied", 403)
    assert s3.get_object_retention(Bucket=bucket, Key="k")["Retention"]["Mode"] == "COMPLIANCE"
    s3.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket=bucket, Key="k")["LegalHold"]["Status"] == "ON"
    default = s3.put_object(Bucket=bucket, Key="g", Body=b"y")["VersionId"]
    assert s3.get_object_retention(Bucket=bucket, Key="g", VersionId=default)["Retention"][
        "Mode"] == "GOVERNANCE"
    s3.delete_object(Bucket=bucket, Key="g", VersionId=default, BypassGovernanceRetention=True)
    past = error_of(s3.put_object_retention, Bucket=bucket, Key="k", Retention={
        "Mode": "COMPLIANCE", "RetainUntilDate": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)})
    assert past["Error"]["Code"] == "InvalidArgument"


def test_lifecycle_runs_in_the_served_process(fresh_server, tmp_path):
    """`nimbo serve` with a one-second lifecycle day (config file): an expiring object goes, the
    others stay, and the server still stops cleanly."""
    import time
    config = tmp_path / "nimbo.toml"
    config.write_text("s3_lifecycle_day_seconds = 1.0\n")
    fresh_server.extra_args = ["--config", str(config)]
    srv = fresh_server.start()
    s3 = srv.client("s3")
    s3.create_bucket(Bucket="expiring")
    s3.put_bucket_lifecycle_configuration(Bucket="expiring", LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]})
    s3.put_object(Bucket="expiring", Key="tmp/a", Body=b"x" * 100_000)
    s3.put_object(Bucket="expiring", Key="keep", Body=b"y")
    deadline = time.monotonic() + 30
    while "tmp/a" in [o["Key"] for o in s3.list_objects_v2(Bucket="expiring").get("Contents", [])]:
        assert time.monotonic() < deadline, "the lifecycle runner never ran"
        time.sleep(0.25)
    assert s3.get_object(Bucket="expiring", Key="keep")["Body"].read() == b"y"
    assert srv.stop() == 0
    assert "lifecycle pass: 1 objects expired" in srv.log()


@pytest.mark.parametrize("operation, kwargs", [
    ("put_bucket_versioning", {"VersioningConfiguration": {"Status": "Enabled"}}),
    ("put_bucket_tagging", {"Tagging": {"TagSet": []}}),
    ("put_bucket_lifecycle_configuration", {"LifecycleConfiguration": {"Rules": []}}),
    ("put_object_lock_configuration", {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}}),
])
@pytest.mark.parametrize("body", [b"<not xml", b"<Wrong><Root/></Wrong>", b"\xff\xfe garbage"])
def test_malformed_configuration_bodies(server, operation, kwargs, body):
    """A configuration body that is not the XML S3 expects: 400 MalformedXML, never a 500."""
    import hashlib, base64
    s3 = server.client("s3")
    bucket = name("badxml")
    s3.create_bucket(Bucket=bucket)

    def replace_body(request, **_):
        request.data = body
        request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        for header in [h for h in request.headers if h.lower().startswith("x-amz-checksum-")
                       or h.lower() == "x-amz-sdk-checksum-algorithm"]:
            del request.headers[header]
    s3.meta.events.register("before-sign.s3.*", replace_body)
    response = error_of(getattr(s3, operation), Bucket=bucket, **kwargs)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "MalformedXML"
    server.client("s3").delete_bucket(Bucket=bucket)


def test_invalid_retention_dates(fresh_server):
    """A retain-until date that is no date, in a header or a body: 400 with S3's code, not 500."""
    import base64, hashlib
    s3 = fresh_server.start().client("s3")
    s3.create_bucket(Bucket="dates", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket="dates", Key="k", Body=b"x")

    def bad_header(request, **_):
        del request.headers["x-amz-object-lock-retain-until-date"]
        request.headers["x-amz-object-lock-retain-until-date"] = "next tuesday"
    s3.meta.events.register("before-sign.s3.PutObject", bad_header)
    response = error_of(s3.put_object, Bucket="dates", Key="k2", Body=b"x",
                        ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate="2099-01-01T00:00:00Z")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response

    def bad_body(request, **_):
        request.data = (b'<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>GOVERNANCE'
                        b'</Mode><RetainUntilDate>next tuesday</RetainUntilDate></Retention>')
        for header in [h for h in request.headers if h.lower().startswith("x-amz-checksum-")
                       or h.lower() == "x-amz-sdk-checksum-algorithm"]:
            del request.headers[header]
        del request.headers["Content-MD5"]
        request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(request.data).digest()).decode()
    s3.meta.events.register("before-sign.s3.PutObjectRetention", bad_body)
    response = error_of(s3.put_object_retention, Bucket="dates", Key="k", Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": "2099-01-01T00:00:00Z"})
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response
    assert response["Error"]["Code"] in ("MalformedXML", "InvalidArgument")
