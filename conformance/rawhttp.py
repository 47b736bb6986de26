"""Hand-built HTTP requests, signed with botocore's own signers (or not signed at all)."""
from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    reason: str = ""
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self.header_list or self.headers.items():
            if key.lower() == lowered:
                return value
        return default


def send(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
         timeout: float = 60.0, verify: bool = True) -> RawResponse:
    """One request over a fresh connection; any status comes back as a RawResponse."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        sent = {k.lower() for k in (headers or {})}
        if "host" not in sent:
            conn.putheader("Host", host_header(url))
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body or method in ("PUT", "POST"):
            if "content-length" not in sent:
                conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()
        header_list = list(response.getheaders())
        return RawResponse(response.status, dict(header_list), data, response.reason, header_list)
    finally:
        conn.close()


def host_header(url: str) -> str:
    """The Host header for ``url``, without the scheme's default port (as signers compute it)."""
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def sign(method: str, url: str, service: str, region: str, access_key: str, secret_key: str,
         body: bytes = b"", headers: dict[str, str] | None = None,
         session_token: str | None = None) -> dict[str, str]:
    """The headers of a SigV4-signed request (S3 gets ``x-amz-content-sha256`` as well)."""
    headers = dict(headers or {})
    if not any(k.lower() == "host" for k in headers):
        headers["Host"] = host_header(url)
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    credentials = Credentials(access_key, secret_key, session_token)
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(credentials, service, region).add_auth(request)
    return {k: v for k, v in request.headers.items()}


def urlopen(method: str, url: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60.0,
            verify: bool = True) -> RawResponse:
    """The request as urllib makes it (what a script handed a presigned URL would do)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
    context = None
    if url.startswith("https") and not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            header_list = list(response.getheaders())
            return RawResponse(response.status, dict(header_list), response.read(),
                               response.reason, header_list)
    except urllib.error.HTTPError as exc:
        header_list = list(exc.headers.items())
        return RawResponse(exc.code, dict(header_list), exc.read(), str(exc.reason), header_list)
