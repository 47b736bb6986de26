"""Listing: ListObjects, ListObjectsV2 (and the walk ListMultipartUploads shares).

A listing is a range scan of the (bucket, key) index in UTF-8 byte order. With a delimiter, the
first key under a new common prefix yields that prefix, and the scan then seeks past everything
that shares it (to the least string above the prefix) in one index lookup, so a prefix holding a
million keys costs one query, not a million rows. Every entry (key or common prefix) returned is
greater than the marker / start-after / continuation point.
"""
from __future__ import annotations

import functools
import re
import urllib.parse
from typing import Callable

from s3_api import access_control
from s3_api.buckets import decode_token, encode_token, owned_bucket
from s3_api.errors import InvalidArgument
from s3_api.metadata import last_modified, storage_class
from storage.objects import prefix_end

MAX_KEYS = 1000
_SCAN_CAP = 1001


class Walk:
    """The outcome of a walk: entries (rows) and common prefixes, in order."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.prefixes: list[str] = []
        self.truncated = False
        self.last: str | None = None          # the last entry returned: key or common prefix
        self.last_row: tuple | None = None    # the last row returned (None when a prefix was last)


def walk(scan: Callable[[str, bool, str | None, int], list[tuple]], prefix: str,
         delimiter: str | None, marker: str | None, limit: int,
         first_scan: Callable[[int], list[tuple]] | None = None) -> Walk:
    """Entries after ``marker`` under ``prefix``, at most ``limit``.

    ``scan(start, inclusive, end, n)`` returns up to n rows (key first) from ``start`` below
    ``end``; ``first_scan(n)``, when given, replaces the first scan (ListMultipartUploads starts
    after a (key, upload id) pair)."""
    out = Walk()
    if limit <= 0:
        return out
    end = prefix_end(prefix) if prefix else None
    if marker is not None and marker >= prefix:
        start, inclusive = marker, False
    else:
        start, inclusive = prefix, True
    count = 0
    while True:
        want = min(limit - count + 1, _SCAN_CAP)
        if first_scan is not None:
            rows, first_scan = first_scan(want), None
        else:
            rows = scan(start, inclusive, end, want)
        seek = None
        if not delimiter:       # no roll-up: the rows are the entries
            take = rows[:limit - count]
            out.rows.extend(take)
            count += len(take)
            if take:
                out.last, out.last_row = take[-1][0], take[-1]
                start, inclusive = out.last, False
            if len(rows) > len(take):
                out.truncated = True
                return out
            if len(rows) < want:
                return out
            continue
        for row in rows:
            key = row[0]
            if delimiter:
                at = key.find(delimiter, len(prefix))
                if at >= 0:
                    common = key[:at + len(delimiter)]
                    seek = prefix_end(common)
                    if marker is not None and common <= marker:
                        break   # rolled up into a prefix at or before the marker: skip it all
                    if count == limit:
                        out.truncated = True
                        return out
                    out.prefixes.append(common)
                    out.last, out.last_row = common, None
                    count += 1
                    break
            if count == limit:
                out.truncated = True
                return out
            out.rows.append(row)
            out.last, out.last_row = key, row
            count += 1
            start, inclusive = key, False
        else:
            if len(rows) < want:
                return out
            continue
        if seek is None:
            return out          # nothing sorts after this prefix
        start, inclusive = seek, True


def max_keys(value, name: str = "max-keys") -> int:
    if value is None:
        return MAX_KEYS
    value = int(value)
    if value < 0:
        raise InvalidArgument("Argument maxKeys must be an integer between 0 and 2147483647",
                              ArgumentName=name, ArgumentValue=value)
    return min(value, MAX_KEYS)


def encoder(params: dict) -> Callable[[str], str]:
    encoding = params.get("EncodingType")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request",
                              ArgumentName="encoding-type", ArgumentValue=encoding)
    return url_encode


_URL_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")   # what quote(safe="/~") leaves as it is


def url_encode(s: str) -> str:
    """encoding-type=url: percent-encoding of all but unreserved characters and "/" (most keys
    need none: a regular-expression match instead of quote's pass over the key's bytes)."""
    if not s or _URL_PLAIN.fullmatch(s):
        return s
    return urllib.parse.quote(s, safe="/~")


def listed_last_modified(times: dict[int, object], modified_us: int) -> object:
    """An entry's LastModified (to the second), made once per second of a page: ``times`` caches."""
    second = modified_us // 1_000_000
    when = times.get(second)
    if when is None:
        when = times[second] = last_modified(modified_us)
    return when


