"""POST Object (browser-based uploads): the form's signature, and the policy it signs.

The request itself is not signed; its multipart form carries a base64 JSON *policy* and a
signature of that base64 text:

- SigV4: ``x-amz-algorithm`` (AWS4-HMAC-SHA256), ``x-amz-credential``
  (``AKID/YYYYMMDD/region/s3/aws4_request``), ``x-amz-date`` and ``x-amz-signature``, the hex
  HMAC-SHA256 of the policy text with the scope's signing key;
- SigV2: ``AWSAccessKeyId`` and ``signature``, the base64 HMAC-SHA1 of the policy text with the
  secret key.

The policy names its ``expiration`` and ``conditions``: exact matches (``{"field": "value"}``,
``["eq", "$field", "value"]``), prefixes (``["starts-with", "$field", "prefix"]``; an empty
prefix allows anything; a Content-Type holding a comma-separated list must match item by item)
and ``["content-length-range", min, max]``. Every form field but the policy, the signature, the
access key id, the file and ``x-ignore-*`` must be named by a condition. Field names compare
case-insensitively (the caller hands the fields in with lower-case names).

No aiohttp here: the gateway reads the form and calls :func:`verify_post_form` and
:func:`check_policy`; ``PostPolicy.length_range`` is for the code that stores the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvalidAccessKeyId, SignatureDoesNotMatch, WrongRegion
from .signing import ALGORITHM, as_utc, derive_signing_key, sign_hex, signatures_equal

SecretLookup = Callable[[str], Awaitable[str | None]]

# Fields no condition needs to name (lower-case); ``x-ignore-*`` and the integrity fields
# ``x-amz-checksum-*`` (an algorithm and a value the file is checked against) too.
EXEMPT_FIELDS = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
EXEMPT_PREFIXES = ("x-ignore-", "x-amz-checksum-")
# The policy's expiration: ISO 8601 in UTC, as S3 documents it (2013-08-01T12:00:00.000Z)
_EXPIRATION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z")
_V4_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "policy")
_V2_FIELDS = ("awsaccesskeyid", "signature", "policy")
_AS_SENT = {"awsaccesskeyid": "AWSAccessKeyId"}


class PostPolicyError(Exception):
    """An S3 error found in a POST form's authentication or policy (code, status, extra)."""

    code = "AccessDenied"
    status = 403
    message = "Access Denied"

    def __init__(self, message: str | None = None, **extra: object) -> None:
        self.message = message or type(self).message
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(self.message)


class PolicyDenied(PostPolicyError):
    """AccessDenied 'Invalid according to Policy: ...' (expired, a failed condition, extra
    fields)."""


class InvalidPolicyDocument(PostPolicyError):
    code = "InvalidPolicyDocument"
    status = 400
    message = "Invalid Policy"


class InvalidPostArgument(PostPolicyError):
    code = "InvalidArgument"
    status = 400
    message = "Invalid Argument"


@dataclass(frozen=True)
class Condition:
    op: str            # 'eq' or 'starts-with'
    field: str         # lower-case form field name, without '$'
    value: str
    text: str          # as S3 quotes it in an error: ["eq", "$key", "a"]


@dataclass(frozen=True)
class PostPolicy:
    expiration: datetime
    conditions: tuple[Condition, ...]
    length_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class PostAuth:
    access_key_id: str
    region: str | None            # from the credential scope (SigV4); None for SigV2
    signature_version: str        # 'v4' or 'v2'
    policy: PostPolicy = field(repr=False)


def _missing(name: str) -> InvalidPostArgument:
    shown = _AS_SENT.get(name, name)
    return InvalidPostArgument(
        f"Bucket POST must contain a field named '{shown}'.  If it is specified, please check the"
        " order of the fields.", ArgumentName=shown, ArgumentValue="")


def _require(fields: Mapping[str, str], names: Collection[str]) -> None:
    for name in names:
        if not fields.get(name):
            raise _missing(name)


async def _secret(lookup_secret: SecretLookup, access_key_id: str) -> str:
    secret = await lookup_secret(access_key_id)
    if secret is None:
        raise InvalidAccessKeyId(access_key_id)
    return secret


