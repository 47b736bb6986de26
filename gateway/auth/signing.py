"""SigV4 building blocks: encoding, canonical request, key derivation, HMAC.

Canonicalization follows AWS's "Create a canonical request" rules:
- URI-encode every byte except the unreserved ``A-Za-z0-9-_.~``, hex digits upper-case,
  space as ``%20``;
- canonical URI: for S3 the path as sent (only bytes that must be encoded but arrived raw are
  encoded, so ``/test$file.text`` and ``/test%24file.text`` both give ``/test%24file.text``);
  for every other service the path is normalized (dot segments and empty segments removed,
  as botocore does) and the already-encoded path is encoded a second time;
- canonical query: each name and value decoded then re-encoded, sorted by encoded name then
  value, a name without ``=`` gets an empty value;
- header values trimmed, inner runs of whitespace collapsed, repeated headers joined by ``,``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from .errors import RequestTimeTooSkewed
from .request import header_values

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
PAYLOAD_MARKERS = frozenset({UNSIGNED_PAYLOAD, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER,
                             STREAMING_UNSIGNED_TRAILER})

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
MAX_SKEW = timedelta(minutes=15)
_ENCODED = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)]
_ENCODED_KEEP_SLASH = list(_ENCODED)
_ENCODED_KEEP_SLASH[ord("/")] = "/"


def uri_encode(value: str | bytes, *, keep_slash: bool = False) -> str:
    """AWS's UriEncode() over the UTF-8 bytes of ``value``."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    table = _ENCODED_KEEP_SLASH if keep_slash else _ENCODED
    return "".join([table[b] for b in data])


def canonical_uri_s3(raw_path: str) -> str:
    """S3's canonical URI: the wire path, single-encoded, not normalized.

    Valid ``%XX`` triplets are kept exactly as sent; any other byte outside the unreserved set
    and '/' (a raw '$', a space, a lone '%', non-ASCII) is percent-encoded.
    """
    if not raw_path:
        return "/"
    data = raw_path.encode("utf-8", "surrogateescape")
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x25 and i + 2 < n and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append(data[i:i + 3].decode("ascii"))
            i += 3
            continue
        out.append(_ENCODED_KEEP_SLASH[b])
        i += 1
    return "".join(out)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, also dropping empty segments (as AWS services expect)."""
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def canonical_uri_generic(raw_path: str) -> str:
    """Every service but S3: normalize the wire path, then encode it (a second time)."""
    return uri_encode(remove_dot_segments(raw_path), keep_slash=True)


def parse_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    """Split a wire query into percent-decoded (name, value) byte pairs; '+' stays '+'."""
    pairs: list[tuple[bytes, bytes]] = []
    if not raw_query:
        return pairs
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def query_params(raw_query: str) -> dict[str, list[str]]:
    """Decoded query parameters by name (UTF-8, invalid bytes replaced), all values kept."""
    params: dict[str, list[str]] = {}
    for name, value in parse_query(raw_query):
        params.setdefault(name.decode("utf-8", "replace"), []).append(
            value.decode("utf-8", "replace"))
    return params


def canonical_query(raw_query: str, exclude: Iterable[str] = ()) -> str:
    """The canonical query string; parameters named in ``exclude`` are left out."""
    skip = {name.encode("utf-8") for name in exclude}
    encoded = sorted((uri_encode(name), uri_encode(value))
                     for name, value in parse_query(raw_query) if name not in skip)
    return "&".join(f"{name}={value}" for name, value in encoded)


def trim_header_value(value: str) -> str:
    return " ".join(value.split())


def canonical_headers(headers: Mapping[str, str], signed: Iterable[str]) -> str:
    """'name:value\\n' for each signed header (sorted, lower-case names)."""
    lines = []
    for name in sorted(set(signed)):
        values = header_values(headers, name)
        lines.append(f"{name}:{','.join(trim_header_value(v) for v in values)}\n")
    return "".join(lines)


def canonical_request(method: str, uri: str, query: str, headers_block: str,
                      signed_headers: str, payload_hash: str) -> str:
    return "\n".join([method.upper(), uri, query, headers_block, signed_headers, payload_hash])


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, sha256_hex(canonical)])


def hmac_sha256(key: bytes, msg: str | bytes) -> bytes:
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).digest()


@lru_cache(maxsize=512)
def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC('AWS4' + secret, date), region), service), 'aws4_request')."""
    k_date = hmac_sha256(("AWS4" + secret).encode("utf-8"), date)
    k_region = hmac_sha256(k_date, region)
    k_service = hmac_sha256(k_region, service)
    return hmac_sha256(k_service, "aws4_request")


def sign_hex(signing_key: bytes, to_sign: str) -> str:
    return hmac.new(signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison of two signatures (hex compared case-insensitively)."""
    return hmac.compare_digest(expected.lower().encode("utf-8"),
                               provided.lower().encode("utf-8", "surrogateescape"))


def spaced_hex(text: str) -> str:
    """S3's ``StringToSignBytes`` / ``CanonicalRequestBytes`` rendering: '41 57 53 ...'."""
    return " ".join(f"{b:02x}" for b in text.encode("utf-8"))


def is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


# --- time -----------------------------------------------------------------------------------

def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_amz_date(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y%m%dT%H%M%SZ")


def format_iso8601(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_amz_date(value: str) -> datetime | None:
    """'YYYYMMDDTHHMMSSZ' -> aware datetime, or None."""
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def parse_http_date(value: str) -> datetime | None:
    """An RFC 1123/2822 date (as in the Date header) or an ISO basic date -> aware datetime."""
    basic = parse_amz_date(value.strip())
    if basic is not None:
        return basic
    try:
        return as_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def check_skew(raw: str, moment: datetime, now: datetime) -> None:
    """Raise RequestTimeTooSkewed when ``moment`` is more than 15 minutes from ``now``."""
    delta = now - moment
    if abs(delta) > MAX_SKEW:
        raise RequestTimeTooSkewed(raw, format_iso8601(now), request_amz=format_amz_date(moment),
                                   server_amz=format_amz_date(now), in_future=delta < timedelta(0))
