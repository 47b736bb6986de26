"""EC2 scenarios (the EC2 query protocol): regions, zones, account attributes, authentication."""
from __future__ import annotations

import secrets

from conformance import scenario


def _check_regions(ctx, regions: list[dict], exactly: str | None = None) -> None:
    names = [r.get("RegionName") for r in regions]
    ctx.check(names, "no regions")
    ctx.check(ctx.region in names, f"the client's region {ctx.region} is not among {names}")
    for region in regions:
        ctx.check(region.get("Endpoint"), f"region {region.get('RegionName')} has no Endpoint")
    if exactly is not None:
        ctx.check_equal(names, [exactly], "regions returned")


@scenario("ec2", "DescribeRegions", client="boto3")
def describe_regions(ctx):
    """Every region served, the client's own among them, each with an endpoint."""
    _check_regions(ctx, ctx.call("ec2", "DescribeRegions")["Regions"])


@scenario("ec2", "DescribeRegions", client="boto3")
def describe_regions_by_name(ctx):
    """RegionNames=[the client's region] gives that region alone."""
    out = ctx.call("ec2", "DescribeRegions", RegionNames=[ctx.region])
    _check_regions(ctx, out["Regions"], exactly=ctx.region)


@scenario("ec2", "DescribeRegions", client="boto3")
def describe_regions_filter(ctx):
    """Filters=[region-name] gives that region alone."""
    out = ctx.call("ec2", "DescribeRegions",
                   Filters=[{"Name": "region-name", "Values": [ctx.region]}])
    _check_regions(ctx, out["Regions"], exactly=ctx.region)


@scenario("ec2", "DescribeRegions", client="awscli")
def describe_regions_cli(ctx):
    """`aws ec2 describe-regions` and `--region-names`."""
    _check_regions(ctx, ctx.aws("ec2", "describe-regions")["Regions"])
    out = ctx.aws("ec2", "describe-regions", "--region-names", ctx.region)
    _check_regions(ctx, out["Regions"], exactly=ctx.region)


def _check_zones(ctx, zones: list[dict]) -> None:
    ctx.check(zones, "no availability zones")
    for zone in zones:
        name = zone.get("ZoneName", "")
        ctx.check(name.startswith(ctx.region), f"zone {name!r} is not in {ctx.region}")
        ctx.check_equal(zone.get("RegionName"), ctx.region, f"{name}.RegionName")
        ctx.check_equal(zone.get("State"), "available", f"{name}.State")


@scenario("ec2", "DescribeAvailabilityZones", client="boto3")
def describe_availability_zones(ctx):
    """The zones of the client's region, all available."""
    _check_zones(ctx, ctx.call("ec2", "DescribeAvailabilityZones")["AvailabilityZones"])


@scenario("ec2", "DescribeAvailabilityZones", client="awscli")
def describe_availability_zones_cli(ctx):
    """`aws ec2 describe-availability-zones`."""
    _check_zones(ctx, ctx.aws("ec2", "describe-availability-zones")["AvailabilityZones"])


def _check_attributes(ctx, attributes: list[dict]) -> None:
    ctx.check(attributes, "no account attributes")
    for attribute in attributes:
        name = attribute.get("AttributeName")
        ctx.check(name, f"an attribute without a name: {attribute}")
        ctx.check(attribute.get("AttributeValues"), f"attribute {name} has no values")
    names = {a["AttributeName"] for a in attributes}
    ctx.check("supported-platforms" in names, f"no supported-platforms among {sorted(names)}")


@scenario("ec2", "DescribeAccountAttributes", client="boto3")
def describe_account_attributes(ctx):
    """The account's attributes (supported-platforms, max-instances, ...)."""
    _check_attributes(ctx, ctx.call("ec2", "DescribeAccountAttributes")["AccountAttributes"])


@scenario("ec2", "DescribeAccountAttributes", client="awscli")
def describe_account_attributes_cli(ctx):
    """`aws ec2 describe-account-attributes`."""
    _check_attributes(ctx, ctx.aws("ec2", "describe-account-attributes")["AccountAttributes"])


# --- authentication and protocol errors --------------------------------------------------------
@scenario("ec2", "DescribeRegions", client="boto3", variant="wrong secret")
def wrong_secret(ctx):
    """A request signed with the wrong secret: AuthFailure (401)."""
    with ctx.expect_error("AuthFailure", 401):
        ctx.with_credentials(secret_key=ctx.secret_key + "x").call("ec2", "DescribeRegions")


@scenario("ec2", "DescribeRegions", client="boto3", variant="unknown key")
def unknown_key(ctx):
    """A request signed with an access key the endpoint does not know: AuthFailure (401)."""
    stranger = "AKIA" + secrets.token_hex(8).upper()
    with ctx.expect_error("AuthFailure", 401):
        ctx.with_credentials(access_key=stranger).call("ec2", "DescribeRegions")


@scenario("ec2", "DescribeRegions", client="awscli", variant="wrong secret")
def wrong_secret_cli(ctx):
    """`aws ec2 describe-regions` with the wrong secret fails with AuthFailure."""
    with ctx.expect_error("AuthFailure"):
        ctx.with_credentials(secret_key=ctx.secret_key + "x").aws("ec2", "describe-regions")


@scenario("ec2", "NoSuchAction", client="raw", variant="unknown action")
def unknown_action(ctx):
    """A correctly signed request for an action EC2 does not have: InvalidAction (400)."""
    with ctx.expect_error("InvalidAction", 400):
        ctx.raw("ec2", "POST", "/", body="Action=NoSuchAction&Version=2016-11-15",
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
