"""The default network of an account in a region: the default VPC (172.31.0.0/16), one default
subnet per availability zone (a /20 each, as AWS lays them out) and the default security group.

They are made lazily, the first time anything in the account and region needs them, with stable
ids (the VPC's id is ``account_attributes.default_vpc_id``). DescribeVpcs, DescribeSubnets and
DescribeSecurityGroups show them; instances get their private addresses from the subnets here.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from ec2_api import tag_store
from ec2_api.account_attributes import default_vpc_id
from ec2_api.common import account_of, arn, now_us
from ec2_api.errors import (InvalidGroupNotFound, InvalidSubnetIDNotFound,
                            InvalidVpcIDNotFound, check_dry_run, ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.regions import zone_id

DEFAULT_VPC_CIDR = "172.31.0.0/16"
SUBNET_PREFIX = 20
InsufficientFreeAddressesInSubnet = ec2_error("InsufficientFreeAddressesInSubnet")
InvalidGroupIdMalformed = ec2_error("InvalidGroupId.Malformed")


def _stable(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256(":".join((prefix,) + parts).encode()).hexdigest()
    return f"{prefix}-{digest[:17]}"


@dataclass
class Network:
    vpc: Any
    subnets: dict[str, Any]   # availability zone -> subnet row
    security_group: Any

    def subnet_by_id(self, subnet_id: str) -> Any | None:
        return next((s for s in self.subnets.values() if s["subnet_id"] == subnet_id), None)


async def default_network(db: Any, config: Any, account_id: str, region: str, at_us: int) -> Network:
    """The default VPC, subnets and security group of the account in the region, made if missing."""
    vpc_id = default_vpc_id(account_id, region)
    zones = list(config.regions.get(region) or [])
    network = await _load(db, vpc_id, zones)
    if network is not None:
        return network
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO ec2_vpcs (vpc_id, account_id, region, cidr_block, is_default, dhcp_options_id,"
            " cidr_association_id, created_us) VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT(vpc_id) DO NOTHING",
            (vpc_id, account_id, region, DEFAULT_VPC_CIDR, _stable("dopt", account_id, region),
             _stable("vpc-cidr-assoc", vpc_id), at_us))
        base = ipaddress.ip_network(DEFAULT_VPC_CIDR)
        blocks = list(base.subnets(new_prefix=SUBNET_PREFIX))
        for index, zone in enumerate(zones[:len(blocks)]):
            await tx.execute(
                "INSERT INTO ec2_subnets (subnet_id, account_id, region, vpc_id, availability_zone,"
                " cidr_block, default_for_az, created_us) VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT(subnet_id) DO NOTHING",
                (_stable("subnet", account_id, region, zone), account_id, region, vpc_id, zone,
                 str(blocks[index]), at_us))
        await tx.execute(
            "INSERT INTO ec2_security_groups (group_id, account_id, region, vpc_id, group_name,"
            " description, created_us) VALUES (?, ?, ?, ?, 'default', 'default VPC security group', ?)"
            " ON CONFLICT DO NOTHING",
            (_stable("sg", account_id, region, "default"), account_id, region, vpc_id, at_us))
    network = await _load(db, vpc_id, zones)
    assert network is not None
    return network


async def _load(db: Any, vpc_id: str, zones: list[str]) -> Network | None:
    vpc = await db.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ?", (vpc_id,))
    if vpc is None:
        return None
    rows = await db.fetchall("SELECT * FROM ec2_subnets WHERE vpc_id = ?", (vpc_id,))
    subnets = {row["availability_zone"]: row for row in rows if row["default_for_az"]}
    if any(zone not in subnets for zone in zones[:16]):
        return None   # a zone was added to the configuration since: make its subnet
    group = await db.fetchone(
        "SELECT * FROM ec2_security_groups WHERE vpc_id = ? AND group_name = 'default'", (vpc_id,))
    if group is None:
        return None
    return Network(vpc, subnets, group)


async def network_of(ctx: Any) -> Network:
    return await default_network(ctx.app.db, ctx.app.config, account_of(ctx), ctx.region, now_us(ctx))


# -- private addresses ------------------------------------------------------------------------

async def allocate_addresses(tx: Any, subnet: Any, count: int) -> list[str]:
    """The lowest ``count`` free addresses of the subnet (AWS reserves the first four and the
    last); an address is in use while an instance that is not terminated holds it."""
    network = ipaddress.ip_network(subnet["cidr_block"])
    rows = await tx.fetchall(
        "SELECT private_ip FROM ec2_instances WHERE subnet_id = ? AND private_ip IS NOT NULL",
        (subnet["subnet_id"],))
    used = {row["private_ip"] for row in rows}
    free: list[str] = []
    first, last = int(network.network_address) + 4, int(network.broadcast_address) - 1
    for value in range(first, last + 1):
        address = str(ipaddress.ip_address(value))
        if address not in used:
            free.append(address)
            if len(free) == count:
                return free
    raise InsufficientFreeAddressesInSubnet(
        f"There are not enough free addresses in subnet '{subnet['subnet_id']}' to satisfy the "
        f"requested number of instances.")


def usable_addresses(cidr: str) -> int:
    return ipaddress.ip_network(cidr).num_addresses - 5


# -- Describe calls ----------------------------------------------------------------------------

def _vpc_item(row: Any, tags: dict[str, str]) -> dict:
    return {
        "VpcId": row["vpc_id"], "OwnerId": row["account_id"], "State": "available",
        "CidrBlock": row["cidr_block"], "DhcpOptionsId": row["dhcp_options_id"],
        "InstanceTenancy": "default", "IsDefault": bool(row["is_default"]),
        "CidrBlockAssociationSet": [{
            "AssociationId": row["cidr_association_id"], "CidrBlock": row["cidr_block"],
            "CidrBlockState": {"State": "associated"}}],
        "Tags": tag_store.tag_list(tags) or None,
    }


async def describe_vpcs(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    await network_of(ctx)
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_vpcs WHERE account_id = ? AND region = ?", (account, ctx.region))
    wanted = params.get("VpcIds") or []
    known = {row["vpc_id"] for row in rows}
    missing = [v for v in wanted if v not in known]
    if missing:
        raise InvalidVpcIDNotFound(f"The vpc ID '{missing[0]}' does not exist")
    if wanted:
        rows = [row for row in rows if row["vpc_id"] in wanted]
    tags = await tag_store.tags_of(ctx.app.db, account, [row["vpc_id"] for row in rows])
    items = [_vpc_item(row, tags[row["vpc_id"]]) for row in rows]
    items = apply_filters(items, params.get("Filters"), {
        "vpc-id": lambda v: v["VpcId"],
        "cidr": lambda v: v["CidrBlock"],
        "cidr-block-association.cidr-block": lambda v: v["CidrBlock"],
        "cidr-block-association.association-id": lambda v: v["CidrBlockAssociationSet"][0]["AssociationId"],
        "cidr-block-association.state": lambda v: "associated",
        "dhcp-options-id": lambda v: v["DhcpOptionsId"],
        "is-default": lambda v: v["IsDefault"],
        "isDefault": lambda v: v["IsDefault"],
        "owner-id": lambda v: v["OwnerId"],
        "state": lambda v: v["State"],
    }, tags=lambda v: tags[v["VpcId"]])
    page, token = paginate(items, lambda v: v["VpcId"], params.get("MaxResults"), params.get("NextToken"))
    return {"Vpcs": page, "NextToken": token}


async def _address_counts(db: Any, subnet_ids: list[str]) -> dict[str, int]:
    rows = await db.fetchall(
        "SELECT subnet_id, COUNT(*) AS n FROM ec2_instances WHERE private_ip IS NOT NULL GROUP BY subnet_id")
    return {row["subnet_id"]: row["n"] for row in rows if row["subnet_id"] in subnet_ids}


def _subnet_item(ctx: Any, row: Any, used: int, tags: dict[str, str]) -> dict:
    zones = list(ctx.app.config.regions.get(row["region"]) or [])
    index = zones.index(row["availability_zone"]) if row["availability_zone"] in zones else 0
    return {
        "SubnetId": row["subnet_id"], "VpcId": row["vpc_id"], "State": "available",
        "CidrBlock": row["cidr_block"], "AvailabilityZone": row["availability_zone"],
        "AvailabilityZoneId": zone_id(row["region"], index),
        "AvailableIpAddressCount": usable_addresses(row["cidr_block"]) - used,
        "DefaultForAz": bool(row["default_for_az"]), "MapPublicIpOnLaunch": bool(row["default_for_az"]),
        "MapCustomerOwnedIpOnLaunch": False, "OwnerId": row["account_id"],
        "AssignIpv6AddressOnCreation": False, "Ipv6CidrBlockAssociationSet": [],
        "SubnetArn": arn(row["region"], row["account_id"], f"subnet/{row['subnet_id']}"),
        "EnableDns64": False, "Ipv6Native": False,
        "PrivateDnsNameOptionsOnLaunch": {"HostnameType": "ip-name", "EnableResourceNameDnsARecord": False,
                                          "EnableResourceNameDnsAAAARecord": False},
        "Tags": tag_store.tag_list(tags) or None,
    }


async def describe_subnets(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    await network_of(ctx)
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_subnets WHERE account_id = ? AND region = ?", (account, ctx.region))
    wanted = params.get("SubnetIds") or []
    known = {row["subnet_id"] for row in rows}
    missing = [s for s in wanted if s not in known]
    if missing:
        raise InvalidSubnetIDNotFound(f"The subnet ID '{missing[0]}' does not exist")
    if wanted:
        rows = [row for row in rows if row["subnet_id"] in wanted]
    ids = [row["subnet_id"] for row in rows]
    used = await _address_counts(ctx.app.db, ids)
    tags = await tag_store.tags_of(ctx.app.db, account, ids)
    items = [_subnet_item(ctx, row, used.get(row["subnet_id"], 0), tags[row["subnet_id"]]) for row in rows]
    items = apply_filters(items, params.get("Filters"), {
        "subnet-id": lambda s: s["SubnetId"],
        "vpc-id": lambda s: s["VpcId"],
        "availability-zone": lambda s: s["AvailabilityZone"],
        "availabilityZone": lambda s: s["AvailabilityZone"],
        "availability-zone-id": lambda s: s["AvailabilityZoneId"],
        "cidr-block": lambda s: s["CidrBlock"],
        "cidr": lambda s: s["CidrBlock"],
        "cidrBlock": lambda s: s["CidrBlock"],
        "default-for-az": lambda s: s["DefaultForAz"],
        "defaultForAz": lambda s: s["DefaultForAz"],
        "map-public-ip-on-launch": lambda s: s["MapPublicIpOnLaunch"],
        "available-ip-address-count": lambda s: s["AvailableIpAddressCount"],
        "owner-id": lambda s: s["OwnerId"],
        "state": lambda s: s["State"],
        "subnet-arn": lambda s: s["SubnetArn"],
    }, tags=lambda s: tags[s["SubnetId"]])
    page, token = paginate(items, lambda s: s["SubnetId"], params.get("MaxResults"), params.get("NextToken"))
    return {"Subnets": page, "NextToken": token}


def _group_item(row: Any, tags: dict[str, str]) -> dict:
    return {
        "GroupId": row["group_id"], "GroupName": row["group_name"], "Description": row["description"],
        "OwnerId": row["account_id"], "VpcId": row["vpc_id"],
        "SecurityGroupArn": arn(row["region"], row["account_id"], f"security-group/{row['group_id']}"),
        "IpPermissions": [{
            "IpProtocol": "-1", "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
            "UserIdGroupPairs": [{"GroupId": row["group_id"], "UserId": row["account_id"]}]}],
        "IpPermissionsEgress": [{
            "IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
            "PrefixListIds": [], "UserIdGroupPairs": []}],
        "Tags": tag_store.tag_list(tags) or None,
    }


async def describe_security_groups(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    network = await network_of(ctx)
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_security_groups WHERE account_id = ? AND region = ?", (account, ctx.region))
    for group_id in params.get("GroupIds") or []:
        if not group_id.startswith("sg-"):
            raise InvalidGroupIdMalformed(f"Invalid id: \"{group_id}\" (expecting \"sg-...\")")
        if group_id not in {row["group_id"] for row in rows}:
            raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist")
    for name in params.get("GroupNames") or []:
        if not any(row["group_name"] == name and row["vpc_id"] == network.vpc["vpc_id"] for row in rows):
            raise InvalidGroupNotFound(
                f"The security group '{name}' does not exist in default VPC '{network.vpc['vpc_id']}'")
    if params.get("GroupIds"):
        rows = [row for row in rows if row["group_id"] in params["GroupIds"]]
    if params.get("GroupNames"):
        rows = [row for row in rows if row["group_name"] in params["GroupNames"]]
    tags = await tag_store.tags_of(ctx.app.db, account, [row["group_id"] for row in rows])
    items = [_group_item(row, tags[row["group_id"]]) for row in rows]
    items = apply_filters(items, params.get("Filters"), {
        "group-id": lambda g: g["GroupId"],
        "group-name": lambda g: g["GroupName"],
        "description": lambda g: g["Description"],
        "vpc-id": lambda g: g["VpcId"],
        "owner-id": lambda g: g["OwnerId"],
        "ip-permission.protocol": lambda g: [p["IpProtocol"] for p in g["IpPermissions"]],
        "egress.ip-permission.protocol": lambda g: [p["IpProtocol"] for p in g["IpPermissionsEgress"]],
        "egress.ip-permission.cidr": lambda g: [r["CidrIp"] for p in g["IpPermissionsEgress"]
                                                for r in p["IpRanges"]],
        "ip-permission.group-id": lambda g: [u["GroupId"] for p in g["IpPermissions"]
                                             for u in p["UserIdGroupPairs"]],
    }, tags=lambda g: tags[g["GroupId"]])
    page, token = paginate(items, lambda g: g["GroupId"], params.get("MaxResults"), params.get("NextToken"))
    return {"SecurityGroups": page, "NextToken": token}


async def resolve_security_groups(ctx: Any, network: Network, group_ids: list[str],
                                  group_names: list[str]) -> list[dict]:
    """The groups an instance launches with: the named ones (in its VPC) or the default one."""
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_security_groups WHERE account_id = ? AND region = ? AND vpc_id = ?",
        (account_of(ctx), ctx.region, network.vpc["vpc_id"]))
    chosen = []
    for group_id in group_ids:
        row = next((r for r in rows if r["group_id"] == group_id), None)
        if row is None:
            raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist in VPC "
                                       f"'{network.vpc['vpc_id']}'")
        chosen.append(row)
    for name in group_names:
        row = next((r for r in rows if r["group_name"] == name), None)
        if row is None:
            raise InvalidGroupNotFound(f"The security group '{name}' does not exist in default VPC "
                                       f"'{network.vpc['vpc_id']}'")
        chosen.append(row)
    if not chosen:
        chosen = [network.security_group]
    unique = {row["group_id"]: row for row in chosen}
    return [{"GroupId": r["group_id"], "GroupName": r["group_name"]} for r in unique.values()]

