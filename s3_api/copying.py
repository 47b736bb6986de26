"""Copy sources (CopyObject, UploadPartCopy): parsing x-amz-copy-source, finding the source
version and the blob ranges that hold a span of it (the copy itself, which decrypts and seals on
a worker thread: ``s3_api.sealed_io``).
"""
from __future__ import annotations

import urllib.parse

from s3_api import access_control
from s3_api.errors import (AccessDenied, InvalidArgument, InvalidRange, InvalidRequest, NoSuchBucket,
                           NoSuchKey, NoSuchVersion)
from s3_api.metadata import check_key
from storage.object_versions import well_formed_vid
from storage.objects import Bucket, ObjectStore, ObjectVersion


def parse_copy_source(value: str | None) -> tuple[str, str, str | None]:
    """(bucket, key, version id) of ``bucket/key[?versionId=...]`` (URL-encoded, optional '/')."""
    if not value:
        raise InvalidArgument("Copy Source must mention the source bucket and key:"
                              " sourcebucket/sourcekey", ArgumentName="x-amz-copy-source")
    path, _, query = value.partition("?")
    version_id = None
    if query:
        for name, item in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if name == "versionId":
                version_id = item
    path = urllib.parse.unquote(path)
    if path.startswith("/"):
        path = path[1:]
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise InvalidArgument("Copy Source must mention the source bucket and key:"
                              " sourcebucket/sourcekey", ArgumentName="x-amz-copy-source",
                              ArgumentValue=value)
    return bucket, check_key(key), version_id


def source_version(ctx, params: dict) -> tuple[Bucket, ObjectVersion, str | None]:
    """The copy source's bucket and version, once the access decision allows reading it
    (s3:GetObject, or s3:GetObjectVersion for a version; ExpectedSourceBucketOwner)."""
    name, key, version_id = parse_copy_source(params.get("CopySource"))
    bucket, version = ctx.state.store.bucket_and_object(name, key)
    if bucket is None:
        raise NoSuchBucket(BucketName=name)
    action = "s3:GetObjectVersion" if version_id is not None else "s3:GetObject"
    source_params = {"ExpectedSourceBucketOwner": params.get("ExpectedSourceBucketOwner"),
                     "VersionId": version_id}
    try:
        found = _find_source(ctx, bucket, name, key, version, version_id)
    except (NoSuchKey, NoSuchVersion):
        access = access_control.authorize(ctx, source_params, bucket, action, key,
                                          expected_member="ExpectedSourceBucketOwner")
        if access_control.list_denied_as_missing(ctx, {}, bucket, access):
            raise AccessDenied() from None
        raise
    access_control.authorize(ctx, source_params, bucket, action, key, found,
                             expected_member="ExpectedSourceBucketOwner")
    return bucket, found, version_id


def _find_source(ctx, bucket: Bucket, name: str, key: str, version: ObjectVersion | None,
                 version_id: str | None) -> ObjectVersion:
    if version is not None and version_id is None:
        return version
    if version_id is not None:
        if not well_formed_vid(version_id):
            raise InvalidArgument("Invalid version id specified", ArgumentName="x-amz-copy-source",
                                  ArgumentValue=version_id)
        found = version if version is not None and version.vid == version_id else \
            ctx.state.store.noncurrent_version(name, key, version_id, data=True)
        if found is None:
            raise NoSuchVersion(Key=key, VersionId=version_id)
        if found.delete_marker:
            raise InvalidRequest("The source of a copy request may not specifically refer to a"
                                 " delete marker by version id.")
        return found
    error = NoSuchKey(Key=key)
    if bucket.versioning is not None and ctx.state.store.latest_marker(name, key) is not None:
        error.headers = {"x-amz-delete-marker": "true"}
    raise error


def segments(store: ObjectStore, version: ObjectVersion, start: int, end: int
             ) -> list[tuple[str, int, int]]:
    """(blob id, offset, length) covering bytes start..end (inclusive) of a blob-backed version."""
    if end < start:
        return []
    if not version.parts:
        return [(version.blob, start, end - start + 1)]
    out = []
    for _, part_start, size, _, _, blob in store.object_parts(version.version_id):
        part_end = part_start + size - 1
        if part_end < start or size == 0:
            continue
        if part_start > end:
            break
        lo = max(start, part_start)
        hi = min(end, part_end)
        out.append((blob, lo - part_start, hi - lo + 1))
    return out


def parse_copy_range(value: str | None, size: int) -> tuple[int, int]:
    """UploadPartCopy's x-amz-copy-source-range: exactly ``bytes=first-last`` within the source."""
    if value is None:
        return 0, size - 1
    spec = value.strip()
    if not spec.startswith("bytes="):
        raise _bad_range(value)
    first, sep, last = spec[6:].partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise _bad_range(value)
    first, last = int(first), int(last)
    if last < first:
        raise _bad_range(value)
    if last >= size:
        raise InvalidRange(f"Range specified is not valid for source object of size: {size}",
                           RangeRequested=value, ActualObjectSize=size)
    return first, last


def _bad_range(value: str) -> InvalidArgument:
    return InvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last"
                           " where first and last are the zero-based offsets of the first and last"
                           " bytes to copy", ArgumentName="x-amz-copy-source-range",
                           ArgumentValue=value)
