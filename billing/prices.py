"""The price list: versioned USD rates per usage type, each version in force from its start time.

A price list is a TOML file (the shipped default is ``billing/default_prices.toml``)::

    currency = "USD"

    [[version]]
    id = "2026-01"
    effective = 2026-01-01T00:00:00Z          # a TOML date-time (UTC) or "2026-01-01T00:00:00Z"
    [version.AmazonEC2]
    "BoxUsage:m5.large" = "0.096"             # USD per Hrs; rates are strings (exact decimals)
    "BoxUsage:*" = "0.05"                     # any other instance type
    "EBS:VolumeUsage.gp2" = "0.10"            # USD per GB-Mo
    [version.AmazonS3]
    "TimedStorage-ByteHrs" = "0.023"
    [version.regions.eu-west-1.AmazonEC2]     # a region's own rates, over the version's
    "BoxUsage:m5.large" = "0.107"

Usage types are written without AWS's region prefix. Each version inherits every rate of the
version before it and overrides what it lists, so a price change is a short version that names
what changed. Usage before the first version is priced by the first version. A usage type with no
rate (and no ``prefix*`` wildcard) is billed at 0 and shows up in reports with rate 0.

A rate written as a TOML float (``0.096``) is refused: floats are not exact. A file that does not
parse is refused with the line at fault; the last good list (a copy kept in
``<data_dir>/billing/last-good-prices.toml``) stays in force.
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

log = logging.getLogger("nimbo.billing")

DEFAULT_PRICE_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_prices.toml")
LAST_GOOD_NAME = "last-good-prices.toml"
PRODUCTS = ("AmazonEC2", "AmazonS3", "awskms")

Rates = dict[str, dict[str, Decimal]]              # product -> base usage type -> USD


class PriceListError(Exception):
    """A price list that cannot be used; ``line`` is the line at fault (1-based) when known."""

    def __init__(self, message: str, line: int | None = None, source: str = "") -> None:
        self.line = line
        self.source = source
        where = f"{source}: " if source else ""
        at = f"line {line}: " if line else ""
        super().__init__(f"{where}{at}{message}")


@dataclass(frozen=True)
class PriceVersion:
    version_id: str
    effective_us: int
    rates: Rates                                   # resolved (inherited + own)
    regional: dict[str, Rates]                     # region -> resolved overrides


@dataclass
class PriceList:
    versions: list[PriceVersion]
    digest: str
    source: str = ""
    currency: str = "USD"
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._starts = [v.effective_us for v in self.versions]

    def version_at(self, at_us: int) -> PriceVersion:
        index = bisect.bisect_right(self._starts, at_us) - 1
        return self.versions[max(index, 0)]

    def rate(self, product: str, region: str, base_usage_type: str, at_us: int) -> tuple[Decimal, str]:
        """(USD per unit, version id) for usage at ``at_us``."""
        version = self.version_at(at_us)
        tables = [version.regional.get(region, {}).get(product, {}), version.rates.get(product, {})]
        for table in tables:
            if base_usage_type in table:
                return table[base_usage_type], version.version_id
        for table in tables:
            best = max((k for k in table if k.endswith("*") and base_usage_type.startswith(k[:-1])),
                       key=len, default=None)
            if best is not None:
                return table[best], version.version_id
        return Decimal(0), version.version_id

    def change_points(self, start_us: int, end_us: int) -> list[int]:
        """Instants strictly inside (start, end) where another version takes effect."""
        return [s for s in self._starts[1:] if start_us < s < end_us]

    def first_difference(self, other: "PriceList") -> int | None:
        """The earliest instant from which ``other`` prices anything differently (None: same
        prices everywhere; ``-1``: different from the beginning)."""
        points = sorted({-1, *self._starts, *other._starts})
        for point in points:
            a, b = self.version_at(point), other.version_at(point)
            if (a.rates, a.regional) != (b.rates, b.regional):
                return point if point > min(self._starts[0], other._starts[0]) else -1
        return None


def parse_price_list(text: str, source: str = "") -> PriceList:
    """Parse and check a price list; raises ``PriceListError`` naming the line at fault."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else (max(len(text.splitlines()), 1)
                                                  if "end of document" in str(exc) else None)
        raise PriceListError(f"not valid TOML: {exc}", line, source) from None
    lines = text.splitlines()

    headers = [n for n, line in enumerate(lines) if line.strip().startswith("[[version]]")]
    where = {"from": 0}

    def fail(message: str, *needles: str) -> PriceListError:
        return PriceListError(message, _find_line(lines, needles, where["from"]), source)

    currency = document.get("currency", "USD")
    if currency != "USD":
        raise fail(f"currency must be USD, not {currency!r}", "currency")
    unknown = set(document) - {"currency", "version"}
    if unknown:
        raise fail(f"unknown top-level key {sorted(unknown)[0]!r}", sorted(unknown)[0])
    raw_versions = document.get("version")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise fail("a price list needs at least one [[version]]", "[[version]]")
    parsed = []
    for index, raw in enumerate(raw_versions):
        where["from"] = headers[index] if index < len(headers) else 0
        version_id = raw.get("id")
        if not isinstance(version_id, str) or not version_id:
            raise fail("each [[version]] needs an id (a string)", "[[version]]")
        effective = _instant(raw.get("effective"))
        if effective is None:
            raise fail(f"version {version_id!r}: effective must be a UTC date-time like "
                       "2026-01-01T00:00:00Z", "effective", version_id)
        own: Rates = {}
        regional: dict[str, Rates] = {}
        for key, value in raw.items():
            if key in ("id", "effective"):
                continue
            if key == "regions":
                if not isinstance(value, dict):
                    raise fail("regions must be a table of region tables", "regions")
                for region, products in value.items():
                    where["from"] = _find_line(lines, (f"regions.{region}", f'regions."{region}"'),
                                               where["from"]) or where["from"]
                    if not isinstance(products, dict):
                        raise fail(f"regions.{region} must be a table", region)
                    regional[region] = _rates(products, fail, f"{version_id}/{region}")
                continue
            if key not in PRODUCTS:
                raise fail(f"version {version_id!r}: unknown product {key!r} (known: "
                           f"{', '.join(PRODUCTS)})", key)
            own.update(_rates({key: value}, fail, version_id))
        parsed.append((effective, version_id, own, regional))
    where["from"] = 0
    parsed.sort(key=lambda item: item[0])
    ids = [p[1] for p in parsed]
    for a, b in zip(parsed, parsed[1:]):
        if a[0] == b[0]:
            raise fail(f"versions {a[1]!r} and {b[1]!r} take effect at the same time", b[1])
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise fail(f"version id {dup!r} is used twice", dup)
    versions: list[PriceVersion] = []
    rates: Rates = {}
    regions: dict[str, Rates] = {}
    for effective, version_id, own, regional in parsed:
        rates = _merge(rates, own)
        regions = {r: _merge(regions.get(r, {}), regional.get(r, {})) for r in {*regions, *regional}}
        versions.append(PriceVersion(version_id, effective, rates, regions))
    return PriceList(versions, hashlib.sha256(text.encode()).hexdigest(), source, currency)


