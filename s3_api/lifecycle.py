"""Lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration, validated as S3 validates
it, and the ``x-amz-expiration`` header of objects a rule will expire.

A configuration is kept as the JSON of its rules in ``s3_buckets.lifecycle`` (dates as ISO text);
``s3_api.lifecycle_runner`` executes it. Rules filter by prefix (the rule's legacy ``Prefix`` or
its ``Filter``), one tag, object size, or an ``And`` of them. Actions: Expiration (Days, Date or
ExpiredObjectDeleteMarker), NoncurrentVersionExpiration (NoncurrentDays, NewerNoncurrentVersions),
AbortIncompleteMultipartUpload, and Transitions / NoncurrentVersionTransitions (validated, kept and
reported; Nimbo has one storage class, so they move no data).

Days are S3's: an object expires at the first midnight (UTC) at least ``Days`` days after it was
written. The length of a day is configurable (``S3State.day_us``; tests shorten it) and
midnights are multiples of it since the epoch.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

from s3_api.buckets import owned_bucket
from s3_api.errors import (InvalidArgument, InvalidRequest, MalformedXML, NoSuchBucket,
                           NoSuchLifecycleConfiguration)
from s3_api.metadata import EPOCH
from s3_api.object_lock import require_checksum
from storage.objects import Batch, Bucket, ObjectVersion

MAX_RULES = 1000
MAX_ID = 255
TRANSITION_CLASSES = {"GLACIER", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                      "DEEP_ARCHIVE", "GLACIER_IR"}
_MIN_DAYS_30 = {"STANDARD_IA", "ONEZONE_IA"}
DAY_US = 86400 * 1_000_000


# --- validation ------------------------------------------------------------------------------

def _positive(value, message: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MalformedXML() from None
    if number <= 0:
        raise InvalidArgument(message)
    return number


def _date(value, action: str) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise MalformedXML() from None
    if not isinstance(value, dt.datetime):
        raise MalformedXML()
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    if (value.hour, value.minute, value.second, value.microsecond) != (0, 0, 0, 0):
        raise InvalidArgument(f"'Date' must be at midnight GMT")
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _filter(rule: dict) -> dict:
    """The rule's filter as {prefix, tags: [[k, v]], gt, lt}."""
    has_prefix, has_filter = "Prefix" in rule, isinstance(rule.get("Filter"), dict)
    if has_prefix and has_filter:
        raise MalformedXML()
    if not has_prefix and not has_filter:
        raise MalformedXML()
    if has_prefix:
        return {"prefix": rule.get("Prefix") or "", "tags": []}
    spec = rule["Filter"]
    present = [k for k in ("Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan", "And")
               if spec.get(k) is not None]
    if len(present) > 1:
        raise MalformedXML()
    out: dict = {"prefix": spec.get("Prefix") or "", "tags": []}
    if spec.get("Tag") is not None:
        out["tags"] = [_tag(spec["Tag"])]
    and_ = spec.get("And")
    if and_ is not None:
        out["prefix"] = and_.get("Prefix") or ""
        out["tags"] = [_tag(t) for t in and_.get("Tags") or []]
        spec = and_
    for name, short in (("ObjectSizeGreaterThan", "gt"), ("ObjectSizeLessThan", "lt")):
        if spec.get(name) is not None:
            size = int(spec[name])
            if size < 0:
                raise InvalidArgument(f"'{name}' should be a non-negative value")
            out[short] = size
    if out.get("gt") is not None and out.get("lt") is not None and out["gt"] >= out["lt"]:
        raise InvalidArgument("'ObjectSizeGreaterThan' must be less than 'ObjectSizeLessThan'")
    keys = [k for k, _ in out["tags"]]
    if len(keys) != len(set(keys)):
        raise InvalidArgument("Duplicate Tag Keys are not allowed.")
    return out


def _tag(tag) -> list:
    if not isinstance(tag, dict) or not tag.get("Key"):
        raise MalformedXML()
    return [tag["Key"], tag.get("Value") or ""]


def _new_rule_id() -> str:
    return base64.b64encode(str(uuid.uuid4()).encode()).decode().rstrip("=")


