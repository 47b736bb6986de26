"""The Cost and Usage Report (legacy CUR) export: gzip CSV with ``category/Name`` columns and a
manifest, delivered into the tenant's bucket.

Layout of one delivery (``<prefix>/`` omitted when the prefix is empty)::

    <prefix>/<report>/<YYYYMMDD>-<YYYYMMDD>/<assemblyId>/<report>-1.csv.gz   (-2, -3 ... if large)
    <prefix>/<report>/<YYYYMMDD>-<YYYYMMDD>/<assemblyId>/<report>-Manifest.json
    <prefix>/<report>/<YYYYMMDD>-<YYYYMMDD>/<report>-Manifest.json

The date range ends on the first day of the next month; the manifests are written last (the
assembly's, then the range's), so a reader that follows the range manifest never finds a partial
assembly. ``assemblyId`` is derived from (account, report, month, content): retrying a failed
delivery rewrites the same keys, and a month whose report content did not change is not delivered
again (once per change). ``ReportVersioning=OVERWRITE_REPORT`` removes the earlier assemblies'
files after a new one is in place (``billing.cur_versions``; the seam's ``deliver.remove(bucket,
key, account_id)`` deletes as that account); ``CREATE_NEW_REPORT`` keeps them.

Delivery goes through a seam, ``deliver(bucket, key, data, account_id)`` (sync or async), that
the server wires to the S3 store: it must refuse a bucket that does not exist or that
``account_id`` does not own, by raising. A failure is recorded on the report definition
(``ReportStatus.lastStatus`` ERROR_NO_BUCKET or ERROR_PERMISSIONS) and retried later with back-off;
nothing is lost because every delivery is rebuilt from the rated line items.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import inspect
import io
import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from billing.catalog import format_decimal
from billing.cur_versions import overwrite_earlier, record_assembly
from billing.lines import LineItem, fetch_lines, payer_account
from billing.periods import (DAY_US, compact_date, cur_time, floor_day, manifest_time, month_start,
                             next_month, parse_period, period_name, status_time)
from billing.rating import line_item_id
from billing.schema import ensure_schema
from storage.db import Database

log = logging.getLogger("nimbo.billing")

Deliver = Callable[[str, str, bytes, str], Any]
ASSEMBLY_NAMESPACE = uuid.UUID("4e696d62-6f00-4355-5200-000000000001")
MAX_ROWS_PER_FILE = 500_000
RETRY_MIN_US = 60 * 1_000_000
RETRY_MAX_US = 3600 * 1_000_000

# (category, name, manifest type) of the columns every report has, in order.
BASE_COLUMNS = [
    ("identity", "LineItemId", "String"), ("identity", "TimeInterval", "Interval"),
    ("bill", "BillingEntity", "String"), ("bill", "BillType", "String"),
    ("bill", "PayerAccountId", "String"), ("bill", "BillingPeriodStartDate", "DateTime"),
    ("bill", "BillingPeriodEndDate", "DateTime"), ("lineItem", "UsageAccountId", "String"),
    ("lineItem", "LineItemType", "String"), ("lineItem", "UsageStartDate", "DateTime"),
    ("lineItem", "UsageEndDate", "DateTime"), ("lineItem", "ProductCode", "String"),
    ("lineItem", "UsageType", "String"), ("lineItem", "Operation", "String"),
    ("lineItem", "AvailabilityZone", "String"), ("lineItem", "ResourceId", "String"),
    ("lineItem", "UsageAmount", "BigDecimal"), ("lineItem", "CurrencyCode", "String"),
    ("lineItem", "UnblendedRate", "String"), ("lineItem", "UnblendedCost", "BigDecimal"),
    ("lineItem", "BlendedRate", "String"), ("lineItem", "BlendedCost", "BigDecimal"),
    ("lineItem", "LineItemDescription", "String"), ("product", "ProductName", "String"),
    ("product", "instanceType", "String"), ("product", "memory", "String"),
    ("product", "region", "String"), ("product", "vcpu", "String"),
    ("product", "volumeType", "String"), ("pricing", "term", "String"), ("pricing", "unit", "String"),
]
RESOURCE_COLUMN = ("lineItem", "ResourceId", "String")


class DeliveryError(Exception):
    """What a ``deliver`` seam may raise: ``status`` is ERROR_NO_BUCKET or ERROR_PERMISSIONS."""

    def __init__(self, status: str, message: str = "") -> None:
        self.status = status
        super().__init__(message or status)


def delivery_status(exc: BaseException) -> str:
    """ReportStatus.lastStatus for a failed delivery."""
    if isinstance(exc, DeliveryError):
        return exc.status
    code = str(getattr(exc, "code", "") or type(exc).__name__)
    return "ERROR_NO_BUCKET" if "NoSuchBucket" in code else "ERROR_PERMISSIONS"


@dataclass
class Export:
    files: list[tuple[str, bytes]]      # in write order: data files, then the two manifests
    manifest: dict


def columns_for(lines: list[LineItem], resources: bool) -> list[tuple[str, str, str]]:
    columns = [c for c in BASE_COLUMNS if resources or c != RESOURCE_COLUMN]
    tag_keys = sorted({k for line in lines for k in line.tags})
    return columns + [("resourceTags", f"user:{k}", "String") for k in tag_keys]


def _aggregate(lines: list[LineItem], time_unit: str) -> list[tuple[int, int, LineItem, Decimal, Decimal]]:
    """(start, end, representative line, amount, cost) per CUR row of the report's time unit."""
    if time_unit == "HOURLY":
        return [(line.start_us, line.end_us, line, line.amount, line.cost) for line in lines]
    groups: dict[tuple, list] = defaultdict(lambda: [None, Decimal(0), Decimal(0)])
    for line in lines:
        start = floor_day(line.start_us) if time_unit == "DAILY" else month_start(line.start_us)
        end = start + DAY_US if time_unit == "DAILY" else next_month(start)
        key = (start, end, line.account_id, line.region, line.product_code, line.usage_type,
               line.operation, line.resource_id, line.rate, line.price_version,
               json.dumps(line.tags, sort_keys=True))
        group = groups[key]
        group[0] = line
        group[1] += line.amount
        group[2] += line.cost
    return [(k[0], k[1], g[0], g[1], g[2]) for k, g in sorted(groups.items(), key=lambda kv: kv[0][:8])]


