"""CORS: Put/Get/DeleteBucketCors and their validation, the rules at work (origin wildcards,
methods, header names), the preflight's answers and errors in S3's order, the headers of actual
requests, and the configuration's life with its bucket (handlers called directly)."""
from __future__ import annotations

import sqlite3

import pytest
from multidict import CIMultiDict

from s3_api import cors, errors, preflight
from tests.s3.helpers import BOB

CHECKSUM = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32"}
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


async def put_cors(s3, bucket, *rules, ctx=None):
    return await s3.call("PutBucketCors", ctx or s3.ctx(headers=CHECKSUM), Bucket=bucket,
                         CORSConfiguration={"CORSRules": list(rules)})


def preflight_of(s3, bucket, key="k", **headers):
    ctx = s3.ctx(account=None, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return preflight.answer(ctx, bucket, key)


def actual(s3, bucket, method="GET", **headers):
    return preflight.response_headers(
        s3.state, bucket, method, CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))


# --- the configuration ---------------------------------------------------------------------------

async def test_round_trip_keeps_rules_as_given(s3, bucket):
    with pytest.raises(errors.NoSuchCORSConfiguration) as caught:
        await s3.call("GetBucketCors", Bucket=bucket)
    assert caught.value.status == 404 and caught.value.extra == {"BucketName": bucket}
    rules = [
        {"ID": "app", "AllowedHeaders": ["x-amz-*", "Content-Type", "x-AMZ-meta-Case"],
         "AllowedMethods": ["GET", "PUT", "HEAD"],
         "AllowedOrigins": ["https://app.example.com", "http://test.com:80", ""],
         "ExposeHeaders": ["ETag", "x-amz-version-id"], "MaxAgeSeconds": 3000},
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]},
    ]
    assert await put_cors(s3, bucket, *rules) == {}
    assert await s3.call("GetBucketCors", Bucket=bucket) == {"CORSRules": rules}
    # a new configuration replaces the old one whole
    await put_cors(s3, bucket, {"AllowedMethods": ["DELETE"], "AllowedOrigins": ["https://x"]})
    out = await s3.call("GetBucketCors", Bucket=bucket)
    assert out == {"CORSRules": [{"AllowedMethods": ["DELETE"], "AllowedOrigins": ["https://x"]}]}
    assert await s3.call("DeleteBucketCors", Bucket=bucket) == {"__status__": 204}
    with pytest.raises(errors.NoSuchCORSConfiguration):
        await s3.call("GetBucketCors", Bucket=bucket)
    # deleting what is not there is 204 too
    assert await s3.call("DeleteBucketCors", Bucket=bucket) == {"__status__": 204}


RULE = {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}


@pytest.mark.parametrize("rules, error, message", [
    ([], errors.MalformedXML, None),
    ([RULE] * 101, errors.MalformedXML, None),
    ([{"AllowedMethods": ["GET"]}], errors.MalformedXML, None),
    ([{"AllowedOrigins": ["*"]}], errors.MalformedXML, None),
    ([{"AllowedMethods": [], "AllowedOrigins": ["*"]}], errors.MalformedXML, None),
    ([{**RULE, "MaxAgeSeconds": -1}], errors.MalformedXML, None),
    ([RULE, {"AllowedMethods": ["GET", "MYMETHOD"], "AllowedOrigins": ["*"]}],
     errors.InvalidRequest,
     "Found unsupported HTTP method in CORS config. Unsupported method is MYMETHOD"),
    ([{"AllowedMethods": ["OPTIONS"], "AllowedOrigins": ["*"]}], errors.InvalidRequest,
     "Found unsupported HTTP method in CORS config. Unsupported method is OPTIONS"),
    ([{"AllowedMethods": ["get"], "AllowedOrigins": ["*"]}], errors.InvalidRequest,
     "Found unsupported HTTP method in CORS config. Unsupported method is get"),
    ([{"AllowedMethods": [""], "AllowedOrigins": ["*"]}], errors.InvalidRequest,
     "Found unsupported HTTP method in CORS config. Unsupported method is "),
    ([{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://*.example.*"]}],
     errors.InvalidRequest, 'AllowedOrigin "https://*.example.*" can not have more than one'
     ' wildcard.'),
    ([{**RULE, "AllowedHeaders": ["x-amz-*", "**"]}], errors.InvalidRequest,
     'AllowedHeader "**" can not have more than one wildcard.'),
    ([{**RULE, "ExposeHeaders": ["ETag", "x-amz-meta-*"]}], errors.InvalidRequest,
     'ExposeHeader "x-amz-meta-*" contains wildcard. We currently do not support wildcard for'
     ' ExposeHeader.'),
    ([{**RULE, "ID": "i" * 256}], errors.InvalidArgument, None),
])
async def test_invalid_configurations_are_refused(s3, bucket, rules, error, message):
    await put_cors(s3, bucket, {"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://kept"]})
    with pytest.raises(error) as caught:
        await put_cors(s3, bucket, *rules)
    assert caught.value.status == 400
    if message is not None:
        assert caught.value.message == message
    # the configuration in place is untouched
    out = await s3.call("GetBucketCors", Bucket=bucket)
    assert out["CORSRules"] == [{"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://kept"]}]


