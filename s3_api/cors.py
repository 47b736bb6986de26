"""CORS configuration: Put/Get/DeleteBucketCors, validated as S3 validates it, and the rules at
work (which rule a cross-origin request matches, and the ``Access-Control-*`` headers it earns).
The requests themselves (a preflight ``OPTIONS``, an actual request with ``Origin``) are
``s3_api.preflight``'s.

A configuration is 1 to 100 ``CORSRule``; each names at least one ``AllowedMethod`` (GET, PUT,
HEAD, POST or DELETE, spelt so) and at least one ``AllowedOrigin``; ``AllowedOrigin`` and
``AllowedHeader`` values hold at most one ``*`` wildcard, ``ExposeHeader`` values none; an ``ID``
is at most 255 characters. The rules are kept as given (order, spelling, case) as the JSON of
their wire members in ``s3_bucket_cors`` (``storage.bucket_cors``: written in the object store's
transaction, removed with the bucket), and GetBucketCors gives them back so.

Matching, in S3's words: the first rule whose ``AllowedOrigin`` matches the ``Origin`` header,
whose ``AllowedMethod`` holds the method (the ``Access-Control-Request-Method`` header when the
request has one, as a preflight does, else the request's own method), and whose ``AllowedHeader``
values match every name listed in ``Access-Control-Request-Headers``. A ``*`` matches any run of
characters, the empty one too; a pattern covers the whole value. Origins and methods match as
written (case-sensitive); header names without regard to case.
"""
from __future__ import annotations

import json
import re

from s3_api.buckets import owned_bucket
from s3_api.errors import (InvalidArgument, InvalidRequest, MalformedXML, NoSuchBucket,
                           NoSuchCORSConfiguration)
from s3_api.object_lock import require_checksum
from storage import bucket_cors
from storage.objects import Batch, Bucket

METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100
MAX_ID = 255
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
_LIST_MEMBERS = ("AllowedHeaders", "AllowedMethods", "AllowedOrigins", "ExposeHeaders")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- validation ----------------------------------------------------------------------------

