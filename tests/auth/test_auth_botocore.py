"""Requests signed by botocore itself, received as a server sees them, must verify; one
changed byte anywhere must not."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from email.utils import formatdate

import botocore.auth
import pytest
from _auth_testkit import flip, from_botocore, lookup, replace, with_header
from botocore.auth import (
    HmacV1Auth,
    HmacV1QueryAuth,
    S3SigV4Auth,
    S3SigV4QueryAuth,
    SigV4Auth,
    SigV4QueryAuth,
)
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode, percent_encode_sequence

from gateway.auth import errors
from gateway.auth.sigv4 import authenticate

AKID = "AKIANIMBOTEST0000001"
SECRET = "nimbo/Secret+Key/0123456789abcdefghijklmn"
KEYS = {AKID: SECRET}
T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
REGIONS = ["us-east-1", "eu-west-1"]
ENDPOINT = "http://127.0.0.1:8773"

KEY_NAMES = ["plain.txt", "a b.txt", "ünïcödé/ファイル.txt", "a+b.txt", "100%.txt", "~tilde~",
             "//double//slashes", "dir/trailing/", "!$&'()*,;=:@.txt", "q?hash#.txt", ""]
QUERIES = [
    [],
    [("prefix", "a b/c"), ("delimiter", "/")],
    [("empty", ""), ("k", "2"), ("k", "1")],
    [("x", "+~*'()!"), ("uni", "ß€"), ("sp", "  two  spaces ")],
    [("list-type", "2"), ("continuation-token", "abc/+=="), ("max-keys", "1000")],
]


@pytest.fixture
def frozen_botocore(monkeypatch):
    """botocore's SigV4 signers take their timestamp from get_current_datetime()."""
    clock = {"now": T0}
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda *a, **k: clock["now"].replace(tzinfo=None))
    return clock


def s3_path(bucket: str, key: str) -> str:
    return f"/{bucket}/" + percent_encode(key, safe="/~")  # as botocore's rest serializer does


def s3_request(method="GET", key="plain.txt", query=(), headers=None, body=b"", raw_query=None):
    url = ENDPOINT + s3_path("bucket", key)
    qs = raw_query if raw_query is not None else percent_encode_sequence(list(query))
    if qs:
        url += "?" + qs
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers or []:
        request.headers[name] = value  # repeated names become repeated header lines
    return request


def sign(signer, request):
    signer.add_auth(request)
    return from_botocore(request)


def creds(token=None):
    return Credentials(AKID, SECRET, token)


async def verify(req, now=T0, secrets=KEYS, **kw):
    return await authenticate(req, lookup(secrets), now, REGIONS, **kw)


# --- S3, Authorization header ------------------------------------------------------------------

@pytest.mark.parametrize("key", KEY_NAMES)
async def test_s3_header_paths(frozen_botocore, key):
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"), s3_request("PUT", key, body=b"hello"))
    result = await verify(req)
    assert result.payload_hash == hashlib.sha256(b"hello").hexdigest()
    assert (result.service, result.region, result.access_key_id) == ("s3", "us-east-1", AKID)
    with pytest.raises(errors.SignatureDoesNotMatch) as caught:
        await verify(replace(req, raw_path=req.raw_path + "x"))
    assert caught.value.extra["AWSAccessKeyId"] == AKID
    assert "CanonicalRequest" in caught.value.extra


@pytest.mark.parametrize("query", QUERIES)
async def test_s3_header_queries(frozen_botocore, query):
    req = sign(S3SigV4Auth(creds(), "s3", "eu-west-1"), s3_request(query=query))
    assert (await verify(req)).region == "eu-west-1"
    if query:
        with pytest.raises(errors.SignatureDoesNotMatch):
            await verify(replace(req, raw_query=req.raw_query + "&extra=1"))


async def test_s3_bare_subresource_and_repeated_keys(frozen_botocore):
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"),
               s3_request(raw_query="uploads&prefix=a%20b&k=2&k=1&k="))
    assert await verify(req) is not None


