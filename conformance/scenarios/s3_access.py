"""S3 access control scenarios, through boto3 and unsigned requests: S3's defaults for new
buckets (BucketOwnerEnforced, all public access blocked), ACLs on a bucket that enables them,
bucket policies kept as given, Block Public Access refusing, conflicting ACL headers."""
from __future__ import annotations

import json

from conformance import scenario


def _shareable_bucket(ctx, hint: str) -> str:
    """A bucket with ACLs enabled (ObjectWriter) and no public access block."""
    name = ctx.name(hint)
    params: dict = {"Bucket": name, "ObjectOwnership": "ObjectWriter"}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    ctx.call("s3", "CreateBucket", **params)
    ctx.defer(ctx.delete_bucket, name)
    ctx.call("s3", "DeletePublicAccessBlock", Bucket=name)
    return name


@scenario("s3", ["GetBucketOwnershipControls", "GetPublicAccessBlock"], client="boto3",
          variant="new bucket")
def new_bucket_defaults(ctx):
    """A new bucket is BucketOwnerEnforced with all four public access settings on (S3 since
    April 2023); a public canned ACL on it is AccessControlListNotSupported."""
    bucket = ctx.bucket("defaults")
    rules = ctx.call("s3", "GetBucketOwnershipControls", Bucket=bucket)["OwnershipControls"]["Rules"]
    ctx.check_equal(rules, [{"ObjectOwnership": "BucketOwnerEnforced"}], "ownership rules")
    block = ctx.call("s3", "GetPublicAccessBlock", Bucket=bucket)["PublicAccessBlockConfiguration"]
    ctx.check(all(block.get(k) for k in ("BlockPublicAcls", "IgnorePublicAcls",
                                         "BlockPublicPolicy", "RestrictPublicBuckets")),
              f"all public access blocked: {block}")
    with ctx.expect_error("AccessControlListNotSupported", 400):
        ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"x", ACL="public-read")


@scenario("s3", ["PutObjectAcl", "GetObjectAcl"], client="boto3", variant="public-read")
def public_read_object(ctx):
    """A public-read object is readable without credentials; a private one is 403."""
    bucket = _shareable_bucket(ctx, "publicread")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="pub", Body=b"hello")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="priv", Body=b"secret")
    ctx.call("s3", "PutObjectAcl", Bucket=bucket, Key="pub", ACL="public-read")
    grants = ctx.call("s3", "GetObjectAcl", Bucket=bucket, Key="pub")["Grants"]
    ctx.check(any(g["Grantee"].get("URI", "").endswith("/global/AllUsers")
                  and g["Permission"] == "READ" for g in grants), f"AllUsers READ in {grants}")
    public = ctx.fetch(ctx.url(f"/{bucket}/pub"))
    ctx.check_equal((public.status, public.body), (200, b"hello"), "unsigned GET of pub")
    private = ctx.fetch(ctx.url(f"/{bucket}/priv"))
    ctx.check_equal(private.status, 403, "unsigned GET of priv")


@scenario("s3", ["PutBucketAcl", "GetBucketAcl"], client="boto3",
          variant="canned ACL with grant headers")
def bucket_acl_conflicting_headers(ctx):
    """A canned ACL together with x-amz-grant-* headers is InvalidRequest; a canned ACL alone
    sets the grants GetBucketAcl shows."""
    bucket = _shareable_bucket(ctx, "bucketacl")
    owner = ctx.call("s3", "GetBucketAcl", Bucket=bucket)["Owner"]["ID"]
    with ctx.expect_error("InvalidRequest", 400):
        ctx.call("s3", "PutBucketAcl", Bucket=bucket, ACL="public-read",
                 GrantRead=f'id="{owner}"')
    ctx.call("s3", "PutBucketAcl", Bucket=bucket, ACL="public-read")
    grants = ctx.call("s3", "GetBucketAcl", Bucket=bucket)["Grants"]
    ctx.check_equal(sorted(g["Permission"] for g in grants), ["FULL_CONTROL", "READ"], "grants")


@scenario("s3", ["PutBucketPolicy", "GetBucketPolicy", "GetBucketPolicyStatus",
                 "DeleteBucketPolicy"], client="boto3")
def bucket_policy_round_trip(ctx):
    """The policy comes back as given; a public one is refused while BlockPublicPolicy is on,
    accepted once it is off, and GetBucketPolicyStatus calls it public."""
    bucket = ctx.bucket("policy")
    public = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}, indent=2)
    with ctx.expect_error("AccessDenied", 403):
        ctx.call("s3", "PutBucketPolicy", Bucket=bucket, Policy=public)
    ctx.call("s3", "DeletePublicAccessBlock", Bucket=bucket)
    ctx.call("s3", "PutBucketPolicy", Bucket=bucket, Policy=public)
    ctx.check_equal(ctx.call("s3", "GetBucketPolicy", Bucket=bucket)["Policy"], public, "Policy")
    status = ctx.call("s3", "GetBucketPolicyStatus", Bucket=bucket)["PolicyStatus"]
    ctx.check_equal(status.get("IsPublic"), True, "IsPublic")
    ctx.call("s3", "DeleteBucketPolicy", Bucket=bucket)
    with ctx.expect_error("NoSuchBucketPolicy", 404):
        ctx.call("s3", "GetBucketPolicy", Bucket=bucket)


@scenario("s3", "PutBucketPolicy", client="boto3", variant="malformed")
def bucket_policy_malformed(ctx):
    """A document that is not JSON is MalformedPolicy (400)."""
    bucket = ctx.bucket("badpolicy")
    with ctx.expect_error("MalformedPolicy", 400):
        ctx.call("s3", "PutBucketPolicy", Bucket=bucket, Policy="{not json")
