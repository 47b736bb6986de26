"""AWS Data Exports (``bcm-data-exports``) for the FOCUS 1.2 table: exports defined through the
API (as botocore serialises them), delivered into the account's bucket once per change in Data
Exports' layout, the files obeying FOCUS's column rules and adding up to the report's total;
failures recorded as executions; a tenant's export covers only its own usage; boto3 end to end."""
from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile
from decimal import Decimal
from types import SimpleNamespace

import botocore.exceptions
import pytest

from billing import data_exports
from billing.periods import from_us
from billing.report import billing_report

from _billing_testkit import (ACCOUNT, ADMIN, OTHER, TEST_PRICES, Buckets, FakeAccount, FakeContext, T, call,
                              counts, instance_state, stored_bytes)
from test_focus_export import check_focus_rules

GIB = 1 << 30
FOCUS_KEY = "nimbo/focus-monthly/data/BILLING_PERIOD=2026-11/focus-monthly-00001.csv.gz"
MANIFEST_KEY = "nimbo/focus-monthly/metadata/BILLING_PERIOD=2026-11/focus-monthly-Manifest.json"


def export_spec(name="focus-monthly", query="SELECT * FROM FOCUS_1_2_AWS", bucket="reports", **output):
    return {"Name": name, "DataQuery": {"QueryStatement": query},
            "DestinationConfigurations": {"S3Destination": {
                "S3Bucket": bucket, "S3Prefix": "nimbo", "S3Region": "us-east-1",
                "S3OutputConfigurations": {"OutputType": "CUSTOM", "Format": "TEXT_OR_CSV", "Compression": "GZIP",
                                           "Overwrite": "OVERWRITE_REPORT", **output}}},
            "RefreshCadence": {"Frequency": "SYNCHRONOUS"}}


def ctx(db, account=ACCOUNT, admin=False):
    return FakeContext(db, FakeAccount(account, is_admin=admin), now="2026-11-02T00:00:00Z")


async def dx(db, operation, params, account=ACCOUNT, admin=False):
    return await call("bcm-data-exports", operation, data_exports.OPERATIONS[operation], ctx(db, account, admin), params)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(TEST_PRICES)
    return SimpleNamespace(price_list=str(path), data_dir=str(tmp_path / "data"))


@pytest.fixture
async def month(db, config):
    await instance_state(db, "i-1", "running", "2026-11-01T10:30:00Z", tags={"Team": "web"})
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:00:00Z", tags={"Team": "web"})
    await stored_bytes(db, "photos", 3 * GIB, "2026-11-07T13:00:00Z")
    await counts(db, "Requests-Tier1", "PutObject", 1234, "2026-11-07T13:00:00Z", resource="photos")
    await instance_state(db, "i-9", "running", "2026-11-10T00:00:00Z", account=OTHER)
    await instance_state(db, "i-9", "terminated", "2026-11-12T00:00:00Z", account=OTHER)
    await billing_report(db, config, "2026-11", None, "json", now=from_us(T("2026-12-01T00:10:00Z")))   # rates
    return db


def read_focus(store: Buckets, key: str = FOCUS_KEY) -> str:
    return gzip.decompress(store.objects[("reports", key)]).decode()


async def test_create_get_list_update_delete(db):
    arn = (await dx(db, "CreateExport", {"Export": export_spec()}))["ExportArn"]
    assert arn.startswith(f"arn:aws:bcm-data-exports:us-east-1:{ACCOUNT}:export/focus-monthly-")
    got = await dx(db, "GetExport", {"ExportArn": arn})
    assert got["Export"]["Name"] == "focus-monthly" and got["Export"]["ExportArn"] == arn
    assert got["ExportStatus"]["StatusCode"] == "HEALTHY"
    listed = await dx(db, "ListExports", {})
    assert [e["ExportArn"] for e in listed["Exports"]] == [arn]
    changed = export_spec(query="SELECT BilledCost, ServiceName FROM FOCUS_1_2_AWS")
    await dx(db, "UpdateExport", {"ExportArn": arn, "Export": changed})
    assert (await dx(db, "GetExport", {"ExportArn": arn}))["Export"]["DataQuery"]["QueryStatement"].startswith("SELECT BilledCost")
    tables = await dx(db, "ListTables", {})
    assert [t["TableName"] for t in tables["Tables"]] == ["FOCUS_1_2_AWS"]
    # another account cannot see it
    with pytest.raises(Exception) as other:
        await dx(db, "GetExport", {"ExportArn": arn}, account=OTHER)
    assert getattr(other.value, "code", "") == "ResourceNotFoundException"
    assert (await dx(db, "ListExports", {}, account=OTHER))["Exports"] == []
    await dx(db, "DeleteExport", {"ExportArn": arn})
    assert (await dx(db, "ListExports", {}))["Exports"] == []


