"""Network interfaces (ENIs): Create/Delete/Describe/Attach/DetachNetworkInterface,
Describe/ModifyNetworkInterfaceAttribute, Assign/UnassignPrivateIpAddresses.

An interface lives in one subnet, holds a primary private address and maybe secondary ones (rows
of ``net_interface_addresses``, unique per subnet), a MAC, up to five security groups, and is
attached to at most one instance at a device index. Every instance has a primary interface
(device 0, made by RunInstances, deleted with the instance). The data path gives each attached
interface of a running instance a tap; an interface attached to (detached from) a running
instance is hot-plugged into (out of) its guest where the data path is on
(``ec2_api.interface_hotplug``), else it takes effect at the instance's next start.
"""
from __future__ import annotations

import ipaddress
import secrets
import sqlite3
from typing import Any

from ec2_api import ids, interface_hotplug, tag_store
from ec2_api.common import account_of, from_us, now_us
from ec2_api.errors import (IncorrectInstanceState, InvalidInstanceIDNotFound, InvalidParameterCombination,
                            InvalidParameterValue, MissingParameter, OperationNotPermitted, check_dry_run,
                            ec2_error)
from ec2_api.filters import filter_and_paginate
from ec2_api.imds import hostname_of
from ec2_api.network_common import (attribute_bool, changed, creation_tags, delete_tags,
                                    write_creation_tags)
from ec2_api.regions import zone_id
from ec2_api.vpc import (allocate_addresses, bump_generation, network_of, owned_resource, owned_resources,
                         owned_subnet, reserved, resolve_security_groups)

InvalidNetworkInterfaceIDNotFound = ec2_error("InvalidNetworkInterfaceID.NotFound")
InvalidNetworkInterfaceIdMalformed = ec2_error("InvalidNetworkInterfaceId.Malformed")
InvalidNetworkInterfaceInUse = ec2_error("InvalidNetworkInterface.InUse")
InvalidAttachmentIDNotFound = ec2_error("InvalidAttachmentID.NotFound")
InvalidIPAddressInUse = ec2_error("InvalidIPAddress.InUse")
PrivateIpAddressLimitExceeded = ec2_error("PrivateIpAddressLimitExceeded")
AttachmentLimitExceeded = ec2_error("AttachmentLimitExceeded")
MAX_ADDRESSES = 30        # private IPv4 addresses per interface
MAX_INTERFACES = 8        # interfaces per instance


def new_mac() -> str:
    return "0e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def public_dns(ip: str | None, region: str) -> str:
    if not ip:
        return ""
    host = f"ec2-{ip.replace('.', '-')}"
    return f"{host}.compute-1.amazonaws.com" if region == "us-east-1" else f"{host}.{region}.compute.amazonaws.com"


# -- rows -------------------------------------------------------------------------------------------

async def insert_interface(tx: Any, *, eni_id: str, account_id: str, region: str, subnet: Any, mac: str,
                           addresses: list[str], group_ids: list[str], at_us: int, description: str = "",
                           instance_id: str | None = None, device_index: int | None = None,
                           attachment_id: str | None = None, delete_on_termination: bool = False) -> None:
    """One interface with its addresses (primary first) and groups; a taken address raises
    InvalidIPAddress.InUse (the transaction then rolls back)."""
    await tx.execute(
        "INSERT INTO net_interfaces (network_interface_id, account_id, region, vpc_id, subnet_id, availability_zone,"
        " mac, description, instance_id, device_index, attachment_id, attach_time_us, delete_on_termination,"
        " created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (eni_id, account_id, region, subnet["vpc_id"], subnet["subnet_id"], subnet["availability_zone"], mac,
         description, instance_id, device_index, attachment_id, at_us if instance_id else None,
         int(delete_on_termination), at_us))
    for index, address in enumerate(addresses):
        try:
            await tx.execute("INSERT INTO net_interface_addresses (subnet_id, private_ip, network_interface_id,"
                             " is_primary) VALUES (?, ?, ?, ?)", (subnet["subnet_id"], address, eni_id, int(index == 0)))
        except sqlite3.IntegrityError as exc:
            raise InvalidIPAddressInUse(f"The specified address {address} is already in use.") from exc
    for position, group_id in enumerate(group_ids):
        await tx.execute("INSERT INTO net_interface_groups (network_interface_id, group_id, position)"
                         " VALUES (?, ?, ?)", (eni_id, group_id, position))