async def test_s3_header_whitespace_and_repeated_headers(frozen_botocore):
    headers = [("x-amz-meta-note", "  several   spaces\there  "),
               ("x-amz-meta-multi", "one"), ("x-amz-meta-multi", " two "),
               ("Content-Type", "text/plain;  charset=utf-8")]
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"), s3_request("PUT", headers=headers))
    assert req.headers.getall("x-amz-meta-multi") == ["one", " two "]
    assert await verify(req) is not None
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(with_header(req, "x-amz-meta-note", "several spaces here!"))
    with pytest.raises(errors.SignatureDoesNotMatch):  # the two lines merged by a proxy
        await verify(with_header(req, "x-amz-meta-multi", "one, two"))


async def test_s3_tampering(frozen_botocore):
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"), s3_request("PUT", body=b"data"))
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(req, secrets={AKID: flip(SECRET, 3)})
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(replace(req, method="POST"))
    declared = req.headers["x-amz-content-sha256"]
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(with_header(req, "x-amz-content-sha256", flip(declared)))
    # the declared hash is signed, but the body itself differs: caught by body_sha256
    with pytest.raises(errors.ContentSHA256Mismatch) as caught:
        await verify(req, body_sha256=hashlib.sha256(b"other").hexdigest())
    assert caught.value.extra["ClientComputedContentSHA256"] == declared
    assert (await verify(req, body_sha256=declared)).payload_hash == declared
    with pytest.raises(errors.InvalidAccessKeyId) as unknown:
        await verify(req, secrets={})
    assert unknown.value.extra == {"AWSAccessKeyId": AKID}


async def test_s3_unsigned_amz_header_is_refused(frozen_botocore):
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"), s3_request("PUT"))
    headers = req.headers.copy()
    headers.add("x-amz-acl", "public-read")
    with pytest.raises(errors.HeadersNotSigned) as caught:
        await verify(replace(req, headers=headers))
    assert caught.value.extra == {"HeadersNotSigned": "x-amz-acl"}


async def test_clock_skew(frozen_botocore):
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"), s3_request())
    assert await verify(req, now=T0 + timedelta(minutes=14)) is not None
    assert await verify(req, now=T0 - timedelta(minutes=14)) is not None
    with pytest.raises(errors.RequestTimeTooSkewed) as late:
        await verify(req, now=T0 + timedelta(minutes=16))
    assert late.value.extra == {"RequestTime": "20261126T100000Z",
                                "ServerTime": "2026-11-26T10:16:00Z",
                                "MaxAllowedSkewMilliseconds": "900000"}
    with pytest.raises(errors.RequestTimeTooSkewed):
        await verify(req, now=T0 - timedelta(minutes=16))


async def test_wrong_region(frozen_botocore):
    req = sign(S3SigV4Auth(creds(), "s3", "ap-south-1"), s3_request())
    with pytest.raises(errors.WrongRegion) as caught:
        await verify(req)
    assert caught.value.extra == {"Region": "us-east-1"}
    assert errors.service_error(caught.value, "s3") == ("AuthorizationHeaderMalformed", 400)
    assert "the region 'ap-south-1' is wrong; expecting 'us-east-1'" in caught.value.message


async def test_date_header_instead_of_x_amz_date(frozen_botocore):
    request = s3_request()
    request.headers["Date"] = "placeholder"  # botocore then signs with a Date header
    req = sign(S3SigV4Auth(creds(), "s3", "us-east-1"), request)
    assert "x-amz-date" not in req.headers
    assert (await verify(req)).amz_date == "20261126T100000Z"


# --- S3, presigned -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", KEY_NAMES[:6])
@pytest.mark.parametrize("query", QUERIES[:3])
async def test_s3_presigned(frozen_botocore, key, query):
    req = sign(S3SigV4QueryAuth(creds(), "s3", "us-east-1", expires=3600),
               s3_request(key=key, query=query))
    result = await verify(req, now=T0 + timedelta(seconds=3599))
    assert result.presigned and result.payload_hash == "UNSIGNED-PAYLOAD"
    with pytest.raises(errors.RequestExpired) as caught:
        await verify(req, now=T0 + timedelta(seconds=3601))
    assert caught.value.extra == {"X-Amz-Expires": "3600", "Expires": "2026-11-26T11:00:00Z",
                                  "ServerTime": "2026-11-26T11:00:01Z"}
    assert errors.service_error(caught.value, "s3") == ("AccessDenied", 403)
    assert caught.value.message == "Request has expired"
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(replace(req, raw_path=req.raw_path + "x"))


