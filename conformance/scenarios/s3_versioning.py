"""S3 scenarios for versions, tags, object lock and lifecycle configurations, through boto3."""
from __future__ import annotations

import datetime as dt

from botocore.exceptions import ClientError

from conformance import scenario


def versioned_bucket(ctx, hint: str, lock: bool = False) -> str:
    """A bucket with versioning enabled (or object lock, which enables it), every version of which
    is deleted at the end (the clean-up the conformance suites do with ListObjectVersions)."""
    name = ctx.name(hint)
    params: dict = {"Bucket": name}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    if lock:
        params["ObjectLockEnabledForBucket"] = True
    ctx.call("s3", "CreateBucket", **params)
    ctx.defer(_delete_every_version, ctx, name)
    if not lock:
        ctx.call("s3", "PutBucketVersioning", Bucket=name,
                 VersioningConfiguration={"Status": "Enabled"})
    return name


def _delete_every_version(ctx, name: str) -> None:
    s3 = ctx.client("s3", validate=False)
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                try:
                    s3.delete_object(Bucket=name, Key=item["Key"], VersionId=item["VersionId"],
                                     BypassGovernanceRetention=True)
                except ClientError:
                    pass    # a COMPLIANCE-locked version stays until its date
        s3.delete_bucket(Bucket=name)
    except ClientError:
        pass


@scenario("s3", "ListObjectVersions", client="boto3", variant="unversioned bucket")
def list_versions_unversioned(ctx):
    """An unversioned bucket lists its objects as the null version (what clean-ups rely on)."""
    bucket = ctx.bucket("plainversions")
    for key in ("a", "b/c"):
        ctx.call("s3", "PutObject", Bucket=bucket, Key=key, Body=b"x")
    out = ctx.call("s3", "ListObjectVersions", Bucket=bucket)
    ctx.check_equal([(v["Key"], v["VersionId"], v["IsLatest"]) for v in out.get("Versions", [])],
                    [("a", "null", True), ("b/c", "null", True)], "Versions")
    out = ctx.call("s3", "ListObjectVersions", Bucket=bucket, Delimiter="/")
    ctx.check_equal([p["Prefix"] for p in out.get("CommonPrefixes", [])], ["b/"], "CommonPrefixes")


@scenario("s3", ["PutBucketVersioning", "GetBucketVersioning", "ListObjectVersions"],
          client="boto3")
def versioning_basics(ctx):
    """Overwrites keep old versions (newest first, one IsLatest), GET by versionId, a DELETE adds
    a delete marker: NoSuchKey with x-amz-delete-marker, 405 on the marker by version id."""
    bucket = versioned_bucket(ctx, "versioned")
    ctx.check_equal(ctx.call("s3", "GetBucketVersioning", Bucket=bucket).get("Status"), "Enabled",
                    "Status")
    v1 = ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    ctx.check(v1 != v2, "two PUTs gave one version id")
    body = ctx.call("s3", "GetObject", Bucket=bucket, Key="k", VersionId=v1)["Body"].read()
    ctx.check_equal(body, b"one", "the first version's bytes")
    marker = ctx.call("s3", "DeleteObject", Bucket=bucket, Key="k")
    ctx.check_equal(marker.get("DeleteMarker"), True, "DeleteMarker")
    try:
        ctx.client("s3", validate=False).get_object(Bucket=bucket, Key="k")
        ctx.check(False, "GetObject after a delete marker succeeded")
    except ClientError as exc:
        headers = exc.response["ResponseMetadata"]["HTTPHeaders"]
        ctx.check_equal(exc.response["Error"]["Code"], "NoSuchKey", "error code")
        ctx.check_equal(headers.get("x-amz-delete-marker"), "true", "x-amz-delete-marker")
        ctx.check_equal(headers.get("x-amz-version-id"), marker.get("VersionId"), "x-amz-version-id")
    with ctx.expect_error("MethodNotAllowed", 405):
        ctx.call("s3", "GetObject", Bucket=bucket, Key="k", VersionId=marker["VersionId"])
    out = ctx.call("s3", "ListObjectVersions", Bucket=bucket)
    ctx.check_equal([v["VersionId"] for v in out.get("Versions", [])], [v2, v1], "Versions")
    ctx.check_equal([m["IsLatest"] for m in out.get("DeleteMarkers", [])], [True], "DeleteMarkers")
    page = ctx.call("s3", "ListObjectVersions", Bucket=bucket, MaxKeys=1, KeyMarker="k",
                    VersionIdMarker=v2)
    ctx.check_equal([v["VersionId"] for v in page.get("Versions", [])], [v1], "page after v2")


