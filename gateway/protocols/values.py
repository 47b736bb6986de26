"""Scalar conversions shared by every protocol: text <-> int, bool, float,
timestamp and blob, following the model's types and ``timestampFormat``.

Parsers raise ``ValueError`` on bad text; each protocol turns that into its
own ``ProtocolError`` (the code differs per protocol).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import email.utils
import math
import re
from typing import Any

UTC = _dt.timezone.utc
EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

_INT_RE = re.compile(r'[+-]?[0-9]+\Z')
_FLOAT_RE = re.compile(r'[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z')
_SPECIAL_FLOATS = {'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf}
_ISO_RE = re.compile(
    r'(\d{4})-(\d{2})-(\d{2})'
    r'(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?'
    r'\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\Z',
    re.ASCII,
)
_EPOCH_RE = _FLOAT_RE


# --- text -> value -------------------------------------------------------

def parse_integer(text: str, type_name: str = 'integer') -> int:
    text = text.strip()
    if not _INT_RE.match(text):
        raise ValueError(f'not an integer: {text!r}')
    value = int(text)
    low, high = INT32 if type_name == 'integer' else INT64
    if not low <= value <= high:
        raise ValueError(f'out of range for {type_name}: {text}')
    return value


def parse_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == 'true':
        return True
    if lowered == 'false':
        return False
    raise ValueError(f'not a boolean: {text!r}')


def parse_float(text: str) -> float:
    text = text.strip()
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if not _FLOAT_RE.match(text):
        raise ValueError(f'not a number: {text!r}')
    return float(text)


def parse_blob(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f'not base64: {exc}') from None


def parse_timestamp(text: str, fmt: str | None = None) -> _dt.datetime:
    """Read a timestamp in any of the three AWS formats (``fmt`` is a hint).

    Returns an aware UTC datetime.  Epoch seconds, ISO 8601 (with or without
    fraction and offset) and RFC 822/7231 dates are all accepted whatever the
    model says, as AWS services are lenient here too.
    """
    text = text.strip()
    if not text:
        raise ValueError('empty timestamp')
    try:
        if _EPOCH_RE.match(text):
            return from_epoch(float(text) if not _INT_RE.match(text) else int(text))
        match = _ISO_RE.match(text)
        if match:
            return _from_iso_match(match)
        value = email.utils.parsedate_to_datetime(text)
        if value is None:
            raise ValueError
        return as_utc(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise ValueError(f'not a timestamp: {text!r}') from None


def from_epoch(seconds: float | int) -> _dt.datetime:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError('timestamp is not finite')
    try:
        if isinstance(seconds, int):
            return EPOCH + _dt.timedelta(seconds=seconds)
        whole = math.floor(seconds)
        micros = round((seconds - whole) * 1_000_000)
        return EPOCH + _dt.timedelta(seconds=whole, microseconds=micros)
    except OverflowError:
        raise ValueError('timestamp out of range') from None


def _from_iso_match(m: re.Match) -> _dt.datetime:
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micros = int((frac or '0')[:6].ljust(6, '0'))
    tz = UTC
    if zone and zone not in ('Z', 'z'):
        sign = -1 if zone[0] == '-' else 1
        digits = zone[1:].replace(':', '')
        offset = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = _dt.timezone(sign * offset)
    value = _dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0),
        int(second or 0), micros, tzinfo=tz,
    )
    return value.astimezone(UTC)


def as_utc(value: _dt.datetime) -> _dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- value -> text -------------------------------------------------------

def to_datetime(value: Any) -> _dt.datetime:
    """Accept what a handler may hand back for a timestamp member."""
    if type(value) is _dt.datetime and value.tzinfo is UTC:
        return value
    if isinstance(value, _dt.datetime):
        return as_utc(value)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return from_epoch(float(value) if not isinstance(value, int) else value)
    if isinstance(value, str):
        return parse_timestamp(value)
    raise TypeError(f'cannot use {type(value).__name__} as a timestamp')


def format_iso8601(value: Any) -> str:
    """``2026-11-26T10:00:00.000Z``: what AWS returns, millisecond precision."""
    dt = to_datetime(value)
    if dt.year < 1000:  # strftime's %Y does not pad: keep its text for these
        return dt.strftime('%Y-%m-%dT%H:%M:%S') + f'.{dt.microsecond // 1000:03d}Z'
    return (f'{dt.year}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:'
            f'{dt.second:02d}.{dt.microsecond // 1000:03d}Z')


_DAY_NAMES = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')
_MONTH_NAMES = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')


def format_rfc822(value: Any) -> str:
    """``Wed, 26 Nov 2026 10:00:00 GMT`` (RFC 7231 IMF-fixdate, as ``email.utils`` writes it)."""
    dt = to_datetime(value)
    return (f'{_DAY_NAMES[dt.weekday()]}, {dt.day:02d} {_MONTH_NAMES[dt.month - 1]} '
            f'{dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} GMT')


def epoch_seconds(value: Any) -> int | float:
    """Epoch seconds, an int when whole, else a float with milliseconds."""
    dt = to_datetime(value)
    delta = dt - EPOCH
    whole = delta.days * 86400 + delta.seconds
    millis = delta.microseconds // 1000
    return whole if not millis else whole + millis / 1000


def format_timestamp(value: Any, fmt: str | None, default: str) -> str:
    fmt = (fmt or default).lower()
    if fmt == 'rfc822':
        return format_rfc822(value)
    if fmt == 'unixtimestamp':
        return str(epoch_seconds(value))
    return format_iso8601(value)


def format_float(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return 'NaN'
    if math.isinf(number):
        return 'Infinity' if number > 0 else '-Infinity'
    if isinstance(value, decimal.Decimal):
        return str(value)
    return repr(number)


def format_boolean(value: Any) -> str:
    return 'true' if value else 'false'


def format_blob(value: Any) -> str:
    if isinstance(value, str):
        value = value.encode('utf-8')
    return base64.b64encode(bytes(value)).decode('ascii')


def format_scalar(shape, value: Any, default_ts: str = 'iso8601') -> str:
    """Text of a scalar member for XML bodies, headers and query strings."""
    type_name = shape.type_name
    if type_name == 'boolean':
        return format_boolean(value)
    if type_name == 'timestamp':
        return format_timestamp(value, shape.serialization.get('timestampFormat'), default_ts)
    if type_name in ('float', 'double'):
        return format_float(value)
    if type_name in ('integer', 'long'):
        return str(int(value))
    if type_name == 'blob':
        return format_blob(value)
    return value if isinstance(value, str) else str(value)


def parse_scalar(shape, text: str, default_ts: str = 'iso8601') -> Any:
    """Read a scalar member from text; ``ValueError`` when it does not fit."""
    type_name = shape.type_name
    if type_name in ('integer', 'long'):
        return parse_integer(text, type_name)
    if type_name == 'boolean':
        return parse_boolean(text)
    if type_name in ('float', 'double'):
        return parse_float(text)
    if type_name == 'timestamp':
        return parse_timestamp(text, shape.serialization.get('timestampFormat', default_ts))
    if type_name == 'blob':
        return parse_blob(text)
    return text
