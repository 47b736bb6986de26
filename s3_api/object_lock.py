"""Object Lock: Put/GetObjectLockConfiguration, Put/GetObjectRetention, Put/GetObjectLegalHold,
the x-amz-object-lock-* headers of PutObject/CopyObject/CreateMultipartUpload/POST Object, and
the refusal to delete a locked version.

A bucket gets object lock at creation (``x-amz-bucket-object-lock-enabled: true``, which also
enables versioning) or later, once versioning is Enabled, through PutObjectLockConfiguration; it
never loses it, and its versioning can no longer be suspended. The bucket's configuration (with
its optional default retention) is the JSON of ``s3_buckets.object_lock``; a version's retention
(mode, retain-until instant) and legal hold (0 never set, 1 ON, 2 OFF) are columns of the version
and move with it (``storage.object_versions``), so setting them is one metadata commit.

Retention is judged by the server's clock (``ctx.now()``: the app's injectable clock): a version
under COMPLIANCE retention cannot be deleted, nor its retention shortened or its mode changed,
until the date passes; GOVERNANCE retention (deleting, shortening, changing its mode) yields to
``x-amz-bypass-governance-retention: true``, extending it needs nothing;
a legal hold ON forbids deletion whatever the retention. Deleting without a version id (a delete
marker) is always allowed, as in S3. Requests that set a lock need Content-MD5 or a checksum.
"""
from __future__ import annotations

import datetime as dt
import json

from s3_api.buckets import owned_bucket
from s3_api.errors import (AccessDenied, InvalidArgument, InvalidBucketState, InvalidRequest,
                           InvalidRetentionPeriod, MalformedXML, NoSuchBucket,
                           NoSuchObjectLockConfiguration, ObjectLockConfigurationNotFoundError)
from s3_api.metadata import EPOCH, now_us
from storage.objects import Batch, Bucket, ObjectVersion

MODES = ("GOVERNANCE", "COMPLIANCE")
LEGAL_HOLD = {"ON": 1, "OFF": 2}
LEGAL_HOLD_NAMES = {1: "ON", 2: "OFF"}
DAY_US = 86400 * 1_000_000
MAX_DAYS, MAX_YEARS = 36500, 100
LOCKED = "Access Denied because object protected by object lock."
NO_LOCK = "Bucket is missing Object Lock Configuration"


def to_us(value) -> int:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument("The retain until date is not a valid date.",
                                  ArgumentName="RetainUntilDate", ArgumentValue=value) from None
    if not isinstance(value, dt.datetime):
        raise MalformedXML()
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def config_of(bucket: Bucket) -> dict | None:
    return json.loads(bucket.object_lock) if bucket.object_lock else None


def require_checksum(ctx, what: str = "this request") -> None:
    """Content-MD5 or a flexible checksum must come with the request (S3's rule for object lock
    and the configuration PUTs whose model says ``requestChecksumRequired``)."""
    headers = ctx.headers if ctx.headers is not None else {}
    names = {k.lower() for k in headers.keys()}
    if "content-md5" in names or any(n.startswith("x-amz-checksum-") for n in names) \
            or "x-amz-sdk-checksum-algorithm" in names:
        return
    if "x-amz-trailer" in names and "x-amz-checksum" in headers.get("x-amz-trailer", "").lower():
        return
    raise InvalidRequest(f"Content-MD5 OR x-amz-checksum- HTTP header is required for {what}")


# --- the locks a new version gets ----------------------------------------------------------------

