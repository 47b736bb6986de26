"""Hourly rating: line items recomputed deterministically from the ledger, with a checkpoint that
moves in the same transaction as the line items it covers.

**Line items.** One per (account, region, product, usage type, operation, resource) and hour; a
price change inside an hour splits that key's hour at the change (two lines, each at its rate).
No line spans two hours. ``cost = rate x amount`` exactly (Decimal, no rounding).

**Amounts and their precision.** Usage is integrated exactly in integers (microseconds,
byte-microseconds, bytes, requests). Amounts have 12 decimal places (``PLACES``), rounded half
up, and are made *telescoping*: a line's amount is ``R(total from the month's start to the line's
end) - R(total to its start)``. The lines of a month therefore add up to exactly the rounded
month total of each key: 1 GiB for 15 days of June is 0.5 GB-Mo, 15 days of May 0.483870967742,
AWS's example is 52,900 GB-Mo, and 720 hours are 720 Hrs, never 720.02.

- ``Hrs`` = running microseconds / 3,600,000,000 (per-second billing measured to the microsecond).
- ``GB-Mo`` = byte-hours / 2^30 / hours in that month (months of their real length).
- ``GB`` = bytes / 2^30. ``Requests`` = requests.
- ``Keys`` (KMS key-months) = hours a key was billed / hours in that month.

**Checkpoint.** ``billing_state.rated_until_us``: every complete hour before it is rated. A pass
rates the hours from the checkpoint to the last complete hour (a rater that was down five hours
rates all five), in chunks that each delete-and-rewrite their hours and advance the checkpoint in
one transaction. Usage that arrives late is noticed and its hours rated again: events by their
``seq`` above the highest one seen, counters by a per-hour (rows, sum) mark. Because amounts are
telescoping within a month, a re-rate runs from the first changed hour to the checkpoint.
"""
from __future__ import annotations

import decimal
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from billing import catalog
from billing.ledger import KIND_COUNT, KIND_HOURS, KIND_MONTHS, KIND_STORAGE, MINIMUM_RUN_US, Series, load_month
from billing.periods import HOUR_US, floor_hour, hours_in_month, month_start, next_month, period_name
from billing.prices import PriceList
from billing.schema import ensure_schema
from storage.db import Database, Transaction

PLACES = 12
GIB = 1 << 30
CHUNK_HOURS = 24 * 7
LINE_COLUMNS = (
    "account_id", "region", "product_code", "usage_type", "operation", "resource_id", "start_us",
    "end_us", "hour_us", "line_item_id", "base_usage_type", "availability_zone", "amount", "unit",
    "rate", "cost", "price_version", "description", "instance_type", "vcpu", "memory",
    "volume_type", "tags",
)
_EXACT = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_UP)


