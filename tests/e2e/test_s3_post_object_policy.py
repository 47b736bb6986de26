"""POST Object policies against a live server, as S3 checks them: ``${filename}`` is replaced
in the key before the conditions are checked, ``x-amz-checksum-*`` fields need no condition,
and an expiration that is not ISO 8601 makes the policy invalid."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
import zlib

import pytest

from tests.e2e.test_s3_post_object import REGION, post_form


@pytest.fixture(scope="module")
def creds(server):
    return server.credentials()


@pytest.fixture(scope="module")
def bucket(server):
    name = f"postpol-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=name)
    return name


def sign(creds: dict, bucket: str, conditions: list, fields: dict,
         expiration: str | None = None) -> dict:
    """SigV4 form fields for a policy of exactly ``conditions`` (plus the bucket and the
    signature fields) and ``expiration`` (default: in five minutes, ISO 8601)."""
    now = dt.datetime.now(dt.timezone.utc)
    out = dict(fields)
    out.update({"x-amz-algorithm": "AWS4-HMAC-SHA256",
                "x-amz-credential": f"{creds['AWS_ACCESS_KEY_ID']}/{now:%Y%m%d}/{REGION}/s3/"
                                    "aws4_request",
                "x-amz-date": f"{now:%Y%m%dT%H%M%SZ}"})
    covered = [{"bucket": bucket}, *conditions] + [
        {name: out[name]} for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date")]
    policy = {"expiration": expiration or f"{now + dt.timedelta(minutes=5):%Y-%m-%dT%H:%M:%S.000Z}",
              "conditions": covered}
    out["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    key = ("AWS4" + creds["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (f"{now:%Y%m%d}", REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    out["x-amz-signature"] = hmac.new(key, out["policy"].encode(), hashlib.sha256).hexdigest()
    return out


def test_filename_is_substituted_before_the_policy_check(server, creds, bucket):
    fields = sign(creds, bucket, [{"key": "uploads/photo.jpg"}],
                  {"key": "uploads/${filename}"})
    status, _, body = post_form(server, f"/{bucket}", fields, b"jpeg bytes", filename="photo.jpg")
    assert status == 204, body
    got = server.client("s3").get_object(Bucket=bucket, Key="uploads/photo.jpg")
    assert got["Body"].read() == b"jpeg bytes"
    # starts-with over the substituted key too
    fields = sign(creds, bucket, [["starts-with", "$key", "uploads/a"]],
                  {"key": "uploads/${filename}"})
    status, _, body = post_form(server, f"/{bucket}", fields, b"x", filename="b.txt")
    assert status == 403 and b"Policy Condition failed" in body, body


def test_checksum_fields_need_no_condition(server, creds, bucket):
    data = b"checksummed form file"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    fields = sign(creds, bucket, [["starts-with", "$key", "sums/"]],
                  {"key": "sums/one", "x-amz-checksum-algorithm": "CRC32",
                   "x-amz-checksum-crc32": crc})
    status, _, body = post_form(server, f"/{bucket}", fields, data)
    assert status == 204, body
    head = server.client("s3").head_object(Bucket=bucket, Key="sums/one", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc
    # the checksum is still checked
    fields["x-amz-checksum-crc32"] = base64.b64encode(b"\0\0\0\0").decode()
    fields = sign(creds, bucket, [["starts-with", "$key", "sums/"]],
                  {k: v for k, v in fields.items() if k in ("key", "x-amz-checksum-algorithm",
                                                            "x-amz-checksum-crc32")})
    status, _, body = post_form(server, f"/{bucket}", fields, data)
    assert status == 400 and b"BadDigest" in body, body


@pytest.mark.parametrize("expiration", ["2099-01-01", "2099-01-01 00:00:00", "20990101T000000Z",
                                        "Thu, 01 Jan 2099 00:00:00 GMT", "2099-01-01T00:00:00"])
def test_expiration_that_is_not_iso8601_is_refused(server, creds, bucket, expiration):
    fields = sign(creds, bucket, [["starts-with", "$key", ""]], {"key": "exp/x"},
                  expiration=expiration)
    status, _, body = post_form(server, f"/{bucket}", fields, b"x")
    assert status == 400 and b"<Code>InvalidPolicyDocument</Code>" in body, body


@pytest.mark.parametrize("expiration", ["2099-01-01T00:00:00.000Z", "2099-01-01T00:00:00Z"])
def test_iso8601_expirations_are_accepted(server, creds, bucket, expiration):
    fields = sign(creds, bucket, [["starts-with", "$key", ""]], {"key": "exp/ok"},
                  expiration=expiration)
    status, _, body = post_form(server, f"/{bucket}", fields, b"x")
    assert status == 204, body