async def test_put_needs_content_md5_or_a_checksum(s3, bucket):
    with pytest.raises(errors.InvalidRequest) as caught:
        await put_cors(s3, bucket, RULE, ctx=s3.ctx())
    assert "Content-MD5" in caught.value.message
    await put_cors(s3, bucket, RULE, ctx=s3.ctx(headers={"Content-MD5": "x"}))


async def test_other_accounts_and_anonymous_are_refused(s3, bucket):
    await put_cors(s3, bucket, RULE)
    for ctx in (s3.ctx(account=BOB, headers=CHECKSUM), s3.ctx(account=None, headers=CHECKSUM)):
        for operation, extra in (("GetBucketCors", {}), ("DeleteBucketCors", {}),
                                 ("PutBucketCors", {"CORSConfiguration": {"CORSRules": [RULE]}})):
            with pytest.raises(errors.AccessDenied):
                await s3.call(operation, ctx, Bucket=bucket, **extra)
    # ExpectedBucketOwner naming another account is refused to the owner too
    with pytest.raises(errors.AccessDenied):
        await s3.call("GetBucketCors", Bucket=bucket, ExpectedBucketOwner=BOB.account_id)
    assert (await s3.call("GetBucketCors", Bucket=bucket))["CORSRules"] == [RULE]
    with pytest.raises(errors.NoSuchBucket):
        await s3.call("GetBucketCors", Bucket="no-such-bucket")


async def test_deleting_the_bucket_deletes_its_configuration(s3, bucket):
    await put_cors(s3, bucket, RULE)
    await s3.call("DeleteBucket", Bucket=bucket)
    rows = s3.state.store.query("SELECT COUNT(*) FROM s3_bucket_cors")
    assert rows == [(0,)]
    # the name made again (here by another account) starts without a configuration
    await s3.call("CreateBucket", s3.ctx(account=BOB), Bucket=bucket)
    with pytest.raises(errors.NoSuchCORSConfiguration):
        await s3.call("GetBucketCors", s3.ctx(account=BOB), Bucket=bucket)
    with pytest.raises(preflight.AccessForbidden) as caught:
        preflight_of(s3, bucket, Origin="https://a", Access_Control_Request_Method="GET")
    assert caught.value.message == "CORSResponse: CORS is not enabled for this bucket."


@pytest.mark.sqlite_only
async def test_configuration_survives_a_restart(tmp_path):
    from tests.s3.helpers import close_harness, make_harness
    s3 = await make_harness(str(tmp_path))
    try:
        await s3.call("CreateBucket", Bucket="kept")
        await put_cors(s3, "kept", RULE)
    finally:
        await close_harness(s3)
    s3 = await make_harness(str(tmp_path))
    try:
        assert (await s3.call("GetBucketCors", Bucket="kept"))["CORSRules"] == [RULE]
    finally:
        await close_harness(s3)
    # the row refers to its bucket: the database refuses an orphan
    conn = sqlite3.connect(str(tmp_path / "nimbo.db"))
    conn.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO s3_bucket_cors (bucket, rules) VALUES ('gone', '[]')")
    conn.close()