def build_rows(lines: list[LineItem], columns: list[tuple[str, str, str]], *, payer: str,
               period_start: int, period_end: int, time_unit: str = "HOURLY") -> list[list[str]]:
    rows = []
    for start, end, line, amount, cost in _aggregate(lines, time_unit):
        identity = line.line_item_id if time_unit == "HOURLY" else line_item_id(
            line.account_id, line.region, line.product_code, line.usage_type, line.operation,
            line.resource_id, start, line.rate, time_unit)
        values = {
            "identity/LineItemId": identity,
            "identity/TimeInterval": f"{cur_time(start)}/{cur_time(end)}",
            "bill/BillingEntity": "AWS", "bill/BillType": "Anniversary",
            "bill/PayerAccountId": payer,
            "bill/BillingPeriodStartDate": cur_time(period_start),
            "bill/BillingPeriodEndDate": cur_time(period_end),
            "lineItem/UsageAccountId": line.account_id, "lineItem/LineItemType": "Usage",
            "lineItem/UsageStartDate": cur_time(start), "lineItem/UsageEndDate": cur_time(end),
            "lineItem/ProductCode": line.product_code, "lineItem/UsageType": line.usage_type,
            "lineItem/Operation": line.operation, "lineItem/AvailabilityZone": line.availability_zone,
            "lineItem/ResourceId": line.resource_id, "lineItem/UsageAmount": format_decimal(amount),
            "lineItem/CurrencyCode": "USD", "lineItem/UnblendedRate": format_decimal(line.rate),
            "lineItem/UnblendedCost": format_decimal(cost), "lineItem/BlendedRate": format_decimal(line.rate),
            "lineItem/BlendedCost": format_decimal(cost),
            "lineItem/LineItemDescription": line.description, "product/ProductName": line.product_name,
            "product/instanceType": line.instance_type, "product/memory": line.memory,
            "product/region": line.region, "product/vcpu": line.vcpu,
            "product/volumeType": line.volume_type, "pricing/term": "OnDemand", "pricing/unit": line.unit,
        }
        row = []
        for category, name, _ in columns:
            if category == "resourceTags":
                row.append(str(line.tags.get(name[len("user:"):], "")))
            else:
                row.append(values[f"{category}/{name}"])
        rows.append(row)
    return rows