def _rule(rule) -> dict:
    if not isinstance(rule, dict):
        raise MalformedXML()
    rule_id = rule.get("ID") or _new_rule_id()      # S3 names a rule given without an ID
    if len(rule_id) > MAX_ID:
        raise InvalidArgument("ID length should not exceed allowed limit of 255")
    status = rule.get("Status")
    if status not in ("Enabled", "Disabled"):
        raise MalformedXML()
    out: dict = {"id": rule_id, "status": status, "filter": _filter(rule),
                 "legacy_prefix": "Prefix" in rule}
    tagged = bool(out["filter"]["tags"])
    expiration = rule.get("Expiration")
    if expiration is not None:
        given = [k for k in ("Date", "Days", "ExpiredObjectDeleteMarker")
                 if expiration.get(k) is not None]
        if len(given) != 1:
            raise MalformedXML()
        if "Days" in given:
            out["days"] = _positive(expiration["Days"],
                                    "'Days' for Expiration action must be a positive integer")
        elif "Date" in given:
            out["date"] = _date(expiration["Date"], "Expiration")
        else:
            if tagged:
                raise InvalidRequest("ExpiredObjectDeleteMarker cannot be specified with Tags.")
            out["expired_marker"] = bool(expiration["ExpiredObjectDeleteMarker"])
    noncurrent = rule.get("NoncurrentVersionExpiration")
    if noncurrent is not None:
        entry: dict = {}
        if noncurrent.get("NoncurrentDays") is None:
            raise MalformedXML()
        entry["days"] = _positive(noncurrent["NoncurrentDays"], "'NoncurrentDays' for"
                                  " NoncurrentVersionExpiration action must be a positive integer")
        if noncurrent.get("NewerNoncurrentVersions") is not None:
            newer = int(noncurrent["NewerNoncurrentVersions"])
            if not 1 <= newer <= 100:
                raise InvalidArgument("NewerNoncurrentVersions must be between 1 and 100")
            entry["newer"] = newer
        out["noncurrent"] = entry
    abort = rule.get("AbortIncompleteMultipartUpload")
    if abort is not None:
        if tagged:
            raise InvalidRequest("AbortIncompleteMultipartUpload cannot be specified with Tags.")
        out["abort_days"] = _positive(abort.get("DaysAfterInitiation"), "'DaysAfterInitiation'"
                                      " for AbortIncompleteMultipartUpload action must be a"
                                      " positive integer")
    out["transitions"] = [_transition(t, "Days", "Date") for t in rule.get("Transitions") or []]
    out["noncurrent_transitions"] = [_transition(t, "NoncurrentDays", None)
                                     for t in rule.get("NoncurrentVersionTransitions") or []]
    if not any(k in out for k in ("days", "date", "expired_marker", "noncurrent", "abort_days")) \
            and not out["transitions"] and not out["noncurrent_transitions"]:
        raise InvalidRequest("At least one action needs to be specified in a rule")
    _check_conflicts(out)
    return out


def _transition(spec, days_name: str, date_name: str | None) -> dict:
    if not isinstance(spec, dict):
        raise MalformedXML()
    storage = spec.get("StorageClass")
    if storage not in TRANSITION_CLASSES:
        raise MalformedXML()
    out: dict = {"storage_class": storage}
    has_days = spec.get(days_name) is not None
    has_date = date_name is not None and spec.get(date_name) is not None
    if has_days == has_date:
        raise MalformedXML()
    if has_date:
        out["date"] = _date(spec[date_name], "Transition")
    else:
        days = int(spec[days_name])
        if days < 0:
            raise InvalidArgument(f"'{days_name}' in Transition action must be nonnegative")
        if storage in _MIN_DAYS_30 and days < 30:
            raise InvalidArgument(f"'{days_name}' in {'the NoncurrentVersion' if date_name is None else ''}"
                                  f"Transition action must be greater than or equal to 30 for"
                                  f" storageClass '{storage}'")
        out["days"] = days
    if date_name is None and spec.get("NewerNoncurrentVersions") is not None:
        out["newer"] = int(spec["NewerNoncurrentVersions"])
    return out