def _mismatch(access_key_id: str, policy_b64: str, provided: str) -> SignatureDoesNotMatch:
    return SignatureDoesNotMatch(extra={"AWSAccessKeyId": access_key_id,
                                        "StringToSign": policy_b64,
                                        "SignatureProvided": provided})


async def _verify_v4(fields: Mapping[str, str], lookup_secret: SecretLookup,
                     served_regions: Collection[str]) -> tuple[str, str]:
    _require(fields, _V4_FIELDS)
    algorithm = fields.get("x-amz-algorithm", "")
    if algorithm != ALGORITHM:
        raise InvalidPostArgument(f'X-Amz-Algorithm only supports "{ALGORITHM}"',
                                  ArgumentName="x-amz-algorithm", ArgumentValue=algorithm)
    credential = fields["x-amz-credential"]
    parts = credential.strip().rsplit("/", 4)
    amz_date = fields["x-amz-date"].strip()
    if (len(parts) != 5 or not all(parts) or parts[3] != "s3" or parts[4] != "aws4_request"
            or len(parts[1]) != 8 or not parts[1].isdigit()):
        raise InvalidPostArgument(
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
            ArgumentName="x-amz-credential", ArgumentValue=credential)
    access_key_id, date, region = parts[0], parts[1], parts[2]
    if amz_date[:8] != date:
        raise InvalidPostArgument("Invalid credential date. Date is not the same as X-Amz-Date.",
                                  ArgumentName="x-amz-date", ArgumentValue=amz_date)
    if region not in served_regions:
        raise WrongRegion(region, next(iter(served_regions), "us-east-1"), in_query=True)
    secret = await _secret(lookup_secret, access_key_id)
    policy_b64 = fields["policy"]
    expected = sign_hex(derive_signing_key(secret, date, region, "s3"), policy_b64)
    provided = fields["x-amz-signature"]
    if not signatures_equal(expected, provided):
        raise _mismatch(access_key_id, policy_b64, provided)
    return access_key_id, region


async def _verify_v2(fields: Mapping[str, str], lookup_secret: SecretLookup) -> str:
    _require(fields, _V2_FIELDS)
    access_key_id = fields["awsaccesskeyid"]
    secret = await _secret(lookup_secret, access_key_id)
    policy_b64 = fields["policy"]
    digest = hmac.new(secret.encode("utf-8"), policy_b64.encode("utf-8"), hashlib.sha1).digest()
    expected = base64.b64encode(digest)
    provided = fields["signature"]
    if not hmac.compare_digest(expected, provided.encode("utf-8", "surrogateescape")):
        raise _mismatch(access_key_id, policy_b64, provided)
    return access_key_id