@pytest.mark.parametrize("change, words", [
    ({"query": "SELECT * FROM COST_AND_USAGE_REPORT"}, "not available"),
    ({"query": "SELECT BilledCost, NoSuchColumn FROM FOCUS_1_2_AWS"}, "NoSuchColumn"),
    ({"query": "DROP TABLE x"}, "SELECT"),
    ({"Format": "PARQUET", "Compression": "PARQUET"}, "Parquet"),
    ({"name": "bad name!"}, "Name"),
])
async def test_bad_exports_are_validation_exceptions(db, change, words):
    spec = export_spec(**change)
    with pytest.raises(Exception) as refused:
        await dx(db, "CreateExport", {"Export": spec})
    assert getattr(refused.value, "code", "") == "ValidationException" and words in str(refused.value)


async def test_a_duplicate_name_is_refused(db):
    await dx(db, "CreateExport", {"Export": export_spec()})
    with pytest.raises(Exception) as twice:
        await dx(db, "CreateExport", {"Export": export_spec()})
    assert getattr(twice.value, "code", "") == "ValidationException"


@pytest.mark.parametrize("who", ["tenant", "admin"])
async def test_delivery_once_per_change_obeys_focus_and_matches_the_report(month, config, who):
    db = month
    account, admin = (ACCOUNT, False) if who == "tenant" else (ADMIN, True)
    arn = (await dx(db, "CreateExport", {"Export": export_spec()}, account=account, admin=admin))["ExportArn"]
    store = Buckets(reports=account)
    attempts = await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:15:00Z"))
    assert [a["status"] for a in attempts] == ["DELIVERY_SUCCESS"]
    assert store.writes == [FOCUS_KEY, MANIFEST_KEY]               # the manifest last
    manifest = json.loads(store.objects[("reports", MANIFEST_KEY)])
    assert manifest["dataFiles"] == [FOCUS_KEY] and manifest["billingPeriod"]["start"].startswith("20261101")
    rows = check_focus_rules(read_focus(store))
    report = json.loads(await billing_report(db, config, "2026-11", None if admin else ACCOUNT, "json",
                                             now=from_us(T("2026-12-01T00:10:00Z"))))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal(report["total"]) > 0
    assert {r["SubAccountId"] for r in rows} == ({ACCOUNT, OTHER} if admin else {ACCOUNT})
    # nothing changed: nothing delivered again
    assert await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T01:15:00Z")) == []
    executions = await dx(db, "ListExecutions", {"ExportArn": arn}, account=account, admin=admin)
    assert [e["ExecutionStatus"]["StatusCode"] for e in executions["Executions"]] == ["DELIVERY_SUCCESS"]
    one = await dx(db, "GetExecution", {"ExportArn": arn, "ExecutionId": executions["Executions"][0]["ExecutionId"]},
                   account=account, admin=admin)
    assert one["Export"]["Name"] == "focus-monthly"


async def test_selected_columns_only_and_create_new_report_keeps_each_delivery(month):
    db = month
    spec = export_spec(query="SELECT BilledCost, ServiceName, ResourceId FROM FOCUS_1_2_AWS",
                       Overwrite="CREATE_NEW_REPORT")
    await dx(db, "CreateExport", {"Export": spec})
    store = Buckets(reports=ACCOUNT)
    attempts = await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:15:00Z"))
    execution = attempts[0]["executionId"]
    key = f"nimbo/focus-monthly/data/BILLING_PERIOD=2026-11/{execution}/focus-monthly-00001.csv.gz"
    header = next(csv.reader(io.StringIO(read_focus(store, key))))
    assert header == ["BilledCost", "ServiceName", "ResourceId"]