def _rates(products: dict[str, Any], fail, where: str) -> Rates:
    out: Rates = {}
    for product, table in products.items():
        if product not in PRODUCTS:
            raise fail(f"{where}: unknown product {product!r}", product)
        if not isinstance(table, dict):
            raise fail(f"{where}: {product} must be a table of usage type = \"rate\"", product)
        out[product] = {}
        for usage_type, value in table.items():
            if isinstance(value, float) or isinstance(value, bool) or not isinstance(value, (str, int)):
                raise fail(f"{where}: the rate of {usage_type} must be a string like \"0.096\" "
                           "(floats are not exact)", f'"{usage_type}"', usage_type)
            try:
                rate = Decimal(str(value).strip())
            except InvalidOperation:
                rate = Decimal("NaN")
            if not rate.is_finite() or rate < 0:
                raise fail(f"{where}: the rate of {usage_type} is not a non-negative decimal: "
                           f"{value!r}", f'"{usage_type}"', usage_type)
            out[product][usage_type] = rate
    return out


def _merge(base: Rates, update: Rates) -> Rates:
    merged = {product: dict(table) for product, table in base.items()}
    for product, table in update.items():
        merged.setdefault(product, {}).update(table)
    return merged


def _instant(value: Any) -> int | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return None
        delta = value.astimezone(dt.timezone.utc) - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return (value - dt.date(1970, 1, 1)).days * 86_400_000_000
    return None