def _strings(value) -> list[str]:
    """A list member's values (an empty element is the empty string)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedXML()
    out = []
    for item in value:
        if item is None:
            item = ""
        if not isinstance(item, str):
            raise MalformedXML()
        out.append(item)
    return out


def _rule(rule) -> dict:
    if not isinstance(rule, dict):
        raise MalformedXML()
    lists = {name: _strings(rule.get(name)) for name in _LIST_MEMBERS}
    if not lists["AllowedMethods"] or not lists["AllowedOrigins"]:
        raise MalformedXML()
    for method in lists["AllowedMethods"]:
        if method not in METHODS:
            raise InvalidRequest("Found unsupported HTTP method in CORS config. Unsupported method"
                                 f" is {method}")
    for origin in lists["AllowedOrigins"]:
        if origin.count("*") > 1:
            raise InvalidRequest(f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    for header in lists["AllowedHeaders"]:
        if header.count("*") > 1:
            raise InvalidRequest(f'AllowedHeader "{header}" can not have more than one wildcard.')
    for header in lists["ExposeHeaders"]:
        if "*" in header:
            raise InvalidRequest(f'ExposeHeader "{header}" contains wildcard. We currently do not'
                                 " support wildcard for ExposeHeader.")
    out: dict = {}
    rule_id = rule.get("ID")
    if rule_id is not None:
        if not isinstance(rule_id, str):
            raise MalformedXML()
        if len(rule_id) > MAX_ID:
            raise InvalidArgument("ID length should not exceed allowed limit of 255")
        out["ID"] = rule_id
    for name in _LIST_MEMBERS:
        if lists[name]:
            out[name] = lists[name]
    max_age = rule.get("MaxAgeSeconds")
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise MalformedXML()
        out["MaxAgeSeconds"] = max_age
    return out


def parse_configuration(config) -> list[dict]:
    """The rules of a ``CORSConfiguration`` input dict, validated (S3's errors otherwise)."""
    if not isinstance(config, dict):
        raise MalformedXML()
    rules = config.get("CORSRules")
    if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
        raise MalformedXML()
    return [_rule(rule) for rule in rules]


# --- the operations --------------------------------------------------------------------------

async def _store(ctx, bucket: Bucket, rules_json: str | None) -> None:
    async def change(batch: Batch) -> None:
        current = batch.bucket(bucket.name)
        if current is None or current.account_id != bucket.account_id:
            raise NoSuchBucket(BucketName=bucket.name)   # deleted (and perhaps remade) meanwhile
        if rules_json is None:
            await bucket_cors.remove(batch.tx, bucket.name)
        else:
            await bucket_cors.save(batch.tx, bucket.name, rules_json)

    await ctx.state.store.write_alone(change)


async def put_bucket_cors(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    require_checksum(ctx)
    rules = parse_configuration(params.get("CORSConfiguration"))
    await _store(ctx, bucket, json.dumps(rules))
    return {}


async def get_bucket_cors(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    rules = rules_of(ctx.state.store, bucket.name)
    if rules is None:
        raise NoSuchCORSConfiguration(BucketName=bucket.name)
    return {"CORSRules": [dict(rule) for rule in rules]}


async def delete_bucket_cors(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    await _store(ctx, bucket, None)
    return {"__status__": 204}


OPERATIONS = {
    "PutBucketCors": put_bucket_cors,
    "GetBucketCors": get_bucket_cors,
    "DeleteBucketCors": delete_bucket_cors,
}


# --- the rules at work -------------------------------------------------------------------------

_PARSED: dict[str, list[dict]] = {}


def rules_of(store, bucket: str) -> list[dict] | None:
    """The bucket's rules, or None without a configuration (parsed once per distinct text)."""
    text = bucket_cors.load(store.query, bucket)
    if text is None:
        return None
    rules = _PARSED.get(text)
    if rules is None:
        if len(_PARSED) > 256:
            _PARSED.clear()
        rules = _PARSED[text] = json.loads(text)
    return rules


def requested_headers(value: str | None) -> list[str]:
    """The names of an ``Access-Control-Request-Headers`` value, lower-cased, in order."""
    if not value:
        return []
    return [name.strip().lower() for name in value.split(",") if name.strip()]


def wildcard_match(pattern: str, value: str) -> bool:
    """``pattern`` (at most one ``*``, any run of characters) covers all of ``value``."""
    star = pattern.find("*")
    if star < 0:
        return pattern == value
    head, tail = pattern[:star], pattern[star + 1:]
    return (len(value) >= len(head) + len(tail) and value.startswith(head)
            and value.endswith(tail))


def matching_rule(rules: list[dict], origin: str, method: str,
                  headers: list[str]) -> dict | None:
    """The first rule allowing ``origin``, ``method`` and every one of ``headers`` (lower-case
    names), or None."""
    for rule in rules:
        if method not in rule["AllowedMethods"]:
            continue
        if not any(wildcard_match(allowed, origin) for allowed in rule["AllowedOrigins"]):
            continue
        if headers:
            allowed = [name.lower() for name in rule.get("AllowedHeaders", ())]
            if not all(any(wildcard_match(a, name) for a in allowed) for name in headers):
                continue
        return rule
    return None


def _header_value(text: str) -> str:
    return _CONTROL.sub(" ", text)


def allow_headers(rule: dict, origin: str, headers: list[str]) -> dict[str, str]:
    """The ``Access-Control-*`` and ``Vary`` headers a request matching ``rule`` gets: the origin
    (``*`` when the rule allows any origin, and then no ``Allow-Credentials``), the rule's methods,
    the requested header names, its expose headers and max age."""
    any_origin = "*" in rule["AllowedOrigins"]
    out = {"Access-Control-Allow-Origin": "*" if any_origin else origin,
           "Access-Control-Allow-Methods": ", ".join(rule["AllowedMethods"])}
    if headers:
        out["Access-Control-Allow-Headers"] = ", ".join(headers)
    if rule.get("ExposeHeaders"):
        out["Access-Control-Expose-Headers"] = _header_value(", ".join(rule["ExposeHeaders"]))
    if rule.get("MaxAgeSeconds") is not None:
        out["Access-Control-Max-Age"] = str(rule["MaxAgeSeconds"])
    if not any_origin:
        out["Access-Control-Allow-Credentials"] = "true"
    out["Vary"] = VARY
    return out
