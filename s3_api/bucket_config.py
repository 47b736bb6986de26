"""The read side of bucket and object configurations Nimbo does not keep.

Tools (aws-cli, terraform, rclone, s3fs ...) ask for these; S3 answers a bucket without one with
its own 404 (NoSuchWebsiteConfiguration; tags, object lock, lifecycle,
encryption, policies, ownership controls and public access blocks have their own modules), or
with its defaults. Who may ask is the access decision's (``owned_bucket``).
"""
from __future__ import annotations

from typing import Callable

from s3_api.buckets import owned_bucket
from s3_api.errors import NoSuchWebsiteConfiguration


def _none_of(error: type) -> Callable:
    async def handler(ctx, params: dict) -> dict:
        bucket = owned_bucket(ctx, params)
        raise error(BucketName=bucket.name)
    handler.__name__ = f"no_{error.__name__}"
    return handler


get_bucket_website = _none_of(NoSuchWebsiteConfiguration)


async def get_bucket_logging(ctx, params: dict) -> dict:
    owned_bucket(ctx, params)
    return {}


async def get_bucket_notification_configuration(ctx, params: dict) -> dict:
    owned_bucket(ctx, params)
    return {}


async def get_bucket_request_payment(ctx, params: dict) -> dict:
    owned_bucket(ctx, params)
    return {"Payer": "BucketOwner"}


async def get_bucket_accelerate_configuration(ctx, params: dict) -> dict:
    owned_bucket(ctx, params)
    return {}


OPERATIONS = {
    "GetBucketWebsite": get_bucket_website,
    "GetBucketLogging": get_bucket_logging,
    "GetBucketNotificationConfiguration": get_bucket_notification_configuration,
    "GetBucketRequestPayment": get_bucket_request_payment,
    "GetBucketAccelerateConfiguration": get_bucket_accelerate_configuration,
}