def add_checksum_algorithm(item: dict, algorithm: str | None, checksum_type: str | None) -> None:
    """An entry's ChecksumAlgorithm (a list of one) and ChecksumType, when it has a checksum."""
    if algorithm:
        item["ChecksumAlgorithm"] = [algorithm]
        if checksum_type:
            item["ChecksumType"] = checksum_type


def _owners(ctx):
    """owner_id -> Owner members (each account looked up once)."""
    return functools.lru_cache(maxsize=64)(lambda owner_id: access_control.display(ctx, owner_id))


def _contents(rows, encode, with_owner) -> list[dict]:
    """``with_owner``: owner_id -> the Owner members (None: no Owner)."""
    out = []
    append = out.append
    times: dict[int, object] = {}
    for key, size, etag, modified_us, owner_id, algorithm, checksum_type, headers in rows:
        when = times.get(modified_us // 1_000_000)
        if when is None:
            when = listed_last_modified(times, modified_us)
        item = {"Key": encode(key), "LastModified": when, "ETag": f'"{etag}"', "Size": size,
                "StorageClass": storage_class(headers) if headers and '"sc"' in headers
                else "STANDARD"}
        if algorithm:
            add_checksum_algorithm(item, algorithm, checksum_type)
        if with_owner is not None:
            item["Owner"] = with_owner(owner_id)
        append(item)
    return out


def _scan_for(ctx, bucket: str):
    store = ctx.state.store
    return lambda start, inclusive, end, n: store.scan_objects(bucket, start, inclusive, end, n)


async def list_objects_v2(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    encode = encoder(params)
    limit = max_keys(params.get("MaxKeys"))
    prefix = params.get("Prefix") or ""
    delimiter = params.get("Delimiter") or None
    token = params.get("ContinuationToken")
    start_after = params.get("StartAfter")
    marker = decode_token(token) if token is not None else (start_after or None)
    result = walk(_scan_for(ctx, bucket.name), prefix, delimiter, marker, limit)
    out: dict = {
        "Name": bucket.name, "Prefix": encode(prefix), "MaxKeys": limit,
        "KeyCount": len(result.rows) + len(result.prefixes), "IsTruncated": result.truncated,
        "Contents": _contents(result.rows, encode, _owners(ctx) if params.get("FetchOwner") else None),
        "CommonPrefixes": [{"Prefix": encode(p)} for p in result.prefixes],
    }
    if delimiter:
        out["Delimiter"] = encode(delimiter)
    if params.get("EncodingType"):
        out["EncodingType"] = params["EncodingType"]
    if token is not None:
        out["ContinuationToken"] = token
    if start_after:
        out["StartAfter"] = encode(start_after)
    if result.truncated:
        out["NextContinuationToken"] = encode_token(result.last)
    return out


async def list_objects(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    encode = encoder(params)
    limit = max_keys(params.get("MaxKeys"))
    prefix = params.get("Prefix") or ""
    delimiter = params.get("Delimiter") or None
    marker = params.get("Marker") or None
    result = walk(_scan_for(ctx, bucket.name), prefix, delimiter, marker, limit)
    out: dict = {
        # v1's top-level Prefix is returned as sent even with encoding-type=url (S3 encodes
        # Delimiter, Marker, NextMarker and the keys; botocore decodes exactly those)
        "Name": bucket.name, "Prefix": prefix, "Marker": encode(marker or ""),
        "MaxKeys": limit, "IsTruncated": result.truncated,
        "Contents": _contents(result.rows, encode, _owners(ctx)),
        "CommonPrefixes": [{"Prefix": encode(p)} for p in result.prefixes],
    }
    if delimiter:
        out["Delimiter"] = encode(delimiter)
        if result.truncated:
            out["NextMarker"] = encode(result.last)
    if params.get("EncodingType"):
        out["EncodingType"] = params["EncodingType"]
    return out
