"""The ledger's reading side: what each billable thing used in one month, from the events and
counters the API layers recorded (``storage.usage``).

The result is a set of *series*, one per future line-item key (account, region, product, usage
type, operation, resource): a piecewise-constant level over time for time-based usage (1 while an
instance runs, bytes while stored or provisioned) or per-hour amounts for counted usage. The rater
integrates them exactly (integers) and cuts them into hourly line items.

Rules applied here, as AWS bills:

- An instance bills only while ``running``. Each entry into ``running`` (from any other state, or
  from nothing) starts a *run*; a run shorter than 60 s is billed 60 s, the missing seconds added
  at the run's start (so they fall in the hour the run started in, even when the run itself
  crossed into the next hour). A ``running`` event while already running (a duplicate start, a
  reboot) starts nothing; one with another instance type splits the run into two usage types
  without a second minimum (a resize).
- A resource that reached ``terminated`` (instance) or ``deleted`` (volume) bills nothing after,
  whatever events follow: no usage after deletion, at most one open interval per resource.
- A volume bills its size while it exists (not ``deleting``/``deleted``/``error``).
- ``stored_bytes`` deltas integrate into byte-time per (bucket, storage class) or (volume, type);
  a snapshot id (``snap-``) bills as ``EBS:SnapshotUsage``. A level never bills below zero.
- A customer managed KMS key bills 1 key while ``Enabled`` or ``Disabled`` (``kms_key_state``
  events, ``kms_api.key_months``): not while ``PendingDeletion``, nothing after ``Deleted``.
- Counted usage (requests, transfer bytes, VM network bytes) is taken per hour as recorded.

A month's series are built from the state at the month's start plus the events up to the end of
the rated range and 60 s beyond (to see short runs end), so each line is a pure function of the
ledger: rating again gives the same lines.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

from billing import catalog
from billing.periods import HOUR_US, US

MINIMUM_RUN_US = 60 * US
RUNNING = "running"
TERMINAL_STATES = {"instance_state": "terminated", "volume_state": "deleted"}
UNBILLED_VOLUME_STATES = frozenset({"deleting", "deleted", "error"})

KIND_HOURS = "hours"          # level 1 while running; integral in microseconds
KIND_STORAGE = "storage"      # level in bytes; integral in byte-microseconds
KIND_COUNT = "count"          # integers per hour
KIND_MONTHS = "months"        # level 1 while it exists; integral in microseconds, billed per month
KMS_KEY_STATE = "kms_key_state"
BILLED_KEY_STATES = frozenset({"Enabled", "Disabled"})


@dataclass(frozen=True)
class SeriesKey:
    account_id: str
    region: str
    product_code: str
    base_usage_type: str
    operation: str
    resource_id: str


@dataclass
class Series:
    key: SeriesKey
    kind: str
    levels: list[tuple[int, int]] = field(default_factory=list)   # (from_us, level), sorted
    masses: list[tuple[int, int]] = field(default_factory=list)   # (at_us, microseconds)
    counts: dict[int, int] = field(default_factory=dict)          # hour_us -> amount
    attr_times: list[int] = field(default_factory=list)           # line attributes from these instants
    attr_values: list[dict] = field(default_factory=list)

    def add_attrs(self, at: int, attrs: dict) -> None:
        if not self.attr_values or self.attr_values[-1] != attrs:
            self.attr_times.append(at)
            self.attr_values.append(attrs)

    def attrs_before(self, end_us: int) -> dict:
        """The line attributes in effect just before ``end_us`` (tags at usage time)."""
        if not self.attr_values:
            return {}
        index = bisect.bisect_left(self.attr_times, end_us) - 1
        return self.attr_values[max(index, 0)]


@dataclass
class MonthUsage:
    month_us: int
    until_us: int
    series: dict[SeriesKey, Series]


class _Timeline:
    """Attributes of each resource over time (for tags and zones of counted usage)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], list[int]] = {}
        self.values: dict[tuple[str, str], list[dict]] = {}

    def add(self, account: str, resource: str, at: int, attrs: dict) -> None:
        values = self.values.setdefault((account, resource), [])
        if not values or values[-1] is not attrs and values[-1] != attrs:
            values.append(attrs)
            self.times.setdefault((account, resource), []).append(at)

    def before(self, account: str, resource: str, end_us: int) -> dict:
        times = self.times.get((account, resource))
        if not times:
            return {}
        index = bisect.bisect_left(times, end_us) - 1
        return self.values[(account, resource)][index] if index >= 0 else {}


