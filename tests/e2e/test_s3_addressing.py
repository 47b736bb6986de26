"""Addressing against a live server: virtual-hosted-style requests (``BUCKET.s3.localhost``,
which does not resolve here, so the requests are signed by botocore and sent with their Host
header), ``PUT /bucket/`` with a trailing slash, and s3cmd's ``mb``."""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@pytest.fixture(scope="module")
def creds(server):
    return server.credentials()


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


def send(server, creds, method: str, host: str, path: str, body: bytes = b"",
         region: str = "us-east-1", sigv2: bool = False, headers=None):
    """Sign ``method http://host/path`` as botocore does and send it to the server."""
    url = f"http://{host}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    credentials = Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
    if sigv2:
        request.auth_path = urllib.parse.urlsplit(url).path if host.startswith("127.") else \
            "/" + host.split(".s3.localhost")[0] + urllib.parse.urlsplit(url).path
        HmacV1Auth(credentials).add_auth(request)
    else:
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
        S3SigV4Auth(credentials, "s3", region).add_auth(request)
    prepared = request.prepare()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body or None,
                     headers={**dict(prepared.headers), "Host": host})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_virtual_hosted_style(server, creds, s3):
    bucket = f"vhost-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    host = f"{bucket}.s3.localhost:{server.port}"
    key = "dir/odd key+\u2603.txt"
    path = "/" + urllib.parse.quote(key)
    status, headers, _ = send(server, creds, "PUT", host, path, b"virtual bytes",
                              headers={"Content-Type": "text/plain"})
    assert status == 200 and headers["etag"] == f'"{hashlib.md5(b"virtual bytes").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"virtual bytes" and got["ContentType"] == "text/plain"
    status, _, body = send(server, creds, "GET", host, path)
    assert (status, body) == (200, b"virtual bytes")
    status, _, body = send(server, creds, "GET", host, "/?list-type=2&prefix=dir%2F")
    listing = ET.fromstring(body)
    keys = [e.text for e in listing.iter() if e.tag.endswith("Key")]
    assert status == 200 and keys == [key]
    assert send(server, creds, "HEAD", host, "/")[0] == 200
    status, _, body = send(server, creds, "GET", host, path, sigv2=True)      # SigV2 too
    assert (status, body) == (200, b"virtual bytes")
    assert send(server, creds, "DELETE", host, path)[0] == 204
    status, _, body = send(server, creds, "GET", f"nosuch-{bucket}.s3.localhost:{server.port}",
                           "/k")
    assert status == 404 and b"<Code>NoSuchBucket</Code>" in body


def test_put_bucket_with_trailing_slash(server, creds, s3):
    bucket = f"slash-{uuid.uuid4().hex[:10]}"
    status, _, body = send(server, creds, "PUT", f"127.0.0.1:{server.port}", f"/{bucket}/")
    assert status == 200, body
    s3.head_bucket(Bucket=bucket)
    # s3cmd signs its first CreateBucket for its default bucket_location "US": S3 answers that
    # scope with AuthorizationHeaderMalformed naming the region, and s3cmd retries with it
    status, _, body = send(server, creds, "PUT", f"127.0.0.1:{server.port}", f"/{bucket}-us/",
                           region="US")
    error = ET.fromstring(body)
    assert (status, error.findtext("Code"), error.findtext("Region")) == (
        400, "AuthorizationHeaderMalformed", "us-east-1")


@pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd is not installed")
def test_s3cmd_mb(server, creds, s3, tmp_path):
    bucket = f"s3cmd-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "s3cfg"
    config.write_text(f"[default]\naccess_key = {creds['AWS_ACCESS_KEY_ID']}\n"
                      f"secret_key = {creds['AWS_SECRET_ACCESS_KEY']}\n")
    os.chmod(config, 0o600)
    host = f"127.0.0.1:{server.port}"
    done = subprocess.run(["s3cmd", "-c", str(config), f"--host={host}", f"--host-bucket={host}",
                           "--no-ssl", "mb", f"s3://{bucket}"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"Bucket 's3://{bucket}/' created" in done.stdout
    s3.head_bucket(Bucket=bucket)
