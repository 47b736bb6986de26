"""ACLs: GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl, and the ACL a write carries
(``x-amz-acl`` canned ACLs or ``x-amz-grant-*`` headers on CreateBucket, PutObject, CopyObject,
CreateMultipartUpload, POST uploads).

An ACL comes from exactly one of: a canned ACL, grant headers (``id=``, ``emailAddress=``,
``uri=`` grantees, comma-separated), or (Put*Acl only) an AccessControlPolicy body. A canned ACL
with grant headers is InvalidRequest; a body with either is UnexpectedContent; grantees are
checked: an unknown canonical id is InvalidArgument, an unknown email address
UnresolvableGrantByEmailAddress, an unknown group or grantee type InvalidArgument /
MalformedACLError. Setting an ACL obeys the bucket's object ownership (BucketOwnerEnforced
accepts only the owner's full control: AccessControlListNotSupported) and BlockPublicAcls (a
public ACL is AccessDenied). The decision (``s3_api.access_control``) uses the stored grants.
"""
from __future__ import annotations

import re

from access import acl as acls
from access.decision import ENFORCED, BucketAccess
from s3_api import access_control as ac
from s3_api.errors import (AccessControlListNotSupported, AccessDenied, InvalidArgument,
                           InvalidRequest, MethodNotAllowed, S3Error, _error)
from storage import s3_access

MalformedACLError = _error("MalformedACLError", 400,
                           "The XML you provided was not well-formed or did not validate against"
                           " our published schema")
UnresolvableGrantByEmailAddress = _error(
    "UnresolvableGrantByEmailAddress", 400,
    "The e-mail address you provided does not match any account on record.")
UnexpectedContent = _error("UnexpectedContent", 400, "This request does not support content")
MissingSecurityHeader = _error("MissingSecurityHeader", 400,
                               "Your request was missing a required header")
MAX_GRANTS = 100
_GRANT_ITEM = re.compile(r'^\s*(id|emailAddress|uri)\s*=\s*"?([^"]*)"?\s*$', re.IGNORECASE)
_TYPES = {"CanonicalUser": "id", "AmazonCustomerByEmail": "emailAddress", "Group": "uri"}


# --- the ACL a request carries -----------------------------------------------------------------

def _grantee(ctx, kind: str, value: str, permission: str) -> acls.Grant:
    kind = kind.lower()
    if kind == "id":
        if not value or ac.account_by_canonical(ctx, value) is None:
            raise InvalidArgument("Invalid id", ArgumentName="CanonicalUser/ID",
                                  ArgumentValue=value)
        return acls.Grant("id", value, permission)
    if kind == "emailaddress":
        found = ac.account_by_email(ctx, value)
        if found is None:
            raise UnresolvableGrantByEmailAddress(EmailAddress=value)
        return acls.Grant("id", found[1], permission)
    if value not in acls.GROUPS:
        raise InvalidArgument("Invalid group uri", ArgumentName="Group/URI", ArgumentValue=value)
    return acls.Grant("group", value, permission)


def _header_grants(ctx, params: dict) -> list[acls.Grant]:
    grants: list[acls.Grant] = []
    for member, permission in acls.GRANT_MEMBERS.items():
        raw = params.get(member)
        if raw is None:
            continue
        for item in _split(raw):
            match = _GRANT_ITEM.match(item)
            if match is None:
                raise InvalidArgument("Argument format not recognized",
                                      ArgumentName=_header_name(member), ArgumentValue=raw)
            grants.append(_grantee(ctx, match.group(1), match.group(2).strip(), permission))
    return grants


def _split(raw: str) -> list[str]:
    items, current, quoted = [], [], False
    for char in raw:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [i for i in items if i.strip()]


def _header_name(member: str) -> str:
    return {"GrantFullControl": "x-amz-grant-full-control", "GrantRead": "x-amz-grant-read",
            "GrantReadACP": "x-amz-grant-read-acp", "GrantWrite": "x-amz-grant-write",
            "GrantWriteACP": "x-amz-grant-write-acp"}[member]


