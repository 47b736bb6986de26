"""Helpers for billing tests: an injected clock, events written the way the EC2 and S3 layers
write them (``storage.usage.record_event`` inside a transaction), and the ce/cur handlers called
the way the gateway calls them."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import itertools
import json

from billing.periods import to_us
from storage.usage import add_counts, record_event

ACCOUNT = "111111111111"
OTHER = "222222222222"
ADMIN = "999999999999"

TEST_PRICES = """
currency = "USD"

[[version]]
id = "v1"
effective = 2026-01-01T00:00:00Z
[version.AmazonEC2]
"BoxUsage:m5.large" = "0.096"
"BoxUsage:m5.xlarge" = "0.192"
"BoxUsage:t3.micro" = "0.0104"
"EBS:VolumeUsage.gp2" = "0.10"
"DataTransfer-Out-Bytes" = "0.09"
"DataTransfer-In-Bytes" = "0"
[version.AmazonS3]
"TimedStorage-ByteHrs" = "0.023"
"Requests-Tier1" = "0.000005"
"Requests-Tier2" = "0.0000004"
"DataTransfer-Out-Bytes" = "0.09"
[version.regions.eu-west-1.AmazonEC2]
"BoxUsage:m5.large" = "0.107"
"""


def T(text: str) -> int:
    """Microseconds of '2026-11-01T10:30:00Z'."""
    return to_us(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


_keys = itertools.count()


async def instance_state(db, instance_id: str, state: str, at: str | int, *, account: str = ACCOUNT,
                         instance_type: str = "m5.large", vcpus: int = 2, memory_mib: int = 8192,
                         region: str = "us-east-1", tags: dict | None = None, key: str | None = None):
    at_us = T(at) if isinstance(at, str) else at
    async with db.transaction() as tx:
        return await record_event(
            tx, dedupe_key=key or f"{instance_id}:{state}:{at_us}:{next(_keys)}", account_id=account,
            region=region, service="AmazonEC2", kind="instance_state", resource_id=instance_id,
            at_us=at_us, attrs={"state": state, "instance_type": instance_type, "vcpus": vcpus,
                                "memory_mib": memory_mib, "availability_zone": f"{region}a",
                                "tags": tags or {}})


async def stored_bytes(db, bucket: str, delta: int, at: str | int, *, account: str = ACCOUNT,
                       region: str = "us-east-1", tags: dict | None = None, storage_class: str = "STANDARD",
                       key: str | None = None):
    at_us = T(at) if isinstance(at, str) else at
    async with db.transaction() as tx:
        return await record_event(
            tx, dedupe_key=key or f"{bucket}:{at_us}:{next(_keys)}", account_id=account, region=region,
            service="AmazonS3", kind="stored_bytes", resource_id=bucket, at_us=at_us, quantity=delta,
            attrs={"storage_class": storage_class, "tags": tags or {}})


async def volume_state(db, volume_id: str, state: str, size_gib: int, at: str | int, *,
                       account: str = ACCOUNT, volume_type: str = "gp2", region: str = "us-east-1"):
    at_us = T(at) if isinstance(at, str) else at
    async with db.transaction() as tx:
        return await record_event(
            tx, dedupe_key=f"{volume_id}:{state}:{at_us}:{next(_keys)}", account_id=account,
            region=region, service="AmazonEC2", kind="volume_state", resource_id=volume_id,
            at_us=at_us, quantity=size_gib << 30,
            attrs={"state": state, "volume_type": volume_type, "availability_zone": f"{region}a"})


async def counts(db, usage_type: str, operation: str, amount: int, at: str | int, *,
                 account: str = ACCOUNT, resource: str = "", service: str = "AmazonS3",
                 region: str = "us-east-1"):
    at_us = T(at) if isinstance(at, str) else at
    async with db.transaction() as tx:
        await add_counts(tx, [(account, region, service, usage_type, operation, resource, at_us, amount)])


async def lines(db, **where):
    sql = "SELECT * FROM billing_line_items"
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
    rows = await db.fetchall(sql + " ORDER BY start_us, usage_type, resource_id", tuple(where.values()))
    return [dict(r) for r in rows]


# --- calling the ce / cur handlers the way the gateway does ----------------------------------------

class FakeAccount:
    def __init__(self, account_id: str, is_admin: bool = False, name: str = "") -> None:
        self.account_id = account_id
        self.is_admin = is_admin
        self.name = name or account_id


class FakeContext:
    """What a handler gets from the gateway (``gateway.context.RequestContext``'s attributes)."""

    def __init__(self, db, account, now: str = "2026-12-02T00:00:00Z", config=None) -> None:
        from types import SimpleNamespace
        moment = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
        self.app = SimpleNamespace(db=db, config=config, clock=lambda: moment)
        self.account = account
        self.region = "us-east-1"
        self.request_id = "test"

    def now(self):
        return self.app.clock()


async def call(service: str, operation: str, handler, ctx, params: dict) -> dict:
    """Serialise ``params`` as botocore does, decode them as the gateway does, run the handler,
    encode its output as the gateway does and parse it as botocore does."""
    import botocore.parsers
    import botocore.serialize
    import botocore.validate

    from gateway.protocols import json_protocol
    from gateway.protocols.models import operation as operation_model

    model = operation_model(service, operation)
    botocore.validate.validate_parameters(params, model.input_shape)
    request = botocore.serialize.create_serializer("json").serialize_to_request(params, model)
    body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
    decoded = json_protocol.decode_json(model, body)
    output = await handler(ctx, decoded)
    encoded = json_protocol.encode_json(model, output or {})
    parsed = botocore.parsers.create_parser("json").parse(
        {"status_code": 200, "headers": {}, "body": encoded}, model.output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


# --- a stand-in for the S3 store behind the CUR delivery seam ----------------------------------------

class Buckets:
    """Buckets with owners, objects by key; ``deliver`` refuses as the real seam must."""

    def __init__(self, **owners: str) -> None:
        self.owners = dict(owners)
        self.objects: dict[tuple[str, str], bytes] = {}
        self.writes: list[str] = []

    async def deliver(self, bucket: str, key: str, data: bytes, account_id: str) -> None:
        from billing.cur_export import DeliveryError
        if bucket not in self.owners:
            error = Exception(f"The specified bucket does not exist: {bucket}")
            error.code = "NoSuchBucket"
            raise error
        if self.owners[bucket] != account_id:
            raise DeliveryError("ERROR_PERMISSIONS", f"{account_id} may not write to {bucket}")
        self.objects[(bucket, key)] = data
        self.writes.append(key)

    def read_report(self, bucket: str, manifest_key: str) -> tuple[dict, list[str], list[dict]]:
        """manifest -> reportKeys -> gunzipped CSV rows."""
        manifest = json.loads(self.objects[(bucket, manifest_key)])
        header, rows = None, []
        for key in manifest["reportKeys"]:
            text = gzip.decompress(self.objects[(bucket, key)]).decode()
            reader = csv.reader(io.StringIO(text))
            header = next(reader)
            rows += [dict(zip(header, row)) for row in reader]
        return manifest, header, rows


async def put_report(db, account=ACCOUNT, bucket="reports", admin=False, **changes):
    """A report definition made through the cur handler (at 2026-11-02)."""
    from billing import report_definitions
    spec = {"ReportName": "nimbo-cur", "TimeUnit": "HOURLY", "Format": "textORcsv", "Compression": "GZIP",
            "AdditionalSchemaElements": ["RESOURCES"], "S3Bucket": bucket, "S3Prefix": "billing/cur",
            "S3Region": "us-east-1", **changes}
    context = FakeContext(db, FakeAccount(account, is_admin=admin), now="2026-11-02T00:00:00Z")
    await report_definitions.put_report_definition(context, {"ReportDefinition": spec})
