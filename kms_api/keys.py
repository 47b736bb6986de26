"""Keys: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription, EnableKey, DisableKey,
ScheduleKeyDeletion, CancelKeyDeletion.

Keys are symmetric (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT, origin AWS_KMS): 32 random bytes of key
material each, made here and stored wrapped under the master key (``kms_api.key_material``).
Asymmetric, HMAC and post-quantum key specs, imported material (EXTERNAL), custom key stores and
multi-Region keys are refused with UnsupportedOperationException, saying so. AWS managed keys
(KeyManager AWS) are made by their service (``kms_api.data_keys``) or by DescribeKey on their
alias; the account may read them but not change them (AccessDeniedException, as their key policy
allows the account only Describe, Get and List).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Any

from kms_api import errors, key_material, key_months
from kms_api.identifiers import Caller, arn_of, find_key
from kms_api.policies import check_policy, default_key_policy
from kms_api.state import state_of
from kms_api.tagging import check_tags
from storage import kms_keys as store
from storage.kms_keys import KeyRow

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
DAY_US = 86_400 * 1_000_000
SUPPORTED_SPEC = "SYMMETRIC_DEFAULT"


def caller(ctx: Any, action: str) -> Caller:
    return Caller(ctx.account.account_id, ctx.region, action)


def when(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def key_metadata(key: KeyRow) -> dict:
    metadata = {
        "AWSAccountId": key.account_id, "KeyId": key.key_id, "Arn": arn_of(key),
        "CreationDate": when(key.created_us), "Enabled": key.state == "Enabled",
        "Description": key.description, "KeyUsage": key.key_usage, "KeyState": key.state,
        "Origin": key.origin, "KeyManager": key.key_manager, "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec, "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False,
    }
    if key.deletion_us is not None:
        metadata["DeletionDate"] = when(key.deletion_us)
    return metadata


def customer_managed(who: Caller, key: KeyRow) -> KeyRow:
    """The key, if the account may change it: AWS managed keys are refused as their policy refuses."""
    if key.key_manager != "CUSTOMER":
        raise who.denied(arn_of(key))
    return key


def not_pending_deletion(key: KeyRow) -> KeyRow:
    if key.state == "PendingDeletion":
        raise errors.KMSInvalidStateException(f"{arn_of(key)} is pending deletion.")
    return key


async def _changeable(ctx: Any, params: dict, action: str) -> KeyRow:
    who = caller(ctx, action)
    key = await find_key(ctx.app, who, params.get("KeyId"), arn_error=errors.InvalidArnException, aliases=False)
    return customer_managed(who, key)


# -- CreateKey --------------------------------------------------------------------------------------

def _unsupported(what: str) -> errors.KMSError:
    return errors.UnsupportedOperationException(f"{what} is not supported by this endpoint: it makes symmetric "
                                                f"encryption keys (KeySpec SYMMETRIC_DEFAULT, KeyUsage "
                                                f"ENCRYPT_DECRYPT, Origin AWS_KMS) only.")


async def create_key(ctx: Any, params: dict) -> dict:
    spec, legacy = params.get("KeySpec"), params.get("CustomerMasterKeySpec")
    if spec and legacy:
        raise errors.ValidationException("You cannot specify KeySpec and CustomerMasterKeySpec in the same "
                                         "request. CustomerMasterKeySpec parameter is deprecated. Use KeySpec.")
    spec = spec or legacy or SUPPORTED_SPEC
    usage = params.get("KeyUsage") or "ENCRYPT_DECRYPT"
    if spec != SUPPORTED_SPEC:
        raise _unsupported(f"KeySpec {spec}")
    if usage != "ENCRYPT_DECRYPT":
        raise errors.ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
    origin = params.get("Origin") or "AWS_KMS"
    if origin != "AWS_KMS":
        raise _unsupported(f"Origin {origin}")
    if params.get("CustomKeyStoreId") or params.get("XksKeyId"):
        raise _unsupported("A custom key store")
    if params.get("MultiRegion"):
        raise _unsupported("A multi-Region key")
    account = ctx.account.account_id
    policy = check_policy(params["Policy"]) if params.get("Policy") is not None else default_key_policy(account)
    tags = check_tags(params.get("Tags"))
    state = await state_of(ctx.app)
    key_id = str(uuid.uuid4())
    key = KeyRow(key_id, account, ctx.region, "Enabled", params.get("Description") or "", usage, spec, origin,
                 "CUSTOMER", state.now_us(), None, None, policy, None,
                 key_material.wrap(state.master_key, key_id, key_material.new_material()))
    await store.insert_key(ctx.app.db, key, tags, key_months.created(key))
    return {"KeyMetadata": key_metadata(key)}


# -- reads ------------------------------------------------------------------------------------------

async def describe_key(ctx: Any, params: dict) -> dict:
    key = await find_key(ctx.app, caller(ctx, "DescribeKey"), params.get("KeyId"), create_managed=True,
                         arn_error=errors.InvalidArnException)
    return {"KeyMetadata": key_metadata(key)}


def marker(value: str) -> str:
    return base64.urlsafe_b64encode(b"kms:" + value.encode()).decode()


def after_marker(text: str | None) -> str | None:
    """Where a page continues (what ``marker`` made); InvalidMarkerException for anything else."""
    if text is None:
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
        if not raw.startswith(b"kms:"):
            raise ValueError
        return raw[4:].decode()
    except (binascii.Error, ValueError, UnicodeError):
        raise errors.InvalidMarkerException("Invalid marker") from None


def page(items: list, limit: int | None, default: int, name: callable) -> tuple[list, dict]:
    """The first ``limit`` items and the paging members (Truncated, NextMarker)."""
    size = limit or default
    shown = items[:size]
    if len(items) > size:
        return shown, {"Truncated": True, "NextMarker": marker(name(shown[-1]))}
    return shown, {"Truncated": False}


async def list_keys(ctx: Any, params: dict) -> dict:
    size = params.get("Limit") or 100
    keys = await store.list_keys(ctx.app.db, ctx.account.account_id, ctx.region,
                                 after_marker(params.get("Marker")), size + 1)
    shown, paging = page(keys, size, 100, lambda k: k.key_id)
    return {"Keys": [{"KeyId": k.key_id, "KeyArn": arn_of(k)} for k in shown], **paging}


# -- changes ----------------------------------------------------------------------------------------

async def update_key_description(ctx: Any, params: dict) -> dict:
    key = not_pending_deletion(await _changeable(ctx, params, "UpdateKeyDescription"))
    await store.update_key(ctx.app.db, key.account_id, key.key_id, description=params.get("Description") or "")
    return {}


async def enable_key(ctx: Any, params: dict) -> dict:
    key = not_pending_deletion(await _changeable(ctx, params, "EnableKey"))
    if key.state != "Enabled":
        await store.update_key(ctx.app.db, key.account_id, key.key_id, state="Enabled")
    return {}


async def disable_key(ctx: Any, params: dict) -> dict:
    key = not_pending_deletion(await _changeable(ctx, params, "DisableKey"))
    if key.state != "Disabled":
        await store.update_key(ctx.app.db, key.account_id, key.key_id, state="Disabled")
    return {}


async def schedule_key_deletion(ctx: Any, params: dict) -> dict:
    days = params.get("PendingWindowInDays")
    days = 30 if days is None else days
    if not 7 <= days <= 30:
        bound = "greater than or equal to 7" if days < 7 else "less than or equal to 30"
        raise errors.ValidationException(f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' "
                                         f"failed to satisfy constraint: Member must have value {bound}")
    key = not_pending_deletion(await _changeable(ctx, params, "ScheduleKeyDeletion"))
    now_us = (await state_of(ctx.app)).now_us()
    deletion_us = now_us + days * DAY_US
    if not await store.update_key(ctx.app.db, key.account_id, key.key_id, from_state=key.state,
                                  events=key_months.deletion_scheduled(key, now_us),
                                  state="PendingDeletion", deletion_us=deletion_us, pending_days=days):
        raise errors.KMSInvalidStateException(f"{arn_of(key)} changed state meanwhile: try again.")
    return {"KeyId": arn_of(key), "DeletionDate": when(deletion_us), "KeyState": "PendingDeletion",
            "PendingWindowInDays": days}


async def cancel_key_deletion(ctx: Any, params: dict) -> dict:
    key = await _changeable(ctx, params, "CancelKeyDeletion")
    if key.state != "PendingDeletion":
        raise errors.KMSInvalidStateException(f"{arn_of(key)} is not pending deletion.")
    if not await store.update_key(ctx.app.db, key.account_id, key.key_id, from_state="PendingDeletion",
                                  events=key_months.deletion_cancelled(key),
                                  state="Disabled", deletion_us=None, pending_days=None):
        raise errors.NotFoundException(f"Key '{arn_of(key)}' does not exist")   # swept meanwhile
    return {"KeyId": arn_of(key)}
