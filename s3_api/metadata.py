"""What an object carries besides its bytes: keys, content headers, user metadata, ETags, times.

The content headers and user metadata of a version are stored as one compact JSON text (NULL when
there is nothing but the default Content-Type), and turned back into the model's output members.

User metadata values are text: as S3 does, a value's RFC 2047 encoded words (``=?UTF-8?B?...?=``,
``=?utf-8?q?...?=``) and raw UTF-8 bytes are decoded before it is stored, and a value that is not
ASCII is returned RFC 2047-encoded (``=?UTF-8?B?...?=``), so every response header is ASCII
(botocore refuses to send non-ASCII metadata and reads headers as Latin-1).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import quopri
import re

from s3_api.errors import InvalidArgument, InvalidStorageClass, KeyTooLongError, MetadataTooLarge
from s3_api.payload import stored_content_encoding

MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
STORAGE_CLASSES = {"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
                   "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS",
                   "SNOW", "EXPRESS_ONEZONE"}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# stored name -> model member
_FIELDS = {"ct": "ContentType", "ce": "ContentEncoding", "cd": "ContentDisposition",
           "cl": "ContentLanguage", "cc": "CacheControl", "wr": "WebsiteRedirectLocation",
           "sc": "StorageClass"}


def check_key(key: str | None) -> str:
    if not key:
        raise InvalidArgument("A key must be specified", ArgumentName="key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument("The key is not valid UTF-8.", ArgumentName="key") from None
    if size > MAX_KEY_BYTES:
        raise KeyTooLongError(Size=size, MaxSizeAllowed=MAX_KEY_BYTES)
    return key


def stored_headers(params: dict) -> str | None:
    """The JSON text of a new version's content headers and metadata (None: all defaults)."""
    doc: dict = {}
    for short, name in _FIELDS.items():
        value = params.get(name)
        if name == "ContentEncoding":
            value = stored_content_encoding(value)
        if value is not None and value != "":
            doc[short] = value
    storage_class = doc.get("sc")
    if storage_class is not None:
        if storage_class not in STORAGE_CLASSES:
            raise InvalidStorageClass(StorageClassRequested=storage_class)
        if storage_class == "STANDARD":
            del doc["sc"]
    if doc.get("ct") == DEFAULT_CONTENT_TYPE:
        del doc["ct"]
    expires = params.get("Expires")
    if expires is not None:
        if isinstance(expires, dt.datetime):
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=dt.timezone.utc)
            doc["ex"] = expires.isoformat()
        else:
            doc["ex"] = str(expires)
    metadata = params.get("Metadata")
    if metadata:
        check_metadata(metadata)
        doc["m"] = {k.lower(): decode_metadata_value(v) for k, v in metadata.items()}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False) if doc else None


def check_metadata(metadata: dict) -> None:
    size = sum(len(k.encode("utf-8")) + len(str(v).encode("utf-8")) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise MetadataTooLarge(Size=size, MaxSizeAllowed=MAX_METADATA_BYTES)


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")


def _decoded_word(match: re.Match) -> str:
    charset, kind, text = match.group(1), match.group(2).upper(), match.group(3)
    try:
        if kind == "B":
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        else:
            raw = quopri.decodestring(text.replace("_", " ").encode("ascii"), header=True)
        return raw.decode(charset.split("*", 1)[0])
    except (binascii.Error, ValueError, LookupError, UnicodeError):
        return match.group(0)      # not a word this server can decode: kept as sent


def decode_metadata_value(value) -> str:
    """A metadata value as text: raw bytes that came as UTF-8 (or, failing that, Latin-1), and
    RFC 2047 encoded words decoded (the space between two adjacent words dropped)."""
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):   # bytes aiohttp could not decode
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    if "=?" in text:
        text = _ENCODED_WORD.sub(_decoded_word, _BETWEEN_WORDS.sub(r"\1\2", text))
    return text


def encode_metadata_value(text: str) -> str:
    """A stored metadata value as a response header: as is when printable ASCII, else one
    RFC 2047 encoded word in UTF-8 (S3's answer)."""
    if text.isascii() and text.isprintable():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def output_headers(stored: str | None) -> dict:
    """The model's output members for stored headers (ContentType always, Metadata always)."""
    doc = json.loads(stored) if stored else {}
    metadata = {k: encode_metadata_value(v) for k, v in doc.get("m", {}).items()}
    out: dict = {"ContentType": doc.get("ct", DEFAULT_CONTENT_TYPE), "Metadata": metadata}
    for short, name in _FIELDS.items():
        if short != "ct" and short in doc:
            out[name] = doc[short]
    if "ex" in doc:
        try:
            out["Expires"] = dt.datetime.fromisoformat(doc["ex"])
        except ValueError:
            pass
    return out


def storage_class(stored: str | None) -> str:
    if not stored or '"sc"' not in stored:
        return "STANDARD"
    return json.loads(stored).get("sc", "STANDARD")


def quoted(etag: str) -> str:
    return f'"{etag}"'


def unquote(etag: str | None) -> str:
    return (etag or "").strip().strip('"')


def last_modified(modified_us: int) -> dt.datetime:
    """What clients see: whole seconds (HTTP dates and S3 listings carry no more)."""
    return EPOCH + dt.timedelta(seconds=modified_us // 1_000_000)


def now_us(ctx) -> int:
    delta = ctx.now() - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
