"""Billing's own tables: rated line items and the rater's checkpoint, report definitions and their
deliveries.

``billing_line_items`` holds one row per (account, region, product, usage type, operation,
resource, sub-interval of one hour): ``start_us``/``end_us`` never cross an hour boundary (a price
change inside an hour splits the hour's line in two). Amounts, rates and costs are Decimal text.

``billing_state`` is the rater's checkpoint (``rated_until_us``), the highest ledger ``seq`` it has
seen, and where a pending re-rate starts; it changes only in the transaction that writes the line
items, so a crash can neither double count nor leave a gap. ``billing_count_marks`` remembers, per
rated hour, the row count and sum of the hourly counters it rated, so that counts flushed late
are noticed and their hour rated again. ``billing_periods`` counts changes per month (the CUR
scheduler delivers a report again when its month changed).
"""
from __future__ import annotations

from storage.db import Database, Schema
from storage.usage import SCHEMA as USAGE_SCHEMA

# The columns of a rated line item, final (``billing_line_items``) or estimated
# (``billing.estimates``): both tables hold rows of the same shape. Part of released migrations:
# frozen; a new column comes as a new migration step of each table.
LINE_ITEM_COLUMNS = """\
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            product_code TEXT NOT NULL,
            usage_type TEXT NOT NULL,
            operation TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            start_us INTEGER NOT NULL,
            end_us INTEGER NOT NULL,
            hour_us INTEGER NOT NULL,
            line_item_id TEXT NOT NULL,
            base_usage_type TEXT NOT NULL,
            availability_zone TEXT NOT NULL DEFAULT '',
            amount TEXT NOT NULL,
            unit TEXT NOT NULL,
            rate TEXT NOT NULL,
            cost TEXT NOT NULL,
            price_version TEXT NOT NULL,
            description TEXT NOT NULL,
            instance_type TEXT NOT NULL DEFAULT '',
            vcpu TEXT NOT NULL DEFAULT '',
            memory TEXT NOT NULL DEFAULT '',
            volume_type TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (account_id, region, product_code, usage_type, operation, resource_id, start_us)
"""

SCHEMA = Schema(
    "billing",
    [
        f"""
        CREATE TABLE billing_line_items (
{LINE_ITEM_COLUMNS}        );
        CREATE INDEX billing_line_items_by_time ON billing_line_items(start_us);
        CREATE INDEX billing_line_items_by_account ON billing_line_items(account_id, start_us);
        CREATE TABLE billing_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            rated_until_us INTEGER NOT NULL,
            max_seq INTEGER NOT NULL,
            rerate_from_us INTEGER
        );
        CREATE TABLE billing_count_marks (
            hour_us INTEGER PRIMARY KEY,
            rows INTEGER NOT NULL,
            total INTEGER NOT NULL
        );
        CREATE TABLE billing_periods (
            period TEXT PRIMARY KEY,
            revision INTEGER NOT NULL
        );
        CREATE TABLE billing_report_definitions (
            account_id TEXT NOT NULL,
            report_name TEXT NOT NULL,
            definition TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            scope_all INTEGER NOT NULL DEFAULT 0,
            created_us INTEGER NOT NULL,
            last_delivery TEXT,
            last_status TEXT,
            PRIMARY KEY (account_id, report_name)
        );
        CREATE TABLE billing_cur_deliveries (
            account_id TEXT NOT NULL,
            report_name TEXT NOT NULL,
            period TEXT NOT NULL,
            delivered_revision INTEGER NOT NULL DEFAULT 0,
            attempted_revision INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_us INTEGER NOT NULL DEFAULT 0,
            assembly_id TEXT NOT NULL DEFAULT '',
            delivered_us INTEGER,
            PRIMARY KEY (account_id, report_name, period)
        )
        """
    ],
)

async def ensure_schema(db: Database) -> None:
    """Apply the ledger's and billing's migrations once per open database (idempotent)."""
    if getattr(db, "_billing_schema_ready", False):
        return
    await db.migrate(USAGE_SCHEMA)
    await db.migrate(SCHEMA)
    db._billing_schema_ready = True  # type: ignore[attr-defined]