class _Attrs:
    """JSON attributes parsed once per distinct text (most events of a resource repeat them)."""

    def __init__(self) -> None:
        self.cache: dict[str, dict] = {}

    def __call__(self, text: str) -> dict:
        value = self.cache.get(text)
        if value is None:
            value = self.cache[text] = json.loads(text)
        return value


async def load_month(conn: Any, month_us: int, until_us: int) -> MonthUsage:
    """The usage series of the month starting at ``month_us``, up to ``until_us`` (exclusive).
    ``conn`` is an open ``Transaction`` (the rater reads and writes in one transaction) or the
    ``Database``."""
    initial = await conn.fetchall(
        "SELECT account_id, region, service, kind, resource_id, at_us, quantity, attrs FROM ("
        " SELECT *, ROW_NUMBER() OVER (PARTITION BY account_id, kind, resource_id"
        " ORDER BY at_us DESC, seq DESC) AS rn FROM usage_events WHERE at_us < ?) AS latest WHERE rn = 1",
        (month_us,))
    stored = await conn.fetchall(
        "SELECT account_id, region, service, resource_id,"
        " COALESCE(json_extract(attrs, '$.storage_class'), '') AS storage_class,"
        " COALESCE(json_extract(attrs, '$.volume_type'), '') AS volume_type,"
        " SUM(quantity) AS level FROM usage_events WHERE kind = 'stored_bytes' AND at_us < ?"
        " GROUP BY 1, 2, 3, 4, 5, 6", (month_us,))
    events = await conn.fetchall(
        "SELECT account_id, region, service, kind, resource_id, at_us, quantity, attrs"
        " FROM usage_events WHERE at_us >= ? AND at_us < ? ORDER BY at_us, seq",
        (month_us, until_us + MINIMUM_RUN_US))
    counts = await conn.fetchall(
        "SELECT account_id, region, service, usage_type, operation, resource_id, hour_us, amount"
        " FROM usage_counts WHERE hour_us >= ? AND hour_us < ? AND amount != 0",
        (month_us, until_us))

    parse = _Attrs()
    timeline = _Timeline()
    by_resource: dict[tuple[str, str, str], list[tuple[int, Any]]] = {}
    starts: dict[tuple[str, str, str], Any] = {}
    for row in initial:
        attrs = parse(row["attrs"])
        timeline.add(row["account_id"], row["resource_id"], month_us - 1, attrs)
        starts[(row["account_id"], row["kind"], row["resource_id"])] = row
    for row in events:
        attrs = parse(row["attrs"])
        timeline.add(row["account_id"], row["resource_id"], row["at_us"], attrs)
        by_resource.setdefault((row["account_id"], row["kind"], row["resource_id"]), []).append(
            (row["at_us"], row, attrs))

    usage = MonthUsage(month_us, until_us, {})
    instance_keys = {k for k in (*starts, *by_resource) if k[1] == "instance_state"}
    for key in sorted(instance_keys):
        _instance(usage, starts.get(key), by_resource.get(key, []), month_us)
    volume_keys = {k for k in (*starts, *by_resource) if k[1] == "volume_state"}
    for key in sorted(volume_keys):
        _volume(usage, starts.get(key), by_resource.get(key, []), month_us)
    key_keys = {k for k in (*starts, *by_resource) if k[1] == KMS_KEY_STATE}
    for key in sorted(key_keys):
        _kms_key(usage, starts.get(key), by_resource.get(key, []), month_us)
    _stored(usage, stored, [e for e in events if e["kind"] == "stored_bytes"], timeline, month_us, parse)
    _counted(usage, counts, timeline)
    return usage


