"""The open hour, rated provisionally: month-to-date costs that include the usage of the hour
still running, as AWS's bill and Cost Explorer show estimated charges before a period closes.

The rater (``billing.rating``) writes final line items for complete hours only; without this, a
report or Cost Explorer showed nothing of the last hour's usage for up to an hour. Each billing
pass (and ``nimbo billing report``, and a Cost Explorer request) replaces the *estimated* line
items: the usage from the rater's checkpoint (``rated_until``) to now, rated with the price list
in force, the same arithmetic as a final line up to the present moment (an instance that started
20 s ago shows 20 s; its final line applies the 60-second minimum).

No double count: readers (``billing.lines.fetch_lines(..., estimated=True)``) take estimated lines
only at or after ``rated_until`` as read in the same query, so once the hour closes and its final
lines are written (which moves ``rated_until`` past it) the estimate for that hour is ignored even
before the next pass deletes it.

Crash story: the table holds nothing that cannot be recomputed; a pass deletes and rewrites it in
one transaction, so a crash leaves either the previous estimate or the new one, and the next pass
replaces it. The CUR export reads final lines only (it is delivered once per change).
"""
from __future__ import annotations

from billing.ledger import load_month
from billing.periods import floor_hour, month_start
from billing.prices import PriceList
from billing.rating import LINE_COLUMNS, lines_of
from billing.schema import LINE_ITEM_COLUMNS
from storage.db import Database, Schema

SCHEMA = Schema(
    "billing_estimates",
    [
        f"""
        CREATE TABLE billing_estimated_line_items (
{LINE_ITEM_COLUMNS}        );
        CREATE TABLE billing_estimate_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            estimated_until_us INTEGER NOT NULL
        )
        """
    ],
)


async def ensure_estimates_schema(db: Database) -> None:
    if getattr(db, "_billing_estimates_ready", False):
        return
    await db.migrate(SCHEMA)
    db._billing_estimates_ready = True  # type: ignore[attr-defined]


async def refresh_estimates(db: Database, prices: PriceList, now_us: int) -> int:
    """Replace the estimated line items with the usage from ``rated_until`` (at most back to the
    start of the current month) to ``now_us``; returns the number of lines written."""
    from billing.schema import ensure_schema  # noqa: PLC0415
    await ensure_schema(db)
    await ensure_estimates_schema(db)
    month_us = month_start(floor_hour(now_us))
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT rated_until_us FROM billing_state WHERE id = 1")
        start = max(row["rated_until_us"] if row else month_us, month_us)
        await tx.execute("DELETE FROM billing_estimated_line_items")
        rows: list[tuple] = []
        if now_us > start:
            usage = await load_month(tx, month_us, now_us)
            for key in sorted(usage.series, key=lambda k: (k.account_id, k.region, k.product_code,
                                                           k.base_usage_type, k.operation, k.resource_id)):
                rows.extend(lines_of(usage.series[key], prices, month_us, start, now_us))
            await tx.executemany(
                f"INSERT INTO billing_estimated_line_items ({', '.join(LINE_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in LINE_COLUMNS)})", rows)
        await tx.execute(
            "INSERT INTO billing_estimate_state (id, estimated_until_us) VALUES (1, ?)"
            " ON CONFLICT(id) DO UPDATE SET estimated_until_us = excluded.estimated_until_us", (now_us,))
    return len(rows)


async def estimated_until(db: Database) -> int | None:
    await ensure_estimates_schema(db)
    row = await db.fetchone("SELECT estimated_until_us FROM billing_estimate_state WHERE id = 1")
    return row["estimated_until_us"] if row else None