async def test_s3_presigned_with_session_token_and_signed_header(frozen_botocore):
    request = s3_request("PUT", headers=[("Content-Type", "image/png")])
    req = sign(S3SigV4QueryAuth(creds("TOKEN/+="), "s3", "us-east-1"), request)
    result = await verify(req)
    assert result.security_token == "TOKEN/+="
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(with_header(req, "Content-Type", "text/html"))


async def test_s3_presigned_with_signed_payload_hash(frozen_botocore):
    digest = hashlib.sha256(b"abc").hexdigest()
    request = s3_request("PUT", headers=[("X-Amz-Content-SHA256", digest)])
    req = sign(S3SigV4QueryAuth(creds(), "s3", "us-east-1"), request)
    assert "x-amz-content-sha256" in req.raw_query.lower()  # listed in X-Amz-SignedHeaders
    assert (await verify(req, body_sha256=digest)).payload_hash == digest
    with pytest.raises(errors.ContentSHA256Mismatch):
        await verify(req, body_sha256=hashlib.sha256(b"abd").hexdigest())


@pytest.mark.parametrize("expires", [604801, 0, -5])
async def test_s3_presigned_expires_out_of_range(frozen_botocore, expires):
    req = sign(S3SigV4QueryAuth(creds(), "s3", "us-east-1", expires=expires), s3_request())
    with pytest.raises(errors.AuthorizationQueryParametersError) as caught:
        await verify(req)
    assert errors.service_error(caught.value, "s3") == ("AuthorizationQueryParametersError", 400)
    if expires > 0:
        assert caught.value.message == (
            "X-Amz-Expires must be less than a week (in seconds) that is 604800")


async def test_s3_presigned_week_and_future(frozen_botocore):
    req = sign(S3SigV4QueryAuth(creds(), "s3", "us-east-1", expires=604800), s3_request())
    assert await verify(req, now=T0 + timedelta(days=7)) is not None
    with pytest.raises(errors.RequestNotYetValid):
        await verify(req, now=T0 - timedelta(minutes=16))


async def test_s3_presigned_wrong_region(frozen_botocore):
    req = sign(S3SigV4QueryAuth(creds(), "s3", "sa-east-1"), s3_request())
    with pytest.raises(errors.WrongRegion) as caught:
        await verify(req)
    assert errors.service_error(caught.value, "s3") == ("AuthorizationQueryParametersError", 400)
    assert caught.value.expected_region == "us-east-1"


# --- non-S3 services: normalized, double-encoded path; body hash from the caller ---------------

async def test_ec2_query_post(frozen_botocore):
    body = ("Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName"
            "&Filter.1.Value.1=a+b")
    request = AWSRequest(method="POST", url=ENDPOINT + "/", data=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded; "
                                                  "charset=utf-8"})
    req = sign(SigV4Auth(creds(), "ec2", "us-east-1"), request)
    body_hash = hashlib.sha256(body.encode()).hexdigest()
    result = await verify(req, body_sha256=body_hash)
    assert (result.service, result.payload_hash) == ("ec2", body_hash)
    with pytest.raises(errors.SignatureDoesNotMatch) as caught:
        await verify(req, body_sha256=hashlib.sha256(body.encode() + b"&x=1").hexdigest())
    assert errors.service_error(caught.value, "ec2") == ("AuthFailure", 401)
    with pytest.raises(errors.RequestTimeTooSkewed) as skewed:
        await verify(req, now=T0 + timedelta(minutes=16), body_sha256=body_hash)
    assert errors.service_error(skewed.value, "ec2") == ("RequestExpired", 400)


@pytest.mark.parametrize("path", [
    "/2015-03-31/functions/my%20func/invocations",
    "/a/./b/../c//d/",
    "/tags/arn%3Aaws%3Aec2%3Aus-east-1%3A123%3Avolume%2Fvol-1",
    "/%E2%82%AC/~user/%2B",
])
async def test_non_s3_paths_are_normalized_and_double_encoded(frozen_botocore, path):
    request = AWSRequest(method="GET", url=ENDPOINT + path + "?b=2&a=%20x")
    req = sign(SigV4Auth(creds(), "lambda", "eu-west-1"), request)
    assert req.raw_path == path
    assert (await verify(req, body_sha256=hashlib.sha256(b"").hexdigest())).service == "lambda"