def has_header_acl(params: dict) -> bool:
    return params.get("ACL") not in (None, "") or any(
        params.get(m) is not None for m in acls.GRANT_MEMBERS)


def request_grants(ctx, params: dict, owner_canonical: str,
                   bucket_owner_canonical: str | None = None, bucket_level: bool = False
                   ) -> list[acls.Grant] | None:
    """The grants of the canned ACL or grant headers of a request (None: it carries none)."""
    canned = params.get("ACL")
    has_grants = any(params.get(m) is not None for m in acls.GRANT_MEMBERS)
    if canned in (None, "") and not has_grants:
        return None
    if canned not in (None, "") and has_grants:
        raise InvalidRequest("Specifying both Canned ACLs and Header Grants is not allowed")
    if has_grants:
        return _header_grants(ctx, params)
    names = acls.CANNED_BUCKET if bucket_level else acls.CANNED_OBJECT
    if canned not in names and canned not in acls.CANNED:
        raise InvalidArgument(None, ArgumentName="x-amz-acl", ArgumentValue=canned)
    return acls.canned(canned, owner_canonical, bucket_owner_canonical)


def body_grants(ctx, policy: dict) -> list[acls.Grant]:
    """The grants of an AccessControlPolicy body (its Owner is required, as S3 requires it)."""
    if not (policy.get("Owner") or {}).get("ID"):
        raise MalformedACLError()
    grants = []
    items = policy.get("Grants") or []
    if len(items) > MAX_GRANTS:
        raise MalformedACLError()
    for item in items:
        grantee = item.get("Grantee") or {}
        permission = item.get("Permission")
        if permission not in acls.PERMISSIONS:
            raise MalformedACLError()
        kind = _TYPES.get(grantee.get("Type") or "")
        if kind is None:
            raise MalformedACLError()
        value = {"id": grantee.get("ID"), "emailAddress": grantee.get("EmailAddress"),
                 "uri": grantee.get("URI")}[kind]
        if not value:
            raise MalformedACLError()
        grants.append(_grantee(ctx, kind, value.strip(), permission))
    return grants


def check_settable(access: BucketAccess, grants: list[acls.Grant], owner_canonical: str) -> None:
    """Whether the bucket accepts this ACL: not when ACLs are disabled (unless it is the owner's
    full control), not a public one under BlockPublicAcls."""
    if access.ownership == ENFORCED and not acls.owner_full_control_only(
            grants, owner_canonical, access.owner_canonical):
        raise AccessControlListNotSupported()
    if access.block.block_public_acls and acls.is_public(grants):
        raise AccessDenied()


def stored(grants: list[acls.Grant] | None, owner_canonical: str) -> str | None:
    """The stored text of an ACL (None: the default, the owner's FULL_CONTROL only)."""
    if grants is None or grants == acls.owner_grants(owner_canonical):
        return None
    return acls.to_json(grants)


def write_acl(ctx, params: dict, bucket, access: BucketAccess, owner_account: str) -> str | None:
    """The stored ACL of a version a write makes (checked against the bucket; a writer that
    will not own the version needs s3:PutObjectAcl to set more than the owner's full control).
    None: the default."""
    owner_canonical, _ = ac.account_names(ctx, owner_account)
    grants = request_grants(ctx, params, owner_canonical, access.owner_canonical)
    if grants is None:
        return None
    check_settable(access, grants, owner_canonical)
    account = getattr(ctx, "account", None)
    writer = account.account_id if account is not None else None
    if writer != owner_account and not acls.owner_full_control_only(
            grants, owner_canonical, access.owner_canonical):
        ac.authorize(ctx, params, bucket, "s3:PutObjectAcl", params.get("Key"), access=access)
    return stored(grants, owner_canonical)


# --- answers -----------------------------------------------------------------------------------

