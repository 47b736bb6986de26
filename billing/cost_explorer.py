"""The Cost Explorer API (botocore service ``ce``, JSON 1.1, ``AWSInsightsIndexService``):
GetCostAndUsage, GetDimensionValues, GetTags over the rated line items.

A tenant sees its own costs only; the admin account sees every account (LINKED_ACCOUNT).
Amounts are exact Decimal sums of the line items, as strings; costs in ``USD``, usage in the
lines' unit (``N/A`` when a result mixes units, as AWS does). ``Estimated`` is true for a period
that reaches past the last rated hour.

Supported: Granularity DAILY/MONTHLY/HOURLY; metrics UnblendedCost, BlendedCost,
NetUnblendedCost, AmortizedCost, NetAmortizedCost (all the same here: no discounts, no
commitments), UsageQuantity, NormalizedUsageAmount; GroupBy (up to two) DIMENSION SERVICE,
SERVICE_CODE, USAGE_TYPE, USAGE_TYPE_GROUP, OPERATION, LINKED_ACCOUNT, REGION, AZ, INSTANCE_TYPE,
INSTANCE_TYPE_FAMILY, RESOURCE_ID, RECORD_TYPE, BILLING_ENTITY, or TAG; Filter with And/Or/Not,
Dimensions and Tags, MatchOptions EQUALS (default), ABSENT, STARTS_WITH, ENDS_WITH, CONTAINS,
CASE_SENSITIVE, CASE_INSENSITIVE. Cost categories are refused (ValidationException).
"""
from __future__ import annotations

import base64
import binascii
import bisect
import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any, Callable

from billing import catalog, errors
from billing.catalog import format_decimal
from billing.lines import LineItem, account_names, fetch_lines
from billing.periods import DAY_US, HOUR_US, day_text, hour_text, next_month, to_us
from billing.rating import rated_until

PAGE_ITEMS = 1000
DEFAULT_MAX_RESULTS = 1000
COST_METRICS = {"UnblendedCost", "BlendedCost", "NetUnblendedCost", "AmortizedCost", "NetAmortizedCost"}
METRICS = COST_METRICS | {"UsageQuantity", "NormalizedUsageAmount"}
_METRIC_ALIASES = {re.sub(r"(?<!^)(?=[A-Z])", "_", m).upper(): m for m in METRICS}
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z)?")

DIMENSIONS: dict[str, Callable[[LineItem], str]] = {
    "SERVICE": lambda line: line.service,
    "SERVICE_CODE": lambda line: line.product_code,
    "USAGE_TYPE": lambda line: line.usage_type,
    "USAGE_TYPE_GROUP": lambda line: catalog.usage_type_group(line.product_code, line.usage_type),
    "OPERATION": lambda line: line.operation,
    "LINKED_ACCOUNT": lambda line: line.account_id,
    "REGION": lambda line: line.region,
    "AZ": lambda line: line.availability_zone,
    "INSTANCE_TYPE": lambda line: line.instance_type,
    "INSTANCE_TYPE_FAMILY": lambda line: line.instance_type.partition(".")[0],
    "RESOURCE_ID": lambda line: line.resource_id,
    "RECORD_TYPE": lambda line: "Usage",
    "BILLING_ENTITY": lambda line: "AWS",
}
NO_VALUE = {"INSTANCE_TYPE": "NoInstanceType", "INSTANCE_TYPE_FAMILY": "NoInstanceTypeFamily",
            "AZ": "NoAZ", "RESOURCE_ID": "NoResourceId", "USAGE_TYPE_GROUP": "NoUsageTypeGroup"}


def _invalid(message: str) -> errors.BillingError:
    return errors.ValidationException(message)


# --- request checks ------------------------------------------------------------------------------

def _instant(text: Any, member: str) -> tuple[int, bool]:
    """(microseconds, has a time part) of 'YYYY-MM-DD' or 'YYYY-MM-DDThh:mm:ssZ'."""
    match = _DATE.fullmatch(text or "") if isinstance(text, str) else None
    if not match:
        raise _invalid(f"Invalid date format for {member}: {text!r}; expected YYYY-MM-DD or "
                       "YYYY-MM-DDThh:mm:ssZ")
    try:
        parts = [int(p) if p is not None else 0 for p in match.groups()]
        moment = dt.datetime(*parts, tzinfo=dt.timezone.utc)
    except ValueError:
        raise _invalid(f"Invalid date for {member}: {text!r}") from None
    return to_us(moment), match.group(4) is not None


