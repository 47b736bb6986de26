"""AWS's names for what Nimbo bills: usage types, operations, units, products, services.

Usage types carry AWS's region billing code as a prefix, as in the Cost and Usage Report:
``EUW2-BoxUsage:m5.large``. US East (N. Virginia) has no prefix (``BoxUsage:m5.large``) and
Europe (Ireland) is ``EU`` (``EU-BoxUsage:m5.large``), following AWS's table "AWS Region billing
codes" (docs.aws.amazon.com/global-infrastructure/latest/regions/aws-region-billing-codes.html).
A region that table does not know (a private region name such as ``lab-west-1``) gets a code made
the same way: the first two letters of each part, the last part's number (``LAW1``).

Price lists and the rater key rates by the usage type *without* the region prefix (the "base"
usage type); the prefix is added for line items, reports, CUR and Cost Explorer.
"""
from __future__ import annotations

import re
from decimal import Decimal

EC2 = "AmazonEC2"
S3 = "AmazonS3"
KMS = "awskms"
KMS_KEYS = "KMS-Keys"       # customer managed key-months ($1 a key a month, prorated hourly)

REGION_CODES = {
    "us-east-1": "USE1", "us-east-2": "USE2", "us-west-1": "USW1", "us-west-2": "USW2",
    "ca-central-1": "CAN1", "ca-west-1": "CAN2", "mx-central-1": "MXC1", "af-south-1": "AFS1",
    "ap-east-1": "APE1", "ap-east-2": "APE2", "ap-northeast-1": "APN1", "ap-northeast-2": "APN2",
    "ap-northeast-3": "APN3", "ap-southeast-1": "APS1", "ap-southeast-2": "APS2",
    "ap-south-1": "APS3", "ap-southeast-3": "APS4", "ap-south-2": "APS5", "ap-southeast-4": "APS6",
    "ap-southeast-5": "APS7", "ap-southeast-6": "APS8", "ap-southeast-7": "APS9",
    "eu-west-1": "EU", "eu-west-2": "EUW2", "eu-west-3": "EUW3", "eu-central-1": "EUC1",
    "eu-central-2": "EUC2", "eu-north-1": "EUN1", "eu-south-1": "EUS1", "eu-south-2": "EUS2",
    "il-central-1": "ILC1", "me-south-1": "MES1", "me-central-1": "MEC1", "sa-east-1": "SAE1",
    "cn-north-1": "CNN1", "cn-northwest-1": "CNW1", "us-gov-west-1": "UGW1", "us-gov-east-1": "UGE1",
}
NO_PREFIX_REGION = "us-east-1"

# CUR product/ProductName and Cost Explorer's SERVICE dimension values.
PRODUCT_NAMES = {EC2: "Amazon Elastic Compute Cloud", S3: "Amazon Simple Storage Service",
                 "awskms": "AWS Key Management Service"}
CE_EC2_COMPUTE = "Amazon Elastic Compute Cloud - Compute"
CE_EC2_OTHER = "EC2 - Other"
CE_S3 = "Amazon Simple Storage Service"

# EBS volume types: (usage type suffix, CUR operation).
VOLUME_TYPES = {
    "gp2": ("EBS:VolumeUsage.gp2", "CreateVolume-Gp2"),
    "gp3": ("EBS:VolumeUsage.gp3", "CreateVolume-Gp3"),
    "io1": ("EBS:VolumeUsage.piops", "CreateVolume-P-IOPS"),
    "io2": ("EBS:VolumeUsage.io2", "CreateVolume-io2"),
    "st1": ("EBS:VolumeUsage.st1", "CreateVolume-ST1"),
    "sc1": ("EBS:VolumeUsage.sc1", "CreateVolume-SC1"),
    "standard": ("EBS:VolumeUsage", "CreateVolume"),
}
SNAPSHOT_USAGE = ("EBS:SnapshotUsage", "CreateSnapshot")

# S3 storage classes: (usage type, CUR operation).
STORAGE_CLASSES = {
    "STANDARD": ("TimedStorage-ByteHrs", "StandardStorage"),
    "REDUCED_REDUNDANCY": ("TimedStorage-RRS-ByteHrs", "ReducedRedundancyStorage"),
    "STANDARD_IA": ("TimedStorage-SIA-ByteHrs", "StandardIAStorage"),
    "ONEZONE_IA": ("TimedStorage-ZIA-ByteHrs", "OneZoneIAStorage"),
    "INTELLIGENT_TIERING": ("TimedStorage-INT-FA-ByteHrs", "IntelligentTieringFAStorage"),
    "GLACIER": ("TimedStorage-GlacierByteHrs", "GlacierStorage"),
    "GLACIER_IR": ("TimedStorage-GIR-ByteHrs", "GlacierInstantRetrievalStorage"),
    "DEEP_ARCHIVE": ("TimedStorage-GDA-ByteHrs", "DeepArchiveStorage"),
}

UNIT_HOURS = "Hrs"
UNIT_GB_MONTH = "GB-Mo"
UNIT_GB = "GB"
UNIT_REQUESTS = "Requests"
UNIT_KEYS = "Keys"          # KMS key-months, as AWS's price list names the unit

_SIZES = {"nano": Decimal("0.25"), "micro": Decimal("0.5"), "small": Decimal(1),
          "medium": Decimal(2), "large": Decimal(4), "xlarge": Decimal(8)}


def region_code(region: str) -> str:
    """AWS's billing code of a region (``eu-west-2`` -> ``EUW2``)."""
    known = REGION_CODES.get(region)
    if known:
        return known
    parts = [p for p in region.split("-") if p]
    number = parts[-1] if parts and parts[-1].isdigit() else "1"
    letters = "".join(p[:2] if i == 0 else p[:1] for i, p in enumerate(parts) if not p.isdigit())
    return (letters.upper() or "X") + number


