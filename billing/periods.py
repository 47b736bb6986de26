"""Time arithmetic for billing: integer microseconds since the epoch (UTC), hours, months of their
real length, and the text forms AWS uses (CUR dates, billing periods, Cost Explorer dates)."""
from __future__ import annotations

import datetime as dt
import re

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def to_us(value: dt.datetime) -> int:
    """Exact microseconds of an aware datetime (no float on the way)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def from_us(at_us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=at_us)


def floor_hour(at_us: int) -> int:
    return at_us - at_us % HOUR_US


def floor_day(at_us: int) -> int:
    return at_us - at_us % DAY_US


def month_start(at_us: int) -> int:
    day = from_us(at_us)
    return to_us(dt.datetime(day.year, day.month, 1, tzinfo=dt.timezone.utc))


def next_month(at_us: int) -> int:
    day = from_us(month_start(at_us))
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return to_us(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc))


def hours_in_month(at_us: int) -> int:
    """744 for May, 720 for June, 672 or 696 for February."""
    return (next_month(at_us) - month_start(at_us)) // HOUR_US


def period_name(at_us: int) -> str:
    """``2026-11`` for any instant of November 2026."""
    return from_us(at_us).strftime("%Y-%m")


def parse_period(text: str) -> tuple[int, int]:
    """``2026-11`` -> (start, end) of that month; ValueError otherwise."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text or "")
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"a billing period looks like 2026-11, not {text!r}")
    start = to_us(dt.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=dt.timezone.utc))
    return start, next_month(start)


def cur_time(at_us: int) -> str:
    """``2026-11-01T00:00:00Z`` (CUR dates and time intervals)."""
    return from_us(at_us).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact_date(at_us: int) -> str:
    """``20261101`` (CUR folder names)."""
    return from_us(at_us).strftime("%Y%m%d")


def manifest_time(at_us: int) -> str:
    """``20261101T000000.000Z`` (CUR manifest billingPeriod)."""
    return from_us(at_us).strftime("%Y%m%dT%H%M%S.000Z")


def status_time(at_us: int) -> str:
    """``20261101T120000Z`` (CUR ReportStatus.lastDelivery)."""
    return from_us(at_us).strftime("%Y%m%dT%H%M%SZ")


def day_text(at_us: int) -> str:
    return from_us(at_us).strftime("%Y-%m-%d")


def hour_text(at_us: int) -> str:
    return from_us(at_us).strftime("%Y-%m-%dT%H:%M:%SZ")
