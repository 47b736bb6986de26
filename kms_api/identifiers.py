"""How a request names a KMS key, and finding it in the caller's account.

A key is named by its key id (a UUID), its key ARN, an alias name (``alias/x``) or an alias ARN.
Lookups are scoped to the caller's account (and, for aliases, the request's region): another
account's key id is NotFoundException, exactly like an id that names no key; another account's
ARN is AccessDeniedException (a key policy that grants another account is out of scope here, so
cross-account use is refused as AWS refuses it when no policy allows it). The AWS managed keys
(``alias/aws/s3`` ...) are made on first use, as AWS makes them.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from kms_api import errors, key_material
from storage import kms_keys as store
from storage.kms_keys import KeyRow

KEY_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ARN = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]*):([^:]*):(.*)$")
ALIAS_PREFIX = "alias/"
AWS_ALIAS_PREFIX = "alias/aws/"

# The AWS managed keys, by alias (AWS's predefined aliases), and what each protects. S3's SSE-KMS
# makes ``alias/aws/s3``; DescribeKey makes any of them, as AWS documents; ListAliases lists them
# all, without a TargetKeyId until their key exists.
_PROTECTS = {
    "acm": "ACM private keys", "dynamodb": "DynamoDB tables", "ebs": "EBS volumes",
    "elasticfilesystem": "EFS file systems", "es": "Elasticsearch domains", "glue": "Glue data",
    "kinesisvideo": "Kinesis Video streams", "lambda": "Lambda functions", "rds": "RDS databases",
    "redshift": "Redshift clusters", "s3": "S3 objects", "secretsmanager": "Secrets Manager secrets",
    "ssm": "SSM parameters", "xray": "X-Ray traces",
}
MANAGED_ALIASES = {f"alias/aws/{service}": f"Default key that protects my {what} when no other key is defined"
                   for service, what in _PROTECTS.items()}


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{name}"


def arn_of(key: KeyRow) -> str:
    return key_arn(key.region, key.account_id, key.key_id)


@dataclass(frozen=True)
class Caller:
    """Who asks, where, and for which action (``kms:<action>`` in an AccessDeniedException)."""

    account_id: str
    region: str
    action: str

    def denied(self, resource: str) -> errors.KMSError:
        return errors.AccessDeniedException(
            f"User: arn:aws:iam::{self.account_id}:root is not authorized to perform: kms:{self.action} on "
            f"resource: {resource} because no resource-based policy allows the kms:{self.action} action")


@dataclass(frozen=True)
class KeyName:
    kind: str           # "key" or "alias"
    value: str          # the key id (lower case) or the alias name (alias/...)
    arn: str            # the ARN the name stands for, for messages


def parse(caller: Caller, name: str | None, *, arn_error: type[errors.KMSError] = errors.NotFoundException,
          aliases: bool = True) -> KeyName:
    """What ``name`` names; NotFoundException (or ``arn_error`` for a malformed ARN) for what names no
    key, AccessDeniedException for another account's ARN."""
    if not name:
        raise errors.ValidationException("1 validation error detected: Value null at 'keyId' failed to satisfy "
                                         "constraint: Member must not be null")
    match = _ARN.match(name)
    if match:
        _, region, account, resource = match.groups()
        if not re.fullmatch(r"\d{12}", account) or not region or \
                not (resource.startswith("key/") or resource.startswith(ALIAS_PREFIX)):
            raise arn_error(f"Invalid arn {name}")
        if account != caller.account_id:
            raise caller.denied(name)
        if resource.startswith("key/"):
            key_id = resource[4:]
            if not KEY_ID.match(key_id):
                raise errors.NotFoundException(f"Invalid keyId {name}")
            if region != caller.region:
                raise errors.NotFoundException(f"Invalid arn {region}")
            return KeyName("key", key_id.lower(), name)
        if not aliases:
            raise errors.NotFoundException(f"Invalid keyId {name}")
        if region != caller.region:
            raise errors.NotFoundException(f"Invalid arn {region}")
        return KeyName("alias", resource, name)
    if name.startswith("arn:"):
        raise arn_error(f"Invalid arn {name}")
    if name.startswith(ALIAS_PREFIX):
        if not aliases:
            raise errors.NotFoundException(f"Invalid keyId {name}")
        return KeyName("alias", name, alias_arn(caller.region, caller.account_id, name))
    if KEY_ID.match(name):
        key_id = name.lower()
        return KeyName("key", key_id, key_arn(caller.region, caller.account_id, key_id))
    raise errors.NotFoundException(f"Invalid keyId {name}")


async def find_key(app: Any, caller: Caller, name: str | None, *, create_managed: bool = False,
                   arn_error: type[errors.KMSError] = errors.NotFoundException, aliases: bool = True) -> KeyRow:
    """The key ``name`` names in the caller's account; an AWS managed key's alias makes the key when
    ``create_managed`` (its first use)."""
    from kms_api.state import state_of   # noqa: PLC0415
    await state_of(app)    # the tables exist (a service may call before the gateway opened KMS)
    parsed = parse(caller, name, arn_error=arn_error, aliases=aliases)
    if parsed.kind == "key":
        key = await store.get_key(app.db, caller.account_id, parsed.value)
        if key is None or key.region != caller.region:
            raise errors.NotFoundException(f"Key '{parsed.arn}' does not exist")
        return key
    alias = await store.get_alias(app.db, caller.account_id, caller.region, parsed.value)
    if alias is None:
        if create_managed and parsed.value in MANAGED_ALIASES:
            return await managed_key(app, caller.account_id, caller.region, parsed.value)
        raise errors.NotFoundException(f"Alias {parsed.arn} is not found.")
    key = await store.get_key(app.db, caller.account_id, alias.key_id)
    if key is None:     # deleted between the two reads
        raise errors.NotFoundException(f"Alias {parsed.arn} is not found.")
    return key


async def managed_key(app: Any, account_id: str, region: str, alias: str) -> KeyRow:
    """The account's AWS managed key behind ``alias`` in ``region``, made now if it does not exist."""
    from kms_api.policies import managed_key_policy   # noqa: PLC0415
    from kms_api.state import state_of   # noqa: PLC0415
    state = await state_of(app)
    found = await store.get_alias(app.db, account_id, region, alias)
    if found is not None:
        key = await store.get_key(app.db, account_id, found.key_id)
        if key is not None:
            return key
    key_id = str(uuid.uuid4())
    material = key_material.new_material()
    key = KeyRow(key_id, account_id, region, "Enabled", MANAGED_ALIASES[alias], "ENCRYPT_DECRYPT",
                 "SYMMETRIC_DEFAULT", "AWS_KMS", "AWS", state.now_us(), None, None,
                 managed_key_policy(account_id, region, alias.rsplit("/", 1)[1]), 365,
                 key_material.wrap(state.master_key, key_id, material))
    return await store.insert_managed_key(app.db, key, alias)


def check_usable(key: KeyRow) -> None:
    """A cryptographic operation's check of the key's state (AWS's key state table)."""
    if key.state == "Disabled":
        raise errors.DisabledException(f"{arn_of(key)} is disabled.")
    if key.state == "PendingDeletion":
        raise errors.KMSInvalidStateException(f"{arn_of(key)} is pending deletion.")
    if key.state != "Enabled":
        raise errors.KMSInvalidStateException(f"{arn_of(key)} is {key.state}.")
