"""Versioning: PutBucketVersioning, GetBucketVersioning, ListObjectVersions, and how a request
names a version (``versionId``) and learns about delete markers.

The version model and its crash story are ``storage.object_versions``'s. Here: the S3 answers.
A bucket starts unversioned (GetBucketVersioning answers no Status); once Enabled it can only be
Suspended again. ListObjectVersions works on every bucket: an unversioned one lists its objects
as the ``null`` version. Version ids are validated before they are looked up: a string that
cannot be a version id is ``InvalidArgument`` (400), a well-formed one that names nothing is
``NoSuchVersion`` (404). MFA delete cannot be enabled (Nimbo has no MFA devices): without an
``x-amz-mfa`` header S3's own refusal, with one NotImplemented; ``Disabled`` is kept and reported.
"""
from __future__ import annotations

import email.utils

from s3_api import access_control
from s3_api.buckets import decode_token, owned_bucket
from s3_api.errors import (AccessDenied, InvalidArgument, InvalidBucketState, MalformedXML,
                           MethodNotAllowed, NoSuchKey, NoSuchVersion, NotImplementedOperation)
from s3_api.listing import Walk, add_checksum_algorithm, encoder, listed_last_modified, max_keys, walk
from s3_api.metadata import storage_class
from storage.object_versions import NULL_VERSION, well_formed_vid
from storage.objects import Batch, Bucket, ObjectVersion

ENABLED, SUSPENDED = "Enabled", "Suspended"


def check_version_id(vid: str | None) -> str | None:
    """``vid`` when it can name a version; InvalidArgument (as S3) when it cannot."""
    if vid is None:
        return None
    if not well_formed_vid(vid):
        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId",
                              ArgumentValue=vid)
    return vid


def _http_date(modified_us: int) -> str:
    return email.utils.formatdate(modified_us // 1_000_000, usegmt=True)


def no_such_key(store, bucket: Bucket, key: str) -> NoSuchKey:
    """NoSuchKey for a key without a current object; when its newest version is a delete marker,
    with S3's ``x-amz-delete-marker`` and ``x-amz-version-id`` headers."""
    error = NoSuchKey(Key=key)
    if bucket.versioning is not None:
        marker = store.latest_marker(bucket.name, key)
        if marker is not None:
            error.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": marker.vid}
    return error


def delete_marker_not_allowed(version: ObjectVersion, method: str) -> MethodNotAllowed:
    """405 for a request naming a delete marker by version id (GET, HEAD ...)."""
    error = MethodNotAllowed(Method=method, ResourceType="DeleteMarker")
    error.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": version.vid,
                     "Last-Modified": _http_date(version.modified_us)}
    return error


def find_version(ctx, bucket: Bucket, key: str, current: ObjectVersion | None,
                 vid: str | None, method: str = "GET") -> ObjectVersion:
    """The object version a read names (the current one without ``vid``), or S3's error."""
    store = ctx.state.store
    if vid is None:
        if current is None:
            raise no_such_key(store, bucket, key)
        return current
    check_version_id(vid)
    if current is not None and current.vid == vid:
        return current
    version = store.noncurrent_version(bucket.name, key, vid, data=True)
    if version is None:
        raise NoSuchVersion(Key=key, VersionId=vid)
    if version.delete_marker:
        raise delete_marker_not_allowed(version, method)
    return version


def version_header(bucket: Bucket, version: ObjectVersion, asked: str | None = None) -> dict:
    """``VersionId`` of an answer: in versioned (or suspended) buckets, or when one was asked."""
    if bucket.versioning is not None or asked is not None:
        return {"VersionId": version.vid}
    return {}


# --- Put/GetBucketVersioning -------------------------------------------------------------------

