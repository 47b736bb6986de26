"""The ``cur`` API (AWS Cost and Usage Report Service, JSON 1.1, target prefix
``AWSOrigamiServiceGatewayService``): report definitions of the signer's account.

A tenant's report covers its own usage; the admin account's covers every account (as an AWS
organisation's management account does). Nimbo writes ``textORcsv`` reports with GZIP
compression (Parquet and ZIP are refused with ValidationException). The bucket is checked when a
report is delivered, not when it is defined: a bucket that does not exist or is not the
account's shows as ``ReportStatus.lastStatus`` ERROR_NO_BUCKET / ERROR_PERMISSIONS until fixed.
Modifying or deleting a report that does not exist is a ValidationException (the errors the
model lists for those operations).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from billing import errors
from billing.periods import to_us
from billing.schema import ensure_schema

REPORT_LIMIT = 5
PAGE_SIZE = 5
NAME = re.compile(r"[0-9A-Za-z!\-_.*'()]+")
BUCKET = re.compile(r"[A-Za-z0-9_.\-]+")
PREFIX = re.compile(r"[0-9A-Za-z!\-_.*'()/]*")
ENUMS = {
    "TimeUnit": ["HOURLY", "DAILY", "MONTHLY"],
    "Format": ["textORcsv", "Parquet"],
    "Compression": ["ZIP", "GZIP", "Parquet"],
    "ReportVersioning": ["CREATE_NEW_REPORT", "OVERWRITE_REPORT"],
}
SCHEMA_ELEMENTS = ["RESOURCES", "SPLIT_COST_ALLOCATION_DATA", "MANUAL_DISCOUNT_COMPATIBILITY"]
ARTIFACTS = ["REDSHIFT", "QUICKSIGHT", "ATHENA"]
STORED_MEMBERS = ("ReportName", "TimeUnit", "Format", "Compression", "AdditionalSchemaElements",
                  "S3Bucket", "S3Prefix", "S3Region", "AdditionalArtifacts", "RefreshClosedReports",
                  "ReportVersioning", "BillingViewArn")


def _invalid(value: Any, where: str, constraint: str) -> errors.BillingError:
    return errors.ValidationException(
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: {constraint}")


def _account(ctx: Any) -> Any:
    if ctx.account is None:
        raise errors.AccessDeniedException("Anonymous requests are not allowed.")
    return ctx.account


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 256 or not NAME.fullmatch(name):
        raise _invalid(name, where, "Member must satisfy regular expression pattern: [0-9A-Za-z!\\-_.*\\'()]+")
    return name


def validate_definition(definition: dict) -> dict:
    """The stored form of a ReportDefinition, or ValidationException."""
    where = "reportDefinition"
    _check_name(definition.get("ReportName"), f"{where}.reportName")
    for member, allowed in ENUMS.items():
        value = definition.get(member)
        if value is not None and value not in allowed:
            raise _invalid(value, f"{where}.{member[0].lower()}{member[1:]}",
                           f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    for member, allowed in (("AdditionalSchemaElements", SCHEMA_ELEMENTS), ("AdditionalArtifacts", ARTIFACTS)):
        for value in definition.get(member) or []:
            if value not in allowed:
                raise _invalid(value, f"{where}.{member[0].lower()}{member[1:]}.member",
                               f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    bucket = definition.get("S3Bucket", "")
    if not bucket or len(bucket) > 256 or not BUCKET.fullmatch(bucket):
        raise _invalid(bucket, f"{where}.s3Bucket", "Member must satisfy regular expression pattern: [A-Za-z0-9_\\.\\-]+")
    prefix = definition.get("S3Prefix", "")
    if len(prefix) > 256 or not PREFIX.fullmatch(prefix):
        raise _invalid(prefix, f"{where}.s3Prefix", "Member must satisfy regular expression pattern: [0-9A-Za-z!\\-_.*\\'()/]*")
    if not definition.get("S3Region"):
        raise _invalid(definition.get("S3Region"), f"{where}.s3Region", "Member must not be null")
    if definition.get("Format") != "textORcsv" or definition.get("Compression") != "GZIP":
        raise errors.ValidationException("Nimbo delivers reports as textORcsv with GZIP compression only.")
    if "ATHENA" in (definition.get("AdditionalArtifacts") or []):
        raise errors.ValidationException("ATHENA artifacts need Parquet format, which Nimbo does not write.")
    stored = {m: definition[m] for m in STORED_MEMBERS if definition.get(m) is not None}
    stored.setdefault("S3Prefix", "")
    stored.setdefault("RefreshClosedReports", True)
    stored.setdefault("ReportVersioning", "CREATE_NEW_REPORT")
    return stored


def _tags(tags: Any) -> list[dict]:
    out = []
    for tag in tags or []:
        key, value = tag.get("Key"), tag.get("Value", "")
        if not key or len(key) > 128 or len(value) > 256:
            raise _invalid(key, "tags.member.key", "Member must have length between 1 and 128")
        out.append({"Key": key, "Value": value})
    if len(out) > 200:
        raise _invalid(len(out), "tags", "Member must have length less than or equal to 200")
    return out


async def _row(ctx: Any, name: str) -> Any:
    await ensure_schema(ctx.app.db)
    return await ctx.app.db.fetchone(
        "SELECT * FROM billing_report_definitions WHERE account_id = ? AND report_name = ?",
        (_account(ctx).account_id, name))


def _described(row: Any) -> dict:
    definition = json.loads(row["definition"])
    if row["last_status"]:
        definition["ReportStatus"] = {"lastStatus": row["last_status"]}
        if row["last_delivery"]:
            definition["ReportStatus"]["lastDelivery"] = row["last_delivery"]
    return definition


async def put_report_definition(ctx: Any, params: dict) -> dict:
    account = _account(ctx)
    stored = validate_definition(params.get("ReportDefinition") or {})
    tags = _tags(params.get("Tags"))
    db = ctx.app.db
    await ensure_schema(db)
    async with db.transaction() as tx:
        existing = await tx.fetchall(
            "SELECT report_name FROM billing_report_definitions WHERE account_id = ?", (account.account_id,))
        if any(r["report_name"] == stored["ReportName"] for r in existing):
            raise errors.DuplicateReportNameException(
                f"A report with the name {stored['ReportName']} already exists in the account.")
        if len(existing) >= REPORT_LIMIT:
            raise errors.ReportLimitReachedException()
        await tx.execute(
            "INSERT INTO billing_report_definitions (account_id, report_name, definition, tags, scope_all,"
            " created_us) VALUES (?, ?, ?, ?, ?, ?)",
            (account.account_id, stored["ReportName"], json.dumps(stored, sort_keys=True), json.dumps(tags),
             1 if getattr(account, "is_admin", False) else 0, to_us(ctx.now())))
    return {}


async def describe_report_definitions(ctx: Any, params: dict) -> dict:
    account = _account(ctx)
    size = params.get("MaxResults", PAGE_SIZE)
    if size != PAGE_SIZE:
        raise _invalid(size, "maxResults", "Member must have value less than or equal to 5")
    offset = _offset(params.get("NextToken"))
    await ensure_schema(ctx.app.db)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM billing_report_definitions WHERE account_id = ? ORDER BY report_name",
        (account.account_id,))
    page = rows[offset:offset + size]
    out: dict = {"ReportDefinitions": [_described(r) for r in page]}
    if offset + size < len(rows):
        out["NextToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
    return out


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return max(int(base64.urlsafe_b64decode(token.encode()).decode()), 0)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid(token, "nextToken", "Member must be a token returned by this service") from None


async def modify_report_definition(ctx: Any, params: dict) -> dict:
    account = _account(ctx)
    name = _check_name(params.get("ReportName"), "reportName")
    stored = validate_definition(params.get("ReportDefinition") or {})
    if stored["ReportName"] != name:
        raise errors.ValidationException("The report name cannot be changed.")
    db = ctx.app.db
    await ensure_schema(db)
    async with db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE billing_report_definitions SET definition = ? WHERE account_id = ? AND report_name = ?",
            (json.dumps(stored, sort_keys=True), account.account_id, name))
    if not changed:
        raise errors.ValidationException(f"Report {name} does not exist.")
    return {}


async def delete_report_definition(ctx: Any, params: dict) -> dict:
    account = _account(ctx)
    name = _check_name(params.get("ReportName"), "reportName")
    db = ctx.app.db
    await ensure_schema(db)
    async with db.transaction() as tx:
        changed = await tx.execute(
            "DELETE FROM billing_report_definitions WHERE account_id = ? AND report_name = ?",
            (account.account_id, name))
        await tx.execute("DELETE FROM billing_cur_deliveries WHERE account_id = ? AND report_name = ?",
                         (account.account_id, name))
    if not changed:
        raise errors.ValidationException(f"Report {name} does not exist.")
    return {"ResponseMessage": f"Report {name} deleted."}


async def list_tags_for_resource(ctx: Any, params: dict) -> dict:
    row = await _row(ctx, _check_name(params.get("ReportName"), "reportName"))
    if row is None:
        raise errors.ResourceNotFoundException(f"Report {params.get('ReportName')} does not exist.")
    return {"Tags": json.loads(row["tags"])}


async def _set_tags(ctx: Any, name: str, update) -> None:
    row = await _row(ctx, _check_name(name, "reportName"))
    if row is None:
        raise errors.ResourceNotFoundException(f"Report {name} does not exist.")
    tags = {t["Key"]: t["Value"] for t in json.loads(row["tags"])}
    update(tags)
    listed = _tags([{"Key": k, "Value": v} for k, v in tags.items()])
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE billing_report_definitions SET tags = ? WHERE account_id = ? AND report_name = ?",
                         (json.dumps(listed), _account(ctx).account_id, name))


async def tag_resource(ctx: Any, params: dict) -> dict:
    new = _tags(params.get("Tags"))
    await _set_tags(ctx, params.get("ReportName"), lambda tags: tags.update({t["Key"]: t["Value"] for t in new}))
    return {}


async def untag_resource(ctx: Any, params: dict) -> dict:
    keys = params.get("TagKeys") or []
    await _set_tags(ctx, params.get("ReportName"), lambda tags: [tags.pop(k, None) for k in keys])
    return {}


OPERATIONS = {
    "PutReportDefinition": put_report_definition,
    "DescribeReportDefinitions": describe_report_definitions,
    "ModifyReportDefinition": modify_report_definition,
    "DeleteReportDefinition": delete_report_definition,
    "ListTagsForResource": list_tags_for_resource,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
}
