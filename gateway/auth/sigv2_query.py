"""Signature Version 2 of the Query APIs (EC2 and friends): libcloud's default signer, euca2ools,
boto 2 and older SDKs.

The signature travels with the parameters (query string of a GET, form body of a POST):
``AWSAccessKeyId``, ``SignatureVersion=2``, ``SignatureMethod`` (``HmacSHA256`` or ``HmacSHA1``),
``Timestamp`` or ``Expires`` (ISO 8601), ``Signature`` (base64). AWS's string to sign:

    HTTPVerb \\n lower-case Host header \\n HTTPRequestURI ("/" when empty) \\n CanonicalizedQueryString

where the canonical query string is every parameter but ``Signature``, sorted by name (byte
order), names and values percent-encoded per RFC 3986 (unreserved ``A-Za-z0-9-_.~`` kept, a space
as ``%20``), joined with ``&``. A ``Timestamp`` more than 15 minutes from the server's clock, or an
``Expires`` in the past, is refused (EC2: ``RequestExpired``); a bad signature or an unknown key is
EC2's ``AuthFailure``; missing or unsupported signing parameters are ``IncompleteSignature``.
(S3's SigV2, ``Authorization: AWS ...`` and ``Expires`` in epoch seconds, is :mod:`.sigv2`.)
"""
from __future__ import annotations

import base64
import hmac
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from urllib.parse import quote

from .errors import (
    InvalidAccessKeyId,
    QueryAuthIncomplete,
    RequestExpired,
    RequestNotYetValid,
    SignatureDoesNotMatch,
)
from .request import AuthResult
from .signing import MAX_SKEW, as_utc, format_iso8601, keyed_hmac, spaced_hex

SecretLookup = Callable[[str], Awaitable[str | None]]

SIGNATURE_METHODS = {"HmacSHA256": "sha256", "HmacSHA1": "sha1"}
_REQUIRED = ("AWSAccessKeyId", "SignatureMethod", "Signature")


def is_signed_v2(pairs: Iterable[tuple[str, str]]) -> bool:
    """True when the parameters carry a Query SigV2 signature (``SignatureVersion`` present)."""
    return any(name == "SignatureVersion" for name, _ in pairs)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    signed = [(name.encode("utf-8"), name, value) for name, value in pairs if name != "Signature"]
    signed.sort(key=lambda item: item[0])     # by name, byte order; repeated names keep their order
    return "&".join(f"{_encode(name)}={_encode(value)}" for _, name, value in signed)


def string_to_sign(method: str, host: str, path: str, pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join((method.upper(), host.lower(), path or "/", canonical_query(pairs)))


def sign(secret: str, to_sign: str, method: str = "HmacSHA256") -> str:
    digest = keyed_hmac(secret.encode("utf-8"), to_sign.encode("utf-8"), SIGNATURE_METHODS[method])
    return base64.b64encode(digest).decode("ascii")


def _parse_time(name: str, value: str) -> datetime:
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise QueryAuthIncomplete(f"Invalid {name} value: {value} (expecting an ISO 8601 time, "
                                  "e.g. 2026-12-04T06:00:00Z)") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else as_utc(moment)


def _check_time(params: dict[str, str], now: datetime) -> None:
    timestamp, expires = params.get("Timestamp"), params.get("Expires")
    if timestamp and expires:
        raise QueryAuthIncomplete("A request may carry Timestamp or Expires, not both.")
    if expires:
        moment = _parse_time("Expires", expires)
        if now > moment:
            raise RequestExpired(extra={"Expires": format_iso8601(moment),
                                        "ServerTime": format_iso8601(now)})
        return
    if not timestamp:
        raise QueryAuthIncomplete("Request must contain either a valid Timestamp or Expires.")
    moment = _parse_time("Timestamp", timestamp)
    if now - moment > MAX_SKEW:
        raise RequestExpired(extra={"Timestamp": timestamp, "ServerTime": format_iso8601(now)})
    if moment - now > MAX_SKEW:
        raise RequestNotYetValid(extra={"Timestamp": timestamp, "ServerTime": format_iso8601(now)})


def _hosts(host: str, secure: bool) -> list[str]:
    """The Host header as signed, and without the scheme's default port (some signers drop it)."""
    hosts = [host]
    default = ":443" if secure else ":80"
    if host.endswith(default):
        hosts.append(host[: -len(default)])
    return hosts


async def authenticate(method: str, host: str, path: str, pairs: list[tuple[str, str]],
                       lookup_secret: SecretLookup, now: datetime, *, service: str = "ec2",
                       secure: bool = False) -> AuthResult:
    """Verify a Query SigV2 request; ``pairs`` are its decoded parameters (query string and form
    body, in wire order). Raises an ``AuthError`` (rendered as the service's error) when it fails."""
    now = as_utc(now)
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    version = params.get("SignatureVersion")
    if version != "2":
        raise QueryAuthIncomplete(f"Value ({version}) for parameter SignatureVersion is invalid. "
                                  "Valid Values: 2")
    for name in _REQUIRED:
        if not params.get(name):
            raise QueryAuthIncomplete(f"Request must contain the parameter {name}")
    algorithm = params["SignatureMethod"]
    if algorithm not in SIGNATURE_METHODS:
        raise QueryAuthIncomplete(f"Value ({algorithm}) for parameter SignatureMethod is invalid. "
                                  "Valid Values: HmacSHA256 | HmacSHA1")
    _check_time(params, now)
    access_key_id = params["AWSAccessKeyId"]
    secret = await lookup_secret(access_key_id)
    if secret is None:
        raise InvalidAccessKeyId(access_key_id)
    # a '+' sent unencoded arrives as a space once the form is decoded
    provided = params["Signature"].replace(" ", "+").encode("utf-8", "surrogateescape")
    first = None
    for candidate in _hosts(host, secure):
        to_sign = string_to_sign(method, candidate, path, pairs)
        first = first or to_sign
        if hmac.compare_digest(sign(secret, to_sign, algorithm).encode("ascii"), provided):
            return AuthResult(access_key_id=access_key_id, region=None, service=service,
                              signature_version="v2", presigned=False, payload_hash=None,
                              signing_key=None, seed_signature=None, amz_date=None, scope=None,
                              security_token=params.get("SecurityToken"))
    raise SignatureDoesNotMatch(extra={"AWSAccessKeyId": access_key_id, "StringToSign": first,
                                       "StringToSignBytes": spaced_hex(first)})
