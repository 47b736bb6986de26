"""Every EC2 action Nimbo implements, by its botocore operation name."""
from __future__ import annotations

from ec2_api import account_attributes, regions

OPERATIONS = {
    "DescribeRegions": regions.describe_regions,
    "DescribeAvailabilityZones": regions.describe_availability_zones,
    "DescribeAccountAttributes": account_attributes.describe_account_attributes,
}
