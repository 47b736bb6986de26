"""Billing through the real API with an injected clock: an instance run and stopped through EC2,
objects put and deleted through S3, then the table report, Cost Explorer (via boto3 and aws-cli)
and a Cost and Usage Report delivered into the tenant's bucket must agree with a hand calculation
and with each other, to the last decimal."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import io
import json
from decimal import Decimal

import boto3
import botocore.config
import pytest
from aiohttp.test_utils import TestServer

from backend.fake import FakeDriver
from billing.report import billing_report
from ec2_api.images import register_tiny_image
from gateway.app import APP_CONTEXT, create_app
from gateway.config import Config

UTC = dt.timezone.utc
FAST = {"Delay": 0.2, "MaxAttempts": 50}
MIB = 1 << 20


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: str) -> None:
        self.now = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))


def call(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def live(tmp_path, monkeypatch):
    clock = Clock(dt.datetime(2026, 11, 2, 10, 30, tzinfo=UTC))
    # The clients live in the same simulated time as the server (their signatures carry it).
    import botocore.auth
    import botocore.crt.auth

    def signing_time(remove_tzinfo: bool = True) -> dt.datetime:
        return clock().replace(tzinfo=None) if remove_tzinfo else clock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", signing_time)
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", signing_time)
    config = Config(data_dir=str(tmp_path / "data"), backend="fake", meter_flush_seconds=3600,
                    billing_interval_seconds=3600, ec2_housekeeping_seconds=3600)
    app = create_app(config, clock=clock, backend=FakeDriver(clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    context = app[APP_CONTEXT]
    tenant = await context.accounts.create_account("finance-tenant")
    key = await context.accounts.create_key(tenant.account_id)
    disk = tmp_path / "disk"
    disk.write_bytes(b"\0" * MIB)
    image_id = await register_tiny_image(context.db, config, {"disk": str(disk)})
    endpoint = f"http://127.0.0.1:{server.port}"

    def client(service):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                            config=botocore.config.Config(retries={"max_attempts": 1}))
    yield context, clock, client, image_id, tenant, key, endpoint
    await server.close()


async def test_instance_and_storage_costs_agree_everywhere(live):
    context, clock, client, image_id, tenant, key, endpoint = live
    ec2, s3, ce, cur = client("ec2"), client("s3"), client("ce"), client("cur")

    # 10:30 - 12:00 on a 2-vCPU t3.medium: 1.5 Hrs (auditor case 1).
    out = await call(ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t3.medium")
    instance_id = out["Instances"][0]["InstanceId"]
    await call(ec2.get_waiter("instance_running").wait, InstanceIds=[instance_id], WaiterConfig=FAST)
    # 4 MiB stored from 10:30 to 12:00 in the tenant's bucket.
    await call(s3.create_bucket, Bucket="finance-reports")
    await call(s3.put_object, Bucket="finance-reports", Key="data.bin", Body=b"x" * (4 * MIB))
    clock.set("2026-11-02T12:00:00Z")
    await call(ec2.stop_instances, InstanceIds=[instance_id])
    await call(ec2.get_waiter("instance_stopped").wait, InstanceIds=[instance_id], WaiterConfig=FAST)
    await call(s3.delete_object, Bucket="finance-reports", Key="data.bin")
    await context.meter_buffer.flush()
    # A Cost and Usage Report for the tenant's bucket, delivered by the next billing pass.
    await call(cur.put_report_definition, ReportDefinition={
        "ReportName": "hourly", "TimeUnit": "HOURLY", "Format": "textORcsv", "Compression": "GZIP",
        "AdditionalSchemaElements": ["RESOURCES"], "S3Bucket": "finance-reports", "S3Prefix": "cur",
        "S3Region": "us-east-1"})
    clock.set("2026-11-02T14:00:00Z")
    await context.billing.run_once()

    report = json.loads(await billing_report(context.db, context.config, "2026-11", tenant.account_id, "json",
                                             now=clock(), rate=False))
    lines = {(item["productCode"], item["usageType"]): item for item in report["items"]}
    box = lines[("AmazonEC2", "BoxUsage:t3.medium")]
    assert Decimal(box["amount"]) == Decimal("1.5")
    assert Decimal(box["cost"]) == Decimal("1.5") * Decimal("0.0416")
    storage = lines[("AmazonS3", "TimedStorage-ByteHrs")]
    expected_gb_mo = Decimal(4 * MIB) * Decimal("1.5") / Decimal(1 << 30) / Decimal(30 * 24)
    assert abs(Decimal(storage["amount"]) - expected_gb_mo) < Decimal("1e-11")
    assert ("AmazonS3", "Requests-Tier1") in lines
    # The instance's 1 GiB gp2 root volume is billed while the instance exists, stopped or not.
    volume = lines[("AmazonEC2", "EBS:VolumeUsage.gp2")]
    assert Decimal(volume["amount"]) == (Decimal("3.5") / Decimal(30 * 24)).quantize(Decimal("1e-12"))
    report_total = Decimal(report["total"])

    # Cost Explorer (boto3) answers the same total, and per service the same amounts.
    answer = await call(ce.get_cost_and_usage, TimePeriod={"Start": "2026-11-01", "End": "2026-12-01"},
                        Granularity="MONTHLY", Metrics=["UnblendedCost", "UsageQuantity"],
                        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}])
    groups = answer["ResultsByTime"][0]["Groups"]
    ce_total = sum(Decimal(g["Metrics"]["UnblendedCost"]["Amount"]) for g in groups)
    assert ce_total == report_total
    by_service = {g["Keys"][0]: Decimal(g["Metrics"]["UnblendedCost"]["Amount"]) for g in groups}
    assert by_service["Amazon Elastic Compute Cloud - Compute"] == Decimal(box["cost"])

    # The report delivered into the tenant's bucket: manifest -> keys -> gzip CSV.
    manifest_key = "cur/hourly/20261101-20261201/hourly-Manifest.json"
    manifest = json.loads((await call(s3.get_object, Bucket="finance-reports", Key=manifest_key))["Body"].read())
    assert manifest["billingPeriod"]["start"] == "20261101T000000.000Z"
    csv_total = Decimal(0)
    for report_key in manifest["reportKeys"]:
        body = (await call(s3.get_object, Bucket="finance-reports", Key=report_key))["Body"].read()
        rows = list(csv.reader(io.StringIO(gzip.decompress(body).decode())))
        header, data = rows[0], rows[1:]
        assert header == [f"{c['category']}/{c['name']}" for c in manifest["columns"]]
        cost = header.index("lineItem/UnblendedCost")
        resource = header.index("lineItem/ResourceId")
        assert any(row[resource] == instance_id for row in data)
        csv_total += sum(Decimal(row[cost]) for row in data)
    assert csv_total == report_total
