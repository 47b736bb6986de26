"""Tagging: Put/Get/DeleteObjectTagging (any version), Put/Get/DeleteBucketTagging, and the
``x-amz-tagging`` header of PutObject, CopyObject (``x-amz-tagging-directive``), POST Object and
CreateMultipartUpload.

A version's tags are the JSON list ``[[key, value], ...]`` of its ``tags`` column (they move with
the version; setting them is one metadata commit); a bucket's are ``s3_buckets.tags``. S3's limits,
each refused with InvalidTag (400): at most 10 tags on an object and 50 on a bucket, keys of 1 to
128 and values of 0 to 256 Unicode characters from letters, digits, spaces and ``+ - = . _ : /
@``, no duplicate keys, no key starting with ``aws:``. Bucket tags are cost-allocation tags: every
change records a stored-bytes event of zero bytes carrying them, so the ledger (and with it Cost
Explorer's GroupBy TAG and the CUR's ``resourceTags/user:`` columns) bills the bucket's storage
and requests under the tags in force at the time.
"""
from __future__ import annotations

import json
import re
import urllib.parse
from xml.etree import ElementTree

from s3_api.buckets import owned_bucket
from s3_api.errors import InvalidArgument, InvalidTag, MalformedXML, NoSuchBucket, NoSuchTagSet
from s3_api.metadata import now_us
from storage.objects import Batch, new_id, record_stored_bytes

MAX_OBJECT_TAGS, MAX_BUCKET_TAGS = 10, 50
MAX_KEY, MAX_VALUE = 128, 256
_ALLOWED = re.compile(r"^[\w\s+\-=._:/@]*$", re.UNICODE)


def check_tags(pairs: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    if len(pairs) > limit:
        raise InvalidTag(f"Object tags cannot be greater than {limit}" if limit == MAX_OBJECT_TAGS
                         else f"Bucket tag count cannot be greater than {limit}")
    seen = set()
    for key, value in pairs:
        if key is None or not 1 <= len(key) <= MAX_KEY:
            raise InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if value is None:
            value = ""
        if len(value) > MAX_VALUE:
            raise InvalidTag("The TagValue you have provided is invalid", TagKey=key,
                             TagValue=value)
        if not _ALLOWED.match(key):
            raise InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if not _ALLOWED.match(value):
            raise InvalidTag("The TagValue you have provided is invalid", TagKey=key,
                             TagValue=value)
        if key.lower().startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        if key in seen:
            raise InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key)
        seen.add(key)
    return [(k, v or "") for k, v in pairs]


def from_tag_set(tagging) -> list[tuple[str, str]]:
    """The pairs of a ``Tagging`` body (MalformedXML when it has no TagSet)."""
    if not isinstance(tagging, dict) or not isinstance(tagging.get("TagSet"), list):
        raise MalformedXML()
    pairs = []
    for tag in tagging["TagSet"]:
        if not isinstance(tag, dict) or tag.get("Key") is None:
            raise MalformedXML()
        pairs.append((tag.get("Key"), tag.get("Value") or ""))
    return pairs


def from_xml(text: str) -> list[tuple[str, str]]:
    """The pairs of a Tagging XML document (POST Object's ``tagging`` field)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise MalformedXML() from None
    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]
    if local(root.tag) != "Tagging":
        raise MalformedXML()
    pairs = []
    for tag_set in root:
        if local(tag_set.tag) != "TagSet":
            raise MalformedXML()
        for tag in tag_set:
            fields = {local(child.tag): child.text or "" for child in tag}
            if local(tag.tag) != "Tag" or "Key" not in fields:
                raise MalformedXML()
            pairs.append((fields["Key"], fields.get("Value", "")))
    return pairs


def from_header(value: str | None) -> list[tuple[str, str]] | None:
    """The pairs of an ``x-amz-tagging`` header (URL query form), None when there is none."""
    if value is None:
        return None
    try:
        pairs = urllib.parse.parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value),
                                       errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded"
                              " URL query parameters without tag name duplicates.",
                              ArgumentName="x-amz-tagging", ArgumentValue=value) from None
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded"
                              " URL query parameters without tag name duplicates.",
                              ArgumentName="x-amz-tagging", ArgumentValue=value)
    return pairs


def header_tags(value: str | None) -> str | None:
    """The stored form of an ``x-amz-tagging`` header's tags (None: no tags)."""
    pairs = from_header(value)
    if not pairs:
        return None
    return stored(check_tags(pairs, MAX_OBJECT_TAGS))


