"""Block Public Access, per bucket: Put/Get/DeletePublicAccessBlock.

New buckets get all four settings on (S3's default since April 2023: GetPublicAccessBlock of a
new bucket answers them; the operator's ``s3_default_block_public_access = false`` makes new
buckets without one). What each does is ``access.decision``'s and the ACL/policy operations':
BlockPublicAcls refuses public ACLs on PUT requests, IgnorePublicAcls ignores public grants,
BlockPublicPolicy refuses a public bucket policy, RestrictPublicBuckets keeps a public policy's
grants to the bucket owner's account.
"""
from __future__ import annotations

import json

from access.decision import PublicAccessBlock
from s3_api import access_control as ac
from s3_api.errors import NoSuchBucket, _error
from storage import s3_access

NoSuchPublicAccessBlockConfiguration = _error(
    "NoSuchPublicAccessBlockConfiguration", 404,
    "The public access block configuration was not found")


async def _set(ctx, bucket, value: str | None) -> None:
    async def save(batch) -> None:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await s3_access.set_bucket_setting(batch.tx, bucket.name, "public_access_block", value)
    await ctx.state.store.write_alone(save)


async def get_public_access_block(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    block = s3_access.bucket_settings(ctx.state.store, bucket.name).block()
    if block is None:
        raise NoSuchPublicAccessBlockConfiguration(BucketName=bucket.name)
    return {"PublicAccessBlockConfiguration": PublicAccessBlock.from_members(block).members()}


async def put_public_access_block(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    block = PublicAccessBlock.from_members(params.get("PublicAccessBlockConfiguration"))
    await _set(ctx, bucket, json.dumps(block.members(), separators=(",", ":")))
    return {}


async def delete_public_access_block(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    await _set(ctx, bucket, None)
    return {"__status__": 204}


OPERATIONS = {
    "GetPublicAccessBlock": get_public_access_block,
    "PutPublicAccessBlock": put_public_access_block,
    "DeletePublicAccessBlock": delete_public_access_block,
}
