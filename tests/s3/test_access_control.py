"""S3 access control through the handlers: ACLs, object ownership, bucket policies, Block Public
Access, and the one decision every operation asks (alice owns the bucket, bob is another
account, ``None`` is an anonymous caller)."""
from __future__ import annotations

import json

import pytest

from s3_api import errors
from s3_api.acls import MalformedACLError, MissingSecurityHeader, UnexpectedContent, \
    UnresolvableGrantByEmailAddress
from s3_api.bucket_access import InvalidBucketAclWithBlockPublicAccessError
from s3_api.bucket_policy import MalformedPolicyError
from s3_api.ownership import OwnershipControlsNotFoundError
from s3_api.public_access_block import NoSuchPublicAccessBlockConfiguration
from tests.s3.helpers import ALICE, BOB, close_harness, make_harness

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
OWNER = {"ID": ALICE.canonical_user_id}


def anon(s3):
    return s3.ctx(account=None)


def bob(s3):
    return s3.ctx(account=BOB)


async def open_bucket(s3, name="photos"):
    """A bucket with ACLs enabled and public access unblocked (what an operator shares)."""
    await s3.call("CreateBucket", Bucket=name, ObjectOwnership="ObjectWriter")
    await s3.call("DeletePublicAccessBlock", Bucket=name)
    return name


def acp(grantee: dict, permission: str) -> dict:
    """PutBucketAcl's members for an AccessControlPolicy body with one grant."""
    return {"AccessControlPolicy": {"Owner": OWNER, "Grants": [{"Grantee": grantee,
                                                                "Permission": permission}]}}


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal, action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource,
            **extra}


# --- S3's defaults for new buckets -------------------------------------------------------------

