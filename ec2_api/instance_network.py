"""The network side of instances: RunInstances' interfaces (SubnetId, PrivateIpAddress,
SecurityGroupIds/SecurityGroups, NetworkInterfaces, AssociatePublicIpAddress), what
DescribeInstances shows of them (NetworkInterfaces, SecurityGroups, PublicIpAddress,
PublicDnsName, SourceDestCheck), ModifyInstanceAttribute groupSet/sourceDestCheck, and the
clean-up that follows instance state changes (``reconcile``: an instance's interfaces go with it
when it terminates, its auto-assigned public address when it stops).

``plan`` validates a launch before RunInstances' transaction; ``record`` writes the interfaces of
each instance inside it, so an instance and its interfaces are made together or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ec2_api import tag_store
from ec2_api.common import account_of, from_us
from ec2_api.errors import (InvalidParameterCombination, InvalidParameterValue, InvalidSubnetIDNotFound,
                            UnsupportedOperation, ec2_error)
from ec2_api.imds import hostname_of
from ec2_api.instance_store import data_of, update_data
from ec2_api.network_common import changed
from ec2_api.network_interfaces import (MAX_INTERFACES, check_addresses_in, insert_interface, interface_details,
                                        new_mac, owned_interface, public_dns, remove_interface, sync_instance_data)
from ec2_api.vpc import allocate_addresses, bump_generation, network_of, owned_subnet, resolve_security_groups

InvalidNetworkInterfaceInUse = ec2_error("InvalidNetworkInterface.InUse")


@dataclass
class _Vpc:
    vpc: Any


@dataclass
class Launch:
    network: _Vpc                    # .vpc: the VPC row (what RunInstances reads)
    subnet: Any
    address: str | None
    groups: list[dict]
    associate_public: bool
    primary: dict                    # the DeviceIndex 0 specification
    existing_primary: Any = None     # an existing interface given as DeviceIndex 0
    extras: list[dict] = field(default_factory=list)   # DeviceIndex >= 1: {"spec", "subnet", "existing"}


async def plan(ctx: Any, params: dict) -> Launch:
    """Validate the network part of a RunInstances request."""
    specs = list(params.get("NetworkInterfaces") or [])
    if specs and (params.get("SubnetId") or params.get("SecurityGroupIds") or params.get("SecurityGroups")):
        raise InvalidParameterCombination("Network interfaces and an instance-level subnet ID or security groups "
                                          "may not be specified on the same request")
    if specs and params.get("PrivateIpAddress"):
        raise InvalidParameterCombination("Network interfaces and an instance-level private IP address may not be "
                                          "specified on the same request")
    indexes = [s.get("DeviceIndex", 0 if len(specs) == 1 else None) for s in specs]
    if specs and (None in indexes or len(set(indexes)) != len(indexes) or 0 not in indexes
                  or max(indexes) >= MAX_INTERFACES):
        raise InvalidParameterValue("Each network interface needs its own DeviceIndex, one of them 0")
    for spec in specs:
        for name in ("Ipv6AddressCount", "Ipv6Addresses", "Ipv4Prefixes", "Ipv4PrefixCount", "PrimaryIpv6"):
            if spec.get(name):
                raise InvalidParameterValue(f"Nimbo's interfaces are IPv4 only, without prefixes ({name})")
        if spec.get("NetworkCardIndex") not in (None, 0):
            raise InvalidParameterValue("Nimbo's instances have one network card (index 0)")
    primary = next((s for s, i in zip(specs, indexes) if i == 0), {})
    if len(specs) > 1 and any(s.get("AssociatePublicIpAddress") for s in specs):
        raise InvalidParameterCombination("The associatePublicIPAddress parameter cannot be specified when launching "
                                          "with multiple network interfaces.")
    network = await network_of(ctx)
    many = (params.get("MaxCount") or 1) > 1
    existing = None
    if primary.get("NetworkInterfaceId"):
        if many:
            raise InvalidParameterCombination("An existing network interface can only be given to one instance")
        existing = await owned_interface(ctx, primary["NetworkInterfaceId"])
        if existing["instance_id"]:
            raise InvalidNetworkInterfaceInUse(f"Interface: [{existing['network_interface_id']}] in use.")
        subnet = await ctx.app.db.fetchone("SELECT * FROM ec2_subnets WHERE subnet_id = ?", (existing["subnet_id"],))
    else:
        subnet = await _subnet(ctx, params, primary, network)
    zone = (params.get("Placement") or {}).get("AvailabilityZone")
    if zone is not None and zone != subnet["availability_zone"]:
        raise InvalidParameterCombination(f"The specified Availability Zone ({zone}) does not match the subnet's "
                                          f"({subnet['availability_zone']})")
    vpc = await ctx.app.db.fetchone("SELECT * FROM ec2_vpcs WHERE vpc_id = ?", (subnet["vpc_id"],))
    address = None
    if existing is not None:
        row = await ctx.app.db.fetchone("SELECT private_ip FROM net_interface_addresses WHERE network_interface_id = ?"
                                        " AND is_primary = 1", (existing["network_interface_id"],))
        address = row["private_ip"] if row else None
        details = await interface_details(ctx.app.db, [existing])
        groups = details[existing["network_interface_id"]]["groups"]
    else:
        address = params.get("PrivateIpAddress") or primary.get("PrivateIpAddress") or next(
            (a.get("PrivateIpAddress") for a in primary.get("PrivateIpAddresses") or [] if a.get("Primary")), None)
        if address is not None:
            if many:
                raise InvalidParameterCombination("Cannot specify a private IP address when launching more than one "
                                                  "instance")
            check_addresses_in(subnet, [address])
        names = list(params.get("SecurityGroups") or [])
        if names and not vpc["is_default"]:
            raise InvalidParameterCombination("The parameter groupName cannot be used with the parameter subnet")
        group_ids = list(params.get("SecurityGroupIds") or []) + list(primary.get("Groups") or [])
        groups = await resolve_security_groups(ctx, None, group_ids, names, vpc_id=subnet["vpc_id"])
    from ec2_api.subnets import settings_of  # noqa: PLC0415
    mapped = (await settings_of(ctx.app.db, subnet))["map_public_ip_on_launch"]
    associate = primary.get("AssociatePublicIpAddress")
    if associate is None:
        associate = mapped and len(specs) <= 1 and existing is None
    elif associate:
        sync = getattr(ctx.state, "network", None)
        if sync is None or sync.data_path is None:
            from ec2_api.addresses import NO_DATA_PATH  # noqa: PLC0415
            raise UnsupportedOperation(NO_DATA_PATH)
    extras = []
    for spec, index in zip(specs, indexes):
        if index == 0:
            continue
        if spec.get("NetworkInterfaceId"):
            if many:
                raise InvalidParameterCombination("An existing network interface can only be given to one instance")
            eni = await owned_interface(ctx, spec["NetworkInterfaceId"])
            if eni["instance_id"]:
                raise InvalidNetworkInterfaceInUse(f"Interface: [{eni['network_interface_id']}] in use.")
            if eni["availability_zone"] != subnet["availability_zone"] or eni["vpc_id"] != subnet["vpc_id"]:
                raise InvalidParameterCombination("All network interfaces of an instance must be in the same VPC and "
                                                  "availability zone")
            extras.append({"spec": spec, "index": index, "existing": eni, "subnet": None, "groups": []})
            continue
        extra_subnet = await owned_subnet(ctx, spec.get("SubnetId")) if spec.get("SubnetId") else subnet
        if extra_subnet["availability_zone"] != subnet["availability_zone"] or \
                extra_subnet["vpc_id"] != subnet["vpc_id"]:
            raise InvalidParameterCombination("All network interfaces of an instance must be in the same VPC and "
                                              "availability zone")
        if spec.get("PrivateIpAddress"):
            if many:
                raise InvalidParameterCombination("Cannot specify a private IP address when launching more than one "
                                                  "instance")
            check_addresses_in(extra_subnet, [spec["PrivateIpAddress"]])
        extra_groups = await resolve_security_groups(ctx, None, list(spec.get("Groups") or []), [],
                                                     vpc_id=extra_subnet["vpc_id"])
        extras.append({"spec": spec, "index": index, "existing": None, "subnet": extra_subnet,
                       "groups": extra_groups})
    return Launch(_Vpc(vpc), subnet, address, groups, bool(associate), primary, existing, extras)


async def _subnet(ctx: Any, params: dict, primary: dict, network: Any) -> Any:
    subnet_id = params.get("SubnetId") or primary.get("SubnetId")
    zone = (params.get("Placement") or {}).get("AvailabilityZone")
    zones = list(ctx.app.config.regions[ctx.region])
    if zone is not None and zone not in zones:
        raise InvalidParameterValue(f"Invalid availability zone: [{zone}]")
    if subnet_id:
        row = await ctx.app.db.fetchone("SELECT * FROM ec2_subnets WHERE subnet_id = ? AND account_id = ? AND"
                                        " region = ?", (subnet_id, account_of(ctx), ctx.region))
        if row is None:
            raise InvalidSubnetIDNotFound(f"The subnet ID '{subnet_id}' does not exist")
        return row
    return network.subnets[zone or zones[0]]


async def record(tx: Any, ctx: Any, launch: Launch, row: Any, tags: dict[str, dict[str, str]]) -> None:
    """Inside RunInstances' transaction: the instance's interfaces."""
    data = data_of(row)
    instance_id, at = row["instance_id"], row["launch_time_us"]
    eni_tags = tags.get("network-interface") or {}
    primary = launch.primary
    if launch.existing_primary is not None:
        eni_id = launch.existing_primary["network_interface_id"]
        await tx.execute("UPDATE net_interfaces SET instance_id = ?, device_index = 0, attachment_id = ?,"
                         " attach_time_us = ?, delete_on_termination = ? WHERE network_interface_id = ?",
                         (instance_id, data["eni_attachment_id"], at, int(bool(primary.get("DeleteOnTermination"))),
                          eni_id))
        await tx.execute("UPDATE ec2_instances SET mac = ? WHERE instance_id = ?",
                         (launch.existing_primary["mac"], instance_id))
        await update_data(tx, instance_id, eni_id=eni_id)
    else:
        eni_id = data["eni_id"]
        secondary = await _secondary(tx, launch.subnet, primary, [row["private_ip"]])
        await insert_interface(tx, eni_id=eni_id, account_id=row["account_id"], region=row["region"],
                               subnet=launch.subnet, mac=row["mac"], addresses=[row["private_ip"], *secondary],
                               group_ids=[g["GroupId"] for g in launch.groups], at_us=at,
                               description=primary.get("Description") or "", instance_id=instance_id,
                               device_index=0, attachment_id=data["eni_attachment_id"],
                               delete_on_termination=primary.get("DeleteOnTermination", True) is not False)
        if eni_tags:
            await tag_store.write_tags(tx, row["account_id"], row["region"], eni_id, "network-interface", eni_tags)
    from ec2_api import ids  # noqa: PLC0415
    for extra in launch.extras:
        attachment_id = ids.new_id("eni-attach")
        spec = extra["spec"]
        if extra["existing"] is not None:
            await tx.execute("UPDATE net_interfaces SET instance_id = ?, device_index = ?, attachment_id = ?,"
                             " attach_time_us = ?, delete_on_termination = ? WHERE network_interface_id = ? AND"
                             " instance_id IS NULL", (instance_id, extra["index"], attachment_id, at,
                                                      int(bool(spec.get("DeleteOnTermination"))),
                                                      extra["existing"]["network_interface_id"]))
            continue
        subnet = extra["subnet"]
        first = [spec["PrivateIpAddress"]] if spec.get("PrivateIpAddress") else \
            await allocate_addresses(tx, subnet, 1)
        secondary = await _secondary(tx, subnet, spec, first)
        new_eni = ids.new_id("eni")
        await insert_interface(tx, eni_id=new_eni, account_id=row["account_id"], region=row["region"], subnet=subnet,
                               mac=new_mac(), addresses=first + secondary,
                               group_ids=[g["GroupId"] for g in extra["groups"]], at_us=at,
                               description=spec.get("Description") or "", instance_id=instance_id,
                               device_index=extra["index"], attachment_id=attachment_id,
                               delete_on_termination=spec.get("DeleteOnTermination", True) is not False)
        if eni_tags:
            await tag_store.write_tags(tx, row["account_id"], row["region"], new_eni, "network-interface", eni_tags)
    await update_data(tx, instance_id, associate_public_ip=launch.associate_public)
    await sync_instance_data(tx, (await tx.fetchone(
        "SELECT network_interface_id FROM net_interfaces WHERE instance_id = ? AND device_index = 0",
        (instance_id,)))["network_interface_id"])
    await bump_generation(tx)
    changed(ctx)


async def _secondary(tx: Any, subnet: Any, spec: dict, taken: list[str]) -> list[str]:
    listed = [a.get("PrivateIpAddress") for a in spec.get("PrivateIpAddresses") or []
              if not a.get("Primary") and a.get("PrivateIpAddress")]
    check_addresses_in(subnet, listed)
    count = spec.get("SecondaryPrivateIpAddressCount") or 0
    extra = await allocate_addresses(tx, subnet, count, exclude=set(taken + listed)) if count else []
    return listed + extra


# -- DescribeInstances --------------------------------------------------------------------------------

_CHUNK = 1000    # instance ids bound in one query


async def interfaces_of(db: Any, instance_ids: list[str]) -> dict[str, dict]:
    """{instance id: the members of its description that its interfaces give} (``NetworkInterfaces``,
    ``SourceDestCheck``, ``SecurityGroups``; ``PublicIpAddress`` and ``PublicDnsName`` when the
    primary interface's address has a public one), for the instances that have interfaces.

    Three queries whatever the number of instances (a chunk of ``_CHUNK`` ids each): the
    interfaces with their VPC's DNS hostnames setting, their private addresses with the public
    address associated to each, and their security groups."""
    out: dict[str, dict] = {}
    for start in range(0, len(instance_ids), _CHUNK):
        chunk = instance_ids[start:start + _CHUNK]
        if chunk:
            await _interfaces_chunk(db, chunk, out)
    return out


async def _interfaces_chunk(db: Any, instance_ids: list[str], out: dict[str, dict]) -> None:
    marks = ",".join("?" * len(instance_ids))
    enis = await db.fetchall(
        "SELECT i.instance_id, i.network_interface_id, i.account_id, i.region, i.vpc_id, i.subnet_id, i.mac,"
        " i.description, i.source_dest_check, i.interface_type, i.device_index, i.attachment_id,"
        " i.attach_time_us, i.delete_on_termination, v.enable_dns_hostnames FROM net_interfaces i"
        " LEFT JOIN net_vpc_settings v ON v.vpc_id = i.vpc_id"
        f" WHERE i.instance_id IN ({marks}) ORDER BY i.device_index", instance_ids)
    if not enis:
        return
    # eni id -> [(private ip, primary, public address or None)], primary first, then by address
    addresses: dict[str, list] = {}
    for row in await db.fetchall(
            "SELECT a.network_interface_id, a.private_ip, a.is_primary, p.public_ip, p.kind, p.account_id"
            " FROM net_interfaces i JOIN net_interface_addresses a ON a.network_interface_id ="
            " i.network_interface_id LEFT JOIN net_addresses p ON p.network_interface_id ="
            f" a.network_interface_id AND p.private_ip = a.private_ip WHERE i.instance_id IN ({marks})"
            " ORDER BY a.network_interface_id, a.is_primary DESC, a.private_ip", instance_ids):
        listed = addresses.setdefault(row[0], [])
        entry = (row[1], bool(row[2]), row[3] and (row[3], "amazon" if row[4] == "auto" else row[5]))
        if listed and listed[-1][0] == row[1]:    # two public rows for one address: the last
            listed[-1] = entry
        else:
            listed.append(entry)
    groups: dict[str, list] = {}
    shared: dict[tuple, dict] = {}    # a page's interfaces share a few groups: one dict each
    for row in await db.fetchall(
            "SELECT g.network_interface_id, g.group_id, s.group_name FROM net_interfaces i JOIN"
            " net_interface_groups g ON g.network_interface_id = i.network_interface_id JOIN ec2_security_groups s"
            f" ON s.group_id = g.group_id WHERE i.instance_id IN ({marks}) ORDER BY g.position", instance_ids):
        key = (row[1], row[2])
        group = shared.get(key)
        if group is None:
            group = shared[key] = {"GroupId": row[1], "GroupName": row[2]}
        groups.setdefault(row[0], []).append(group)
    for row in enis:
        eni_id = row[1]
        interface = _instance_interface(row, addresses.get(eni_id) or [], groups.get(eni_id) or [])
        described = out.get(row[0])
        if described is not None:     # a secondary interface: after the primary (device index order)
            described["NetworkInterfaces"].append(interface)
            continue
        described = out[row[0]] = {"NetworkInterfaces": [interface],
                                   "SourceDestCheck": interface["SourceDestCheck"],
                                   "SecurityGroups": interface["Groups"]}
        association = interface.get("Association")
        if association is not None:
            public = association["PublicIp"]
            described["PublicIpAddress"] = public
            # the VPC's DNS hostnames setting (on when the VPC has no settings row)
            described["PublicDnsName"] = association["PublicDnsName"] if row[14] is None or row[14] else ""


async def decorate(db: Any, items: list[dict]) -> None:
    """Replace the rendered instances' network part with what the interfaces say."""
    live = [i for i in items if i.get("NetworkInterfaces")]
    if not live:
        return
    found = await interfaces_of(db, [i["InstanceId"] for i in live])
    for item in live:
        described = found.get(item["InstanceId"])
        if described is not None:
            item.update(described)


def _instance_interface(row: Any, addresses: list, groups: list[dict]) -> dict:
    """One interface of DescribeInstances from a row of ``_interfaces_chunk``'s first query and
    its addresses ((private ip, primary, (public ip, owner) or None), primary first)."""
    region = row[3]
    primary = addresses[0][0] if addresses else None
    primary_dns = hostname_of(primary, region)
    listed = []
    association = None
    for private_ip, is_primary, public in addresses:
        address = {"Primary": is_primary, "PrivateDnsName": primary_dns if private_ip == primary else
                   hostname_of(private_ip, region), "PrivateIpAddress": private_ip}
        if public:
            address["Association"] = {"IpOwnerId": public[1], "PublicDnsName": public_dns(public[0], region),
                                      "PublicIp": public[0]}
            if private_ip == primary:
                association = address["Association"]
        listed.append(address)
    item = {
        "Attachment": {"AttachTime": from_us(row[12]), "AttachmentId": row[11],
                       "DeleteOnTermination": bool(row[13]), "DeviceIndex": row[10],
                       "Status": "attached", "NetworkCardIndex": 0},
        "Description": row[7], "Groups": groups, "Ipv6Addresses": [],
        "MacAddress": row[6], "NetworkInterfaceId": row[1], "OwnerId": row[2],
        "PrivateDnsName": primary_dns, "PrivateIpAddress": primary, "PrivateIpAddresses": listed,
        "SourceDestCheck": bool(row[8]), "Status": "in-use", "SubnetId": row[5],
        "VpcId": row[4], "InterfaceType": row[9],
    }
    if association is not None:
        item["Association"] = dict(association)
    return item


def _nis(i: dict) -> list[dict]:
    return i.get("NetworkInterfaces") or []


INSTANCE_FILTERS = {
    "ip-address": lambda i: i.get("PublicIpAddress"),
    "dns-name": lambda i: i.get("PublicDnsName") or None,
    "source-dest-check": lambda i: i.get("SourceDestCheck"),
    "association.public-ip": lambda i: [n["Association"]["PublicIp"] for n in _nis(i) if n.get("Association")],
    "association.ip-owner-id": lambda i: [n["Association"]["IpOwnerId"] for n in _nis(i) if n.get("Association")],
    "network-interface.addresses.association.public-ip": lambda i: [
        a["Association"]["PublicIp"] for n in _nis(i) for a in n["PrivateIpAddresses"] if a.get("Association")],
    "network-interface.addresses.private-ip-address": lambda i: [
        a["PrivateIpAddress"] for n in _nis(i) for a in n["PrivateIpAddresses"]],
    "network-interface.addresses.primary": lambda i: [a["Primary"] for n in _nis(i) for a in n["PrivateIpAddresses"]],
    "network-interface.attachment.attachment-id": lambda i: [n["Attachment"]["AttachmentId"] for n in _nis(i)],
    "network-interface.attachment.device-index": lambda i: [n["Attachment"]["DeviceIndex"] for n in _nis(i)],
    "network-interface.attachment.status": lambda i: [n["Attachment"]["Status"] for n in _nis(i)],
    "network-interface.attachment.delete-on-termination": lambda i: [n["Attachment"]["DeleteOnTermination"]
                                                                     for n in _nis(i)],
    "network-interface.description": lambda i: [n["Description"] for n in _nis(i)],
    "network-interface.group-id": lambda i: [g["GroupId"] for n in _nis(i) for g in n["Groups"]],
    "network-interface.group-name": lambda i: [g["GroupName"] for n in _nis(i) for g in n["Groups"]],
    "network-interface.owner-id": lambda i: [n["OwnerId"] for n in _nis(i)],
    "network-interface.private-dns-name": lambda i: [n["PrivateDnsName"] for n in _nis(i)],
    "network-interface.source-dest-check": lambda i: [n["SourceDestCheck"] for n in _nis(i)],
    "network-interface.status": lambda i: [n["Status"] for n in _nis(i)],
}


# -- ModifyInstanceAttribute --------------------------------------------------------------------------

async def modify_instance_network_attribute(ctx: Any, row: Any, attribute: str, value: Any, params: dict) -> dict:
    """groupSet and sourceDestCheck: they are the primary interface's (AWS refuses them for an
    instance with several interfaces)."""
    from ec2_api.errors import check_dry_run  # noqa: PLC0415
    from ec2_api.network_common import attribute_bool  # noqa: PLC0415
    db = ctx.app.db
    enis = await db.fetchall("SELECT * FROM net_interfaces WHERE instance_id = ? ORDER BY device_index",
                             (row["instance_id"],))
    if len(enis) > 1:
        raise InvalidParameterValue(f"There are multiple interfaces attached to instance '{row['instance_id']}'. "
                                    f"Please specify an interface ID for the operation instead.")
    if not enis:
        raise InvalidParameterValue(f"The instance '{row['instance_id']}' has no network interface")
    eni = enis[0]
    statements: list[tuple[str, tuple]] = []
    if attribute == "groupSet":
        group_ids = value if isinstance(value, list) else [value.get("Value") if isinstance(value, dict) else value]
        if not group_ids:
            from ec2_api.errors import MissingParameter  # noqa: PLC0415
            raise MissingParameter("The request must contain the parameter groupId")
        groups = await resolve_security_groups(ctx, None, [str(g) for g in group_ids], [], vpc_id=eni["vpc_id"])
        statements.append(("DELETE FROM net_interface_groups WHERE network_interface_id = ?",
                           (eni["network_interface_id"],)))
        for position, group in enumerate(groups):
            statements.append(("INSERT INTO net_interface_groups (network_interface_id, group_id, position)"
                               " VALUES (?, ?, ?)", (eni["network_interface_id"], group["GroupId"], position)))
    else:
        flag = attribute_bool(value, "SourceDestCheck")
        statements.append(("UPDATE net_interfaces SET source_dest_check = ? WHERE network_interface_id = ?",
                           (int(bool(flag)), eni["network_interface_id"])))
    check_dry_run(params)
    async with db.transaction() as tx:
        for sql, args in statements:
            await tx.execute(sql, args)
        await sync_instance_data(tx, eni["network_interface_id"])
        await bump_generation(tx)
    changed(ctx)
    return {}


# -- after instance state changes ---------------------------------------------------------------------

async def state_changed(tx: Any, row: Any, state: str) -> None:
    """In the transaction of an instance's state change (``instance_store.change_state``): a
    stopping or terminating instance gives back its auto-assigned public address, a terminated
    one its interfaces (deleted with DeleteOnTermination, else detached), as AWS does."""
    if state not in ("stopping", "stopped", "shutting-down", "terminated"):
        return
    enis = await tx.fetchall("SELECT network_interface_id, delete_on_termination FROM net_interfaces WHERE"
                             " instance_id = ?", (row["instance_id"],))
    for eni in enis:
        await tx.execute("DELETE FROM net_addresses WHERE network_interface_id = ? AND kind = 'auto'",
                         (eni["network_interface_id"],))
        if state != "terminated":
            continue
        if eni["delete_on_termination"]:
            await remove_interface(tx, eni["network_interface_id"])
        else:
            await tx.execute("UPDATE net_interfaces SET instance_id = NULL, device_index = NULL, attachment_id ="
                             " NULL, attach_time_us = NULL WHERE network_interface_id = ?",
                             (eni["network_interface_id"],))
    if enis:
        await bump_generation(tx)


async def reconcile(db: Any, config: Any, *, public_addresses: bool, at_us: int) -> bool:
    """Interfaces of terminated instances deleted (DeleteOnTermination) or detached; auto-assigned
    public addresses released from instances that are not pending or running, and given to those
    that are and should have one (only with a data path); interfaces made for instances launched
    by an older Nimbo. True when anything changed."""
    from ec2_api.addresses import take_public_ip  # noqa: PLC0415
    did = False
    async with db.transaction() as tx:
        gone = await tx.fetchall(
            "SELECT i.network_interface_id, i.delete_on_termination FROM net_interfaces i LEFT JOIN ec2_instances x"
            " ON x.instance_id = i.instance_id WHERE i.instance_id IS NOT NULL AND (x.instance_id IS NULL OR"
            " x.state = 'terminated')")
        for eni in gone:
            did = True
            if eni["delete_on_termination"]:
                await remove_interface(tx, eni["network_interface_id"])
            else:
                await tx.execute("UPDATE net_interfaces SET instance_id = NULL, device_index = NULL, attachment_id ="
                                 " NULL, attach_time_us = NULL WHERE network_interface_id = ?",
                                 (eni["network_interface_id"],))
                await tx.execute("DELETE FROM net_addresses WHERE network_interface_id = ? AND kind = 'auto'",
                                 (eni["network_interface_id"],))
        stale = await tx.execute(
            "DELETE FROM net_addresses WHERE kind = 'auto' AND (network_interface_id IS NULL OR network_interface_id"
            " NOT IN (SELECT i.network_interface_id FROM net_interfaces i JOIN ec2_instances x ON x.instance_id ="
            " i.instance_id WHERE x.state IN ('pending', 'running')))")
        did = did or stale > 0
        orphans = await tx.fetchall(
            "SELECT * FROM ec2_instances x WHERE x.state != 'terminated' AND NOT EXISTS (SELECT 1 FROM net_interfaces"
            " i WHERE i.instance_id = x.instance_id)")
        for row in orphans:
            did = True
            await _adopt(tx, row)
        if public_addresses:
            wanting = await tx.fetchall(
                "SELECT x.instance_id, x.account_id, x.region, x.data, i.network_interface_id, a.private_ip FROM"
                " ec2_instances x JOIN net_interfaces i ON i.instance_id = x.instance_id AND i.device_index = 0"
                " JOIN net_interface_addresses a ON a.network_interface_id = i.network_interface_id AND"
                " a.is_primary = 1 WHERE x.state IN ('pending', 'running') AND NOT EXISTS (SELECT 1 FROM"
                " net_addresses p WHERE p.network_interface_id = i.network_interface_id AND p.private_ip ="
                " a.private_ip)")
            for row in wanting:
                if not data_of(row).get("associate_public_ip"):
                    continue
                try:
                    public_ip = await take_public_ip(tx, config)
                except Exception:  # noqa: BLE001 (an exhausted pool leaves the instance private)
                    break
                await tx.execute("INSERT INTO net_addresses (public_ip, allocation_id, account_id, region, kind,"
                                 " association_id, network_interface_id, private_ip, created_us) VALUES"
                                 " (?, NULL, ?, ?, 'auto', NULL, ?, ?, ?)",
                                 (public_ip, row["account_id"], row["region"], row["network_interface_id"],
                                  row["private_ip"], at_us))
                did = True
        if did:
            await bump_generation(tx)
    return did


async def _adopt(tx: Any, row: Any) -> None:
    """The primary interface of an instance launched before interfaces were stored."""
    data = data_of(row)
    subnet = await tx.fetchone("SELECT * FROM ec2_subnets WHERE subnet_id = ?", (row["subnet_id"],))
    if subnet is None or not data.get("eni_id"):
        return
    addresses = [row["private_ip"]] if row["private_ip"] else []
    if addresses and await tx.fetchone("SELECT 1 FROM net_interface_addresses WHERE subnet_id = ? AND private_ip = ?",
                                       (row["subnet_id"], row["private_ip"])):
        addresses = []
    await insert_interface(tx, eni_id=data["eni_id"], account_id=row["account_id"], region=row["region"],
                           subnet=subnet, mac=row["mac"], addresses=addresses,
                           group_ids=[g["GroupId"] for g in data.get("security_groups") or []],
                           at_us=row["pending_time_us"], instance_id=row["instance_id"], device_index=0,
                           attachment_id=data.get("eni_attachment_id"), delete_on_termination=True)
