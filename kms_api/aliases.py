"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

An alias names one key of its account and region (``alias/`` and 1 to 250 letters, digits, ``/``,
``_`` and ``-``); a key may have several (up to 50 here). Names under ``alias/aws/`` are AWS's: the
account cannot create, move or delete them (NotAuthorizedException). ListAliases shows the AWS
managed aliases this endpoint knows even before their key exists (without a TargetKeyId), as AWS
lists its predefined aliases.
"""
from __future__ import annotations

from typing import Any

from kms_api import errors
from kms_api.identifiers import (ALIAS_PREFIX, AWS_ALIAS_PREFIX, MANAGED_ALIASES, alias_arn, arn_of, find_key)
from kms_api.keys import after_marker, caller, customer_managed, not_pending_deletion, page, when
from kms_api.state import state_of
from storage import kms_keys as store

MAX_ALIASES_PER_KEY = 50


def _check_name(name: str, *, creating: bool) -> str:
    if not name.startswith(ALIAS_PREFIX):
        raise errors.ValidationException('Alias must start with the prefix "alias/". Please see '
                                         'https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html')
    if name.startswith(AWS_ALIAS_PREFIX):
        verb = "create" if creating else "change"
        raise errors.NotAuthorizedException(f"Cannot {verb} alias {name}: the prefix alias/aws/ is reserved for "
                                            f"AWS managed keys.")
    if ":" in name:
        raise errors.ValidationException(f"{name} contains invalid characters for an alias")
    if name == ALIAS_PREFIX:
        raise errors.InvalidAliasNameException(f"Alias {name} has no name after the prefix alias/.")
    return name


async def _target(ctx: Any, action: str, target: str | None):
    who = caller(ctx, action)
    if target and (target.startswith(ALIAS_PREFIX) or ":alias/" in target):
        raise errors.ValidationException("Aliases must refer to keys. Not aliases")
    key = await find_key(ctx.app, who, target, aliases=False)
    return not_pending_deletion(customer_managed(who, key))


async def create_alias(ctx: Any, params: dict) -> dict:
    name = _check_name(params["AliasName"], creating=True)
    key = await _target(ctx, "CreateAlias", params.get("TargetKeyId"))
    account, region = ctx.account.account_id, ctx.region
    if await store.count_aliases(ctx.app.db, key.key_id) >= MAX_ALIASES_PER_KEY:
        raise errors.LimitExceededException(f"{arn_of(key)} already has {MAX_ALIASES_PER_KEY} aliases.")
    now = (await state_of(ctx.app)).now_us()
    if not await store.insert_alias(ctx.app.db, account, region, name, key.key_id, now):
        raise errors.AlreadyExistsException(f"An alias with the name {alias_arn(region, account, name)} already "
                                            f"exists")
    return {}


async def update_alias(ctx: Any, params: dict) -> dict:
    name = _check_name(params["AliasName"], creating=False)
    account, region = ctx.account.account_id, ctx.region
    current = await store.get_alias(ctx.app.db, account, region, name)
    if current is None:
        raise errors.NotFoundException(f"Alias {alias_arn(region, account, name)} is not found.")
    key = await _target(ctx, "UpdateAlias", params.get("TargetKeyId"))
    old = await store.get_key(ctx.app.db, account, current.key_id)
    if old is not None and (old.key_usage, old.key_spec) != (key.key_usage, key.key_spec):
        raise errors.ValidationException("The new target key must have the same key usage and key spec as the "
                                         "current one.")
    if not await store.retarget_alias(ctx.app.db, account, region, name, key.key_id,
                                      (await state_of(ctx.app)).now_us()):
        raise errors.NotFoundException(f"Alias {alias_arn(region, account, name)} is not found.")
    return {}


async def delete_alias(ctx: Any, params: dict) -> dict:
    name = params["AliasName"]
    if not name.startswith(ALIAS_PREFIX):
        raise errors.ValidationException('Alias must start with the prefix "alias/". Please see '
                                         'https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html')
    if name.startswith(AWS_ALIAS_PREFIX):
        raise errors.NotAuthorizedException(f"Cannot delete alias {name}: the prefix alias/aws/ is reserved for "
                                            f"AWS managed keys.")
    account, region = ctx.account.account_id, ctx.region
    if not await store.delete_alias(ctx.app.db, account, region, name):
        raise errors.NotFoundException(f"Alias {alias_arn(region, account, name)} is not found.")
    return {}


async def list_aliases(ctx: Any, params: dict) -> dict:
    account, region = ctx.account.account_id, ctx.region
    key_id = None
    if params.get("KeyId") is not None:
        key_id = (await find_key(ctx.app, caller(ctx, "ListAliases"), params["KeyId"], aliases=False,
                                 arn_error=errors.InvalidArnException)).key_id
    rows = await store.list_aliases(ctx.app.db, account, region, key_id)
    items = {r.name: {"AliasName": r.name, "AliasArn": alias_arn(region, account, r.name), "TargetKeyId": r.key_id,
                      "CreationDate": when(r.created_us), "LastUpdatedDate": when(r.updated_us)} for r in rows}
    if key_id is None:
        for name in MANAGED_ALIASES:
            items.setdefault(name, {"AliasName": name, "AliasArn": alias_arn(region, account, name)})
    after = after_marker(params.get("Marker"))
    ordered = [items[n] for n in sorted(items) if after is None or n > after]
    shown, paging = page(ordered, params.get("Limit"), 50, lambda a: a["AliasName"])
    return {"Aliases": shown, **paging}
