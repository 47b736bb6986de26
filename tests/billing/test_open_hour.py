"""The open hour, rated provisionally (issue 9 item 17): right after usage, the report and Cost
Explorer show month-to-date including it (Cost Explorer marks it Estimated); when the hour closes,
its final line replaces the estimate, with no double count. Injected clock throughout."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

from billing import cost_explorer as ce
from billing.lines import fetch_lines
from billing.periods import parse_period
from billing.rating import rate_pending, rounded
from billing.report import billing_report
from billing.scheduler import BillingService

from _billing_testkit import ACCOUNT, TEST_PRICES, FakeAccount, FakeContext, T, call, instance_state, lines

M5_LARGE = Decimal("0.096")      # per hour, TEST_PRICES


def minutes(n: int) -> Decimal:
    """The cost of n minutes of m5.large as the rater computes it (hours to 12 places)."""
    return M5_LARGE * rounded(n * 60, 3600)


def _config(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(TEST_PRICES)
    return SimpleNamespace(price_list=str(path), data_dir=str(tmp_path / "data"))


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _report(db, tmp_path, now: str) -> dict:
    return json.loads(await billing_report(db, _config(tmp_path), "2026-11", ACCOUNT, "json", now=_at(now)))


async def test_the_report_shows_the_open_hour_right_after_usage(db, tmp_path):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    report = await _report(db, tmp_path, "2026-11-03T10:20:00Z")
    assert Decimal(report["total"]) == minutes(20) > 0
    assert report["estimated"] is True and Decimal(report["estimatedCost"]) == minutes(20)
    table = await billing_report(db, _config(tmp_path), "2026-11", ACCOUNT, "table", now=_at("2026-11-03T10:20:00Z"))
    assert "estimated for the open hour" in table


async def test_the_final_line_replaces_the_estimate_without_double_count(db, tmp_path):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    report = await _report(db, tmp_path, "2026-11-03T10:59:00Z")
    assert Decimal(report["total"]) == minutes(59)
    report = await _report(db, tmp_path, "2026-11-03T11:06:00Z")
    assert Decimal(report["total"]) == M5_LARGE + minutes(6)         # the final hour + 6 minutes
    assert len(await lines(db)) == 1                                  # one final line: 10:00-11:00
    assert Decimal(report["estimatedCost"]) == minutes(6)
    await instance_state(db, "i-1", "stopped", "2026-11-03T11:30:00Z")
    report = await _report(db, tmp_path, "2026-11-03T12:00:00Z")
    assert Decimal(report["total"]) == M5_LARGE * 3 / 2 and report["estimated"] is False


async def test_an_estimate_left_behind_is_never_counted_with_the_final_line(db, tmp_path, prices):
    """The rater closes the hour but no one re-estimated yet: the estimate for that hour is
    ignored by every reader (crash between the two, or a reader between two passes)."""
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await _report(db, tmp_path, "2026-11-03T10:59:00Z")                  # writes the estimate
    await rate_pending(db, prices, T("2026-11-03T11:00:00Z"))           # final line, no new estimate
    start, end = parse_period("2026-11")
    got = await fetch_lines(db, start, end, ACCOUNT, estimated=True)
    assert [(line.estimated, line.cost) for line in got] == [(False, M5_LARGE)]


async def test_cost_explorer_shows_the_open_hour_as_estimated(db, tmp_path):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    app = SimpleNamespace(db=db, config=_config(tmp_path), clock=lambda: _at("2026-11-03T10:30:00Z"))
    service = BillingService(app)
    await service.prepare()
    context = FakeContext(db, FakeAccount(ACCOUNT), now="2026-11-03T10:30:00Z")
    context.app.billing = service
    context.app.config = app.config
    out = await call("ce", "GetCostAndUsage", ce.get_cost_and_usage, context, {
        "TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"}, "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost", "UsageQuantity"]})
    (month,) = out["ResultsByTime"]
    assert Decimal(month["Total"]["UnblendedCost"]["Amount"]) == M5_LARGE / 2
    assert Decimal(month["Total"]["UsageQuantity"]["Amount"]) == Decimal("0.5")
    assert month["Estimated"] is True