async def put_bucket_versioning(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    config = params.get("VersioningConfiguration")
    if not isinstance(config, dict):
        raise MalformedXML()
    status = config.get("Status")
    mfa_delete = config.get("MFADelete")
    if status not in (ENABLED, SUSPENDED) or mfa_delete not in (None, "Enabled", "Disabled"):
        raise MalformedXML()
    if mfa_delete == "Enabled":
        if not params.get("MFA"):
            raise AccessDenied("Mfa Authentication must be used for this request")
        raise NotImplementedOperation("MFA delete is not supported by this server.",
                                      Header="x-amz-mfa")
    if status == SUSPENDED and bucket.object_lock:
        raise InvalidBucketState("An Object Lock configuration is present on this bucket, so the"
                                 " versioning state cannot be changed.")
    stored = status if mfa_delete is None else f"{status}/{mfa_delete}"

    async def change(batch: Batch) -> None:
        current = batch.bucket(bucket.name)
        if current is None:
            from s3_api.errors import NoSuchBucket  # noqa: PLC0415
            raise NoSuchBucket(BucketName=bucket.name)
        if status == SUSPENDED and current.object_lock:
            raise InvalidBucketState("An Object Lock configuration is present on this bucket, so"
                                     " the versioning state cannot be changed.")
        await batch.tx.execute("UPDATE s3_buckets SET versioning = ? WHERE name = ?",
                               (stored, bucket.name))
        batch.forget_bucket(bucket.name)

    await ctx.state.store.write_alone(change)
    return {}


def versioning_status(bucket: Bucket) -> str | None:
    """'Enabled', 'Suspended' or None (never enabled), from the stored ``Status[/MFADelete]``."""
    return bucket.versioning.split("/")[0] if bucket.versioning else None


async def get_bucket_versioning(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    if not bucket.versioning:
        return {}
    status, _, mfa = bucket.versioning.partition("/")
    out = {"Status": status}
    if mfa:
        out["MFADelete"] = mfa
    return out


# --- ListObjectVersions ------------------------------------------------------------------------

def _walk_versions(store, bucket: str, prefix: str, delimiter: str | None,
                   key_marker: str | None, after_seq: int | None, limit: int) -> tuple[Walk, list[bool]]:
    """Versions (newest first per key) and common prefixes after the markers, at most ``limit``,
    with whether each version is its key's latest.

    ``listing.walk`` over the versions index: a scan that resumes after a row it returned resumes
    after that row's version (its ``seq``), any other scan starts at the first version of a key."""
    resume = {"key": key_marker, "seq": after_seq}

    def scan(start: str, inclusive: bool, end: str | None, n: int) -> list[tuple]:
        seq = resume["seq"] if not inclusive and start == resume["key"] else None
        rows = store.scan_versions(bucket, start, inclusive, seq, end, n)
        if rows:
            resume["key"], resume["seq"] = rows[-1][0], rows[-1][1]
        return rows

    result = walk(scan, prefix, delimiter, key_marker, limit)
    previous_key = key_marker if after_seq is not None else None
    latest = []
    for row in result.rows:
        latest.append(row[0] != previous_key)
        previous_key = row[0]
    return result, latest


async def list_object_versions(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    encode = encoder(params)
    limit = max_keys(params.get("MaxKeys"))
    prefix = params.get("Prefix") or ""
    delimiter = params.get("Delimiter") or None
    key_marker = params.get("KeyMarker") or None
    vid_marker = params.get("VersionIdMarker") or None
    store = ctx.state.store
    after_seq = None
    if vid_marker is not None:
        if key_marker is None:
            raise InvalidArgument("A version-id marker cannot be specified without a key marker.",
                                  ArgumentName="version-id-marker", ArgumentValue=vid_marker)
        check_version_id(vid_marker)
        current = store.object_meta(bucket.name, key_marker)
        if current is not None and current.vid == vid_marker:
            after_seq = current.seq
        else:
            found = store.noncurrent_version(bucket.name, key_marker, vid_marker)
            if found is None:
                raise InvalidArgument("Invalid version id specified",
                                      ArgumentName="version-id-marker", ArgumentValue=vid_marker)
            after_seq = found.seq
    page, latest_flags = _walk_versions(store, bucket.name, prefix, delimiter, key_marker, after_seq, limit)
    who = access_control.display      # each version's owner (s3_api.access_control)
    versions, markers = [], []
    times: dict[int, object] = {}
    for row, latest in zip(page.rows, latest_flags):
        key, _, vid, dm, size, etag, modified_us, owner_id, algorithm, checksum_type, headers = row
        when = listed_last_modified(times, modified_us)
        if dm:
            markers.append({"Owner": who(ctx, owner_id), "Key": encode(key), "VersionId": vid,
                            "IsLatest": latest, "LastModified": when})
            continue
        item = {"ETag": f'"{etag}"', "Size": size, "StorageClass": storage_class(headers),
                "Key": encode(key), "VersionId": vid, "IsLatest": latest, "LastModified": when,
                "Owner": who(ctx, owner_id)}
        add_checksum_algorithm(item, algorithm, checksum_type)
        versions.append(item)
    out: dict = {"Name": bucket.name, "Prefix": encode(prefix), "KeyMarker": encode(key_marker or ""),
                 "VersionIdMarker": vid_marker or "", "MaxKeys": limit,
                 "IsTruncated": page.truncated}
    if versions:
        out["Versions"] = versions
    if markers:
        out["DeleteMarkers"] = markers
    if page.prefixes:
        out["CommonPrefixes"] = [{"Prefix": encode(p)} for p in page.prefixes]
    if delimiter:
        out["Delimiter"] = encode(delimiter)
    if params.get("EncodingType"):
        out["EncodingType"] = params["EncodingType"]
    if page.truncated:
        out["NextKeyMarker"] = encode(page.last)
        if page.last_row is not None:
            out["NextVersionIdMarker"] = page.last_row[2]
    return out


OPERATIONS = {
    "PutBucketVersioning": put_bucket_versioning,
    "GetBucketVersioning": get_bucket_versioning,
    "ListObjectVersions": list_object_versions,
}

__all__ = ["OPERATIONS", "check_version_id", "find_version", "no_such_key", "version_header",
           "versioning_status", "NULL_VERSION", "decode_token"]
