"""S3 signed with SigV2 (HmacV1, ``signature_version="s3"``) through boto3 against a live server:
bucket-level requests sign the resource ``/bucket/`` as botocore's and s3cmd's signers do."""
from __future__ import annotations

import urllib.request
import uuid

import boto3
import botocore.config
import pytest


@pytest.fixture(scope="module")
def s3v2(server):
    env = server.credentials()
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(signature_version="s3",
                                                      retries={"max_attempts": 1}))


def test_sigv2_bucket_level_requests(s3v2):
    bucket = f"sigv2-{uuid.uuid4().hex[:8]}"
    s3v2.create_bucket(Bucket=bucket)
    s3v2.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert [o["Key"] for o in s3v2.list_objects(Bucket=bucket)["Contents"]] == ["a/b.txt"]
    assert s3v2.list_objects_v2(Bucket=bucket, Prefix="a/")["KeyCount"] == 1
    assert s3v2.get_bucket_acl(Bucket=bucket)["Grants"]
    s3v2.head_bucket(Bucket=bucket)
    assert s3v2.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    s3v2.delete_object(Bucket=bucket, Key="a/b.txt")
    s3v2.delete_bucket(Bucket=bucket)


def test_sigv2_presigned_bucket_listing(s3v2):
    bucket = f"sigv2-{uuid.uuid4().hex[:8]}"
    s3v2.create_bucket(Bucket=bucket)
    s3v2.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3v2.generate_presigned_url("list_objects", Params={"Bucket": bucket})
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200 and b"<Key>k</Key>" in resp.read()