def _series(usage: MonthUsage, key: SeriesKey, kind: str) -> Series:
    series = usage.series.get(key)
    if series is None:
        series = usage.series[key] = Series(key, kind)
    return series


def _line_attrs(attrs: dict) -> dict:
    memory = attrs.get("memory_mib")
    return {
        "availability_zone": attrs.get("availability_zone") or "",
        "instance_type": attrs.get("instance_type") or "",
        "vcpu": str(attrs["vcpus"]) if attrs.get("vcpus") is not None else "",
        "memory": _memory_text(memory) if memory is not None else "",
        "volume_type": attrs.get("volume_type") or "",
        "tags": dict(attrs.get("tags") or {}),
    }


def _memory_text(memory_mib: Any) -> str:
    mib = int(memory_mib)
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def _instance(usage: MonthUsage, start_row: Any, events: list, month_us: int) -> None:
    """Running intervals and 60-second minimums of one instance in the month."""
    attrs = json.loads(start_row["attrs"]) if start_row is not None else {}
    terminated = attrs.get("state") == "terminated"
    running = attrs.get("state") == RUNNING and not terminated
    first = start_row if start_row is not None else events[0][1]
    account, region, resource = first["account_id"], first["region"], first["resource_id"]
    segments: list[tuple[int, int | None, dict]] = []     # (start, end, attrs)
    runs: list[tuple[int, int | None, dict, bool]] = []   # (start, end, first attrs, began earlier)
    seg_start = run_start = month_us
    run_attrs = seg_attrs = attrs
    run_earlier = True
    for at, _row, event_attrs in events:
        if terminated:
            break
        merged = {**attrs, **event_attrs}
        state = merged.get("state")
        if running and state == RUNNING:
            if _line_attrs(merged) != _line_attrs(seg_attrs):
                segments.append((seg_start, at, seg_attrs))
                seg_start, seg_attrs = at, merged
        elif running:
            segments.append((seg_start, at, seg_attrs))
            runs.append((run_start, at, run_attrs, run_earlier))
            running = False
        elif state == RUNNING:
            running = True
            seg_start = run_start = at
            seg_attrs = run_attrs = merged
            run_earlier = False
        attrs = merged
        terminated = state == "terminated"
    if running:
        segments.append((seg_start, None, seg_attrs))
        runs.append((run_start, None, run_attrs, run_earlier))

    def key_of(a: dict) -> SeriesKey:
        return SeriesKey(account, region, catalog.EC2, catalog.box_usage(a.get("instance_type") or "unknown"),
                         "RunInstances", resource)

    for start, end, seg in segments:
        series = _series(usage, key_of(seg), KIND_HOURS)
        series.levels.append((start, 1))
        if end is not None:
            series.levels.append((end, 0))
        series.add_attrs(start, _line_attrs(seg))
    for start, end, first, earlier in runs:
        if earlier or end is None or end - start >= MINIMUM_RUN_US:
            continue
        series = _series(usage, key_of(first), KIND_HOURS)
        series.masses.append((start, MINIMUM_RUN_US - (end - start)))


def _volume(usage: MonthUsage, start_row: Any, events: list, month_us: int) -> None:
    """Provisioned size over time of one EBS volume."""
    first = start_row if start_row is not None else events[0][1]
    account, region, resource = first["account_id"], first["region"], first["resource_id"]
    attrs = json.loads(start_row["attrs"]) if start_row is not None else {}
    size = start_row["quantity"] if start_row is not None else 0
    changes = [(month_us, size, attrs)]
    deleted = attrs.get("state") == "deleted"
    for at, row, event_attrs in events:
        if deleted:
            break
        attrs = {**attrs, **event_attrs}
        changes.append((at, row["quantity"], attrs))
        deleted = attrs.get("state") == "deleted"
    billing: SeriesKey | None = None
    for at, size, attrs in changes:
        state = attrs.get("state")
        billed = state is not None and state not in UNBILLED_VOLUME_STATES
        key = SeriesKey(account, region, catalog.EC2, *catalog.volume_usage(attrs.get("volume_type") or "gp2"),
                        resource)
        if billing is not None and (billing != key or not billed):
            usage.series[billing].levels.append((at, 0))
            billing = None
        if billed:
            series = _series(usage, key, KIND_STORAGE)
            series.levels.append((at, max(int(size), 0)))
            series.add_attrs(at, _line_attrs(attrs))
            billing = key