def regional_usage_type(region: str, base: str, product_code: str = "") -> str:
    """``BoxUsage:m5.large`` in us-east-1, ``EUW2-BoxUsage:m5.large`` in eu-west-2; KMS's usage
    types carry the region *name* in every region (``us-east-1-KMS-Requests``,
    ``eu-central-1-KMS-Keys``), as AWS's price list and CUR spell them."""
    if product_code == KMS:
        return f"{region}-{base}"
    if region == NO_PREFIX_REGION:
        return base
    return f"{region_code(region)}-{base}"


_PREFIXED = re.compile(r"([A-Z]{2,4}\d?)-(.+)")
_REGION_PREFIXED = re.compile(r"([a-z]{2}(?:-[a-z]+)+-\d+)-(.+)")


def base_usage_type(usage_type: str) -> str:
    """The usage type without its region prefix (``EU-BoxUsage:m5.large`` -> ``BoxUsage:m5.large``)."""
    match = _PREFIXED.fullmatch(usage_type) or _REGION_PREFIXED.fullmatch(usage_type)
    return match.group(2) if match else usage_type


def box_usage(instance_type: str) -> str:
    return f"BoxUsage:{instance_type}"


def instance_type_of(usage_type: str) -> str:
    base = base_usage_type(usage_type)
    return base.partition(":")[2] if base.startswith("BoxUsage:") else ""


def volume_usage(volume_type: str) -> tuple[str, str]:
    return VOLUME_TYPES.get(volume_type or "gp2", (f"EBS:VolumeUsage.{volume_type}",
                                                    f"CreateVolume-{volume_type}"))


def storage_usage(storage_class: str) -> tuple[str, str]:
    return STORAGE_CLASSES.get((storage_class or "STANDARD").upper(), STORAGE_CLASSES["STANDARD"])


def unit_of(product_code: str, base: str) -> str:
    if base.startswith("BoxUsage"):
        return UNIT_HOURS
    if base.startswith(("TimedStorage", "EBS:")):
        return UNIT_GB_MONTH
    if base.startswith("DataTransfer"):
        return UNIT_GB
    if base.startswith("Requests") or base.endswith("-Requests"):    # KMS-Requests too
        return UNIT_REQUESTS
    if base == KMS_KEYS:
        return UNIT_KEYS
    return "Units"


def ce_service(product_code: str, usage_type: str) -> str:
    """Cost Explorer's SERVICE value of a line item."""
    if product_code == EC2:
        return CE_EC2_COMPUTE if base_usage_type(usage_type).startswith("BoxUsage") else CE_EC2_OTHER
    if product_code == S3:
        return CE_S3
    return PRODUCT_NAMES.get(product_code, product_code)


def usage_type_group(product_code: str, usage_type: str) -> str:
    """A coarse Cost Explorer USAGE_TYPE_GROUP for the usage types Nimbo bills."""
    base = base_usage_type(usage_type)
    if base.startswith("BoxUsage"):
        return "EC2: Running Hours"
    if base.startswith("EBS:VolumeUsage"):
        return "EC2: EBS - " + (base.partition(".")[2] or "Magnetic")
    if base.startswith("EBS:Snapshot"):
        return "EC2: EBS - Snapshots"
    prefix = "EC2" if product_code == EC2 else "S3"
    if base == "DataTransfer-Out-Bytes":
        return f"{prefix}: Data Transfer - Internet (Out)"
    if base == "DataTransfer-In-Bytes":
        return f"{prefix}: Data Transfer - Internet (In)"
    if base == "DataTransfer-Regional-Bytes":
        return f"{prefix}: Data Transfer - Inter AZ"
    if base.startswith("TimedStorage"):
        return "S3: Storage - Standard" if base == "TimedStorage-ByteHrs" else "S3: Storage - Other"
    if base.startswith("Requests"):
        return "S3: API Requests - Standard"
    return ""


def normalization_factor(instance_type: str) -> Decimal:
    """EC2's size normalisation factor (small = 1, large = 4, 2xlarge = 16 ...); 0 if unknown."""
    size = instance_type.rpartition(".")[2]
    if size in _SIZES:
        return _SIZES[size]
    match = re.fullmatch(r"(\d+)xlarge", size)
    return Decimal(8 * int(match.group(1))) if match else Decimal(0)


def description(product_code: str, base: str, rate: Decimal, unit: str, instance_type: str = "") -> str:
    """A CUR-style lineItem/LineItemDescription."""
    price = f"${format_decimal(rate)}"
    if base.startswith("BoxUsage"):
        return f"{price} per On Demand Linux {instance_type} Instance Hour"
    if base.startswith("EBS:VolumeUsage"):
        return f"{price} per GB-month of {base.partition('.')[2] or 'Magnetic'} provisioned storage"
    if base.startswith("EBS:Snapshot"):
        return f"{price} per GB-Month of snapshot data stored"
    if base.startswith("TimedStorage"):
        return f"{price} per GB-Mo of storage used"
    if base.startswith("DataTransfer-Regional"):
        return f"{price} per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs or ELB"
    if base.startswith("DataTransfer-Out"):
        return f"{price} per GB - data transfer out"
    if base.startswith("DataTransfer-In"):
        return f"{price} per GB - data transfer in"
    if base.startswith("Requests-Tier1"):
        return f"{price} per PUT, COPY, POST, or LIST request"
    if base.startswith("Requests-Tier2"):
        return f"{price} per GET and all other requests"
    if base == KMS_KEYS:
        return f"{price} per customer managed KMS key per month (prorated hourly)"
    return f"{price} per {unit} of {base}"


def format_decimal(value: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros ('0.5', '3', '0')."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text
