import asyncio
import re

import pytest

from gateway.accounts import AccountService
from gateway.auth.errors import AccessKeyDisabled
from storage.accounts import AccessKeyExists, AccountExists, AccountStore
from storage.db import Database


@pytest.fixture
async def accounts(tmp_path):
    db = await Database.open(str(tmp_path / "n.db"))
    store = AccountStore(db)
    await store.setup()
    yield AccountService(store)
    await db.close()


async def test_bootstrap_makes_one_admin_with_a_key(accounts):
    admin, key = await accounts.bootstrap()
    assert admin.is_admin and re.fullmatch(r"\d{12}", admin.account_id)
    assert re.fullmatch(r"[0-9a-f]{64}", admin.canonical_user_id)
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key.access_key_id) and len(key.secret_access_key) == 40
    again, second_key = await accounts.bootstrap()
    assert again == admin and second_key is None


async def test_import_key_and_lookup(accounts):
    tenant = await accounts.create_account("tenant", account_id="123456789012")
    await accounts.create_key(tenant.account_id, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert await accounts.secret_for("AKIAIOSFODNN7EXAMPLE") == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert await accounts.secret_for("AKIANOSUCHKEY0000000") is None
    with pytest.raises(AccessKeyExists):
        await accounts.create_key(tenant.account_id, "AKIAIOSFODNN7EXAMPLE", "x" * 40)
    with pytest.raises(AccountExists):
        await accounts.create_account("tenant")


async def test_disabled_key_is_refused_once_cache_expires(accounts):
    tenant = await accounts.create_account("t2")
    key = await accounts.create_key(tenant.account_id)
    assert await accounts.secret_for(key.access_key_id) == key.secret_access_key
    await accounts.store.set_key_status(key.access_key_id, "Inactive")
    accounts.CACHE_SECONDS = 0
    with pytest.raises(AccessKeyDisabled):
        await accounts.secret_for(key.access_key_id)


async def test_bad_names_and_ids_are_refused(accounts):
    with pytest.raises(ValueError):
        await accounts.create_account("bad name with spaces")
    with pytest.raises(ValueError):
        await accounts.create_account("ok", account_id="12345")
    with pytest.raises(ValueError):
        await accounts.create_key("123456789012", "lowercase-key", "s" * 40)


async def test_concurrent_cache_misses_share_one_lookup(accounts):
    tenant = await accounts.create_account("tenant", account_id="123456789012")
    await accounts.create_key(tenant.account_id, "AKIAIOSFODNN7EXAMPLE", "s" * 40)
    calls = []
    get_key = accounts.store.get_key

    async def counted(access_key_id):
        calls.append(access_key_id)
        return await get_key(access_key_id)

    accounts.store.get_key = counted
    secrets = await asyncio.gather(*(accounts.secret_for("AKIAIOSFODNN7EXAMPLE") for _ in range(50)))
    assert secrets == ["s" * 40] * 50 and len(calls) == 1


async def test_a_failed_shared_lookup_fails_its_waiters_and_the_next_one_retries(accounts):
    tenant = await accounts.create_account("tenant", account_id="123456789012")
    await accounts.create_key(tenant.account_id, "AKIAIOSFODNN7EXAMPLE", "s" * 40)
    get_key = accounts.store.get_key

    async def broken(access_key_id):
        await asyncio.sleep(0.01)
        raise OSError("disk")

    accounts.store.get_key = broken
    results = await asyncio.gather(*(accounts.secret_for("AKIAIOSFODNN7EXAMPLE") for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    accounts.store.get_key = get_key
    assert await accounts.secret_for("AKIAIOSFODNN7EXAMPLE") == "s" * 40