async def remove_interface(tx: Any, eni_id: str) -> None:
    """Forget an interface: its addresses, groups, tags; its Elastic IP is disassociated and an
    auto-assigned public address released."""
    await tx.execute("DELETE FROM net_addresses WHERE network_interface_id = ? AND kind = 'auto'", (eni_id,))
    await tx.execute("UPDATE net_addresses SET association_id = NULL, network_interface_id = NULL, private_ip = NULL"
                     " WHERE network_interface_id = ?", (eni_id,))
    await tx.execute("DELETE FROM net_interface_addresses WHERE network_interface_id = ?", (eni_id,))
    await tx.execute("DELETE FROM net_interface_groups WHERE network_interface_id = ?", (eni_id,))
    await tx.execute("DELETE FROM net_interfaces WHERE network_interface_id = ?", (eni_id,))
    await delete_tags(tx, [eni_id])


def check_addresses_in(subnet: Any, addresses: list[str]) -> None:
    network = ipaddress.ip_network(subnet["cidr_block"])
    for address in addresses:
        try:
            inside = ipaddress.ip_address(address) in network
        except ValueError:
            raise InvalidParameterValue(f"Invalid private IP address {address}") from None
        if not inside:
            raise InvalidParameterValue(f"Address {address} does not fall within the subnet's address range")
        if reserved(subnet["cidr_block"], address):
            raise InvalidParameterValue(f"Address {address} is in subnet's reserved address range")


async def owned_interface(ctx: Any, eni_id: Any) -> Any:
    return await owned_resource(ctx, "net_interfaces", "network_interface_id", eni_id, parameter="networkInterfaceId",
                                prefix="eni", malformed=InvalidNetworkInterfaceIdMalformed,
                                not_found_error=InvalidNetworkInterfaceIDNotFound, noun="networkInterface")


async def sync_instance_data(tx: Any, eni_id: str) -> None:
    """Keep an instance's own copy of its primary interface's groups and SourceDestCheck (what
    DescribeInstances, DescribeInstanceAttribute and the metadata service show)."""
    from ec2_api.instance_store import update_data  # noqa: PLC0415
    row = await tx.fetchone("SELECT * FROM net_interfaces WHERE network_interface_id = ?", (eni_id,))
    if row is None or not row["instance_id"] or row["device_index"] != 0:
        return
    groups = await tx.fetchall(
        "SELECT g.group_id, s.group_name FROM net_interface_groups g JOIN ec2_security_groups s ON"
        " s.group_id = g.group_id WHERE g.network_interface_id = ? ORDER BY g.position", (eni_id,))
    await update_data(tx, row["instance_id"],
                      security_groups=[{"GroupId": g["group_id"], "GroupName": g["group_name"]} for g in groups],
                      source_dest_check=bool(row["source_dest_check"]))


# -- rendering --------------------------------------------------------------------------------------

