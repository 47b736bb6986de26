"""Object ownership: Put/Get/DeleteBucketOwnershipControls.

``BucketOwnerEnforced`` (new buckets' default, as S3's since April 2023; the operator's
``s3_default_object_ownership`` may change it): ACLs are disabled, the bucket owner owns every
object. ``BucketOwnerPreferred``: the bucket owner owns objects written with the
``bucket-owner-full-control`` canned ACL, the writer owns the others. ``ObjectWriter`` (and a
bucket without ownership controls): the writer owns what it writes. Enforcing while the bucket
ACL grants anything to anyone but the owner is InvalidBucketAclWithObjectOwnership.
"""
from __future__ import annotations

from access import acl as acls
from access.decision import ENFORCED
from s3_api import access_control as ac
from s3_api.errors import InvalidBucketAclWithObjectOwnership, MalformedXML, NoSuchBucket, _error
from storage import s3_access

OWNERSHIPS = ("BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter")
OwnershipControlsNotFoundError = _error("OwnershipControlsNotFoundError", 404,
                                        "The bucket ownership controls were not found")


async def _set(ctx, bucket, value: str | None) -> None:
    async def save(batch) -> None:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await s3_access.set_bucket_setting(batch.tx, bucket.name, "ownership", value)
    await ctx.state.store.write_alone(save)


async def get_bucket_ownership_controls(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    ownership = s3_access.bucket_settings(ctx.state.store, bucket.name).ownership
    if ownership is None:
        raise OwnershipControlsNotFoundError(BucketName=bucket.name)
    return {"OwnershipControls": {"Rules": [{"ObjectOwnership": ownership}]}}


async def put_bucket_ownership_controls(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    rules = (params.get("OwnershipControls") or {}).get("Rules") or []
    if len(rules) != 1 or rules[0].get("ObjectOwnership") not in OWNERSHIPS:
        raise MalformedXML()
    value = rules[0]["ObjectOwnership"]
    if value == ENFORCED:
        access = ac.bucket_access(ctx, bucket)
        if not acls.owner_full_control_only(access.grants(), access.owner_canonical):
            raise InvalidBucketAclWithObjectOwnership(
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")
    await _set(ctx, bucket, value)
    return {}


async def delete_bucket_ownership_controls(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    await _set(ctx, bucket, None)
    return {"__status__": 204}


def check_create(value: str | None) -> None:
    if value is not None and value not in OWNERSHIPS:
        from s3_api.errors import InvalidArgument  # noqa: PLC0415
        raise InvalidArgument("Invalid x-amz-object-ownership header",
                              ArgumentName="x-amz-object-ownership",
                              ArgumentValue=value)


OPERATIONS = {
    "GetBucketOwnershipControls": get_bucket_ownership_controls,
    "PutBucketOwnershipControls": put_bucket_ownership_controls,
    "DeleteBucketOwnershipControls": delete_bucket_ownership_controls,
}