def time_period(period: Any, granularity: str | None = None) -> tuple[int, int]:
    if not isinstance(period, dict):
        raise _invalid("TimePeriod is required")
    start, start_timed = _instant(period.get("Start"), "start")
    end, end_timed = _instant(period.get("End"), "end")
    if granularity == "HOURLY" and not (start_timed and end_timed):
        raise _invalid("Start and End must be in YYYY-MM-DDThh:mm:ssZ format for HOURLY granularity")
    if granularity == "HOURLY" and (start % HOUR_US or end % HOUR_US):
        raise _invalid("Start and End must be on whole hours for HOURLY granularity")
    if granularity in ("DAILY", "MONTHLY") and (start % DAY_US or end % DAY_US):
        raise _invalid(f"Start and End must be whole days for {granularity} granularity")
    if start >= end:
        raise _invalid("Start date (and hour) should be before end date (and hour)")
    return start, end


def _buckets(start: int, end: int, granularity: str) -> list[tuple[int, int]]:
    out, at = [], start
    while at < end:
        if granularity == "HOURLY":
            nxt = at + HOUR_US
        elif granularity == "DAILY":
            nxt = at + DAY_US
        else:
            try:
                nxt = next_month(at)
            except (ValueError, OverflowError):   # December 9999: no month after it
                raise _invalid("TimePeriod extends beyond the last month Cost Explorer can"
                               " report (9999-11)") from None
        out.append((at, min(nxt, end)))
        at = nxt
    return out


def check_filter(expression: Any, depth: int = 0) -> None:
    if not isinstance(expression, dict) or depth > 10:
        raise _invalid("Filter expression is invalid")
    roots = [k for k in ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories") if expression.get(k) is not None]
    if len(roots) != 1:
        raise _invalid("Expression must have exactly one root: And, Or, Not, Dimensions, Tags or CostCategories")
    root = roots[0]
    if root in ("And", "Or"):
        operands = expression[root]
        if len(operands) < 2:
            raise _invalid(f"{root} expression must have at least 2 operands")
        for operand in operands:
            check_filter(operand, depth + 1)
    elif root == "Not":
        check_filter(expression["Not"], depth + 1)
    elif root == "CostCategories":
        raise _invalid("Cost categories are not supported by this endpoint")
    elif root == "Dimensions":
        key = expression["Dimensions"].get("Key")
        if key not in DIMENSIONS:
            raise _invalid(f"Dimension {key} is not allowed. Allowed dimensions: {', '.join(sorted(DIMENSIONS))}")
    elif not expression["Tags"].get("Key") and "ABSENT" not in (expression["Tags"].get("MatchOptions") or []):
        raise _invalid("Tags expression needs a Key")


def _matches(actual: str | None, values: list[str], options: list[str]) -> bool:
    opts = set(options or ["EQUALS"])
    if "ABSENT" in opts:
        return actual is None or actual == ""
    if actual is None:
        return "" in values          # Values [""]: resources without the tag
    if not values:
        return True
    if "CASE_INSENSITIVE" in opts:
        actual, values = actual.lower(), [v.lower() for v in values]
    if "STARTS_WITH" in opts:
        return any(actual.startswith(v) for v in values)
    if "ENDS_WITH" in opts:
        return any(actual.endswith(v) for v in values)
    if "CONTAINS" in opts:
        return any(v in actual for v in values)
    return actual in values


def matches(expression: dict | None, line: LineItem) -> bool:
    if not expression:
        return True
    if expression.get("And") is not None:
        return all(matches(e, line) for e in expression["And"])
    if expression.get("Or") is not None:
        return any(matches(e, line) for e in expression["Or"])
    if expression.get("Not") is not None:
        return not matches(expression["Not"], line)
    if expression.get("Dimensions") is not None:
        d = expression["Dimensions"]
        return _matches(DIMENSIONS[d["Key"]](line), d.get("Values") or [], d.get("MatchOptions") or [])
    tags = expression["Tags"]
    return _matches(line.tags.get(tags.get("Key", "")), tags.get("Values") or [], tags.get("MatchOptions") or [])


def _group_by(groups: Any) -> list[tuple[str, str]]:
    groups = groups or []
    if len(groups) > 2:
        raise _invalid("You can group by up to two dimensions or tags")
    out = []
    for group in groups:
        kind, key = group.get("Type"), group.get("Key")
        if kind == "DIMENSION":
            if key not in DIMENSIONS:
                raise _invalid(f"Group by dimension {key} is not supported")
        elif kind == "TAG":
            if not key:
                raise _invalid("Group by TAG needs a tag key")
        elif kind == "COST_CATEGORY":
            raise _invalid("Cost categories are not supported by this endpoint")
        else:
            raise _invalid("Group Definition type is invalid.")
        out.append((kind, key))
    return out


def _group_key(line: LineItem, kind: str, key: str) -> str:
    if kind == "TAG":
        return f"{key}${line.tags.get(key, '')}"
    return DIMENSIONS[key](line) or NO_VALUE.get(key, f"No{key.title().replace('_', '')}")


def _metrics(names: Any) -> list[tuple[str, str]]:
    if not names:
        raise _invalid("Metrics must be specified")
    out = []
    for name in names:
        canonical = name if name in METRICS else _METRIC_ALIASES.get(str(name).upper())
        if canonical is None:
            raise _invalid(f"Metric {name} is not supported. Supported metrics: {', '.join(sorted(METRICS))}")
        out.append((name, canonical))
    return out


# --- pagination ------------------------------------------------------------------------------------

def _digest(params: dict) -> str:
    request = {k: v for k, v in params.items() if k not in ("NextPageToken", "MaxResults")}
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _token(offset: int, params: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "h": _digest(params)}).encode()).decode()