async def test_sts_presigned_query(frozen_botocore):
    request = AWSRequest(method="GET",
                         url=ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15")
    req = sign(SigV4QueryAuth(creds(), "sts", "us-east-1", expires=60), request)
    assert (await verify(req, now=T0 + timedelta(seconds=59))).presigned
    with pytest.raises(errors.RequestExpired) as caught:
        await verify(req, now=T0 + timedelta(seconds=61))
    assert errors.service_error(caught.value, "sts") == ("RequestExpired", 400)


# --- SigV2 -------------------------------------------------------------------------------------

V2_DATE = formatdate(T0.timestamp(), usegmt=True)  # 'Thu, 26 Nov 2026 10:00:00 GMT'


class FixedDateHmacV1Auth(HmacV1Auth):
    def _get_date(self):
        return V2_DATE


class FixedDateHmacV1QueryAuth(HmacV1QueryAuth):
    def _get_date(self):
        return str(int(T0.timestamp()) + int(self._expires))


@pytest.mark.parametrize("key", KEY_NAMES)
@pytest.mark.parametrize("raw_query", ["", "acl", "versionId=3%2B4&uploadId=u%20p",
                                       "response-content-type=text%2Fplain&prefix=x"])
async def test_v2_header_path_style(key, raw_query):
    request = s3_request("PUT", key, raw_query=raw_query, body=b"x",
                         headers=[("Content-Type", "text/plain"), ("x-amz-meta-a", " b "),
                                  ("Content-MD5", "nn6Xqf2tEVfTd+7dM3RRVA==")])
    req = sign(FixedDateHmacV1Auth(creds()), request)
    result = await verify(req)
    assert (result.signature_version, result.service, result.region) == ("v2", "s3", None)
    with pytest.raises(errors.SignatureDoesNotMatch) as caught:
        await verify(with_header(req, "Content-Type", "text/html"))
    assert set(caught.value.extra) == {"AWSAccessKeyId", "StringToSign", "SignatureProvided",
                                       "StringToSignBytes"}
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(req, secrets={AKID: flip(SECRET, 0)})


async def test_v2_header_virtual_hosted():
    request = AWSRequest(method="GET", url="http://bucket.s3.nimbo.test:8773/some%20key?acl")
    request.auth_path = "/bucket/some%20key"
    req = sign(FixedDateHmacV1Auth(creds()), request)
    assert (await verify(replace(req, host_bucket="bucket"))).access_key_id == AKID
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(req)  # without the bucket the canonical resource differs


async def test_v2_header_skew():
    req = sign(FixedDateHmacV1Auth(creds()), s3_request())
    assert await verify(req, now=T0 + timedelta(minutes=14)) is not None
    with pytest.raises(errors.RequestTimeTooSkewed) as caught:
        await verify(req, now=T0 + timedelta(minutes=16))
    assert caught.value.extra["RequestTime"] == V2_DATE


async def test_v2_header_with_x_amz_date():
    request = s3_request(headers=[("x-amz-date", V2_DATE)])
    req = sign(FixedDateHmacV1Auth(creds()), request)
    assert await verify(req) is not None  # botocore signs its Date line even so


@pytest.mark.parametrize("key", KEY_NAMES[:5])
async def test_v2_presigned(key):
    request = s3_request(key=key, raw_query="response-content-disposition=attachment%3B%20x")
    req = sign(FixedDateHmacV1QueryAuth(creds("SESSION+TOKEN"), expires=600), request)
    req.headers.popall("Date")  # the signer's working header; a presigned URL is sent without it
    assert "Expires=" in req.raw_query and "x-amz-security-token=" in req.raw_query
    result = await verify(req, now=T0 + timedelta(seconds=599))
    assert result.presigned and result.security_token == "SESSION+TOKEN"
    with pytest.raises(errors.RequestExpired):
        await verify(req, now=T0 + timedelta(seconds=601))
    with pytest.raises(errors.SignatureDoesNotMatch):
        await verify(replace(req, raw_path=req.raw_path + "x"), now=T0)


async def test_unsigned_request_is_none():
    req = from_botocore(s3_request(query=[("prefix", "x")]))
    assert await verify(req) is None
