"""Shared helpers for the gateway.auth tests: example credentials and request conversion."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from urllib.parse import urlsplit

from multidict import CIMultiDict

from gateway.auth.request import SignedRequest

# The example credentials of AWS's documentation. The S3 pages and the IAM/general SigV4 pages
# use different secrets ('/bPxRfiCY' versus '+bPxRfiCY').
S3_AKID = "AKIAIOSFODNN7EXAMPLE"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
IAM_AKID = "AKIDEXAMPLE"
IAM_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

S3_EXAMPLE_TIME = datetime(2013, 5, 24, 0, 0, 0, tzinfo=timezone.utc)
IAM_EXAMPLE_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=timezone.utc)


def lookup(secrets: dict[str, str]):
    """An async ``lookup_secret`` over a dict (also records the keys asked for)."""
    asked: list[str] = []

    async def lookup_secret(access_key_id: str) -> str | None:
        asked.append(access_key_id)
        return secrets.get(access_key_id)

    lookup_secret.asked = asked  # type: ignore[attr-defined]
    return lookup_secret


EXAMPLE_KEYS = {S3_AKID: S3_SECRET, IAM_AKID: IAM_SECRET}


def wire_request(method: str, target: str, headers: Iterable[tuple[str, str]],
                 host_bucket: str | None = None) -> SignedRequest:
    """A SignedRequest from a request line target ('/path?query') and header lines."""
    path, _, query = target.partition("?")
    return SignedRequest(method, path, query, CIMultiDict(list(headers)), host_bucket)


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    if parts.port is None or parts.port == default:
        return parts.hostname or ""
    return f"{parts.hostname}:{parts.port}"


def from_botocore(request, host_bucket: str | None = None) -> SignedRequest:
    """What a server receives for a signed botocore ``AWSRequest``.

    The URL (path and query) is taken exactly as botocore prepares it; the header lines are the
    signed request's own (repeated headers stay separate lines, as on the wire), plus the Host,
    Content-Length and User-Agent lines the HTTP layer adds without signing them.
    """
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = CIMultiDict()
    for name, value in request.headers.items():
        headers.add(name, value.decode() if isinstance(value, bytes) else value)
    if "host" not in headers:
        headers.add("Host", _host_of(prepared.url))
    if "content-length" in prepared.headers and "content-length" not in headers:
        headers.add("Content-Length", prepared.headers["content-length"])
    headers.add("User-Agent", "Boto3/1.43 md/test")
    return SignedRequest(request.method, parts.path, parts.query, headers, host_bucket)


def replace(req: SignedRequest, **changes) -> SignedRequest:
    fields = {"method": req.method, "raw_path": req.raw_path, "raw_query": req.raw_query,
              "headers": CIMultiDict(req.headers), "host_bucket": req.host_bucket}
    fields.update(changes)
    return SignedRequest(**fields)


def with_header(req: SignedRequest, name: str, value: str) -> SignedRequest:
    """A copy of ``req`` with header ``name`` replaced by a single ``value``."""
    headers = CIMultiDict(req.headers)
    headers.popall(name, None)
    headers.add(name, value)
    return replace(req, headers=headers)


def flip(text: str, index: int = -1) -> str:
    """``text`` with one character changed."""
    chars = list(text)
    chars[index] = "0" if chars[index] != "0" else "1"
    return "".join(chars)
