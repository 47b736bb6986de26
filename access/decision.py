"""``decide``: S3's access decision for one request, as "How Amazon S3 authorizes a request"
describes it for bucket and object operations.

Inputs: the request (``access.model.AccessRequest``: principal, action, resource ARN, condition
keys), the bucket's access settings (``BucketAccess``: owner, object ownership, bucket ACL,
bucket policy, public access block) and, for an object operation, the object's owner and ACL
(``ObjectAccess``). The answer is ``ALLOW``, ``DENY`` (an explicit deny) or ``None`` (nothing
allows: an implicit deny). Callers answer both refusals with AccessDenied.

The rules, in order:

1. The bucket owner's account may always Get/Put/DeleteBucketPolicy, even when the policy
   denies it (so that a bad policy can be repaired).
2. An explicit Deny of the bucket policy wins over everything else.
3. Bucket operations: the bucket owner is allowed; anyone else needs an Allow of the bucket
   policy or a grant of the bucket ACL.
4. Object operations that the bucket governs (PutObject and the multipart writes, DeleteObject,
   AbortMultipartUpload): the bucket owner is allowed (the bucket owner may delete any object,
   whoever owns it); others need the policy or the bucket ACL (WRITE).
5. Other object operations (reads, ACLs, tags...): the object owner is allowed; the bucket
   policy's Allow counts only for objects the bucket owner owns (a bucket owner cannot grant
   access to another account's objects); else a grant of the object ACL.

ACLs count only when the bucket's object ownership is not ``BucketOwnerEnforced`` (then every
object belongs to the bucket owner and ACLs are not consulted). Public access block:
``IgnorePublicAcls`` makes grants to AllUsers/AuthenticatedUsers count for nothing;
``RestrictPublicBuckets`` makes a public policy's Allow count for the bucket owner's account
only (anonymous and cross-account access through it is refused). ``BlockPublicAcls`` and
``BlockPublicPolicy`` act when ACLs and policies are *set* (the S3 operations check them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from access import acl as acls
from access.model import AccessRequest

ALLOW = "Allow"
DENY = "Deny"
ENFORCED = "BucketOwnerEnforced"
POLICY_ACTIONS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})
# object-resource actions the bucket (its owner, its WRITE grantees) governs
BUCKET_GOVERNED = frozenset({"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
                             "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                             "s3:BypassGovernanceRetention"})


@dataclass(frozen=True)
class PublicAccessBlock:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    MEMBERS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")

    @classmethod
    def from_members(cls, doc: dict | None) -> "PublicAccessBlock":
        doc = doc or {}
        return cls(*(bool(doc.get(m)) for m in cls.MEMBERS))

    def members(self) -> dict:
        return dict(zip(self.MEMBERS, (self.block_public_acls, self.ignore_public_acls,
                                       self.block_public_policy, self.restrict_public_buckets)))


NO_BLOCK = PublicAccessBlock()


@dataclass
class BucketAccess:
    owner_account: str
    owner_canonical: str
    ownership: str | None = ENFORCED     # None: no ownership controls (ObjectWriter's rules)
    acl: list[acls.Grant] | None = None  # None: the owner's FULL_CONTROL only
    policy: Any = None                   # access.policy.Policy or None
    block: PublicAccessBlock = field(default_factory=PublicAccessBlock)

    @property
    def acls_enabled(self) -> bool:
        return self.ownership != ENFORCED

    def grants(self) -> list[acls.Grant]:
        return self.acl if self.acl is not None else acls.owner_grants(self.owner_canonical)


@dataclass
class ObjectAccess:
    owner_account: str
    owner_canonical: str
    acl: Callable[[], list[acls.Grant] | None] | None = None   # loaded only when needed

    def grants(self) -> list[acls.Grant]:
        found = self.acl() if self.acl is not None else None
        return found if found is not None else acls.owner_grants(self.owner_canonical)


def policy_verdict(request: AccessRequest, bucket: BucketAccess) -> str | None:
    if bucket.policy is None:
        return None
    restrict = bucket.owner_account if bucket.block.restrict_public_buckets else None
    return bucket.policy.evaluate(request, restrict_public_to=restrict)


def decide(request: AccessRequest, bucket: BucketAccess, obj: ObjectAccess | None = None,
           *, on_object: bool | None = None) -> str | None:
    """ALLOW, DENY or None (see the module's rules). ``on_object``: whether the action acts on
    an object (default: whether the resource names one); ``obj``: the object, when it exists
    (None: it is, or would be, the bucket owner's)."""
    principal = request.principal
    action = request.action
    is_bucket_owner = not principal.anonymous and principal.account_id == bucket.owner_account
    if is_bucket_owner and action in POLICY_ACTIONS:
        return ALLOW
    verdict = policy_verdict(request, bucket)
    if verdict == DENY:
        return DENY
    if on_object is None:
        on_object = "/" in request.resource.partition(":::")[2]
    ignore_public = bucket.block.ignore_public_acls
    if not on_object or action in BUCKET_GOVERNED:
        if is_bucket_owner or verdict == ALLOW:
            return ALLOW
        if bucket.acls_enabled and acls.allows(bucket.grants(), principal, action, False,
                                               ignore_public):
            return ALLOW
        return None
    if obj is None or not bucket.acls_enabled:
        object_owner = bucket.owner_account
    else:
        object_owner = obj.owner_account
    if not principal.anonymous and principal.account_id == object_owner:
        return ALLOW
    if verdict == ALLOW and object_owner == bucket.owner_account:
        return ALLOW
    if bucket.acls_enabled and obj is not None and acls.allows(obj.grants(), principal, action,
                                                               True, ignore_public):
        return ALLOW
    return None
