"""The FOCUS 1.2 export: the FinOps Open Cost and Usage Specification's cost and usage dataset,
made from the same rated line items as the report, Cost Explorer and the CUR (so its BilledCost
adds up to the same Decimal to the last digit).

One row per line item (hourly, as AWS Data Exports' FOCUS 1.2 table), with:

- the 21 mandatory columns: BilledCost, BillingAccountId, BillingAccountName, BillingCurrency,
  BillingPeriodStart/End, ChargeCategory, ChargeClass, ChargeDescription, ChargePeriodStart/End,
  ContractedCost, EffectiveCost, InvoiceIssuerName, ListCost, PricingQuantity, PricingUnit,
  ProviderName, PublisherName, ServiceCategory, ServiceName;
- the conditional and recommended ones Nimbo has the facts for: AvailabilityZone, BillingAccountType,
  ChargeFrequency, ConsumedQuantity, ConsumedUnit, ContractedUnitPrice, ListUnitPrice,
  PricingCategory, RegionId, RegionName, ResourceId, ResourceName, ResourceType,
  ServiceSubcategory, SkuId, SkuMeter, SkuPriceId, SubAccountId, SubAccountName, SubAccountType,
  Tags;
- AWS's own ``x_`` columns of its FOCUS table: x_ServiceCode, x_UsageType, x_Operation.

Facts of the spec that shape the values: the billing account is the payer (Nimbo's admin account,
as an organisation's management account), the sub account is the account that used the resource;
every line is ``ChargeCategory=Usage`` at its on-demand rate, so ListCost = ContractedCost =
EffectiveCost = BilledCost and ChargeClass is null (it is "Correction" only for a correction of an
earlier period); date-times are ISO 8601 UTC (``2026-11-01T00:00:00Z``), ChargePeriodEnd and
BillingPeriodEnd exclusive; units follow FOCUS's UnitFormat ("Hours", "GB-Months", "GB",
"Requests"); Tags is a JSON object (user tags under ``user:``, as AWS's table writes them);
null is an empty CSV field.

Not filled (Nimbo has no such thing): commitment discounts, capacity reservations, invoices,
credits, taxes, pricing currencies other than the billing currency, SKU price details.

Delivery (``build_focus_export``, driven by ``billing.data_exports``: the ``bcm-data-exports``
API) follows AWS Data Exports' layout beside the CUR's::

    <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-00001.csv.gz
    <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json   (written last)

``nimbo billing report --format focus`` prints the same CSV (uncompressed) for a month.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal
from typing import Iterable

from billing import catalog
from billing.catalog import format_decimal
from billing.lines import LineItem
from billing.periods import cur_time, manifest_time, period_name

FOCUS_VERSION = "1.2"
PROVIDER = "Nimbo"

MANDATORY = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
    "ServiceName",
]
CONDITIONAL = [
    "AvailabilityZone", "BillingAccountType", "ChargeFrequency", "ConsumedQuantity", "ConsumedUnit",
    "ContractedUnitPrice", "ListUnitPrice", "PricingCategory", "RegionId", "RegionName",
    "ResourceId", "ResourceName", "ResourceType", "ServiceSubcategory", "SkuId", "SkuMeter",
    "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
]
PROVIDER_COLUMNS = ["x_ServiceCode", "x_UsageType", "x_Operation"]
COLUMNS = MANDATORY + CONDITIONAL + PROVIDER_COLUMNS

# FOCUS data types of the columns (the manifest's and the validator's view).
DECIMAL_COLUMNS = {"BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity",
                   "ConsumedQuantity", "ContractedUnitPrice", "ListUnitPrice"}
DATETIME_COLUMNS = {"BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"}
JSON_COLUMNS = {"Tags"}

# CUR pricing units -> FOCUS UnitFormat.
UNITS = {catalog.UNIT_HOURS: "Hours", catalog.UNIT_GB_MONTH: "GB-Months", catalog.UNIT_GB: "GB",
         catalog.UNIT_REQUESTS: "Requests"}

REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "eu-west-1": "Europe (Ireland)", "eu-west-2": "Europe (London)", "eu-west-3": "Europe (Paris)",
    "eu-central-1": "Europe (Frankfurt)", "eu-north-1": "Europe (Stockholm)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "ap-south-1": "Asia Pacific (Mumbai)",
    "ca-central-1": "Canada (Central)", "sa-east-1": "South America (Sao Paulo)",
}


def service_category(line: LineItem) -> tuple[str, str]:
    """(ServiceCategory, ServiceSubcategory) from FOCUS's lists of allowed values."""
    base = line.base_usage_type
    if "DataTransfer" in base:
        return "Networking", "Other (Networking)"
    if line.product_code == catalog.S3:
        return "Storage", "Object Storage"
    if base.startswith("EBS:Snapshot"):
        return "Storage", "Backup Storage"
    if base.startswith("EBS:"):
        return "Storage", "Block Storage"
    if base.startswith("BoxUsage"):
        return "Compute", "Virtual Machines"
    return "Other", "Other (Other)"


def resource_type(line: LineItem) -> str:
    rid = line.resource_id
    for prefix, kind in (("i-", "Instance"), ("vol-", "Volume"), ("snap-", "Snapshot"),
                         ("eipalloc-", "Elastic IP"), ("ami-", "Image")):
        if rid.startswith(prefix):
            return kind
    if rid and line.product_code == catalog.S3:
        return "Bucket"
    return ""


