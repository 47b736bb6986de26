"""AWS's published SigV4 examples: every intermediate value and signature must match exactly.

Sources: the IAM ListUsers example of the SigV4 documentation ("Create a signed AWS API
request"), the aws-sig-v4-test-suite's get-vanilla case, and the S3 API reference's
"Signature Calculations for the Authorization Header" (GET Object, PUT Object, GET Bucket
Lifecycle, Get Bucket (List Objects)) and "Authenticating Requests: Using Query Parameters".
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from _auth_testkit import (
    EXAMPLE_KEYS,
    IAM_AKID,
    IAM_EXAMPLE_TIME,
    IAM_SECRET,
    S3_AKID,
    S3_EXAMPLE_TIME,
    S3_SECRET,
    lookup,
    wire_request,
)

from gateway.auth.request import AuthResult
from gateway.auth.signing import (
    EMPTY_SHA256,
    derive_signing_key,
    sha256_hex,
    sign_hex,
    string_to_sign,
)
from gateway.auth.sigv4 import authenticate, build_canonical_request

S3_HOST = "examplebucket.s3.amazonaws.com"
S3_SCOPE = "20130524/us-east-1/s3/aws4_request"
NEAR_S3_EXAMPLE = S3_EXAMPLE_TIME + timedelta(minutes=5)
WELCOME_SHA256 = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"


def s3_auth(signed_headers: str, signature: str) -> str:
    return (f"AWS4-HMAC-SHA256 Credential={S3_AKID}/{S3_SCOPE},SignedHeaders={signed_headers},"
            f"Signature={signature}")


IAM_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, "
    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


def iam_list_users(authorization: str = IAM_AUTHORIZATION):
    return wire_request("GET", "/?Action=ListUsers&Version=2010-05-08", [
        ("Host", "iam.amazonaws.com"),
        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", authorization),
    ])


def test_iam_signing_key_and_canonical_request_match_the_documentation():
    key = derive_signing_key(IAM_SECRET, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    canonical = build_canonical_request(iam_list_users(), "iam",
                                        ["content-type", "host", "x-amz-date"], EMPTY_SHA256)
    assert canonical == (
        "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
        "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
        "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "content-type;host;x-amz-date\n" + EMPTY_SHA256)
    assert sha256_hex(canonical) == (
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
    to_sign = string_to_sign("20150830T123600Z", "20150830/us-east-1/iam/aws4_request", canonical)
    assert sign_hex(key, to_sign) == (
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


async def test_authenticate_accepts_the_iam_example():
    result = await authenticate(iam_list_users(), lookup(EXAMPLE_KEYS),
                                IAM_EXAMPLE_TIME + timedelta(minutes=3), ["us-east-1"],
                                body_sha256=EMPTY_SHA256)
    assert result == AuthResult(
        access_key_id=IAM_AKID, region="us-east-1", service="iam", signature_version="v4",
        presigned=False, payload_hash=EMPTY_SHA256,
        signing_key=derive_signing_key(IAM_SECRET, "20150830", "us-east-1", "iam"),
        seed_signature="5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        amz_date="20150830T123600Z", scope="20150830/us-east-1/iam/aws4_request")


async def test_test_suite_get_vanilla():
    request = wire_request("GET", "/", [
        ("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
         "aws4_request, SignedHeaders=host;x-amz-date, "
         "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")])
    result = await authenticate(request, lookup(EXAMPLE_KEYS), IAM_EXAMPLE_TIME, ["us-east-1"])
    assert result is not None and result.service == "service"


S3_EXAMPLES = [
    pytest.param(
        "GET", "/test.txt",
        [("Range", "bytes=0-9"), ("x-amz-content-sha256", EMPTY_SHA256)],
        "host;range;x-amz-content-sha256;x-amz-date",
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", id="get-object-range"),
    pytest.param(
        "PUT", "/test$file.text",
        [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
         ("x-amz-content-sha256", WELCOME_SHA256)],
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        id="put-object-raw-dollar"),
    pytest.param(
        "PUT", "/test%24file.text",
        [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
         ("x-amz-content-sha256", WELCOME_SHA256)],
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        id="put-object-encoded-dollar"),
    pytest.param(
        "GET", "/?lifecycle", [("x-amz-content-sha256", EMPTY_SHA256)],
        "host;x-amz-content-sha256;x-amz-date",
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543", id="get-lifecycle"),
    pytest.param(
        "GET", "/?prefix=J&max-keys=2", [("x-amz-content-sha256", EMPTY_SHA256)],
        "host;x-amz-content-sha256;x-amz-date",
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7", id="list-objects"),
]


@pytest.mark.parametrize("method, target, headers, signed, canonical_hash, signature", S3_EXAMPLES)
async def test_s3_header_examples(method, target, headers, signed, canonical_hash, signature):
    lines = [("Host", S3_HOST), ("x-amz-date", "20130524T000000Z"), *headers]
    request = wire_request(method, target, lines)
    payload = dict((k.lower(), v) for k, v in headers)["x-amz-content-sha256"]
    canonical = build_canonical_request(request, "s3", signed.split(";"), payload)
    assert sha256_hex(canonical) == canonical_hash
    key = derive_signing_key(S3_SECRET, "20130524", "us-east-1", "s3")
    assert sign_hex(key, string_to_sign("20130524T000000Z", S3_SCOPE, canonical)) == signature

    signed_request = wire_request(method, target, lines + [("Authorization",
                                                            s3_auth(signed, signature))])
    result = await authenticate(signed_request, lookup(EXAMPLE_KEYS), NEAR_S3_EXAMPLE,
                                ["us-east-1"])
    assert (result.access_key_id, result.service, result.region) == (S3_AKID, "s3", "us-east-1")
    assert result.payload_hash == payload and result.seed_signature == signature
    assert result.presigned is False and result.signature_version == "v4"


PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


async def test_s3_presigned_url_example():
    request = wire_request("GET", "/test.txt?" + PRESIGNED_QUERY, [("Host", S3_HOST)])
    canonical = build_canonical_request(request, "s3", ["host"], "UNSIGNED-PAYLOAD",
                                        exclude_query=["X-Amz-Signature"])
    assert canonical.split("\n")[2] == (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
        "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
        "&X-Amz-SignedHeaders=host")
    assert sha256_hex(canonical) == (
        "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04")
    result = await authenticate(request, lookup(EXAMPLE_KEYS),
                                S3_EXAMPLE_TIME + timedelta(hours=23), ["us-east-1"])
    assert result.presigned is True and result.payload_hash == "UNSIGNED-PAYLOAD"
    assert result.seed_signature == (
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