def _offset(params: dict) -> int:
    token = params.get("NextPageToken")
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, digest = int(data["o"]), data["h"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidNextTokenException() from None
    if digest != _digest(params) or offset < 0:
        raise errors.RequestChangedException()
    return offset


# --- aggregation -------------------------------------------------------------------------------------

class _Sum:
    __slots__ = ("cost", "amount", "normalized", "units")

    def __init__(self) -> None:
        self.cost = self.amount = self.normalized = Decimal(0)
        self.units: set[str] = set()

    def add(self, line: LineItem) -> None:
        self.cost += line.cost
        self.amount += line.amount
        factor = catalog.normalization_factor(line.instance_type) if line.instance_type else Decimal(0)
        self.normalized += line.amount * factor if factor else line.amount
        self.units.add(line.unit)

    def metrics(self, wanted: list[tuple[str, str]]) -> dict:
        unit = next(iter(self.units)) if len(self.units) == 1 else "N/A"
        out = {}
        for name, canonical in wanted:
            if canonical in COST_METRICS:
                out[name] = {"Amount": format_decimal(self.cost), "Unit": "USD"}
            elif canonical == "UsageQuantity":
                out[name] = {"Amount": format_decimal(self.amount), "Unit": unit}
            else:
                out[name] = {"Amount": format_decimal(self.normalized), "Unit": "N/A"}
        return out


async def _visible_lines(ctx: Any, start: int, end: int) -> list[LineItem]:
    """The caller's line items in [start, end): final ones and the open hour's estimate (brought
    up to date first when the server's billing service runs), as AWS shows month-to-date."""
    account = ctx.account
    if account is None:
        raise errors.AccessDeniedException("Anonymous requests are not allowed.")
    billing = getattr(ctx.app, "billing", None)
    if billing is not None and hasattr(billing, "bring_up_to_date"):
        await billing.bring_up_to_date()
    return await fetch_lines(ctx.app.db, start, end, None if account.is_admin else account.account_id,
                             estimated=True)


def _period_text(start: int, end: int, hourly: bool) -> dict:
    text = hour_text if hourly else day_text
    return {"Start": text(start), "End": text(end)}


async def get_cost_and_usage(ctx: Any, params: dict) -> dict:
    granularity = params.get("Granularity")
    if granularity not in ("DAILY", "MONTHLY", "HOURLY"):
        raise _invalid("Granularity must be DAILY, MONTHLY or HOURLY")
    start, end = time_period(params.get("TimePeriod"), granularity)
    wanted = _metrics(params.get("Metrics"))
    groups = _group_by(params.get("GroupBy"))
    if params.get("Filter") is not None:
        check_filter(params["Filter"])
    offset = _offset(params)
    buckets = _buckets(start, end, granularity)
    sums: list[dict[tuple, _Sum]] = [defaultdict(_Sum) for _ in buckets]
    starts = [b[0] for b in buckets]
    for line in await _visible_lines(ctx, start, end):
        if not matches(params.get("Filter"), line):
            continue
        index = _bucket_index(starts, line.start_us)
        sums[index][tuple(_group_key(line, kind, key) for kind, key in groups)].add(line)
    items: list[tuple[int, tuple | None]] = []
    for index, bucket_sums in enumerate(sums):
        if not groups:
            items.append((index, ()))
        elif bucket_sums:
            items.extend((index, key) for key in sorted(bucket_sums))
        else:
            items.append((index, None))
    page = items[offset:offset + PAGE_ITEMS]
    until = await rated_until(ctx.app.db)
    results: list[dict] = []
    for index, key in page:
        if not results or results[-1]["_index"] != index:
            bucket_start, bucket_end = buckets[index]
            results.append({"_index": index, "TimePeriod": _period_text(bucket_start, bucket_end, granularity == "HOURLY"),
                            "Total": {}, "Groups": [], "Estimated": until is None or bucket_end > until})
        if groups and key is not None:
            results[-1]["Groups"].append({"Keys": list(key), "Metrics": sums[index][key].metrics(wanted)})
        elif not groups:
            results[-1]["Total"] = sums[index].get((), _Sum()).metrics(wanted)
    for result in results:
        result.pop("_index")
    out: dict = {"ResultsByTime": results, "DimensionValueAttributes": []}
    if groups:
        out["GroupDefinitions"] = [{"Type": kind, "Key": key} for kind, key in groups]
        if any(key == "LINKED_ACCOUNT" for _, key in groups):
            names = await account_names(ctx.app.db)
            seen = sorted({k[i] for s in sums for k in s for i, (_, key) in enumerate(groups) if key == "LINKED_ACCOUNT"})
            out["DimensionValueAttributes"] = [{"Value": a, "Attributes": {"description": names.get(a, a)}}
                                               for a in seen]
    if offset + PAGE_ITEMS < len(items):
        out["NextPageToken"] = _token(offset + PAGE_ITEMS, params)
    return out


def _bucket_index(starts: list[int], at: int) -> int:
    return bisect.bisect_right(starts, at) - 1


def _sorted_values(values: dict[str, _Sum], sort_by: Any) -> list[str]:
    ordered = sorted(values)
    for definition in reversed(sort_by or []):
        key = definition.get("Key")
        name = key if key in METRICS else _METRIC_ALIASES.get(str(key).upper())
        if name is None:
            raise _invalid(f"SortBy key {key} is not supported")
        descending = definition.get("SortOrder", "ASCENDING") == "DESCENDING"
        field = "cost" if name in COST_METRICS else ("amount" if name == "UsageQuantity" else "normalized")
        ordered.sort(key=lambda v: getattr(values[v], field), reverse=descending)
    return ordered


def _page(params: dict, values: list[str]) -> tuple[list[str], str | None]:
    limit = params.get("MaxResults") or DEFAULT_MAX_RESULTS
    if limit < 1:
        raise _invalid("MaxResults must be at least 1")
    offset = _offset(params)
    page = values[offset:offset + limit]
    return page, _token(offset + limit, params) if offset + limit < len(values) else None


async def get_dimension_values(ctx: Any, params: dict) -> dict:
    dimension = params.get("Dimension")
    if dimension not in DIMENSIONS:
        raise _invalid(f"Dimension {dimension} is not allowed. Allowed dimensions: {', '.join(sorted(DIMENSIONS))}")
    start, end = time_period(params.get("TimePeriod"))
    if params.get("Filter") is not None:
        check_filter(params["Filter"])
    search = (params.get("SearchString") or "").lower()
    values: dict[str, _Sum] = defaultdict(_Sum)
    if params.get("Context", "COST_AND_USAGE") == "COST_AND_USAGE":
        for line in await _visible_lines(ctx, start, end):
            value = DIMENSIONS[dimension](line)
            if value and search in value.lower() and matches(params.get("Filter"), line):
                values[value].add(line)
    page, token = _page(params, _sorted_values(values, params.get("SortBy")))
    names = await account_names(ctx.app.db) if dimension == "LINKED_ACCOUNT" else {}
    out: dict = {
        "DimensionValues": [{"Value": v, "Attributes": {"description": names[v]} if v in names else {}}
                            for v in page],
        "ReturnSize": len(page), "TotalSize": len(values)}
    if token:
        out["NextPageToken"] = token
    return out


async def get_tags(ctx: Any, params: dict) -> dict:
    start, end = time_period(params.get("TimePeriod"))
    if params.get("Filter") is not None:
        check_filter(params["Filter"])
    tag_key = params.get("TagKey")
    search = (params.get("SearchString") or "").lower()
    found: dict[str, _Sum] = defaultdict(_Sum)
    for line in await _visible_lines(ctx, start, end):
        if not matches(params.get("Filter"), line):
            continue
        candidates = [line.tags[tag_key]] if tag_key and line.tags.get(tag_key) else (
            [] if tag_key else list(line.tags))
        for value in candidates:
            if search in value.lower():
                found[value].add(line)
    page, token = _page(params, _sorted_values(found, params.get("SortBy")))
    out: dict = {"Tags": page, "ReturnSize": len(page), "TotalSize": len(found)}
    if token:
        out["NextPageToken"] = token
    return out


OPERATIONS = {
    "GetCostAndUsage": get_cost_and_usage,
    "GetDimensionValues": get_dimension_values,
    "GetTags": get_tags,
}