async def verify_post_form(fields: Mapping[str, str], lookup_secret: SecretLookup,
                           served_regions: Collection[str]) -> PostAuth | None:
    """Check the form's signature and read the policy it signs; None for an anonymous form (no
    policy and no signature fields at all). ``fields`` maps lower-case names to values. The
    policy's expiration and conditions are :func:`check_policy`'s."""
    if any(name in fields for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-signature")):
        access_key_id, region = await _verify_v4(fields, lookup_secret, served_regions)
        version = "v4"
    elif "awsaccesskeyid" in fields or "signature" in fields:
        access_key_id, region = await _verify_v2(fields, lookup_secret), None
        version = "v2"
    elif "policy" in fields:
        raise _missing("awsaccesskeyid")
    else:
        return None
    return PostAuth(access_key_id, region, version, parse_policy(fields["policy"]))


# --- the policy document ------------------------------------------------------------------

def _invalid(detail: str) -> InvalidPolicyDocument:
    return InvalidPolicyDocument(f"Invalid Policy: {detail}")


def _parse_expiration(value: Any) -> datetime:
    if not isinstance(value, str) or not _EXPIRATION.fullmatch(value.strip()):
        raise _invalid(f"Invalid 'expiration' value: '{value}'")
    try:
        moment = datetime.fromisoformat(value.strip()[:19] + "+00:00")
    except ValueError:
        raise _invalid(f"Invalid 'expiration' value: '{value}'") from None
    return as_utc(moment)


def _quoted(op: str, name: str, value: Any) -> str:
    return json.dumps([op, "$" + name, value], ensure_ascii=False)


def _scalar(value: Any, condition: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _invalid(f"Invalid Condition: {json.dumps(condition, ensure_ascii=False)}")
    return str(value)


def _length(value: Any, condition: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or number < 0 or (isinstance(value, float) and value != number):
        raise _invalid("Invalid content-length-range: "
                       f"{json.dumps(condition, ensure_ascii=False)}")
    return number


def _parse_conditions(items: Any) -> tuple[list[Condition], tuple[int, int] | None]:
    if not isinstance(items, list):
        raise _invalid("Policy conditions must be a list.")
    conditions: list[Condition] = []
    length_range = None
    for item in items:
        if isinstance(item, dict):
            if not item:
                raise _invalid("Invalid Simple-Condition: {}")
            for name, value in item.items():
                name = name.lstrip("$").lower()
                text = _scalar(value, item)
                conditions.append(Condition("eq", name, text, _quoted("eq", name, text)))
            continue
        if not isinstance(item, list) or not item or not isinstance(item[0], str):
            raise _invalid(f"Invalid Condition: {json.dumps(item, ensure_ascii=False)}")
        op = item[0].lower()
        if op == "content-length-range":
            if len(item) != 3:
                raise _invalid("Invalid content-length-range: "
                               f"{json.dumps(item, ensure_ascii=False)}")
            low, high = _length(item[1], item), _length(item[2], item)
            if low > high:
                raise _invalid("Invalid content-length-range: "
                               f"{json.dumps(item, ensure_ascii=False)}")
            length_range = (low, high) if length_range is None else (
                max(length_range[0], low), min(length_range[1], high))
            continue
        if op not in ("eq", "starts-with") or len(item) != 3 or not isinstance(item[1], str) \
                or not item[1].startswith("$"):
            raise _invalid(f"Invalid Condition: {json.dumps(item, ensure_ascii=False)}")
        name = item[1][1:].lower()
        text = _scalar(item[2], item)
        conditions.append(Condition(op, name, text, _quoted(op, name, text)))
    return conditions, length_range


def parse_policy(policy_b64: str) -> PostPolicy:
    """The policy document of a form (InvalidPolicyDocument when it is not one)."""
    try:
        raw = base64.b64decode(policy_b64.strip(), validate=False)
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise _invalid("Invalid JSON.")
    if "expiration" not in document:
        raise _invalid("Policy missing expiration.")
    if "conditions" not in document:
        raise _invalid("Policy missing conditions.")
    expiration = _parse_expiration(document["expiration"])
    conditions, length_range = _parse_conditions(document["conditions"])
    return PostPolicy(expiration, tuple(conditions), length_range)


def _holds(condition: Condition, value: str) -> bool:
    if condition.op == "eq":
        return value == condition.value
    if condition.field == "content-type" and "," in value:
        return all(item.strip().startswith(condition.value) for item in value.split(","))
    return value.startswith(condition.value)


def check_policy(policy: PostPolicy, fields: Mapping[str, str], bucket: str,
                 now: datetime) -> None:
    """The policy has not expired, every condition holds for the form (``bucket`` is the
    request's bucket), and every field that needs one is named by a condition; else AccessDenied
    'Invalid according to Policy: ...'."""
    if as_utc(now) > policy.expiration:
        raise PolicyDenied("Invalid according to Policy: Policy expired.")
    values = dict(fields)
    values["bucket"] = bucket
    for condition in policy.conditions:
        if not _holds(condition, values.get(condition.field, "")):
            raise PolicyDenied("Invalid according to Policy: Policy Condition failed: "
                               + condition.text)
    named = {c.field for c in policy.conditions}
    extra = [name for name in fields
             if name not in EXEMPT_FIELDS and not name.startswith(EXEMPT_PREFIXES)
             and name not in named]
    if extra:
        raise PolicyDenied("Invalid according to Policy: Extra input fields: " + ", ".join(extra))
