"""POST Object (browser-based uploads) against a live server: curl's forms and hand-made ones,
SigV4 and SigV2 policies, the answers a form asks for, and every way a form is refused."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

REGION = "us-east-1"


@pytest.fixture(scope="module")
def creds(server):
    return server.credentials()


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def bucket(s3):
    name = f"post-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def signed_form(creds: dict, conditions: list, fields: dict, *, expires_in: int = 300,
                sigv2: bool = False, secret: str | None = None) -> dict:
    """``fields`` plus the policy (``conditions`` and one condition per field) and its signature."""
    now = dt.datetime.now(dt.timezone.utc)
    secret = secret or creds["AWS_SECRET_ACCESS_KEY"]
    out = dict(fields)
    if not sigv2:
        date = now.strftime("%Y%m%d")
        out.update({"x-amz-algorithm": "AWS4-HMAC-SHA256",
                    "x-amz-credential": f"{creds['AWS_ACCESS_KEY_ID']}/{date}/{REGION}/s3/"
                                        "aws4_request",
                    "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ")})
    covered = list(conditions) + [{k: v} for k, v in out.items() if k != "key"]
    policy = {"expiration": (now + dt.timedelta(seconds=expires_in)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"), "conditions": covered}
    out["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    if sigv2:
        out["AWSAccessKeyId"] = creds["AWS_ACCESS_KEY_ID"]
        out["signature"] = base64.b64encode(hmac.new(secret.encode(), out["policy"].encode(),
                                                     hashlib.sha1).digest()).decode()
    else:
        key = ("AWS4" + secret).encode()
        for part in (now.strftime("%Y%m%d"), REGION, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        out["x-amz-signature"] = hmac.new(key, out["policy"].encode(), hashlib.sha256).hexdigest()
    return out


def post_form(server, path: str, fields: dict, data: bytes | None, filename: str = "f.bin",
              host: str | None = None) -> tuple[int, dict, bytes]:
    """A multipart/form-data POST made by hand (the file, if any, last)."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                      f"{value}\r\n".encode())
    if data is not None:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                      f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                      .encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    body = b"".join(chunks)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={
            "Host": host or f"127.0.0.1:{server.port}",
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def error_of(body: bytes) -> tuple[str, str]:
    root = ET.fromstring(body)
    return root.findtext("Code"), root.findtext("Message")


def missing(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "404"
    return False


def test_curl_sigv4_form_answers_201(server, creds, s3, bucket, tmp_path):
    data = ("form data \u2603\n" * 100).encode()
    src = tmp_path / "local name.txt"
    src.write_bytes(data)
    fields = signed_form(creds, [{"bucket": bucket}, ["starts-with", "$key", "in/"],
                                 ["content-length-range", 1, 10_000]],
                         {"key": "in/${filename}", "Content-Type": "text/plain",
                          "success_action_status": "201", "x-amz-meta-colour": "blue",
                          "Cache-Control": "no-cache"})
    argv = ["curl", "-sS", "--noproxy", "*", "-w", "\n%{http_code}"]
    for name, value in fields.items():
        argv += ["--form-string", f"{name}={value}"]
    argv += ["-F", f"file=@{src}", "-F", "after=ignored", f"{server.endpoint}/{bucket}"]
    done = subprocess.run(argv, capture_output=True, timeout=60)
    body, _, status = done.stdout.rpartition(b"\n")
    assert status == b"201", body
    root = ET.fromstring(body)
    assert root.tag == "PostResponse"
    assert root.findtext("Bucket") == bucket and root.findtext("Key") == "in/local name.txt"
    assert root.findtext("ETag") == f'"{hashlib.md5(data).hexdigest()}"'
    assert urllib.parse.unquote(root.findtext("Location")).endswith(f"/{bucket}/in/local name.txt")
    got = s3.get_object(Bucket=bucket, Key="in/local name.txt")
    assert got["Body"].read() == data and got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"colour": "blue"} and got["CacheControl"] == "no-cache"


def test_default_204_redirect_and_sigv2(server, creds, s3, bucket):
    fields = signed_form(creds, [["starts-with", "$key", ""]], {"key": "plain"})
    status, headers, body = post_form(server, f"/{bucket}", fields, b"abc")
    assert (status, body) == (204, b"")
    assert headers["etag"] == f'"{hashlib.md5(b"abc").hexdigest()}"'
    assert headers["location"].endswith(f"/{bucket}/plain") and headers["x-amz-request-id"]
    fields = signed_form(creds, [["starts-with", "$key", ""]],
                         {"key": "a b", "success_action_redirect": "http://app.example/done?x=1"})
    status, headers, _ = post_form(server, f"/{bucket}", fields, b"redirected")
    assert status == 303
    target = urllib.parse.urlsplit(headers["location"])
    query = urllib.parse.parse_qs(target.query)
    assert target.netloc == "app.example" and query["x"] == ["1"]
    assert query["bucket"] == [bucket] and query["key"] == ["a b"]
    assert query["etag"] == [f'"{hashlib.md5(b"redirected").hexdigest()}"']
    fields = signed_form(creds, [["starts-with", "$key", ""]],
                         {"key": "v2", "success_action_status": "200"}, sigv2=True)
    status, _, body = post_form(server, f"/{bucket}", fields, b"signed with v2")
    assert (status, body) == (200, b"")
    assert s3.get_object(Bucket=bucket, Key="v2")["Body"].read() == b"signed with v2"


def test_large_file_streams_to_a_blob(server, creds, s3, bucket):
    data = os.urandom(6 * 1024 * 1024 + 5)
    fields = signed_form(creds, [["starts-with", "$key", "big"],
                                 ["content-length-range", 0, 8 * 1024 * 1024]], {"key": "big"})
    status, headers, _ = post_form(server, f"/{bucket}", fields, data)
    assert status == 204 and headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert got["ChecksumCRC64NVME"]


def test_refused_forms(server, creds, s3, bucket, tenant):
    any_key = [["starts-with", "$key", ""]]
    cases = [
        ("too large", signed_form(creds, any_key + [["content-length-range", 1, 10]],
                                  {"key": "r/large"}), b"x" * 11, 400, "EntityTooLarge", None),
        ("too small", signed_form(creds, any_key + [["content-length-range", 5, 10]],
                                  {"key": "r/small"}), b"x", 400, "EntityTooSmall", None),
        ("expired", signed_form(creds, any_key, {"key": "r/late"}, expires_in=-5), b"x", 403,
         "AccessDenied", "Invalid according to Policy: Policy expired."),
        ("prefix", signed_form(creds, [["starts-with", "$key", "user/"]], {"key": "r/other"}),
         b"x", 403, "AccessDenied",
         'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/"]'),
        ("bucket", signed_form(creds, any_key + [{"bucket": "elsewhere"}], {"key": "r/b"}), b"x",
         403, "AccessDenied",
         'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "elsewhere"]'),
        ("bad signature", signed_form(creds, any_key, {"key": "r/sig"}, secret="x" * 40), b"x",
         403, "SignatureDoesNotMatch", None),
        ("bad v2 signature", signed_form(creds, any_key, {"key": "r/sig2"}, sigv2=True,
                                         secret="x" * 40), b"x", 403, "SignatureDoesNotMatch",
         None),
        ("anonymous", {"key": "r/anon"}, b"x", 403, "AccessDenied", None),
        ("no file", signed_form(creds, any_key, {"key": "r/nofile"}), None, 400,
         "InvalidArgument", None),
    ]
    extra = signed_form(creds, any_key, {"key": "r/extra"})
    extra["x-amz-meta-sneaky"] = "1"
    cases.append(("extra field", extra, b"x", 403, "AccessDenied",
                  "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky"))
    ignored = signed_form(creds, any_key, {"key": "r/ignored"})
    ignored["x-ignore-anything"] = "1"
    for what, fields, data, status, code, message in cases:
        got_status, _, body = post_form(server, f"/{bucket}", fields, data)
        got_code, got_message = error_of(body)
        assert (got_status, got_code) == (status, code), (what, body)
        if message:
            assert got_message == message, what
        assert missing(s3, bucket, fields["key"]), what
    assert post_form(server, f"/{bucket}", ignored, b"x")[0] == 204
    # another account's valid form does not write into this account's bucket
    their = signed_form(server.credentials(tenant), any_key, {"key": "r/theirs"})
    status, _, body = post_form(server, f"/{bucket}", their, b"x")
    assert (status, error_of(body)[0]) == (403, "AccessDenied")
    # a bucket POST that is not a form
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", f"/{bucket}", body=b"key=x", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    assert (response.status, error_of(response.read())[0]) == (412, "PreconditionFailed")
    conn.close()


def test_virtual_hosted_post(server, creds, s3, bucket):
    fields = signed_form(creds, [["starts-with", "$key", ""], {"bucket": bucket}],
                         {"key": "vhost/k", "success_action_status": "201"})
    host = f"{bucket}.s3.localhost:{server.port}"
    status, _, body = post_form(server, "/", fields, b"virtual", host=host)
    assert status == 201, body
    location = ET.fromstring(body).findtext("Location")
    assert location == f"http://{host}/vhost%2Fk"
    assert s3.get_object(Bucket=bucket, Key="vhost/k")["Body"].read() == b"virtual"
