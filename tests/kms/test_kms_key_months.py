"""KMS key-months as AWS bills them: each customer managed key $1 a month prorated hourly while it
exists (Enabled or Disabled), nothing while pending deletion unless the deletion is cancelled
(then "as though it was never scheduled"), nothing after deletion, nothing for AWS managed keys;
usage type ``<region>-KMS-Keys`` of ``awskms`` in key-months (unit ``Keys``). Handlers with an
injected clock, rated by the real rater against the shipped price list, and read back through the
report's lines, the CUR rows and Cost Explorer."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

from _kms_testkit import ALICE, BOB, Kms
from billing.cost_explorer import OPERATIONS as CE
from billing.cur_export import build_rows, columns_for
from billing.lines import fetch_lines
from billing.periods import to_us
from billing.prices import PriceSource
from billing.rating import PLACES, rate_pending
from kms_api.data_keys import generate_data_key
from kms_api.deletion import sweep
from kms_api.state import state_of
from storage.usage import record_event

MAY_HOURS = 31 * 24
MAY = (to_us(dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)), to_us(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)))


def key_months(hours: int, month_hours: int = MAY_HOURS) -> Decimal:
    return (Decimal(hours) / month_hours).quantize(Decimal(1).scaleb(-PLACES))


async def _rate(app) -> list:
    prices = PriceSource(None, None).load()
    await rate_pending(app.db, prices, to_us(app.clock()))
    return [line for line in await fetch_lines(app.db, *MAY) if line.product_code == "awskms"]


def _advance(app, hours: float) -> None:
    app.clock.now += dt.timedelta(hours=hours)


async def test_a_key_bills_one_dollar_a_month_prorated_hourly(app, alice):
    key = (await alice("CreateKey"))["KeyMetadata"]          # 2026-05-01 12:00
    _advance(app, 5)
    await alice("DisableKey", KeyId=key["KeyId"])            # Disabled keys bill too
    _advance(app, 5)
    lines = await _rate(app)
    assert {line.usage_type for line in lines} == {"us-east-1-KMS-Keys"}
    assert len(lines) == 10                                  # one line per hour, none spans two
    assert all(line.resource_id == key["Arn"] and line.account_id == ALICE for line in lines)
    assert all(line.unit == "Keys" and line.rate == 1 and line.operation == "CreateKey" for line in lines)
    assert sum(line.amount for line in lines) == key_months(10) == Decimal("0.013440860215")
    assert sum(line.cost for line in lines) == key_months(10)


async def test_pending_deletion_is_free_unless_cancelled_then_deleted_bills_nothing(app, alice):
    key = (await alice("CreateKey"))["KeyMetadata"]
    _advance(app, 3)
    await alice("ScheduleKeyDeletion", KeyId=key["KeyId"], PendingWindowInDays=7)
    _advance(app, 4)
    assert sum(line.amount for line in await _rate(app)) == key_months(3)
    await alice("CancelKeyDeletion", KeyId=key["KeyId"])     # the 4 pending hours bill after all
    _advance(app, 2)
    assert sum(line.amount for line in await _rate(app)) == key_months(9)
    await alice("ScheduleKeyDeletion", KeyId=key["KeyId"], PendingWindowInDays=7)
    _advance(app, 7 * 24 + 1)
    assert await sweep(await state_of(app)) == [key["KeyId"]]
    _advance(app, 24)
    lines = await _rate(app)
    assert sum(line.amount for line in lines) == key_months(9)
    assert max(line.end_us for line in lines) == to_us(dt.datetime(2026, 5, 1, 21, tzinfo=dt.timezone.utc))
    events = await app.db.fetchall("SELECT attrs FROM usage_events WHERE kind = 'kms_key_state' ORDER BY at_us, seq")
    assert [e["attrs"] for e in events][-1] == '{"state": "Deleted"}'


async def test_aws_managed_keys_are_free_and_each_account_pays_for_its_own(app, alice, bob):
    await generate_data_key(app, ALICE, None, {"a": "b"})      # alias/aws/s3, made on first use
    mine = (await alice("CreateKey"))["KeyMetadata"]
    theirs = (await bob("CreateKey"))["KeyMetadata"]
    eu = await Kms(app, BOB, "eu-west-2")("CreateKey")
    _advance(app, 2)
    lines = await _rate(app)
    by_account = {}
    for line in lines:
        by_account.setdefault(line.account_id, set()).add((line.resource_id, line.usage_type))
    assert by_account == {ALICE: {(mine["Arn"], "us-east-1-KMS-Keys")},
                          BOB: {(theirs["Arn"], "us-east-1-KMS-Keys"),
                                (eu["KeyMetadata"]["Arn"], "eu-west-2-KMS-Keys")}}


async def test_a_refused_change_records_nothing_and_a_replay_counts_once(app, alice):
    key = (await alice("CreateKey"))["KeyMetadata"]
    await alice("ScheduleKeyDeletion", KeyId=key["KeyId"], PendingWindowInDays=7)
    await alice.fails("ScheduleKeyDeletion", "KMSInvalidStateException", KeyId=key["KeyId"])
    await alice.fails("EnableKey", "KMSInvalidStateException", KeyId=key["KeyId"])
    rows = await app.db.fetchall("SELECT dedupe_key, account_id, region, service, kind, resource_id, at_us,"
                                 " quantity, attrs FROM usage_events WHERE kind = 'kms_key_state'")
    assert len(rows) == 2
    async with app.db.transaction() as tx:
        for row in rows:
            assert not await record_event(tx, **{**dict(row), "attrs": json.loads(row["attrs"])})
    assert len(await app.db.fetchall("SELECT 1 FROM usage_events WHERE kind = 'kms_key_state'")) == 2


async def test_cur_rows_and_cost_explorer_show_the_key_months(app, alice):
    await alice("CreateKey")
    _advance(app, 6)
    lines = await _rate(app)
    columns = columns_for(lines, True)
    header = [f"{c}/{n}" for c, n, _ in columns]
    rows = [dict(zip(header, row)) for row in build_rows(lines, columns, payer=ALICE, period_start=MAY[0],
                                                         period_end=MAY[1])]
    assert {(r["lineItem/ProductCode"], r["lineItem/UsageType"], r["pricing/unit"]) for r in rows} == {
        ("awskms", "us-east-1-KMS-Keys", "Keys")}
    assert sum(Decimal(r["lineItem/UnblendedCost"]) for r in rows) == key_months(6)
    ctx = SimpleNamespace(app=app, account=SimpleNamespace(account_id=ALICE, is_admin=False), region="us-east-1")
    out = await _cost_and_usage(ctx)
    groups = {g["Keys"][0]: g for g in out["ResultsByTime"][0]["Groups"]}
    assert Decimal(groups["us-east-1-KMS-Keys"]["Metrics"]["UnblendedCost"]["Amount"]) == key_months(6)


async def _cost_and_usage(ctx) -> dict:
    return await CE["GetCostAndUsage"](ctx, {
        "TimePeriod": {"Start": "2026-05-01", "End": "2026-06-01"}, "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
        "Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["AWS Key Management Service"]}}})


async def test_keys_made_before_metering_start_billing_at_start_up(app, alice):
    from kms_api.key_months import meter_existing_keys
    key = (await alice("CreateKey"))["KeyMetadata"]
    doomed = (await alice("CreateKey"))["KeyMetadata"]
    await alice("ScheduleKeyDeletion", KeyId=doomed["KeyId"], PendingWindowInDays=7)
    await alice("CreateKey")
    async with app.db.transaction() as tx:      # as if made by a release that did not meter key-months
        await tx.execute("DELETE FROM usage_events WHERE kind = 'kms_key_state'"
                         " AND resource_id IN (?, ?)", (key["Arn"], doomed["Arn"]))
    _advance(app, 4)
    start_up = to_us(app.clock())
    assert await meter_existing_keys(app.db, start_up) == 2
    assert await meter_existing_keys(app.db, start_up + 1) == 0          # once
    _advance(app, 3)
    lines = await _rate(app)
    per_key = {}
    for line in lines:
        per_key[line.resource_id] = per_key.get(line.resource_id, 0) + line.amount
    assert per_key[key["Arn"]] == key_months(3)          # from start-up on, earlier hours not rewritten
    assert doomed["Arn"] not in per_key                  # pending deletion: free
    assert len(per_key) == 2                             # the third key was metered since its creation


async def test_key_months_through_boto3_cost_explorer_and_the_report(tmp_path, monkeypatch):
    import asyncio
    import json as json_module

    import boto3
    import botocore.auth
    import botocore.config
    import botocore.crt.auth
    from aiohttp.test_utils import TestServer

    from _kms_testkit import Clock
    from backend.fake import FakeDriver
    from billing.report import billing_report
    from gateway.app import APP_CONTEXT, create_app
    from gateway.config import Config

    clock = Clock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda remove_tzinfo=True: clock().replace(tzinfo=None) if remove_tzinfo else clock())
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime",
                        lambda remove_tzinfo=True: clock().replace(tzinfo=None) if remove_tzinfo else clock())
    config = Config(data_dir=str(tmp_path / "data"), backend="fake", meter_flush_seconds=3600,
                    billing_interval_seconds=3600, ec2_housekeeping_seconds=3600)
    app = create_app(config, clock=clock, backend=FakeDriver(clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        context = app[APP_CONTEXT]
        account = await context.accounts.create_account("key-months")
        cred = await context.accounts.create_key(account.account_id)

        def client(service):
            return boto3.client(service, endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                                aws_access_key_id=cred.access_key_id, aws_secret_access_key=cred.secret_access_key,
                                config=botocore.config.Config(retries={"max_attempts": 1}))
        kms_client, ce = client("kms"), client("ce")
        arn = (await asyncio.to_thread(kms_client.create_key))["KeyMetadata"]["Arn"]
        clock.now += dt.timedelta(hours=30)                  # 30 hours: 30/744 key-month of May
        await context.billing.run_once()
        out = await asyncio.to_thread(
            ce.get_cost_and_usage, TimePeriod={"Start": "2026-05-01", "End": "2026-06-01"}, Granularity="MONTHLY",
            Metrics=["UnblendedCost", "UsageQuantity"], GroupBy=[{"Type": "DIMENSION", "Key": "USAGE_TYPE"}])
        groups = {g["Keys"][0]: g["Metrics"] for g in out["ResultsByTime"][0]["Groups"]}
        assert Decimal(groups["us-east-1-KMS-Keys"]["UnblendedCost"]["Amount"]) == key_months(30)
        assert Decimal(groups["us-east-1-KMS-Keys"]["UsageQuantity"]["Amount"]) == key_months(30)
        report = json_module.loads(await billing_report(context.db, context.config, "2026-05", account.account_id,
                                                        "json", now=clock(), rate=False))
        item = next(i for i in report["items"] if i["usageType"] == "us-east-1-KMS-Keys")
        assert Decimal(item["cost"]) == key_months(30) and item["unit"] == "Keys"
        lines = await fetch_lines(context.db, *MAY, account.account_id)
        assert {line.resource_id for line in lines if line.usage_type == "us-east-1-KMS-Keys"} == {arn}
    finally:
        await server.close()
