"""DescribeAccountAttributes: the account's EC2 limits and defaults as AWS reports them."""
from __future__ import annotations

import hashlib
from typing import Any

from ec2_api.errors import InvalidParameterValue

MAX_INSTANCES = 20   # EC2's default; ``max_instances`` in the configuration changes it


def max_instances(config: Any) -> int:
    """Instances (not terminated) an account may have in a region."""
    value = getattr(config, "max_instances", None)
    return MAX_INSTANCES if value is None else int(value)


def default_vpc_id(account_id: str, region: str) -> str:
    """The id of an account's default VPC in a region: stable, AWS-shaped (vpc- + 17 hex)."""
    return "vpc-" + hashlib.sha256(f"default-vpc:{account_id}:{region}".encode()).hexdigest()[:17]


def _attributes(ctx: Any) -> dict[str, list[str]]:
    return {
        "supported-platforms": ["VPC"],
        "default-vpc": [default_vpc_id(ctx.account.account_id, ctx.region)],
        "max-instances": [str(max_instances(ctx.app.config))],
        "vpc-max-security-groups-per-interface": ["5"],
        "max-elastic-ips": ["5"],
        "vpc-max-elastic-ips": ["5"],
    }


async def describe_account_attributes(ctx: Any, params: dict) -> dict:
    attributes = _attributes(ctx)
    wanted = params.get("AttributeNames") or list(attributes)
    for name in wanted:
        if name not in attributes:
            raise InvalidParameterValue(f"Value ({name}) for parameter attributeName is invalid.")
    return {"AccountAttributes": [
        {"AttributeName": name, "AttributeValues": [{"AttributeValue": v} for v in attributes[name]]}
        for name in wanted
    ]}
