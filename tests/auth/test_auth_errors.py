"""Malformed and refused requests: the right error kind, and each service's code and status."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from _auth_testkit import EXAMPLE_KEYS, lookup, wire_request

from gateway.auth import errors
from gateway.auth.signing import EMPTY_SHA256
from gateway.auth.sigv4 import authenticate, parse_authorization

T0 = datetime(2013, 5, 24, 0, 0, 0, tzinfo=timezone.utc)
AKID = "AKIAIOSFODNN7EXAMPLE"
SIG = "f" * 64


def auth_header(credential=f"{AKID}/20130524/us-east-1/s3/aws4_request",
                signed="host;x-amz-content-sha256;x-amz-date", signature=SIG):
    return (f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, "
            f"Signature={signature}")


def s3_headers(authorization=None, **overrides):
    headers = {"Host": "b.s3.example", "x-amz-date": "20130524T000000Z",
               "x-amz-content-sha256": EMPTY_SHA256,
               "Authorization": authorization or auth_header()}
    headers.update(overrides)
    return [(k.replace("_", "-"), v) for k, v in headers.items() if v is not None]


async def attempt(target="/b/k", headers=None, now=T0, secrets=EXAMPLE_KEYS, **kw):
    request = wire_request("GET", target, headers if headers is not None else s3_headers())
    return await authenticate(request, lookup(secrets), now, ["us-east-1", "us-west-2"], **kw)


async def raises(exc_type, *args, **kw) -> errors.AuthError:
    with pytest.raises(exc_type) as caught:
        await attempt(*args, **kw)
    return caught.value


async def test_missing_content_sha256():
    exc = await raises(errors.MissingContentSHA256,
                       headers=s3_headers(**{"x-amz-content-sha256": None}))
    assert errors.service_error(exc, "s3") == ("InvalidRequest", 400)
    assert exc.message == "Missing required header for this request: x-amz-content-sha256"


async def test_invalid_content_sha256_value():
    exc = await raises(errors.InvalidAuthArgument,
                       headers=s3_headers(**{"x-amz-content-sha256": "not-a-hash"}))
    assert errors.service_error(exc, "s3") == ("InvalidArgument", 400)
    assert exc.extra == {"ArgumentName": "x-amz-content-sha256", "ArgumentValue": "not-a-hash"}


@pytest.mark.parametrize("authorization", ["Bearer abc", "AWS4-ECDSA-P256-SHA256 Credential=x",
                                           "Digest x"])
async def test_unsupported_authorization_type(authorization):
    exc = await raises(errors.InvalidAuthArgument, headers=s3_headers(authorization))
    assert exc.message == "Unsupported Authorization Type"
    assert errors.service_error(exc, "ec2") == ("IncompleteSignature", 400)


async def test_header_and_query_auth_together():
    exc = await raises(errors.InvalidAuthArgument, "/b/k?X-Amz-Signature=abc")
    assert exc.message.startswith("Only one auth mechanism allowed")


@pytest.mark.parametrize("authorization", [
    f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request, Signature={SIG}",
    auth_header(credential=f"{AKID}/20130524/us-east-1/s3"),
    auth_header(credential=f"{AKID}/20130524/us-east-1/s3/aws5_request"),
    auth_header(credential=f"{AKID}/2013-05-24/us-east-1/s3/aws4_request"),
    auth_header(signed="host;;x-amz-date"),
    auth_header(signature=""),
    "AWS4-HMAC-SHA256 garbage",
])
async def test_malformed_authorization_header(authorization):
    exc = await raises(errors.AuthorizationHeaderMalformed, headers=s3_headers(authorization))
    assert exc.message.startswith("The authorization header is malformed; ")
    assert errors.service_error(exc, "s3") == ("AuthorizationHeaderMalformed", 400)
    assert errors.service_error(exc, "ec2") == ("IncompleteSignature", 400)
    assert errors.service_error(exc, "sts") == ("IncompleteSignature", 400)


def test_parse_authorization_tolerates_missing_spaces():
    parsed = parse_authorization(
        f"AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders=Host;X-Amz-Date,Signature={SIG}")
    assert parsed.credential.scope == "20130524/us-east-1/s3/aws4_request"
    assert parsed.signed_headers == ("host", "x-amz-date")
    assert parsed.signature == SIG


async def test_credential_date_differs_from_request_date():
    exc = await raises(errors.AuthorizationHeaderMalformed,
                       headers=s3_headers(auth_header(f"{AKID}/20130523/us-east-1/s3/aws4_request")))
    assert "Date is not the same as X-Amz-Date" in exc.message


async def test_missing_or_invalid_date():
    exc = await raises(errors.MissingDateHeader, headers=s3_headers(**{"x-amz-date": None}))
    assert errors.service_error(exc, "s3") == ("AccessDenied", 403)
    assert errors.service_error(exc, "ec2") == ("IncompleteSignature", 400)
    await raises(errors.MissingDateHeader, headers=s3_headers(**{"x-amz-date": "yesterday"}))


async def test_unknown_key_and_disabled_key():
    exc = await raises(errors.InvalidAccessKeyId, secrets={})
    assert [errors.service_error(exc, s) for s in ("s3", "ec2", "sts")] == [
        ("InvalidAccessKeyId", 403), ("AuthFailure", 401), ("InvalidClientTokenId", 403)]

    async def disabled(access_key_id):
        raise errors.AccessKeyDisabled(access_key_id)

    with pytest.raises(errors.AccessKeyDisabled) as caught:
        await authenticate(wire_request("GET", "/b/k", s3_headers()), disabled, T0, ["us-east-1"])
    assert errors.service_error(caught.value, "s3") == ("AccessDenied", 403)
    assert errors.service_error(caught.value, "ec2") == ("AuthFailure", 401)


async def test_bad_signature_carries_the_s3_diagnostics():
    exc = await raises(errors.SignatureDoesNotMatch)
    assert exc.extra["SignatureProvided"] == SIG
    assert exc.extra["StringToSign"].startswith(
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n")
    assert exc.extra["StringToSignBytes"].startswith("41 57 53 34 2d")
    assert exc.extra["CanonicalRequest"].startswith("GET\n/b/k\n\nhost:b.s3.example\n")


PRESIGN = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + AKID +
           "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
           "&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=" + SIG)


@pytest.mark.parametrize("query, message_part", [
    (PRESIGN.replace("&X-Amz-Expires=60", ""), "requires the X-Amz-Algorithm"),
    (PRESIGN.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "X-Amz-Algorithm only supports"),
    (PRESIGN.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"), "ISO8601"),
    (PRESIGN.replace("Expires=60", "Expires=abc"), "should be a number"),
    (PRESIGN.replace("Expires=60", "Expires=604801"), "less than a week"),
    (PRESIGN.replace("%2Faws4_request", ""), "X-Amz-Credential"),
    (PRESIGN + "&X-Amz-Date=20130524T000000Z", "only once"),
])
async def test_malformed_presigned_query(query, message_part):
    exc = await raises(errors.AuthorizationQueryParametersError, "/b/k?" + query,
                       headers=[("Host", "b.s3.example")])
    assert message_part in exc.message
    assert errors.service_error(exc, "s3") == ("AuthorizationQueryParametersError", 400)


async def test_presigned_unsigned_amz_header():
    exc = await raises(errors.HeadersNotSigned, "/b/k?" + PRESIGN,
                       headers=[("Host", "b.s3.example"), ("x-amz-tagging", "a=b"),
                                ("X-Amz-Copy-Source", "/x/y")])
    assert exc.extra == {"HeadersNotSigned": "x-amz-copy-source, x-amz-tagging"}
    assert errors.service_error(exc, "s3") == ("AccessDenied", 403)


@pytest.mark.parametrize("query", ["AWSAccessKeyId=AK&Signature=x",
                                   "AWSAccessKeyId=AK&Expires=1&Signature=",
                                   "Signature=x&Expires=99"])
async def test_v2_query_incomplete(query):
    exc = await raises(errors.QueryAuthIncomplete, "/b/k?" + query, headers=[("Host", "h")])
    assert errors.service_error(exc, "s3") == ("AccessDenied", 403)


async def test_v2_query_expired_and_malformed_header():
    exc = await raises(errors.RequestExpired,
                       "/b/k?AWSAccessKeyId=AK&Expires=1369353599&Signature=x",
                       headers=[("Host", "h")])
    assert exc.extra == {"Expires": "2013-05-23T23:59:59Z", "ServerTime": "2013-05-24T00:00:00Z"}
    exc = await raises(errors.InvalidAuthArgument,
                       headers=[("Host", "h"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                                ("Authorization", "AWS AKIDONLY")])
    assert exc.extra["ArgumentName"] == "Authorization"


async def test_skew_message_per_service():
    exc = await raises(errors.RequestTimeTooSkewed, now=T0 + timedelta(minutes=30))
    assert errors.service_message(exc, "s3") == (
        "The difference between the request time and the current time is too large.")
    assert errors.service_message(exc, "ec2") == "Request has expired."
    assert errors.service_message(exc, "sts") == (
        "Signature expired: 20130524T000000Z is now earlier than 20130524T001500Z "
        "(20130524T003000Z - 15 min.)")
    future = await raises(errors.RequestTimeTooSkewed, now=T0 - timedelta(minutes=30))
    assert errors.service_message(future, "sts").startswith("Signature not yet current: ")


async def test_wrong_region_names_the_first_served_region():
    exc = await raises(errors.WrongRegion,
                       headers=s3_headers(auth_header(f"{AKID}/20130524/mars-1/s3/aws4_request")))
    assert exc.extra == {"Region": "us-east-1"}
    assert [errors.service_error(exc, s) for s in ("s3", "ec2", "sts")] == [
        ("AuthorizationHeaderMalformed", 400), ("AuthFailure", 401), ("SignatureDoesNotMatch", 403)]


KIND_TABLE = [
    (errors.SignatureDoesNotMatch(), ("SignatureDoesNotMatch", 403), ("AuthFailure", 401),
     ("SignatureDoesNotMatch", 403)),
    (errors.InvalidAccessKeyId("AK"), ("InvalidAccessKeyId", 403), ("AuthFailure", 401),
     ("InvalidClientTokenId", 403)),
    (errors.AccessKeyDisabled("AK"), ("AccessDenied", 403), ("AuthFailure", 401),
     ("InvalidClientTokenId", 403)),
    (errors.RequestTimeTooSkewed("a", "b"), ("RequestTimeTooSkewed", 403),
     ("RequestExpired", 400), ("RequestExpired", 400)),
    (errors.RequestExpired(), ("AccessDenied", 403), ("RequestExpired", 400),
     ("RequestExpired", 400)),
    (errors.RequestNotYetValid(), ("AccessDenied", 403), ("RequestExpired", 400),
     ("RequestExpired", 400)),
    (errors.AuthorizationHeaderMalformed(), ("AuthorizationHeaderMalformed", 400),
     ("IncompleteSignature", 400), ("IncompleteSignature", 400)),
    (errors.AuthorizationQueryParametersError(), ("AuthorizationQueryParametersError", 400),
     ("IncompleteSignature", 400), ("IncompleteSignature", 400)),
    (errors.WrongRegion("x", "us-east-1", in_query=True),
     ("AuthorizationQueryParametersError", 400), ("AuthFailure", 401),
     ("SignatureDoesNotMatch", 403)),
    (errors.MissingDateHeader(), ("AccessDenied", 403), ("IncompleteSignature", 400),
     ("IncompleteSignature", 400)),
    (errors.MissingContentSHA256(), ("InvalidRequest", 400), ("IncompleteSignature", 400),
     ("IncompleteSignature", 400)),
    (errors.InvalidAuthArgument("m", "n", "v"), ("InvalidArgument", 400),
     ("IncompleteSignature", 400), ("IncompleteSignature", 400)),
    (errors.ContentSHA256Mismatch("a", "b"), ("XAmzContentSHA256Mismatch", 400),
     ("AuthFailure", 401), ("SignatureDoesNotMatch", 403)),
    (errors.HeadersNotSigned(["x-amz-acl"]), ("AccessDenied", 403), ("AuthFailure", 401),
     ("SignatureDoesNotMatch", 403)),
    (errors.MissingAuthentication(), ("AccessDenied", 403),
     ("MissingAuthenticationToken", 401), ("MissingAuthenticationToken", 403)),
    (errors.QueryAuthIncomplete(), ("AccessDenied", 403), ("IncompleteSignature", 400),
     ("IncompleteSignature", 400)),
]


@pytest.mark.parametrize("exc, s3, ec2, sts", KIND_TABLE, ids=lambda v: getattr(v, "kind", ""))
def test_service_error_table(exc, s3, ec2, sts):
    assert isinstance(exc, errors.AuthError)
    assert errors.service_error(exc, "s3") == s3
    assert errors.service_error(exc, "ec2") == ec2
    assert errors.service_error(exc, "sts") == sts
    assert errors.service_error(exc, "iam") == sts


def test_every_kind_is_distinct_and_in_every_table():
    kinds = [exc.kind for exc, *_ in KIND_TABLE if not isinstance(exc, errors.WrongRegion)]
    kinds.append("wrong_region")
    assert len(kinds) == len(set(kinds)) == len(errors._S3) == len(errors._EC2) == len(
        errors._QUERY)
    assert set(kinds) == set(errors._S3) == set(errors._EC2) == set(errors._QUERY)


def test_ec2_messages():
    assert errors.service_message(errors.SignatureDoesNotMatch(), "ec2") == (
        "AWS was not able to validate the provided access credentials")
    assert errors.service_message(errors.MissingAuthentication(), "ec2").startswith(
        "The request must contain either a valid (registered) AWS access key ID")
    assert errors.service_message(errors.InvalidAccessKeyId("AK"), "sts") == (
        "The security token included in the request is invalid.")
