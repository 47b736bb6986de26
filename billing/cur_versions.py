"""Which assemblies of a Cost and Usage Report were delivered, so that a report is delivered once
per change of its content and ``ReportVersioning`` is honoured as AWS does it:

* ``CREATE_NEW_REPORT`` (the default): every new assembly lands in a new ``<assemblyId>/`` folder
  beside the earlier ones, which stay;
* ``OVERWRITE_REPORT``: the new assembly replaces the previous one, whose files are removed once
  the new files and manifests are in place.

An assembly is recorded with its keys *before* its files are written (the intent), so a crash
halfway leaves a row whose files a later overwrite still removes; removing files that are already
gone is harmless. A removal that fails leaves the row, and the next delivery tries again.
"""
from __future__ import annotations

import json
from typing import Any

from storage.db import Database, Schema

SCHEMA = Schema(
    "billing_cur_versions",
    [
        """
        CREATE TABLE billing_cur_assemblies (
            account_id TEXT NOT NULL,
            report_name TEXT NOT NULL,
            period TEXT NOT NULL,
            assembly_id TEXT NOT NULL,
            bucket TEXT NOT NULL,
            keys TEXT NOT NULL,
            recorded_us INTEGER NOT NULL,
            PRIMARY KEY (account_id, report_name, period, assembly_id)
        )
        """
    ],
)


async def ensure_versions_schema(db: Database) -> None:
    if getattr(db, "_billing_cur_versions_ready", False):
        return
    await db.migrate(SCHEMA)
    db._billing_cur_versions_ready = True  # type: ignore[attr-defined]


async def record_assembly(db: Database, account: str, report: str, period: str, assembly_id: str,
                          bucket: str, keys: list[str], now_us: int) -> None:
    await ensure_versions_schema(db)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO billing_cur_assemblies (account_id, report_name, period, assembly_id, bucket, keys,"
            " recorded_us) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account_id, report_name, period, assembly_id)"
            " DO UPDATE SET bucket = excluded.bucket, keys = excluded.keys",
            (account, report, period, assembly_id, bucket, json.dumps(keys), now_us))


async def overwrite_earlier(db: Database, remove: Any, account: str, report: str, period: str,
                            current: str, keep: set[str]) -> list[str]:
    """OVERWRITE_REPORT: remove the files of the period's earlier assemblies (not the keys the
    current assembly also wrote, such as the date-range manifest); returns the keys removed."""
    await ensure_versions_schema(db)
    rows = await db.fetchall(
        "SELECT assembly_id, bucket, keys FROM billing_cur_assemblies WHERE account_id = ? AND"
        " report_name = ? AND period = ? AND assembly_id != ?", (account, report, period, current))
    removed: list[str] = []
    for row in rows:
        for key in json.loads(row["keys"]):
            if key not in keep:
                await remove(row["bucket"], key, account)
                removed.append(key)
        async with db.transaction() as tx:
            await tx.execute(
                "DELETE FROM billing_cur_assemblies WHERE account_id = ? AND report_name = ? AND period = ?"
                " AND assembly_id = ?", (account, report, period, row["assembly_id"]))
    return removed
