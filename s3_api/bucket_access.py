"""A new bucket's access settings (CreateBucket): object ownership, ACL, public access block.

Defaults are S3's for buckets created since April 2023: ``BucketOwnerEnforced`` (ACLs disabled)
and every public access blocked. An operator who wants shareable buckets sets, in the config
file, ``s3_default_object_ownership`` (``BucketOwnerEnforced``, ``BucketOwnerPreferred`` or
``ObjectWriter``) and ``s3_default_block_public_access = false``. A request's
``x-amz-object-ownership`` header wins over the default. A canned ACL or grant headers other
than the owner's full control need ACLs enabled (InvalidBucketAclWithObjectOwnership), and a
public one needs public ACLs unblocked (InvalidBucketAclWithBlockPublicAccessError).
"""
from __future__ import annotations

from dataclasses import dataclass

from access import acl as acls
from access.decision import ENFORCED, PublicAccessBlock
from s3_api.acls import request_grants, stored
from s3_api.errors import InvalidBucketAclWithObjectOwnership, _error
from s3_api.ownership import OWNERSHIPS, check_create
from storage import s3_access

InvalidBucketAclWithBlockPublicAccessError = _error(
    "InvalidBucketAclWithBlockPublicAccessError", 400,
    "Bucket cannot have public ACLs set with BlockPublicAccess enabled")
ALL_BLOCKED = PublicAccessBlock(True, True, True, True)


@dataclass
class NewBucketAccess:
    ownership: str | None
    acl: str | None
    block: dict | None

    async def save(self, tx, bucket: str) -> None:
        await s3_access.create_bucket_settings(tx, bucket, self.ownership, self.acl, self.block)


def defaults(config) -> tuple[str, bool]:
    """(object ownership, block public access) of new buckets, from the config file."""
    ownership = getattr(config, "s3_default_object_ownership", None) or ENFORCED
    if ownership not in OWNERSHIPS:
        raise ValueError(f"s3_default_object_ownership must be one of {', '.join(OWNERSHIPS)},"
                         f" not {ownership!r}")
    block = getattr(config, "s3_default_block_public_access", True)
    return ownership, bool(True if block is None else block)


def new_bucket_access(ctx, params: dict) -> NewBucketAccess:
    default_ownership, block_public = defaults(getattr(ctx.app, "config", None))
    check_create(params.get("ObjectOwnership"))
    ownership = params.get("ObjectOwnership") or default_ownership
    owner_canonical = ctx.account.canonical_user_id
    grants = request_grants(ctx, params, owner_canonical, owner_canonical, bucket_level=True)
    if grants is not None:
        if ownership == ENFORCED and not acls.owner_full_control_only(grants, owner_canonical):
            raise InvalidBucketAclWithObjectOwnership()
        if block_public and acls.is_public(grants):
            raise InvalidBucketAclWithBlockPublicAccessError()
    block = ALL_BLOCKED.members() if block_public else None
    return NewBucketAccess(ownership, stored(grants, owner_canonical), block)

