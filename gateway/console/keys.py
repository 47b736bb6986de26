"""The Account screen: access keys (an account manages its own; the admin every account's) and,
for the admin, the accounts. The same ``gateway.accounts.AccountService`` as ``nimbo admin``; a
secret is shown once, in the answer that creates the key, and never listed."""
from __future__ import annotations

from typing import Any

from gateway.console.calls import ConsoleError
from storage import accounts as account_rows


def _key_view(key: Any) -> dict:
    return {"AccessKeyId": key.access_key_id, "AccountId": key.account_id, "Status": key.status,
            "CreateDate": key.created_at}


def _account_view(account: Any) -> dict:
    return {"AccountId": account.account_id, "Name": account.name, "IsAdmin": account.is_admin,
            "CanonicalUserId": account.canonical_user_id}


async def _owned_key(accounts: Any, signed_in: Any, access_key_id: str) -> Any:
    key = await accounts.store.get_key(access_key_id or "")
    if key is None or (not signed_in.is_admin and key.account_id != signed_in.account_id):
        raise ConsoleError("NoSuchEntity", f"The access key {access_key_id} does not exist.", 404)
    return key


async def list_keys(accounts: Any, signed_in: Any, account_id: str | None) -> dict:
    if not signed_in.is_admin:
        account_id = signed_in.account_id
    keys = await accounts.store.list_keys(account_id or None)
    return {"AccessKeys": [_key_view(k) for k in keys]}


async def create_key(accounts: Any, signed_in: Any, account_id: str | None) -> dict:
    account_id = account_id if signed_in.is_admin and account_id else signed_in.account_id
    if await accounts.store.get_account(account_id) is None:
        raise ConsoleError("NoSuchEntity", f"The account {account_id} does not exist.", 404)
    key = await accounts.create_key(account_id)
    return {"AccessKey": {**_key_view(key), "SecretAccessKey": key.secret_access_key}}


async def set_key_status(accounts: Any, signed_in: Any, session_key: str, access_key_id: str,
                         status: str) -> dict:
    if status not in ("Active", "Inactive"):
        raise ConsoleError("ValidationError", "Status must be Active or Inactive")
    key = await _owned_key(accounts, signed_in, access_key_id)
    if key.access_key_id == session_key and status == "Inactive":
        raise ConsoleError("ValidationError", "The key this session signed in with cannot be disabled here.")
    await accounts.store.set_key_status(key.access_key_id, status)
    accounts.forget_key(key.access_key_id)   # the signature check sees it at once
    return {}


async def delete_key(accounts: Any, signed_in: Any, session_key: str, access_key_id: str) -> dict:
    key = await _owned_key(accounts, signed_in, access_key_id)
    if key.access_key_id == session_key:
        raise ConsoleError("ValidationError", "The key this session signed in with cannot be deleted here.")
    await accounts.store.delete_key(key.access_key_id)
    accounts.forget_key(key.access_key_id)
    return {}


async def list_accounts(accounts: Any, signed_in: Any) -> dict:
    if not signed_in.is_admin:
        return {"Accounts": [_account_view(signed_in)]}
    return {"Accounts": [_account_view(a) for a in await accounts.store.list_accounts()]}


async def create_account(accounts: Any, signed_in: Any, name: str) -> dict:
    if not signed_in.is_admin:
        raise ConsoleError("AccessDenied", "Only the admin account manages accounts.", 403)
    try:
        account = await accounts.create_account(name or "")
    except ValueError as exc:
        raise ConsoleError("ValidationError", str(exc)) from None
    except account_rows.AccountExists:
        raise ConsoleError("EntityAlreadyExists", f"An account named {name!r} exists already.", 409) from None
    return {"Account": _account_view(account)}