def _period_bounds(start_us: int) -> tuple[str, str]:
    from billing.periods import month_start, next_month
    begin = month_start(start_us)
    return cur_time(begin), cur_time(next_month(begin))


def focus_row(line: LineItem, *, payer: str, names: dict[str, str]) -> dict[str, str]:
    """One FOCUS row (column -> CSV text; '' is null) of one line item (a database without an
    admin account: the line's own account is its billing account)."""
    payer = payer or line.account_id
    period_start, period_end = _period_bounds(line.start_us)
    category, subcategory = service_category(line)
    unit = UNITS.get(line.unit, line.unit)
    cost = format_decimal(line.cost)
    tags = {f"user:{k}": str(v) for k, v in sorted(line.tags.items())}
    return {
        "BilledCost": cost, "BillingAccountId": payer, "BillingAccountName": names.get(payer, payer),
        "BillingCurrency": "USD", "BillingPeriodEnd": period_end, "BillingPeriodStart": period_start,
        "ChargeCategory": "Usage", "ChargeClass": "", "ChargeDescription": line.description,
        "ChargePeriodEnd": cur_time(line.end_us), "ChargePeriodStart": cur_time(line.start_us),
        "ContractedCost": cost, "EffectiveCost": cost, "InvoiceIssuerName": PROVIDER, "ListCost": cost,
        "PricingQuantity": format_decimal(line.amount), "PricingUnit": unit, "ProviderName": PROVIDER,
        "PublisherName": PROVIDER, "ServiceCategory": category, "ServiceName": line.product_name,
        "AvailabilityZone": line.availability_zone, "BillingAccountType": "Billing Account",
        "ChargeFrequency": "Usage-Based", "ConsumedQuantity": format_decimal(line.amount),
        "ConsumedUnit": unit, "ContractedUnitPrice": format_decimal(line.rate),
        "ListUnitPrice": format_decimal(line.rate), "PricingCategory": "Standard",
        "RegionId": line.region, "RegionName": REGION_NAMES.get(line.region, line.region),
        "ResourceId": line.resource_id, "ResourceName": line.resource_id,
        "ResourceType": resource_type(line), "ServiceSubcategory": subcategory,
        "SkuId": f"{line.product_code}:{line.base_usage_type}", "SkuMeter": line.base_usage_type,
        "SkuPriceId": f"{line.product_code}:{line.base_usage_type}:{line.region}:{line.price_version}",
        "SubAccountId": line.account_id, "SubAccountName": names.get(line.account_id, line.account_id),
        "SubAccountType": "Account", "Tags": json.dumps(tags, separators=(",", ":")) if tags else "",
        "x_ServiceCode": line.product_code, "x_UsageType": line.usage_type, "x_Operation": line.operation,
    }


def focus_csv(lines: Iterable[LineItem], *, payer: str, names: dict[str, str],
              columns: list[str] | None = None) -> str:
    """The FOCUS dataset of ``lines`` as CSV text (header: ``columns``, default all of ``COLUMNS``)."""
    columns = columns or COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for line in lines:
        row = focus_row(line, payer=payer, names=names)
        writer.writerow([row[c] for c in columns])
    return out.getvalue()


def total_billed(csv_text: str) -> Decimal:
    """The sum of BilledCost of a FOCUS CSV (what a FinOps tool adds up)."""
    return sum((Decimal(r["BilledCost"]) for r in csv.DictReader(io.StringIO(csv_text))), Decimal(0))


def column_types(columns: list[str] | None = None) -> list[dict[str, str]]:
    def kind(name: str) -> str:
        if name in DECIMAL_COLUMNS:
            return "DECIMAL"
        if name in DATETIME_COLUMNS:
            return "TIMESTAMP"
        if name in JSON_COLUMNS:
            return "MAP"
        return "STRING"
    return [{"name": c, "type": kind(c)} for c in columns or COLUMNS]


def build_focus_export(lines: list[LineItem], *, account_id: str, payer: str, names: dict[str, str],
                       export_name: str, bucket: str, prefix: str, period_start: int,
                       period_end: int, execution_id: str, columns: list[str] | None = None,
                       folder: str = "") -> list[tuple[str, bytes]]:
    """The files of one delivery of one month (the data file first, the manifest last), in AWS
    Data Exports' layout; ``folder`` (an execution's id) keeps each delivery apart."""
    root = "/".join(p for p in (prefix.strip("/"), export_name) if p)
    partition = f"BILLING_PERIOD={period_name(period_start)}" + (f"/{folder}" if folder else "")
    data_key = f"{root}/data/{partition}/{export_name}-00001.csv.gz"
    data = gzip.compress(focus_csv(lines, payer=payer, names=names, columns=columns).encode("utf-8"), mtime=0)
    manifest = {
        "executionId": execution_id,
        "account": account_id,
        "exportName": export_name,
        "table": "FOCUS_1_2_AWS",
        "focusVersion": FOCUS_VERSION,
        "columns": column_types(columns),
        "charset": "UTF-8",
        "compression": "GZIP",
        "contentType": "text/csv",
        "billingPeriod": {"start": manifest_time(period_start), "end": manifest_time(period_end)},
        "bucket": bucket,
        "dataFiles": [data_key],
    }
    manifest_key = f"{root}/metadata/{partition}/{export_name}-Manifest.json"
    return [(data_key, data), (manifest_key, json.dumps(manifest, indent=2).encode("utf-8"))]
