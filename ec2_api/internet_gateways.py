"""CreateInternetGateway, DeleteInternetGateway, DescribeInternetGateways, Attach/DetachInternetGateway.

An internet gateway attached to a VPC, plus a route to it in a subnet's route table, is what lets
the subnet's instances reach outside (Nimbo's NAT) and be reached at their public addresses. The
default VPC has one attached, as on AWS.
"""
from __future__ import annotations

from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, now_us
from ec2_api.errors import check_dry_run, ec2_error
from ec2_api.filters import filter_and_paginate
from ec2_api.network_common import changed, creation_tags, delete_tags, tags_or_none, write_creation_tags
from ec2_api.vpc import bump_generation, network_of, owned_resource, owned_resources, owned_vpc

InvalidInternetGatewayIDNotFound = ec2_error("InvalidInternetGatewayID.NotFound")
InvalidInternetGatewayIdMalformed = ec2_error("InvalidInternetGatewayId.Malformed")
ResourceAlreadyAssociated = ec2_error("Resource.AlreadyAssociated")
GatewayNotAttached = ec2_error("Gateway.NotAttached")
DependencyViolation = ec2_error("DependencyViolation")
InternetGatewayLimitExceeded = ec2_error("InternetGatewayLimitExceeded")
MAX_GATEWAYS = 5


def _render(row: Any, tags: dict[str, str]) -> dict:
    attachments = [{"State": "available", "VpcId": row["vpc_id"]}] if row["vpc_id"] else []
    return {"InternetGatewayId": row["internet_gateway_id"], "OwnerId": row["account_id"],
            "Attachments": attachments, "Tags": tags_or_none(tags)}


async def owned_gateway(ctx: Any, gateway_id: Any) -> Any:
    return await owned_resource(ctx, "net_internet_gateways", "internet_gateway_id", gateway_id,
                                parameter="internetGatewayId", prefix="igw",
                                malformed=InvalidInternetGatewayIdMalformed,
                                not_found_error=InvalidInternetGatewayIDNotFound, noun="internetGateway")


async def create_internet_gateway(ctx: Any, params: dict) -> dict:
    tags = creation_tags(params, "internet-gateway")
    await network_of(ctx)
    check_dry_run(params)
    gateway_id = ids.new_id("igw")
    async with ctx.app.db.transaction() as tx:
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM net_internet_gateways WHERE account_id = ? AND"
                                  " region = ?", (account_of(ctx), ctx.region))
        if count["n"] >= MAX_GATEWAYS + 1:   # the default VPC's gateway does not count
            raise InternetGatewayLimitExceeded("The maximum number of internet gateways has been reached.")
        await tx.execute("INSERT INTO net_internet_gateways (internet_gateway_id, account_id, region, vpc_id,"
                         " created_us) VALUES (?, ?, ?, NULL, ?)", (gateway_id, account_of(ctx), ctx.region,
                                                                     now_us(ctx)))
        await write_creation_tags(tx, ctx, gateway_id, "internet-gateway", tags)
        row = await tx.fetchone("SELECT * FROM net_internet_gateways WHERE internet_gateway_id = ?", (gateway_id,))
    return {"InternetGateway": _render(row, tags)}


async def delete_internet_gateway(ctx: Any, params: dict) -> dict:
    row = await owned_gateway(ctx, params.get("InternetGatewayId"))
    check_dry_run(params)
    gateway_id = row["internet_gateway_id"]
    async with ctx.app.db.transaction() as tx:
        if (await _attachment(tx, gateway_id))["vpc_id"]:
            raise DependencyViolation(f"The internetGateway '{gateway_id}' has dependencies and cannot be deleted.")
        await tx.execute("DELETE FROM net_internet_gateways WHERE internet_gateway_id = ?", (gateway_id,))
        await delete_tags(tx, [gateway_id])
        await bump_generation(tx)   # routes to it become blackholes
    changed(ctx)
    return {}


async def _gateway_and_vpc(ctx: Any, params: dict) -> tuple[str, str]:
    """The caller's internet gateway and VPC that Attach/DetachInternetGateway name (DryRun checked
    after them, as EC2 does)."""
    row = await owned_gateway(ctx, params.get("InternetGatewayId"))
    vpc = await owned_vpc(ctx, params.get("VpcId"))
    check_dry_run(params)
    return row["internet_gateway_id"], vpc["vpc_id"]


async def _attachment(tx: Any, gateway_id: str) -> Any:
    """The gateway's row as the transaction sees it (``vpc_id``: the VPC it is attached to)."""
    return await tx.fetchone("SELECT vpc_id FROM net_internet_gateways WHERE internet_gateway_id = ?", (gateway_id,))


async def attach_internet_gateway(ctx: Any, params: dict) -> dict:
    gateway_id, vpc_id = await _gateway_and_vpc(ctx, params)
    async with ctx.app.db.transaction() as tx:
        current = await _attachment(tx, gateway_id)
        if current["vpc_id"]:
            raise ResourceAlreadyAssociated(f"resource {gateway_id} is already attached to network "
                                            f"{current['vpc_id']}")
        if await tx.fetchone("SELECT 1 FROM net_internet_gateways WHERE vpc_id = ?", (vpc_id,)):
            raise ResourceAlreadyAssociated(f"Network {vpc_id} already has an internet gateway attached")
        await tx.execute("UPDATE net_internet_gateways SET vpc_id = ? WHERE internet_gateway_id = ?",
                         (vpc_id, gateway_id))
        await bump_generation(tx)
    changed(ctx)
    return {}


async def detach_internet_gateway(ctx: Any, params: dict) -> dict:
    gateway_id, vpc_id = await _gateway_and_vpc(ctx, params)
    async with ctx.app.db.transaction() as tx:
        current = await _attachment(tx, gateway_id)
        if current["vpc_id"] != vpc_id:
            raise GatewayNotAttached(f"resource {gateway_id} is not attached to network {vpc_id}")
        mapped = await tx.fetchone(
            "SELECT 1 FROM net_addresses a JOIN net_interfaces i ON a.network_interface_id ="
            " i.network_interface_id WHERE i.vpc_id = ?", (vpc_id,))
        if mapped:
            raise DependencyViolation(f"Network {vpc_id} has some mapped public address(es). Please unmap those "
                                      f"public address(es) before detaching the gateway.")
        await tx.execute("UPDATE net_internet_gateways SET vpc_id = NULL WHERE internet_gateway_id = ?",
                         (gateway_id,))
        await bump_generation(tx)
    changed(ctx)
    return {}


async def describe_internet_gateways(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    rows = await owned_resources(ctx, "net_internet_gateways", "internet_gateway_id", params.get("InternetGatewayIds"),
                                 InvalidInternetGatewayIDNotFound, "internetGateway")
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [r["internet_gateway_id"] for r in rows])
    items = [_render(r, tags[r["internet_gateway_id"]]) for r in rows]
    page, token = filter_and_paginate(items, params, {
        "internet-gateway-id": lambda g: g["InternetGatewayId"],
        "attachment.vpc-id": lambda g: [a["VpcId"] for a in g["Attachments"]],
        "attachment.state": lambda g: [a["State"] for a in g["Attachments"]],
        "owner-id": lambda g: g["OwnerId"],
    }, tags, "InternetGatewayId")
    return {"InternetGateways": page, "NextToken": token}
