"""The FOCUS 1.2 export: every row obeys the specification's column rules (the FinOps Foundation's
``focus-validator`` is not installable here: its releases that know FOCUS 1.2 need Python 3.12,
the one for 3.11 knows only 1.0's predecessors, so the rules are checked here column by column),
and its BilledCost adds up to the report's, Cost Explorer's and the CUR's total exactly."""
from __future__ import annotations

import csv

import gzip
import io
import json
import re
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

import pytest

from billing import cost_explorer as ce
from billing import focus
from billing.cur_export import deliver_due
from billing.lines import fetch_lines
from billing.periods import from_us
from billing.report import billing_report

from _billing_testkit import (ACCOUNT, ADMIN, OTHER, TEST_PRICES, Buckets, FakeAccount, FakeContext, T, call,
                              counts, instance_state, put_report, stored_bytes, volume_state)

GIB = 1 << 30
NOW = "2026-12-01T00:10:00Z"

# FOCUS 1.2's allowed values.
SERVICE_CATEGORIES = {"AI and Machine Learning", "Analytics", "Business Applications", "Compute",
                      "Databases", "Developer Tools", "Multicloud", "Identity", "Integration",
                      "Internet of Things", "Management and Governance", "Media", "Migration", "Mobile",
                      "Networking", "Security", "Storage", "Web", "Other"}
SUBCATEGORIES = {"Compute": {"Virtual Machines", "Bare Metal", "Containers", "Serverless Compute",
                             "End User Computing", "Quantum Compute", "Other (Compute)"},
                 "Storage": {"Object Storage", "Block Storage", "File Storage", "Backup Storage",
                             "Storage Platforms", "Other (Storage)"},
                 "Networking": {"Application Networking", "Content Delivery", "Network Connectivity",
                                "Network Infrastructure", "Network Security", "Other (Networking)"},
                 "Other": {"Other (Other)"}}
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
UNIT = re.compile(r"[A-Za-z]+(-[A-Za-z]+)?(/[A-Za-z]+)?")
PASCAL = re.compile(r"[A-Z][A-Za-z]*")


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
    await instance_state(db, "i-3", "running", "2026-11-28T00:00:00Z", region="eu-west-1")
    await volume_state(db, "vol-1", "available", 100, "2026-11-01T00:00:00Z")
    await volume_state(db, "vol-1", "deleted", 100, "2026-11-16T00:00:00Z")
    await stored_bytes(db, "photos", 7 * GIB + 12345, "2026-11-07T13:00:00Z", tags={"Env": "prod"})
    await counts(db, "Requests-Tier1", "PutObject", 999, "2026-11-07T13:00:00Z", resource="photos")
    await counts(db, "DataTransfer-Out-Bytes", "GetObject", 5 * GIB + 7, "2026-11-08T13:00:00Z", resource="photos")
    await instance_state(db, "i-9", "running", "2026-11-10T00:00:00Z", account=OTHER)
    await instance_state(db, "i-9", "terminated", "2026-11-12T00:00:00Z", account=OTHER)
    return db


def _decimal(text: str, column: str) -> Decimal:
    assert "e" not in text.lower(), f"{column}: {text!r} uses an exponent"
    try:
        return Decimal(text)
    except InvalidOperation:
        raise AssertionError(f"{column}: {text!r} is not a decimal") from None


