"""KMS as the gateway serves it, in process with an injected clock: requests metered to the caller
(``awskms`` / ``KMS-Requests``) and priced in the billing report; the deletion sweep run at
start-up by the one process that holds the data directory's lock."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal

import boto3
import botocore.config
import pytest
from aiohttp.test_utils import TestServer

from _kms_testkit import Clock
from backend.fake import FakeDriver
from billing.report import billing_report
from gateway.app import APP_CONTEXT, create_app
from gateway.config import Config
from kms_api.deletion import deletion_sweeper


def call(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    import botocore.auth
    import botocore.crt.auth

    def signing_time(remove_tzinfo: bool = True) -> dt.datetime:
        return clock().replace(tzinfo=None) if remove_tzinfo else clock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", signing_time)
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", signing_time)
    return clock


async def _start(tmp_path, clock):
    config = Config(data_dir=str(tmp_path / "data"), backend="fake", meter_flush_seconds=3600,
                    billing_interval_seconds=3600, ec2_housekeeping_seconds=3600)
    app = create_app(config, clock=clock, backend=FakeDriver(clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return app, server


async def _client(app, server, name="kms-tenant"):
    context = app[APP_CONTEXT]
    account = await context.accounts.create_account(name)
    key = await context.accounts.create_key(account.account_id)
    kms = boto3.client("kms", endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                       aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                       config=botocore.config.Config(retries={"max_attempts": 1}))
    return account, kms


async def test_requests_are_metered_and_priced(tmp_path, clock):
    app, server = await _start(tmp_path, clock)
    try:
        context = app[APP_CONTEXT]
        account, kms = await _client(app, server)
        key_id = (await call(kms.create_key))["KeyMetadata"]["KeyId"]
        for _ in range(3):
            await call(kms.encrypt, KeyId=key_id, Plaintext=b"x")
        with pytest.raises(Exception):
            await call(kms.describe_key, KeyId="alias/none")      # a refused request is a request too
        await context.meter_buffer.flush()
        rows = await context.db.fetchall("SELECT operation, amount FROM usage_counts WHERE account_id = ?"
                                         " AND service = 'awskms' AND usage_type = 'KMS-Requests'",
                                         (account.account_id,))
        assert {r["operation"]: r["amount"] for r in rows} == {"CreateKey": 1, "Encrypt": 3, "DescribeKey": 1}
        clock.now += dt.timedelta(hours=2)
        await context.billing.run_once()
        report = json.loads(await billing_report(context.db, context.config, "2026-05", account.account_id,
                                                 "json", now=clock(), rate=False))
        line = next(i for i in report["items"] if i["productCode"] == "awskms"
                    and i["usageType"] == "us-east-1-KMS-Requests")
        assert Decimal(line["amount"]) == 5 and Decimal(line["cost"]) == 5 * Decimal("0.000003")
    finally:
        await server.close()


async def test_keys_past_their_deletion_date_are_swept_at_start_up(tmp_path, clock):
    app, server = await _start(tmp_path, clock)
    try:
        _, kms = await _client(app, server)
        doomed = (await call(kms.create_key))["KeyMetadata"]["KeyId"]
        kept = (await call(kms.create_key))["KeyMetadata"]["KeyId"]
        await call(kms.create_alias, AliasName="alias/doomed", TargetKeyId=doomed)
        await call(kms.schedule_key_deletion, KeyId=doomed, PendingWindowInDays=7)
        await call(kms.schedule_key_deletion, KeyId=kept, PendingWindowInDays=30)
    finally:
        await server.close()
    clock.now += dt.timedelta(days=8)
    app, server = await _start(tmp_path, clock)
    try:
        context = app[APP_CONTEXT]
        for _ in range(100):      # the sweep runs as a task right after start-up
            if await context.db.fetchone("SELECT 1 FROM kms_keys WHERE key_id = ?", (doomed,)) is None:
                break
            await asyncio.sleep(0.05)
        _, kms = await _client(app, server, "kms-tenant-2")
        rows = await context.db.fetchall("SELECT key_id, state FROM kms_keys")
        assert [(r["key_id"], r["state"]) for r in rows if r["key_id"] in (doomed, kept)] == [(kept, "PendingDeletion")]
        assert await context.db.fetchone("SELECT 1 FROM kms_aliases WHERE name = 'alias/doomed'") is None
    finally:
        await server.close()


async def test_only_one_process_sweeps_a_data_directory(tmp_path):
    lock = str(tmp_path / "kms-deletion.lock")
    first, second = deletion_sweeper(None, lock, 60), deletion_sweeper(None, lock, 60)
    try:
        assert first.leader() is True
        assert second.leader() is False
        await first.stop()
        assert second.leader() is True
    finally:
        await first.stop()
        await second.stop()