def _find_line(lines: list[str], needles: tuple[str, ...], start: int = 0) -> int | None:
    """The 1-based number of the first line from ``start`` (0-based) holding one of ``needles``."""
    for needle in needles:
        if not needle:
            continue
        for number, line in enumerate(lines[start:], start + 1):
            if needle in line.split("#", 1)[0]:
                return number
    return None


class PriceSource:
    """The price list in force, reloaded when its file changes; a file that does not parse is
    refused (logged with its line) and the last good list stays in force."""

    def __init__(self, path: str | None, data_dir: str | None) -> None:
        self.path = path or DEFAULT_PRICE_LIST
        self.last_good_path = os.path.join(data_dir, "billing", LAST_GOOD_NAME) if data_dir else None
        self.current: PriceList | None = None
        self.error: PriceListError | None = None
        self._seen: tuple[float, int] | None = None

    def load(self) -> PriceList:
        """Read the configured file (at start-up, and again whenever it changed)."""
        try:
            stat = os.stat(self.path)
            self._seen = (stat.st_mtime, stat.st_size)     # a refused file is not re-read until it changes
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
            prices = parse_price_list(text, self.path)
        except (OSError, UnicodeDecodeError, PriceListError) as exc:
            self.error = exc if isinstance(exc, PriceListError) else PriceListError(str(exc), None, self.path)
            log.error("price list refused, the last good one stays in force: %s", self.error)
            if self.current is None:
                self.current = self._fallback()
            return self.current
        self.error = None
        self.current = prices
        self._keep_copy(text)
        return prices

    def refresh(self) -> tuple[PriceList, PriceList | None]:
        """(the list in force, the list it replaced if the file changed and parsed)."""
        try:
            stat = os.stat(self.path)
            seen = (stat.st_mtime, stat.st_size)
        except OSError:
            seen = None
        if self.current is not None and seen == self._seen:
            return self.current, None
        previous = self.current
        current = self.load()
        if previous is not None and current is not previous and current.digest != previous.digest:
            return current, previous
        return current, None

    def _fallback(self) -> PriceList:
        for path in (self.last_good_path, DEFAULT_PRICE_LIST):
            if path and os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as fh:
                        return parse_price_list(fh.read(), path)
                except (OSError, PriceListError) as exc:
                    log.error("fallback price list %s unusable: %s", path, exc)
        raise PriceListError("no usable price list", None, self.path)

    def previous_good(self) -> PriceList | None:
        """The last good list kept in the data directory (what rated the existing line items)."""
        if not self.last_good_path or not os.path.exists(self.last_good_path):
            return None
        try:
            with open(self.last_good_path, encoding="utf-8") as fh:
                return parse_price_list(fh.read(), self.last_good_path)
        except (OSError, PriceListError):
            return None

    def _keep_copy(self, text: str) -> None:
        if not self.last_good_path:
            return
        try:
            with open(self.last_good_path, encoding="utf-8") as fh:
                if fh.read() == text:
                    return
        except OSError:
            pass
        os.makedirs(os.path.dirname(self.last_good_path), mode=0o700, exist_ok=True)
        tmp = self.last_good_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.last_good_path)
