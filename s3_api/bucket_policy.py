"""Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus.

PutBucketPolicy validates the document as S3 does (``access.policy.parse_policy``: MalformedPolicy
with S3's messages, the 20 KB limit; principals must be accounts this server has) and keeps the
text as given, which GetBucketPolicy returns unchanged. BlockPublicPolicy refuses a public policy
(AccessDenied). The bucket owner's account may always read, replace and delete the policy, even
one that denies it (``access.decision``).
"""
from __future__ import annotations

from access.policy import MalformedPolicy, parse_policy
from s3_api import access_control as ac
from s3_api.errors import AccessDenied, NoSuchBucket, NoSuchBucketPolicy, S3Error
from storage import s3_access


class MalformedPolicyError(S3Error):
    code = "MalformedPolicy"
    status = 400
    message = "Policies must be valid JSON and the first byte must be '{'"


def _known_principal(ctx):
    def known(value: str) -> bool:
        value = value.strip()
        if value.isdigit():
            return ac._account_row(ctx.state.store, "account_id", value) is not None
        if value.startswith("arn:"):
            return False          # IAM users and roles: Nimbo has none yet
        return ac.account_by_canonical(ctx, value) is not None
    return known


async def _set(ctx, bucket, value: str | None) -> None:
    async def save(batch) -> None:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await s3_access.set_bucket_setting(batch.tx, bucket.name, "policy", value)
    await ctx.state.store.write_alone(save)


async def put_bucket_policy(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    text = params.get("Policy")
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    try:
        policy = parse_policy(text or "", bucket.name, _known_principal(ctx))
    except MalformedPolicy as exc:
        raise MalformedPolicyError(exc.message) from None
    access = ac.bucket_access(ctx, bucket)
    if access.block.block_public_policy and policy.is_public():
        raise AccessDenied()
    await _set(ctx, bucket, text)
    return {"__status__": 204}


def _stored(ctx, bucket) -> str:
    text = s3_access.bucket_settings(ctx.state.store, bucket.name).policy
    if text is None:
        raise NoSuchBucketPolicy(BucketName=bucket.name)
    return text


async def get_bucket_policy(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    return {"Policy": _stored(ctx, bucket)}


async def delete_bucket_policy(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    await _set(ctx, bucket, None)
    return {"__status__": 204}


async def get_bucket_policy_status(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    text = _stored(ctx, bucket)
    return {"PolicyStatus": {"IsPublic": parse_policy(text, bucket.name).is_public()}}


OPERATIONS = {
    "PutBucketPolicy": put_bucket_policy,
    "GetBucketPolicy": get_bucket_policy,
    "DeleteBucketPolicy": delete_bucket_policy,
    "GetBucketPolicyStatus": get_bucket_policy_status,
}
