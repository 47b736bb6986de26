"""Access control lists: grants, canned ACLs, and what each ACL permission allows.

An ACL is the list of its grants (its owner is the bucket's or the object's owner, kept
elsewhere). A ``Grant`` names a grantee and one permission:

- grantee kinds: ``id`` (an account's canonical user id) or ``group`` (a group URI:
  ``AllUsers``, ``AuthenticatedUsers``, ``LogDelivery``). Email grantees are resolved to the
  account's canonical id when the ACL is set (S3 shows them as CanonicalUser afterwards).
- permissions: ``READ``, ``WRITE``, ``READ_ACP``, ``WRITE_ACP``, ``FULL_CONTROL``.

Which IAM actions a permission allows follows S3's "Mapping of ACL permissions and access
policy permissions": on a bucket, READ lists (ListBucket, ListBucketVersions,
ListBucketMultipartUploads), WRITE creates, overwrites and deletes objects, READ_ACP/WRITE_ACP
read and write the bucket ACL; on an object, READ reads it (GetObject, GetObjectVersion, its
attributes), READ_ACP/WRITE_ACP its ACL; FULL_CONTROL is all four.

"Public" is Block Public Access's meaning: an ACL is public when it grants anything to
AllUsers or AuthenticatedUsers.

Stored form (``to_json``/``from_json``): ``[["id"|"group", value, permission], ...]``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from access.model import Principal

GROUP_PREFIX = "http://acs.amazonaws.com/groups/"
ALL_USERS = GROUP_PREFIX + "global/AllUsers"
AUTHENTICATED_USERS = GROUP_PREFIX + "global/AuthenticatedUsers"
LOG_DELIVERY = GROUP_PREFIX + "s3/LogDelivery"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY)
PUBLIC_GROUPS = (ALL_USERS, AUTHENTICATED_USERS)

READ, WRITE, READ_ACP, WRITE_ACP, FULL_CONTROL = "READ", "WRITE", "READ_ACP", "WRITE_ACP", \
    "FULL_CONTROL"
PERMISSIONS = (FULL_CONTROL, WRITE, WRITE_ACP, READ, READ_ACP)

BUCKET_ACTIONS = {
    READ: frozenset({"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"}),
    WRITE: frozenset({"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
                      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}),
    READ_ACP: frozenset({"s3:GetBucketAcl"}),
    WRITE_ACP: frozenset({"s3:PutBucketAcl"}),
}
OBJECT_ACTIONS = {
    READ: frozenset({"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes",
                     "s3:GetObjectVersionAttributes", "s3:GetObjectTorrent",
                     "s3:GetObjectVersionTorrent"}),
    WRITE: frozenset(),
    READ_ACP: frozenset({"s3:GetObjectAcl", "s3:GetObjectVersionAcl"}),
    WRITE_ACP: frozenset({"s3:PutObjectAcl", "s3:PutObjectVersionAcl"}),
}
for _table in (BUCKET_ACTIONS, OBJECT_ACTIONS):
    _table[FULL_CONTROL] = frozenset().union(*_table.values())

CANNED_BUCKET = ("private", "public-read", "public-read-write", "authenticated-read",
                 "log-delivery-write")
CANNED_OBJECT = ("private", "public-read", "public-read-write", "authenticated-read",
                 "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control")
CANNED = tuple(dict.fromkeys(CANNED_BUCKET + CANNED_OBJECT))

# the x-amz-grant-* headers (model members) and the permission each grants
GRANT_MEMBERS = {"GrantFullControl": FULL_CONTROL, "GrantRead": READ, "GrantReadACP": READ_ACP,
                 "GrantWrite": WRITE, "GrantWriteACP": WRITE_ACP}


@dataclass(frozen=True)
class Grant:
    kind: str          # "id" | "group"
    value: str         # canonical user id | group URI
    permission: str

    @property
    def public(self) -> bool:
        return self.kind == "group" and self.value in PUBLIC_GROUPS

    def applies_to(self, principal: Principal) -> bool:
        if self.kind == "id":
            return principal.canonical_id is not None and principal.canonical_id == self.value
        if self.value == ALL_USERS:
            return True
        if self.value == AUTHENTICATED_USERS:
            return not principal.anonymous
        return False   # LogDelivery: S3's log delivery service, never a caller here


def owner_grants(owner_canonical: str) -> list[Grant]:
    return [Grant("id", owner_canonical, FULL_CONTROL)]


def canned(name: str, owner_canonical: str, bucket_owner_canonical: str | None = None) -> list[Grant]:
    """The grants of a canned ACL (``bucket_owner_canonical``: for the object ACLs that name
    the bucket owner). Raises KeyError for a name S3 does not have."""
    if name not in CANNED:
        raise KeyError(name)
    grants = owner_grants(owner_canonical)
    if name == "public-read":
        grants.append(Grant("group", ALL_USERS, READ))
    elif name == "public-read-write":
        grants += [Grant("group", ALL_USERS, READ), Grant("group", ALL_USERS, WRITE)]
    elif name == "authenticated-read":
        grants.append(Grant("group", AUTHENTICATED_USERS, READ))
    elif name == "log-delivery-write":
        grants += [Grant("group", LOG_DELIVERY, WRITE), Grant("group", LOG_DELIVERY, READ_ACP)]
    elif name in ("bucket-owner-read", "bucket-owner-full-control"):
        if bucket_owner_canonical and bucket_owner_canonical != owner_canonical:
            grants.append(Grant("id", bucket_owner_canonical,
                                READ if name == "bucket-owner-read" else FULL_CONTROL))
    return grants


def is_public(grants: list[Grant]) -> bool:
    """Block Public Access's "public ACL": a grant to AllUsers or AuthenticatedUsers."""
    return any(g.public for g in grants)


def owner_full_control_only(grants: list[Grant], owner_canonical: str,
                            bucket_owner_canonical: str | None = None) -> bool:
    """Whether an ACL gives nothing beyond FULL_CONTROL to the owner (and the bucket owner):
    what a bucket whose ACLs are disabled (BucketOwnerEnforced) still accepts."""
    allowed = {owner_canonical, bucket_owner_canonical}
    return all(g.kind == "id" and g.value in allowed and g.permission == FULL_CONTROL
               for g in grants)


def allows(grants: list[Grant], principal: Principal, action: str, on_object: bool,
           ignore_public: bool = False) -> bool:
    """Whether a grant of this ACL gives ``principal`` the ``action`` (``ignore_public``:
    IgnorePublicAcls, grants to the public groups count for nothing)."""
    table = OBJECT_ACTIONS if on_object else BUCKET_ACTIONS
    for grant in grants:
        if ignore_public and grant.public:
            continue
        if action in table.get(grant.permission, ()) and grant.applies_to(principal):
            return True
    return False


def to_json(grants: list[Grant]) -> str:
    return json.dumps([[g.kind, g.value, g.permission] for g in grants], separators=(",", ":"))


def from_json(text: str | None) -> list[Grant] | None:
    """The stored grants (None: none stored, the default; ``[]``: every grant revoked)."""
    if text is None:
        return None
    return [Grant(kind, value, permission) for kind, value, permission in json.loads(text)]