def _answer(ctx, owner_account: str, grants: list[acls.Grant]) -> dict:
    out = []
    for grant in grants:
        if grant.kind == "id":
            account = ac.account_by_canonical(ctx, grant.value)
            grantee = {"Type": "CanonicalUser", "ID": grant.value}
            if account is not None:
                grantee["DisplayName"] = ac.account_names(ctx, account)[1]
        else:
            grantee = {"Type": "Group", "URI": grant.value}
        out.append({"Grantee": grantee, "Permission": grant.permission})
    return {"Owner": ac.display(ctx, owner_account), "Grants": out}


def _new_grants(ctx, params: dict, owner_canonical: str, bucket_owner_canonical: str,
                bucket_level: bool) -> list[acls.Grant]:
    body = params.get("AccessControlPolicy")
    from_headers = has_header_acl(params)
    if body is not None and from_headers:
        raise UnexpectedContent()
    if body is not None:
        return body_grants(ctx, body)
    grants = request_grants(ctx, params, owner_canonical, bucket_owner_canonical, bucket_level)
    if grants is None:
        raise MissingSecurityHeader(MissingHeaderName="x-amz-acl")
    return grants


# --- GetBucketAcl, PutBucketAcl ----------------------------------------------------------------

async def get_bucket_acl(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    settings = s3_access.bucket_settings(ctx.state.store, bucket.name)
    canonical, _ = ac.account_names(ctx, bucket.account_id)
    grants = acls.from_json(settings.acl)
    if grants is None:
        grants = acls.owner_grants(canonical)
    return _answer(ctx, bucket.account_id, grants)


async def put_bucket_acl(ctx, params: dict) -> dict:
    bucket = ac.authorized_bucket(ctx, params)
    access = ac.bucket_access(ctx, bucket)
    grants = _new_grants(ctx, params, access.owner_canonical, access.owner_canonical, True)
    check_settable(access, grants, access.owner_canonical)
    text = stored(grants, access.owner_canonical)

    async def save(batch) -> None:
        if batch.bucket(bucket.name) is None:
            from s3_api.errors import NoSuchBucket  # noqa: PLC0415
            raise NoSuchBucket(BucketName=bucket.name)
        await s3_access.set_bucket_setting(batch.tx, bucket.name, "acl", text)

    await ctx.state.store.write_alone(save)
    return {}


# --- GetObjectAcl, PutObjectAcl ----------------------------------------------------------------

def _version(ctx, params: dict):
    from s3_api.objects import read_target  # noqa: PLC0415 (objects imports this module)
    return read_target(ctx, params)


async def get_object_acl(ctx, params: dict) -> dict:
    bucket, version = _version(ctx, params)
    access = ac.bucket_access(ctx, bucket)
    owner = version.owner_id if access.acls_enabled else bucket.account_id
    canonical, _ = ac.account_names(ctx, owner)
    grants = acls.from_json(s3_access.object_acl(ctx.state.store, version.version_id)) \
        if access.acls_enabled else None
    out = _answer(ctx, owner, grants if grants is not None else acls.owner_grants(canonical))
    if params.get("VersionId") is not None:
        out["VersionId"] = version.vid
    return out


async def put_object_acl(ctx, params: dict) -> dict:
    bucket, version = _version(ctx, params)
    access = ac.bucket_access(ctx, bucket)
    owner = version.owner_id if access.acls_enabled else bucket.account_id
    canonical, _ = ac.account_names(ctx, owner)
    grants = _new_grants(ctx, params, canonical, access.owner_canonical, False)
    check_settable(access, grants, canonical)
    text = stored(grants, canonical)

    def save(batch) -> None:
        found = batch.find(version.bucket, version.key, version.vid)
        if found is None or found.version_id != version.version_id or found.delete_marker:
            raise MethodNotAllowed() if found is not None and found.delete_marker else \
                S3Error("The object changed while its ACL was being set; please retry.")
        batch.set_acl(version.version_id, text)

    await ctx.state.store.write(save)
    return {}


OPERATIONS = {
    "GetBucketAcl": get_bucket_acl,
    "PutBucketAcl": put_bucket_acl,
    "GetObjectAcl": get_object_acl,
    "PutObjectAcl": put_object_acl,
}
