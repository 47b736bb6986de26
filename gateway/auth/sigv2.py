"""S3 Signature Version 2 (HMAC-SHA1): ``Authorization: AWS AKID:sig`` and query
``AWSAccessKeyId`` / ``Expires`` / ``Signature``.

StringToSign = VERB \\n Content-MD5 \\n Content-Type \\n Date \\n CanonicalizedAmzHeaders
CanonicalizedResource, where Date is empty when x-amz-date is sent (header auth) and is the
Expires value (query auth). For query auth, x-amz-*, content-type and content-md5 may travel
as query parameters (botocore's HmacV1QueryAuth moves them there) and count as headers.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from urllib.parse import unquote

from .errors import (
    InvalidAccessKeyId,
    InvalidAuthArgument,
    MissingDateHeader,
    QueryAuthIncomplete,
    RequestExpired,
    SignatureDoesNotMatch,
)
from .request import AuthResult, SignedRequest, header_value
from .signing import as_utc, check_skew, format_iso8601, keyed_hmac, parse_http_date, spaced_hex

SecretLookup = Callable[[str], Awaitable[str | None]]

# Sub-resources that belong to the canonicalized resource: AWS's documented list (acl, cors,
# delete, lifecycle, location, logging, notification, partNumber, policy, requestPayment,
# tagging, torrent, uploadId, uploads, versionId, versioning, versions, website and the
# response-* overrides) plus the further names botocore's HmacV1Auth signs.
SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory",
    "lifecycle", "location", "logging", "metrics", "notification", "object-lock", "partNumber",
    "policy", "replication", "requestPayment", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires", "restore", "select", "select-type",
    "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
    "versions", "website",
})


def resource_paths(req: SignedRequest) -> tuple[str, ...]:
    """The paths a signer may have put in the canonical resource, the usual one first.

    A request for a bucket itself has the resource ``/bucket/`` (AWS's examples; botocore's
    HmacV1Auth and s3cmd sign it so for path-style ``/bucket`` as well); the path as sent,
    ``/bucket``, is accepted too, as other signers use it."""
    path = req.raw_path or "/"
    if req.host_bucket:
        path = "/" + req.host_bucket + path
    if path.count("/") == 1 and len(path) > 1:      # '/bucket': a bucket-level request
        return path + "/", path
    return (path,)


def canonical_resource(req: SignedRequest, path: str | None = None) -> str:
    """'/bucket/key?sub=resource' (bucket from the Host for virtual-hosted-style requests);
    ``path``: one of ``resource_paths(req)`` (default: the first)."""
    if path is None:
        path = resource_paths(req)[0]
    entries: list[tuple[str, str]] = []
    for part in req.raw_query.split("&") if req.raw_query else ():
        name, sep, value = part.partition("=")
        if name in SUBRESOURCES:
            entries.append((name, f"{name}={unquote(value)}" if sep else name))
    if not entries:
        return path
    entries.sort(key=lambda entry: entry[0])  # stable: repeated names keep their order
    return path + "?" + "&".join(text for _, text in entries)


def _amz_headers(req: SignedRequest, overrides: Mapping[str, str]) -> dict[str, str]:
    collected: dict[str, list[str]] = {}
    for name, value in req.headers.items():
        if name[:6].lower() == "x-amz-":
            collected.setdefault(name.lower(), []).append(value.strip())
    amz = {name: ",".join(values) for name, values in collected.items()}
    if overrides:
        amz.update({k: v.strip() for k, v in overrides.items() if k.startswith("x-amz-")})
    return amz


def string_to_sign(req: SignedRequest, date_field: str,
                   overrides: Mapping[str, str] | None = None, path: str | None = None) -> str:
    """The SigV2 StringToSign; ``overrides`` are header values carried in the query string."""
    overrides = overrides or {}

    def standard(name: str) -> str:
        if name in overrides:
            return overrides[name].strip()
        return (header_value(req.headers, name) or "").strip()

    amz = _amz_headers(req, overrides)
    lines = [req.method.upper(), standard("content-md5"), standard("content-type"), date_field]
    if amz:
        lines += [f"{name}:{amz[name]}" for name in sorted(amz)]
    lines.append(canonical_resource(req, path))
    return "\n".join(lines)


def sign(secret: str, to_sign: str) -> str:
    digest = keyed_hmac(secret.encode("utf-8"), to_sign.encode("utf-8"), "sha1")
    return base64.b64encode(digest).decode("ascii")


_QUERY_HEADERS = frozenset({"content-type", "content-md5"})


def _mismatch(access_key_id: str, to_sign: str, provided: str) -> SignatureDoesNotMatch:
    return SignatureDoesNotMatch(extra={"AWSAccessKeyId": access_key_id,
                                        "StringToSign": to_sign,
                                        "SignatureProvided": provided,
                                        "StringToSignBytes": spaced_hex(to_sign)})


def _matches(expected: str, provided: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"),
                               provided.encode("utf-8", "surrogateescape"))


def _result(access_key_id: str, presigned: bool, token: str | None) -> AuthResult:
    return AuthResult(access_key_id=access_key_id, region=None, service="s3",
                      signature_version="v2", presigned=presigned, payload_hash=None,
                      signing_key=None, seed_signature=None, amz_date=None, scope=None,
                      security_token=token)


async def _secret(lookup_secret: SecretLookup, access_key_id: str) -> str:
    secret = await lookup_secret(access_key_id)
    if secret is None:
        raise InvalidAccessKeyId(access_key_id)
    return secret


async def authenticate_header(req: SignedRequest, value: str, lookup_secret: SecretLookup,
                              now: datetime) -> AuthResult:
    """Verify ``Authorization: AWS AKID:signature``."""
    now = as_utc(now)
    access_key_id, sep, provided = value.strip()[4:].strip().partition(":")
    if not sep or not access_key_id or not provided:
        raise InvalidAuthArgument(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            "Authorization", value)
    amz_date = header_value(req.headers, "x-amz-date")
    date = header_value(req.headers, "date")
    raw = amz_date if amz_date is not None else date
    moment = parse_http_date(raw) if raw is not None else None
    if moment is None:
        raise MissingDateHeader()
    check_skew(raw, moment, now)
    # AWS: with x-amz-date present the Date line is empty. botocore's HmacV1Auth always signs
    # its own Date header, so that form is accepted too when both headers are present.
    candidates = [""] if amz_date is not None else [date.strip()]
    if amz_date is not None and date is not None:
        candidates.append(date.strip())
    secret = await _secret(lookup_secret, access_key_id)
    first = None
    for path in resource_paths(req):
        for date_field in candidates:
            to_sign = string_to_sign(req, date_field, path=path)
            first = first or to_sign
            if _matches(sign(secret, to_sign), provided):
                return _result(access_key_id, False,
                               header_value(req.headers, "x-amz-security-token"))
    raise _mismatch(access_key_id, first, provided)


async def authenticate_query(req: SignedRequest, params: Mapping[str, list[str]],
                             lookup_secret: SecretLookup, now: datetime) -> AuthResult:
    """Verify a SigV2 presigned URL (``AWSAccessKeyId``, ``Expires``, ``Signature``)."""
    now = as_utc(now)
    values = {}
    for name in ("AWSAccessKeyId", "Expires", "Signature"):
        got = params.get(name) or []
        if len(got) != 1 or not got[0]:
            raise QueryAuthIncomplete()
        values[name] = got[0]
    try:
        expires = int(values["Expires"])
    except ValueError:
        raise QueryAuthIncomplete(
            f"Invalid date (should be seconds since epoch): {values['Expires']}") from None
    now_ts = now.timestamp()
    if now_ts > expires:
        expires_at = datetime.fromtimestamp(max(expires, 0), tz=timezone.utc)
        raise RequestExpired(extra={"Expires": format_iso8601(expires_at),
                                    "ServerTime": format_iso8601(now)})
    # A '+' sent unencoded in the query may have been decoded as a space by an intermediary.
    provided = values["Signature"].replace(" ", "+")
    overrides = {}
    for name, vals in params.items():
        lname = name.lower()
        if lname.startswith("x-amz-") or lname in _QUERY_HEADERS:
            overrides[lname] = vals[-1]
    access_key_id = values["AWSAccessKeyId"]
    secret = await _secret(lookup_secret, access_key_id)
    first = None
    for path in resource_paths(req):
        to_sign = string_to_sign(req, values["Expires"], overrides, path=path)
        first = first or to_sign
        if _matches(sign(secret, to_sign), provided):
            break
    else:
        raise _mismatch(access_key_id, first, provided)
    return _result(access_key_id, True, overrides.get("x-amz-security-token")
                   or header_value(req.headers, "x-amz-security-token"))
