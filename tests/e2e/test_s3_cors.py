"""CORS against a live server: the configuration through boto3 and aws-cli, bad configurations
(boto3 and raw XML: S3's 400s, never a 500), and what a browser sends, sent with aiohttp as a
browser shapes it: an unsigned preflight OPTIONS, then the actual request with its Origin header
(presigned PUT and GET, an error, a refused signature, an anonymous request), in path-style and
virtual-hosted-style addressing."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import aiohttp
import boto3
import botocore.config
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.test_foundation import aws_cli

APP = "http://app.example:8080"
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
BROWSER = {    # what Chrome adds to a cross-origin fetch (the CORS headers are the test's own)
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
                  " Chrome/126.0 Safari/537.36",
    "Accept": "*/*", "Accept-Language": "en-US,en;q=0.9", "Accept-Encoding": "gzip, deflate",
    "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty",
    "Referer": APP + "/",
}
RULES = [
    {"ID": "app", "AllowedOrigins": [APP], "AllowedMethods": ["GET", "PUT", "HEAD"],
     "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
     "MaxAgeSeconds": 600},
    {"ID": "public-read", "AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def creds(server):
    return server.credentials()


def new_bucket(s3, hint: str) -> str:
    name = f"cors-{hint}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def cors_of(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items()
            if k.lower().startswith("access-control-") or k.lower() == "vary"}


class Addressing:
    """Where a browser sends a bucket's requests: the connection always goes to 127.0.0.1, the
    Host header and path name the bucket (``bucket.s3.localhost`` does not resolve here)."""

    def __init__(self, server, style: str, bucket: str) -> None:
        self.server, self.style, self.bucket = server, style, bucket
        if style == "virtual":
            self.host = f"{bucket}.s3.localhost:{server.port}"
            self.prefix = ""
        else:
            self.host = f"127.0.0.1:{server.port}"
            self.prefix = f"/{bucket}"
        creds = server.credentials()
        endpoint = (f"http://s3.localhost:{server.port}" if style == "virtual"
                    else server.endpoint)
        self.signer = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(signature_version="s3v4",
                                          s3={"addressing_style": style}))

    def path(self, key: str = "") -> str:
        return f"{self.prefix}/{urllib.parse.quote(key)}" if key else (self.prefix or "/")

    def presign(self, operation: str, **params) -> str:
        """The presigned URL's path and query (what the browser's request line carries)."""
        url = self.signer.generate_presigned_url(operation, {"Bucket": self.bucket, **params},
                                                 ExpiresIn=600)
        parts = urllib.parse.urlsplit(url)
        assert parts.netloc == self.host, url
        return f"{parts.path}?{parts.query}"

    async def send(self, method: str, target: str, headers=None, data: bytes | None = None):
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(
                    method, f"http://127.0.0.1:{self.server.port}{target}", data=data,
                    headers={"Host": self.host, **(headers or {})},
                    skip_auto_headers=("User-Agent",)) as response:
                return response.status, response.headers.copy(), await response.read()


def error_of(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    return {child.tag: child.text or "" for child in root}


# --- the configuration -----------------------------------------------------------------------

def test_configuration_through_boto3(s3):
    bucket = new_bucket(s3, "conf")
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_cors(Bucket=bucket)
    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"], error["BucketName"]) == (
        "NoSuchCORSConfiguration", "The CORS configuration does not exist", bucket)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    out = s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    assert s3.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_cors(Bucket=bucket)
    assert caught.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.delete_bucket(Bucket=bucket)       # the configuration goes with the bucket
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_cors(Bucket=bucket)
    assert caught.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"


@pytest.mark.parametrize("rules, code, message", [
    ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PATCH"]}], "InvalidRequest",
     "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"),
    ([{"AllowedOrigins": ["https://*.example.*"], "AllowedMethods": ["GET"]}], "InvalidRequest",
     'AllowedOrigin "https://*.example.*" can not have more than one wildcard.'),
    ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]}],
     "InvalidRequest", 'AllowedHeader "x-*-*" can not have more than one wildcard.'),
    ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]}],
     "InvalidRequest",
     'ExposeHeader "*" contains wildcard. We currently do not support wildcard for ExposeHeader.'),
    ([], "MalformedXML", "The XML you provided was not well-formed or did not validate against"
     " our published schema"),
    ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "MalformedXML", None),
])
def test_bad_configurations_through_boto3(s3, rules, code, message):
    bucket = new_bucket(s3, "bad")
    with pytest.raises(ClientError) as caught:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert caught.value.response["Error"]["Code"] == code
    if message:
        assert caught.value.response["Error"]["Message"] == message
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=bucket)        # nothing was stored


def signed_put_cors(server, creds, bucket: str, body: bytes, checksum: bool = True):
    url = f"{server.endpoint}/{bucket}?cors"
    headers = {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="} if checksum else {}
    request = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]),
                "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("PUT", f"/{bucket}?cors", body=body, headers=dict(prepared.headers))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("body, code", [
    (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>", "MalformedXML"),
    (b"not xml at all", "MalformedXML"),
    (b"<CORSConfiguration/>", "MalformedXML"),
    (b"<Other><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
     b"</CORSRule></Other>", "MalformedXML"),
    (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule>"
     b"</CORSConfiguration>", "MalformedXML"),
    (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET"
     b"</AllowedMethod><MaxAgeSeconds>soon</MaxAgeSeconds></CORSRule></CORSConfiguration>",
     "MalformedXML"),
    (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod/>"
     b"</CORSRule></CORSConfiguration>", "InvalidRequest"),
    (b"<CORSConfiguration><CORSRule><AllowedOrigin>**</AllowedOrigin><AllowedMethod>GET"
     b"</AllowedMethod></CORSRule></CORSConfiguration>", "InvalidRequest"),
])
def test_malformed_xml_is_a_400_never_a_500(server, creds, s3, body, code):
    bucket = new_bucket(s3, "xml")
    status, answer = signed_put_cors(server, creds, bucket, body)
    assert (status, error_of(answer)["Code"]) == (400, code), answer


def test_put_without_content_md5_or_checksum(server, creds, s3):
    bucket = new_bucket(s3, "md5")
    body = (b'<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule>'
            b"<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>"
            b"</CORSConfiguration>")
    status, answer = signed_put_cors(server, creds, bucket, body, checksum=False)
    assert (status, error_of(answer)["Code"]) == (400, "InvalidRequest")
    status, _ = signed_put_cors(server, creds, bucket, body)
    assert status == 200
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]


def test_configuration_through_aws_cli(server, s3):
    bucket = new_bucket(s3, "cli")
    done = aws_cli(server, "s3api", "put-bucket-cors", "--bucket", bucket,
                   "--cors-configuration", json.dumps({"CORSRules": RULES}))
    assert done.returncode == 0, done.stderr
    done = aws_cli(server, "s3api", "get-bucket-cors", "--bucket", bucket)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["CORSRules"] == RULES
    # what a user then tries: a browser-style preflight with curl, no credentials
    curl = subprocess.run(
        ["curl", "-sS", "-i", "--noproxy", "*", "-X", "OPTIONS", "-H", f"Origin: {APP}",
         "-H", "Access-Control-Request-Method: PUT",
         "-H", "Access-Control-Request-Headers: content-type",
         f"{server.endpoint}/{bucket}/upload.bin"], capture_output=True, text=True, timeout=60)
    lines = curl.stdout.lower().splitlines()
    assert lines[0].startswith("http/1.1 200"), curl.stdout
    assert f"access-control-allow-origin: {APP}" in lines
    assert "access-control-allow-headers: content-type" in lines
    done = aws_cli(server, "s3api", "delete-bucket-cors", "--bucket", bucket)
    assert done.returncode == 0, done.stderr
    done = aws_cli(server, "s3api", "get-bucket-cors", "--bucket", bucket)
    assert done.returncode != 0 and "NoSuchCORSConfiguration" in done.stderr


# --- what a browser sends ----------------------------------------------------------------------

@pytest.mark.parametrize("style", ["path", "virtual"])
async def test_browser_preflight_then_upload_and_download(server, s3, style):
    bucket = new_bucket(s3, style[:4])
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    site = Addressing(server, style, bucket)
    key = "uploads/photo 1.jpg"
    # 1. the preflight of fetch(presignedPutUrl, {method: "PUT", headers: {"Content-Type": ...}})
    put_target = site.presign("put_object", Key=key)
    status, headers, body = await site.send("OPTIONS", put_target, {
        **BROWSER, "Origin": APP, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,x-amz-meta-owner"})
    assert (status, body) == (200, b"")
    assert cors_of(headers) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, PUT, HEAD",
        "Access-Control-Allow-Headers": "content-type, x-amz-meta-owner",
        "Access-Control-Expose-Headers": "ETag, x-amz-request-id",
        "Access-Control-Max-Age": "600",
        "Access-Control-Allow-Credentials": "true",
        "Vary": VARY,
    }
    assert headers["Content-Length"] == "0" and "Content-Type" not in headers
    assert headers["x-amz-request-id"] and headers["x-amz-id-2"]
    # 2. the upload itself
    status, headers, _ = await site.send("PUT", put_target, {
        **BROWSER, "Origin": APP, "Content-Type": "image/jpeg"}, data=b"jpeg bytes")
    assert status == 200
    assert headers["ETag"] == f'"{hashlib.md5(b"jpeg bytes").hexdigest()}"'
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert headers["Vary"] == VARY
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"jpeg bytes"
    # 3. reading it back (a simple GET: no preflight), as the same page
    status, headers, body = await site.send("GET", site.presign("get_object", Key=key),
                                            {**BROWSER, "Origin": APP})
    assert (status, body) == (200, b"jpeg bytes")
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Credentials"] == "true"
    # ... and as any other site: the "*" rule answers GET, with "*"
    status, headers, body = await site.send("GET", site.presign("get_object", Key=key),
                                            {**BROWSER, "Origin": "https://elsewhere.test"})
    assert (status, body) == (200, b"jpeg bytes")
    assert cors_of(headers) == {"Access-Control-Allow-Origin": "*",
                                "Access-Control-Allow-Methods": "GET", "Vary": VARY}


@pytest.mark.parametrize("style", ["path", "virtual"])
async def test_browser_errors_carry_cors_headers(server, s3, style):
    bucket = new_bucket(s3, "err" + style[:1])
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    site = Addressing(server, style, bucket)
    browser = {**BROWSER, "Origin": APP}
    # a missing key: 404 the page can read
    status, headers, body = await site.send("GET", site.presign("get_object", Key="absent"),
                                            browser)
    assert status == 404 and error_of(body)["Code"] == "NoSuchKey"
    assert headers["Access-Control-Allow-Origin"] == APP and headers["Vary"] == VARY
    # a refused signature: 403, readable too
    target = site.presign("get_object", Key="absent")
    signature = urllib.parse.parse_qs(target.partition("?")[2])["X-Amz-Signature"][0]
    tampered = target.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    status, headers, body = await site.send("GET", tampered, browser)
    assert status == 403 and error_of(body)["Code"] == "SignatureDoesNotMatch"
    assert headers["Access-Control-Allow-Origin"] == APP
    # an anonymous request to a private bucket: refused, with the CORS headers
    status, headers, body = await site.send("GET", site.path("absent"), browser)
    assert status == 403 and error_of(body)["Code"] == "AccessDenied"
    assert headers["Access-Control-Allow-Origin"] == APP
    # an origin no rule allows for the method: the request proceeds, without CORS headers
    status, headers, _ = await site.send("PUT", site.presign("put_object", Key="k"),
                                         {**BROWSER, "Origin": "https://evil.test"}, data=b"x")
    assert status == 200 and cors_of(headers) == {}
    # no Origin (curl, an SDK): no CORS headers
    status, headers, _ = await site.send("GET", site.presign("get_object", Key="k"))
    assert status == 200 and cors_of(headers) == {}


@pytest.mark.parametrize("style", ["path", "virtual"])
async def test_refused_preflights(server, s3, style):
    bucket = new_bucket(s3, "no" + style[:1])
    site = Addressing(server, style, bucket)
    ask = {**BROWSER, "Origin": APP, "Access-Control-Request-Method": "PUT"}
    # no Origin: 400, whatever the bucket
    for target in (site.path("k"), Addressing(server, style, "absent-" + bucket).path("k")):
        status, _, body = await site.send("OPTIONS", target,
                                          {"Access-Control-Request-Method": "GET"})
        assert status == 400 and error_of(body)["Code"] == "BadRequest"
    # no configuration: 403 AccessForbidden naming the method and the bucket
    status, headers, body = await site.send("OPTIONS", site.path("k"), ask)
    error = error_of(body)
    assert status == 403 and cors_of(headers) == {}
    assert [error[k] for k in ("Code", "Message", "Method", "ResourceType")] == [
        "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", "PUT", "BUCKET"]
    assert list(error)[:4] == ["Code", "Message", "Method", "ResourceType"]
    assert error["RequestId"] == headers["x-amz-request-id"]
    # a presigned URL's signature is not what a preflight is judged by (nor a bad Authorization)
    status, _, body = await site.send("OPTIONS", site.presign("put_object", Key="k"))
    assert status == 400 and error_of(body)["Code"] == "BadRequest"
    status, _, body = await site.send("OPTIONS", site.path("k"), {
        **ask, "Authorization": "AWS4-HMAC-SHA256 Credential=AKIANOPE/20260101/us-east-1/s3/"
        "aws4_request, SignedHeaders=host, Signature=00"})
    assert status == 403 and error_of(body)["Code"] == "AccessForbidden"
    # a missing bucket
    missing = Addressing(server, style, "absent-" + bucket)
    status, _, body = await missing.send("OPTIONS", missing.path("k"), ask)
    assert status == 403 and error_of(body)["Message"] == "CORSResponse: Bucket not found"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    # no method to ask about: 400
    status, _, body = await site.send("OPTIONS", site.path("k"), {**BROWSER, "Origin": APP})
    assert status == 400
    assert error_of(body)["Message"] == "Invalid Access-Control-Request-Method: null"
    # an origin, a method, a header no rule allows: 403 naming the method and the object
    for headers_asked in ({"Origin": "https://evil.test"},
                          {"Access-Control-Request-Method": "DELETE"},
                          {"Access-Control-Request-Headers": "content-type,authorization"}):
        status, headers, body = await site.send("OPTIONS", site.path("k"),
                                                {**ask, **headers_asked})
        error = error_of(body)
        assert status == 403 and cors_of(headers) == {}, headers_asked
        assert error["Code"] == "AccessForbidden" and error["ResourceType"] == "OBJECT"
        assert error["Message"].startswith("CORSResponse: This CORS request is not allowed.")
        assert error["Method"] == headers_asked.get("Access-Control-Request-Method", "PUT")
    # a preflight on the bucket itself (a browser POST form upload)
    status, _, body = await site.send("OPTIONS", site.path(),
                                      {**ask, "Access-Control-Request-Method": "POST"})
    assert status == 403 and error_of(body)["ResourceType"] == "BUCKET"
    status, headers, _ = await site.send("OPTIONS", site.path(), ask)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == APP


async def test_browser_form_upload_and_streamed_download(server, s3):
    """A page's POST form upload (no preflight: a simple request) and a GET of an object large
    enough to be streamed from disk both carry the CORS headers."""
    bucket = new_bucket(s3, "form")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [APP], "AllowedMethods": ["POST", "GET"], "ExposeHeaders": ["ETag"]}]})
    site = Addressing(server, "path", bucket)
    post = site.signer.generate_presigned_post(bucket, "form/${filename}", ExpiresIn=600)
    form = aiohttp.FormData()
    for name, value in post["fields"].items():
        form.add_field(name, value)
    big = bytes(range(256)) * 1024            # 256 KiB: above the inline limit, streamed
    form.add_field("file", big, filename="big.bin", content_type="application/octet-stream")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.endpoint}/{bucket}", data=form,
                                headers={**BROWSER, "Origin": APP}) as response:
            assert response.status == 204, await response.text()
            assert response.headers["Access-Control-Allow-Origin"] == APP
            assert response.headers["Access-Control-Expose-Headers"] == "ETag"
    status, headers, body = await site.send("GET", site.presign("get_object", Key="form/big.bin"),
                                            {**BROWSER, "Origin": APP})
    assert status == 200 and body == big
    assert headers["Access-Control-Allow-Origin"] == APP and headers["Vary"] == VARY
    assert headers["Access-Control-Allow-Methods"] == "POST, GET"


def test_configuration_survives_kill_9(fresh_server):
    """An acknowledged PutBucketCors is there after a kill -9, and so is the preflight it
    answers; an acknowledged DeleteBucketCors stays done."""
    srv = fresh_server.start()
    s3 = srv.client("s3")
    for name in ("kept", "dropped"):
        s3.create_bucket(Bucket=name)
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": RULES})
    s3.delete_bucket_cors(Bucket="dropped")
    srv.stop(signal.SIGKILL)
    os.unlink(os.path.join(srv.data_dir, "endpoint"))
    srv.start()
    s3 = srv.client("s3")
    assert s3.get_bucket_cors(Bucket="kept")["CORSRules"] == RULES
    with pytest.raises(ClientError) as caught:
        s3.get_bucket_cors(Bucket="dropped")
    assert caught.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request("OPTIONS", "/kept/k", headers={"Origin": APP,
                                                    "Access-Control-Request-Method": "GET"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Access-Control-Allow-Origin") == APP
    finally:
        conn.close()