# --- matching ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, value, expected", [
    ("*", "", True), ("*", "anything", True),
    ("*suffix", "foo.suffix", True), ("*suffix", "suffix", True),
    ("*suffix", "foo.suffix.get", False),
    ("start*end", "startend", True), ("start*end", "start12end", True),
    ("start*end", "0start12end", False), ("start*end", "startenX", False),
    ("prefix*", "prefix", True), ("prefix*", "bla.prefix", False),
    ("aba*aba", "aba", False), ("aba*aba", "ababa", False), ("aba*aba", "abaaba", True),
    ("http://*.origin.com", "http://test.origin.com", True),
    ("http://*.origin.com", "http://test.origin.com/", False),
    ("https://example.com", "https://example.com", True),
    ("https://example.com", "https://Example.com", False),
    ("https://example.com", "https://example.com:443", False),
])
def test_wildcard_match(pattern, value, expected):
    assert cors.wildcard_match(pattern, value) is expected


def test_first_matching_rule_wins_and_headers_match_without_case():
    rules = [
        {"ID": "1", "AllowedMethods": ["PUT"], "AllowedOrigins": ["https://a"],
         "AllowedHeaders": ["X-Amz-*", "content-TYPE"]},
        {"ID": "2", "AllowedMethods": ["PUT", "GET"], "AllowedOrigins": ["*"]},
    ]
    names = cors.requested_headers("Content-Type, x-amz-date ,,X-AMZ-Meta-a")
    assert names == ["content-type", "x-amz-date", "x-amz-meta-a"]
    assert cors.matching_rule(rules, "https://a", "PUT", names)["ID"] == "1"
    # a header rule 1 does not allow: no rule (rule 2 allows no requested header)
    assert cors.matching_rule(rules, "https://a", "PUT", ["authorization"]) is None
    assert cors.matching_rule(rules, "https://a", "PUT", [])["ID"] == "1"
    assert cors.matching_rule(rules, "https://a", "GET", [])["ID"] == "2"
    assert cors.matching_rule(rules, "https://b", "PUT", [])["ID"] == "2"
    assert cors.matching_rule(rules, "https://b", "DELETE", []) is None
    assert cors.matching_rule(rules, "https://b", "get", []) is None     # methods as written


# --- preflight -----------------------------------------------------------------------------------

async def test_preflight_answers_from_the_first_matching_rule(s3, bucket):
    await put_cors(
        s3, bucket,
        {"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["https://app.example.com"],
         "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
         "MaxAgeSeconds": 3000},
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]})
    headers = preflight_of(s3, bucket, Origin="https://app.example.com",
                           Access_Control_Request_Method="PUT",
                           Access_Control_Request_Headers="Content-Type,X-Amz-Date")
    assert headers == {
        "Access-Control-Allow-Origin": "https://app.example.com",
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Allow-Headers": "content-type, x-amz-date",
        "Access-Control-Expose-Headers": "ETag, x-amz-request-id",
        "Access-Control-Max-Age": "3000",
        "Access-Control-Allow-Credentials": "true",
        "Vary": VARY,
    }
    # any other origin falls through to the "*" rule: "*" back, no credentials
    headers = preflight_of(s3, bucket, key=None, Origin="http://random:1234",
                           Access_Control_Request_Method="GET")
    assert headers == {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET",
                       "Vary": VARY}