def gzip_csv(header: list[str], rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return gzip.compress(text.getvalue().encode("utf-8"), mtime=0)


def report_folder(prefix: str, report_name: str, period_start: int, period_end: int) -> str:
    parts = [p for p in (prefix.strip("/"), report_name) if p]
    return "/".join(parts) + f"/{compact_date(period_start)}-{compact_date(period_end)}"


def build_export(lines: list[LineItem], *, account_id: str, payer: str, report_name: str, bucket: str,
                 prefix: str, period_start: int, period_end: int, assembly_id: str,
                 time_unit: str = "HOURLY", resources: bool = True,
                 max_rows: int = MAX_ROWS_PER_FILE) -> Export:
    """The files of one delivery of one month (data files first, manifests last)."""
    columns = columns_for(lines, resources)
    header = [f"{c}/{n}" for c, n, _ in columns]
    rows = build_rows(lines, columns, payer=payer, period_start=period_start, period_end=period_end,
                      time_unit=time_unit)
    folder = report_folder(prefix, report_name, period_start, period_end)
    files = []
    chunks = [rows[i:i + max_rows] for i in range(0, len(rows), max_rows)] or [[]]
    for number, chunk in enumerate(chunks, 1):
        files.append((f"{folder}/{assembly_id}/{report_name}-{number}.csv.gz", gzip_csv(header, chunk)))
    manifest = {
        "assemblyId": assembly_id,
        "account": account_id,
        "columns": [{"category": c, "name": n, "type": t} for c, n, t in columns],
        "charset": "UTF-8",
        "compression": "GZIP",
        "contentType": "text/csv",
        "reportId": hashlib.sha256(f"{account_id}/{report_name}".encode()).hexdigest(),
        "reportName": report_name,
        "billingPeriod": {"start": manifest_time(period_start), "end": manifest_time(period_end)},
        "bucket": bucket,
        "reportKeys": [key for key, _ in files],
        "additionalArtifactKeys": [],
    }
    body = json.dumps(manifest, indent=2).encode("utf-8")
    files.append((f"{folder}/{assembly_id}/{report_name}-Manifest.json", body))
    files.append((f"{folder}/{report_name}-Manifest.json", body))
    return Export(files, manifest)


async def call_deliver(deliver: Deliver, bucket: str, key: str, data: bytes, account_id: str) -> None:
    result = deliver(bucket, key, data, account_id)
    if inspect.isawaitable(result):
        await result


# --- scheduled delivery --------------------------------------------------------------------------

async def deliver_due(db: Database, deliver: Deliver, now_us: int) -> list[dict]:
    """Deliver every report whose month changed since its last delivery (and whose back-off after
    a failure has passed). Returns one record per attempt: report, period, status, keys."""
    await ensure_schema(db)
    definitions = await db.fetchall(
        "SELECT account_id, report_name, definition, scope_all, created_us FROM billing_report_definitions")
    periods = await db.fetchall("SELECT period, revision FROM billing_periods ORDER BY period")
    payer = await payer_account(db)
    attempts = []
    for definition in definitions:
        spec = json.loads(definition["definition"])
        earliest = month_start(month_start(definition["created_us"]) - 1)
        for period in periods:
            start = _period_start(period["period"])
            if start < earliest:
                continue
            state = await db.fetchone(
                "SELECT * FROM billing_cur_deliveries WHERE account_id = ? AND report_name = ? AND period = ?",
                (definition["account_id"], definition["report_name"], period["period"]))
            if not _due(state, period["revision"], spec, next_month(start), now_us):
                continue
            attempt = await _deliver_one(db, deliver, definition, spec, start, period["revision"],
                                         payer, now_us, state)
            if attempt is not None:     # None: the same content was delivered already
                attempts.append(attempt)
    return attempts


def _content_digest(lines: list[LineItem], layout: dict) -> str:
    """What a delivery's files depend on: the rows and the layout (bucket, prefix, columns ...)."""
    columns = columns_for(lines, layout["resources"])
    rows = build_rows(lines, columns, payer=layout["payer"], period_start=layout["period_start"],
                      period_end=layout["period_end"], time_unit=layout["time_unit"])
    digest = hashlib.sha256(json.dumps([sorted(layout.items()), columns], default=str).encode())
    for row in rows:
        digest.update(json.dumps(row, default=str).encode())
    return digest.hexdigest()


async def _overwrite(db: Database, deliver: Deliver, account: str, name: str, period: str, assembly: str,
                     keep: set[str]) -> list[str]:
    """OVERWRITE_REPORT: the earlier assemblies' files go (``deliver.remove``, the store's delete)."""
    remove = getattr(deliver, "remove", None)
    if remove is None:
        log.warning("CUR %s/%s asks OVERWRITE_REPORT but the delivery seam cannot remove files", account, name)
        return []

    async def removing(bucket: str, key: str, account_id: str) -> None:
        result = remove(bucket, key, account_id)
        if inspect.isawaitable(result):
            await result
    return await overwrite_earlier(db, removing, account, name, period, assembly, keep)


def _period_start(name: str) -> int:
    return parse_period(name)[0]


def _due(state: Any, revision: int, spec: dict, period_end: int, now_us: int) -> bool:
    if state is None:
        return True
    if state["delivered_revision"] >= revision:
        return False
    if now_us < state["next_attempt_us"]:
        return False
    closed_and_delivered = state["delivered_us"] is not None and state["delivered_us"] >= period_end
    return not (closed_and_delivered and spec.get("RefreshClosedReports") is False)


async def _deliver_one(db: Database, deliver: Deliver, definition: Any, spec: dict, start: int,
                       revision: int, payer: str | None, now_us: int, state: Any) -> dict:
    account = definition["account_id"]
    name = definition["report_name"]
    end = next_month(start)
    period = period_name(start)
    lines = await fetch_lines(db, start, end, None if definition["scope_all"] else account)
    layout = dict(account_id=account, payer=payer or account, report_name=name, bucket=spec["S3Bucket"],
                  prefix=spec.get("S3Prefix", ""), period_start=start, period_end=end,
                  time_unit=spec.get("TimeUnit", "HOURLY"),
                  resources="RESOURCES" in (spec.get("AdditionalSchemaElements") or []))
    # The assembly is named by its content: a pass that changed nothing of this report (an hour of
    # another account's usage, an empty hour) finds the same assembly delivered and writes nothing.
    assembly = str(uuid.uuid5(ASSEMBLY_NAMESPACE, f"{account}/{name}/{period}/{_content_digest(lines, layout)}"))
    record = {"account": account, "report": name, "period": period, "assemblyId": assembly, "keys": []}
    if lines and state is not None and state["assembly_id"] == assembly and state["status"] == "SUCCESS":
        async with db.transaction() as tx:
            await tx.execute(
                "UPDATE billing_cur_deliveries SET delivered_revision = ?, attempted_revision = ?"
                " WHERE account_id = ? AND report_name = ? AND period = ?", (revision, revision, account, name, period))
        return None
    if not lines:
        status, error = "EMPTY", ""
    else:
        export = build_export(lines, assembly_id=assembly, **layout)
        try:
            await record_assembly(db, account, name, period, assembly, spec["S3Bucket"],
                                  [key for key, _ in export.files], now_us)
            for key, data in export.files:
                await call_deliver(deliver, spec["S3Bucket"], key, data, account)
                record["keys"].append(key)
            status, error = "SUCCESS", ""
            if spec.get("ReportVersioning") == "OVERWRITE_REPORT":
                record["removed"] = await _overwrite(db, deliver, account, name, period, assembly,
                                                     set(record["keys"]))
        except Exception as exc:  # any refusal of the store: recorded, retried later
            status, error = delivery_status(exc), str(exc)
            log.warning("CUR delivery of %s/%s %s to %s failed (%s): %s", account, name, period,
                        spec["S3Bucket"], status, exc)
    record["status"] = status
    attempts = 0 if status in ("SUCCESS", "EMPTY") else (state["attempts"] if state else 0) + 1
    delay = min(RETRY_MIN_US * 2 ** max(attempts - 1, 0), RETRY_MAX_US) if attempts else 0
    delivered = status in ("SUCCESS", "EMPTY")
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO billing_cur_deliveries (account_id, report_name, period, delivered_revision,"
            " attempted_revision, status, error, attempts, next_attempt_us, assembly_id, delivered_us)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account_id, report_name, period) DO UPDATE SET"
            " delivered_revision = excluded.delivered_revision, attempted_revision = excluded.attempted_revision,"
            " status = excluded.status, error = excluded.error, attempts = excluded.attempts,"
            " next_attempt_us = excluded.next_attempt_us, assembly_id = excluded.assembly_id,"
            " delivered_us = COALESCE(excluded.delivered_us, billing_cur_deliveries.delivered_us)",
            (account, name, period, revision if delivered else (state["delivered_revision"] if state else 0),
             revision, status, error, attempts, now_us + delay, assembly, now_us if delivered else None))
        if status != "EMPTY":
            await tx.execute(
                "UPDATE billing_report_definitions SET last_status = ?,"
                " last_delivery = CASE WHEN ? = 'SUCCESS' THEN ? ELSE last_delivery END"
                " WHERE account_id = ? AND report_name = ?",
                (status, status, status_time(now_us), account, name))
    return record
