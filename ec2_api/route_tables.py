"""Route tables: Create/Delete/DescribeRouteTables, Create/Replace/DeleteRoute,
Associate/DisassociateRouteTable and ReplaceRouteTableAssociation.

Every VPC has one main route table (its association is the ``main_association_id`` of the table);
a subnet without an explicit association uses it. Each table has the implicit ``local`` route of
each VPC CIDR block. A route targets an internet gateway (igw-), a network interface (eni-) or an
instance (its primary interface); a route whose target is gone or detached is a ``blackhole``.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, now_us
from ec2_api.errors import (InvalidParameterValue, MissingParameter, check_dry_run, ec2_error)
from ec2_api.filters import filter_and_paginate
from ec2_api.network_common import changed, creation_tags, delete_tags, tags_or_none, write_creation_tags
from ec2_api.vpc import (bump_generation, network_of, owned_resource, owned_resources, owned_subnet, owned_vpc,
                         parse_cidr, vpc_cidrs)

InvalidRouteTableIDNotFound = ec2_error("InvalidRouteTableID.NotFound")
InvalidRouteTableIdMalformed = ec2_error("InvalidRouteTableId.Malformed")
InvalidRouteNotFound = ec2_error("InvalidRoute.NotFound")
RouteAlreadyExists = ec2_error("RouteAlreadyExists")
InvalidAssociationIDNotFound = ec2_error("InvalidAssociationID.NotFound")
ResourceAlreadyAssociated = ec2_error("Resource.AlreadyAssociated")
DependencyViolation = ec2_error("DependencyViolation")
InvalidGatewayIDNotFound = ec2_error("InvalidGatewayID.NotFound")
InvalidNetworkInterfaceIDNotFound = ec2_error("InvalidNetworkInterfaceID.NotFound")
InvalidInstanceIDNotFound = ec2_error("InvalidInstanceID.NotFound")
RouteLimitExceeded = ec2_error("RouteLimitExceeded")
RouteTableLimitExceeded = ec2_error("RouteTableLimitExceeded")
MAX_ROUTES = 50
MAX_TABLES = 200
UNSUPPORTED_TARGETS = ("EgressOnlyInternetGatewayId", "NatGatewayId", "TransitGatewayId", "LocalGatewayId",
                       "CarrierGatewayId", "VpcPeeringConnectionId", "VpcEndpointId", "CoreNetworkArn",
                       "OdbNetworkArn", "DestinationPrefixListId", "DestinationIpv6CidrBlock")


async def owned_table(ctx: Any, table_id: Any) -> Any:
    return await owned_resource(ctx, "net_route_tables", "route_table_id", table_id, parameter="routeTableId",
                                prefix="rtb", malformed=InvalidRouteTableIdMalformed,
                                not_found_error=InvalidRouteTableIDNotFound, noun="routeTable")


# -- route state --------------------------------------------------------------------------------------

async def resolve_target(conn: Any, route: Any, vpc_id: str) -> tuple[str, str | None]:
    """(state, target) of a stored route: target ``igw`` or an eni id; blackhole when gone."""
    if route["gateway_id"]:
        gateway = await conn.fetchone("SELECT vpc_id FROM net_internet_gateways WHERE internet_gateway_id = ?",
                                      (route["gateway_id"],))
        return ("active", "igw") if gateway and gateway["vpc_id"] == vpc_id else ("blackhole", None)
    if route["instance_id"]:
        eni = await conn.fetchone(
            "SELECT i.network_interface_id FROM net_interfaces i JOIN ec2_instances x ON x.instance_id ="
            " i.instance_id WHERE i.instance_id = ? AND i.device_index = 0 AND x.state IN ('pending', 'running')",
            (route["instance_id"],))
        return ("active", eni["network_interface_id"]) if eni else ("blackhole", None)
    eni = await conn.fetchone(
        "SELECT i.network_interface_id FROM net_interfaces i LEFT JOIN ec2_instances x ON x.instance_id ="
        " i.instance_id WHERE i.network_interface_id = ? AND x.state IN ('pending', 'running')",
        (route["network_interface_id"],))
    return ("active", eni["network_interface_id"]) if eni else ("blackhole", None)


async def render_table(db: Any, row: Any, tags: dict[str, str]) -> dict:
    vpc = await db.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ?", (row["vpc_id"],))
    routes: list[dict] = []
    for cidr in await vpc_cidrs(db, vpc) if vpc else []:
        routes.append({"DestinationCidrBlock": cidr, "GatewayId": "local", "Origin": "CreateRouteTable",
                       "State": "active"})
    for route in await db.fetchall("SELECT * FROM net_routes WHERE route_table_id = ? ORDER BY destination",
                                   (row["route_table_id"],)):
        state, _ = await resolve_target(db, route, row["vpc_id"])
        item: dict[str, Any] = {"DestinationCidrBlock": route["destination"], "Origin": route["origin"],
                                "State": state}
        if route["gateway_id"]:
            item["GatewayId"] = route["gateway_id"]
        if route["instance_id"]:
            item["InstanceId"] = route["instance_id"]
            item["InstanceOwnerId"] = row["account_id"]
            eni = await db.fetchone("SELECT network_interface_id FROM net_interfaces WHERE instance_id = ? AND"
                                    " device_index = 0", (route["instance_id"],))
            if eni:
                item["NetworkInterfaceId"] = eni["network_interface_id"]
        if route["network_interface_id"]:
            item["NetworkInterfaceId"] = route["network_interface_id"]
            eni = await db.fetchone("SELECT instance_id FROM net_interfaces WHERE network_interface_id = ?",
                                    (route["network_interface_id"],))
            if eni and eni["instance_id"]:
                item["InstanceId"] = eni["instance_id"]
                item["InstanceOwnerId"] = row["account_id"]
        routes.append(item)
    associations = []
    if row["main_association_id"]:
        associations.append({"Main": True, "RouteTableAssociationId": row["main_association_id"],
                             "RouteTableId": row["route_table_id"], "AssociationState": {"State": "associated"}})
    for assoc in await db.fetchall("SELECT * FROM net_route_table_associations WHERE route_table_id = ?"
                                   " ORDER BY association_id", (row["route_table_id"],)):
        associations.append({"Main": False, "RouteTableAssociationId": assoc["association_id"],
                             "RouteTableId": row["route_table_id"], "SubnetId": assoc["subnet_id"],
                             "AssociationState": {"State": "associated"}})
    return {"RouteTableId": row["route_table_id"], "VpcId": row["vpc_id"], "OwnerId": row["account_id"],
            "Routes": routes, "Associations": associations, "PropagatingVgws": [], "Tags": tags_or_none(tags)}


_FILTERS = {
    "route-table-id": lambda t: t["RouteTableId"],
    "vpc-id": lambda t: t["VpcId"],
    "owner-id": lambda t: t["OwnerId"],
    "association.main": lambda t: [a["Main"] for a in t["Associations"]],
    "association.route-table-association-id": lambda t: [a["RouteTableAssociationId"] for a in t["Associations"]],
    "association.route-table-id": lambda t: [a["RouteTableId"] for a in t["Associations"]],
    "association.subnet-id": lambda t: [a.get("SubnetId") for a in t["Associations"]],
    "association.gateway-id": lambda t: [a.get("GatewayId") for a in t["Associations"]],
    "route.destination-cidr-block": lambda t: [r["DestinationCidrBlock"] for r in t["Routes"]],
    "route.gateway-id": lambda t: [r.get("GatewayId") for r in t["Routes"]],
    "route.instance-id": lambda t: [r.get("InstanceId") for r in t["Routes"]],
    "route.network-interface-id": lambda t: [r.get("NetworkInterfaceId") for r in t["Routes"]],
    "route.origin": lambda t: [r["Origin"] for r in t["Routes"]],
    "route.state": lambda t: [r["State"] for r in t["Routes"]],
    "route.destination-ipv6-cidr-block": lambda t: None,
    "route.destination-prefix-list-id": lambda t: None,
    "route.nat-gateway-id": lambda t: None,
    "route.transit-gateway-id": lambda t: None,
    "route.vpc-peering-connection-id": lambda t: None,
    "route.egress-only-internet-gateway-id": lambda t: None,
}


async def describe_route_tables(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    rows = await owned_resources(ctx, "net_route_tables", "route_table_id", params.get("RouteTableIds"),
                                 InvalidRouteTableIDNotFound, "routeTable")
    db = ctx.app.db
    tags = await tag_store.tags_of(db, account_of(ctx), [r["route_table_id"] for r in rows])
    items = [await render_table(db, r, tags[r["route_table_id"]]) for r in rows]
    page, token = filter_and_paginate(items, params, _FILTERS, tags, "RouteTableId", maximum=100)
    return {"RouteTables": page, "NextToken": token}


async def create_route_table(ctx: Any, params: dict) -> dict:
    vpc = await owned_vpc(ctx, params.get("VpcId"))
    tags = creation_tags(params, "route-table")
    check_dry_run(params)
    table_id = ids.new_id("rtb")
    async with ctx.app.db.transaction() as tx:
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM net_route_tables WHERE vpc_id = ?", (vpc["vpc_id"],))
        if count["n"] >= MAX_TABLES:
            raise RouteTableLimitExceeded("The maximum number of route tables has been reached.")
        await tx.execute("INSERT INTO net_route_tables (route_table_id, account_id, region, vpc_id,"
                         " main_association_id, created_us) VALUES (?, ?, ?, ?, NULL, ?)",
                         (table_id, account_of(ctx), ctx.region, vpc["vpc_id"], now_us(ctx)))
        await write_creation_tags(tx, ctx, table_id, "route-table", tags)
        row = await tx.fetchone("SELECT * FROM net_route_tables WHERE route_table_id = ?", (table_id,))
    return {"RouteTable": await render_table(ctx.app.db, row, tags), "ClientToken": params.get("ClientToken")}


async def delete_route_table(ctx: Any, params: dict) -> dict:
    row = await owned_table(ctx, params.get("RouteTableId"))
    check_dry_run(params)
    table_id = row["route_table_id"]
    async with ctx.app.db.transaction() as tx:
        if row["main_association_id"] or await tx.fetchone(
                "SELECT 1 FROM net_route_table_associations WHERE route_table_id = ?", (table_id,)):
            raise DependencyViolation(f"The routeTable '{table_id}' has dependencies and cannot be deleted.")
        await tx.execute("DELETE FROM net_routes WHERE route_table_id = ?", (table_id,))
        await tx.execute("DELETE FROM net_route_tables WHERE route_table_id = ?", (table_id,))
        await delete_tags(tx, [table_id])
    return {}


# -- routes -------------------------------------------------------------------------------------------

async def _target(ctx: Any, params: dict, table: Any) -> dict[str, str | None]:
    for name in UNSUPPORTED_TARGETS:
        if params.get(name):
            raise InvalidParameterValue(f"Nimbo's route tables do not offer {name} "
                                        f"(targets: internet gateways, network interfaces, instances)")
    chosen = {k: params.get(k) for k in ("GatewayId", "NetworkInterfaceId", "InstanceId") if params.get(k)}
    if len(chosen) != 1:
        raise MissingParameter("The request must contain exactly one of gatewayId, networkInterfaceId, instanceId")
    db, account = ctx.app.db, account_of(ctx)
    if "GatewayId" in chosen:
        gateway_id = chosen["GatewayId"]
        gateway = await db.fetchone("SELECT * FROM net_internet_gateways WHERE internet_gateway_id = ? AND"
                                    " account_id = ? AND region = ?", (gateway_id, account, ctx.region))
        if gateway is None:
            raise InvalidGatewayIDNotFound(f"The gateway ID '{gateway_id}' does not exist")
        if gateway["vpc_id"] != table["vpc_id"]:
            raise InvalidParameterValue(f"route table {table['route_table_id']} and network gateway {gateway_id} "
                                        f"belong to different networks")
        return {"gateway_id": gateway_id, "network_interface_id": None, "instance_id": None}
    if "NetworkInterfaceId" in chosen:
        eni_id = chosen["NetworkInterfaceId"]
        eni = await db.fetchone("SELECT * FROM net_interfaces WHERE network_interface_id = ? AND account_id = ?"
                                " AND region = ?", (eni_id, account, ctx.region))
        if eni is None:
            raise InvalidNetworkInterfaceIDNotFound(f"The networkInterface ID '{eni_id}' does not exist")
        if eni["vpc_id"] != table["vpc_id"]:
            raise InvalidParameterValue(f"route table {table['route_table_id']} and interface {eni_id} belong to "
                                        f"different networks")
        return {"gateway_id": None, "network_interface_id": eni_id, "instance_id": None}
    instance_id = chosen["InstanceId"]
    instance = await db.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ? AND account_id = ? AND"
                                 " region = ? AND state != 'terminated'", (instance_id, account, ctx.region))
    if instance is None:
        raise InvalidInstanceIDNotFound(f"The instance ID '{instance_id}' does not exist")
    if instance["vpc_id"] != table["vpc_id"]:
        raise InvalidParameterValue(f"route table {table['route_table_id']} and instance {instance_id} belong to "
                                    f"different networks")
    count = await db.fetchone("SELECT COUNT(*) AS n FROM net_interfaces WHERE instance_id = ?", (instance_id,))
    if count["n"] > 1:
        raise InvalidParameterValue(f"There are multiple interfaces attached to instance '{instance_id}'. "
                                    f"Please specify an interface ID for the operation instead.")
    return {"gateway_id": None, "network_interface_id": None, "instance_id": instance_id}


async def _destination(ctx: Any, params: dict, table: Any, target: dict) -> str:
    if params.get("DestinationIpv6CidrBlock") or params.get("DestinationPrefixListId"):
        raise InvalidParameterValue("Nimbo's route tables route IPv4 CIDR blocks only")
    if not params.get("DestinationCidrBlock"):
        raise MissingParameter("The request must contain the parameter destinationCidrBlock")
    destination = parse_cidr(params["DestinationCidrBlock"], "destinationCidrBlock")
    vpc = await ctx.app.db.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ?", (table["vpc_id"],))
    for cidr in await vpc_cidrs(ctx.app.db, vpc):
        block = ipaddress.ip_network(cidr)
        if destination == block:
            raise InvalidParameterValue(f"The destination CIDR block {destination} is equal to or more specific "
                                        f"than one of this VPC's CIDR blocks. This route can target only an "
                                        f"interface or an instance.") if target["gateway_id"] else \
                InvalidParameterValue(f"cannot create a more specific route for {destination} than local route "
                                      f"{cidr} in route table {table['route_table_id']}")
        if destination.subnet_of(block) and target["gateway_id"]:
            raise InvalidParameterValue(f"The destination CIDR block {destination} is equal to or more specific "
                                        f"than one of this VPC's CIDR blocks. This route can target only an "
                                        f"interface or an instance.")
    return str(destination)


async def create_route(ctx: Any, params: dict) -> dict:
    table = await owned_table(ctx, params.get("RouteTableId"))
    target = await _target(ctx, params, table)
    destination = await _destination(ctx, params, table, target)
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        existing = await tx.fetchone("SELECT 1 FROM net_routes WHERE route_table_id = ? AND destination = ?",
                                     (table["route_table_id"], destination))
        if existing:
            raise RouteAlreadyExists(f"The route identified by {destination} already exists.")
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM net_routes WHERE route_table_id = ?",
                                  (table["route_table_id"],))
        if count["n"] >= MAX_ROUTES:
            raise RouteLimitExceeded("The maximum number of routes has been reached.")
        await tx.execute("INSERT INTO net_routes (route_table_id, destination, gateway_id, network_interface_id,"
                         " instance_id, origin) VALUES (?, ?, ?, ?, ?, 'CreateRoute')",
                         (table["route_table_id"], destination, target["gateway_id"],
                          target["network_interface_id"], target["instance_id"]))
        await bump_generation(tx)
    changed(ctx)
    return {"Return": True}


async def _existing_route(ctx: Any, params: dict, table: Any) -> str:
    if params.get("DestinationIpv6CidrBlock") or params.get("DestinationPrefixListId"):
        raise InvalidParameterValue("Nimbo's route tables route IPv4 CIDR blocks only")
    if not params.get("DestinationCidrBlock"):
        raise MissingParameter("The request must contain the parameter destinationCidrBlock")
    destination = str(parse_cidr(params["DestinationCidrBlock"], "destinationCidrBlock"))
    vpc = await ctx.app.db.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ?", (table["vpc_id"],))
    if destination in await vpc_cidrs(ctx.app.db, vpc):
        raise InvalidParameterValue(f"cannot remove local route {destination} in route table "
                                    f"{table['route_table_id']}")
    row = await ctx.app.db.fetchone("SELECT 1 FROM net_routes WHERE route_table_id = ? AND destination = ?",
                                    (table["route_table_id"], destination))
    if row is None:
        raise InvalidRouteNotFound(f"no route with destination-cidr-block {destination} in route table "
                                   f"{table['route_table_id']}")
    return destination


async def replace_route(ctx: Any, params: dict) -> dict:
    table = await owned_table(ctx, params.get("RouteTableId"))
    if params.get("LocalTarget"):
        raise InvalidParameterValue("The local route of a VPC CIDR block cannot be replaced in Nimbo")
    destination = await _existing_route(ctx, params, table)
    target = await _target(ctx, params, table)
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE net_routes SET gateway_id = ?, network_interface_id = ?, instance_id = ?,"
                         " origin = 'CreateRoute' WHERE route_table_id = ? AND destination = ?",
                         (target["gateway_id"], target["network_interface_id"], target["instance_id"],
                          table["route_table_id"], destination))
        await bump_generation(tx)
    changed(ctx)
    return {}


async def delete_route(ctx: Any, params: dict) -> dict:
    table = await owned_table(ctx, params.get("RouteTableId"))
    destination = await _existing_route(ctx, params, table)
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("DELETE FROM net_routes WHERE route_table_id = ? AND destination = ?",
                         (table["route_table_id"], destination))
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- associations -------------------------------------------------------------------------------------

async def associate_route_table(ctx: Any, params: dict) -> dict:
    if params.get("GatewayId") or params.get("PublicIpv4Pool"):
        raise InvalidParameterValue("Nimbo associates route tables with subnets only")
    table = await owned_table(ctx, params.get("RouteTableId"))
    subnet = await owned_subnet(ctx, params.get("SubnetId"))
    if subnet["vpc_id"] != table["vpc_id"]:
        raise InvalidParameterValue(f"route table {table['route_table_id']} and subnet {subnet['subnet_id']} "
                                    f"belong to different networks")
    check_dry_run(params)
    association_id = ids.new_id("rtbassoc")
    async with ctx.app.db.transaction() as tx:
        current = await tx.fetchone("SELECT * FROM net_route_table_associations WHERE subnet_id = ?",
                                    (subnet["subnet_id"],))
        if current is not None:
            raise ResourceAlreadyAssociated(f"the specified association for route table {table['route_table_id']} "
                                            f"conflicts with an existing association")
        await tx.execute("INSERT INTO net_route_table_associations (association_id, route_table_id, subnet_id)"
                         " VALUES (?, ?, ?)", (association_id, table["route_table_id"], subnet["subnet_id"]))
        await bump_generation(tx)
    changed(ctx)
    return {"AssociationId": association_id, "AssociationState": {"State": "associated"}}


async def _owned_association(ctx: Any, association_id: Any) -> tuple[Any, Any]:
    """(association row or None for a main association, its table)."""
    if not association_id:
        raise MissingParameter("The request must contain the parameter associationId")
    await network_of(ctx)
    db, account = ctx.app.db, account_of(ctx)
    row = await db.fetchone(
        "SELECT a.*, t.account_id, t.region FROM net_route_table_associations a JOIN net_route_tables t ON"
        " t.route_table_id = a.route_table_id WHERE a.association_id = ?", (association_id,))
    if row is not None and row["account_id"] == account and row["region"] == ctx.region:
        table = await db.fetchone("SELECT * FROM net_route_tables WHERE route_table_id = ?", (row["route_table_id"],))
        return row, table
    main = await db.fetchone("SELECT * FROM net_route_tables WHERE main_association_id = ? AND account_id = ? AND"
                             " region = ?", (association_id, account, ctx.region))
    if main is not None:
        return None, main
    raise InvalidAssociationIDNotFound(f"The association ID '{association_id}' does not exist")


async def disassociate_route_table(ctx: Any, params: dict) -> dict:
    row, table = await _owned_association(ctx, params.get("AssociationId"))
    if row is None:
        raise InvalidParameterValue(f"cannot disassociate the main route table association "
                                    f"{params['AssociationId']}")
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("DELETE FROM net_route_table_associations WHERE association_id = ?",
                         (row["association_id"],))
        await bump_generation(tx)
    changed(ctx)
    return {}


async def replace_route_table_association(ctx: Any, params: dict) -> dict:
    row, old_table = await _owned_association(ctx, params.get("AssociationId"))
    table = await owned_table(ctx, params.get("RouteTableId"))
    if table["vpc_id"] != old_table["vpc_id"]:
        raise InvalidParameterValue(f"route table {table['route_table_id']} and association "
                                    f"{params['AssociationId']} belong to different networks")
    check_dry_run(params)
    new_id = ids.new_id("rtbassoc")
    async with ctx.app.db.transaction() as tx:
        if row is None:   # the main association moves to the new table
            await tx.execute("UPDATE net_route_tables SET main_association_id = NULL WHERE route_table_id = ?",
                             (old_table["route_table_id"],))
            await tx.execute("UPDATE net_route_tables SET main_association_id = ? WHERE route_table_id = ?",
                             (new_id, table["route_table_id"]))
        else:
            await tx.execute("DELETE FROM net_route_table_associations WHERE association_id = ?",
                             (row["association_id"],))
            await tx.execute("INSERT INTO net_route_table_associations (association_id, route_table_id, subnet_id)"
                             " VALUES (?, ?, ?)", (new_id, table["route_table_id"], row["subnet_id"]))
        await bump_generation(tx)
    changed(ctx)
    return {"NewAssociationId": new_id, "AssociationState": {"State": "associated"}}


async def table_of_subnet(conn: Any, subnet: Any) -> Any | None:
    """The route table a subnet uses: its explicit association, else its VPC's main table."""
    row = await conn.fetchone(
        "SELECT t.* FROM net_route_table_associations a JOIN net_route_tables t ON t.route_table_id ="
        " a.route_table_id WHERE a.subnet_id = ?", (subnet["subnet_id"],))
    if row is not None:
        return row
    return await conn.fetchone("SELECT * FROM net_route_tables WHERE vpc_id = ? AND main_association_id IS NOT NULL",
                               (subnet["vpc_id"],))
