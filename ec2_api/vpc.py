"""The default network of an account in a region, and what every VPC gets when it is made.

The default VPC (172.31.0.0/16), one default subnet per availability zone (a /20 each, as AWS lays
them out), its default security group, main route table (with a route to its internet gateway,
attached as on AWS), default network ACL and the region's default DHCP options set are made
lazily, the first time anything in the account and region needs them, with stable ids (the VPC's
id is ``account_attributes.default_vpc_id``), so that two requests racing to make them make them
once. ``vpc_defaults`` makes the per-VPC pieces for CreateVpc too.

Private addresses: ``allocate_addresses`` picks the lowest free addresses of a subnet (AWS
reserves the first four and the last); an address is in use while an instance that is not
terminated or a network interface holds it.

Crash story: everything is written in one transaction with ``ON CONFLICT DO NOTHING``; a crash
leaves either nothing or everything, and the next request completes what is missing.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from ec2_api.account_attributes import default_vpc_id
from ec2_api.common import account_of, now_us
from ec2_api.errors import (InvalidGroupNotFound, InvalidParameterValue, InvalidSubnetIDNotFound,
                            InvalidVpcIDNotFound, ec2_error)

DEFAULT_VPC_CIDR = "172.31.0.0/16"
SUBNET_PREFIX = 20
InsufficientFreeAddressesInSubnet = ec2_error("InsufficientFreeAddressesInSubnet")
InvalidGroupIdMalformed = ec2_error("InvalidGroupId.Malformed")
InvalidVpcIDMalformed = ec2_error("InvalidVpcID.Malformed")
InvalidSubnetIDMalformed = ec2_error("InvalidSubnetID.Malformed")


def _stable(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256(":".join((prefix,) + parts).encode()).hexdigest()
    return f"{prefix}-{digest[:17]}"


def default_dhcp_options_id(account_id: str, region: str) -> str:
    return _stable("dopt", account_id, region)


def region_domain(region: str) -> str:
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


@dataclass
class Network:
    vpc: Any
    subnets: dict[str, Any]   # availability zone -> subnet row
    security_group: Any

    def subnet_by_id(self, subnet_id: str) -> Any | None:
        return next((s for s in self.subnets.values() if s["subnet_id"] == subnet_id), None)


async def bump_generation(tx: Any) -> None:
    """Every change to what the data path should do bumps this counter (``network_sync``)."""
    await tx.execute("UPDATE net_generation SET value = value + 1 WHERE id = 1")


async def default_network(db: Any, config: Any, account_id: str, region: str, at_us: int) -> Network:
    """The default VPC, subnets and security group of the account in the region, made if missing."""
    vpc_id = default_vpc_id(account_id, region)
    zones = list(config.regions.get(region) or [])
    network = await _load(db, vpc_id, zones)
    if network is not None:
        return network
    async with db.transaction() as tx:
        dopt = await ensure_default_dhcp_options(tx, account_id, region, at_us)
        await tx.execute(
            "INSERT INTO ec2_vpcs (vpc_id, account_id, region, cidr_block, is_default, dhcp_options_id,"
            " cidr_association_id, created_us) VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT(vpc_id) DO NOTHING",
            (vpc_id, account_id, region, DEFAULT_VPC_CIDR, dopt, _stable("vpc-cidr-assoc", vpc_id), at_us))
        base = ipaddress.ip_network(DEFAULT_VPC_CIDR)
        blocks = list(base.subnets(new_prefix=SUBNET_PREFIX))
        for index, zone in enumerate(zones[:len(blocks)]):
            await tx.execute(
                "INSERT INTO ec2_subnets (subnet_id, account_id, region, vpc_id, availability_zone,"
                " cidr_block, default_for_az, created_us) VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT(subnet_id) DO NOTHING",
                (_stable("subnet", account_id, region, zone), account_id, region, vpc_id, zone,
                 str(blocks[index]), at_us))
        await vpc_defaults(tx, account_id, region, vpc_id, at_us, default=True)
        await bump_generation(tx)
    network = await _load(db, vpc_id, zones)
    assert network is not None
    return network


async def ensure_default_dhcp_options(tx: Any, account_id: str, region: str, at_us: int) -> str:
    """The region's default DHCP options set (domain-name and AmazonProvidedDNS), made if missing."""
    dopt = default_dhcp_options_id(account_id, region)
    await tx.execute(
        "INSERT INTO net_dhcp_options (dhcp_options_id, account_id, region, configurations, created_us)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(dhcp_options_id) DO NOTHING",
        (dopt, account_id, region, json.dumps({"domain-name": [region_domain(region)],
                                               "domain-name-servers": ["AmazonProvidedDNS"]}), at_us))
    return dopt


