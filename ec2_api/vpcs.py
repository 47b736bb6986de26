"""CreateVpc, DeleteVpc, DescribeVpcs, Describe/ModifyVpcAttribute, Associate/DisassociateVpcCidrBlock.

A new VPC gets its main route table, default network ACL, default security group (ingress from
itself, egress everywhere) and the region's default DHCP options, all in the transaction that
records it (``vpc.vpc_defaults``). A VPC is a separate L2/L3 domain in the data path; CIDR blocks
of different VPCs may overlap, a VPC's own blocks may not.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, now_us
from ec2_api.errors import (InvalidParameterCombination, InvalidParameterValue, InvalidVpcIDNotFound,
                            MissingParameter, OperationNotPermitted, check_dry_run, ec2_error)
from ec2_api.filters import filter_and_paginate
from ec2_api.network_common import (attribute_bool, changed, creation_tags, delete_tags, tags_or_none,
                                    write_creation_tags)
from ec2_api.vpc import (bump_generation, ensure_default_dhcp_options, network_of, owned_resources, owned_vpc,
                         parse_cidr, vpc_cidrs, vpc_defaults)

InvalidVpcRange = ec2_error("InvalidVpc.Range")
VpcLimitExceeded = ec2_error("VpcLimitExceeded")
DependencyViolation = ec2_error("DependencyViolation")
CidrLimitExceeded = ec2_error("CidrLimitExceeded")
CidrConflict = ec2_error("CidrConflict")
InvalidVpcCidrBlockAssociationIdNotFound = ec2_error("InvalidVpcCidrBlockAssociationID.NotFound")
MAX_VPCS = 5
MAX_CIDRS = 5


def check_vpc_block(value: Any) -> ipaddress.IPv4Network:
    network = parse_cidr(value, "cidrBlock")
    if not 16 <= network.prefixlen <= 28:
        raise InvalidVpcRange(f"The CIDR '{value}' is invalid.")
    return network


# -- rendering ------------------------------------------------------------------------------------

async def _render(db: Any, row: Any, tags: dict[str, str]) -> dict:
    extra = await db.fetchall("SELECT association_id, cidr_block FROM net_vpc_cidrs WHERE vpc_id = ?"
                              " ORDER BY created_us, association_id", (row["vpc_id"],))
    associations = [{"AssociationId": row["cidr_association_id"], "CidrBlock": row["cidr_block"],
                     "CidrBlockState": {"State": "associated"}}]
    associations += [{"AssociationId": r["association_id"], "CidrBlock": r["cidr_block"],
                      "CidrBlockState": {"State": "associated"}} for r in extra]
    return {
        "VpcId": row["vpc_id"], "OwnerId": row["account_id"], "State": "available",
        "CidrBlock": row["cidr_block"], "DhcpOptionsId": row["dhcp_options_id"],
        "InstanceTenancy": "default", "IsDefault": bool(row["is_default"]),
        "CidrBlockAssociationSet": associations, "Ipv6CidrBlockAssociationSet": [],
        "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        "Tags": tags_or_none(tags),
    }


_FILTERS = {
    "vpc-id": lambda v: v["VpcId"],
    "cidr": lambda v: v["CidrBlock"],
    "cidr-block-association.cidr-block": lambda v: [a["CidrBlock"] for a in v["CidrBlockAssociationSet"]],
    "cidr-block-association.association-id": lambda v: [a["AssociationId"] for a in v["CidrBlockAssociationSet"]],
    "cidr-block-association.state": lambda v: [a["CidrBlockState"]["State"] for a in v["CidrBlockAssociationSet"]],
    "ipv6-cidr-block-association.ipv6-cidr-block": lambda v: None,
    "ipv6-cidr-block-association.association-id": lambda v: None,
    "ipv6-cidr-block-association.state": lambda v: None,
    "ipv6-cidr-block-association.ipv6-pool": lambda v: None,
    "dhcp-options-id": lambda v: v["DhcpOptionsId"],
    "is-default": lambda v: v["IsDefault"],
    "isDefault": lambda v: v["IsDefault"],
    "owner-id": lambda v: v["OwnerId"],
    "state": lambda v: v["State"],
    "instance-tenancy": lambda v: v["InstanceTenancy"],
}


async def describe_vpcs(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    rows = await owned_resources(ctx, "ec2_vpcs", "vpc_id", params.get("VpcIds"), InvalidVpcIDNotFound, "vpc")
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [row["vpc_id"] for row in rows])
    items = [await _render(ctx.app.db, row, tags[row["vpc_id"]]) for row in rows]
    page, token = filter_and_paginate(items, params, _FILTERS, tags, "VpcId")
    return {"Vpcs": page, "NextToken": token}


# -- CreateVpc / DeleteVpc ----------------------------------------------------------------------

async def create_vpc(ctx: Any, params: dict) -> dict:
    if params.get("Ipv4IpamPoolId") or params.get("Ipv6IpamPoolId") or params.get("Ipv6Pool") \
            or params.get("AmazonProvidedIpv6CidrBlock") or params.get("Ipv6CidrBlock"):
        raise InvalidParameterValue("Nimbo's VPCs are IPv4 only: IPAM pools and IPv6 blocks are not offered")
    if not params.get("CidrBlock"):
        raise MissingParameter("Either 'cidrBlock' or 'ipv4IpamPoolId' should be provided.")
    block = check_vpc_block(params["CidrBlock"])
    tenancy = params.get("InstanceTenancy") or "default"
    if tenancy not in ("default", "dedicated", "host"):
        raise InvalidParameterValue(f"Value ({tenancy}) for parameter instanceTenancy is invalid.")
    tags = creation_tags(params, "vpc")
    await network_of(ctx)
    check_dry_run(params)
    account, at = account_of(ctx), now_us(ctx)
    vpc_id = ids.new_id("vpc")
    async with ctx.app.db.transaction() as tx:
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM ec2_vpcs WHERE account_id = ? AND region = ?"
                                  " AND is_default = 0", (account, ctx.region))
        if count["n"] >= MAX_VPCS:
            raise VpcLimitExceeded("The maximum number of VPCs has been reached.")
        dopt = await ensure_default_dhcp_options(tx, account, ctx.region, at)
        await tx.execute(
            "INSERT INTO ec2_vpcs (vpc_id, account_id, region, cidr_block, is_default, dhcp_options_id,"
            " cidr_association_id, created_us) VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
            (vpc_id, account, ctx.region, str(block), dopt, ids.new_id("vpc-cidr-assoc"), at))
        await vpc_defaults(tx, account, ctx.region, vpc_id, at)
        await write_creation_tags(tx, ctx, vpc_id, "vpc", tags)
        await bump_generation(tx)
        row = await tx.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ?", (vpc_id,))
    changed(ctx)
    vpc = await _render(ctx.app.db, row, tags)
    vpc["State"] = "pending"
    vpc["InstanceTenancy"] = tenancy
    return {"Vpc": vpc}


async def delete_vpc(ctx: Any, params: dict) -> dict:
    row = await owned_vpc(ctx, params.get("VpcId"))
    vpc_id = row["vpc_id"]
    if row["is_default"]:
        raise OperationNotPermitted("Nimbo keeps the default VPC of each account and region; "
                                    "it cannot be deleted.")
    check_dry_run(params)
    db = ctx.app.db
    async with db.transaction() as tx:
        blockers = [
            ("SELECT 1 FROM ec2_subnets WHERE vpc_id = ?", (vpc_id,)),
            ("SELECT 1 FROM net_internet_gateways WHERE vpc_id = ?", (vpc_id,)),
            ("SELECT 1 FROM net_interfaces WHERE vpc_id = ?", (vpc_id,)),
            ("SELECT 1 FROM ec2_security_groups WHERE vpc_id = ? AND group_name != 'default'", (vpc_id,)),
            ("SELECT 1 FROM net_route_tables WHERE vpc_id = ? AND main_association_id IS NULL", (vpc_id,)),
            ("SELECT 1 FROM net_network_acls WHERE vpc_id = ? AND is_default = 0", (vpc_id,)),
            ("SELECT 1 FROM ec2_instances WHERE vpc_id = ? AND state != 'terminated'", (vpc_id,)),
        ]
        for sql, args in blockers:
            if await tx.fetchone(sql, args):
                raise DependencyViolation(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
        owned = [r["route_table_id"] for r in await tx.fetchall(
            "SELECT route_table_id FROM net_route_tables WHERE vpc_id = ?", (vpc_id,))]
        owned += [r["network_acl_id"] for r in await tx.fetchall(
            "SELECT network_acl_id FROM net_network_acls WHERE vpc_id = ?", (vpc_id,))]
        groups = [r["group_id"] for r in await tx.fetchall(
            "SELECT group_id FROM ec2_security_groups WHERE vpc_id = ?", (vpc_id,))]
        for group_id in groups:
            if await tx.fetchone("SELECT 1 FROM net_security_group_rules WHERE ref_group_id = ? AND group_id != ?",
                                 (group_id, group_id)):
                raise DependencyViolation(f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
        for route_table_id in [o for o in owned if o.startswith("rtb-")]:
            await tx.execute("DELETE FROM net_routes WHERE route_table_id = ?", (route_table_id,))
        await tx.execute("DELETE FROM net_route_tables WHERE vpc_id = ?", (vpc_id,))
        await tx.execute("DELETE FROM net_network_acls WHERE vpc_id = ?", (vpc_id,))
        for group_id in groups:
            await tx.execute("DELETE FROM net_security_group_rules WHERE group_id = ?", (group_id,))
        await tx.execute("DELETE FROM ec2_security_groups WHERE vpc_id = ?", (vpc_id,))
        await tx.execute("DELETE FROM net_vpc_cidrs WHERE vpc_id = ?", (vpc_id,))
        await tx.execute("DELETE FROM net_vpc_settings WHERE vpc_id = ?", (vpc_id,))
        await tx.execute("DELETE FROM ec2_vpcs WHERE vpc_id = ?", (vpc_id,))
        await delete_tags(tx, [vpc_id, *owned, *groups])
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- attributes -------------------------------------------------------------------------------------

_ATTRIBUTES = {"enableDnsSupport": ("EnableDnsSupport", "enable_dns_support"),
               "enableDnsHostnames": ("EnableDnsHostnames", "enable_dns_hostnames"),
               "enableNetworkAddressUsageMetrics": ("EnableNetworkAddressUsageMetrics",
                                                    "enable_network_address_usage_metrics")}


async def settings_of(db: Any, vpc: Any) -> Any:
    row = await db.fetchone("SELECT * FROM net_vpc_settings WHERE vpc_id = ?", (vpc["vpc_id"],))
    if row is None:
        return {"enable_dns_support": 1, "enable_dns_hostnames": int(bool(vpc["is_default"])),
                "enable_network_address_usage_metrics": 0}
    return row


async def describe_vpc_attribute(ctx: Any, params: dict) -> dict:
    attribute = params.get("Attribute")
    if not attribute:
        raise MissingParameter("The request must contain the parameter Attribute")
    if attribute not in _ATTRIBUTES:
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
    row = await owned_vpc(ctx, params.get("VpcId"))
    check_dry_run(params)
    member, column = _ATTRIBUTES[attribute]
    settings = await settings_of(ctx.app.db, row)
    return {"VpcId": row["vpc_id"], member: {"Value": bool(settings[column])}}


async def modify_vpc_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_vpc(ctx, params.get("VpcId"))
    asked = {column: attribute_bool(params.get(member), member)
             for member, column in _ATTRIBUTES.values() if params.get(member) is not None}
    asked = {k: v for k, v in asked.items() if v is not None}
    if not asked:
        raise MissingParameter("The request must contain an attribute to modify")
    if len(asked) > 1:
        raise InvalidParameterCombination("Fields for multiple attribute types specified: "
                                          + ", ".join(sorted(asked)))
    (column, value), = asked.items()
    settings = await settings_of(ctx.app.db, row)
    if column == "enable_dns_hostnames" and value and not settings["enable_dns_support"]:
        raise InvalidParameterCombination("Cannot enable DNS hostnames while DNS support is disabled.")
    async with ctx.app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO net_vpc_settings (vpc_id, enable_dns_support, enable_dns_hostnames,"
            " enable_network_address_usage_metrics) VALUES (?, ?, ?, ?) ON CONFLICT(vpc_id) DO NOTHING",
            (row["vpc_id"], settings["enable_dns_support"], settings["enable_dns_hostnames"],
             settings["enable_network_address_usage_metrics"]))
        await tx.execute(f"UPDATE net_vpc_settings SET {column} = ? WHERE vpc_id = ?", (int(value), row["vpc_id"]))
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- CIDR blocks ------------------------------------------------------------------------------------

async def associate_vpc_cidr_block(ctx: Any, params: dict) -> dict:
    if params.get("AmazonProvidedIpv6CidrBlock") or params.get("Ipv6CidrBlock") or params.get("Ipv6Pool") \
            or params.get("Ipv6IpamPoolId") or params.get("Ipv4IpamPoolId"):
        raise InvalidParameterValue("Nimbo's VPCs are IPv4 only: IPAM pools and IPv6 blocks are not offered")
    if not params.get("CidrBlock"):
        raise MissingParameter("The request must contain the parameter cidrBlock")
    row = await owned_vpc(ctx, params.get("VpcId"))
    block = check_vpc_block(params["CidrBlock"])
    association_id = ids.new_id("vpc-cidr-assoc")
    async with ctx.app.db.transaction() as tx:
        existing = await vpc_cidrs(tx, row)
        if len(existing) >= MAX_CIDRS:
            raise CidrLimitExceeded(f"This network '{row['vpc_id']}' has met its maximum number of allowed "
                                    f"CIDRs: {MAX_CIDRS}")
        for cidr in existing:
            if ipaddress.ip_network(cidr).overlaps(block):
                raise CidrConflict(f"The CIDR '{block}' conflicts with another CIDR block '{cidr}' "
                                   f"of the VPC '{row['vpc_id']}'.")
        await tx.execute("INSERT INTO net_vpc_cidrs (association_id, vpc_id, account_id, cidr_block, created_us)"
                         " VALUES (?, ?, ?, ?, ?)", (association_id, row["vpc_id"], account_of(ctx), str(block),
                                                     now_us(ctx)))
        await bump_generation(tx)
    changed(ctx)
    return {"VpcId": row["vpc_id"], "CidrBlockAssociation": {
        "AssociationId": association_id, "CidrBlock": str(block), "CidrBlockState": {"State": "associating"}}}


async def disassociate_vpc_cidr_block(ctx: Any, params: dict) -> dict:
    association_id = params.get("AssociationId")
    if not association_id:
        raise MissingParameter("The request must contain the parameter associationId")
    await network_of(ctx)
    db = ctx.app.db
    row = await db.fetchone("SELECT * FROM net_vpc_cidrs WHERE association_id = ? AND account_id = ?",
                            (association_id, account_of(ctx)))
    primary = await db.fetchone("SELECT vpc_id, cidr_block FROM ec2_vpcs WHERE cidr_association_id = ?"
                                " AND account_id = ? AND region = ?", (association_id, account_of(ctx), ctx.region))
    if primary is not None:
        raise OperationNotPermitted(f"The vpc {primary['vpc_id']} primary CIDR block {primary['cidr_block']} "
                                    f"cannot be disassociated.")
    vpc = row and await db.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ? AND region = ?",
                                    (row["vpc_id"], ctx.region))
    if row is None or vpc is None:
        raise InvalidVpcCidrBlockAssociationIdNotFound(
            f"The vpc CIDR block association ID '{association_id}' does not exist")
    block = ipaddress.ip_network(row["cidr_block"])
    subnets = await db.fetchall("SELECT subnet_id, cidr_block FROM ec2_subnets WHERE vpc_id = ?", (row["vpc_id"],))
    for subnet in subnets:
        if ipaddress.ip_network(subnet["cidr_block"]).subnet_of(block):
            raise DependencyViolation(f"The vpc CIDR block '{row['cidr_block']}' has dependencies "
                                      f"(subnet '{subnet['subnet_id']}') and cannot be disassociated.")
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM net_vpc_cidrs WHERE association_id = ?", (association_id,))
        await bump_generation(tx)
    changed(ctx)
    return {"VpcId": row["vpc_id"], "CidrBlockAssociation": {
        "AssociationId": association_id, "CidrBlock": row["cidr_block"],
        "CidrBlockState": {"State": "disassociating"}}}
