"""Accounts and access keys as the gateway uses them: creation with AWS-shaped ids, the first-start
admin account, and the secret lookup that signature verification calls on every request."""
from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time

from gateway.auth.errors import AccessKeyDisabled
from storage.accounts import AccessKey, Account, AccountStore

ADMIN_NAME = "admin"
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
ACCESS_KEY_RE = re.compile(r"^[A-Z0-9]{16,128}$")
ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=,-]{0,63}$")


def new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def new_access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret_access_key() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


class AccountService:
    """Account operations plus a short-lived cache of access keys for the signature check."""

    CACHE_SECONDS = 1.0

    def __init__(self, store: AccountStore) -> None:
        self.store = store
        self._keys: dict[str, tuple[float, AccessKey | None, Account | None]] = {}
        # lookups under way: the requests that miss the cache together share one
        self._loading: dict[str, asyncio.Future] = {}

    async def create_account(self, name: str, admin: bool = False, account_id: str | None = None,
                             email: str | None = None) -> Account:
        if not ACCOUNT_NAME_RE.match(name):
            raise ValueError(f"invalid account name {name!r}: letters, digits and ._@+=,- only")
        if account_id is not None and not re.fullmatch(r"\d{12}", account_id):
            raise ValueError("an account id is 12 digits")
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            raise ValueError(f"invalid email address {email!r}")
        canonical = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        return await self.store.create_account(account_id or new_account_id(), name, canonical, admin,
                                               email)

    async def create_key(self, account_id: str, access_key_id: str | None = None,
                         secret_access_key: str | None = None) -> AccessKey:
        """A new key for the account; an operator may import a given key id and secret."""
        if access_key_id is not None and not ACCESS_KEY_RE.match(access_key_id):
            raise ValueError("an access key id is 16-128 upper-case letters and digits")
        if secret_access_key is not None and len(secret_access_key) < 16:
            raise ValueError("a secret access key has at least 16 characters")
        key = await self.store.add_key(account_id, access_key_id or new_access_key_id(),
                                       secret_access_key or new_secret_access_key())
        self._keys.pop(key.access_key_id, None)
        return key

    async def bootstrap(self) -> tuple[Account, AccessKey | None]:
        """On first start: the admin account with one access key. Returns the admin account and
        the key made now (None when the admin existed already)."""
        for account in await self.store.list_accounts():
            if account.is_admin:
                return account, None
        admin = await self.create_account(ADMIN_NAME, admin=True)
        return admin, await self.create_key(admin.account_id)

    async def admin(self) -> Account | None:
        for account in await self.store.list_accounts():
            if account.is_admin:
                return account
        return None

    async def lookup(self, access_key_id: str) -> tuple[AccessKey | None, Account | None]:
        """The key and its account, cached for a second (a disabled key stops working within it)."""
        while True:
            now = time.monotonic()
            hit = self._keys.get(access_key_id)
            if hit and now - hit[0] < self.CACHE_SECONDS:
                return hit[1], hit[2]
            loading = self._loading.get(access_key_id)
            if loading is None:
                break
            try:
                return await asyncio.shield(loading)
            except asyncio.CancelledError:
                if not loading.cancelled():
                    raise       # this request was cancelled
                # the request doing the lookup was cancelled, not this one: look again
        loading = self._loading[access_key_id] = asyncio.get_running_loop().create_future()
        try:
            key = await self.store.get_key(access_key_id)
            account = await self.store.get_account(key.account_id) if key else None
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                loading.cancel()
            else:
                loading.set_exception(exc)
                loading.exception()  # marked retrieved: no warning when nobody else waited
            raise
        else:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[access_key_id] = (now, key, account)
            loading.set_result((key, account))
        finally:
            self._loading.pop(access_key_id, None)
        return key, account

    def forget_key(self, access_key_id: str) -> None:
        """Drop a key from the cache (its status changed here: seen by the next request)."""
        self._keys.pop(access_key_id, None)

    async def secret_for(self, access_key_id: str) -> str | None:
        """The secret of an active key; None for an unknown key; a disabled key is refused."""
        key, account = await self.lookup(access_key_id)
        if key is None or account is None:
            return None
        if not key.active:
            raise AccessKeyDisabled(access_key_id)
        return key.secret_access_key