def check_focus_rules(text: str) -> list[dict]:
    """The FOCUS 1.2 column rules a conformant cost and usage dataset obeys (raises on the first
    broken one); returns the rows."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in focus.MANDATORY if c not in header]
    assert not missing, f"mandatory columns missing: {missing}"
    assert len(focus.MANDATORY) == 21
    for column in header:   # FOCUS columns are PascalCase; a provider's own start with x_
        assert PASCAL.fullmatch(column) or column.startswith("x_"), column
    rows = list(reader)
    for row in rows:
        for column in ("BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodStart",
                       "BillingPeriodEnd", "ChargeCategory", "ChargePeriodStart", "ChargePeriodEnd",
                       "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ProviderName",
                       "PublisherName", "ServiceCategory", "ServiceName"):
            assert row[column] != "", f"{column} must not be null"
        costs = {c: _decimal(row[c], c) for c in ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")}
        assert row["BillingCurrency"] == "USD"        # ISO 4217
        for column in focus.DATETIME_COLUMNS:
            assert DATETIME.fullmatch(row[column]), f"{column}: {row[column]!r} is not ISO 8601 UTC"
        assert row["BillingPeriodStart"] < row["BillingPeriodEnd"]
        assert row["ChargePeriodStart"] < row["ChargePeriodEnd"]
        assert row["BillingPeriodStart"] <= row["ChargePeriodStart"] and row["ChargePeriodEnd"] <= row["BillingPeriodEnd"]
        assert row["ChargeCategory"] in CHARGE_CATEGORIES
        assert row["ChargeClass"] in ("", "Correction")
        assert row["ChargeFrequency"] in ("One-Time", "Recurring", "Usage-Based")
        assert not (row["ChargeCategory"] == "Usage" and row["ChargeFrequency"] == "One-Time")
        assert row["PricingCategory"] in ("Standard", "Dynamic", "Committed", "Other")
        assert row["ServiceCategory"] in SERVICE_CATEGORIES
        assert row["ServiceSubcategory"] in SUBCATEGORIES[row["ServiceCategory"]]
        if row["ChargeCategory"] in ("Usage", "Purchase"):
            quantity = _decimal(row["PricingQuantity"], "PricingQuantity")
            assert UNIT.fullmatch(row["PricingUnit"]), row["PricingUnit"]
            # ListCost = ListUnitPrice x PricingQuantity; ContractedCost likewise
            assert costs["ListCost"] == _decimal(row["ListUnitPrice"], "ListUnitPrice") * quantity
            assert costs["ContractedCost"] == _decimal(row["ContractedUnitPrice"], "ContractedUnitPrice") * quantity
        if row["ChargeCategory"] == "Usage" and row["ChargeClass"] != "Correction":
            _decimal(row["ConsumedQuantity"], "ConsumedQuantity")
            assert UNIT.fullmatch(row["ConsumedUnit"])
        if row["Tags"]:
            tags = json.loads(row["Tags"])
            assert isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
        assert row["SubAccountId"] and row["RegionId"] and row["SkuId"]
    return rows


@pytest.mark.parametrize("who", ["tenant", "admin"])
async def test_focus_totals_agree_with_report_cost_explorer_and_cur(month, config, who):
    db = month
    account = ACCOUNT if who == "tenant" else None
    now = from_us(T(NOW))
    report = json.loads(await billing_report(db, config, "2026-11", account, "json", now=now))
    text = await billing_report(db, config, "2026-11", account, "focus", now=now)
    rows = check_focus_rules(text)
    assert Decimal(report["total"]) > 0
    assert focus.total_billed(text) == Decimal(report["total"])        # to the last decimal
    assert {r["SubAccountId"] for r in rows} == ({ACCOUNT} if account else {ACCOUNT, OTHER})

    signer = FakeAccount(ADMIN, is_admin=True) if who == "admin" else FakeAccount(ACCOUNT)
    explorer = await call("ce", "GetCostAndUsage", ce.get_cost_and_usage, FakeContext(db, signer, now=NOW),
                          {"TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"}, "Granularity": "MONTHLY",
                           "Metrics": ["UnblendedCost"]})
    assert Decimal(explorer["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == focus.total_billed(text)

    store = Buckets(reports=signer.account_id)
    await put_report(db, account=signer.account_id, admin=who == "admin")
    await deliver_due(db, store.deliver, T("2026-12-01T00:15:00Z"))
    _, _, cur_rows = store.read_report("reports", "billing/cur/nimbo-cur/20261101-20261201/nimbo-cur-Manifest.json")
    assert sum(Decimal(r["lineItem/UnblendedCost"]) for r in cur_rows) == focus.total_billed(text)


async def test_focus_rows_say_what_was_used(month, config):
    text = await billing_report(month, config, "2026-11", ACCOUNT, "focus", now=from_us(T(NOW)))
    rows = check_focus_rules(text)
    box = [r for r in rows if r["ResourceId"] == "i-1"]
    assert box and all(r["ServiceCategory"] == "Compute" and r["ServiceSubcategory"] == "Virtual Machines"
                       and r["PricingUnit"] == "Hours" and r["ResourceType"] == "Instance"
                       and r["Tags"] == '{"user:Env":"prod"}' for r in box)
    # i-1 ran from 31 Oct 23:30: November's rows start at the billing period's start
    assert min(r["ChargePeriodStart"] for r in box) == "2026-11-01T00:00:00Z"
    assert all(r["BillingPeriodStart"] == "2026-11-01T00:00:00Z" and r["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
               for r in rows)
    storage = [r for r in rows if r["x_UsageType"] == "TimedStorage-ByteHrs"]
    assert storage and {r["ServiceCategory"] for r in storage} == {"Storage"}
    assert {r["PricingUnit"] for r in storage} == {"GB-Months"} and {r["ResourceType"] for r in storage} == {"Bucket"}
    transfer = [r for r in rows if r["x_UsageType"] == "DataTransfer-Out-Bytes"]
    assert transfer and transfer[0]["ServiceCategory"] == "Networking"
    eu = [r for r in rows if r["RegionId"] == "eu-west-1"]
    assert eu and eu[0]["RegionName"] == "Europe (Ireland)" and eu[0]["x_UsageType"] == "EU-BoxUsage:m5.large"
    assert {r["SubAccountId"] for r in rows} == {ACCOUNT}


async def test_focus_csv_opens_in_a_dataframe_tool(month, config):
    """What a finance user does with the file: read it with a columnar CSV reader and sum it."""
    pacsv = pytest.importorskip("pyarrow.csv")
    import pyarrow.compute as pc
    text = await billing_report(month, config, "2026-11", None, "focus", now=from_us(T(NOW)))
    table = pacsv.read_csv(io.BytesIO(text.encode()))
    assert table.column_names == focus.COLUMNS
    assert table.num_rows == len(text.splitlines()) - 1 > 0
    assert abs(pc.sum(table["BilledCost"]).as_py() - float(focus.total_billed(text))) < 1e-6


async def test_focus_delivery_files_follow_data_exports_layout(month, config):
    await billing_report(month, config, "2026-11", ACCOUNT, "json", now=from_us(T(NOW)))   # rates the month
    lines = await fetch_lines(month, T("2026-11-01T00:00:00Z"), T("2026-12-01T00:00:00Z"), ACCOUNT)
    files = focus.build_focus_export(lines, account_id=ACCOUNT, payer=ADMIN, names={ADMIN: "admin"},
                                     export_name="focus", bucket="reports", prefix="exports",
                                     period_start=T("2026-11-01T00:00:00Z"), period_end=T("2026-12-01T00:00:00Z"),
                                     execution_id="e-1")
    (data_key, data), (manifest_key, manifest) = files     # the manifest is written last
    assert data_key == "exports/focus/data/BILLING_PERIOD=2026-11/focus-00001.csv.gz"
    assert manifest_key == "exports/focus/metadata/BILLING_PERIOD=2026-11/focus-Manifest.json"
    meta = json.loads(manifest)
    assert meta["dataFiles"] == [data_key] and [c["name"] for c in meta["columns"]] == focus.COLUMNS
    rows = check_focus_rules(gzip.decompress(data).decode())
    assert rows
    assert {r["BillingAccountId"] for r in rows} == {ADMIN} and {r["BillingAccountName"] for r in rows} == {"admin"}
    assert sum(Decimal(r["BilledCost"]) for r in rows) == sum((line.cost for line in lines), Decimal(0))


def test_rule_check_fails_on_a_broken_row():
    """The rule check itself can fail: a null BilledCost and a bad ServiceCategory are caught."""
    good = ",".join(focus.COLUMNS)
    row = {c: "" for c in focus.COLUMNS}
    with pytest.raises(AssertionError):
        check_focus_rules(good + "\n" + ",".join(row[c] for c in focus.COLUMNS) + "\n")
    with pytest.raises(AssertionError):
        check_focus_rules(",".join(c for c in focus.COLUMNS if c != "ServiceName") + "\n")