async def test_a_missing_bucket_is_a_failed_execution_and_an_unhealthy_export(month):
    db = month
    arn = (await dx(db, "CreateExport", {"Export": export_spec(bucket="nowhere")}))["ExportArn"]
    store = Buckets(reports=ACCOUNT)
    attempts = await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:15:00Z"))
    assert [a["status"] for a in attempts] == ["DELIVERY_FAILURE"] and store.writes == []
    status = (await dx(db, "GetExport", {"ExportArn": arn}))["ExportStatus"]
    assert status["StatusCode"] == "UNHEALTHY" and status["StatusReason"] == "INSUFFICIENT_PERMISSION"
    # retried after the back-off, not at every pass
    assert await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:16:00Z")) == []
    assert len(await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:25:00Z"))) == 1


def test_through_boto3_against_a_live_server():
    from tests.conftest import NimboServer  # noqa: PLC0415
    data_dir = tempfile.mkdtemp(prefix="nimbo-dx-", dir="/tmp")
    server = NimboServer(data_dir, extra_args=["--backend", "fake"]).start()
    try:
        client = server.client("bcm-data-exports")
        arn = client.create_export(Export=export_spec())["ExportArn"]
        assert client.get_export(ExportArn=arn)["Export"]["Name"] == "focus-monthly"
        assert [e["ExportName"] for e in client.list_exports()["Exports"]] == ["focus-monthly"]
        assert client.get_table(TableName="FOCUS_1_2_AWS")["Schema"][0]["Name"] == "BilledCost"
        with pytest.raises(botocore.exceptions.ClientError) as bad:
            client.create_export(Export=export_spec(name="other", query="SELECT * FROM nowhere"))
        assert bad.value.response["Error"]["Code"] == "ValidationException"
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            client.get_export(ExportArn=arn.replace("focus-monthly", "nothing-here"))
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        client.delete_export(ExportArn=arn)
        assert client.list_exports()["Exports"] == []
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_an_unchanged_month_is_not_rebuilt_and_a_change_is_delivered(month, config, monkeypatch):
    """November's delivery is made again only when November's rows of this export change (the
    stored bytes go on into December, which is delivered on its own)."""
    from billing.periods import period_name  # noqa: PLC0415
    db = month
    await dx(db, "CreateExport", {"Export": export_spec()})
    store = Buckets(reports=ACCOUNT)
    assert len(await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:15:00Z"))) == 1
    built = []
    real = data_exports.focus.focus_csv

    def counting(lines, **kwargs):
        built.append(period_name(lines[0].start_us))
        return real(lines, **kwargs)
    monkeypatch.setattr(data_exports.focus, "focus_csv", counting)

    def november(attempts):
        return [a["status"] for a in attempts if a["period"] == "2026-11"]
    assert await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:16:00Z")) == []
    assert built == []                       # the month's revision did not move: nothing rebuilt
    # another account's late usage changes November, not this tenant's rows: rebuilt once, not sent
    await counts(db, "Requests-Tier1", "PutObject", 5, "2026-11-20T13:00:00Z", account=OTHER, resource="b")
    await billing_report(db, config, "2026-11", None, "json", now=from_us(T("2026-12-01T00:20:00Z")))
    assert november(await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:25:00Z"))) == []
    assert built.count("2026-11") == 1
    assert november(await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:26:00Z"))) == []
    assert built.count("2026-11") == 1
    # the tenant's own late usage: delivered again
    await counts(db, "Requests-Tier1", "PutObject", 7, "2026-11-21T13:00:00Z", resource="photos")
    await billing_report(db, config, "2026-11", None, "json", now=from_us(T("2026-12-01T00:30:00Z")))
    again = await data_exports.deliver_exports(db, store.deliver, T("2026-12-01T00:35:00Z"))
    assert november(again) == ["DELIVERY_SUCCESS"] and store.writes.count(FOCUS_KEY) == 2