def _check_conflicts(rule: dict) -> None:
    """Actions of one rule that contradict each other, refused as S3 refuses them."""
    prefix = rule["filter"]["prefix"]
    dated = [t for t in rule["transitions"] if "date" in t]
    if ("days" in rule and dated) or ("date" in rule and len(dated) < len(rule["transitions"])):
        raise InvalidRequest("Found mixed 'Date' and 'Days' based Expiration and Transition"
                             f" actions in lifecycle rule for prefix '{prefix}'")
    if "days" in rule:
        for transition in rule["transitions"]:
            if transition["days"] >= rule["days"]:
                raise InvalidArgument(f"'Days' in the Expiration action for filter '{prefix}'"
                                      " must be greater than 'Days' in the Transition action")
    if "noncurrent" in rule:
        for transition in rule["noncurrent_transitions"]:
            if transition["days"] >= rule["noncurrent"]["days"]:
                raise InvalidArgument("'NoncurrentDays' in the NoncurrentVersionExpiration action"
                                      f" for filter '{prefix}' must be greater than"
                                      " 'NoncurrentDays' in the NoncurrentVersionTransition action")
    classes = [t["storage_class"] for t in rule["transitions"]]
    if len(classes) != len(set(classes)):
        raise InvalidArgument("'StorageClass' must be different for 'Transition' actions in same"
                              " 'Rule'")


def parse_configuration(config) -> list[dict]:
    if not isinstance(config, dict) or not isinstance(config.get("Rules"), list):
        raise MalformedXML()
    rules = config["Rules"]
    if not 1 <= len(rules) <= MAX_RULES:
        raise MalformedXML()
    parsed = [_rule(r) for r in rules]
    ids = [r["id"] for r in parsed if r["id"]]
    if len(ids) != len(set(ids)):
        raise InvalidArgument("Rule ID must be unique. Found same ID for more than one rule")
    return parsed


# --- the operations ------------------------------------------------------------------------

async def _store(ctx, bucket: Bucket, text: str | None) -> None:
    async def change(batch: Batch) -> None:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await batch.tx.execute("UPDATE s3_buckets SET lifecycle = ? WHERE name = ?",
                               (text, bucket.name))
        batch.forget_bucket(bucket.name)

    await ctx.state.store.write_alone(change)


async def put_bucket_lifecycle_configuration(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    require_checksum(ctx)
    rules = parse_configuration(params.get("LifecycleConfiguration"))
    await _store(ctx, bucket, json.dumps(rules, sort_keys=True))
    return {"TransitionDefaultMinimumObjectSize": "all_storage_classes_128K"}


def _wire_filter(rule: dict) -> dict:
    spec = rule["filter"]
    if rule.get("legacy_prefix"):
        return {"Prefix": spec["prefix"]}
    parts = int(bool(spec["prefix"])) + len(spec["tags"]) + int(spec.get("gt") is not None) + \
        int(spec.get("lt") is not None)
    sizes = {n: spec[s] for n, s in (("ObjectSizeGreaterThan", "gt"), ("ObjectSizeLessThan", "lt"))
             if spec.get(s) is not None}
    if parts > 1:
        and_: dict = {**sizes}
        if spec["prefix"]:
            and_["Prefix"] = spec["prefix"]
        if spec["tags"]:
            and_["Tags"] = [{"Key": k, "Value": v} for k, v in spec["tags"]]
        return {"And": and_}
    if spec["tags"]:
        return {"Tag": {"Key": spec["tags"][0][0], "Value": spec["tags"][0][1]}}
    if sizes:
        return sizes
    return {"Prefix": spec["prefix"]}


def _wire_rule(rule: dict) -> dict:
    out: dict = {"Status": rule["status"]}
    if rule["id"]:
        out["ID"] = rule["id"]
    if rule.get("legacy_prefix"):
        out["Prefix"] = rule["filter"]["prefix"]
    else:
        out["Filter"] = _wire_filter(rule)
    if "days" in rule:
        out["Expiration"] = {"Days": rule["days"]}
    elif "date" in rule:
        out["Expiration"] = {"Date": _parse_date(rule["date"])}
    elif "expired_marker" in rule:
        out["Expiration"] = {"ExpiredObjectDeleteMarker": rule["expired_marker"]}
    if "noncurrent" in rule:
        entry = {"NoncurrentDays": rule["noncurrent"]["days"]}
        if "newer" in rule["noncurrent"]:
            entry["NewerNoncurrentVersions"] = rule["noncurrent"]["newer"]
        out["NoncurrentVersionExpiration"] = entry
    if "abort_days" in rule:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule["abort_days"]}
    if rule["transitions"]:
        out["Transitions"] = [
            {"StorageClass": t["storage_class"],
             **({"Date": _parse_date(t["date"])} if "date" in t else {"Days": t["days"]})}
            for t in rule["transitions"]]
    if rule["noncurrent_transitions"]:
        out["NoncurrentVersionTransitions"] = [
            {"StorageClass": t["storage_class"], "NoncurrentDays": t["days"],
             **({"NewerNoncurrentVersions": t["newer"]} if "newer" in t else {})}
            for t in rule["noncurrent_transitions"]]
    return out