@scenario("s3", "PutBucketVersioning", client="boto3", variant="suspended")
def versioning_suspended(ctx):
    """Suspended versioning writes the null version, replacing the previous null version."""
    bucket = versioned_bucket(ctx, "suspended")
    kept = ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    ctx.call("s3", "PutBucketVersioning", Bucket=bucket,
             VersioningConfiguration={"Status": "Suspended"})
    for body in (b"null 1", b"null 2"):
        out = ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=body)
        ctx.check_equal(out.get("VersionId"), "null", "VersionId while suspended")
    out = ctx.call("s3", "ListObjectVersions", Bucket=bucket)
    ctx.check_equal([v["VersionId"] for v in out.get("Versions", [])], ["null", kept], "Versions")


@scenario("s3", "GetObject", client="boto3", variant="bad version id")
def bad_version_ids(ctx):
    """A malformed versionId is InvalidArgument (400); a well-formed unknown one NoSuchVersion."""
    bucket = versioned_bucket(ctx, "badversion")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"x")
    with ctx.expect_error("InvalidArgument", 400):
        ctx.call("s3", "GetObject", Bucket=bucket, Key="k", VersionId="not-a-version")
    with ctx.expect_error("NoSuchVersion", 404):
        ctx.call("s3", "GetObject", Bucket=bucket, Key="k", VersionId="A" * 32)