def stored(pairs: list[tuple[str, str]]) -> str | None:
    return json.dumps([list(p) for p in pairs], ensure_ascii=False) if pairs else None


def tag_set(pairs) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in pairs]


# --- objects --------------------------------------------------------------------------------------

async def _set_object_tags(ctx, params: dict, tags: str | None) -> dict:
    from s3_api.objects import read_target  # noqa: PLC0415 (objects imports this module)
    from s3_api.versioning import version_header  # noqa: PLC0415
    bucket, version = read_target(ctx, params)

    def apply(batch: Batch) -> None:
        found = batch.find(bucket.name, version.key, version.vid)
        if found is None or found.delete_marker:
            from s3_api.errors import NoSuchKey  # noqa: PLC0415
            raise NoSuchKey(Key=version.key)
        batch.update(found, found.copy(tags=tags))

    await ctx.state.store.write(apply)
    return version_header(bucket, version, params.get("VersionId"))


async def put_object_tagging(ctx, params: dict) -> dict:
    pairs = check_tags(from_tag_set(params.get("Tagging")), MAX_OBJECT_TAGS)
    return await _set_object_tags(ctx, params, stored(pairs))


async def delete_object_tagging(ctx, params: dict) -> dict:
    out = await _set_object_tags(ctx, params, None)
    out["__status__"] = 204
    return out


async def get_object_tagging(ctx, params: dict) -> dict:
    from s3_api.objects import read_target  # noqa: PLC0415
    from s3_api.versioning import version_header  # noqa: PLC0415
    bucket, version = read_target(ctx, params)
    return {"TagSet": tag_set(version.tag_list()),
            **version_header(bucket, version, params.get("VersionId"))}


# --- buckets --------------------------------------------------------------------------------------

async def _set_bucket_tags(ctx, params: dict, text: str | None) -> None:
    bucket = owned_bucket(ctx, params)
    at = now_us(ctx)

    async def change(batch: Batch) -> None:
        current = batch.bucket(bucket.name)
        if current is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await batch.tx.execute("UPDATE s3_buckets SET tags = ? WHERE name = ?", (text, bucket.name))
        batch.forget_bucket(bucket.name)
        # the ledger learns the new cost-allocation tags from a zero-byte stored-bytes event
        current.tags = text
        await record_stored_bytes(batch.tx, current, f"s3-tags:{new_id()}:{bucket.name}", at, 0)

    await ctx.state.store.write_alone(change)


async def put_bucket_tagging(ctx, params: dict) -> dict:
    pairs = check_tags(from_tag_set(params.get("Tagging")), MAX_BUCKET_TAGS)
    await _set_bucket_tags(ctx, params, stored(pairs))
    return {"__status__": 204}


async def get_bucket_tagging(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    if not bucket.tags:
        raise NoSuchTagSet(BucketName=bucket.name)
    return {"TagSet": tag_set(json.loads(bucket.tags))}


async def delete_bucket_tagging(ctx, params: dict) -> dict:
    await _set_bucket_tags(ctx, params, None)
    return {"__status__": 204}


OPERATIONS = {
    "PutObjectTagging": put_object_tagging,
    "GetObjectTagging": get_object_tagging,
    "DeleteObjectTagging": delete_object_tagging,
    "PutBucketTagging": put_bucket_tagging,
    "GetBucketTagging": get_bucket_tagging,
    "DeleteBucketTagging": delete_bucket_tagging,
}