def _kms_key(usage: MonthUsage, start_row: Any, events: list, month_us: int) -> None:
    """The time a customer managed KMS key existed and was not pending deletion."""
    first = start_row if start_row is not None else events[0][1]
    account, region, resource = first["account_id"], first["region"], first["resource_id"]
    state = json.loads(start_row["attrs"]).get("state") if start_row is not None else None
    key = SeriesKey(account, region, catalog.KMS, catalog.KMS_KEYS, "CreateKey", resource)
    series: Series | None = None
    billing = False
    changes = [(month_us, state)] + [(at, attrs.get("state")) for at, _row, attrs in events]
    for at, state in changes:
        now_billed = state in BILLED_KEY_STATES
        if now_billed != billing:
            if series is None:
                series = _series(usage, key, KIND_MONTHS)
                series.add_attrs(month_us, _line_attrs({}))
            series.levels.append((at, 1 if now_billed else 0))
            billing = now_billed
        if state == "Deleted":
            break


def _stored(usage: MonthUsage, initial: list, events: list, timeline: _Timeline, month_us: int,
            parse: _Attrs) -> None:
    """Bytes stored over time per (bucket, storage class) or (volume/snapshot, type)."""
    levels: dict[SeriesKey, int] = {}

    def key_of(account: str, region: str, service: str, resource: str, storage_class: str,
               volume_type: str) -> SeriesKey:
        if service == catalog.S3:
            usage_type, operation = catalog.storage_usage(storage_class)
            return SeriesKey(account, region, catalog.S3, usage_type, operation, resource)
        if resource.startswith("snap-"):
            return SeriesKey(account, region, catalog.EC2, *catalog.SNAPSHOT_USAGE, resource)
        return SeriesKey(account, region, catalog.EC2, *catalog.volume_usage(volume_type or "gp2"), resource)

    for row in initial:
        key = key_of(row["account_id"], row["region"], row["service"], row["resource_id"],
                     row["storage_class"], row["volume_type"])
        levels[key] = levels.get(key, 0) + int(row["level"])
    for key, level in levels.items():
        series = _series(usage, key, KIND_STORAGE)
        series.levels.append((month_us, max(level, 0)))
        series.add_attrs(month_us, _line_attrs(timeline.before(key.account_id, key.resource_id, month_us)))
    line_attrs: dict[int, dict] = {}
    for row in events:
        attrs = parse(row["attrs"])
        key = key_of(row["account_id"], row["region"], row["service"], row["resource_id"],
                     attrs.get("storage_class") or "", attrs.get("volume_type") or "")
        levels[key] = levels.get(key, 0) + int(row["quantity"])
        series = _series(usage, key, KIND_STORAGE)
        series.levels.append((row["at_us"], max(levels[key], 0)))
        if id(attrs) not in line_attrs:
            line_attrs[id(attrs)] = _line_attrs(attrs)
        series.add_attrs(row["at_us"], line_attrs[id(attrs)])


def _counted(usage: MonthUsage, rows: list, timeline: _Timeline) -> None:
    """Requests and transfer bytes, per hour as the gateway and the counter sampler recorded them."""
    for row in rows:
        key = SeriesKey(row["account_id"], row["region"], row["service"], row["usage_type"],
                        row["operation"], row["resource_id"])
        series = _series(usage, key, KIND_COUNT)
        series.counts[row["hour_us"]] = series.counts.get(row["hour_us"], 0) + int(row["amount"])
    converted: dict[int, dict] = {}
    for series in usage.series.values():
        if series.kind == KIND_COUNT:
            for hour in sorted(series.counts):
                attrs = timeline.before(series.key.account_id, series.key.resource_id, hour + HOUR_US)
                if id(attrs) not in converted:
                    converted[id(attrs)] = _line_attrs(attrs)
                series.add_attrs(hour, converted[id(attrs)])
