"""GetKeyRotationStatus, EnableKeyRotation, DisableKeyRotation: the status AWS reports.

Automatic rotation is recorded (on or off, and its period of 90 to 2560 days) and reported with
the next rotation date; Nimbo does not make new key material when that date comes (a key keeps
its one material for life, so every ciphertext stays decryptable, which rotation guarantees on
AWS too). AWS managed keys rotate every year and cannot be changed by the account.
"""
from __future__ import annotations

from typing import Any

from kms_api import errors
from kms_api.identifiers import arn_of, find_key
from kms_api.keys import DAY_US, caller, customer_managed, not_pending_deletion, when
from kms_api.state import state_of
from storage import kms_keys as store

DEFAULT_PERIOD = 365


async def get_key_rotation_status(ctx: Any, params: dict) -> dict:
    key = await find_key(ctx.app, caller(ctx, "GetKeyRotationStatus"), params.get("KeyId"), aliases=False,
                         arn_error=errors.InvalidArnException)
    not_pending_deletion(key)
    out = {"KeyRotationEnabled": key.rotation_days is not None, "KeyId": arn_of(key)}
    if key.rotation_days is not None:
        period = key.rotation_days * DAY_US
        now = (await state_of(ctx.app)).now_us()
        elapsed = max(0, now - key.created_us)
        out["RotationPeriodInDays"] = key.rotation_days
        out["NextRotationDate"] = when(key.created_us + (elapsed // period + 1) * period)
    return out


async def _changeable(ctx: Any, params: dict, action: str):
    who = caller(ctx, action)
    key = await find_key(ctx.app, who, params.get("KeyId"), aliases=False, arn_error=errors.InvalidArnException)
    key = not_pending_deletion(customer_managed(who, key))
    if key.state == "Disabled":
        raise errors.DisabledException(f"{arn_of(key)} is disabled.")
    return key


async def enable_key_rotation(ctx: Any, params: dict) -> dict:
    key = await _changeable(ctx, params, "EnableKeyRotation")
    period = params.get("RotationPeriodInDays") or DEFAULT_PERIOD
    await store.update_key(ctx.app.db, key.account_id, key.key_id, rotation_days=period)
    return {}


async def disable_key_rotation(ctx: Any, params: dict) -> dict:
    key = await _changeable(ctx, params, "DisableKeyRotation")
    await store.update_key(ctx.app.db, key.account_id, key.key_id, rotation_days=None)
    return {}
