"""The issue's "done when" walk, as a new user would try it with aws-cli and boto3 against a live
server: enable versioning, overwrite and delete an object, list its versions, restore an old
version by copy, lock a version in COMPLIANCE mode and see its deletion refused, set a lifecycle
rule that expires objects after one (shortened) day and see them go, tag a bucket and see the
tag in Cost Explorer.

The server runs in this process with an injected clock (real time plus an offset the test moves
forward) and a half-second lifecycle day; boto3 signs with the same clock, aws-cli with the real
one (it runs before the clock is moved by more than a few seconds)."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import io
import json
import os
import subprocess
import time
from decimal import Decimal

import boto3
import botocore.config
import pytest
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError

from backend.fake import FakeDriver
from gateway.app import APP_CONTEXT, create_app
from gateway.config import Config

UTC = dt.timezone.utc


class Clock:
    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


def call(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def live(tmp_path, monkeypatch):
    clock = Clock()
    import botocore.auth
    import botocore.crt.auth

    def signing_time(remove_tzinfo: bool = True) -> dt.datetime:
        return clock().replace(tzinfo=None) if remove_tzinfo else clock()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", signing_time)
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", signing_time)
    config = Config(data_dir=str(tmp_path / "data"), backend="fake", meter_flush_seconds=3600,
                    billing_interval_seconds=3600, s3_lifecycle_day_seconds=0.5)
    app = create_app(config, clock=clock, backend=FakeDriver(clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    context = app[APP_CONTEXT]
    account = await context.accounts.create_account("new-user")
    key = await context.accounts.create_key(account.account_id)
    endpoint = f"http://127.0.0.1:{server.port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key.access_key_id,
           "AWS_SECRET_ACCESS_KEY": key.secret_access_key, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}

    def client(service):
        return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key.access_key_id,
                            aws_secret_access_key=key.secret_access_key,
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    async def aws(*args, check=True):
        done = await asyncio.to_thread(subprocess.run, ["aws", *args], env=env,
                                       capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    yield context, clock, client, aws
    await server.close()


async def test_versioning_lock_lifecycle_and_tags_walk(live, tmp_path):
    context, clock, client, aws = live
    s3, ce = client("s3"), client("ce")

    # --- versioning with aws-cli: overwrite, delete, list, restore by copy
    await aws("s3api", "create-bucket", "--bucket", "walk")
    await aws("s3api", "put-bucket-versioning", "--bucket", "walk",
              "--versioning-configuration", "Status=Enabled")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("first draft")
    second.write_text("second draft")
    v1 = json.loads((await aws("s3api", "put-object", "--bucket", "walk", "--key", "doc.txt",
                               "--body", str(first))).stdout)["VersionId"]
    await aws("s3api", "put-object", "--bucket", "walk", "--key", "doc.txt", "--body", str(second))
    deleted = json.loads((await aws("s3api", "delete-object", "--bucket", "walk",
                                    "--key", "doc.txt")).stdout)
    assert deleted["DeleteMarker"] is True
    listed = json.loads((await aws("s3api", "list-object-versions", "--bucket", "walk")).stdout)
    assert len(listed["Versions"]) == 2 and listed["DeleteMarkers"][0]["IsLatest"] is True
    assert (await aws("s3", "cp", "s3://walk/doc.txt", "-", check=False)).returncode != 0
    await aws("s3api", "copy-object", "--bucket", "walk", "--key", "doc.txt",
              "--copy-source", f"walk/doc.txt?versionId={v1}")
    restored = await aws("s3", "cp", "s3://walk/doc.txt", "-")
    assert restored.stdout == "first draft"

    # --- object lock: a COMPLIANCE version cannot be deleted
    await call(s3.create_bucket, Bucket="vault", ObjectLockEnabledForBucket=True)
    until = (clock() + dt.timedelta(days=1)).replace(microsecond=0)
    locked = await call(s3.put_object, Bucket="vault", Key="contract.pdf", Body=b"%PDF",
                        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    refused = await aws("s3api", "delete-object", "--bucket", "vault", "--key", "contract.pdf",
                        "--version-id", locked["VersionId"], "--bypass-governance-retention",
                        check=False)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
    head = await call(s3.head_object, Bucket="vault", Key="contract.pdf")
    assert head["ObjectLockMode"] == "COMPLIANCE"

    # --- lifecycle: expire tmp/ after one (half-second) day
    await call(s3.put_bucket_lifecycle_configuration, Bucket="walk", LifecycleConfiguration={
        "Rules": [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                   "Expiration": {"Days": 1}}]})
    await call(s3.put_object, Bucket="walk", Key="tmp/scratch", Body=b"temporary")
    head = await call(s3.head_object, Bucket="walk", Key="tmp/scratch")
    assert 'rule-id="tmp"' in head["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"]
    clock.advance(2)
    deadline = time.monotonic() + 30
    while True:
        try:
            await call(s3.head_object, Bucket="walk", Key="tmp/scratch")
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "404"
            break
        assert time.monotonic() < deadline, "the lifecycle runner never expired tmp/scratch"
        await asyncio.sleep(0.2)
    assert (await call(s3.get_object, Bucket="walk", Key="doc.txt"))["Body"].read() == b"first draft"

    # --- tags: a bucket's tags are cost-allocation tags in Cost Explorer
    await call(s3.create_bucket, Bucket="tagged")
    await call(s3.put_bucket_tagging, Bucket="tagged",
               Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    await call(s3.put_object, Bucket="tagged", Key="data.bin", Body=b"x" * (1 << 20),
               Tagging="kind=data")
    assert (await call(s3.get_object_tagging, Bucket="tagged", Key="data.bin"))["TagSet"] == \
        [{"Key": "kind", "Value": "data"}]
    cur = client("cur")
    await call(s3.create_bucket, Bucket="reports")
    await call(cur.put_report_definition, ReportDefinition={
        "ReportName": "hourly", "TimeUnit": "HOURLY", "Format": "textORcsv", "Compression": "GZIP",
        "AdditionalSchemaElements": ["RESOURCES"], "S3Bucket": "reports", "S3Prefix": "cur",
        "S3Region": "us-east-1"})
    clock.advance(3 * 3600)
    await context.meter_buffer.flush()
    await context.billing.run_once()
    # the Cost and Usage Report carries the tag as a resourceTags/user: column
    keys = [o["Key"] for o in (await call(s3.list_objects_v2, Bucket="reports", Prefix="cur/"))[
        "Contents"] if o["Key"].endswith(".csv.gz")]
    assert keys
    rows = list(csv.reader(io.StringIO(gzip.decompress((await call(
        s3.get_object, Bucket="reports", Key=keys[0]))["Body"].read()).decode())))
    column = rows[0].index("resourceTags/user:team")
    resource = rows[0].index("lineItem/ResourceId")
    assert any(r[column] == "storage" and r[resource] == "tagged" for r in rows[1:])
    start = (clock() - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    end = (clock() + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    answer = await call(ce.get_cost_and_usage, TimePeriod={"Start": start, "End": end},
                        Granularity="MONTHLY", Metrics=["UsageQuantity"],
                        GroupBy=[{"Type": "TAG", "Key": "team"}],
                        Filter={"Dimensions": {"Key": "USAGE_TYPE",
                                               "Values": ["TimedStorage-ByteHrs"]}})
    groups = {g["Keys"][0]: Decimal(g["Metrics"]["UsageQuantity"]["Amount"])
              for result in answer["ResultsByTime"] for g in result["Groups"]}
    assert groups.get("team$storage", 0) > 0, groups
    tags = await call(ce.get_tags, TimePeriod={"Start": start, "End": end}, TagKey="team")
    assert "storage" in tags["Tags"]