def new_version_lock(ctx, params: dict, bucket: Bucket, need_checksum: bool = True) -> dict:
    """lock_mode, lock_until_us, legal_hold of a version PUT/COPY/multipart creates, from the
    x-amz-object-lock-* headers and the bucket's default retention (``need_checksum``: the
    request must carry Content-MD5 or a checksum, as PutObject must)."""
    mode = params.get("ObjectLockMode")
    until = params.get("ObjectLockRetainUntilDate")
    hold = params.get("ObjectLockLegalHoldStatus")
    config = config_of(bucket)
    explicit = mode is not None or until is not None or hold is not None
    if explicit and config is None:
        raise InvalidRequest(NO_LOCK)
    if config is None:
        return {}
    out: dict = {}
    now = now_us(ctx)
    if mode is not None or until is not None:
        if mode is None or until is None:
            raise InvalidArgument("x-amz-object-lock-retain-until-date and x-amz-object-lock-mode"
                                  " must both be supplied")
        if mode not in MODES:
            raise InvalidArgument("Unknown wormMode directive.", ArgumentName="x-amz-object-lock-mode",
                                  ArgumentValue=mode)
        until_us = to_us(until)
        if until_us <= now:
            raise InvalidArgument("The retain until date must be in the future!")
        out.update(lock_mode=mode, lock_until_us=until_us)
    elif config.get("mode"):
        days = config.get("days") or 0
        if config.get("years"):
            start = from_us(now)
            try:
                end = start.replace(year=start.year + config["years"])
            except ValueError:      # 29 February
                end = start.replace(year=start.year + config["years"], day=28)
            until_us = to_us(end)
        else:
            until_us = now + days * DAY_US
        out.update(lock_mode=config["mode"], lock_until_us=until_us)
    if hold is not None:
        if hold not in LEGAL_HOLD:
            raise InvalidArgument("Legal Hold must be either of 'ON' or 'OFF'",
                                  ArgumentName="x-amz-object-lock-legal-hold", ArgumentValue=hold)
        out["legal_hold"] = LEGAL_HOLD[hold]
    if need_checksum and (explicit or out) and params.get("CopySource") is None:
        require_checksum(ctx, "Put Object requests with Object Lock parameters")
    return out


def check_delete(version: ObjectVersion, bypass: bool, now: int) -> None:
    """Refuse to remove a locked version for good (AccessDenied, as S3)."""
    if version.delete_marker:
        return
    if version.legal_hold == 1:
        raise AccessDenied(LOCKED)
    if version.lock_mode and version.lock_until_us and version.lock_until_us > now:
        if version.lock_mode == "COMPLIANCE" or not bypass:
            raise AccessDenied(LOCKED)


def is_locked(version: ObjectVersion, now: int) -> bool:
    return version.legal_hold == 1 or bool(
        version.lock_mode and version.lock_until_us and version.lock_until_us > now)


# --- Put/GetObjectLockConfiguration --------------------------------------------------------------

def _parse_configuration(config) -> dict:
    if not isinstance(config, dict) or config.get("ObjectLockEnabled") != "Enabled":
        raise MalformedXML()
    stored: dict = {"enabled": True}
    rule = config.get("Rule")
    if rule is None:
        return stored
    retention = rule.get("DefaultRetention") if isinstance(rule, dict) else None
    if not isinstance(retention, dict):
        raise MalformedXML()
    mode, days, years = retention.get("Mode"), retention.get("Days"), retention.get("Years")
    if mode not in MODES or (days is None) == (years is None):
        raise MalformedXML()
    value = days if days is not None else years
    if int(value) <= 0:
        raise InvalidRetentionPeriod("Default retention period must be a positive integer value.")
    if (days is not None and int(days) > MAX_DAYS) or (years is not None and int(years) > MAX_YEARS):
        raise InvalidRetentionPeriod("Default retention period is too large.")
    stored["mode"] = mode
    stored["days" if days is not None else "years"] = int(value)
    return stored