async def vpc_defaults(tx: Any, account_id: str, region: str, vpc_id: str, at_us: int, *,
                       default: bool = False, ids: dict[str, str] | None = None) -> dict[str, str]:
    """A VPC's main route table, default network ACL, default security group (ingress from
    itself, egress everywhere) and settings; the default VPC also gets an attached internet
    gateway and a 0.0.0.0/0 route to it. Stable ids for the default VPC; ``ids`` for a new one."""
    from ec2_api.ids import new_id  # noqa: PLC0415
    if ids is None:
        ids = {}
        for kind in ("rtb", "rtbassoc", "acl", "sg", "sgr-in", "sgr-out", "igw"):
            ids[kind] = (_stable(kind.split("-")[0], vpc_id, kind) if default else new_id(kind.split("-")[0]))
        if default:
            ids["sg"] = _stable("sg", account_id, region, "default")
    await tx.execute(
        "INSERT INTO net_vpc_settings (vpc_id, enable_dns_support, enable_dns_hostnames) VALUES (?, 1, ?)"
        " ON CONFLICT(vpc_id) DO NOTHING", (vpc_id, int(default)))
    first_time = await tx.execute(
        "INSERT INTO net_route_tables (route_table_id, account_id, region, vpc_id, main_association_id,"
        " created_us) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (ids["rtb"], account_id, region, vpc_id, ids["rtbassoc"], at_us))
    await tx.execute(
        "INSERT INTO net_network_acls (network_acl_id, account_id, region, vpc_id, is_default, created_us)"
        " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING", (ids["acl"], account_id, region, vpc_id, at_us))
    await tx.execute(
        "INSERT INTO ec2_security_groups (group_id, account_id, region, vpc_id, group_name,"
        " description, created_us) VALUES (?, ?, ?, ?, 'default', ?, ?) ON CONFLICT DO NOTHING",
        (ids["sg"], account_id, region, vpc_id, "default VPC security group", at_us))
    # The VPC's pieces are made once (the main route table says so): a default group made by an
    # older Nimbo, without stored rules, gets its default rules then, and never again.
    if first_time and await tx.fetchone("SELECT 1 FROM net_security_group_rules WHERE group_id = ?",
                                        (ids["sg"],)) is None:
        await tx.execute(
            "INSERT INTO net_security_group_rules (rule_id, group_id, account_id, region, is_egress,"
            " ip_protocol, ref_group_id, ref_user_id) VALUES (?, ?, ?, ?, 0, '-1', ?, ?)"
            " ON CONFLICT DO NOTHING", (ids["sgr-in"], ids["sg"], account_id, region, ids["sg"], account_id))
        await tx.execute(
            "INSERT INTO net_security_group_rules (rule_id, group_id, account_id, region, is_egress,"
            " ip_protocol, cidr_ipv4) VALUES (?, ?, ?, ?, 1, '-1', '0.0.0.0/0') ON CONFLICT DO NOTHING",
            (ids["sgr-out"], ids["sg"], account_id, region))
    if default:
        await tx.execute(
            "INSERT INTO net_internet_gateways (internet_gateway_id, account_id, region, vpc_id, created_us)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (ids["igw"], account_id, region, vpc_id, at_us))
        await tx.execute(
            "INSERT INTO net_routes (route_table_id, destination, gateway_id, origin) VALUES (?, '0.0.0.0/0',"
            " ?, 'CreateRoute') ON CONFLICT DO NOTHING", (ids["rtb"], ids["igw"]))
    return ids


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
    if await db.fetchone("SELECT 1 FROM net_route_tables WHERE vpc_id = ? AND main_association_id IS NOT NULL",
                         (vpc_id,)) is None:
        return None   # made by an older Nimbo: add the route table, ACL, gateway and rules
    return Network(vpc, subnets, group)


async def network_of(ctx: Any) -> Network:
    return await default_network(ctx.app.db, ctx.app.config, account_of(ctx), ctx.region, now_us(ctx))


# -- lookups of the caller's resources ------------------------------------------------------------

def check_id(value: Any, prefix: str, error: type) -> str:
    from ec2_api.ids import is_valid  # noqa: PLC0415
    if not isinstance(value, str) or not is_valid(value, prefix):
        raise error(f'Invalid id: "{value}" (expecting "{prefix}-...")')
    return value


async def owned_resource(ctx: Any, table: str, id_column: str, resource_id: Any, *, parameter: str, prefix: str,
                         malformed: type, not_found_error: type, noun: str) -> Any:
    """The caller's row of ``table`` (in this region) whose ``id_column`` is ``resource_id``; as EC2
    answers otherwise: MissingParameter naming ``parameter``, ``malformed`` for an id without the
    ``prefix``, ``not_found_error`` ("The <noun> ID '...' does not exist") for any other."""
    if not resource_id:
        from ec2_api.errors import MissingParameter  # noqa: PLC0415
        raise MissingParameter(f"The request must contain the parameter {parameter}")
    await network_of(ctx)
    row = await ctx.app.db.fetchone(f"SELECT * FROM {table} WHERE {id_column} = ? AND account_id = ? AND region = ?",
                                    (resource_id, account_of(ctx), ctx.region))
    if row is None:
        if not str(resource_id).startswith(f"{prefix}-"):
            raise malformed(f'Invalid id: "{resource_id}" (expecting "{prefix}-...")')
        raise not_found_error(f"The {noun} ID '{resource_id}' does not exist")
    return row


async def owned_resources(ctx: Any, table: str, id_column: str, wanted: list[str] | None,
                          not_found_error: type, noun: str) -> list[Any]:
    """The caller's rows of ``table`` in this region; only those whose ``id_column`` is in ``wanted``
    when ids are asked for (one that is not the caller's raises ``not_found_error`` about ``noun``)."""
    from ec2_api.network_common import select_wanted  # noqa: PLC0415
    await network_of(ctx)
    rows = await ctx.app.db.fetchall(f"SELECT * FROM {table} WHERE account_id = ? AND region = ?",
                                     (account_of(ctx), ctx.region))
    return select_wanted(rows, id_column, wanted, not_found_error, noun)


async def owned_vpc(ctx: Any, vpc_id: str | None) -> Any:
    return await owned_resource(ctx, "ec2_vpcs", "vpc_id", vpc_id, parameter="vpcId", prefix="vpc",
                                malformed=InvalidVpcIDMalformed, not_found_error=InvalidVpcIDNotFound, noun="vpc")


async def owned_subnet(ctx: Any, subnet_id: str | None) -> Any:
    return await owned_resource(ctx, "ec2_subnets", "subnet_id", subnet_id, parameter="subnetId", prefix="subnet",
                                malformed=InvalidSubnetIDMalformed, not_found_error=InvalidSubnetIDNotFound,
                                noun="subnet")


async def vpc_cidrs(conn: Any, vpc: Any) -> list[str]:
    """The VPC's IPv4 CIDR blocks, the primary first."""
    rows = await conn.fetchall("SELECT cidr_block FROM net_vpc_cidrs WHERE vpc_id = ? ORDER BY created_us, "
                               "association_id", (vpc["vpc_id"],))
    return [vpc["cidr_block"]] + [r["cidr_block"] for r in rows]


def parse_cidr(value: Any, what: str = "cidr block") -> ipaddress.IPv4Network:
    """An IPv4 CIDR as EC2 accepts it (host bits must be zero: ``10.0.0.1/16`` is invalid)."""
    try:
        network = ipaddress.IPv4Network(str(value))
    except ValueError as exc:
        raise InvalidParameterValue(f"Value ({value}) for parameter {what} is invalid. "
                                    f"This is not a valid CIDR block.") from exc
    if "/" not in str(value):
        raise InvalidParameterValue(f"Value ({value}) for parameter {what} is invalid. "
                                    f"This is not a valid CIDR block.")
    return network


# -- private addresses ------------------------------------------------------------------------

async def used_addresses(conn: Any, subnet_id: str) -> set[str]:
    rows = await conn.fetchall(
        "SELECT private_ip FROM ec2_instances WHERE subnet_id = ? AND private_ip IS NOT NULL"
        " UNION SELECT private_ip FROM net_interface_addresses WHERE subnet_id = ?", (subnet_id, subnet_id))
    return {row["private_ip"] for row in rows}


def reserved(subnet_cidr: str, address: str) -> bool:
    """The first four and the last address of a subnet are AWS's."""
    network = ipaddress.ip_network(subnet_cidr)
    value = int(ipaddress.ip_address(address))
    return value < int(network.network_address) + 4 or value >= int(network.broadcast_address)


async def allocate_addresses(tx: Any, subnet: Any, count: int, *, exclude: set[str] | None = None) -> list[str]:
    """The lowest ``count`` free addresses of the subnet (AWS reserves the first four and the
    last); an address is in use while an instance that is not terminated or an interface holds it."""
    network = ipaddress.ip_network(subnet["cidr_block"])
    used = await used_addresses(tx, subnet["subnet_id"]) | set(exclude or ())
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


async def resolve_security_groups(ctx: Any, network: Any, group_ids: list[str],
                                  group_names: list[str], vpc_id: str | None = None) -> list[dict]:
    """The groups an instance or interface gets: the named ones (in its VPC) or the VPC's default."""
    vpc_id = vpc_id or network.vpc["vpc_id"]
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_security_groups WHERE account_id = ? AND region = ? AND vpc_id = ?",
        (account_of(ctx), ctx.region, vpc_id))
    chosen = []
    for group_id in group_ids:
        row = next((r for r in rows if r["group_id"] == group_id), None)
        if row is None:
            if not str(group_id).startswith("sg-"):
                raise InvalidGroupIdMalformed(f'Invalid id: "{group_id}" (expecting "sg-...")')
            raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist in VPC '{vpc_id}'")
        chosen.append(row)
    for name in group_names:
        row = next((r for r in rows if r["group_name"] == name), None)
        if row is None:
            raise InvalidGroupNotFound(f"The security group '{name}' does not exist in default VPC '{vpc_id}'")
        chosen.append(row)
    if not chosen:
        chosen = [r for r in rows if r["group_name"] == "default"]
    unique = {row["group_id"]: row for row in chosen}
    if len(unique) > 5:
        raise ec2_error("SecurityGroupsPerInterfaceLimitExceeded")(
            "The maximum number of security groups per interface has been reached.")
    return [{"GroupId": r["group_id"], "GroupName": r["group_name"]} for r in unique.values()]


# The Describe calls of these resources live in their own modules; imported here for callers
# that knew them here.
from ec2_api.vpcs import describe_vpcs  # noqa: E402
from ec2_api.subnets import describe_subnets  # noqa: E402
from ec2_api.security_groups import describe_security_groups  # noqa: E402

__all__ = ["default_network", "network_of", "allocate_addresses", "describe_vpcs", "describe_subnets",
           "describe_security_groups", "resolve_security_groups"]
