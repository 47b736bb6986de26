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
from urllib.parse import quote_from_bytes, unquote_to_bytes

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
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
MAX_SKEW = timedelta(minutes=15)
_ENCODED = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)]
_ENCODED_KEEP_SLASH = list(_ENCODED)
_ENCODED_KEEP_SLASH[ord("/")] = "/"
# A path of unreserved bytes, '/' and valid %XX triplets only: its canonical form is itself.
_CANONICAL_PATH = re.compile(r"(?:[A-Za-z0-9\-_.~/]|%[0-9A-Fa-f]{2})*")
# A query parameter of unreserved characters only: decoding and re-encoding give it back.
_PLAIN_PARAMETER = re.compile(r"[A-Za-z0-9\-_.~]*(?:=[A-Za-z0-9\-_.~]*)?")
# What decoding and re-encoding changes: a %XX triplet, any character outside the unreserved set.
_QUERY_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-_.~]")


def uri_encode(value: str | bytes, *, keep_slash: bool = False) -> str:
    """AWS's UriEncode() over the UTF-8 bytes of ``value``: ``quote_from_bytes`` keeps exactly
    the unreserved ``A-Za-z0-9-_.~`` (and '/' when asked) and writes upper-case hex, as the
    per-byte table (``_ENCODED``) does."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return quote_from_bytes(data, "/" if keep_slash else "")


def canonical_uri_s3(raw_path: str) -> str:
    """S3's canonical URI: the wire path, single-encoded, not normalized.

    Valid ``%XX`` triplets are kept exactly as sent; any other byte outside the unreserved set
    and '/' (a raw '$', a space, a lone '%', non-ASCII) is percent-encoded.
    """
    if not raw_path:
        return "/"
    if _CANONICAL_PATH.fullmatch(raw_path):   # nothing to encode: the loop below keeps it as is
        return raw_path
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
        if "%" not in part and part.isascii():   # nothing to decode: the bytes are the text
            pairs.append((name.encode("ascii"), value.encode("ascii")))
            continue
        pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def query_params(raw_query: str) -> dict[str, list[str]]:
    """Decoded query parameters by name (UTF-8, invalid bytes replaced), all values kept."""
    params: dict[str, list[str]] = {}
    if not raw_query:
        return params
    for part in raw_query.split("&"):
        if not part:
            continue
        if "%" in part or not part.isascii():
            name, value = _decoded_part(part)
        else:
            name, _, value = part.partition("=")
        found = params.get(name)
        if found is None:
            params[name] = [value]
        else:
            found.append(value)
    return params


def _canonical_escape(match: re.Match) -> str:
    text = match.group()
    if len(text) == 3:                 # a %XX triplet: its byte, encoded as AWS encodes it
        return _ENCODED[int(text[1:], 16)]
    return uri_encode(text)            # one character: its UTF-8 bytes


def _canonical_text(text: str) -> str:
    """``uri_encode(unquote_to_bytes(text))``, without the round trip through bytes (kept for
    the texts that recur from request to request: a presigned URL's credential scope...)."""
    found = _CANONICAL_TEXTS.get(text)
    if found is None:
        found = _QUERY_ESCAPE.sub(_canonical_escape, text)
        if len(text) <= _MEMO_TEXT:
            if len(_CANONICAL_TEXTS) >= _MEMO_ENTRIES:
                _CANONICAL_TEXTS.clear()
            _CANONICAL_TEXTS[text] = found
    return found


# Query parts that need decoding or canonicalizing recur from request to request (a presigned
# URL's X-Amz-Credential, a SigV2 URL's parameters...): their results are pure functions of the
# text, kept in two bounded tables.
_MEMO_ENTRIES = 4096
_MEMO_TEXT = 512
_SIGNATURE_PARTS = ("Signature=", "X-Amz-Signature=")     # a request's own signature
_CANONICAL_TEXTS: dict[str, str] = {}
_DECODED_PARTS: dict[str, tuple[str, str]] = {}


def worth_keeping(part: str) -> bool:
    """Whether a decoded query part may recur (and so be kept): not too long, and not a
    request's own signature, which never does (unique presigned URLs would churn the table)."""
    return len(part) <= _MEMO_TEXT and not part.startswith(_SIGNATURE_PARTS)


def _decoded_part(part: str) -> tuple[str, str]:
    """(name, value) of one ``name=value`` query part, percent-decoded (UTF-8, invalid bytes
    replaced)."""
    found = _DECODED_PARTS.get(part)
    if found is None:
        name, _, value = part.partition("=")
        found = (unquote_to_bytes(name).decode("utf-8", "replace"),
                 unquote_to_bytes(value).decode("utf-8", "replace"))
        if worth_keeping(part):
            if len(_DECODED_PARTS) >= _MEMO_ENTRIES:
                _DECODED_PARTS.clear()
            _DECODED_PARTS[part] = found
    return found


def canonical_query(raw_query: str, exclude: Iterable[str] = ()) -> str:
    """The canonical query string; parameters named in ``exclude`` are left out."""
    skip = {name.encode("utf-8") for name in exclude}
    encoded = []
    for part in raw_query.split("&") if raw_query else ():
        if not part:
            continue
        name, _, value = part.partition("=")
        if _PLAIN_PARAMETER.fullmatch(part):   # decoded and re-encoded, it is what it was
            if name.encode("ascii") not in skip:
                encoded.append((name, value))
            continue
        canonical = (_canonical_text(name), _canonical_text(value))
        if not skip or unquote_to_bytes(name) not in skip:
            encoded.append(canonical)
    encoded.sort()
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
    return hmac.digest(key, msg, "sha256")


@lru_cache(maxsize=512)
def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC('AWS4' + secret, date), region), service), 'aws4_request')."""
    k_date = hmac_sha256(("AWS4" + secret).encode("utf-8"), date)
    k_region = hmac_sha256(k_date, region)
    k_service = hmac_sha256(k_region, service)
    return hmac_sha256(k_service, "aws4_request")


def sign_hex(signing_key: bytes, to_sign: str) -> str:
    return keyed_hmac(signing_key, to_sign.encode("utf-8"), "sha256").hex()


# HMAC (RFC 2104) with the key's padded inner and outer hash states made once per key and copied
# per message: the same digest as ``hmac.digest``, without OpenSSL's per-call set-up (~5 us here,
# more than the hashing of a short string-to-sign). Keys are request signing keys and secrets;
# the table is bounded.
try:
    from _sha1 import sha1 as _sha1_new          # CPython's own implementations: no per-object
    from _sha256 import sha256 as _sha256_new    # set-up cost, fine for short messages
except ImportError:  # pragma: no cover - a Python built without them
    _sha1_new, _sha256_new = hashlib.sha1, hashlib.sha256
_HASHES = {"sha1": _sha1_new, "sha256": _sha256_new}
_HMAC_BLOCK = 64   # SHA-1 and SHA-256
_TRANS_36 = bytes(x ^ 0x36 for x in range(256))
_TRANS_5C = bytes(x ^ 0x5C for x in range(256))
_HMAC_KEYS: dict[tuple[bytes, str], tuple] = {}


def keyed_hmac(key: bytes, msg: bytes, algorithm: str) -> bytes:
    """``hmac.digest(key, msg, algorithm)`` for 'sha1' or 'sha256'."""
    pads = _HMAC_KEYS.get((key, algorithm))
    if pads is None:
        new = _HASHES[algorithm]
        block = new(key).digest() if len(key) > _HMAC_BLOCK else key
        block = block.ljust(_HMAC_BLOCK, b"\0")
        if len(_HMAC_KEYS) >= 1024:
            _HMAC_KEYS.clear()
        pads = _HMAC_KEYS[(key, algorithm)] = (new(block.translate(_TRANS_36)),
                                               new(block.translate(_TRANS_5C)))
    inner = pads[0].copy()
    inner.update(msg)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison of two signatures (hex compared case-insensitively)."""
    return hmac.compare_digest(expected.lower().encode("utf-8"),
                               provided.lower().encode("utf-8", "surrogateescape"))


def spaced_hex(text: str) -> str:
    """S3's ``StringToSignBytes`` / ``CanonicalRequestBytes`` rendering: '41 57 53 ...'."""
    return " ".join(f"{b:02x}" for b in text.encode("utf-8"))


def is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and _SHA256_HEX.fullmatch(value) is not None


# --- time -----------------------------------------------------------------------------------

def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_amz_date(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y%m%dT%H%M%SZ")


def format_iso8601(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=1024)     # a presigned URL's date recurs; a datetime is immutable
def parse_amz_date(value: str) -> datetime | None:
    """'YYYYMMDDTHHMMSSZ' -> aware datetime, or None."""
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        if value.isascii():  # fixed positions (what strptime's fields come to for 15 digits)
            return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                            int(value[11:13]), int(value[13:15]), tzinfo=timezone.utc)
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