async def put_object_lock_configuration(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    require_checksum(ctx)
    stored = _parse_configuration(params.get("ObjectLockConfiguration"))
    text = json.dumps(stored, sort_keys=True)

    async def change(batch: Batch) -> None:
        current = batch.bucket(bucket.name)
        if current is None:
            raise NoSuchBucket(BucketName=bucket.name)
        if current.object_lock is None and current.status != "Enabled":
            raise InvalidBucketState("Versioning must be 'Enabled' on the bucket to apply a Object"
                                     " Lock configuration")
        await batch.tx.execute("UPDATE s3_buckets SET object_lock = ? WHERE name = ?",
                               (text, bucket.name))
        batch.forget_bucket(bucket.name)

    await ctx.state.store.write_alone(change)
    return {}


async def get_object_lock_configuration(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    config = config_of(bucket)
    if config is None:
        raise ObjectLockConfigurationNotFoundError(BucketName=bucket.name)
    out: dict = {"ObjectLockEnabled": "Enabled"}
    if config.get("mode"):
        retention = {"Mode": config["mode"]}
        if config.get("days"):
            retention["Days"] = config["days"]
        else:
            retention["Years"] = config["years"]
        out["Rule"] = {"DefaultRetention": retention}
    return {"ObjectLockConfiguration": out}


# --- retention and legal hold of one version --------------------------------------------------

def _locked_target(ctx, params: dict):
    from s3_api.objects import read_target  # noqa: PLC0415 (objects imports this module)
    bucket, version = read_target(ctx, params)
    if config_of(bucket) is None:
        raise InvalidRequest(NO_LOCK)
    return bucket, version


async def _update(ctx, bucket: Bucket, version: ObjectVersion, change) -> None:
    """Apply ``change(current_version) -> new version or raise`` in one commit."""
    def apply(batch: Batch) -> None:
        found = batch.find(bucket.name, version.key, version.vid)
        if found is None:
            from s3_api.errors import NoSuchVersion  # noqa: PLC0415
            raise NoSuchVersion(Key=version.key, VersionId=version.vid)
        batch.update(found, change(found))

    await ctx.state.store.write(apply)


async def put_object_retention(ctx, params: dict) -> dict:
    retention = params.get("Retention")
    if not isinstance(retention, dict):
        raise MalformedXML()
    mode, until = retention.get("Mode"), retention.get("RetainUntilDate")
    if mode is not None and mode not in MODES:
        raise MalformedXML()
    if (mode is None) != (until is None):
        raise MalformedXML()
    bucket, version = _locked_target(ctx, params)
    require_checksum(ctx)
    now = now_us(ctx)
    until_us = to_us(until) if until is not None else None
    if until_us is not None and until_us <= now:
        raise InvalidArgument("The retain until date must be in the future!")
    bypass = bool(params.get("BypassGovernanceRetention"))

    def change(found: ObjectVersion) -> ObjectVersion:
        active = found.lock_mode and found.lock_until_us and found.lock_until_us > now
        if active:
            weaker = until_us is None or until_us < found.lock_until_us
            if found.lock_mode == "COMPLIANCE" and (weaker or mode != "COMPLIANCE"):
                raise AccessDenied(LOCKED)
            if found.lock_mode == "GOVERNANCE" and (weaker or mode != "GOVERNANCE") \
                    and not bypass:
                raise AccessDenied(LOCKED)      # altering GOVERNANCE retention needs the bypass
        return found.copy(lock_mode=mode, lock_until_us=until_us)

    await _update(ctx, bucket, version, change)
    return {}


async def get_object_retention(ctx, params: dict) -> dict:
    _, version = _locked_target(ctx, params)
    if not version.lock_mode:
        raise NoSuchObjectLockConfiguration()
    return {"Retention": {"Mode": version.lock_mode,
                          "RetainUntilDate": from_us(version.lock_until_us)}}


async def put_object_legal_hold(ctx, params: dict) -> dict:
    hold = params.get("LegalHold")
    status = hold.get("Status") if isinstance(hold, dict) else None
    if status not in LEGAL_HOLD:
        raise MalformedXML()
    bucket, version = _locked_target(ctx, params)
    require_checksum(ctx)
    await _update(ctx, bucket, version, lambda found: found.copy(legal_hold=LEGAL_HOLD[status]))
    return {}


async def get_object_legal_hold(ctx, params: dict) -> dict:
    _, version = _locked_target(ctx, params)
    if not version.legal_hold:
        raise NoSuchObjectLockConfiguration()
    return {"LegalHold": {"Status": LEGAL_HOLD_NAMES[version.legal_hold]}}


OPERATIONS = {
    "PutObjectLockConfiguration": put_object_lock_configuration,
    "GetObjectLockConfiguration": get_object_lock_configuration,
    "PutObjectRetention": put_object_retention,
    "GetObjectRetention": get_object_retention,
    "PutObjectLegalHold": put_object_legal_hold,
    "GetObjectLegalHold": get_object_legal_hold,
}
