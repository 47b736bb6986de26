"""S3 through curl: presigned URLs (SigV4 and SigV2) and browser-style POST uploads signed by a
policy. The other real clients are in ``s3_clients``; this column is ``curl``.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import urllib.parse
import xml.etree.ElementTree as ET

from conformance import rawhttp, scenario, wire
from conformance.errors import ScenarioFailure
from conformance.scenarios.s3 import get_bytes, md5_etag
from conformance.scenarios._client_tools import CURL, curl, need_binary


def _curl_presigned(ctx, sigv: str) -> None:
    need_binary("curl")
    bucket = ctx.bucket(f"curl-presign-{sigv}")
    s3 = ctx.client("s3", signature_version="s3v4" if sigv == "v4" else "s3")
    key = "odd key+1&=\u2603.bin"
    data = os.urandom(256 * 1024)
    src = ctx.file("up.bin", data)
    params = {"Bucket": bucket, "Key": key, "ContentType": "application/octet-stream"}
    put_url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    marker = "X-Amz-Signature=" if sigv == "v4" else "Signature="
    ctx.check(marker in put_url and ("AWSAccessKeyId=" in put_url) == (sigv == "v2"),
              f"botocore did not presign with Sig{sigv.upper()}: {put_url}")
    response = curl(ctx, put_url, "-T", src, "-H", "Content-Type: application/octet-stream")
    ctx.check_equal(response.status, 200, f"presigned PUT status ({response.body[:300]!r})")
    ctx.check_equal(response.header("ETag"), md5_etag(data), "presigned PUT ETag")
    got, body = get_bytes(ctx, bucket, key)
    ctx.check(body == data, "the object holds other bytes than curl PUT")
    ctx.check_equal(got.get("ContentType"), "application/octet-stream", "ContentType")
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                        ExpiresIn=300)
    response = curl(ctx, get_url)
    ctx.check_equal(response.status, 200, f"presigned GET status ({response.body[:300]!r})")
    ctx.check(hashlib.sha256(response.body).digest() == hashlib.sha256(data).digest(),
              "the presigned GET returned other bytes")
    response = curl(ctx, get_url, "-H", "Range: bytes=100-199")
    ctx.check_equal(response.status, 206, "presigned ranged GET status")
    ctx.check(response.body == data[100:200], "the presigned ranged GET returned other bytes")


@scenario("s3", ["PutObject", "GetObject"], client=CURL, variant="presigned",
          name="curl_presigned_sigv4")
def curl_presigned_sigv4(ctx):
    """curl with SigV4 presigned URLs (botocore's): PUT (-T, a unicode key), GET, a ranged GET."""
    _curl_presigned(ctx, "v4")


@scenario("s3", ["PutObject", "GetObject"], client=CURL, variant="presigned, sigv2",
          name="curl_presigned_sigv2")
def curl_presigned_sigv2(ctx):
    """curl with SigV2 presigned URLs (AWSAccessKeyId, Expires, Signature): PUT, GET, ranged."""
    _curl_presigned(ctx, "v2")


# POST Object (browser-based uploads): a form signed by a policy, not the request.
def sigv4_signing_key(secret_key: str, date: str, region: str, service: str = "s3") -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def post_policy_fields(access_key: str, secret_key: str, region: str, bucket: str, key: str,
                       key_prefix: str, expiration: datetime.datetime, now: datetime.datetime,
                       max_size: int, extra: dict[str, str] | None = None,
                       session_token: str | None = None) -> dict[str, str]:
    """The form fields of a SigV4 POST upload of ``key``: the policy (expiration; conditions on
    the bucket, the key's prefix, the size, every other field) base64-encoded, and
    ``x-amz-signature``, the hex HMAC-SHA256 of that base64 text with the SigV4 signing key."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{access_key}/{amz_date[:8]}/{region}/s3/aws4_request"
    fields = {"key": key, **(extra or {}), "x-amz-algorithm": "AWS4-HMAC-SHA256",
              "x-amz-credential": credential, "x-amz-date": amz_date}
    if session_token:
        fields["x-amz-security-token"] = session_token
    conditions: list = [{"bucket": bucket}, ["starts-with", "$key", key_prefix],
                        ["content-length-range", 1, max_size]]
    conditions += [{name: value} for name, value in fields.items() if name != "key"]
    policy = {"expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
              "conditions": conditions}
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    fields["policy"] = encoded
    fields["x-amz-signature"] = post_policy_signature(secret_key, amz_date[:8], region, encoded)
    return fields


def post_policy_signature(secret_key: str, date: str, region: str, policy_b64: str) -> str:
    """``x-amz-signature`` of a POST policy: hex HMAC-SHA256 of the base64 policy text with the
    SigV4 signing key of ``date`` (YYYYMMDD), ``region`` and s3."""
    return hmac.new(sigv4_signing_key(secret_key, date, region), policy_b64.encode(),
                    hashlib.sha256).hexdigest()


def _post_upload(ctx, bucket: str, key: str, data: bytes, max_size: int,
                 expires_in: float) -> rawhttp.RawResponse:
    now = datetime.datetime.now(datetime.timezone.utc)
    fields = post_policy_fields(
        ctx.access_key, ctx.secret_key, ctx.region, bucket, key, key.split("/")[0] + "/",
        now + datetime.timedelta(seconds=expires_in), now, max_size,
        {"Content-Type": "text/plain", "success_action_status": "201",
         "x-amz-meta-colour": "blue"}, ctx.run.target.session_token)
    src = ctx.file(f"post-{ctx.run.next_number()}.txt", data)
    options = []
    for name, value in fields.items():
        options += ["--form-string", f"{name}={value}"]
    options += ["-F", f"file=@{src};filename=upload.txt"]  # the file goes last: S3 ignores after
    return curl(ctx, ctx.url("/" + bucket), *options)


def _xml_fields(body: bytes) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(body)
    return root.tag.rpartition("}")[2], {c.tag.rpartition("}")[2]: (c.text or "") for c in root}


@scenario("s3", "PostObject", client=CURL, name="curl_post_object")
def curl_post_object(ctx):
    """A browser-style POST upload (multipart/form-data, a SigV4-signed policy, an x-amz-meta-*
    field, success_action_status=201): 201 with PostResponse (Location, Bucket, Key, ETag); the
    object has the bytes, the Content-Type and the metadata of the form."""
    need_binary("curl")
    bucket = ctx.bucket("curl-post")
    key = "uploads/f\u00eate \u2603 +&=.txt"
    data = ("hello from a form \u2603\n" * 50).encode()
    response = _post_upload(ctx, bucket, key, data, max_size=1024 * 1024, expires_in=300)
    ctx.check_equal(response.status, 201, f"POST status ({response.body[:300]!r})")
    try:
        root, fields = _xml_fields(response.body)
    except ET.ParseError:
        raise ScenarioFailure(f"the 201 body is not XML: {response.body[:200]!r}") from None
    ctx.check_equal(root, "PostResponse", "the 201 body's root element")
    ctx.check_equal(fields.get("Bucket"), bucket, "PostResponse Bucket")
    ctx.check_equal(fields.get("Key"), key, "PostResponse Key")
    ctx.check_equal(fields.get("ETag"), md5_etag(data), "PostResponse ETag")
    location = urllib.parse.unquote(fields.get("Location", ""))
    ctx.check(location.endswith(f"/{key}"),
              f"PostResponse Location does not name the object: {fields.get('Location')!r}")
    got, body = get_bytes(ctx, bucket, key)
    ctx.check(body == data, "the object holds other bytes than the form's file")
    ctx.check_equal(got.get("ContentType"), "text/plain", "ContentType (the form's field)")
    ctx.check_equal(got.get("Metadata"), {"colour": "blue"}, "Metadata (x-amz-meta-colour)")


@scenario("s3", "PostObject", client=CURL, variant="too large", name="curl_post_too_large")
def curl_post_too_large(ctx):
    """A POST upload over the policy's content-length-range: 400 EntityTooLarge, nothing stored."""
    need_binary("curl")
    bucket = ctx.bucket("curl-post-large")
    response = _post_upload(ctx, bucket, "uploads/big.txt", b"x" * 100, max_size=10,
                            expires_in=300)
    code, message = wire.error_code_of("rest-xml", response.body)
    ctx.check((response.status, code) == (400, "EntityTooLarge"),
              f"expected EntityTooLarge (HTTP 400), got {code} (HTTP {response.status}): "
              f"{message or response.body[:200]!r}")
    ctx.note(f"EntityTooLarge message: {message!r}")
    with ctx.expect_error(("404", "NoSuchKey"), 404):
        ctx.call("s3", "HeadObject", Bucket=bucket, Key="uploads/big.txt")


@scenario("s3", "PostObject", client=CURL, variant="policy expired", name="curl_post_expired")
def curl_post_expired(ctx):
    """A POST upload whose policy expired: 403 AccessDenied 'Invalid according to Policy: Policy
    expired.', nothing stored."""
    need_binary("curl")
    bucket = ctx.bucket("curl-post-expired")
    response = _post_upload(ctx, bucket, "uploads/late.txt", b"late", max_size=1024,
                            expires_in=-60)
    code, message = wire.error_code_of("rest-xml", response.body)
    ctx.check((response.status, code) == (403, "AccessDenied"),
              f"expected AccessDenied (HTTP 403), got {code} (HTTP {response.status}): "
              f"{message or response.body[:200]!r}")
    if message != "Invalid according to Policy: Policy expired.":
        ctx.warn("PostObject (policy expired)", f"S3 says 'Invalid according to Policy: Policy "
                                                f"expired.', got {message!r}")
    with ctx.expect_error(("404", "NoSuchKey"), 404):
        ctx.call("s3", "HeadObject", Bucket=bucket, Key="uploads/late.txt")