async def test_preflight_errors_in_s3_order(s3, bucket):
    def refused(bucket_name, key="k", **headers):
        with pytest.raises(errors.S3Error) as caught:
            preflight_of(s3, bucket_name, key, **headers)
        e = caught.value
        return e.status, e.code, e.message, e.extra

    no_origin = (400, "BadRequest", "Insufficient information. Origin request header needed.", {})
    assert refused("no-such-bucket") == no_origin
    assert refused(bucket, Access_Control_Request_Method="GET") == no_origin
    assert refused(bucket, Origin="", Access_Control_Request_Method="GET") == no_origin
    assert refused("no-such-bucket", Origin="https://a") == (
        403, "AccessForbidden", "CORSResponse: Bucket not found",
        {"Method": "OPTIONS", "ResourceType": "BUCKET"})
    assert refused(bucket, Origin="https://a", Access_Control_Request_Method="PUT") == (
        403, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.",
        {"Method": "PUT", "ResourceType": "BUCKET"})
    await put_cors(s3, bucket, {"AllowedMethods": ["GET"], "AllowedOrigins": ["*suffix"]})
    assert refused(bucket, Origin="foo.suffix") == (
        400, "BadRequest", "Invalid Access-Control-Request-Method: null", {})
    assert refused(bucket, Origin="foo.suffix", Access_Control_Request_Method="PATCH") == (
        400, "BadRequest", "Invalid Access-Control-Request-Method: PATCH", {})
    for key, resource in (("k", "OBJECT"), (None, "BUCKET")):
        assert refused(bucket, key, Origin="foo.bar", Access_Control_Request_Method="GET") == (
            403, "AccessForbidden", preflight.NOT_ALLOWED,
            {"Method": "GET", "ResourceType": resource})
    # a requested header the rule does not allow (it allows none) refuses the whole preflight
    status, code, _, extra = refused(bucket, Origin="foo.suffix",
                                     Access_Control_Request_Method="GET",
                                     Access_Control_Request_Headers="x-amz-meta-header2")
    assert (status, code, extra["Method"]) == (403, "AccessForbidden", "GET")
    assert "evalution of Origin" in preflight.NOT_ALLOWED       # S3's spelling, kept
    assert preflight_of(s3, bucket, Origin="foo.suffix", Access_Control_Request_Method="GET")[
        "Access-Control-Allow-Origin"] == "foo.suffix"


# --- actual requests -----------------------------------------------------------------------------

async def test_actual_requests_get_headers_only_from_a_matching_rule(s3, bucket):
    assert actual(s3, bucket, Origin="https://a") is None              # no configuration
    await put_cors(s3, bucket,
                   {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://a"],
                    "AllowedHeaders": ["x-amz-expected-bucket-owner"], "MaxAgeSeconds": 0},
                   {"AllowedMethods": ["PUT"], "AllowedOrigins": ["*.put"]})
    assert actual(s3, bucket) is None                                  # no Origin
    assert actual(s3, bucket, Origin="https://b") is None              # no rule for the origin
    assert actual(s3, bucket, "PUT", Origin="https://a") is None       # nor for the method
    assert actual(s3, "no-such-bucket", Origin="https://a") is None
    assert actual(s3, None, Origin="https://a") is None
    assert actual(s3, bucket, "GET", Origin="https://a") == {
        "Access-Control-Allow-Origin": "https://a", "Access-Control-Allow-Methods": "GET",
        "Access-Control-Max-Age": "0", "Access-Control-Allow-Credentials": "true", "Vary": VARY}
    assert actual(s3, bucket, "head", Origin="https://a") is None
    # Access-Control-Request-Method decides on an actual request, as it does on S3
    assert actual(s3, bucket, "PUT", Origin="https://a", Access_Control_Request_Method="GET")
    assert actual(s3, bucket, "GET", Origin="https://a",
                  Access_Control_Request_Method="PUT") is None
    assert actual(s3, bucket, "GET", Origin="https://a",
                  Access_Control_Request_Headers="x-amz-request-payer") is None
    assert actual(s3, bucket, "GET", Origin="https://a",
                  Access_Control_Request_Headers="X-Amz-Expected-Bucket-Owner")[
        "Access-Control-Allow-Headers"] == "x-amz-expected-bucket-owner"
    assert actual(s3, bucket, "PUT", Origin="foo.put")["Access-Control-Allow-Origin"] == "foo.put"


async def test_expose_headers_never_split_a_response(s3, bucket):
    await put_cors(s3, bucket, {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
                                "ExposeHeaders": ["ETag\r\nSet-Cookie: x=1"]})
    value = actual(s3, bucket, Origin="https://a")["Access-Control-Expose-Headers"]
    assert "\r" not in value and "\n" not in value