async def interface_details(db: Any, rows: list[Any]) -> dict[str, dict]:
    """{eni id: {"addresses": [...], "groups": [...], "public": {private ip: address row}}}."""
    out: dict[str, dict] = {r["network_interface_id"]: {"addresses": [], "groups": [], "public": {}} for r in rows}
    if not out:
        return out
    marks = ",".join("?" * len(out))
    keys = list(out)
    for row in await db.fetchall(f"SELECT * FROM net_interface_addresses WHERE network_interface_id IN ({marks})"
                                 f" ORDER BY is_primary DESC, private_ip", keys):
        out[row["network_interface_id"]]["addresses"].append(row)
    for row in await db.fetchall(
            f"SELECT g.network_interface_id, g.group_id, s.group_name FROM net_interface_groups g JOIN"
            f" ec2_security_groups s ON s.group_id = g.group_id WHERE g.network_interface_id IN ({marks})"
            f" ORDER BY g.position", keys):
        out[row["network_interface_id"]]["groups"].append({"GroupId": row["group_id"], "GroupName": row["group_name"]})
    for row in await db.fetchall(f"SELECT * FROM net_addresses WHERE network_interface_id IN ({marks})", keys):
        out[row["network_interface_id"]]["public"][row["private_ip"]] = row
    return out


def association_of(address: Any | None, region: str, *, instance: bool = False) -> dict | None:
    if address is None:
        return None
    item = {"IpOwnerId": "amazon" if address["kind"] == "auto" else address["account_id"],
            "PublicDnsName": public_dns(address["public_ip"], region), "PublicIp": address["public_ip"]}
    if not instance and address["kind"] != "auto":
        item["AllocationId"] = address["allocation_id"]
        item["AssociationId"] = address["association_id"]
    return item


def render_interface(row: Any, details: dict, tags: dict[str, str], config: Any) -> dict:
    region = row["region"]
    primary = details["addresses"][0]["private_ip"] if details["addresses"] else None
    zones = list(config.regions.get(region) or [])
    item: dict[str, Any] = {
        "NetworkInterfaceId": row["network_interface_id"], "SubnetId": row["subnet_id"], "VpcId": row["vpc_id"],
        "AvailabilityZone": row["availability_zone"], "Description": row["description"],
        "Groups": details["groups"], "InterfaceType": row["interface_type"], "Ipv6Addresses": [],
        "MacAddress": row["mac"], "OwnerId": row["account_id"], "PrivateIpAddress": primary,
        "PrivateDnsName": hostname_of(primary, region),
        "PrivateIpAddresses": [{
            "Primary": bool(a["is_primary"]), "PrivateIpAddress": a["private_ip"],
            "PrivateDnsName": hostname_of(a["private_ip"], region),
            **({"Association": association_of(details["public"].get(a["private_ip"]), region)}
               if details["public"].get(a["private_ip"]) else {})} for a in details["addresses"]],
        "RequesterManaged": False, "SourceDestCheck": bool(row["source_dest_check"]),
        "Status": "in-use" if row["instance_id"] else "available", "TagSet": tag_store.tag_list(tags),
        "DenyAllIgwTraffic": False, "Ipv6Native": False, "Ipv4Prefixes": [], "Ipv6Prefixes": [],
    }
    if row["availability_zone"] in zones:
        item["AvailabilityZoneId"] = zone_id(region, zones.index(row["availability_zone"]))
    public = details["public"].get(primary)
    if public is not None:
        item["Association"] = association_of(public, region)
        item["PublicDnsName"] = public_dns(public["public_ip"], region)
    if row["instance_id"]:
        item["Attachment"] = {
            "AttachTime": from_us(row["attach_time_us"]), "AttachmentId": row["attachment_id"],
            "DeleteOnTermination": bool(row["delete_on_termination"]), "DeviceIndex": row["device_index"],
            "NetworkCardIndex": 0, "InstanceId": row["instance_id"], "InstanceOwnerId": row["account_id"],
            "Status": "attached"}
    return item


