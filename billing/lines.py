"""Reading rated line items: what the report, the CUR export and Cost Explorer all sum, so that
their totals agree to the last digit."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from billing import catalog
from billing.schema import ensure_schema
from storage.db import Database


@dataclass(frozen=True)
class LineItem:
    line_item_id: str
    account_id: str
    region: str
    product_code: str
    usage_type: str
    base_usage_type: str
    operation: str
    resource_id: str
    availability_zone: str
    start_us: int
    end_us: int
    amount: Decimal
    unit: str
    rate: Decimal
    cost: Decimal
    price_version: str
    description: str
    instance_type: str
    vcpu: str
    memory: str
    volume_type: str
    tags: dict
    estimated: bool = False     # a provisional line of the open hour (billing.estimates)

    @property
    def service(self) -> str:
        """Cost Explorer's SERVICE value."""
        return catalog.ce_service(self.product_code, self.usage_type)

    @property
    def product_name(self) -> str:
        return catalog.PRODUCT_NAMES.get(self.product_code, self.product_code)


def _line(row: sqlite3.Row, estimated: bool = False) -> LineItem:
    return LineItem(
        row["line_item_id"], row["account_id"], row["region"], row["product_code"], row["usage_type"],
        row["base_usage_type"], row["operation"], row["resource_id"], row["availability_zone"],
        row["start_us"], row["end_us"], Decimal(row["amount"]), row["unit"], Decimal(row["rate"]),
        Decimal(row["cost"]), row["price_version"], row["description"], row["instance_type"],
        row["vcpu"], row["memory"], row["volume_type"], json.loads(row["tags"]), estimated)


_ORDER = " ORDER BY start_us, account_id, product_code, usage_type, operation, resource_id"


async def fetch_lines(db: Database, start_us: int, end_us: int, account_id: str | None = None, *,
                      estimated: bool = False) -> list[LineItem]:
    """Line items that start in [start, end), of one account or (None) of all accounts; with
    ``estimated``, followed by the provisional lines of the hours not rated yet (the open hour,
    ``billing.estimates``), never for an hour that has final lines."""
    await ensure_schema(db)
    where = " WHERE start_us >= ? AND start_us < ?"
    params: list = [start_us, end_us]
    if account_id is not None:
        where += " AND account_id = ?"
        params.append(account_id)
    lines = [_line(row) for row in await db.fetchall("SELECT * FROM billing_line_items" + where + _ORDER,
                                                      params)]
    if estimated:
        from billing.estimates import ensure_estimates_schema  # noqa: PLC0415
        await ensure_estimates_schema(db)
        rows = await db.fetchall(
            "SELECT * FROM billing_estimated_line_items" + where + " AND start_us >= COALESCE("
            "(SELECT rated_until_us FROM billing_state WHERE id = 1), 0)" + _ORDER, params)
        lines += [_line(row, True) for row in rows]
    return lines


async def payer_account(db: Database) -> str | None:
    """The admin account: the payer of every line, as an organisation's management account is."""
    try:
        row = await db.fetchone(
            "SELECT account_id FROM accounts WHERE is_admin = 1 ORDER BY created_at LIMIT 1")
    except sqlite3.OperationalError:
        return None
    return row["account_id"] if row else None


async def account_names(db: Database) -> dict[str, str]:
    try:
        rows = await db.fetchall("SELECT account_id, name FROM accounts")
    except sqlite3.OperationalError:
        return {}
    return {row["account_id"]: row["name"] for row in rows}
