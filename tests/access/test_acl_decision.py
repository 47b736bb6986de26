"""access.acl and access.decision on their own: canned ACLs, what each permission allows, and
S3's order of evaluation (explicit deny, owners, policy, ACLs, public access block)."""
from __future__ import annotations

import json

import pytest

from access import acl
from access.decision import (ALLOW, DENY, BucketAccess, ObjectAccess, PublicAccessBlock,
                             decide)
from access.model import AccessRequest, Principal, s3_arn
from access.policy import parse_policy

OWNER = Principal.account("111111111111", "a" * 64)
OTHER = Principal.account("222222222222", "b" * 64)
ANON = Principal()


def bucket(ownership="ObjectWriter", grants=None, policy=None, block=PublicAccessBlock()):
    parsed = parse_policy(json.dumps(policy), "b") if policy else None
    return BucketAccess(OWNER.account_id, OWNER.canonical_id, ownership, grants, parsed, block)


def ask(principal, action, key=None, **context):
    return AccessRequest(principal, action, s3_arn("b", key), {k: [v] for k, v in context.items()})


def test_canned_acls():
    assert acl.canned("private", "o") == [acl.Grant("id", "o", "FULL_CONTROL")]
    assert acl.Grant("group", acl.ALL_USERS, "READ") in acl.canned("public-read", "o")
    rw = acl.canned("public-read-write", "o")
    assert {g.permission for g in rw if g.public} == {"READ", "WRITE"}
    assert acl.canned("bucket-owner-full-control", "w", "bo")[-1] == acl.Grant("id", "bo",
                                                                               "FULL_CONTROL")
    assert acl.canned("bucket-owner-read", "w", "w") == acl.owner_grants("w")
    assert acl.is_public(acl.canned("authenticated-read", "o"))
    assert not acl.is_public(acl.canned("log-delivery-write", "o"))
    with pytest.raises(KeyError):
        acl.canned("everyone", "o")
    assert acl.from_json(acl.to_json(rw)) == rw


def test_permissions_map_to_actions():
    grants = [acl.Grant("id", OTHER.canonical_id, "READ")]
    assert acl.allows(grants, OTHER, "s3:ListBucket", on_object=False)
    assert not acl.allows(grants, OTHER, "s3:PutObject", on_object=False)
    assert acl.allows(grants, OTHER, "s3:GetObjectVersion", on_object=True)
    assert not acl.allows(grants, OTHER, "s3:GetObjectAcl", on_object=True)
    full = [acl.Grant("id", OTHER.canonical_id, "FULL_CONTROL")]
    assert acl.allows(full, OTHER, "s3:PutObjectAcl", on_object=True)
    assert not acl.allows(full, OWNER, "s3:GetObject", on_object=True)
    auth = [acl.Grant("group", acl.AUTHENTICATED_USERS, "READ")]
    assert acl.allows(auth, OTHER, "s3:GetObject", True) and not acl.allows(auth, ANON,
                                                                            "s3:GetObject", True)
    assert not acl.allows(auth, OTHER, "s3:GetObject", True, ignore_public=True)


def test_bucket_owner_and_nobody_else_by_default():
    access = bucket()
    assert decide(ask(OWNER, "s3:ListBucket"), access) == ALLOW
    assert decide(ask(OWNER, "s3:GetObject", "k"), access) == ALLOW
    for who in (OTHER, ANON):
        assert decide(ask(who, "s3:ListBucket"), access) is None
        assert decide(ask(who, "s3:GetObject", "k"), access) is None
        assert decide(ask(who, "s3:PutObject", "k"), access) is None


def test_explicit_deny_wins_except_the_owners_policy_actions():
    deny = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                           "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}]}
    access = bucket(policy=deny, grants=acl.canned("public-read-write", OWNER.canonical_id))
    assert decide(ask(OWNER, "s3:GetObject", "k"), access) == DENY
    assert decide(ask(ANON, "s3:ListBucket"), access) == DENY
    for action in ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"):
        assert decide(ask(OWNER, action), access) == ALLOW
        assert decide(ask(OTHER, action), access) == DENY


def test_bucket_owner_cannot_grant_other_accounts_objects():
    grant = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": "arn:aws:s3:::b/*"}]}
    access = bucket(policy=grant)
    theirs = ObjectAccess(OTHER.account_id, OTHER.canonical_id)
    assert decide(ask(ANON, "s3:GetObject", "k"), access) == ALLOW          # the owner's object
    assert decide(ask(ANON, "s3:GetObject", "k"), access, theirs) is None   # another's object
    assert decide(ask(OTHER, "s3:GetObject", "k"), access, theirs) == ALLOW  # its owner
    assert decide(ask(OWNER, "s3:GetObject", "k"), access, theirs) is None
    assert decide(ask(OWNER, "s3:DeleteObject", "k"), access, theirs) == ALLOW
    enforced = bucket(ownership="BucketOwnerEnforced", policy=grant)
    assert decide(ask(OWNER, "s3:GetObject", "k"), enforced, theirs) == ALLOW  # all the owner's


def test_acls_not_consulted_when_enforced():
    public = acl.canned("public-read", OWNER.canonical_id)
    obj = ObjectAccess(OWNER.account_id, OWNER.canonical_id, lambda: public)
    assert decide(ask(ANON, "s3:GetObject", "k"), bucket(), obj) == ALLOW
    assert decide(ask(ANON, "s3:GetObject", "k"), bucket("BucketOwnerEnforced"), obj) is None
    assert decide(ask(ANON, "s3:ListBucket"), bucket("BucketOwnerEnforced", public)) is None
    assert decide(ask(ANON, "s3:ListBucket"), bucket(grants=public)) == ALLOW


def test_public_access_block():
    public = acl.canned("public-read", OWNER.canonical_id)
    obj = ObjectAccess(OWNER.account_id, OWNER.canonical_id, lambda: public)
    ignore = PublicAccessBlock(ignore_public_acls=True)
    assert decide(ask(ANON, "s3:GetObject", "k"), bucket(block=ignore), obj) is None
    grant = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": "arn:aws:s3:::b/*"}]}
    restrict = PublicAccessBlock(restrict_public_buckets=True)
    assert decide(ask(ANON, "s3:GetObject", "k"), bucket(policy=grant, block=restrict)) is None
    assert decide(ask(OTHER, "s3:GetObject", "k"), bucket(policy=grant, block=restrict)) is None
    assert decide(ask(OWNER, "s3:GetObject", "k"), bucket(policy=grant, block=restrict)) == ALLOW
    narrow = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": OTHER.account_id},
                             "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}
    assert decide(ask(OTHER, "s3:GetObject", "k"), bucket(policy=narrow, block=restrict)) == ALLOW


def test_write_permission_on_the_bucket():
    grants = acl.owner_grants(OWNER.canonical_id) + [acl.Grant("id", OTHER.canonical_id, "WRITE")]
    access = bucket(grants=grants)
    assert decide(ask(OTHER, "s3:PutObject", "k"), access) == ALLOW
    assert decide(ask(OTHER, "s3:DeleteObject", "k"), access) == ALLOW
    assert decide(ask(OTHER, "s3:ListBucket"), access) is None
    assert decide(ask(OTHER, "s3:GetObject", "k"), access) is None