_FILTERS = {
    "network-interface-id": lambda n: n["NetworkInterfaceId"],
    "subnet-id": lambda n: n["SubnetId"],
    "vpc-id": lambda n: n["VpcId"],
    "availability-zone": lambda n: n["AvailabilityZone"],
    "description": lambda n: n["Description"],
    "group-id": lambda n: [g["GroupId"] for g in n["Groups"]],
    "group-name": lambda n: [g["GroupName"] for g in n["Groups"]],
    "interface-type": lambda n: n["InterfaceType"],
    "mac-address": lambda n: n["MacAddress"],
    "owner-id": lambda n: n["OwnerId"],
    "private-ip-address": lambda n: [a["PrivateIpAddress"] for a in n["PrivateIpAddresses"]],
    "private-dns-name": lambda n: n["PrivateDnsName"],
    "requester-managed": lambda n: n["RequesterManaged"],
    "requester-id": lambda n: n.get("RequesterId"),
    "source-dest-check": lambda n: n["SourceDestCheck"],
    "status": lambda n: n["Status"],
    "addresses.private-ip-address": lambda n: [a["PrivateIpAddress"] for a in n["PrivateIpAddresses"]],
    "addresses.primary": lambda n: [a["Primary"] for a in n["PrivateIpAddresses"]],
    "addresses.association.public-ip": lambda n: [a["Association"]["PublicIp"] for a in n["PrivateIpAddresses"]
                                                  if a.get("Association")],
    "addresses.association.owner-id": lambda n: [a["Association"]["IpOwnerId"] for a in n["PrivateIpAddresses"]
                                                 if a.get("Association")],
    "association.public-ip": lambda n: (n.get("Association") or {}).get("PublicIp"),
    "association.allocation-id": lambda n: (n.get("Association") or {}).get("AllocationId"),
    "association.association-id": lambda n: (n.get("Association") or {}).get("AssociationId"),
    "association.ip-owner-id": lambda n: (n.get("Association") or {}).get("IpOwnerId"),
    "association.public-dns-name": lambda n: (n.get("Association") or {}).get("PublicDnsName"),
    "attachment.attachment-id": lambda n: (n.get("Attachment") or {}).get("AttachmentId"),
    "attachment.instance-id": lambda n: (n.get("Attachment") or {}).get("InstanceId"),
    "attachment.instance-owner-id": lambda n: (n.get("Attachment") or {}).get("InstanceOwnerId"),
    "attachment.device-index": lambda n: (n.get("Attachment") or {}).get("DeviceIndex"),
    "attachment.status": lambda n: (n.get("Attachment") or {}).get("Status"),
    "attachment.delete-on-termination": lambda n: (n.get("Attachment") or {}).get("DeleteOnTermination"),
    "attachment.attach-time": lambda n: (n["Attachment"]["AttachTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
                                         if n.get("Attachment") else None),
}


async def describe_network_interfaces(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    if params.get("NetworkInterfaceIds") and params.get("MaxResults") is not None:
        raise InvalidParameterCombination("The parameter NetworkInterfaceIds cannot be used with the parameter "
                                          "MaxResults")
    rows = await owned_resources(ctx, "net_interfaces", "network_interface_id", params.get("NetworkInterfaceIds"),
                                 InvalidNetworkInterfaceIDNotFound, "networkInterface")
    db = ctx.app.db
    details = await interface_details(db, rows)
    tags = await tag_store.tags_of(db, account_of(ctx), [r["network_interface_id"] for r in rows])
    items = [render_interface(r, details[r["network_interface_id"]], tags[r["network_interface_id"]],
                              ctx.app.config) for r in rows]
    page, token = filter_and_paginate(items, params, _FILTERS, tags, "NetworkInterfaceId")
    return {"NetworkInterfaces": page, "NextToken": token}


async def _render_one(ctx: Any, eni_id: str) -> dict:
    row = await ctx.app.db.fetchone("SELECT * FROM net_interfaces WHERE network_interface_id = ?", (eni_id,))
    details = await interface_details(ctx.app.db, [row])
    tags = await tag_store.tags_of(ctx.app.db, row["account_id"], [eni_id])
    return render_interface(row, details[eni_id], tags[eni_id], ctx.app.config)


# -- Create / Delete ------------------------------------------------------------------------------------

def requested_addresses(params: dict) -> tuple[list[str], int]:
    """(explicit addresses, primary first; how many more to pick) of a create request."""
    explicit: list[str] = []
    primary = params.get("PrivateIpAddress")
    listed = params.get("PrivateIpAddresses") or []
    primaries = [a.get("PrivateIpAddress") for a in listed if a.get("Primary")]
    if len(primaries) > 1 or (primary and primaries and primaries[0] != primary):
        raise InvalidParameterValue("Only one primary private IP address can be specified")
    primary = primary or (primaries[0] if primaries else None)
    if primary:
        explicit.append(primary)
    explicit += [a.get("PrivateIpAddress") for a in listed if a.get("PrivateIpAddress") not in explicit]
    count = params.get("SecondaryPrivateIpAddressCount") or 0
    if count < 0:
        raise InvalidParameterValue("SecondaryPrivateIpAddressCount must be positive")
    extra = count + (0 if explicit else 1)
    if len(explicit) + extra > MAX_ADDRESSES:
        raise PrivateIpAddressLimitExceeded("Number of private addresses will exceed limit.")
    return explicit, extra


async def create_network_interface(ctx: Any, params: dict) -> dict:
    for name in ("Ipv6Addresses", "Ipv6AddressCount", "Ipv4Prefixes", "Ipv4PrefixCount", "Ipv6Prefixes",
                 "Ipv6PrefixCount", "EnablePrimaryIpv6"):
        if params.get(name):
            raise InvalidParameterValue(f"Nimbo's interfaces are IPv4 only, without prefixes ({name})")
    if params.get("InterfaceType") not in (None, "interface"):
        raise InvalidParameterValue(f"Value ({params['InterfaceType']}) for parameter interfaceType is invalid.")
    subnet = await owned_subnet(ctx, params.get("SubnetId"))
    explicit, extra = requested_addresses(params)
    check_addresses_in(subnet, explicit)
    groups = await resolve_security_groups(ctx, None, list(params.get("Groups") or []), [], vpc_id=subnet["vpc_id"])
    tags = creation_tags(params, "network-interface")
    description = params.get("Description") or ""
    check_dry_run(params)
    eni_id = ids.new_id("eni")
    async with ctx.app.db.transaction() as tx:
        addresses = explicit + (await allocate_addresses(tx, subnet, extra, exclude=set(explicit)) if extra else [])
        await insert_interface(tx, eni_id=eni_id, account_id=account_of(ctx), region=ctx.region, subnet=subnet,
                               mac=new_mac(), addresses=addresses, group_ids=[g["GroupId"] for g in groups],
                               at_us=now_us(ctx), description=description)
        await write_creation_tags(tx, ctx, eni_id, "network-interface", tags)
        await bump_generation(tx)
    changed(ctx)
    return {"NetworkInterface": await _render_one(ctx, eni_id), "ClientToken": params.get("ClientToken")}


async def delete_network_interface(ctx: Any, params: dict) -> dict:
    row = await owned_interface(ctx, params.get("NetworkInterfaceId"))
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        current = await tx.fetchone("SELECT instance_id FROM net_interfaces WHERE network_interface_id = ?",
                                    (row["network_interface_id"],))
        if current is None:
            raise InvalidNetworkInterfaceIDNotFound(
                f"The networkInterface ID '{row['network_interface_id']}' does not exist")
        if current["instance_id"]:
            raise InvalidNetworkInterfaceInUse(f"The network interface '{row['network_interface_id']}' is currently "
                                               f"in use.")
        await remove_interface(tx, row["network_interface_id"])
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- Attach / Detach -------------------------------------------------------------------------------------

async def attach_network_interface(ctx: Any, params: dict) -> dict:
    row = await owned_interface(ctx, params.get("NetworkInterfaceId"))
    instance_id, index = params.get("InstanceId"), params.get("DeviceIndex")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter instanceId")
    if index is None:
        raise MissingParameter("The request must contain the parameter deviceIndex")
    if params.get("NetworkCardIndex") not in (None, 0):
        raise InvalidParameterValue("Nimbo's instances have one network card (index 0)")
    if not 1 <= index < MAX_INTERFACES:
        raise InvalidParameterValue(f"Invalid value '{index}' for deviceIndex: 1 to {MAX_INTERFACES - 1}")
    db = ctx.app.db
    instance = await db.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ? AND account_id = ? AND region = ?"
                                 " AND state != 'terminated'", (instance_id, account_of(ctx), ctx.region))
    if instance is None:
        raise InvalidInstanceIDNotFound(f"The instance ID '{instance_id}' does not exist")
    if instance["state"] not in ("running", "stopped"):
        raise IncorrectInstanceState(f"The instance '{instance_id}' is not in a valid state for this operation.")
    if row["instance_id"]:
        raise InvalidNetworkInterfaceInUse(f"Interface: [{row['network_interface_id']}] in use.")
    if row["availability_zone"] != instance["availability_zone"]:
        raise InvalidParameterCombination("You may not attach a network interface to an instance if they are not in "
                                          "the same availability zone")
    if row["vpc_id"] != instance["vpc_id"]:
        raise InvalidParameterCombination("You may not attach a network interface to an instance in another VPC")
    check_dry_run(params)
    attachment_id = ids.new_id("eni-attach")
    async with db.transaction() as tx:
        if await tx.fetchone("SELECT 1 FROM net_interfaces WHERE instance_id = ? AND device_index = ?",
                             (instance_id, index)):
            raise InvalidParameterValue(f"Instance '{instance_id}' already has an interface attached at device index "
                                        f"'{index}'.")
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM net_interfaces WHERE instance_id = ?", (instance_id,))
        if count["n"] >= MAX_INTERFACES:
            raise AttachmentLimitExceeded(f"Interface count {count['n'] + 1} exceeds the limit for this instance")
        changed_rows = await tx.execute(
            "UPDATE net_interfaces SET instance_id = ?, device_index = ?, attachment_id = ?, attach_time_us = ?,"
            " delete_on_termination = 0 WHERE network_interface_id = ? AND instance_id IS NULL",
            (instance_id, index, attachment_id, now_us(ctx), row["network_interface_id"]))
        if not changed_rows:
            raise InvalidNetworkInterfaceInUse(f"Interface: [{row['network_interface_id']}] in use.")
        await bump_generation(tx)
    changed(ctx)
    if instance["state"] == "running":
        await interface_hotplug.plug(getattr(ctx, "state", None), instance_id, row["network_interface_id"])
    return {"AttachmentId": attachment_id, "NetworkCardIndex": 0}


async def detach_network_interface(ctx: Any, params: dict) -> dict:
    attachment_id = params.get("AttachmentId")
    if not attachment_id:
        raise MissingParameter("The request must contain the parameter attachmentId")
    await network_of(ctx)
    db = ctx.app.db
    row = await db.fetchone("SELECT * FROM net_interfaces WHERE attachment_id = ? AND account_id = ? AND region = ?"
                            " AND instance_id IS NOT NULL", (attachment_id, account_of(ctx), ctx.region))
    if row is None:
        raise InvalidAttachmentIDNotFound(f"The network interface attachment ID '{attachment_id}' does not exist")
    if row["device_index"] == 0:
        raise OperationNotPermitted(f"The network interface at device index 0 cannot be detached.")
    check_dry_run(params)
    await interface_hotplug.unplug(getattr(ctx, "state", None), row["instance_id"], row["network_interface_id"])
    async with db.transaction() as tx:
        await tx.execute("UPDATE net_interfaces SET instance_id = NULL, device_index = NULL, attachment_id = NULL,"
                         " attach_time_us = NULL, delete_on_termination = 0 WHERE network_interface_id = ?",
                         (row["network_interface_id"],))
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- attributes -------------------------------------------------------------------------------------------

async def describe_network_interface_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_interface(ctx, params.get("NetworkInterfaceId"))
    attribute = params.get("Attribute")
    if attribute not in ("description", "groupSet", "sourceDestCheck", "attachment", "associatePublicIpAddress"):
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
    check_dry_run(params)
    item = await _render_one(ctx, row["network_interface_id"])
    out: dict[str, Any] = {"NetworkInterfaceId": row["network_interface_id"]}
    if attribute == "description":
        out["Description"] = {"Value": row["description"]}
    elif attribute == "groupSet":
        out["Groups"] = item["Groups"]
    elif attribute == "sourceDestCheck":
        out["SourceDestCheck"] = {"Value": bool(row["source_dest_check"])}
    elif attribute == "attachment":
        if item.get("Attachment"):
            out["Attachment"] = item["Attachment"]
    else:
        out["AssociatePublicIpAddress"] = bool(item.get("Association")) and item["Association"]["IpOwnerId"] == "amazon"
    return out


async def modify_network_interface_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_interface(ctx, params.get("NetworkInterfaceId"))
    eni_id = row["network_interface_id"]
    asked = [k for k in ("Description", "SourceDestCheck", "Groups", "Attachment", "AssociatePublicIpAddress")
             if params.get(k) is not None]
    if not asked:
        raise MissingParameter("The request must contain an attribute to modify")
    if len(asked) > 1:
        raise InvalidParameterCombination("Fields for multiple attribute types specified: " + ", ".join(asked))
    name = asked[0]
    db = ctx.app.db
    if name == "AssociatePublicIpAddress":
        raise InvalidParameterValue("Nimbo assigns public addresses at launch (subnet MapPublicIpOnLaunch or "
                                    "AssociatePublicIpAddress); use an Elastic IP (AssociateAddress) afterwards")
    statements: list[tuple[str, tuple]] = []
    if name == "Description":
        value = params["Description"].get("Value") if isinstance(params["Description"], dict) else params["Description"]
        statements.append(("UPDATE net_interfaces SET description = ? WHERE network_interface_id = ?",
                           (value or "", eni_id)))
    elif name == "SourceDestCheck":
        value = attribute_bool(params["SourceDestCheck"], "SourceDestCheck")
        statements.append(("UPDATE net_interfaces SET source_dest_check = ? WHERE network_interface_id = ?",
                           (int(bool(value)), eni_id)))
    elif name == "Groups":
        if not params["Groups"]:
            raise MissingParameter("The request must contain the parameter groupId")
        groups = await resolve_security_groups(ctx, None, list(params["Groups"]), [], vpc_id=row["vpc_id"])
        statements.append(("DELETE FROM net_interface_groups WHERE network_interface_id = ?", (eni_id,)))
        for position, group in enumerate(groups):
            statements.append(("INSERT INTO net_interface_groups (network_interface_id, group_id, position)"
                               " VALUES (?, ?, ?)", (eni_id, group["GroupId"], position)))
    else:
        attachment = params["Attachment"]
        if attachment.get("AttachmentId") != row["attachment_id"] or not row["instance_id"]:
            raise InvalidAttachmentIDNotFound(f"The network interface attachment ID "
                                              f"'{attachment.get('AttachmentId')}' does not exist")
        if attachment.get("DeleteOnTermination") is not None:
            statements.append(("UPDATE net_interfaces SET delete_on_termination = ? WHERE network_interface_id = ?",
                               (int(bool(attachment["DeleteOnTermination"])), eni_id)))
    check_dry_run(params)
    async with db.transaction() as tx:
        for sql, args in statements:
            await tx.execute(sql, args)
        await sync_instance_data(tx, eni_id)
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- secondary addresses ------------------------------------------------------------------------------

async def assign_private_ip_addresses(ctx: Any, params: dict) -> dict:
    if params.get("Ipv4Prefixes") or params.get("Ipv4PrefixCount"):
        raise InvalidParameterValue("Nimbo's interfaces do not take IPv4 prefixes")
    row = await owned_interface(ctx, params.get("NetworkInterfaceId"))
    wanted = [str(a) for a in params.get("PrivateIpAddresses") or []]
    count = params.get("SecondaryPrivateIpAddressCount") or 0
    if not wanted and not count:
        raise MissingParameter("The request must contain the parameter privateIpAddress or "
                               "secondaryPrivateIpAddressCount")
    if wanted and count:
        raise InvalidParameterCombination("Specify either privateIpAddress or secondaryPrivateIpAddressCount")
    subnet = await ctx.app.db.fetchone("SELECT * FROM ec2_subnets WHERE subnet_id = ?", (row["subnet_id"],))
    check_addresses_in(subnet, wanted)
    check_dry_run(params)
    eni_id = row["network_interface_id"]
    async with ctx.app.db.transaction() as tx:
        have = await tx.fetchall("SELECT private_ip FROM net_interface_addresses WHERE network_interface_id = ?",
                                 (eni_id,))
        if len(have) + len(wanted) + count > MAX_ADDRESSES:
            raise PrivateIpAddressLimitExceeded("Number of private addresses will exceed limit.")
        if wanted and params.get("AllowReassignment"):
            for address in wanted:
                await tx.execute("DELETE FROM net_interface_addresses WHERE subnet_id = ? AND private_ip = ? AND"
                                 " is_primary = 0 AND network_interface_id IN (SELECT network_interface_id FROM"
                                 " net_interfaces WHERE account_id = ?)", (row["subnet_id"], address, row["account_id"]))
        addresses = wanted or await allocate_addresses(tx, subnet, count)
        for address in addresses:
            if await tx.fetchone("SELECT 1 FROM ec2_instances WHERE subnet_id = ? AND private_ip = ?",
                                 (row["subnet_id"], address)):
                raise InvalidIPAddressInUse(f"The specified address {address} is already in use.")
            try:
                await tx.execute("INSERT INTO net_interface_addresses (subnet_id, private_ip, network_interface_id,"
                                 " is_primary) VALUES (?, ?, ?, 0)", (row["subnet_id"], address, eni_id))
            except sqlite3.IntegrityError as exc:
                raise InvalidIPAddressInUse(f"The specified address {address} is already in use.") from exc
        await bump_generation(tx)
    changed(ctx)
    return {"NetworkInterfaceId": eni_id, "AssignedPrivateIpAddresses": [{"PrivateIpAddress": a} for a in addresses]}


async def unassign_private_ip_addresses(ctx: Any, params: dict) -> dict:
    if params.get("Ipv4Prefixes"):
        raise InvalidParameterValue("Nimbo's interfaces do not take IPv4 prefixes")
    row = await owned_interface(ctx, params.get("NetworkInterfaceId"))
    wanted = [str(a) for a in params.get("PrivateIpAddresses") or []]
    if not wanted:
        raise MissingParameter("The request must contain the parameter privateIpAddress")
    check_dry_run(params)
    eni_id = row["network_interface_id"]
    async with ctx.app.db.transaction() as tx:
        rows = {r["private_ip"]: r for r in await tx.fetchall(
            "SELECT * FROM net_interface_addresses WHERE network_interface_id = ?", (eni_id,))}
        for address in wanted:
            if address not in rows:
                raise InvalidParameterValue(f"Some of the specified addresses are not assigned to interface {eni_id}")
            if rows[address]["is_primary"]:
                raise InvalidParameterValue(f"The primary private address {address} of interface {eni_id} cannot be "
                                            f"unassigned")
        for address in wanted:
            await tx.execute("DELETE FROM net_interface_addresses WHERE network_interface_id = ? AND private_ip = ?",
                             (eni_id, address))
            await tx.execute("UPDATE net_addresses SET association_id = NULL, network_interface_id = NULL,"
                             " private_ip = NULL WHERE network_interface_id = ? AND private_ip = ?", (eni_id, address))
        await bump_generation(tx)
    changed(ctx)
    return {}
