"""`nimbo billing report` for people (issue 9 item 24): account names beside their ids, money
rounded to cents in the table, exact in CSV and JSON."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from types import SimpleNamespace

from billing.report import billing_report, money

from _billing_testkit import ACCOUNT, OTHER, TEST_PRICES, counts, instance_state

NOW = dt.datetime(2026, 12, 1, 0, 10, tzinfo=dt.timezone.utc)


async def _month(db, tmp_path):
    async with db.transaction() as tx:
        await tx.execute("CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, name TEXT,"
                         " is_admin INTEGER DEFAULT 0, created_at INTEGER DEFAULT 0)")
        await tx.execute("INSERT INTO accounts (account_id, name) VALUES (?, 'alice'), (?, 'bob')",
                         (ACCOUNT, OTHER))
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:20:00Z")         # 0.032 USD
    await counts(db, "Requests-Tier1", "PutObject", 3, "2026-11-05T05:00:00Z", account=OTHER)  # 0.000015
    path = tmp_path / "prices.toml"
    path.write_text(TEST_PRICES)
    return SimpleNamespace(price_list=str(path), data_dir=str(tmp_path))


def test_money_is_rounded_half_up_to_cents_and_tiny_costs_stay_visible():
    assert [money(t) for t in ("0.031999999999968", "1.005", "0", "0.000015", "12.344")] == [
        "0.03", "1.01", "0.00", "<0.01", "12.34"]


async def test_table_names_accounts_and_rounds_money_csv_and_json_stay_exact(db, tmp_path):
    config = await _month(db, tmp_path)
    table = await billing_report(db, config, "2026-11", None, "table", now=NOW)
    assert f"alice ({ACCOUNT})" in table and f"bob ({OTHER})" in table
    assert "0.031999999999968" not in table and " 0.03" in table and "<0.01" in table
    single = await billing_report(db, config, "2026-11", "alice", "table", now=NOW)
    assert f"Nimbo bill for 2026-11, account alice ({ACCOUNT})" in single
    rows = list(csv.reader(io.StringIO(await billing_report(db, config, "2026-11", None, "csv", now=NOW))))
    assert [r[1] for r in rows[1:-1]] == ["alice", "bob"]
    assert {r[-1] for r in rows[1:-1]} == {"0.031999999999968", "0.000015"}
    data = json.loads(await billing_report(db, config, "2026-11", None, "json", now=NOW))
    assert {i["accountName"] for i in data["items"]} == {"alice", "bob"}
    assert Decimal(data["total"]) == Decimal("0.031999999999968") + Decimal("0.000015")