async def test_new_bucket_defaults_enforced_ownership_and_blocked_public_access(s3, bucket):
    got = await s3.call("GetBucketOwnershipControls", Bucket=bucket)
    assert got["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    block = (await s3.call("GetPublicAccessBlock", Bucket=bucket))["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    for op in ("GetBucketPolicy", "GetBucketPolicyStatus"):
        with pytest.raises(errors.NoSuchBucketPolicy):
            await s3.call(op, Bucket=bucket)
    acl = await s3.call("GetBucketAcl", Bucket=bucket)
    assert acl["Owner"] == {"DisplayName": "alice", "ID": ALICE.canonical_user_id}
    assert acl["Grants"] == [{"Grantee": {"Type": "CanonicalUser", "ID": ALICE.canonical_user_id,
                                          "DisplayName": "alice"}, "Permission": "FULL_CONTROL"}]


async def test_operator_defaults_make_shareable_buckets(s3):
    s3.app.config.s3_default_object_ownership = "ObjectWriter"
    s3.app.config.s3_default_block_public_access = False
    await s3.call("CreateBucket", Bucket="shared", ACL="public-read")
    with pytest.raises(NoSuchPublicAccessBlockConfiguration):
        await s3.call("GetPublicAccessBlock", Bucket="shared")
    await s3.call("ListObjectsV2", anon(s3), Bucket="shared")      # public-read bucket: listable


async def test_acls_disabled_by_default(s3, bucket):
    with pytest.raises(errors.AccessControlListNotSupported):
        await s3.put(bucket, "k", b"x", ACL="public-read")
    await s3.put(bucket, "k", b"x", ACL="bucket-owner-full-control")   # the one S3 accepts
    with pytest.raises(errors.AccessControlListNotSupported):
        await s3.call("PutObjectAcl", Bucket=bucket, Key="k", ACL="public-read")
    with pytest.raises(errors.AccessControlListNotSupported):
        await s3.call("PutBucketAcl", Bucket=bucket, ACL="public-read")
    with pytest.raises(errors.InvalidBucketAclWithObjectOwnership):
        await s3.call("CreateBucket", Bucket="other", ACL="public-read")
    with pytest.raises(InvalidBucketAclWithBlockPublicAccessError):
        await s3.call("CreateBucket", Bucket="other", ACL="public-read", ObjectOwnership="ObjectWriter")


# --- owner-only unless granted -----------------------------------------------------------------

async def test_others_and_anonymous_are_refused_without_a_grant(s3, bucket):
    await s3.put(bucket, "k", b"secret")
    for ctx in (bob(s3), anon(s3)):
        for op, extra in (("GetObject", {"Key": "k"}), ("HeadObject", {"Key": "k"}),
                          ("ListObjectsV2", {}), ("GetBucketAcl", {}), ("GetObjectAcl", {"Key": "k"}),
                          ("PutBucketPolicy", {"Policy": policy(allow("*", "s3:*", "*"))}),
                          ("GetBucketPolicy", {}), ("DeleteBucketPolicy", {}),
                          ("GetPublicAccessBlock", {}), ("DeletePublicAccessBlock", {}),
                          ("GetBucketOwnershipControls", {}), ("DeleteBucketOwnershipControls", {}),
                          ("PutBucketAcl", {"ACL": "private"}),
                          ("PutObjectAcl", {"Key": "k", "ACL": "private"})):
            with pytest.raises(errors.AccessDenied):
                await s3.call(op, ctx, Bucket=bucket, **extra)
    with pytest.raises(errors.NoSuchBucket):          # S3 names a missing bucket to anyone
        await s3.call("GetObject", anon(s3), Bucket="nowhere", Key="k")


async def test_public_read_object_fetched_anonymously(s3):
    name = await open_bucket(s3)
    await s3.put(name, "pub", b"hello", ACL="public-read")
    await s3.put(name, "priv", b"nope")
    out, data = await s3.get(name, "pub", anon(s3))
    assert data == b"hello"
    assert (await s3.get(name, "pub", bob(s3)))[1] == b"hello"
    with pytest.raises(errors.AccessDenied):
        await s3.get(name, "priv", anon(s3))
    with pytest.raises(errors.AccessDenied):          # no list permission: a missing key is 403
        await s3.get(name, "missing", anon(s3))
    with pytest.raises(errors.NoSuchKey):
        await s3.get(name, "missing")
    acl = await s3.call("GetObjectAcl", Bucket=name, Key="pub")
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in acl["Grants"]
    with pytest.raises(errors.AccessDenied):          # READ is not READ_ACP
        await s3.call("GetObjectAcl", anon(s3), Bucket=name, Key="pub")
    # IgnorePublicAcls: the grant counts for nothing; BlockPublicAcls: no new public ACL
    await s3.call("PutPublicAccessBlock", Bucket=name, PublicAccessBlockConfiguration={
        "IgnorePublicAcls": True, "BlockPublicAcls": True})
    with pytest.raises(errors.AccessDenied):
        await s3.get(name, "pub", anon(s3))
    with pytest.raises(errors.AccessDenied):
        await s3.call("PutObjectAcl", Bucket=name, Key="priv", ACL="public-read")
    with pytest.raises(errors.AccessDenied):
        await s3.put(name, "new", b"x", ACL="authenticated-read")


async def test_put_object_acl_on_a_version(s3):
    name = await open_bucket(s3)
    await s3.call("PutBucketVersioning", Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    first = (await s3.put(name, "k", b"one"))["VersionId"]
    await s3.put(name, "k", b"two")
    await s3.call("PutObjectAcl", Bucket=name, Key="k", VersionId=first, ACL="public-read")
    assert (await s3.get(name, "k", anon(s3), VersionId=first))[1] == b"one"
    with pytest.raises(errors.AccessDenied):
        await s3.get(name, "k", anon(s3))              # the current version is private
    got = await s3.call("GetObjectAcl", Bucket=name, Key="k", VersionId=first)
    assert got["VersionId"] == first and len(got["Grants"]) == 2


async def test_bucket_acl_write_grant_and_object_writer_ownership(s3):
    name = await open_bucket(s3)
    await s3.call("PutBucketAcl", Bucket=name,
                  GrantWrite=f'id="{BOB.canonical_user_id}"',
                  GrantFullControl=f'id="{ALICE.canonical_user_id}"')
    await s3.put(name, "bobs", b"b", bob(s3))
    await s3.put(name, "shared", b"s", bob(s3), ACL="bucket-owner-full-control")
    acl = await s3.call("GetObjectAcl", bob(s3), Bucket=name, Key="bobs")
    assert acl["Owner"]["ID"] == BOB.canonical_user_id        # ObjectWriter: the writer owns it
    with pytest.raises(errors.AccessDenied):                  # the bucket owner cannot read it ...
        await s3.get(name, "bobs")
    assert (await s3.get(name, "shared"))[1] == b"s"          # ... unless granted
    listing = await s3.call("ListObjectsV2", Bucket=name, FetchOwner=True)
    owners = {c["Key"]: c["Owner"]["ID"] for c in listing["Contents"]}
    assert owners == {"bobs": BOB.canonical_user_id, "shared": BOB.canonical_user_id}
    await s3.call("DeleteObject", Bucket=name, Key="bobs")    # ... but may delete it
    with pytest.raises(errors.AccessDenied):                  # bob may not list (no READ)
        await s3.call("ListObjectsV2", bob(s3), Bucket=name)
    # enforcing ownership while the ACL grants bob something is refused
    with pytest.raises(errors.InvalidBucketAclWithObjectOwnership):
        await s3.call("PutBucketOwnershipControls", Bucket=name, OwnershipControls={
            "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})


async def test_bucket_owner_preferred(s3):
    await s3.call("CreateBucket", Bucket="pref", ObjectOwnership="BucketOwnerPreferred")
    await s3.call("PutBucketAcl", Bucket="pref", GrantWrite=f'id="{BOB.canonical_user_id}"')
    await s3.put("pref", "a", b"x", bob(s3), ACL="bucket-owner-full-control")
    await s3.put("pref", "b", b"x", bob(s3))
    a = await s3.call("GetObjectAcl", Bucket="pref", Key="a")
    assert a["Owner"]["ID"] == ALICE.canonical_user_id
    b = await s3.call("GetObjectAcl", bob(s3), Bucket="pref", Key="b")
    assert b["Owner"]["ID"] == BOB.canonical_user_id


async def test_access_control_policy_body_and_email_grants(s3):
    name = await open_bucket(s3)
    await s3.put(name, "k", b"x")
    body = {"Owner": {"ID": ALICE.canonical_user_id},
            "Grants": [{"Grantee": {"Type": "AmazonCustomerByEmail",
                                    "EmailAddress": "BOB@example.com"}, "Permission": "READ"},
                       {"Grantee": {"Type": "CanonicalUser", "ID": ALICE.canonical_user_id},
                        "Permission": "FULL_CONTROL"}]}
    await s3.call("PutObjectAcl", Bucket=name, Key="k", AccessControlPolicy=body)
    got = await s3.call("GetObjectAcl", Bucket=name, Key="k")
    assert {"Grantee": {"Type": "CanonicalUser", "ID": BOB.canonical_user_id, "DisplayName": "bob"},
            "Permission": "READ"} in got["Grants"]     # an email grant is shown by canonical id
    assert (await s3.get(name, "k", bob(s3)))[1] == b"x"


# --- bad input: AWS's codes --------------------------------------------------------------------

@pytest.mark.parametrize("params, error", [
    ({"ACL": "public-read", "GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'},
     errors.InvalidRequest),
    ({"GrantRead": 'id="' + "0" * 64 + '"'}, errors.InvalidArgument),
    ({"GrantRead": 'emailAddress="nobody@example.com"'}, UnresolvableGrantByEmailAddress),
    ({"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/Everyone"'}, errors.InvalidArgument),
    ({"GrantRead": "nonsense"}, errors.InvalidArgument),
    ({"GrantRead": 'user="x"'}, errors.InvalidArgument),
    ({"ACL": "world-writable"}, errors.InvalidArgument),
    ({}, MissingSecurityHeader),
    ({"ACL": "private", "AccessControlPolicy": {"Grants": []}}, UnexpectedContent),
    ({"AccessControlPolicy": {"Grants": []}}, MalformedACLError),       # no Owner
    (acp({"Type": "Robot", "ID": "x"}, "READ"), MalformedACLError),
    (acp({"Type": "CanonicalUser"}, "READ"), MalformedACLError),
    (acp({"Type": "Group", "URI": ALL_USERS}, "EVERYTHING"), MalformedACLError),
])
async def test_bad_acls_get_aws_codes(s3, params, error):
    name = await open_bucket(s3)
    with pytest.raises(error):
        await s3.call("PutBucketAcl", Bucket=name, **params)
    acl = await s3.call("GetBucketAcl", Bucket=name)            # nothing changed
    assert len(acl["Grants"]) == 1


async def test_bad_policies_and_configurations(s3, bucket):
    for text in ("not json", "{", json.dumps({"Statement": []}),
                 policy(allow("*", "s3:NoSuchAction", f"arn:aws:s3:::{bucket}/*")),
                 policy(allow({"AWS": "999999999999"}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*"))):
        with pytest.raises(MalformedPolicyError):
            await s3.call("PutBucketPolicy", Bucket=bucket, Policy=text)
    huge = policy(*[allow({"AWS": BOB.account_id}, "s3:GetObject",
                          f"arn:aws:s3:::{bucket}/key-{i:05d}-{'x' * 100}") for i in range(200)])
    with pytest.raises(MalformedPolicyError, match="20480"):
        await s3.call("PutBucketPolicy", Bucket=bucket, Policy=huge)
    with pytest.raises(errors.NoSuchBucketPolicy):
        await s3.call("GetBucketPolicy", Bucket=bucket)
    with pytest.raises(errors.MalformedXML):
        await s3.call("PutBucketOwnershipControls", Bucket=bucket,
                      OwnershipControls={"Rules": [{"ObjectOwnership": "Nobody"}]})
    with pytest.raises(errors.InvalidArgument):
        await s3.call("CreateBucket", Bucket="weird", ObjectOwnership="Nobody")


# --- bucket policies ---------------------------------------------------------------------------

async def test_policy_grants_another_account_and_is_returned_as_given(s3, bucket):
    await s3.put(bucket, "docs/a", b"a")
    text = policy(allow({"AWS": BOB.account_id}, "s3:GetObject", f"arn:aws:s3:::{bucket}/docs/*"))
    text = text.replace('"Statement"', '  "Statement"')           # kept byte for byte
    assert await s3.call("PutBucketPolicy", Bucket=bucket, Policy=text) == {"__status__": 204}
    assert (await s3.call("GetBucketPolicy", Bucket=bucket))["Policy"] == text
    assert (await s3.call("GetBucketPolicyStatus", Bucket=bucket))["PolicyStatus"] == {"IsPublic": False}
    ctx = bob(s3)
    assert (await s3.get(bucket, "docs/a", ctx))[1] == b"a"
    assert ctx.bill_to == ALICE.account_id                         # billed to the bucket owner
    with pytest.raises(errors.AccessDenied):
        await s3.call("ListObjectsV2", bob(s3), Bucket=bucket)
    with pytest.raises(errors.AccessDenied):                       # 403, not 404: no ListBucket
        await s3.get(bucket, "docs/missing", bob(s3))
    with pytest.raises(errors.AccessDenied):
        await s3.put(bucket, "docs/b", b"b", bob(s3))
    with pytest.raises(errors.AccessDenied):
        await s3.get(bucket, "docs/a", anon(s3))


async def test_explicit_deny_wins_but_owner_keeps_the_policy(s3, bucket):
    await s3.put(bucket, "k", b"x")
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(deny))
    with pytest.raises(errors.AccessDenied):
        await s3.get(bucket, "k")
    with pytest.raises(errors.AccessDenied):
        await s3.call("ListObjectsV2", Bucket=bucket)
    assert (await s3.call("GetBucketPolicy", Bucket=bucket))["Policy"]     # still the owner's
    await s3.call("DeleteBucketPolicy", Bucket=bucket)
    assert (await s3.get(bucket, "k"))[1] == b"x"


async def test_public_policy_block_and_restrict(s3, bucket):
    await s3.put(bucket, "k", b"x")
    public = policy(allow("*", "s3:GetObject", f"arn:aws:s3:::{bucket}/*"))
    with pytest.raises(errors.AccessDenied):                  # BlockPublicPolicy (the default)
        await s3.call("PutBucketPolicy", Bucket=bucket, Policy=public)
    await s3.call("PutPublicAccessBlock", Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=public)
    assert (await s3.call("GetBucketPolicyStatus", Bucket=bucket))["PolicyStatus"] == {"IsPublic": True}
    assert (await s3.get(bucket, "k", anon(s3)))[1] == b"x"
    assert (await s3.get(bucket, "k", bob(s3)))[1] == b"x"
    await s3.call("PutPublicAccessBlock", Bucket=bucket, PublicAccessBlockConfiguration={
        "RestrictPublicBuckets": True})
    for ctx in (anon(s3), bob(s3)):
        with pytest.raises(errors.AccessDenied):
            await s3.get(bucket, "k", ctx)
    assert (await s3.get(bucket, "k"))[1] == b"x"


async def test_policy_conditions_from_the_request(s3, bucket):
    await s3.put(bucket, "home/bob/a", b"a")
    await s3.put(bucket, "other/b", b"b")
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(
        allow({"AWS": BOB.account_id}, "s3:ListBucket", f"arn:aws:s3:::{bucket}",
              Condition={"StringLike": {"s3:prefix": "home/bob/*"}}),
        allow({"AWS": BOB.account_id}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
              Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}),
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",   # never: it is alice's
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringNotEquals": {"aws:ResourceAccount": ALICE.account_id}}}))
    listing = await s3.call("ListObjectsV2", bob(s3), Bucket=bucket, Prefix="home/bob/")
    assert [c["Key"] for c in listing["Contents"]] == ["home/bob/a"]
    for prefix in ("other/", None):
        with pytest.raises(errors.AccessDenied):
            await s3.call("ListObjectsV2", bob(s3), Bucket=bucket,
                          **({"Prefix": prefix} if prefix else {}))
    ctx = bob(s3)
    ctx.remote = "127.0.0.1"
    assert (await s3.get(bucket, "other/b", ctx))[1] == b"b"
    ctx = bob(s3)
    ctx.remote = "192.0.2.7"
    with pytest.raises(errors.AccessDenied):
        await s3.get(bucket, "other/b", ctx)


async def test_existing_object_tag_condition(s3, bucket):
    await s3.put(bucket, "open", b"o", Tagging="share=yes")
    await s3.put(bucket, "closed", b"c", Tagging="share=no")
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(
        allow({"AWS": BOB.account_id}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*",
              Condition={"StringEquals": {"s3:ExistingObjectTag/share": "yes"}})))
    assert (await s3.get(bucket, "open", bob(s3)))[1] == b"o"
    with pytest.raises(errors.AccessDenied):
        await s3.get(bucket, "closed", bob(s3))


async def test_copy_needs_read_on_the_source_and_write_on_the_target(s3, bucket):
    await s3.put(bucket, "src", b"data")
    await s3.call("CreateBucket", bob(s3), Bucket="bobs")
    with pytest.raises(errors.AccessDenied):
        await s3.call("CopyObject", bob(s3), Bucket="bobs", Key="copy", CopySource=f"{bucket}/src")
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(
        allow({"AWS": BOB.account_id}, "s3:GetObject", f"arn:aws:s3:::{bucket}/*")))
    await s3.call("CopyObject", bob(s3), Bucket="bobs", Key="copy", CopySource=f"{bucket}/src")
    assert (await s3.get("bobs", "copy", bob(s3)))[1] == b"data"
    with pytest.raises(errors.AccessDenied):        # read access is not write access
        await s3.call("CopyObject", bob(s3), Bucket=bucket, Key="back", CopySource="bobs/copy")
    with pytest.raises(errors.AccessDenied):        # ExpectedSourceBucketOwner still holds
        await s3.call("CopyObject", bob(s3), Bucket="bobs", Key="copy2", CopySource=f"{bucket}/src",
                      ExpectedSourceBucketOwner=BOB.account_id)


async def test_delete_objects_per_key(s3, bucket):
    await s3.put(bucket, "a/1", b"1")
    await s3.put(bucket, "b/1", b"1")
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(
        allow({"AWS": BOB.account_id}, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/a/*")))
    out = await s3.call("DeleteObjects", bob(s3), Bucket=bucket,
                        Delete={"Objects": [{"Key": "a/1"}, {"Key": "b/1"}]})
    assert out["Deleted"] == [{"Key": "a/1"}]
    assert out["Errors"][0]["Key"] == "b/1" and out["Errors"][0]["Code"] == "AccessDenied"
    with pytest.raises(errors.AccessDenied):
        await s3.call("DeleteObjects", bob(s3), Bucket=bucket, Delete={"Objects": [{"Key": "b/1"}]})
    assert (await s3.get(bucket, "b/1"))[1] == b"1"


# --- persistence -------------------------------------------------------------------------------

async def test_settings_persist_and_go_with_the_bucket(tmp_path):
    s3 = await make_harness(str(tmp_path))
    try:
        name = await open_bucket(s3, "keep")
        await s3.put(name, "k", b"x", ACL="public-read")
        await s3.call("PutBucketPolicy", Bucket=name, Policy=policy(
            allow({"AWS": BOB.account_id}, "s3:ListBucket", f"arn:aws:s3:::{name}")))
    finally:
        await close_harness(s3)
    s3 = await make_harness(str(tmp_path))      # a restart: everything read back from disk
    try:
        assert (await s3.get(name, "k", anon(s3)))[1] == b"x"
        await s3.call("ListObjectsV2", bob(s3), Bucket=name)
        await s3.call("DeleteObject", Bucket=name, Key="k")
        rows = s3.state.store.query("SELECT COUNT(*) FROM s3_object_acls")
        assert rows[0][0] == 0                    # the ACL went with its version
        await s3.call("DeleteBucket", Bucket=name)
        await s3.call("CreateBucket", bob(s3), Bucket=name)   # a new bucket of that name: defaults
        with pytest.raises(errors.NoSuchBucketPolicy):
            await s3.call("GetBucketPolicy", bob(s3), Bucket=name)
        got = await s3.call("GetBucketOwnershipControls", bob(s3), Bucket=name)
        assert got["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
        await s3.call("DeleteBucketOwnershipControls", bob(s3), Bucket=name)
        with pytest.raises(OwnershipControlsNotFoundError):
            await s3.call("GetBucketOwnershipControls", bob(s3), Bucket=name)
    finally:
        await close_harness(s3)


async def test_a_write_refused_at_commit_leaves_no_acl(s3):
    """Two conditional PUTs of one key race; the one refused at commit (If-None-Match) leaves no
    ACL row behind (the batch's undo), and the row left names the version that won."""
    import asyncio
    name = await open_bucket(s3)
    results = await asyncio.gather(
        s3.put(name, "k", b"public", ACL="public-read", IfNoneMatch="*"),
        s3.put(name, "k", b"private", IfNoneMatch="*"), return_exceptions=True)
    assert sum(isinstance(r, errors.PreconditionFailed) for r in results) == 1
    rows = s3.state.store.query("SELECT version_id FROM s3_object_acls")
    current = s3.state.store.object_meta(name, "k")
    public_won = not isinstance(results[0], Exception)
    assert [r[0] for r in rows] == ([current.version_id] if public_won else [])


async def test_writers_set_acls_on_what_they_own_and_anonymous_writes(s3):
    name = await open_bucket(s3)
    await s3.call("PutBucketAcl", Bucket=name, ACL="public-read-write")
    await s3.put(name, "bobs-public", b"b", bob(s3), ACL="public-read")    # bob owns it: may
    assert (await s3.get(name, "bobs-public", anon(s3)))[1] == b"b"
    await s3.put(name, "dropped", b"anonymous", anon(s3))                  # public write
    listing = await s3.call("ListObjectsV2", anon(s3), Bucket=name, FetchOwner=True)
    owners = {c["Key"]: c["Owner"]["ID"] for c in listing["Contents"]}
    assert owners == {"bobs-public": BOB.canonical_user_id, "dropped": ALICE.canonical_user_id}
    await s3.call("PutBucketAcl", Bucket=name, ACL="private")
    with pytest.raises(errors.AccessDenied):
        await s3.put(name, "again", b"x", anon(s3))


def test_condition_keys_of_a_request(s3):
    import datetime as dt
    from types import SimpleNamespace

    from s3_api.access_control import action_for, condition_context
    ctx = s3.ctx(headers={"Referer": "https://example.com/page", "User-Agent": "curl/8",
                          "x-amz-acl": "public-read", "x-amz-server-side-encryption": "aws:kms",
                          "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    ctx.remote, ctx.secure = "10.1.2.3", True
    ctx.auth = SimpleNamespace(signature_version="v4", presigned=True, amz_date="20260501T115959Z",
                               payload_hash="UNSIGNED-PAYLOAD")
    version = SimpleNamespace(tags='[["team", "blue"]]',
                              tag_list=lambda: [("team", "blue")])
    keys = condition_context(ctx, {"Prefix": "home/", "MaxKeys": 10, "VersionId": "v1",
                                   "Tagging": "a=1&b=2", "ObjectLockMode": "GOVERNANCE",
                                   "ObjectLockRetainUntilDate": dt.datetime(2026, 5, 3, 12,
                                                                            tzinfo=dt.timezone.utc)},
                             version)
    expected = {
        "aws:SourceIp": ["10.1.2.3"], "aws:SecureTransport": ["true"],
        "aws:Referer": ["https://example.com/page"], "aws:UserAgent": ["curl/8"],
        "aws:CurrentTime": ["2026-05-01T12:00:00Z"], "aws:EpochTime": ["1777636800"],
        "s3:x-amz-acl": ["public-read"], "s3:x-amz-server-side-encryption": ["aws:kms"],
        "s3:x-amz-content-sha256": ["UNSIGNED-PAYLOAD"], "s3:signatureversion": ["AWS4-HMAC-SHA256"],
        "s3:authType": ["REST-QUERY-STRING"], "s3:signatureAge": ["1000"], "s3:prefix": ["home/"],
        "s3:max-keys": ["10"], "s3:VersionId": ["v1"], "s3:object-lock-mode": ["GOVERNANCE"],
        "s3:object-lock-retain-until-date": ["2026-05-03T12:00:00Z"],
        "s3:object-lock-remaining-retention-days": ["2"], "s3:ExistingObjectTag/team": ["blue"],
        "s3:RequestObjectTag/a": ["1"], "s3:RequestObjectTag/b": ["2"],
        "s3:RequestObjectTagKeys": ["a", "b"]}
    assert keys == expected
    assert action_for("GetObject", {"VersionId": "v"}) == "s3:GetObjectVersion"
    assert action_for("HeadObject", {}) == "s3:GetObject"
    assert action_for("ListObjectVersions") == "s3:ListBucketVersions"
    assert action_for("DeletePublicAccessBlock") == "s3:PutBucketPublicAccessBlock"
    assert action_for("ListParts") == "s3:ListMultipartUploadParts"


async def test_acls_of_copies_and_multipart_uploads(s3):
    from tests.s3.helpers import Body
    name = await open_bucket(s3)
    await s3.put(name, "src", b"source")
    await s3.call("CopyObject", Bucket=name, Key="copy", CopySource=f"{name}/src",
                  ACL="public-read")
    assert (await s3.get(name, "copy", anon(s3)))[1] == b"source"
    await s3.call("CopyObject", Bucket=name, Key="copy2", CopySource=f"{name}/copy")
    with pytest.raises(errors.AccessDenied):             # a copy does not take the source's ACL
        await s3.get(name, "copy2", anon(s3))
    up = await s3.call("CreateMultipartUpload", Bucket=name, Key="mp", ACL="public-read")
    part = await s3.call("UploadPart", Bucket=name, Key="mp", UploadId=up["UploadId"],
                         PartNumber=1, Body=Body(b"parts"), ContentLength=5)
    await s3.call("CompleteMultipartUpload", Bucket=name, Key="mp", UploadId=up["UploadId"],
                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert (await s3.get(name, "mp", anon(s3)))[1] == b"parts"
    with pytest.raises(errors.InvalidRequest):
        await s3.call("CreateMultipartUpload", Bucket=name, Key="mp2", ACL="private",
                      GrantRead=f'id="{BOB.canonical_user_id}"')


async def test_every_grant_revoked(s3):
    """An AccessControlPolicy without grants leaves an empty ACL (the owners keep their rights)."""
    name = await open_bucket(s3)
    await s3.put(name, "k", b"x")
    owner = {"ID": ALICE.canonical_user_id}
    await s3.call("PutBucketAcl", Bucket=name, AccessControlPolicy={"Owner": owner, "Grants": []})
    await s3.call("PutObjectAcl", Bucket=name, Key="k",
                  AccessControlPolicy={"Owner": owner, "Grants": []})
    assert (await s3.call("GetBucketAcl", Bucket=name))["Grants"] == []
    assert (await s3.call("GetObjectAcl", Bucket=name, Key="k"))["Grants"] == []
    assert (await s3.get(name, "k"))[1] == b"x"


async def test_tags_on_a_write_need_put_object_tagging(s3, bucket):
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(
        allow({"AWS": BOB.account_id}, "s3:PutObject", f"arn:aws:s3:::{bucket}/*")))
    await s3.put(bucket, "plain", b"x", bob(s3))
    with pytest.raises(errors.AccessDenied):
        await s3.put(bucket, "tagged", b"x", bob(s3), Tagging="a=1")
    await s3.call("PutBucketPolicy", Bucket=bucket, Policy=policy(
        allow({"AWS": BOB.account_id}, ["s3:PutObject", "s3:PutObjectTagging"],
              f"arn:aws:s3:::{bucket}/*")))
    await s3.put(bucket, "tagged", b"x", bob(s3), Tagging="a=1")
    await s3.put(bucket, "mine", b"x", Tagging="a=1")         # the owner needs no grant
