"""The bill of a month as a table, CSV or JSON: totals per service and usage type, of one account
or (for the admin) of every account.

``nimbo billing report --period 2026-11 [--account ID] --format table|csv|json|focus --data-dir DIR``
calls ``billing_report`` (``focus``: the month's FOCUS 1.2 CSV of the same lines, ``billing.focus``).
It first rates every complete hour not rated yet (the server's scheduler may be stopped) and estimates the open hour (``billing.estimates``: month-to-date
includes the last minutes' usage, marked as estimated), then sums the line items: the report's total is the exact sum
of the line items, the same Decimal that Cost Explorer and the CUR export give.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billing.catalog import format_decimal
from billing.lines import LineItem, account_names, fetch_lines
from billing.periods import cur_time, parse_period, to_us
from billing.prices import PriceSource
from billing.estimates import estimated_until, refresh_estimates
from billing.rating import rate_pending, rated_until, refresh_prices
from billing.schema import ensure_schema
from storage.db import Database

FORMATS = ("table", "csv", "json", "focus")


async def billing_report(db: Database, config: Any, period: str, account_id: str | None, fmt: str,
                         *, now: dt.datetime | None = None, rate: bool = True) -> str:
    """The report text for ``period`` ('2026-11') and ``account_id`` (None: all accounts).
    Raises ValueError for a bad period or format."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    start, end = parse_period(period)
    await ensure_schema(db)
    account_id = await _resolve_account(db, account_id)
    if rate:
        source = PriceSource(getattr(config, "price_list", None), getattr(config, "data_dir", None))
        now_us = to_us(now or dt.datetime.now(dt.timezone.utc))
        prices = await refresh_prices(db, source)
        await rate_pending(db, prices, now_us)
        await refresh_estimates(db, prices, now_us)
    lines = await fetch_lines(db, start, end, account_id, estimated=True)
    names = await account_names(db)
    if fmt == "focus":    # the FOCUS 1.2 dataset of the same lines (billing.focus)
        from billing.focus import focus_csv  # noqa: PLC0415
        from billing.lines import payer_account  # noqa: PLC0415
        return focus_csv(lines, payer=await payer_account(db) or account_id or "", names=names)
    summary = summarize(lines, per_account=account_id is None, names=names)
    estimated = [line for line in lines if line.estimated]
    summary.update(period=period, account=account_id, accountName=names.get(account_id) if account_id else None,
                   ratedUntil=_rated_text(await rated_until(db)),
                   estimated=bool(estimated),
                   estimatedCost=format_decimal(sum((line.cost for line in estimated), Decimal(0))),
                   estimatedUntil=_rated_text(await estimated_until(db)) if estimated else None)
    if fmt == "json":
        return json.dumps(summary, indent=2) + "\n"
    if fmt == "csv":
        return _csv(summary)
    return _table(summary)


async def _resolve_account(db: Database, account: str | None) -> str | None:
    """An account id, or the id of the account with that name."""
    if account is None:
        return None
    try:
        row = await db.fetchone("SELECT account_id FROM accounts WHERE account_id = ? OR name = ?",
                                (account, account))
    except sqlite3.OperationalError:   # no accounts table: a bare billing database
        return account
    if row is None:
        raise ValueError(f"no account {account!r}")
    return row["account_id"]


def summarize(lines: list[LineItem], per_account: bool, names: dict[str, str] | None = None) -> dict:
    """Totals per (account,) service and usage type, per service, and overall (exact Decimals as
    text); per account, items carry the account's name too."""
    names = names or {}
    items: dict[tuple, list] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    services: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for line in lines:
        key = (line.account_id if per_account else "", line.service, line.product_code,
               line.usage_type, line.unit)
        items[key][0] += line.amount
        items[key][1] += line.cost
        services[line.service] += line.cost
        total += line.cost
    rows = [{"account": k[0] or None, "accountName": names.get(k[0], ""), "service": k[1],
             "productCode": k[2], "usageType": k[3], "unit": k[4], "amount": format_decimal(v[0]),
             "cost": format_decimal(v[1])}
            for k, v in sorted(items.items())]
    if not per_account:
        for row in rows:
            row.pop("account")
            row.pop("accountName")
    return {
        "currency": "USD",
        "items": rows,
        "services": [{"service": s, "cost": format_decimal(c)} for s, c in sorted(services.items())],
        "total": format_decimal(total),
        "totalRounded": format(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f"),
        "lineItems": len(lines),
    }


def _rated_text(until: int | None) -> str | None:
    return cur_time(until) if until is not None else None


def _csv(summary: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    with_account = summary["account"] is None
    header = (["account", "account_name"] if with_account else []) + [
        "service", "product_code", "usage_type", "unit", "amount", "cost_usd"]
    writer.writerow(header)
    for item in summary["items"]:
        writer.writerow(([item["account"], item["accountName"]] if with_account else []) + [
            item["service"], item["productCode"], item["usageType"], item["unit"], item["amount"],
            item["cost"]])
    writer.writerow(["TOTAL"] + [""] * (len(header) - 2) + [summary["total"]])
    return out.getvalue()


_CENT = Decimal("0.01")


def money(text: str) -> str:
    """A cost for people to read: rounded half up to cents; a cost that rounds to nothing but is
    not nothing reads '<0.01' (the exact amounts are in the csv and json formats)."""
    value = Decimal(text)
    cents = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    if cents == 0 and value > 0:
        return "<0.01"
    return format(cents, "f")


def _who(account: str | None, name: str | None) -> str:
    return f"{name} ({account})" if name and name != account else (account or "")


def _table(summary: dict) -> str:
    with_account = summary["account"] is None
    head = (["Account"] if with_account else []) + ["Service", "Usage type", "Amount", "Unit", "Cost (USD)"]
    rows = [([_who(i["account"], i["accountName"])] if with_account else []) + [
        i["service"], i["usageType"], i["amount"], i["unit"], money(i["cost"])] for i in summary["items"]]
    widths = [max(len(str(r[c])) for r in [head, *rows]) for c in range(len(head))]
    numeric = {len(head) - 3, len(head) - 1}

    def fmt(row: list) -> str:
        return "  ".join(str(v).rjust(w) if c in numeric else str(v).ljust(w)
                         for c, (v, w) in enumerate(zip(row, widths))).rstrip()

    who = f"account {_who(summary['account'], summary.get('accountName'))}" if summary["account"] else "all accounts"
    out = [f"Nimbo bill for {summary['period']}, {who} (USD; rated until {summary['ratedUntil'] or '-'})"]
    if summary.get("estimated"):
        out.append(f"Includes {money(summary['estimatedCost'])} USD estimated for the open hour, up to "
                   f"{summary['estimatedUntil']}; final when the hour closes.")
    out += ["", fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(row) for row in rows]
    out.append("")
    width = max([len(s["service"]) for s in summary["services"]] + [len("Total")])
    for service in summary["services"]:
        out.append(f"{service['service'].ljust(width)}  {money(service['cost'])}")
    out.append(f"{'Total'.ljust(width)}  {summary['totalRounded']}")
    out.append("")
    out.append("Costs are rounded to cents here; --format csv or json gives the exact amounts.")
    return "\n".join(out) + "\n"
