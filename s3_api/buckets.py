"""Buckets: CreateBucket, DeleteBucket, HeadBucket, ListBuckets, GetBucketLocation (versioning:
``s3_api.versioning``; ACLs: ``s3_api.acls``).

Bucket names are global: CreateBucket of another account's name is BucketAlreadyExists. Every
other operation asks the access decision (``s3_api.access_control``): another account's bucket
is AccessDenied unless its ACL or policy grants the request. CreateBucket stores the new
bucket's ownership, ACL and public access block with the bucket row (``s3_api.bucket_access``).
"""
from __future__ import annotations

import base64
import binascii
import re

from s3_api import access_control
from s3_api.bucket_access import new_bucket_access
from s3_api.errors import (AccessDenied, BucketAlreadyExists, BucketAlreadyOwnedByYou,
                           BucketNotEmpty, IllegalLocationConstraintException, InvalidArgument,
                           InvalidBucketName, InvalidLocationConstraint, NoSuchBucket)
from s3_api.metadata import last_modified, now_us
from storage import s3_access
from storage.objects import Batch, Bucket

US_EAST_1 = "us-east-1"
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def valid_bucket_name(name: str | None) -> bool:
    return bool(
        name and _NAME.match(name) and ".." not in name and not _IP.match(name)
        and not name.startswith(_RESERVED_PREFIXES) and not name.endswith(_RESERVED_SUFFIXES))


def owner(ctx) -> dict:
    return {"DisplayName": ctx.account.display_name, "ID": ctx.account.canonical_user_id}


def owned_bucket(ctx, params: dict) -> Bucket:
    """The request's bucket (NoSuchBucket when there is none) once the access decision allows
    the request's operation on it (``s3_api.access_control``)."""
    return access_control.authorized_bucket(ctx, params)


async def create_bucket(ctx, params: dict) -> dict:
    name = params.get("Bucket")
    if ctx.account is None:
        raise AccessDenied()
    if not valid_bucket_name(name):
        raise InvalidBucketName(BucketName=name)
    access = new_bucket_access(ctx, params)     # ownership, ACL, public access block
    lock = bool(params.get("ObjectLockEnabledForBucket"))
    region = ctx.region
    constraint = (params.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
    if constraint == "EU":
        constraint = "eu-west-1"
    if constraint:
        if constraint == US_EAST_1 and region == US_EAST_1:
            raise InvalidLocationConstraint(LocationConstraint=constraint)
        if constraint != region:
            raise IllegalLocationConstraintException(
                f"The {constraint} location constraint is incompatible for the region specific"
                " endpoint this request was sent to.")
    elif region != US_EAST_1:
        raise IllegalLocationConstraintException(
            "The unspecified location constraint is incompatible for the region specific"
            " endpoint this request was sent to.")
    account_id = ctx.account.account_id
    created = now_us(ctx)

    async def create(batch: Batch) -> None:
        existing = batch.bucket(name)
        if existing is not None:
            if existing.account_id != account_id:
                raise BucketAlreadyExists(BucketName=name)
            if existing.region == US_EAST_1 and region == US_EAST_1:
                return  # S3's legacy us-east-1 answer: 200 OK
            raise BucketAlreadyOwnedByYou(BucketName=name)
        # object lock comes with versioning enabled (s3_api.object_lock)
        await batch.tx.execute(
            "INSERT INTO s3_buckets (name, account_id, region, created_us, versioning, object_lock)"
            " VALUES (?, ?, ?, ?, ?, ?)", (name, account_id, region, created,
                                          "Enabled" if lock else None,
                                          '{"enabled": true}' if lock else None))
        await access.save(batch.tx, name)
        batch.forget_bucket(name)

    await ctx.state.store.write_alone(create)
    return {"Location": f"/{name}", "BucketArn": f"arn:aws:s3:::{name}"}


async def delete_bucket(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    store = ctx.state.store

    async def delete(batch: Batch) -> None:
        current = batch.bucket(bucket.name)
        if current is None:
            raise NoSuchBucket(BucketName=bucket.name)
        if store.bucket_has_objects(bucket.name):
            raise BucketNotEmpty(BucketName=bucket.name)
        # S3 deletes a bucket with multipart uploads in progress: they go with it
        rows = store.query(
            "SELECT p.size, p.blob FROM s3_uploads u JOIN s3_upload_parts p"
            " ON p.upload_id = u.upload_id WHERE u.bucket = ?", (bucket.name,))
        if rows:
            batch.add_usage(bucket.name, -sum(r[0] for r in rows))
            batch.discard_blobs([r[1] for r in rows])
        await batch.tx.execute(
            "DELETE FROM s3_upload_parts WHERE upload_id IN"
            " (SELECT upload_id FROM s3_uploads WHERE bucket = ?)", (bucket.name,))
        await batch.tx.execute("DELETE FROM s3_uploads WHERE bucket = ?", (bucket.name,))
        await batch.tx.execute("DELETE FROM s3_buckets WHERE name = ?", (bucket.name,))
        # its default encryption and access settings go with it (s3_api.bucket_encryption,
        # storage.s3_access)
        await batch.tx.execute("DELETE FROM s3_bucket_encryption WHERE bucket = ?", (bucket.name,))
        await s3_access.delete_bucket_settings(batch.tx, bucket.name)

    await store.write_alone(delete)
    return {"__status__": 204}


async def head_bucket(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    return {"BucketRegion": bucket.region, "AccessPointAlias": False}


async def get_bucket_location(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    return {"LocationConstraint": None if bucket.region == US_EAST_1 else bucket.region}


def encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii")


def decode_token(token: str, argument: str = "continuation-token") -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName=argument, ArgumentValue=token) from None


async def list_buckets(ctx, params: dict) -> dict:
    if ctx.account is None:
        raise AccessDenied()
    max_buckets = params.get("MaxBuckets")
    if max_buckets is not None and not 1 <= int(max_buckets) <= 10000:
        raise InvalidArgument("max-buckets must be between 1 and 10000",
                              ArgumentName="max-buckets", ArgumentValue=max_buckets)
    limit = int(max_buckets) if max_buckets is not None else 10000
    token = params.get("ContinuationToken")
    after = decode_token(token) if token else ""
    prefix = params.get("Prefix") or ""
    rows = ctx.state.store.buckets(ctx.account.account_id, after, prefix,
                                   params.get("BucketRegion"), limit + 1)
    out: dict = {
        "Buckets": [{"Name": b.name, "CreationDate": last_modified(b.created_us),
                     "BucketRegion": b.region} for b in rows[:limit]],
        "Owner": owner(ctx),
    }
    if prefix:
        out["Prefix"] = prefix
    if len(rows) > limit:
        out["ContinuationToken"] = encode_token(rows[limit - 1].name)
    return out
