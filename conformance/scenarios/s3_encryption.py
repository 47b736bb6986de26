"""S3 scenarios for server-side encryption through boto3: SSE-S3 on every new object, SSE-C
(its key needed for every read), and a bucket's default encryption."""
from __future__ import annotations

import os

from conformance import scenario


@scenario("s3", ["PutObject", "HeadObject"], client="boto3", variant="SSE-S3 by default")
def sse_s3_default(ctx):
    """Every new object is encrypted with SSE-S3 (S3's default since 2023): PUT, GET and HEAD
    answer x-amz-server-side-encryption: AES256, and the ETag is still the MD5."""
    bucket = ctx.bucket("ssedefault")
    put = ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"hello")
    ctx.check_equal(put.get("ServerSideEncryption"), "AES256", "PutObject ServerSideEncryption")
    ctx.check_equal(put.get("ETag"), '"5d41402abc4b2a76b9719d911017c592"', "ETag")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="k")
    ctx.check_equal(head.get("ServerSideEncryption"), "AES256", "HeadObject ServerSideEncryption")


@scenario("s3", ["PutObject", "GetObject"], client="boto3", variant="SSE-C")
def sse_c_round_trip(ctx):
    """An SSE-C object reads back with its key; without it: 400 InvalidRequest; with another:
    403 AccessDenied."""
    bucket = ctx.bucket("ssec")
    key = os.urandom(32)
    put = ctx.call("s3", "PutObject", Bucket=bucket, Key="secret", Body=b"customer data",
                   SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    ctx.check_equal(put.get("SSECustomerAlgorithm"), "AES256", "SSECustomerAlgorithm")
    got = ctx.call("s3", "GetObject", Bucket=bucket, Key="secret", SSECustomerAlgorithm="AES256",
                   SSECustomerKey=key)
    ctx.check_equal(got["Body"].read(), b"customer data", "the object's bytes")
    with ctx.expect_error("InvalidRequest", 400):
        ctx.call("s3", "GetObject", Bucket=bucket, Key="secret")
    with ctx.expect_error("AccessDenied", 403):
        ctx.call("s3", "GetObject", Bucket=bucket, Key="secret", SSECustomerAlgorithm="AES256",
                 SSECustomerKey=os.urandom(32))


@scenario("s3", ["PutBucketEncryption", "GetBucketEncryption", "DeleteBucketEncryption"],
          client="boto3")
def bucket_encryption(ctx):
    """A bucket without a configuration answers the AES256 default; PutBucketEncryption's rule is
    read back; DeleteBucketEncryption returns the bucket to the default."""
    bucket = ctx.bucket("sseconfig")
    rule = ctx.call("s3", "GetBucketEncryption", Bucket=bucket)[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    ctx.check_equal(rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256",
                    "the default rule")
    ctx.call("s3", "PutBucketEncryption", Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                   "BucketKeyEnabled": True}]})
    rule = ctx.call("s3", "GetBucketEncryption", Bucket=bucket)[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    ctx.check_equal(rule.get("BucketKeyEnabled"), True, "BucketKeyEnabled")
    ctx.call("s3", "DeleteBucketEncryption", Bucket=bucket)
    rule = ctx.call("s3", "GetBucketEncryption", Bucket=bucket)[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    ctx.check_equal(rule.get("BucketKeyEnabled"), False, "BucketKeyEnabled after the delete")