def _parse_date(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def get_bucket_lifecycle_configuration(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    if not bucket.lifecycle:
        raise NoSuchLifecycleConfiguration(BucketName=bucket.name)
    return {"Rules": [_wire_rule(r) for r in rules_of(bucket)],
            "TransitionDefaultMinimumObjectSize": "all_storage_classes_128K"}


async def delete_bucket_lifecycle(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    await _store(ctx, bucket, None)
    return {"__status__": 204}


# --- rules at work -------------------------------------------------------------------------------

_PARSED: dict[str, list[dict]] = {}


def rules_of(bucket: Bucket) -> list[dict]:
    """The bucket's rules (parsed once per distinct configuration text)."""
    if not bucket.lifecycle:
        return []
    rules = _PARSED.get(bucket.lifecycle)
    if rules is None:
        if len(_PARSED) > 256:
            _PARSED.clear()
        rules = _PARSED[bucket.lifecycle] = json.loads(bucket.lifecycle)
    return rules


def matches(rule: dict, key: str, size: int, tags: list[tuple[str, str]]) -> bool:
    spec = rule["filter"]
    if not key.startswith(spec["prefix"]):
        return False
    if spec.get("gt") is not None and not size > spec["gt"]:
        return False
    if spec.get("lt") is not None and not size < spec["lt"]:
        return False
    if spec["tags"]:
        have = dict(tags)
        return all(have.get(k) == v for k, v in spec["tags"])
    return True


def midnight_after(at_us: int, days: int, day_us: int) -> int:
    """The first midnight at least ``days`` days after ``at_us`` (S3's rounding)."""
    due = at_us + days * day_us
    return -(-due // day_us) * day_us


def date_us(text: str) -> int:
    delta = _parse_date(text) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000


def expiry(bucket: Bucket, version: ObjectVersion, day_us: int) -> tuple[int, str] | None:
    """(instant, rule id) of the earliest Expiration rule that will expire this current version."""
    best = None
    for rule in rules_of(bucket):
        if rule["status"] != "Enabled" or ("days" not in rule and "date" not in rule):
            continue
        if not matches(rule, version.key, version.size, version.tag_list()):
            continue
        when = midnight_after(version.modified_us, rule["days"], day_us) if "days" in rule \
            else date_us(rule["date"])
        if best is None or when < best[0]:
            best = (when, rule["id"])
    return best


def expiration_header(bucket: Bucket, version: ObjectVersion, day_us: int) -> str | None:
    """``x-amz-expiration``: ``expiry-date="<HTTP date>", rule-id="<id>"``."""
    found = expiry(bucket, version, day_us)
    if found is None:
        return None
    when = EPOCH + dt.timedelta(microseconds=found[0])
    return (f'expiry-date="{when.strftime("%a, %d %b %Y %H:%M:%S GMT")}",'
            f' rule-id="{found[1]}"')


OPERATIONS = {
    "PutBucketLifecycleConfiguration": put_bucket_lifecycle_configuration,
    "GetBucketLifecycleConfiguration": get_bucket_lifecycle_configuration,
    "DeleteBucketLifecycle": delete_bucket_lifecycle,
}
