"""S3 scenarios for CORS: the bucket configuration through boto3, its validation, and what a
browser sends (an unsigned preflight OPTIONS, then the actual request with ``Origin``)."""
from __future__ import annotations

from conformance import scenario

ORIGIN = "https://app.example.com"
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
RULES = [
    {"ID": "app", "AllowedHeaders": ["content-type", "x-amz-*"],
     "AllowedMethods": ["GET", "PUT"], "AllowedOrigins": [ORIGIN],
     "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]},
]


@scenario("s3", ["PutBucketCors", "GetBucketCors", "DeleteBucketCors"], client="boto3")
def cors_configuration(ctx):
    """GetBucketCors is NoSuchCORSConfiguration (404) until PutBucketCors; the rules come back as
    given; DeleteBucketCors answers 204 and the configuration is gone."""
    bucket = ctx.bucket("cors")
    with ctx.expect_error("NoSuchCORSConfiguration", 404):
        ctx.call("s3", "GetBucketCors", Bucket=bucket)
    ctx.call("s3", "PutBucketCors", Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    ctx.check_equal(ctx.call("s3", "GetBucketCors", Bucket=bucket).get("CORSRules"), RULES,
                    "CORSRules")
    out = ctx.call("s3", "DeleteBucketCors", Bucket=bucket)
    ctx.check_equal(out["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteBucketCors status")
    with ctx.expect_error("NoSuchCORSConfiguration", 404):
        ctx.call("s3", "GetBucketCors", Bucket=bucket)


@scenario("s3", "PutBucketCors", client="boto3", variant="invalid")
def cors_configuration_invalid(ctx):
    """An unsupported method and an origin with two wildcards are InvalidRequest (400) with S3's
    messages, no rule at all is MalformedXML (400)."""
    bucket = ctx.bucket("corsbad")
    with ctx.expect_error("InvalidRequest", 400) as caught:
        ctx.call("s3", "PutBucketCors", Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedMethods": ["GET", "PATCH"], "AllowedOrigins": ["*"]}]})
    ctx.check_equal(caught.message, "Found unsupported HTTP method in CORS config. Unsupported"
                    " method is PATCH", "message")
    with ctx.expect_error("InvalidRequest", 400) as caught:
        ctx.call("s3", "PutBucketCors", Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://*.*.example.com"]}]})
    ctx.check_equal(caught.message, 'AllowedOrigin "https://*.*.example.com" can not have more'
                    " than one wildcard.", "message")
    with ctx.expect_error("MalformedXML", 400):
        ctx.call("s3", "PutBucketCors", Bucket=bucket, CORSConfiguration={"CORSRules": []})


def _cors_headers(response) -> dict:
    return {k: v for k, v in response.headers.items()
            if k.lower().startswith("access-control-") or k.lower() == "vary"}


@scenario("s3", "OPTIONS", client="raw", variant="CORS preflight")
def cors_preflight(ctx):
    """An unsigned OPTIONS from an allowed origin is 200 with the rule's Access-Control-* headers
    and Vary; from an origin no rule allows, 403 AccessForbidden; without Origin, 400."""
    bucket = ctx.bucket("preflight")
    ctx.call("s3", "PutBucketCors", Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    response = ctx.raw("s3", "OPTIONS", f"/{bucket}/photo.jpg", sign=False, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,x-amz-meta-owner"})
    ctx.check_equal(response.status, 200, "status")
    ctx.check_equal(_cors_headers(response), {
        "Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Allow-Headers": "content-type, x-amz-meta-owner",
        "Access-Control-Expose-Headers": "ETag", "Access-Control-Max-Age": "600",
        "Access-Control-Allow-Credentials": "true", "Vary": VARY}, "preflight headers")
    with ctx.expect_error("AccessForbidden", 403):
        ctx.raw("s3", "OPTIONS", f"/{bucket}/photo.jpg", sign=False, headers={
            "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "PUT"})
    with ctx.expect_error("BadRequest", 400):
        ctx.raw("s3", "OPTIONS", f"/{bucket}/photo.jpg", sign=False,
                headers={"Access-Control-Request-Method": "PUT"})


@scenario("s3", "GetObject", client="raw", variant="CORS Origin")
def cors_actual_request(ctx):
    """A signed GET with an Origin a rule allows carries Access-Control-Allow-Origin and Vary;
    with an origin no rule allows for the method, the request succeeds without CORS headers."""
    bucket = ctx.bucket("corsget")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="k", Body=b"cross-origin")
    ctx.call("s3", "PutBucketCors", Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    response = ctx.raw("s3", "GET", f"/{bucket}/k", headers={"Origin": ORIGIN})
    ctx.check_equal(response.body, b"cross-origin", "body")
    ctx.check_equal(response.header("Access-Control-Allow-Origin"), ORIGIN,
                    "Access-Control-Allow-Origin")
    ctx.check_equal(response.header("Vary"), VARY, "Vary")
    response = ctx.raw("s3", "PUT", f"/{bucket}/k2", body=b"x",
                       headers={"Origin": "https://elsewhere.example"})
    ctx.check_equal(_cors_headers(response), {}, "CORS headers for a disallowed origin")
