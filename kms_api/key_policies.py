"""GetKeyPolicy, PutKeyPolicy and ListKeyPolicies: a key has one policy, named ``default``. Nimbo
keeps the text (AWS's default policy unless CreateKey or PutKeyPolicy gave another) and returns it;
it does not evaluate it (``kms_api.policies``)."""
from __future__ import annotations

from typing import Any

from kms_api import errors
from kms_api.identifiers import find_key
from kms_api.keys import caller, customer_managed, not_pending_deletion
from kms_api.policies import POLICY_NAME, check_policy
from storage import kms_keys as store


async def _key(ctx: Any, params: dict, action: str):
    return await find_key(ctx.app, caller(ctx, action), params.get("KeyId"), aliases=False,
                          arn_error=errors.InvalidArnException)


def _policy_name(params: dict) -> None:
    name = params.get("PolicyName")
    if name is not None and name != POLICY_NAME:
        raise errors.NotFoundException(f"No such policy exists: {name} (a key's only policy is named default)")


async def get_key_policy(ctx: Any, params: dict) -> dict:
    _policy_name(params)
    key = await _key(ctx, params, "GetKeyPolicy")
    return {"Policy": key.policy, "PolicyName": POLICY_NAME}


async def put_key_policy(ctx: Any, params: dict) -> dict:
    _policy_name(params)
    who = caller(ctx, "PutKeyPolicy")
    key = await find_key(ctx.app, who, params.get("KeyId"), aliases=False, arn_error=errors.InvalidArnException)
    not_pending_deletion(customer_managed(who, key))
    await store.update_key(ctx.app.db, key.account_id, key.key_id, policy=check_policy(params["Policy"]))
    return {}


async def list_key_policies(ctx: Any, params: dict) -> dict:
    await _key(ctx, params, "ListKeyPolicies")
    return {"PolicyNames": [POLICY_NAME], "Truncated": False}