@scenario("s3", ["PutObjectTagging", "GetObjectTagging", "DeleteObjectTagging"], client="boto3")
def object_tagging(ctx):
    """Tags from x-amz-tagging and PutObjectTagging, the tag count on HEAD, InvalidTag limits."""
    bucket = ctx.bucket("tagging")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b=2")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="k")
    ctx.check_equal(head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count"), "2",
                    "x-amz-tagging-count")
    ctx.call("s3", "PutObjectTagging", Bucket=bucket, Key="k",
             Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    ctx.check_equal(ctx.call("s3", "GetObjectTagging", Bucket=bucket, Key="k")["TagSet"],
                    [{"Key": "c", "Value": "3"}], "TagSet")
    ctx.call("s3", "DeleteObjectTagging", Bucket=bucket, Key="k")
    ctx.check_equal(ctx.call("s3", "GetObjectTagging", Bucket=bucket, Key="k")["TagSet"], [],
                    "TagSet after delete")
    with ctx.expect_error("InvalidTag", 400):
        ctx.call("s3", "PutObjectTagging", Bucket=bucket, Key="k", Tagging={"TagSet": [
            {"Key": f"k{i}", "Value": "v"} for i in range(11)]})


@scenario("s3", ["PutBucketTagging", "GetBucketTagging", "DeleteBucketTagging"], client="boto3")
def bucket_tagging(ctx):
    """Bucket tags round-trip; without any, GetBucketTagging is NoSuchTagSet."""
    bucket = ctx.bucket("buckettags")
    with ctx.expect_error("NoSuchTagSet", 404):
        ctx.call("s3", "GetBucketTagging", Bucket=bucket)
    tags = [{"Key": "CostCenter", "Value": "42"}]
    ctx.call("s3", "PutBucketTagging", Bucket=bucket, Tagging={"TagSet": tags})
    ctx.check_equal(ctx.call("s3", "GetBucketTagging", Bucket=bucket)["TagSet"], tags, "TagSet")
    ctx.call("s3", "DeleteBucketTagging", Bucket=bucket)


@scenario("s3", ["PutObjectLockConfiguration", "GetObjectLockConfiguration", "PutObjectRetention",
                 "GetObjectRetention", "PutObjectLegalHold", "GetObjectLegalHold"], client="boto3")
def object_lock(ctx):
    """A lock bucket's default retention, GOVERNANCE retention refusing a delete without the
    bypass header, a legal hold."""
    bucket = versioned_bucket(ctx, "lock", lock=True)
    ctx.call("s3", "PutObjectLockConfiguration", Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    rule = ctx.call("s3", "GetObjectLockConfiguration", Bucket=bucket)["ObjectLockConfiguration"]
    ctx.check_equal(rule.get("Rule"), {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
                    "Rule")
    vid = ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    retention = ctx.call("s3", "GetObjectRetention", Bucket=bucket, Key="k", VersionId=vid)
    ctx.check_equal(retention["Retention"].get("Mode"), "GOVERNANCE", "default retention mode")
    with ctx.expect_error("AccessDenied", 403):
        ctx.call("s3", "DeleteObject", Bucket=bucket, Key="k", VersionId=vid)
    ctx.call("s3", "PutObjectLegalHold", Bucket=bucket, Key="k", LegalHold={"Status": "ON"})
    ctx.check_equal(ctx.call("s3", "GetObjectLegalHold", Bucket=bucket, Key="k")["LegalHold"],
                    {"Status": "ON"}, "LegalHold")
    ctx.call("s3", "PutObjectLegalHold", Bucket=bucket, Key="k", LegalHold={"Status": "OFF"})
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    ctx.call("s3", "PutObjectRetention", Bucket=bucket, Key="k", VersionId=vid,
             Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    ctx.call("s3", "DeleteObject", Bucket=bucket, Key="k", VersionId=vid,
             BypassGovernanceRetention=True)


@scenario("s3", "PutObjectLockConfiguration", client="boto3", variant="invalid")
def object_lock_invalid(ctx):
    """Days and Years together is MalformedXML; zero days InvalidRetentionPeriod; a bucket
    without object lock and versioning InvalidBucketState."""
    bucket = versioned_bucket(ctx, "lockbad", lock=True)
    with ctx.expect_error("MalformedXML", 400):
        ctx.call("s3", "PutObjectLockConfiguration", Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}})
    with ctx.expect_error("InvalidRetentionPeriod", 400):
        ctx.call("s3", "PutObjectLockConfiguration", Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}})
    plain = ctx.bucket("locknone")
    with ctx.expect_error("InvalidBucketState", 409):
        ctx.call("s3", "PutObjectLockConfiguration", Bucket=plain,
                 ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})


@scenario("s3", ["PutBucketLifecycleConfiguration", "GetBucketLifecycleConfiguration",
                 "DeleteBucketLifecycle"], client="boto3")
def lifecycle_configuration(ctx):
    """A lifecycle configuration round-trips; an expiring object carries x-amz-expiration;
    a rule without an action is refused."""
    bucket = ctx.bucket("lifecycle")
    rules = [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
              "Expiration": {"Days": 3}},
             {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
              "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]
    ctx.call("s3", "PutBucketLifecycleConfiguration", Bucket=bucket,
             LifecycleConfiguration={"Rules": rules})
    ctx.check_equal(ctx.call("s3", "GetBucketLifecycleConfiguration", Bucket=bucket)["Rules"],
                    rules, "Rules")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="tmp/x", Body=b"x")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="tmp/x")
    ctx.check('rule-id="tmp"' in (head.get("Expiration") or ""), "no x-amz-expiration")
    with ctx.expect_error(("InvalidRequest", "MalformedXML", "InvalidArgument"), 400):
        ctx.call("s3", "PutBucketLifecycleConfiguration", Bucket=bucket, LifecycleConfiguration={
            "Rules": [{"ID": "none", "Status": "Enabled", "Filter": {"Prefix": ""}}]})
    ctx.call("s3", "DeleteBucketLifecycle", Bucket=bucket)
    with ctx.expect_error("NoSuchLifecycleConfiguration", 404):
        ctx.call("s3", "GetBucketLifecycleConfiguration", Bucket=bucket)
