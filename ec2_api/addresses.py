"""Public IPv4 addresses: Allocate/Release/Associate/Disassociate/DescribeAddresses,
DescribeAddressesAttribute and ModifyAddressAttribute.

Addresses come from the public pool of the server's configuration (``public_ip_pool``: CIDRs,
comma-separated; default ``198.18.0.0/24``, a benchmarking range that on a single-host install
lives inside Nimbo's own network namespace; on a multi-homed server configure a really routed
range). A CIDR's network and broadcast addresses are never handed out. One table holds both kinds:
Elastic IPs (``kind = 'elastic'``, an ``eipalloc-`` id, kept until released) and the public
addresses auto-assigned to running instances launched in a MapPublicIpOnLaunch subnet or with
AssociatePublicIpAddress (``kind = 'auto'``: released when the instance stops or terminates, as
AWS does; ``network_sync`` assigns and releases them). The data path maps each associated public
address 1:1 to its private address (DNAT/SNAT).

Public addresses need the tap data path: on a server that runs with user-mode networking (not
root) the calls that would make one answer UnsupportedOperation saying so.

Crash story: the public address is the row's primary key, so two allocations never share one;
every change is one transaction.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterator

from ec2_api import ids, tag_store
from ec2_api.common import account_of, now_us
from ec2_api.errors import (InvalidParameterCombination, InvalidParameterValue, MissingParameter,
                            UnsupportedOperation, check_dry_run, ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.network_common import changed, creation_tags, delete_tags, tags_or_none, write_creation_tags
from ec2_api.network_interfaces import public_dns
from ec2_api.vpc import bump_generation, network_of

DEFAULT_POOL = "198.18.0.0/24"
MAX_ELASTIC_IPS = 5
InvalidAllocationIDNotFound = ec2_error("InvalidAllocationID.NotFound")
InvalidAddressNotFound = ec2_error("InvalidAddress.NotFound")
InvalidAssociationIDNotFound = ec2_error("InvalidAssociationID.NotFound")
InvalidIPAddressInUse = ec2_error("InvalidIPAddress.InUse")
AddressLimitExceeded = ec2_error("AddressLimitExceeded", 400, "The maximum number of addresses has been reached.")
InsufficientAddressCapacity = ec2_error("InsufficientAddressCapacity")
ResourceAlreadyAssociated = ec2_error("Resource.AlreadyAssociated")
GatewayNotAttached = ec2_error("Gateway.NotAttached")
InvalidInstanceIDNotFound = ec2_error("InvalidInstanceID.NotFound")
InvalidNetworkInterfaceIDNotFound = ec2_error("InvalidNetworkInterfaceID.NotFound")
NO_DATA_PATH = ("Public IPv4 addresses need Nimbo's tap data path (a network namespace of its own, which needs "
                "root); this server runs instances with user-mode networking, where nothing outside can reach "
                "an instance. Run Nimbo as root to use public addresses.")


def pool_of(config: Any) -> list[ipaddress.IPv4Network]:
    raw = getattr(config, "public_ip_pool", None) or DEFAULT_POOL
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return [ipaddress.IPv4Network(item.strip()) for item in items if str(item).strip()]


def pool_addresses(config: Any) -> Iterator[str]:
    for network in pool_of(config):
        hosts = network.hosts() if network.prefixlen < 31 else iter(network)
        for address in hosts:
            yield str(address)


def in_pool(config: Any, address: str) -> bool:
    try:
        value = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    for network in pool_of(config):
        if value in network and (network.prefixlen >= 31 or value not in (network.network_address,
                                                                          network.broadcast_address)):
            return True
    return False


def require_data_path(ctx: Any) -> None:
    sync = getattr(ctx.state, "network", None)
    if sync is None or sync.data_path is None:
        raise UnsupportedOperation(NO_DATA_PATH)


async def take_public_ip(tx: Any, config: Any, wanted: str | None = None) -> str:
    used = {r["public_ip"] for r in await tx.fetchall("SELECT public_ip FROM net_addresses")}
    if wanted is not None:
        if not in_pool(config, wanted):
            raise InvalidParameterValue(f"The address {wanted} is not in Nimbo's public address pool")
        if wanted in used:
            raise InvalidIPAddressInUse(f"Address {wanted} is in use.")
        return wanted
    for address in pool_addresses(config):
        if address not in used:
            return address
    raise InsufficientAddressCapacity("There are no more public addresses in the pool.")


# -- rendering --------------------------------------------------------------------------------------

async def _render(db: Any, row: Any, tags: dict[str, str]) -> dict:
    item: dict[str, Any] = {"PublicIp": row["public_ip"], "AllocationId": row["allocation_id"], "Domain": "vpc",
                            "PublicIpv4Pool": "amazon", "NetworkBorderGroup": row["region"],
                            "Tags": tags_or_none(tags)}
    if row["association_id"]:
        eni = await db.fetchone("SELECT * FROM net_interfaces WHERE network_interface_id = ?",
                                (row["network_interface_id"],))
        item.update(AssociationId=row["association_id"], NetworkInterfaceId=row["network_interface_id"],
                    PrivateIpAddress=row["private_ip"])
        if eni is not None:
            item["NetworkInterfaceOwnerId"] = eni["account_id"]
            item["SubnetId"] = eni["subnet_id"]
            if eni["instance_id"]:
                item["InstanceId"] = eni["instance_id"]
    return item


async def _owned(ctx: Any, allocation_id: Any = None, public_ip: Any = None) -> Any:
    await network_of(ctx)
    db, account = ctx.app.db, account_of(ctx)
    if allocation_id:
        row = await db.fetchone("SELECT * FROM net_addresses WHERE allocation_id = ? AND account_id = ? AND"
                                " region = ? AND kind = 'elastic'", (allocation_id, account, ctx.region))
        if row is None:
            raise InvalidAllocationIDNotFound(f"The allocation ID '{allocation_id}' does not exist")
        return row
    if public_ip:
        row = await db.fetchone("SELECT * FROM net_addresses WHERE public_ip = ? AND account_id = ? AND region = ?"
                                " AND kind = 'elastic'", (public_ip, account, ctx.region))
        if row is None:
            raise InvalidAddressNotFound(f"Address '{public_ip}' not found.")
        return row
    raise MissingParameter("The request must contain the parameter AllocationId or PublicIp")


# -- the actions --------------------------------------------------------------------------------------

async def allocate_address(ctx: Any, params: dict) -> dict:
    if params.get("Domain") not in (None, "vpc", "standard"):
        raise InvalidParameterValue(f"Value ({params['Domain']}) for parameter domain is invalid.")
    if params.get("PublicIpv4Pool") not in (None, "amazon"):
        raise InvalidParameterValue(f"The public IPv4 pool '{params['PublicIpv4Pool']}' does not exist")
    if params.get("CustomerOwnedIpv4Pool") or params.get("IpamPoolId"):
        raise InvalidParameterValue("Nimbo allocates addresses from its public pool only")
    if params.get("NetworkBorderGroup") not in (None, ctx.region):
        raise InvalidParameterValue(f"Invalid network border group '{params['NetworkBorderGroup']}'")
    tags = creation_tags(params, "elastic-ip")
    require_data_path(ctx)
    await network_of(ctx)
    check_dry_run(params)
    account = account_of(ctx)
    allocation_id = ids.new_id("eipalloc")
    async with ctx.app.db.transaction() as tx:
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM net_addresses WHERE account_id = ? AND region = ? AND"
                                  " kind = 'elastic'", (account, ctx.region))
        if count["n"] >= int(getattr(ctx.app.config, "max_elastic_ips", MAX_ELASTIC_IPS)):
            raise AddressLimitExceeded()
        public_ip = await take_public_ip(tx, ctx.app.config, params.get("Address"))
        await tx.execute("INSERT INTO net_addresses (public_ip, allocation_id, account_id, region, kind, created_us)"
                         " VALUES (?, ?, ?, ?, 'elastic', ?)", (public_ip, allocation_id, account, ctx.region,
                                                                 now_us(ctx)))
        await write_creation_tags(tx, ctx, allocation_id, "elastic-ip", tags)
    return {"PublicIp": public_ip, "AllocationId": allocation_id, "Domain": "vpc", "PublicIpv4Pool": "amazon",
            "NetworkBorderGroup": ctx.region}


async def release_address(ctx: Any, params: dict) -> dict:
    if params.get("AllocationId") and params.get("PublicIp"):
        raise InvalidParameterCombination("Specify either AllocationId or PublicIp, not both")
    if params.get("NetworkBorderGroup") not in (None, ctx.region):
        raise InvalidParameterValue(f"Invalid network border group '{params['NetworkBorderGroup']}'")
    row = await _owned(ctx, params.get("AllocationId"), params.get("PublicIp"))
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        current = await tx.fetchone("SELECT association_id FROM net_addresses WHERE public_ip = ?", (row["public_ip"],))
        if current is None:
            raise InvalidAllocationIDNotFound(f"The allocation ID '{row['allocation_id']}' does not exist")
        if current["association_id"]:
            raise InvalidIPAddressInUse("Address is in use.")
        await tx.execute("DELETE FROM net_addresses WHERE public_ip = ?", (row["public_ip"],))
        await delete_tags(tx, [row["allocation_id"]])
    return {}


async def _target(ctx: Any, params: dict) -> tuple[Any, str]:
    """(interface row, private address) an AssociateAddress names."""
    db, account = ctx.app.db, account_of(ctx)
    instance_id, eni_id = params.get("InstanceId"), params.get("NetworkInterfaceId")
    if not instance_id and not eni_id:
        raise MissingParameter("The request must contain the parameter instanceId or networkInterfaceId")
    if instance_id:
        instance = await db.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ? AND account_id = ? AND"
                                     " region = ? AND state != 'terminated'", (instance_id, account, ctx.region))
        if instance is None:
            raise InvalidInstanceIDNotFound(f"The instance ID '{instance_id}' does not exist")
        enis = await db.fetchall("SELECT * FROM net_interfaces WHERE instance_id = ? ORDER BY device_index",
                                 (instance_id,))
        if eni_id:
            enis = [e for e in enis if e["network_interface_id"] == eni_id]
        elif len(enis) > 1:
            raise InvalidParameterValue(f"There are multiple interfaces attached to instance '{instance_id}'. "
                                        f"Please specify an interface ID for the operation instead.")
        if not enis:
            raise InvalidNetworkInterfaceIDNotFound(f"The networkInterface ID '{eni_id}' does not exist")
        eni = enis[0]
    else:
        eni = await db.fetchone("SELECT * FROM net_interfaces WHERE network_interface_id = ? AND account_id = ? AND"
                                " region = ?", (eni_id, account, ctx.region))
        if eni is None:
            raise InvalidNetworkInterfaceIDNotFound(f"The networkInterface ID '{eni_id}' does not exist")
    addresses = [r["private_ip"] for r in await db.fetchall(
        "SELECT private_ip FROM net_interface_addresses WHERE network_interface_id = ? ORDER BY is_primary DESC",
        (eni["network_interface_id"],))]
    private = params.get("PrivateIpAddress") or (addresses[0] if addresses else None)
    if private not in addresses:
        raise InvalidParameterValue(f"The private IP address {private} is not assigned to interface "
                                    f"{eni['network_interface_id']}")
    gateway = await db.fetchone("SELECT 1 FROM net_internet_gateways WHERE vpc_id = ?", (eni["vpc_id"],))
    if gateway is None:
        raise GatewayNotAttached(f"Network {eni['vpc_id']} is not attached to any internet gateway")
    return eni, private


async def associate_address(ctx: Any, params: dict) -> dict:
    require_data_path(ctx)
    row = await _owned(ctx, params.get("AllocationId"), params.get("PublicIp"))
    eni, private = await _target(ctx, params)
    check_dry_run(params)
    association_id = ids.new_id("eipassoc")
    reassociate = bool(params.get("AllowReassociation"))
    async with ctx.app.db.transaction() as tx:
        current = await tx.fetchone("SELECT * FROM net_addresses WHERE public_ip = ?", (row["public_ip"],))
        if current is None:
            raise InvalidAllocationIDNotFound(f"The allocation ID '{row['allocation_id']}' does not exist")
        same_target = (current["network_interface_id"], current["private_ip"]) == (eni["network_interface_id"],
                                                                                   private)
        if current["association_id"] and not reassociate and not same_target:
            raise ResourceAlreadyAssociated(f"resource {row['allocation_id']} is already associated with "
                                            f"associate-id {current['association_id']}")
        other = await tx.fetchone("SELECT * FROM net_addresses WHERE network_interface_id = ? AND private_ip = ? AND"
                                  " public_ip != ?", (eni["network_interface_id"], private, row["public_ip"]))
        if other is not None and other["kind"] == "elastic" and not reassociate:
            raise ResourceAlreadyAssociated(f"resource {eni['network_interface_id']} is already associated with "
                                            f"associate-id {other['association_id']}")
        if other is not None:
            if other["kind"] == "auto":   # an Elastic IP replaces the auto-assigned address
                await tx.execute("DELETE FROM net_addresses WHERE public_ip = ?", (other["public_ip"],))
            else:
                await tx.execute("UPDATE net_addresses SET association_id = NULL, network_interface_id = NULL,"
                                 " private_ip = NULL WHERE public_ip = ?", (other["public_ip"],))
        await tx.execute("UPDATE net_addresses SET association_id = ?, network_interface_id = ?, private_ip = ?"
                         " WHERE public_ip = ?", (association_id, eni["network_interface_id"], private,
                                                  row["public_ip"]))
        await bump_generation(tx)
    changed(ctx)
    return {"AssociationId": association_id}


async def disassociate_address(ctx: Any, params: dict) -> dict:
    await network_of(ctx)
    db, account = ctx.app.db, account_of(ctx)
    if params.get("AssociationId"):
        row = await db.fetchone("SELECT * FROM net_addresses WHERE association_id = ? AND account_id = ? AND"
                                " region = ?", (params["AssociationId"], account, ctx.region))
        if row is None:
            raise InvalidAssociationIDNotFound(f"The association ID '{params['AssociationId']}' does not exist")
    elif params.get("PublicIp"):
        row = await _owned(ctx, None, params["PublicIp"])
        if not row["association_id"]:
            raise InvalidAssociationIDNotFound(f"The address '{params['PublicIp']}' is not associated")
    else:
        raise MissingParameter("The request must contain the parameter AssociationId or PublicIp")
    check_dry_run(params)
    async with db.transaction() as tx:
        await tx.execute("UPDATE net_addresses SET association_id = NULL, network_interface_id = NULL,"
                         " private_ip = NULL WHERE public_ip = ?", (row["public_ip"],))
        await bump_generation(tx)
    changed(ctx)
    return {}


_FILTERS = {
    "allocation-id": lambda a: a["AllocationId"],
    "association-id": lambda a: a.get("AssociationId"),
    "domain": lambda a: a["Domain"],
    "instance-id": lambda a: a.get("InstanceId"),
    "network-border-group": lambda a: a["NetworkBorderGroup"],
    "network-interface-id": lambda a: a.get("NetworkInterfaceId"),
    "network-interface-owner-id": lambda a: a.get("NetworkInterfaceOwnerId"),
    "private-ip-address": lambda a: a.get("PrivateIpAddress"),
    "public-ip": lambda a: a["PublicIp"],
    "public-ipv4-pool": lambda a: a["PublicIpv4Pool"],
}


async def _visible(ctx: Any, params: dict) -> list[Any]:
    await network_of(ctx)
    rows = await ctx.app.db.fetchall("SELECT * FROM net_addresses WHERE account_id = ? AND region = ? AND"
                                     " kind = 'elastic' ORDER BY public_ip", (account_of(ctx), ctx.region))
    by_allocation = {r["allocation_id"]: r for r in rows}
    by_ip = {r["public_ip"]: r for r in rows}
    for allocation_id in params.get("AllocationIds") or []:
        if allocation_id not in by_allocation:
            raise InvalidAllocationIDNotFound(f"The allocation ID '{allocation_id}' does not exist")
    for public_ip in params.get("PublicIps") or []:
        if public_ip not in by_ip:
            raise InvalidAddressNotFound(f"Address '{public_ip}' not found.")
    if params.get("AllocationIds"):
        rows = [r for r in rows if r["allocation_id"] in params["AllocationIds"]]
    if params.get("PublicIps"):
        rows = [r for r in rows if r["public_ip"] in params["PublicIps"]]
    return rows


async def describe_addresses(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    rows = await _visible(ctx, params)
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [r["allocation_id"] for r in rows])
    items = [await _render(ctx.app.db, r, tags[r["allocation_id"]]) for r in rows]
    items = apply_filters(items, params.get("Filters"), _FILTERS, tags=lambda a: tags[a["AllocationId"]])
    return {"Addresses": items}


def _ptr(row: Any) -> str:
    return row["ptr_record"] or public_dns(row["public_ip"], row["region"]) + "."


async def describe_addresses_attribute(ctx: Any, params: dict) -> dict:
    if params.get("Attribute") not in (None, "domain-name"):
        raise InvalidParameterValue(f"Value ({params['Attribute']}) for parameter attribute is invalid.")
    check_dry_run(params)
    rows = await _visible(ctx, {"AllocationIds": params.get("AllocationIds")})
    items = [{"PublicIp": r["public_ip"], "AllocationId": r["allocation_id"], "PtrRecord": _ptr(r)} for r in rows]
    page, token = paginate(items, lambda a: a["AllocationId"], params.get("MaxResults"), params.get("NextToken"),
                           minimum=1, maximum=1000)
    return {"Addresses": page, "NextToken": token}


async def modify_address_attribute(ctx: Any, params: dict) -> dict:
    row = await _owned(ctx, params.get("AllocationId"))
    name = params.get("DomainName")
    if not name:
        raise MissingParameter("The request must contain the parameter DomainName")
    if len(name) > 253:
        raise InvalidParameterValue("The domain name is too long")
    check_dry_run(params)
    value = name if name.endswith(".") else name + "."
    old = _ptr(row)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE net_addresses SET ptr_record = ? WHERE public_ip = ?", (value, row["public_ip"]))
    return {"Address": {"PublicIp": row["public_ip"], "AllocationId": row["allocation_id"], "PtrRecord": old,
                        "PtrRecordUpdate": {"Value": value, "Status": "PENDING"}}}
