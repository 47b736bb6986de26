"""Small helpers every EC2 module uses: times, owners, list parameters."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ec2_api.errors import InvalidParameterValue

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def to_us(value: dt.datetime) -> int:
    """Integer microseconds since the epoch of an aware (or naive UTC) datetime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


_FROM_US: dict[int, dt.datetime] = {}    # datetimes are immutable: one per instant seen lately
_FROM_US_MAX = 16384


def from_us(value: int | None) -> dt.datetime | None:
    """The aware UTC datetime of integer microseconds since the epoch (remembered: a page of
    instances converts the same few launch and attach times thousands of times)."""
    if value is None:
        return None
    found = _FROM_US.get(value)
    if found is None:
        found = EPOCH + dt.timedelta(microseconds=int(value))
        if len(_FROM_US) >= _FROM_US_MAX:
            _FROM_US.clear()
        if type(value) is int:
            _FROM_US[value] = found
    return found


def now_us(ctx: Any) -> int:
    return to_us(ctx.now())


def account_of(ctx: Any) -> str:
    return ctx.account.account_id


def gmt(value_us: int) -> str:
    """EC2's wording of a time inside messages: ``2024-05-01 12:00:00 GMT``."""
    return from_us(value_us).strftime("%Y-%m-%d %H:%M:%S GMT")


def ids_param(params: dict, name: str) -> list[str]:
    values = params.get(name) or []
    return [str(v) for v in values]


def check_max_results(params: dict, low: int, high: int, name: str = "maxResults") -> int | None:
    value = params.get("MaxResults")
    if value is None:
        return None
    if not low <= value <= high:
        raise InvalidParameterValue(
            f"Value ( {value} ) for parameter {name} is invalid. "
            f"Expecting a value greater than {low - 1} and less than {high + 1}.")
    return value


def arn(region: str, account_id: str, resource: str) -> str:
    return f"arn:aws:ec2:{region}:{account_id}:{resource}"