def rounded(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator rounded half up to ``PLACES`` decimals, in exact integer math."""
    quotient, remainder = divmod(numerator * 10 ** PLACES, denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return Decimal(quotient).scaleb(-PLACES)


def line_item_id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:52]


def _divisor(series: Series, month_us: int) -> int:
    if series.kind == KIND_HOURS:
        return HOUR_US
    if series.kind == KIND_STORAGE:
        return GIB * HOUR_US * hours_in_month(month_us)
    if series.kind == KIND_MONTHS:
        return HOUR_US * hours_in_month(month_us)
    return GIB if series.key.base_usage_type.startswith("DataTransfer") else 1


def _cumulative(series: Series, month_us: int, points: list[int]) -> list[int]:
    """The integral of the series from the month's start to each point (sorted), exactly."""
    out = []
    if series.kind == KIND_COUNT:
        hours = sorted(series.counts.items())
        total = index = 0
        for point in points:
            while index < len(hours) and hours[index][0] < point:
                total += hours[index][1]
                index += 1
            out.append(total)
        return out
    levels, masses = series.levels, series.masses
    acc, at, level, i, j, mass = 0, month_us, 0, 0, 0, 0
    for point in points:
        while i < len(levels) and levels[i][0] <= point:
            t, new_level = levels[i]
            t = max(t, month_us)
            acc += level * (t - at)
            at, level = t, new_level
            i += 1
        while j < len(masses) and masses[j][0] < point:
            mass += masses[j][1]
            j += 1
        out.append(acc + level * (point - at) + mass)
    return out


def _points(series: Series, prices: PriceList, start_us: int, end_us: int) -> list[int]:
    points = set(range(start_us, end_us + 1, HOUR_US))
    points.add(end_us)      # the open hour's estimate ends now, inside an hour (billing.estimates)
    if series.kind != KIND_COUNT:
        key = series.key
        for change in prices.change_points(start_us, end_us):
            after = prices.rate(key.product_code, key.region, key.base_usage_type, change)[0]
            before = prices.rate(key.product_code, key.region, key.base_usage_type, change - 1)[0]
            if after != before:
                points.add(change)
    return sorted(points)


def lines_of(series: Series, prices: PriceList, month_us: int, start_us: int, end_us: int) -> list[tuple]:
    """The line items of one series for the hours [start, end) of its month, as table rows."""
    key = series.key
    points = _points(series, prices, start_us, end_us)
    totals = _cumulative(series, month_us, points)
    divisor = _divisor(series, month_us)
    unit = catalog.unit_of(key.product_code, key.base_usage_type)
    usage_type = catalog.regional_usage_type(key.region, key.base_usage_type, key.product_code)
    instance_type = catalog.instance_type_of(key.base_usage_type)
    rows = []
    tag_text: dict[int, str] = {}
    for (begin, end), (before, after) in zip(zip(points, points[1:]), zip(totals, totals[1:])):
        if after == before:
            continue
        amount = rounded(after, divisor) - rounded(before, divisor)
        rate, version = prices.rate(key.product_code, key.region, key.base_usage_type, begin)
        cost = _EXACT.multiply(rate, amount)
        attrs = series.attrs_before(end)
        if id(attrs) not in tag_text:
            tag_text[id(attrs)] = json.dumps(attrs.get("tags") or {}, sort_keys=True)
        rows.append((
            key.account_id, key.region, key.product_code, usage_type, key.operation, key.resource_id,
            begin, end, floor_hour(begin),
            line_item_id(key.account_id, key.region, key.product_code, usage_type, key.operation,
                         key.resource_id, begin),
            key.base_usage_type, attrs.get("availability_zone", ""), _text(amount), unit, _text(rate),
            _text(cost), version,
            catalog.description(key.product_code, key.base_usage_type, rate, unit, instance_type),
            instance_type,
            attrs.get("vcpu", "") if instance_type else "", attrs.get("memory", "") if instance_type else "",
            attrs.get("volume_type", "") if key.base_usage_type.startswith("EBS:Volume") else "",
            tag_text[id(attrs)],
        ))
    return rows


def _text(value: Decimal) -> str:
    return format(value, "f")


async def rate_range(conn: Transaction | Database, prices: PriceList, start_us: int, end_us: int) -> list[tuple]:
    """The line items of whole hours [start, end) within one month, computed from the ledger."""
    month_us = month_start(start_us)
    if start_us % HOUR_US or end_us % HOUR_US or end_us > next_month(month_us) or end_us <= start_us:
        raise ValueError("rate whole hours of one month")
    usage = await load_month(conn, month_us, end_us)
    rows: list[tuple] = []
    for key in sorted(usage.series, key=lambda k: (k.account_id, k.region, k.product_code,
                                                   k.base_usage_type, k.operation, k.resource_id)):
        rows.extend(lines_of(usage.series[key], prices, month_us, start_us, end_us))
    return rows


# --- the checkpoint ------------------------------------------------------------------------------

@dataclass
class RaterState:
    rated_until_us: int
    max_seq: int
    rerate_from_us: int | None


@dataclass
class RateResult:
    rated_until_us: int
    hours_rated: int = 0
    lines_written: int = 0
    rerated_from_us: int | None = None


async def rated_until(db: Database) -> int | None:
    await ensure_schema(db)
    row = await db.fetchone("SELECT rated_until_us FROM billing_state WHERE id = 1")
    return row["rated_until_us"] if row else None


async def _state(tx: Transaction, target_us: int) -> RaterState:
    row = await tx.fetchone("SELECT rated_until_us, max_seq, rerate_from_us FROM billing_state WHERE id = 1")
    if row is not None:
        return RaterState(row["rated_until_us"], row["max_seq"], row["rerate_from_us"])
    first = await first_usage_us(tx)
    start = floor_hour(first) if first is not None else target_us
    newest = await tx.fetchone("SELECT MAX(seq) AS seq FROM usage_events")
    return RaterState(min(start, target_us), newest["seq"] or 0, None)


async def _save(tx: Transaction, state: RaterState) -> None:
    await tx.execute(
        "INSERT INTO billing_state (id, rated_until_us, max_seq, rerate_from_us) VALUES (1, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET rated_until_us = excluded.rated_until_us,"
        " max_seq = excluded.max_seq, rerate_from_us = excluded.rerate_from_us",
        (state.rated_until_us, state.max_seq, state.rerate_from_us))


def _rerate(state: RaterState, from_us: int) -> None:
    if from_us < state.rated_until_us:
        hour = floor_hour(from_us)
        state.rerate_from_us = hour if state.rerate_from_us is None else min(state.rerate_from_us, hour)


async def _notice_late_usage(tx: Transaction, state: RaterState) -> None:
    """Events and counts that arrived for hours already rated: rate from their hour again."""
    row = await tx.fetchone("SELECT MAX(seq) AS seq FROM usage_events")
    newest = row["seq"] or 0
    if newest > state.max_seq:
        late = await tx.fetchone("SELECT MIN(at_us) AS t FROM usage_events WHERE seq > ?", (state.max_seq,))
        if late["t"] is not None:
            _rerate(state, late["t"] - MINIMUM_RUN_US)   # a stop can shorten a run begun 60 s before
        state.max_seq = newest
    window = month_start(month_start(state.rated_until_us) - 1)  # this month and the one before
    changed = await tx.fetchone(
        "SELECT MIN(c.hour_us) AS h FROM (SELECT hour_us, COUNT(*) AS n, SUM(amount) AS total"
        " FROM usage_counts WHERE hour_us >= ? AND hour_us < ? GROUP BY hour_us) AS c"
        " LEFT JOIN billing_count_marks AS m ON m.hour_us = c.hour_us"
        " WHERE m.hour_us IS NULL OR m.rows != c.n OR m.total != c.total",
        (window, state.rated_until_us))
    if changed["h"] is not None:
        _rerate(state, changed["h"])


def _next_chunk(state: RaterState, target_us: int, chunk_hours: int) -> tuple[int, int] | None:
    if state.rerate_from_us is not None and state.rerate_from_us < state.rated_until_us:
        start = state.rerate_from_us
        end = min(start + chunk_hours * HOUR_US, next_month(start), state.rated_until_us)
        return start, end
    state.rerate_from_us = None
    if state.rated_until_us < target_us:
        start = state.rated_until_us
        return start, min(start + chunk_hours * HOUR_US, next_month(start), target_us)
    return None


async def write_lines(tx: Transaction, start_us: int, end_us: int, rows: list[tuple]) -> None:
    """Replace the line items of the hours [start, end) with ``rows``."""
    await tx.execute("DELETE FROM billing_line_items WHERE start_us >= ? AND start_us < ?", (start_us, end_us))
    await tx.executemany(
        f"INSERT INTO billing_line_items ({', '.join(LINE_COLUMNS)})"
        f" VALUES ({', '.join('?' for _ in LINE_COLUMNS)})", rows)


async def _mark_counts(tx: Transaction, start_us: int, end_us: int) -> None:
    await tx.execute("DELETE FROM billing_count_marks WHERE hour_us >= ? AND hour_us < ?", (start_us, end_us))
    await tx.execute(
        "INSERT INTO billing_count_marks (hour_us, rows, total) SELECT hour_us, COUNT(*), SUM(amount)"
        " FROM usage_counts WHERE hour_us >= ? AND hour_us < ? GROUP BY hour_us", (start_us, end_us))


async def _bump_period(tx: Transaction, start_us: int) -> None:
    await tx.execute(
        "INSERT INTO billing_periods (period, revision) VALUES (?, 1)"
        " ON CONFLICT(period) DO UPDATE SET revision = billing_periods.revision + 1", (period_name(start_us),))


async def rate_pending(db: Database, prices: PriceList, now_us: int, *,
                       chunk_hours: int = CHUNK_HOURS) -> RateResult:
    """Rate every complete hour not rated yet, and again any hour whose usage changed since."""
    await ensure_schema(db)
    target = floor_hour(now_us)
    result = RateResult(rated_until_us=0)
    while True:
        async with db.transaction() as tx:
            state = await _state(tx, target)
            await _notice_late_usage(tx, state)
            chunk = _next_chunk(state, target, chunk_hours)
            if chunk is not None:
                start, end = chunk
                rows = await rate_range(tx, prices, start, end)
                await write_lines(tx, start, end, rows)
                await _mark_counts(tx, start, end)
                await _bump_period(tx, start)
                if state.rerate_from_us is not None and start == state.rerate_from_us:
                    if result.rerated_from_us is None:
                        result.rerated_from_us = start
                    state.rerate_from_us = end if end < state.rated_until_us else None
                else:
                    state.rated_until_us = end
                result.hours_rated += (end - start) // HOUR_US
                result.lines_written += len(rows)
            await _save(tx, state)
        result.rated_until_us = state.rated_until_us
        if chunk is None:
            return result


async def request_rerate(db: Database, from_us: int) -> None:
    """Rate again from ``from_us`` on the next pass (a price list that changed in the past)."""
    await ensure_schema(db)
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT rated_until_us FROM billing_state WHERE id = 1")
        if row is None:
            return
        state = await _state(tx, row["rated_until_us"])
        _rerate(state, max(from_us, 0))
        await _save(tx, state)


async def first_usage_us(conn: Transaction | Database) -> int | None:
    row = await conn.fetchone(
        "SELECT MIN(t) AS t FROM (SELECT MIN(at_us) AS t FROM usage_events"
        " UNION ALL SELECT MIN(hour_us) FROM usage_counts) AS firsts")
    return row["t"]


async def refresh_prices(db: Database, source) -> PriceList:
    """The price list in force from ``source`` (a ``billing.prices.PriceSource``), loaded or
    reloaded; when it prices anything differently from the list that rated the existing lines,
    the hours from the first difference (not before the first usage) are queued to be rated
    again."""
    await ensure_schema(db)
    if source.current is None:
        previous = source.previous_good()
        current = source.load()
    else:
        current, previous = source.refresh()
    if previous is not None and previous.digest != current.digest:
        changed = previous.first_difference(current)
        first = await first_usage_us(db)
        if changed is not None and first is not None:
            await request_rerate(db, max(changed, first))
    return current


async def rate_with_source(db: Database, source, now_us: int) -> RateResult:
    """``refresh_prices`` then ``rate_pending``."""
    return await rate_pending(db, await refresh_prices(db, source), now_us)
