"""Conditional requests and byte ranges, as S3 evaluates them (RFC 7232 / 7233 with S3's choices).

Reads (GetObject, HeadObject): If-Match, then If-Unmodified-Since only without If-Match (412);
If-None-Match, then If-Modified-Since only without If-None-Match (304). Copies: the same four
x-amz-copy-source-if-* conditions, every failure a 412. Writes: If-None-Match: * and If-Match.
Times compare at whole seconds (HTTP dates carry no more).
"""
from __future__ import annotations

import datetime as dt
import email.utils

from s3_api.errors import (InvalidRange, NoSuchKey, NotImplementedOperation, NotModified,
                           PreconditionFailed)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def seconds(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int((value - EPOCH).total_seconds() // 1)


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names ``etag`` (unquoted, weak tags compared as
    strong, ``*`` matching any existing object)."""
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            return True
        if item.startswith("W/"):
            item = item[2:]
        if item.strip('"') == etag:
            return True
    return False


def check_read(params: dict, etag: str, modified_s: int) -> None:
    """GetObject / HeadObject preconditions (a 304 carries the ETag and Last-Modified)."""
    if_match = params.get("IfMatch")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise PreconditionFailed(Condition="If-Match")
    else:
        since = seconds(params.get("IfUnmodifiedSince"))
        if since is not None and modified_s > since:
            raise PreconditionFailed(Condition="If-Unmodified-Since")
    if_none = params.get("IfNoneMatch")
    if if_none is not None:
        if etag_matches(if_none, etag):
            raise _not_modified(etag, modified_s)
    else:
        since = seconds(params.get("IfModifiedSince"))
        if since is not None and modified_s <= since:
            raise _not_modified(etag, modified_s)


def _not_modified(etag: str, modified_s: int) -> NotModified:
    when = email.utils.formatdate(modified_s, usegmt=True)
    return NotModified(**{"ETag": f'"{etag}"', "Last-Modified": when})


def check_copy_source(params: dict, etag: str, modified_s: int) -> None:
    if_match = params.get("CopySourceIfMatch")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Match")
    else:
        since = seconds(params.get("CopySourceIfUnmodifiedSince"))
        if since is not None and modified_s > since:
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Unmodified-Since")
    if_none = params.get("CopySourceIfNoneMatch")
    if if_none is not None:
        if etag_matches(if_none, etag):
            raise PreconditionFailed(Condition="x-amz-copy-source-If-None-Match")
    else:
        since = seconds(params.get("CopySourceIfModifiedSince"))
        if since is not None and modified_s <= since:
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Modified-Since")


def validate_write(params: dict) -> None:
    """Before any data is read: S3 supports If-None-Match only as ``*`` on writes."""
    if_none = params.get("IfNoneMatch")
    if if_none is not None and if_none.strip() != "*":
        raise NotImplementedOperation(Header="If-None-Match")


def check_write(params: dict, current_etag: str | None) -> None:
    """At commit time, against the key's current version (None: no object)."""
    if params.get("IfNoneMatch") is not None and current_etag is not None:
        raise PreconditionFailed(Condition="If-None-Match")
    if_match = params.get("IfMatch")
    if if_match is not None:
        if current_etag is None:
            raise NoSuchKey(Key=params.get("Key"))
        if not etag_matches(if_match, current_etag):
            raise PreconditionFailed(Condition="If-Match")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a Range header selects of ``size`` bytes; None for the whole
    object (no header, a header S3 ignores: another unit, a malformed or a multi-range spec).
    Raises InvalidRange when the range is unsatisfiable."""
    if not header:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not sep or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(header, size)
        if size == 0:
            return None     # satisfiable (RFC 9110): the whole, empty, object
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _unsatisfiable(header, size)
    return start, min(end, size - 1)


def _unsatisfiable(header: str, size: int) -> InvalidRange:
    error = InvalidRange(RangeRequested=header, ActualObjectSize=size)
    error.headers = {"Content-Range": f"bytes */{size}"}     # as S3 (and RFC 9110) answer 416
    return error
