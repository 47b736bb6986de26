"""Every S3 operation's way to the one access decision (``access.decision``).

- ``action_for``: the IAM action an operation needs (S3's "Required permissions for Amazon S3
  API operations"): one table, with the version-specific action when a request names a version.
- ``condition_context``: the request's condition keys, built in one place.
- ``authorized_bucket`` / ``authorize``: look the bucket up (NoSuchBucket first, as S3), check
  ExpectedBucketOwner, and ask ``decide`` with the bucket's ownership, ACL, policy and public
  access block; a refusal is AccessDenied. A request by anyone but the bucket owner is billed to
  the bucket owner (``ctx.bill_to``).
- ``object_owner``: the owner a new object version gets under the bucket's object ownership.
- ``display``: an account's Owner/Grantee members (canonical id, display name).
"""
from __future__ import annotations

import datetime as dt
import math
import urllib.parse
import weakref

from access import acl as acls
from access.decision import (ALLOW, BUCKET_GOVERNED, ENFORCED, BucketAccess, ObjectAccess,
                             PublicAccessBlock, decide)
from access.model import AccessRequest, Principal, s3_arn
from s3_api.errors import AccessDenied, NoSuchBucket
from storage import s3_access

# --- the IAM action of each operation ----------------------------------------------------------

_VERSIONED = {   # operation: (action, action when the request names a version)
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "DeleteObject": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectAcl": ("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    "PutObjectAcl": ("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "PutObjectTagging": ("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "DeleteObjectTagging": ("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
    "GetObjectAttributes": ("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"),
    "GetObjectTorrent": ("s3:GetObjectTorrent", "s3:GetObjectVersionTorrent"),
}

ACTIONS = {
    # buckets
    "CreateBucket": "s3:CreateBucket",
    "DeleteBucket": "s3:DeleteBucket",
    "HeadBucket": "s3:ListBucket",
    "ListBuckets": "s3:ListAllMyBuckets",
    "GetBucketLocation": "s3:GetBucketLocation",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    # access control
    "GetBucketAcl": "s3:GetBucketAcl",
    "PutBucketAcl": "s3:PutBucketAcl",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "GetBucketPolicyStatus": "s3:GetBucketPolicyStatus",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketOwnershipControls": "s3:GetBucketOwnershipControls",
    "PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "DeleteBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    # bucket configurations
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
    "DeleteBucketCors": "s3:PutBucketCORS",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "DeleteBucketTagging": "s3:PutBucketTagging",
    "GetBucketLifecycle": "s3:GetLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycle": "s3:PutLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
    "GetBucketWebsite": "s3:GetBucketWebsite",
    "PutBucketWebsite": "s3:PutBucketWebsite",
    "DeleteBucketWebsite": "s3:DeleteBucketWebsite",
    "GetBucketLogging": "s3:GetBucketLogging",
    "PutBucketLogging": "s3:PutBucketLogging",
    "GetBucketNotification": "s3:GetBucketNotification",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotification": "s3:PutBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "GetBucketRequestPayment": "s3:GetBucketRequestPayment",
    "PutBucketRequestPayment": "s3:PutBucketRequestPayment",
    "GetBucketAccelerateConfiguration": "s3:GetAccelerateConfiguration",
    "PutBucketAccelerateConfiguration": "s3:PutAccelerateConfiguration",
    "GetBucketReplication": "s3:GetReplicationConfiguration",
    "PutBucketReplication": "s3:PutReplicationConfiguration",
    "DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "GetBucketAnalyticsConfiguration": "s3:GetAnalyticsConfiguration",
    "PutBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "ListBucketAnalyticsConfigurations": "s3:GetAnalyticsConfiguration",
    "GetBucketMetricsConfiguration": "s3:GetMetricsConfiguration",
    "PutBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "ListBucketMetricsConfigurations": "s3:GetMetricsConfiguration",
    "GetBucketInventoryConfiguration": "s3:GetInventoryConfiguration",
    "PutBucketInventoryConfiguration": "s3:PutInventoryConfiguration",
    "DeleteBucketInventoryConfiguration": "s3:PutInventoryConfiguration",
    "ListBucketInventoryConfigurations": "s3:GetInventoryConfiguration",
    "GetBucketIntelligentTieringConfiguration": "s3:GetIntelligentTieringConfiguration",
    "PutBucketIntelligentTieringConfiguration": "s3:PutIntelligentTieringConfiguration",
    "DeleteBucketIntelligentTieringConfiguration": "s3:PutIntelligentTieringConfiguration",
    "ListBucketIntelligentTieringConfigurations": "s3:GetIntelligentTieringConfiguration",
    # objects
    "PutObject": "s3:PutObject",
    "PostObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObjects": "s3:DeleteObject",
    "GetObjectRetention": "s3:GetObjectRetention",
    "PutObjectRetention": "s3:PutObjectRetention",
    "GetObjectLegalHold": "s3:GetObjectLegalHold",
    "PutObjectLegalHold": "s3:PutObjectLegalHold",
    "RestoreObject": "s3:RestoreObject",
    "SelectObjectContent": "s3:GetObject",
}


def action_for(operation: str, params: dict | None = None) -> str:
    """The IAM action ``operation`` needs (a version's own action when ``VersionId`` is given)."""
    versioned = _VERSIONED.get(operation)
    if versioned is not None:
        return versioned[1] if params and params.get("VersionId") else versioned[0]
    found = ACTIONS.get(operation)
    if found is None:       # an operation this table does not know: its name is the action
        return f"s3:{operation}"
    return found


# --- who asks ----------------------------------------------------------------------------------

def principal_of(ctx) -> Principal:
    account = getattr(ctx, "account", None)
    if account is None:
        return Principal()
    return Principal.account(account.account_id, account.canonical_user_id)


# per object store (one per data directory; several in one test process): account id -> names
_ACCOUNTS: "weakref.WeakKeyDictionary[object, dict[str, tuple[str, str]]]" = weakref.WeakKeyDictionary()


def _account_row(store, column: str, value: str) -> tuple | None:
    try:
        rows = store.query(f"SELECT account_id, canonical_user_id, name FROM accounts"
                           f" WHERE {column} = ?", (value,))
    except Exception:       # noqa: BLE001 (a store without the accounts table: tests' own)
        return None
    return rows[0] if rows else None


def account_names(ctx, account_id: str) -> tuple[str, str]:
    """(canonical user id, display name) of an account (cached per store: they never change)."""
    store = ctx.state.store
    try:
        cache = _ACCOUNTS.setdefault(store, {})
    except TypeError:       # a store that cannot be weakly referenced: no cache
        cache = {}
    found = cache.get(account_id)
    if found is None:
        account = getattr(ctx, "account", None)
        if account is not None and account.account_id == account_id:
            found = (account.canonical_user_id, account.display_name)
        else:
            row = _account_row(store, "account_id", account_id)
            if row is None:         # an account this server does not know (not cached)
                return account_id, account_id
            found = (row[1], row[2])
        if len(cache) > 10_000:
            cache.clear()
        cache[account_id] = found
    return found


def display(ctx, account_id: str) -> dict:
    """An Owner (or a CanonicalUser grantee's) members: ID and DisplayName."""
    canonical, name = account_names(ctx, account_id)
    return {"DisplayName": name, "ID": canonical}


def account_by_canonical(ctx, canonical: str) -> str | None:
    row = _account_row(ctx.state.store, "canonical_user_id", canonical)
    return row[0] if row else None


def account_by_email(ctx, email: str) -> tuple[str, str] | None:
    """(account id, canonical id) of the account with this email address (case-insensitive)."""
    try:
        rows = ctx.state.store.query("SELECT account_id, canonical_user_id FROM accounts"
                                     " WHERE lower(email) = lower(?)", (email,))
    except Exception:       # noqa: BLE001 (no email column: no account has one)
        return None
    return tuple(rows[0]) if rows else None


# --- the condition keys of a request -----------------------------------------------------------

_HEADER_KEYS = ("x-amz-acl", "x-amz-grant-full-control", "x-amz-grant-read",
                "x-amz-grant-read-acp", "x-amz-grant-write", "x-amz-grant-write-acp",
                "x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
                "x-amz-server-side-encryption-customer-algorithm", "x-amz-storage-class",
                "x-amz-metadata-directive", "x-amz-copy-source", "x-amz-content-sha256",
                "x-amz-object-ownership", "x-amz-website-redirect-location")


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_context(ctx, params: dict, version=None, request_tags: list | None = None) -> dict:
    """The condition keys of this request, named as AWS documents them (values: strings)."""
    headers = getattr(ctx, "headers", None) or {}
    now = ctx.now()
    out: dict[str, list[str]] = {
        "aws:CurrentTime": [_iso(now)],
        "aws:EpochTime": [str(int(now.timestamp()))],
        "aws:SecureTransport": ["true" if getattr(ctx, "secure", False) else "false"],
    }
    peer = getattr(ctx, "remote", None)
    if peer:
        out["aws:SourceIp"] = [peer]
    for header, key in (("Referer", "aws:Referer"), ("User-Agent", "aws:UserAgent")):
        value = headers.get(header)
        if value is not None:
            out[key] = [value]
    for name in _HEADER_KEYS:
        value = headers.get(name)
        if value is not None:
            out[f"s3:{name}"] = [value]
    auth = getattr(ctx, "auth", None)
    if getattr(auth, "signature_version", None):
        v4 = auth.signature_version == "v4"
        out["s3:signatureversion"] = ["AWS4-HMAC-SHA256" if v4 else "AWS"]
        out["s3:authType"] = ["REST-QUERY-STRING" if auth.presigned else "REST-HEADER"]
        if v4 and getattr(auth, "amz_date", None):
            try:
                signed = dt.datetime.strptime(auth.amz_date, "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=dt.timezone.utc)
                out["s3:signatureAge"] = [str(max(0, int((now - signed).total_seconds() * 1000)))]
            except ValueError:
                pass
    if getattr(ctx, "operation", "") == "PostObject":     # a browser form's signature
        out["s3:authType"] = ["POST"]
    for member, key in (("Prefix", "s3:prefix"), ("Delimiter", "s3:delimiter"),
                        ("MaxKeys", "s3:max-keys"), ("VersionId", "s3:VersionId"),
                        ("ObjectLockMode", "s3:object-lock-mode"),
                        ("ObjectLockLegalHoldStatus", "s3:object-lock-legal-hold")):
        value = params.get(member)
        if value is not None:
            out[key] = [str(value)]
    if params.get("ACL") is not None and "s3:x-amz-acl" not in out:
        out["s3:x-amz-acl"] = [params["ACL"]]
    until = params.get("ObjectLockRetainUntilDate")
    retention = params.get("Retention") or {}
    if retention.get("Mode"):
        out["s3:object-lock-mode"] = [retention["Mode"]]
        until = retention.get("RetainUntilDate") or until
    if isinstance(until, dt.datetime):
        if until.tzinfo is None:
            until = until.replace(tzinfo=dt.timezone.utc)
        out["s3:object-lock-retain-until-date"] = [_iso(until)]
        days = math.ceil((until - now).total_seconds() / 86400)
        out["s3:object-lock-remaining-retention-days"] = [str(max(0, days))]
    legal = (params.get("LegalHold") or {}).get("Status")
    if legal:
        out["s3:object-lock-legal-hold"] = [legal]
    if version is not None and getattr(version, "tags", None):
        for key, value in version.tag_list():
            out[f"s3:ExistingObjectTag/{key}"] = [value]
    if request_tags is None and params.get("Tagging") is not None:
        tagging = params["Tagging"]
        if isinstance(tagging, str):
            request_tags = urllib.parse.parse_qsl(tagging, keep_blank_values=True)
        elif isinstance(tagging, dict):
            request_tags = [(t.get("Key"), t.get("Value")) for t in tagging.get("TagSet") or []]
    if request_tags:
        for key, value in request_tags:
            out[f"s3:RequestObjectTag/{key}"] = [value or ""]
        out["s3:RequestObjectTagKeys"] = [k for k, _ in request_tags]
    return out


# --- the bucket's settings, the decision -------------------------------------------------------

_POLICIES: dict[tuple[str, str], object] = {}


def _policy(bucket: str, text: str | None):
    if not text:
        return None
    found = _POLICIES.get((bucket, text))
    if found is None:
        from access.policy import parse_policy  # noqa: PLC0415
        found = parse_policy(text, bucket)
        if len(_POLICIES) > 1000:
            _POLICIES.clear()
        _POLICIES[(bucket, text)] = found
    return found


_ACCESS: dict[tuple, BucketAccess] = {}


def bucket_access(ctx, bucket, row: tuple | None = None) -> BucketAccess:
    """The bucket's access settings as the decision takes them (one point query, unless the
    caller read the settings ``row`` already with the bucket; the parsed form is kept per
    settings row, never changed: a changed row is another key)."""
    if row is None:
        row = s3_access.settings_row(ctx.state.store, bucket.name)
    key = (bucket.name, bucket.account_id, row)
    found = _ACCESS.get(key)
    if found is None:
        settings = s3_access.BucketSettings(*row)
        canonical, _ = account_names(ctx, bucket.account_id)
        found = BucketAccess(bucket.account_id, canonical, settings.ownership,
                             acls.from_json(settings.acl), _policy(bucket.name, settings.policy),
                             PublicAccessBlock.from_members(settings.block()))
        if len(_ACCESS) > 4096:
            _ACCESS.clear()
        _ACCESS[key] = found
    return found


def check_expected_owner(params: dict, bucket, member: str = "ExpectedBucketOwner") -> None:
    expected = params.get(member)
    if expected and expected != bucket.account_id:
        raise AccessDenied()


def object_access(ctx, version) -> ObjectAccess | None:
    if version is None or getattr(version, "delete_marker", 0):
        return None
    canonical, _ = account_names(ctx, version.owner_id)
    return ObjectAccess(version.owner_id, canonical,
                        lambda: acls.from_json(s3_access.object_acl(ctx.state.store,
                                                                    version.version_id)))


def allowed(ctx, params: dict, bucket, action: str, key: str | None = None, version=None,
            access: BucketAccess | None = None, request_tags: list | None = None) -> bool:
    """Whether the decision allows ``action`` on the bucket (``key``: on that object)."""
    access = access or bucket_access(ctx, bucket)
    account = getattr(ctx, "account", None)
    if access.policy is None and account is not None and account.account_id == bucket.account_id:
        # the owner's hot path, what ``decide`` answers without a policy: the bucket owner may
        # do anything to the bucket and to the objects it owns (all of them when enforced)
        if key is None or action in BUCKET_GOVERNED or not access.acls_enabled or \
                version is None or version.owner_id == account.account_id:
            return True
    principal = principal_of(ctx)
    # condition keys matter to a policy only: none, none to build (the owner's hot path)
    context = condition_context(ctx, params, version, request_tags) if access.policy else {}
    if context:
        context["aws:ResourceAccount"] = context["s3:ResourceAccount"] = [bucket.account_id]
    request = AccessRequest(principal, action, s3_arn(bucket.name, key), context)
    return decide(request, access, object_access(ctx, version),
                  on_object=key is not None) == ALLOW


def authorize(ctx, params: dict, bucket, action: str | None = None, key: str | None = None,
              version=None, access: BucketAccess | None = None,
              expected_member: str = "ExpectedBucketOwner", request_tags: list | None = None
              ) -> BucketAccess:
    """AccessDenied unless the decision allows the request (``action``: the operation's own by
    default); bills a request by anyone but the bucket owner to the bucket owner."""
    check_expected_owner(params, bucket, expected_member)
    account = getattr(ctx, "account", None)
    access = access or bucket_access(ctx, bucket)
    action = action or action_for(ctx.operation, params)
    if not allowed(ctx, params, bucket, action, key, version, access, request_tags):
        raise AccessDenied()
    if account is None or account.account_id != bucket.account_id:
        ctx.bill_to = bucket.account_id
    return access


# what a write carries besides its bytes, and the permission each needs too (S3's "Required
# permissions": PutObject with x-amz-tagging needs s3:PutObjectTagging, and so on)
_WRITE_EXTRAS = (("Tagging", "s3:PutObjectTagging"), ("ObjectLockMode", "s3:PutObjectRetention"),
                 ("ObjectLockRetainUntilDate", "s3:PutObjectRetention"),
                 ("ObjectLockLegalHoldStatus", "s3:PutObjectLegalHold"))


def authorize_write_extras(ctx, params: dict, bucket, key: str, access: BucketAccess) -> None:
    done = set()
    for member, action in _WRITE_EXTRAS:
        if params.get(member) is not None and action not in done:
            done.add(action)
            authorize(ctx, params, bucket, action, key, access=access)


def authorized_bucket(ctx, params: dict, action: str | None = None):
    """The request's bucket (NoSuchBucket when there is none) once the decision allows the
    operation on it."""
    name = params.get("Bucket")
    bucket = ctx.state.store.bucket(name) if name else None
    if bucket is None:
        raise NoSuchBucket(BucketName=name)
    authorize(ctx, params, bucket, action)
    return bucket


def object_owner(ctx, bucket, access: BucketAccess, params: dict) -> str:
    """The account that owns a version this request writes: the bucket owner when ACLs are
    disabled (BucketOwnerEnforced) or under BucketOwnerPreferred with the
    bucket-owner-full-control canned ACL; else the writer (ObjectWriter)."""
    account = getattr(ctx, "account", None)
    if account is None or access.ownership == ENFORCED:
        return bucket.account_id
    if access.ownership == "BucketOwnerPreferred" and \
            params.get("ACL") == "bucket-owner-full-control":
        return bucket.account_id
    return account.account_id


def list_denied_as_missing(ctx, params: dict, bucket, access: BucketAccess | None = None) -> bool:
    """S3 answers a missing key with 404 only to those who may list the bucket; others get 403
    (AccessDenied), so that a missing key tells them nothing."""
    account = getattr(ctx, "account", None)
    if account is not None and account.account_id == bucket.account_id:
        return False
    return not allowed(ctx, {}, bucket, "s3:ListBucket", access=access)

