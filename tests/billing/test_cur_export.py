"""CUR export: manifest -> reportKeys -> gzip CSV round trip, delivery into the tenant's bucket
through the ``deliver`` seam, failures recorded and retried without losing anything."""
from __future__ import annotations

from decimal import Decimal

import pytest

from billing import report_definitions as cur
from billing.cur_export import build_export, deliver_due
from billing.lines import fetch_lines
from billing.periods import parse_period
from billing.rating import rate_pending

from _billing_testkit import (ACCOUNT, ADMIN, OTHER, Buckets, FakeAccount, FakeContext, T, counts,
                              instance_state, put_report, stored_bytes)

GIB = 1 << 30


@pytest.fixture
async def november(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:30:00Z", tags={"Env": "prod"})
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:00:00Z", tags={"Env": "prod"})
    await stored_bytes(db, "photos", 3 * GIB, "2026-11-10T00:00:00Z", tags={"Owner": "ana"})
    await counts(db, "Requests-Tier2", "GetObject", 12345, "2026-11-10T05:00:00Z", resource="photos")
    await instance_state(db, "i-9", "running", "2026-11-03T00:00:00Z", account=OTHER)
    await instance_state(db, "i-9", "stopped", "2026-11-03T01:00:00Z", account=OTHER)
    await rate_pending(db, prices, T("2026-12-01T00:00:00Z"))
    return db


async def test_export_round_trip_manifest_keys_csv_and_totals(november):
    db = november
    store = Buckets(reports=ACCOUNT)
    await put_report(db)
    [attempt] = await deliver_due(db, store.deliver, T("2026-12-01T00:05:00Z"))
    assert attempt["status"] == "SUCCESS" and attempt["period"] == "2026-11"
    folder = "billing/cur/nimbo-cur/20261101-20261201"
    assembly = attempt["assemblyId"]
    assert store.writes == [f"{folder}/{assembly}/nimbo-cur-1.csv.gz",
                            f"{folder}/{assembly}/nimbo-cur-Manifest.json",      # manifests last
                            f"{folder}/nimbo-cur-Manifest.json"]
    manifest, header, rows = store.read_report("reports", f"{folder}/nimbo-cur-Manifest.json")
    assert manifest["assemblyId"] == assembly and manifest["reportName"] == "nimbo-cur"
    assert manifest["billingPeriod"] == {"start": "20261101T000000.000Z", "end": "20261201T000000.000Z"}
    assert (manifest["compression"], manifest["contentType"], manifest["charset"]) == ("GZIP", "text/csv", "UTF-8")
    assert manifest["bucket"] == "reports" and manifest["account"] == ACCOUNT
    assert header == [f"{c['category']}/{c['name']}" for c in manifest["columns"]]
    for column in ("identity/LineItemId", "identity/TimeInterval", "bill/PayerAccountId", "lineItem/UsageType",
                   "lineItem/UnblendedCost", "lineItem/ResourceId", "pricing/unit", "product/ProductName",
                   "resourceTags/user:Env", "resourceTags/user:Owner"):
        assert column in header
    lines = await fetch_lines(db, *parse_period("2026-11"), ACCOUNT)
    assert len(rows) == len(lines) and {r["lineItem/UsageAccountId"] for r in rows} == {ACCOUNT}
    assert sum(Decimal(r["lineItem/UnblendedCost"]) for r in rows) == sum(line.cost for line in lines)
    box = [r for r in rows if r["lineItem/UsageType"] == "BoxUsage:m5.large"]
    assert [(r["identity/TimeInterval"], r["lineItem/UsageAmount"], r["resourceTags/user:Env"]) for r in box] == [
        ("2026-11-03T10:00:00Z/2026-11-03T11:00:00Z", "0.5", "prod"),
        ("2026-11-03T11:00:00Z/2026-11-03T12:00:00Z", "1", "prod")]
    assert box[0]["lineItem/Operation"] == "RunInstances" and box[0]["pricing/unit"] == "Hrs"
    assert box[0]["product/ProductName"] == "Amazon Elastic Compute Cloud" and box[0]["product/vcpu"] == "2"
    for row in rows:
        assert Decimal(row["lineItem/UnblendedCost"]) == \
            Decimal(row["lineItem/UnblendedRate"]) * Decimal(row["lineItem/UsageAmount"])
    # nothing changed: nothing to deliver again
    assert await deliver_due(db, store.deliver, T("2026-12-01T01:05:00Z")) == []


async def test_the_admin_report_covers_every_account_and_daily_aggregates(november):
    db = november
    store = Buckets(admin=ADMIN)
    await put_report(db, account=ADMIN, bucket="admin", admin=True, TimeUnit="DAILY", AdditionalSchemaElements=[])
    [attempt] = await deliver_due(db, store.deliver, T("2026-12-01T00:05:00Z"))
    manifest, header, rows = store.read_report("admin", "billing/cur/nimbo-cur/20261101-20261201/nimbo-cur-Manifest.json")
    assert "lineItem/ResourceId" not in header
    assert {r["lineItem/UsageAccountId"] for r in rows} == {ACCOUNT, OTHER}
    lines = await fetch_lines(db, *parse_period("2026-11"))
    assert sum(Decimal(r["lineItem/UnblendedCost"]) for r in rows) == sum(line.cost for line in lines)
    box = [r for r in rows if r["lineItem/UsageType"] == "BoxUsage:m5.large" and r["lineItem/UsageAccountId"] == ACCOUNT]
    assert [(r["lineItem/UsageStartDate"], r["lineItem/UsageAmount"]) for r in box] == [("2026-11-03T00:00:00Z", "1.5")]


async def test_a_missing_or_foreign_bucket_is_recorded_and_retried_without_loss(november):
    db = november
    store = Buckets(elsewhere=OTHER)
    await put_report(db, bucket="reports")
    context = FakeContext(db, FakeAccount(ACCOUNT))
    [attempt] = await deliver_due(db, store.deliver, T("2026-12-01T00:05:00Z"))
    assert attempt["status"] == "ERROR_NO_BUCKET" and store.objects == {}
    [described] = (await cur.describe_report_definitions(context, {}))["ReportDefinitions"]
    assert described["ReportStatus"] == {"lastStatus": "ERROR_NO_BUCKET"}
    assert await deliver_due(db, store.deliver, T("2026-12-01T00:05:30Z")) == []     # backing off

    store.owners["reports"] = OTHER                                               # exists, not ours
    [attempt] = await deliver_due(db, store.deliver, T("2026-12-01T00:30:00Z"))
    assert attempt["status"] == "ERROR_PERMISSIONS"

    store.owners["reports"] = ACCOUNT                                             # fixed
    [attempt] = await deliver_due(db, store.deliver, T("2026-12-01T02:00:00Z"))
    assert attempt["status"] == "SUCCESS"
    manifest, _, rows = store.read_report("reports", "billing/cur/nimbo-cur/20261101-20261201/nimbo-cur-Manifest.json")
    lines = await fetch_lines(db, *parse_period("2026-11"), ACCOUNT)
    assert sum(Decimal(r["lineItem/UnblendedCost"]) for r in rows) == sum(line.cost for line in lines)
    [described] = (await cur.describe_report_definitions(context, {}))["ReportDefinitions"]
    assert described["ReportStatus"] == {"lastStatus": "SUCCESS", "lastDelivery": "20261201T020000Z"}


async def test_a_month_rated_again_is_delivered_again(november, prices):
    db = november
    store = Buckets(reports=ACCOUNT)
    await put_report(db)
    [first] = await deliver_due(db, store.deliver, T("2026-12-01T00:05:00Z"))
    await counts(db, "Requests-Tier2", "GetObject", 1, "2026-11-30T23:59:59Z", resource="photos")  # late
    await rate_pending(db, prices, T("2026-12-01T01:00:00Z"))
    attempts = await deliver_due(db, store.deliver, T("2026-12-01T01:05:00Z"))
    assert [a["period"] for a in attempts] == ["2026-11", "2026-12"]   # November again, December's first
    assert attempts[0]["assemblyId"] != first["assemblyId"]


def test_large_reports_are_split_into_numbered_files():
    from billing.lines import LineItem
    line = LineItem("id", ACCOUNT, "us-east-1", "AmazonS3", "Requests-Tier1", "Requests-Tier1", "PutObject", "b",
                    "", 0, 3600_000_000, Decimal(1), "Requests", Decimal("0.000005"), Decimal("0.000005"), "v1",
                    "d", "", "", "", "", {})
    export = build_export([line] * 5, account_id=ACCOUNT, payer=ADMIN, report_name="r", bucket="b", prefix="",
                          period_start=0, period_end=31 * 86400_000_000, assembly_id="a", max_rows=2)
    assert export.manifest["reportKeys"] == ["r/19700101-19700201/a/r-1.csv.gz", "r/19700101-19700201/a/r-2.csv.gz",
                                             "r/19700101-19700201/a/r-3.csv.gz"]
    assert [k for k, _ in export.files][-2:] == ["r/19700101-19700201/a/r-Manifest.json",
                                                 "r/19700101-19700201/r-Manifest.json"]


async def test_a_synchronous_seam_and_how_failures_are_classified(november):
    from billing.cur_export import DeliveryError, delivery_status
    written = {}

    def deliver(bucket, key, data, account_id):       # a plain function works as well
        written[key] = data

    await put_report(november)
    [attempt] = await deliver_due(november, deliver, T("2026-12-01T00:05:00Z"))
    assert attempt["status"] == "SUCCESS" and len(written) == 3

    class NoSuchBucket(Exception):
        code = "NoSuchBucket"

    assert delivery_status(NoSuchBucket()) == "ERROR_NO_BUCKET"
    assert delivery_status(PermissionError()) == "ERROR_PERMISSIONS"
    assert delivery_status(DeliveryError("ERROR_NO_BUCKET")) == "ERROR_NO_BUCKET"
