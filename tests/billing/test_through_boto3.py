"""Cost Explorer and CUR through boto3 against an in-process gateway that serves ``ce`` and
``cur`` with billing's OPERATIONS (as the lead will register them): signing, the JSON protocol and
the error rendering of ``BillingError``."""
from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import boto3
import botocore.config
import botocore.exceptions
import pytest
from aiohttp import web

from billing import cost_explorer, report_definitions
from billing.rating import rate_pending
from billing.schema import ensure_schema
from gateway.app import APP_CONTEXT, create_app
from gateway.config import load_config
from gateway.services import PROTOCOLS, Service

from _billing_testkit import T, instance_state, lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def gateway(tmp_path):
    port = free_port()
    config = load_config(port=port, data_dir=str(tmp_path / "data"), region="us-east-1,eu-central-1")
    services = {name: Service(name, PROTOCOLS[name][0], PROTOCOLS[name][1], ops)
                for name, ops in (("ce", cost_explorer.OPERATIONS), ("cur", report_definitions.OPERATIONS))}
    app = create_app(config, services=services)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    context = app[APP_CONTEXT]
    await ensure_schema(context.db)
    admin = await context.accounts.admin()
    tenant = await context.accounts.create_account("tenant-one")
    keys = {"admin": (admin, await context.accounts.create_key(admin.account_id)),
            "tenant": (tenant, await context.accounts.create_key(tenant.account_id))}
    try:
        yield context, keys, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client(service, endpoint, key, region="eu-central-1"):
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                        config=botocore.config.Config(retries={"max_attempts": 1}))


async def test_cost_explorer_and_cur_through_boto3(gateway, prices):
    context, keys, endpoint = gateway
    db = context.db
    tenant, tenant_key = keys["tenant"]
    admin, admin_key = keys["admin"]
    await instance_state(db, "i-1", "running", "2026-10-03T10:30:00Z", account=tenant.account_id)
    await instance_state(db, "i-1", "stopped", "2026-10-03T12:00:00Z", account=tenant.account_id)
    await rate_pending(db, prices, T("2026-11-01T00:00:00Z"))
    total = sum(Decimal(r["cost"]) for r in await lines(db))

    ce_tenant = client("ce", endpoint, tenant_key)
    request = dict(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"}, Granularity="MONTHLY",
                   Metrics=["UnblendedCost", "UsageQuantity"], GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}])
    out = await asyncio.to_thread(ce_tenant.get_cost_and_usage, **request)
    [group] = out["ResultsByTime"][0]["Groups"]
    assert group["Keys"] == ["Amazon Elastic Compute Cloud - Compute"]
    assert Decimal(group["Metrics"]["UnblendedCost"]["Amount"]) == total == Decimal("0.144")
    assert group["Metrics"]["UsageQuantity"] == {"Amount": "1.5", "Unit": "Hrs"}

    ce_admin = client("ce", endpoint, admin_key, region="us-east-1")
    accounts = await asyncio.to_thread(ce_admin.get_dimension_values, Dimension="LINKED_ACCOUNT",
                                       TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
    assert accounts["DimensionValues"] == [{"Value": tenant.account_id, "Attributes": {"description": "tenant-one"}}]

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await asyncio.to_thread(ce_tenant.get_cost_and_usage, TimePeriod={"Start": "2026-11-01", "End": "2026-10-01"},
                                Granularity="MONTHLY", Metrics=["UnblendedCost"])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "should be before" in caught.value.response["Error"]["Message"]

    cur = client("cur", endpoint, tenant_key, region="us-east-1")
    definition = {"ReportName": "monthly", "TimeUnit": "DAILY", "Format": "textORcsv", "Compression": "GZIP",
                  "AdditionalSchemaElements": ["RESOURCES"], "S3Bucket": "bills", "S3Prefix": "cur",
                  "S3Region": "us-east-1"}
    await asyncio.to_thread(cur.put_report_definition, ReportDefinition=definition)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await asyncio.to_thread(cur.put_report_definition, ReportDefinition=definition)
    assert caught.value.response["Error"]["Code"] == "DuplicateReportNameException"
    described = await asyncio.to_thread(cur.describe_report_definitions)
    assert [d["ReportName"] for d in described["ReportDefinitions"]] == ["monthly"]
    await asyncio.to_thread(cur.delete_report_definition, ReportName="monthly")
