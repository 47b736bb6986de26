"""AWS Data Exports (botocore service ``bcm-data-exports``, JSON 1.1, target prefix
``AWSBillingAndCostManagementDataExports``) for the FOCUS 1.2 table: the way AWS delivers FOCUS
beside the CUR, and so Nimbo's.

An export is ``SELECT <columns or *> FROM FOCUS_1_2_AWS`` into an S3 bucket of the signer's
account, ``TEXT_OR_CSV`` with ``GZIP`` (Parquet and ZIP are refused with ValidationException),
refreshed ``SYNCHRONOUS``-ly: every billing pass (``billing.scheduler``) delivers each month whose
final line items changed since the export's last delivery of it (from the month before the export
was created on), as the CUR is delivered once per change. A tenant's export covers its own usage,
the admin's every account's. Files (``billing.focus.build_focus_export``)::

    <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/[<executionId>/]<export>-00001.csv.gz
    <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/[<executionId>/]<export>-Manifest.json

``OVERWRITE_REPORT`` rewrites the same keys; ``CREATE_NEW_REPORT`` puts each delivery in its
execution's folder and keeps the earlier ones. Each delivery is an execution
(``ListExecutions``/``GetExecution``: DELIVERY_SUCCESS, or DELIVERY_FAILURE with
INSUFFICIENT_PERMISSION when the bucket is missing or not the account's; the export is then
UNHEALTHY until a delivery succeeds, retried after ``RETRY_US``).

Operations: CreateExport, GetExport, ListExports, UpdateExport, DeleteExport, ListExecutions,
GetExecution, ListTables, GetTable. Tags (TagResource ...) are not kept.

Crash story: an export is one row; an execution row is written after its files (data first,
manifest last), so a crash mid-delivery leaves no execution and the next pass delivers again to
the same keys (the execution id is derived from the content).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import uuid
from typing import Any

from billing import errors, focus
from billing.lines import account_names, fetch_lines, payer_account
from billing.periods import from_us, month_start, parse_period, to_us
from billing.schema import ensure_schema
from storage.db import Database, Schema

log = logging.getLogger("nimbo.billing")

TABLE = "FOCUS_1_2_AWS"
EXPORT_LIMIT = 300
RETRY_US = 5 * 60 * 1_000_000
EXECUTION_NAMESPACE = uuid.UUID("4e696d62-6f00-4455-5800-000000000002")
NAME = re.compile(r"[0-9A-Za-z\-_]+")
QUERY = re.compile(r"\s*SELECT\s+(?P<columns>.+?)\s+FROM\s+(?P<table>[A-Za-z0-9_]+)\s*;?\s*", re.IGNORECASE | re.DOTALL)

SCHEMA = Schema(
    "billing_data_exports",
    [
        """
        CREATE TABLE billing_data_exports (
            export_arn TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            name TEXT NOT NULL,
            spec TEXT NOT NULL,
            scope_all INTEGER NOT NULL,
            created_us INTEGER NOT NULL,
            updated_us INTEGER NOT NULL,
            refreshed_us INTEGER,
            UNIQUE (account_id, name)
        );
        CREATE TABLE billing_data_export_executions (
            execution_id TEXT PRIMARY KEY,
            export_arn TEXT NOT NULL,
            period TEXT NOT NULL,
            digest TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            spec TEXT NOT NULL,
            keys TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            completed_us INTEGER NOT NULL
        );
        CREATE INDEX billing_data_export_executions_by_export
            ON billing_data_export_executions (export_arn, period, created_us)
        """,
        # the month's revision (billing_periods) an execution was made from: an unchanged month
        # of an unchanged export is skipped without building its rows
        "ALTER TABLE billing_data_export_executions ADD COLUMN revision INTEGER NOT NULL DEFAULT -1",
    ],
)


async def ensure_exports_schema(db: Database) -> None:
    if getattr(db, "_billing_data_exports_ready", False):
        return
    await ensure_schema(db)
    await db.migrate(SCHEMA)
    db._billing_data_exports_ready = True  # type: ignore[attr-defined]


def _invalid(message: str, reason: str = "fieldValidationFailed") -> errors.BillingError:
    return errors.ValidationException(message, Reason=reason)


def _not_found(arn: str, kind: str = "Export") -> errors.BillingError:
    return errors.ResourceNotFoundException(f"The {kind.lower()} {arn} does not exist.",
                                            ResourceId=arn, ResourceType=kind)


def _account(ctx: Any) -> Any:
    if ctx.account is None:
        raise errors.AccessDeniedException("Anonymous requests are not allowed.")
    return ctx.account


def selected_columns(statement: Any) -> list[str]:
    """The FOCUS columns a query statement selects; ValidationException for anything else."""
    match = QUERY.fullmatch(statement or "") if isinstance(statement, str) else None
    if not match:
        raise _invalid("QueryStatement must be SELECT <columns> FROM FOCUS_1_2_AWS", "cannotParse")
    if match.group("table").upper() != TABLE:
        raise _invalid(f"Table {match.group('table')} is not available in Nimbo: only {TABLE} "
                       "(the CUR is defined with the cur API)")
    wanted = [c.strip() for c in match.group("columns").split(",")]
    if wanted == ["*"]:
        return list(focus.COLUMNS)
    unknown = [c for c in wanted if c not in focus.COLUMNS]
    if unknown or not wanted or len(set(wanted)) != len(wanted):
        raise _invalid(f"Columns not in {TABLE} (or repeated): {', '.join(unknown) or 'repeated'}")
    return wanted


def validate_export(export: Any) -> dict:
    """The stored form of an Export, or ValidationException."""
    if not isinstance(export, dict):
        raise _invalid("Export is required")
    name = export.get("Name")
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not NAME.fullmatch(name):
        raise _invalid("Name must match [0-9A-Za-z\\-_]+ (1-128 characters)")
    query = (export.get("DataQuery") or {}).get("QueryStatement")
    selected_columns(query)
    destination = ((export.get("DestinationConfigurations") or {}).get("S3Destination") or {})
    output = destination.get("S3OutputConfigurations") or {}
    if not destination.get("S3Bucket") or not isinstance(destination.get("S3Prefix"), str) or not destination.get("S3Region"):
        raise _invalid("S3Destination needs S3Bucket, S3Prefix and S3Region")
    if output.get("OutputType") != "CUSTOM":
        raise _invalid("Nimbo delivers OutputType CUSTOM only")
    if output.get("Format") != "TEXT_OR_CSV" or output.get("Compression") != "GZIP":
        raise _invalid("Nimbo delivers TEXT_OR_CSV with GZIP only (no Parquet, no ZIP)")
    if output.get("Overwrite") not in ("CREATE_NEW_REPORT", "OVERWRITE_REPORT"):
        raise _invalid("Overwrite must be CREATE_NEW_REPORT or OVERWRITE_REPORT")
    if (export.get("RefreshCadence") or {}).get("Frequency") != "SYNCHRONOUS":
        raise _invalid("RefreshCadence.Frequency must be SYNCHRONOUS")
    stored = {"Name": name, "DataQuery": {"QueryStatement": query},
              "DestinationConfigurations": {"S3Destination": {
                  "S3Bucket": destination["S3Bucket"], "S3Prefix": destination["S3Prefix"],
                  "S3Region": destination["S3Region"], "S3OutputConfigurations": {
                      "OutputType": "CUSTOM", "Format": "TEXT_OR_CSV", "Compression": "GZIP",
                      "Overwrite": output["Overwrite"]}}},
              "RefreshCadence": {"Frequency": "SYNCHRONOUS"}}
    if isinstance(export.get("Description"), str):
        stored["Description"] = export["Description"]
    if (export.get("DataQuery") or {}).get("TableConfigurations"):
        stored["DataQuery"]["TableConfigurations"] = export["DataQuery"]["TableConfigurations"]
    return stored


async def _row(ctx: Any, arn: Any) -> Any:
    await ensure_exports_schema(ctx.app.db)
    row = await ctx.app.db.fetchone("SELECT * FROM billing_data_exports WHERE export_arn = ? AND account_id = ?",
                                    (arn, _account(ctx).account_id)) if isinstance(arn, str) else None
    if row is None:
        raise _not_found(str(arn))
    return row


async def _status(db: Database, row: Any) -> dict:
    last = await db.fetchone(
        "SELECT status, reason FROM billing_data_export_executions WHERE export_arn = ?"
        " ORDER BY created_us DESC LIMIT 1", (row["export_arn"],))
    status = {"StatusCode": "UNHEALTHY" if last and last["status"] == "DELIVERY_FAILURE" else "HEALTHY",
              "CreatedAt": from_us(row["created_us"]), "LastUpdatedAt": from_us(row["updated_us"])}
    if last and last["reason"]:
        status["StatusReason"] = last["reason"]
    if row["refreshed_us"]:
        status["LastRefreshedAt"] = from_us(row["refreshed_us"])
    return status


async def create_export(ctx: Any, params: dict) -> dict:
    account = _account(ctx)
    stored = validate_export(params.get("Export"))
    db = ctx.app.db
    await ensure_exports_schema(db)
    now = to_us(ctx.now())
    arn = f"arn:aws:bcm-data-exports:us-east-1:{account.account_id}:export/{stored['Name']}-{uuid.uuid4()}"
    async with db.transaction() as tx:
        rows = await tx.fetchall("SELECT name FROM billing_data_exports WHERE account_id = ?", (account.account_id,))
        if any(r["name"] == stored["Name"] for r in rows):
            raise _invalid(f"An export named {stored['Name']} exists already in this account.")
        if len(rows) >= EXPORT_LIMIT:
            raise errors.ServiceQuotaExceededException(f"This account has {EXPORT_LIMIT} exports already.",
                                                       QuotaCode="exports", ServiceCode="bcm-data-exports")
        await tx.execute(
            "INSERT INTO billing_data_exports (export_arn, account_id, name, spec, scope_all, created_us,"
            " updated_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (arn, account.account_id, stored["Name"], json.dumps(stored, sort_keys=True),
             1 if getattr(account, "is_admin", False) else 0, now, now))
    return {"ExportArn": arn}


async def get_export(ctx: Any, params: dict) -> dict:
    row = await _row(ctx, params.get("ExportArn"))
    return {"Export": {**json.loads(row["spec"]), "ExportArn": row["export_arn"]},
            "ExportStatus": await _status(ctx.app.db, row)}


async def list_exports(ctx: Any, params: dict) -> dict:
    account = _account(ctx)
    await ensure_exports_schema(ctx.app.db)
    rows = await ctx.app.db.fetchall("SELECT * FROM billing_data_exports WHERE account_id = ? ORDER BY name",
                                     (account.account_id,))
    start, size = _page(params)
    page = rows[start:start + size]
    out: dict = {"Exports": [{"ExportArn": r["export_arn"], "ExportName": r["name"],
                              "ExportStatus": await _status(ctx.app.db, r)} for r in page]}
    if start + size < len(rows):
        out["NextToken"] = str(start + size)
    return out


def _page(params: dict) -> tuple[int, int]:
    size = params.get("MaxResults") or 100
    token = params.get("NextToken")
    if token is None:
        return 0, size
    if not (isinstance(token, str) and token.isdigit()):
        raise _invalid("NextToken is not valid")
    return int(token), size


async def update_export(ctx: Any, params: dict) -> dict:
    row = await _row(ctx, params.get("ExportArn"))
    stored = validate_export(params.get("Export"))
    if stored["Name"] != row["name"]:
        raise _invalid("An export's Name cannot be changed")
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE billing_data_exports SET spec = ?, updated_us = ? WHERE export_arn = ?",
                         (json.dumps(stored, sort_keys=True), to_us(ctx.now()), row["export_arn"]))
    return {"ExportArn": row["export_arn"]}


async def delete_export(ctx: Any, params: dict) -> dict:
    row = await _row(ctx, params.get("ExportArn"))
    async with ctx.app.db.transaction() as tx:
        await tx.execute("DELETE FROM billing_data_exports WHERE export_arn = ?", (row["export_arn"],))
        await tx.execute("DELETE FROM billing_data_export_executions WHERE export_arn = ?", (row["export_arn"],))
    return {"ExportArn": row["export_arn"]}


def _execution(row: Any) -> dict:
    status = {"StatusCode": row["status"], "CreatedAt": from_us(row["created_us"]),
              "CompletedAt": from_us(row["completed_us"]), "LastUpdatedAt": from_us(row["completed_us"])}
    if row["reason"]:
        status["StatusReason"] = row["reason"]
    return status


async def list_executions(ctx: Any, params: dict) -> dict:
    row = await _row(ctx, params.get("ExportArn"))
    rows = await ctx.app.db.fetchall("SELECT * FROM billing_data_export_executions WHERE export_arn = ?"
                                     " ORDER BY created_us DESC, execution_id", (row["export_arn"],))
    start, size = _page(params)
    out: dict = {"Executions": [{"ExecutionId": r["execution_id"], "ExecutionStatus": _execution(r)}
                                for r in rows[start:start + size]]}
    if start + size < len(rows):
        out["NextToken"] = str(start + size)
    return out


async def get_execution(ctx: Any, params: dict) -> dict:
    row = await _row(ctx, params.get("ExportArn"))
    execution = await ctx.app.db.fetchone(
        "SELECT * FROM billing_data_export_executions WHERE export_arn = ? AND execution_id = ?",
        (row["export_arn"], params.get("ExecutionId")))
    if execution is None:
        raise _not_found(str(params.get("ExecutionId")), "Execution")
    return {"ExecutionId": execution["execution_id"],
            "Export": {**json.loads(execution["spec"]), "ExportArn": row["export_arn"]},
            "ExecutionStatus": _execution(execution)}


_TABLE_DESCRIPTION = "FOCUS 1.2 with AWS columns: Nimbo's rated usage as the FinOps Open Cost and Usage Specification"


async def list_tables(ctx: Any, params: dict) -> dict:
    _account(ctx)
    return {"Tables": [{"TableName": TABLE, "Description": _TABLE_DESCRIPTION, "TableProperties": []}]}


async def get_table(ctx: Any, params: dict) -> dict:
    _account(ctx)
    if params.get("TableName") != TABLE:
        raise _invalid(f"Table {params.get('TableName')} is not available in Nimbo: only {TABLE}")
    return {"TableName": TABLE, "Description": _TABLE_DESCRIPTION, "TableProperties": {},
            "Schema": [{"Name": c["name"], "Type": c["type"]} for c in focus.column_types()]}


OPERATIONS = {
    "CreateExport": create_export, "GetExport": get_export, "ListExports": list_exports,
    "UpdateExport": update_export, "DeleteExport": delete_export, "ListExecutions": list_executions,
    "GetExecution": get_execution, "ListTables": list_tables, "GetTable": get_table,
}


# --- delivery ------------------------------------------------------------------------------------

async def deliver_exports(db: Database, deliver: Any, now_us: int) -> list[dict]:
    """Deliver every (export, month) whose FOCUS rows changed since the export's last successful
    delivery of that month; returns one record per attempt."""
    await ensure_exports_schema(db)
    exports = await db.fetchall("SELECT * FROM billing_data_exports ORDER BY created_us")
    if not exports:
        return []
    payer = await payer_account(db)
    names = await account_names(db)
    periods = [(r["period"], r["revision"])
               for r in await db.fetchall("SELECT period, revision FROM billing_periods ORDER BY period")]
    attempts = []
    for export in exports:
        earliest = month_start(month_start(export["created_us"]) - 1)
        for period, revision in periods:
            start, end = parse_period(period)
            if start < earliest or start > now_us:
                continue
            attempt = await _deliver_month(db, deliver, export, period, revision, start, end, payer, names,
                                           now_us)
            if attempt is not None:
                attempts.append(attempt)
    return attempts


async def _deliver_month(db: Database, deliver: Any, export: Any, period: str, revision: int, start: int,
                         end: int, payer: str | None, names: dict, now_us: int) -> dict | None:
    done = await db.fetchone(
        "SELECT 1 FROM billing_data_export_executions WHERE export_arn = ? AND period = ? AND revision = ?"
        " AND spec = ? AND status = 'DELIVERY_SUCCESS'", (export["export_arn"], period, revision, export["spec"]))
    if done is not None:
        return None
    spec = json.loads(export["spec"])
    lines = await fetch_lines(db, start, end, None if export["scope_all"] else export["account_id"])
    if not lines:
        return None
    columns = selected_columns(spec["DataQuery"]["QueryStatement"])
    destination = spec["DestinationConfigurations"]["S3Destination"]
    text = focus.focus_csv(lines, payer=payer or export["account_id"], names=names, columns=columns)
    digest = hashlib.sha256(json.dumps([destination, columns]).encode() + text.encode()).hexdigest()
    last = await db.fetchone(
        "SELECT execution_id, digest, status, created_us FROM billing_data_export_executions"
        " WHERE export_arn = ? AND period = ? ORDER BY created_us DESC LIMIT 1", (export["export_arn"], period))
    if last is not None and last["digest"] == digest and last["status"] == "DELIVERY_SUCCESS":
        async with db.transaction() as tx:     # the month changed elsewhere (another account): seen
            await tx.execute("UPDATE billing_data_export_executions SET revision = ?, spec = ?"
                             " WHERE execution_id = ?", (revision, export["spec"], last["execution_id"]))
        return None
    if last is not None and last["digest"] == digest and now_us < last["created_us"] + RETRY_US:
        return None
    execution_id = str(uuid.uuid5(EXECUTION_NAMESPACE, f"{export['export_arn']}/{period}/{digest}"))
    files = focus.build_focus_export(
        lines, account_id=export["account_id"], payer=payer or export["account_id"], names=names,
        export_name=export["name"], bucket=destination["S3Bucket"], prefix=destination["S3Prefix"],
        period_start=start, period_end=end, execution_id=execution_id, columns=columns,
        folder=execution_id if destination["S3OutputConfigurations"]["Overwrite"] == "CREATE_NEW_REPORT" else "")
    status, reason = "DELIVERY_SUCCESS", None
    try:
        for key, data in files:
            result = deliver(destination["S3Bucket"], key, data, export["account_id"])
            if inspect.isawaitable(result):
                await result
    except Exception as exc:    # any refusal of the store: recorded, retried after RETRY_US
        status, reason = "DELIVERY_FAILURE", "INSUFFICIENT_PERMISSION"
        log.warning("FOCUS export %s %s to %s failed: %s", export["export_arn"], period,
                    destination["S3Bucket"], exc)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO billing_data_export_executions (execution_id, export_arn, period, digest, status, reason,"
            " spec, keys, created_us, completed_us, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(execution_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,"
            " created_us = excluded.created_us, completed_us = excluded.completed_us, revision = excluded.revision",
            (execution_id, export["export_arn"], period, digest, status, reason, export["spec"],
             json.dumps([k for k, _ in files]), now_us, now_us, revision))
        if status == "DELIVERY_SUCCESS":
            await tx.execute("UPDATE billing_data_exports SET refreshed_us = ? WHERE export_arn = ?",
                             (now_us, export["export_arn"]))
    return {"export": export["export_arn"], "period": period, "executionId": execution_id, "status": status,
            "keys": [k for k, _ in files]}
