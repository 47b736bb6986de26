"""One number everywhere: the sum of the line items = the report's total = Cost Explorer's total
= the CUR CSV's total, for a tenant and for the admin; and the report's formats."""
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from billing import cost_explorer as ce
from billing.cur_export import deliver_due
from billing.periods import from_us
from billing.report import billing_report

from _billing_testkit import (ACCOUNT, ADMIN, OTHER, TEST_PRICES, Buckets, FakeAccount, FakeContext, T, call,
                              counts, instance_state, lines, put_report, stored_bytes, volume_state)

GIB = 1 << 30


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(TEST_PRICES)
    return SimpleNamespace(price_list=str(path), data_dir=str(tmp_path / "data"))


@pytest.fixture
async def month(db):
    await instance_state(db, "i-1", "running", "2026-10-31T23:30:00Z", tags={"Env": "prod"})
    await instance_state(db, "i-1", "stopped", "2026-11-02T07:13:29Z", tags={"Env": "prod"})
    await instance_state(db, "i-2", "running", "2026-11-05T10:00:00Z", instance_type="t3.micro")
    await instance_state(db, "i-2", "stopped", "2026-11-05T10:00:20Z", instance_type="t3.micro")
    await instance_state(db, "i-3", "running", "2026-11-20T00:00:00Z", region="eu-west-1")
    await volume_state(db, "vol-1", "available", 100, "2026-11-01T00:00:00Z")
    await volume_state(db, "vol-1", "deleted", 100, "2026-11-16T00:00:00Z")
    await stored_bytes(db, "photos", 7 * GIB + 12345, "2026-11-07T13:00:00Z", tags={"Env": "prod"})
    await stored_bytes(db, "photos", -GIB, "2026-11-20T13:00:00Z", tags={"Env": "prod"})
    await counts(db, "Requests-Tier1", "PutObject", 999, "2026-11-07T13:00:00Z", resource="photos")
    await counts(db, "DataTransfer-Out-Bytes", "GetObject", 5 * GIB + 7, "2026-11-08T13:00:00Z", resource="photos")
    await instance_state(db, "i-9", "running", "2026-11-10T00:00:00Z", account=OTHER)
    await instance_state(db, "i-9", "terminated", "2026-11-12T00:00:00Z", account=OTHER)
    return db


@pytest.mark.parametrize("who", ["tenant", "admin"])
async def test_line_items_report_cost_explorer_and_cur_agree(month, config, who):
    db = month
    account = ACCOUNT if who == "tenant" else None
    report = json.loads(await billing_report(db, config, "2026-11", account, "json",
                                             now=from_us(T("2026-12-01T00:10:00Z"))))
    rows = [r for r in await lines(db) if T("2026-11-01T00:00:00Z") <= r["start_us"] < T("2026-12-01T00:00:00Z")
            and (account is None or r["account_id"] == account)]
    line_total = sum((Decimal(r["cost"]) for r in rows), Decimal(0))
    assert line_total > 0 and Decimal(report["total"]) == line_total

    signer = FakeAccount(ADMIN, is_admin=True) if who == "admin" else FakeAccount(ACCOUNT)
    explorer = await call("ce", "GetCostAndUsage", ce.get_cost_and_usage, FakeContext(db, signer),
                          {"TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"}, "Granularity": "MONTHLY",
                           "Metrics": ["UnblendedCost"]})
    assert Decimal(explorer["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == line_total

    store = Buckets(reports=signer.account_id)
    await put_report(db, account=signer.account_id, admin=who == "admin")
    await deliver_due(db, store.deliver, T("2026-12-01T00:15:00Z"))
    _, _, csv_rows = store.read_report("reports", "billing/cur/nimbo-cur/20261101-20261201/nimbo-cur-Manifest.json")
    assert sum(Decimal(r["lineItem/UnblendedCost"]) for r in csv_rows) == line_total

    # and per service, the report's totals are Cost Explorer's groups
    grouped = await call("ce", "GetCostAndUsage", ce.get_cost_and_usage, FakeContext(db, signer),
                         {"TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"}, "Granularity": "MONTHLY",
                          "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]})
    by_service = {g["Keys"][0]: g["Metrics"]["UnblendedCost"]["Amount"] for g in grouped["ResultsByTime"][0]["Groups"]}
    assert by_service == {s["service"]: s["cost"] for s in report["services"]}
    assert set(by_service) == {"Amazon Elastic Compute Cloud - Compute", "EC2 - Other", "Amazon Simple Storage Service"}


async def test_report_formats(month, config):
    now = from_us(T("2026-12-01T00:10:00Z"))
    table = await billing_report(month, config, "2026-11", ACCOUNT, "table", now=now)
    assert "Nimbo bill for 2026-11, account 111111111111" in table and "BoxUsage:m5.large" in table
    assert "EU-BoxUsage:m5.large" in table and "EBS:VolumeUsage.gp2" in table
    text = await billing_report(month, config, "2026-11", None, "csv", now=now)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["account", "account_name", "service", "product_code", "usage_type", "unit", "amount",
                       "cost_usd"]
    assert rows[-1][0] == "TOTAL"
    assert {r[0] for r in rows[1:-1]} == {ACCOUNT, OTHER}
    data = json.loads(await billing_report(month, config, "2026-11", None, "json", now=now))
    assert Decimal(rows[-1][-1]) == Decimal(data["total"]) == sum(Decimal(i["cost"]) for i in data["items"])
    volume = next(i for i in data["items"] if i["usageType"] == "EBS:VolumeUsage.gp2")
    assert volume == {"account": ACCOUNT, "accountName": "", "service": "EC2 - Other", "productCode": "AmazonEC2",
                      "usageType": "EBS:VolumeUsage.gp2", "unit": "GB-Mo", "amount": "50", "cost": "5"}
    box = next(i for i in data["items"] if i["usageType"] == "BoxUsage:t3.micro")
    assert box["amount"] == "0.016666666667"                                   # 20 s billed as 60 s
    for bad in ("2026-13", "November", ""):
        with pytest.raises(ValueError):
            await billing_report(month, config, bad, None, "json", now=now)
    with pytest.raises(ValueError):
        await billing_report(month, config, "2026-11", None, "xml", now=now)
