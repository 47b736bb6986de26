"""The rule between the web console and S3 (``gateway.console.is_console_request``): unsigned
path-style ``/console`` requests are the console's, signed ones and virtual-hosted ones S3's; an
unsigned browser ``GET /`` goes to the console, any other ``GET /`` stays S3's ListBuckets."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from gateway.console import is_console_request

DOMAIN = "s3.localhost"


def request(method: str, raw_path: str, **headers: str):
    headers.setdefault("Host", "127.0.0.1:8773")
    return SimpleNamespace(method=method, raw_path=raw_path, headers=CIMultiDict(
        {k.replace("_", "-"): v for k, v in headers.items()}))


@pytest.mark.parametrize("req, console", [
    (request("GET", "/console/"), True),
    (request("GET", "/console"), True),
    (request("POST", "/console/api/sign-in"), True),
    (request("GET", "/console/static/console.js"), True),
    (request("GET", "/", Accept="text/html,application/xhtml+xml"), True),
    # S3's
    (request("GET", "/"), False),                                          # anonymous ListBuckets
    (request("GET", "/?list-type=2", Accept="text/html"), False),
    (request("GET", "/", Accept="text/html", Authorization="AWS4-HMAC-SHA256 Credential=AKIA/20261204/us-east-1/s3/aws4_request"), False),
    (request("PUT", "/console", Authorization="AWS4-HMAC-SHA256 Credential=x"), False),   # CreateBucket "console"
    (request("GET", "/console/key", Authorization="AWS AKIA:sig"), False),                  # SigV2
    (request("GET", "/console/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261204"), False),
    (request("GET", "/console/key?AWSAccessKeyId=AKIA&Expires=1&Signature=x"), False),
    (request("GET", "/console/", Host="console.s3.localhost"), False),    # virtual-hosted bucket "console"
    (request("GET", "/consoles/key"), False),                              # another bucket
    (request("GET", "/bucket/console/"), False),
])
def test_console_or_s3(req, console):
    assert is_console_request(req, DOMAIN) is console
