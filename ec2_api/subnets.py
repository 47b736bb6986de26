"""CreateSubnet, DeleteSubnet, DescribeSubnets and ModifySubnetAttribute.

A subnet's CIDR lies inside one of its VPC's blocks, is a /16 to /28, and overlaps no other
subnet of the VPC. AWS reserves five addresses of each (the network address, .1 the router, .2
the resolver, .3, and the broadcast address); AvailableIpAddressCount counts what is left after
the interfaces' addresses. MapPublicIpOnLaunch (true on default subnets) gives each instance
launched there a public address from the pool while it runs.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, arn, now_us
from ec2_api.errors import (InvalidParameterCombination, InvalidParameterValue, InvalidSubnetIDNotFound,
                            MissingParameter, OperationNotPermitted, check_dry_run, ec2_error)
from ec2_api.filters import filter_and_paginate
from ec2_api.network_common import (attribute_bool, changed, creation_tags, delete_tags, tags_or_none,
                                    write_creation_tags)
from ec2_api.regions import zone_id
from ec2_api.vpc import (bump_generation, owned_resources, owned_subnet, owned_vpc, parse_cidr, usable_addresses,
                         used_addresses, vpc_cidrs)

InvalidSubnetRange = ec2_error("InvalidSubnet.Range")
InvalidSubnetConflict = ec2_error("InvalidSubnet.Conflict")
SubnetLimitExceeded = ec2_error("SubnetLimitExceeded")
DependencyViolation = ec2_error("DependencyViolation")
MAX_SUBNETS_PER_VPC = 200


async def settings_of(db: Any, subnet: Any) -> dict:
    row = await db.fetchone("SELECT * FROM net_subnet_settings WHERE subnet_id = ?", (subnet["subnet_id"],))
    if row is None:
        return {"map_public_ip_on_launch": bool(subnet["default_for_az"]), "data": {}}
    return {"map_public_ip_on_launch": bool(row["map_public_ip_on_launch"]), "data": json.loads(row["data"])}


def _render(config: Any, row: Any, used: int, settings: dict, tags: dict[str, str]) -> dict:
    zones = list(config.regions.get(row["region"]) or [])
    index = zones.index(row["availability_zone"]) if row["availability_zone"] in zones else 0
    data = settings["data"]
    return {
        "SubnetId": row["subnet_id"], "VpcId": row["vpc_id"], "State": "available",
        "CidrBlock": row["cidr_block"], "AvailabilityZone": row["availability_zone"],
        "AvailabilityZoneId": zone_id(row["region"], index),
        "AvailableIpAddressCount": usable_addresses(row["cidr_block"]) - used,
        "DefaultForAz": bool(row["default_for_az"]), "MapPublicIpOnLaunch": settings["map_public_ip_on_launch"],
        "MapCustomerOwnedIpOnLaunch": False, "OwnerId": row["account_id"],
        "AssignIpv6AddressOnCreation": False, "Ipv6CidrBlockAssociationSet": [],
        "SubnetArn": arn(row["region"], row["account_id"], f"subnet/{row['subnet_id']}"),
        "EnableDns64": bool(data.get("EnableDns64", False)), "Ipv6Native": False,
        "PrivateDnsNameOptionsOnLaunch": {
            "HostnameType": data.get("PrivateDnsHostnameTypeOnLaunch", "ip-name"),
            "EnableResourceNameDnsARecord": bool(data.get("EnableResourceNameDnsARecordOnLaunch", False)),
            "EnableResourceNameDnsAAAARecord": bool(data.get("EnableResourceNameDnsAAAARecordOnLaunch", False))},
        "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        "Tags": tags_or_none(tags),
    }


async def render_subnet(ctx: Any, row: Any, tags: dict[str, str] | None = None) -> dict:
    used = len(await used_addresses(ctx.app.db, row["subnet_id"]))
    settings = await settings_of(ctx.app.db, row)
    return _render(ctx.app.config, row, used, settings, tags or {})


_FILTERS = {
    "subnet-id": lambda s: s["SubnetId"],
    "vpc-id": lambda s: s["VpcId"],
    "availability-zone": lambda s: s["AvailabilityZone"],
    "availabilityZone": lambda s: s["AvailabilityZone"],
    "availability-zone-id": lambda s: s["AvailabilityZoneId"],
    "availabilityZoneId": lambda s: s["AvailabilityZoneId"],
    "cidr-block": lambda s: s["CidrBlock"],
    "cidr": lambda s: s["CidrBlock"],
    "cidrBlock": lambda s: s["CidrBlock"],
    "default-for-az": lambda s: s["DefaultForAz"],
    "defaultForAz": lambda s: s["DefaultForAz"],
    "map-public-ip-on-launch": lambda s: s["MapPublicIpOnLaunch"],
    "map-customer-owned-ip-on-launch": lambda s: s["MapCustomerOwnedIpOnLaunch"],
    "available-ip-address-count": lambda s: s["AvailableIpAddressCount"],
    "owner-id": lambda s: s["OwnerId"],
    "state": lambda s: s["State"],
    "subnet-arn": lambda s: s["SubnetArn"],
    "ipv6-native": lambda s: s["Ipv6Native"],
    "enable-dns64": lambda s: s["EnableDns64"],
    "assign-ipv6-address-on-creation": lambda s: s["AssignIpv6AddressOnCreation"],
    "private-dns-name-options-on-launch.hostname-type": lambda s: s["PrivateDnsNameOptionsOnLaunch"]["HostnameType"],
    "ipv6-cidr-block-association.ipv6-cidr-block": lambda s: None,
    "ipv6-cidr-block-association.association-id": lambda s: None,
    "ipv6-cidr-block-association.state": lambda s: None,
}


async def describe_subnets(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    rows = await owned_resources(ctx, "ec2_subnets", "subnet_id", params.get("SubnetIds"), InvalidSubnetIDNotFound,
                                 "subnet")
    account, db = account_of(ctx), ctx.app.db
    ids_ = [row["subnet_id"] for row in rows]
    counts = await db.fetchall(
        "SELECT subnet_id, COUNT(*) AS n FROM (SELECT subnet_id, private_ip FROM ec2_instances WHERE private_ip IS"
        " NOT NULL UNION SELECT subnet_id, private_ip FROM net_interface_addresses) AS used GROUP BY subnet_id")
    used = {r["subnet_id"]: r["n"] for r in counts}
    settings = {r["subnet_id"]: r for r in await db.fetchall("SELECT * FROM net_subnet_settings")}
    tags = await tag_store.tags_of(db, account, ids_)
    items = []
    for row in rows:
        s = settings.get(row["subnet_id"])
        setting = ({"map_public_ip_on_launch": bool(s["map_public_ip_on_launch"]), "data": json.loads(s["data"])}
                   if s is not None else {"map_public_ip_on_launch": bool(row["default_for_az"]), "data": {}})
        items.append(_render(ctx.app.config, row, used.get(row["subnet_id"], 0), setting, tags[row["subnet_id"]]))
    page, token = filter_and_paginate(items, params, _FILTERS, tags, "SubnetId")
    return {"Subnets": page, "NextToken": token}


def _zone(ctx: Any, params: dict) -> str:
    zones = list(ctx.app.config.regions.get(ctx.region) or [])
    zone, zone_id_ = params.get("AvailabilityZone"), params.get("AvailabilityZoneId")
    if zone and zone_id_:
        raise InvalidParameterCombination("Only one of availabilityZone or availabilityZoneId may be specified")
    if zone_id_:
        by_id = {zone_id(ctx.region, i): z for i, z in enumerate(zones)}
        if zone_id_ not in by_id:
            raise InvalidParameterValue(f"Value ({zone_id_}) for parameter availabilityZoneId is invalid. "
                                        f"Subnets can currently only be created in the following availability "
                                        f"zones: {', '.join(zones)}.")
        return by_id[zone_id_]
    if zone:
        if zone not in zones:
            raise InvalidParameterValue(f"Value ({zone}) for parameter availabilityZone is invalid. Subnets can "
                                        f"currently only be created in the following availability zones: "
                                        f"{', '.join(zones)}.")
        return zone
    return zones[0]


async def create_subnet(ctx: Any, params: dict) -> dict:
    if params.get("Ipv4IpamPoolId") or params.get("Ipv6IpamPoolId") or params.get("Ipv6CidrBlock") \
            or params.get("Ipv6Native") or params.get("OutpostArn"):
        raise InvalidParameterValue("Nimbo's subnets are IPv4 only: IPAM pools, IPv6 and Outposts are not offered")
    vpc = await owned_vpc(ctx, params.get("VpcId"))
    if not params.get("CidrBlock"):
        raise MissingParameter("The request must contain the parameter cidrBlock")
    block = parse_cidr(params["CidrBlock"], "cidrBlock")
    zone = _zone(ctx, params)
    tags = creation_tags(params, "subnet")
    check_dry_run(params)
    subnet_id = ids.new_id("subnet")
    async with ctx.app.db.transaction() as tx:
        cidrs = [ipaddress.ip_network(c) for c in await vpc_cidrs(tx, vpc)]
        if not 16 <= block.prefixlen <= 28 or not any(block.subnet_of(c) for c in cidrs):
            raise InvalidSubnetRange(f"The CIDR '{params['CidrBlock']}' is invalid.")
        others = await tx.fetchall("SELECT cidr_block FROM ec2_subnets WHERE vpc_id = ?", (vpc["vpc_id"],))
        if len(others) >= MAX_SUBNETS_PER_VPC:
            raise SubnetLimitExceeded("The maximum number of subnets has been reached.")
        if any(block.overlaps(ipaddress.ip_network(o["cidr_block"])) for o in others):
            raise InvalidSubnetConflict(f"The CIDR '{params['CidrBlock']}' conflicts with another subnet")
        await tx.execute(
            "INSERT INTO ec2_subnets (subnet_id, account_id, region, vpc_id, availability_zone, cidr_block,"
            " default_for_az, created_us) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (subnet_id, account_of(ctx), ctx.region, vpc["vpc_id"], zone, str(block), now_us(ctx)))
        await tx.execute("INSERT INTO net_subnet_settings (subnet_id, map_public_ip_on_launch) VALUES (?, 0)",
                         (subnet_id,))
        await write_creation_tags(tx, ctx, subnet_id, "subnet", tags)
        await bump_generation(tx)
        row = await tx.fetchone("SELECT * FROM ec2_subnets WHERE subnet_id = ?", (subnet_id,))
    changed(ctx)
    subnet = await render_subnet(ctx, row, tags)
    subnet["State"] = "pending"
    return {"Subnet": subnet}


async def delete_subnet(ctx: Any, params: dict) -> dict:
    row = await owned_subnet(ctx, params.get("SubnetId"))
    subnet_id = row["subnet_id"]
    if row["default_for_az"]:
        raise OperationNotPermitted("Nimbo keeps the default subnets of the default VPC; they cannot be deleted.")
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        if await tx.fetchone("SELECT 1 FROM net_interfaces WHERE subnet_id = ?", (subnet_id,)) or \
                await tx.fetchone("SELECT 1 FROM ec2_instances WHERE subnet_id = ? AND state != 'terminated'",
                                  (subnet_id,)):
            raise DependencyViolation(f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        await tx.execute("DELETE FROM net_route_table_associations WHERE subnet_id = ?", (subnet_id,))
        await tx.execute("DELETE FROM net_subnet_settings WHERE subnet_id = ?", (subnet_id,))
        await tx.execute("DELETE FROM ec2_subnets WHERE subnet_id = ?", (subnet_id,))
        await delete_tags(tx, [subnet_id])
        await bump_generation(tx)
    changed(ctx)
    return {}


_MODIFIABLE = ("MapPublicIpOnLaunch", "AssignIpv6AddressOnCreation", "MapCustomerOwnedIpOnLaunch", "EnableDns64",
               "EnableResourceNameDnsARecordOnLaunch", "EnableResourceNameDnsAAAARecordOnLaunch",
               "PrivateDnsHostnameTypeOnLaunch", "EnableLniAtDeviceIndex", "DisableLniAtDeviceIndex",
               "CustomerOwnedIpv4Pool")


async def modify_subnet_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_subnet(ctx, params.get("SubnetId"))
    asked = [name for name in _MODIFIABLE if params.get(name) is not None]
    if not asked:
        raise MissingParameter("The request must contain an attribute to modify")
    if len(asked) > 1 and asked != ["MapCustomerOwnedIpOnLaunch", "CustomerOwnedIpv4Pool"]:
        raise InvalidParameterCombination("Fields for multiple attribute types specified: " + ", ".join(asked))
    name = asked[0]
    settings = await settings_of(ctx.app.db, row)
    data = dict(settings["data"])
    mapped = settings["map_public_ip_on_launch"]
    if name == "MapPublicIpOnLaunch":
        mapped = bool(attribute_bool(params[name], name))
    elif name == "PrivateDnsHostnameTypeOnLaunch":
        if params[name] not in ("ip-name", "resource-name"):
            raise InvalidParameterValue(f"Value ({params[name]}) for parameter privateDnsHostnameTypeOnLaunch "
                                        f"is invalid.")
        data[name] = params[name]
    elif name in ("AssignIpv6AddressOnCreation", "MapCustomerOwnedIpOnLaunch", "EnableLniAtDeviceIndex",
                  "DisableLniAtDeviceIndex", "CustomerOwnedIpv4Pool"):
        if attribute_bool(params[name], name) if name != "EnableLniAtDeviceIndex" else True:
            raise InvalidParameterValue(f"Nimbo's subnets do not offer {name} (IPv4 only, no Outposts).")
        return {}
    else:
        data[name] = bool(attribute_bool(params[name], name))
    async with ctx.app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO net_subnet_settings (subnet_id, map_public_ip_on_launch, data) VALUES (?, ?, ?)"
            " ON CONFLICT(subnet_id) DO UPDATE SET map_public_ip_on_launch = excluded.map_public_ip_on_launch,"
            " data = excluded.data", (row["subnet_id"], int(mapped), json.dumps(data, sort_keys=True)))
        await bump_generation(tx)
    changed(ctx)
    return {}
