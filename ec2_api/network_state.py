"""The data path's desired state, computed from the networking tables (``desired_state``).

What goes in: every subnet that holds at least one network interface (and its VPC), so an
account's untouched default VPC costs the data path nothing and deleting the last interface
leaves an empty state. Per subnet: its router (.1), the VPC resolver (VPC base + 2), the DHCP
options' domain name and name servers (``AmazonProvidedDNS`` is the resolver), and the active
routes of its route table (explicit association, else the VPC's main table): ``igw`` for an
attached internet gateway, an interface id for a route to an interface or instance; blackholes
are left out. Per interface: its addresses, MAC, hostname (``ip-10-0-1-5.ec2.internal`` in
us-east-1, ``ip-...REGION.compute.internal`` elsewhere), the union of its security groups' rules
resolved to IPv4 CIDRs (a rule naming a group becomes one /32 rule per address of each interface
in that group; IPv6 rules are left out, the data path is IPv4), SourceDestCheck, its 1:1 public
addresses, its zone, and its instance's metadata options. An interface is attached (has a tap)
while its instance has or is getting a VM (pending, running, stopping, shutting-down).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from backend.network.model import (ALL_PROTOCOLS, Interface, NetworkState, Route, SecurityRule, Subnet, Vpc)
from ec2_api.imds import hostname_of
from ec2_api.instance_store import ACTIVE_STATES
from ec2_api.vpc import region_domain

RESOLVER = "AmazonProvidedDNS"


def _resolver(vpc_cidr: str) -> str:
    return str(ipaddress.ip_network(vpc_cidr).network_address + 2)


def _protocol(value: str) -> str | None:
    if value == "-1":
        return ALL_PROTOCOLS
    if value == "icmpv6" or value == "58":
        return None
    return value


async def desired_state(db: Any, config: Any = None) -> NetworkState:
    """The whole network as the data path should make it (see the module docstring)."""
    from ec2_api.route_tables import resolve_target, table_of_subnet  # noqa: PLC0415
    enis = await db.fetchall("SELECT * FROM net_interfaces ORDER BY network_interface_id")
    if not enis:
        return NetworkState()
    subnet_ids = sorted({e["subnet_id"] for e in enis})
    marks = ",".join("?" * len(subnet_ids))
    subnets = await db.fetchall(f"SELECT * FROM ec2_subnets WHERE subnet_id IN ({marks}) ORDER BY subnet_id",
                                subnet_ids)
    vpc_ids = sorted({s["vpc_id"] for s in subnets})
    vpcs = {v["vpc_id"]: v for v in await db.fetchall(
        f"SELECT * FROM ec2_vpcs WHERE vpc_id IN ({','.join('?' * len(vpc_ids))})", vpc_ids)}
    extra_cidrs: dict[str, list[str]] = {}
    for row in await db.fetchall("SELECT vpc_id, cidr_block FROM net_vpc_cidrs ORDER BY created_us, association_id"):
        extra_cidrs.setdefault(row["vpc_id"], []).append(row["cidr_block"])
    dhcp = {r["dhcp_options_id"]: json.loads(r["configurations"]) for r in await db.fetchall(
        "SELECT dhcp_options_id, configurations FROM net_dhcp_options")}
    state_vpcs = tuple(Vpc(vpc_id, (vpcs[vpc_id]["cidr_block"], *extra_cidrs.get(vpc_id, [])))
                       for vpc_id in vpc_ids if vpc_id in vpcs)
    state_subnets = []
    for subnet in subnets:
        vpc = vpcs.get(subnet["vpc_id"])
        if vpc is None:
            continue
        resolver = _resolver(vpc["cidr_block"])
        options = dhcp.get(vpc["dhcp_options_id"], {})
        domain = " ".join(options.get("domain-name") or []) or region_domain(subnet["region"])
        servers = tuple(resolver if s == RESOLVER else s for s in options.get("domain-name-servers") or [])
        if servers == (resolver,):
            servers = ()
        routes = []
        table = await table_of_subnet(db, subnet)
        if table is not None:
            for route in await db.fetchall("SELECT * FROM net_routes WHERE route_table_id = ? ORDER BY destination",
                                           (table["route_table_id"],)):
                status, target = await resolve_target(db, route, subnet["vpc_id"])
                if status == "active" and target:
                    routes.append(Route(route["destination"], target))
        network = ipaddress.ip_network(subnet["cidr_block"])
        state_subnets.append(Subnet(
            subnet_id=subnet["subnet_id"], vpc_id=subnet["vpc_id"], cidr=subnet["cidr_block"],
            router=str(network.network_address + 1), dns=resolver, domain_name=domain,
            domain_name_servers=servers, routes=tuple(routes)))
    included = {s.subnet_id for s in state_subnets}
    addresses: dict[str, list[str]] = {}
    for row in await db.fetchall("SELECT network_interface_id, private_ip FROM net_interface_addresses"
                                 " ORDER BY is_primary DESC, private_ip"):
        addresses.setdefault(row["network_interface_id"], []).append(row["private_ip"])
    groups: dict[str, list[str]] = {}
    members: dict[str, list[str]] = {}
    for row in await db.fetchall("SELECT network_interface_id, group_id FROM net_interface_groups ORDER BY position"):
        groups.setdefault(row["network_interface_id"], []).append(row["group_id"])
        members.setdefault(row["group_id"], []).extend(addresses.get(row["network_interface_id"], []))
    rules: dict[str, list[SecurityRule]] = {}
    for rule in await db.fetchall("SELECT * FROM net_security_group_rules ORDER BY seq, rule_id"):
        protocol = _protocol(rule["ip_protocol"])
        if protocol is None:
            continue
        direction = "egress" if rule["is_egress"] else "ingress"
        ports = (rule["from_port"] if rule["from_port"] is not None else -1,
                 rule["to_port"] if rule["to_port"] is not None else -1)
        if protocol in ("tcp", "udp") and ports == (0, 65535):
            ports = (-1, -1)
        peers: list[str] = []
        if rule["cidr_ipv4"]:
            peers.append(str(ipaddress.ip_network(rule["cidr_ipv4"], strict=False)))
        elif rule["ref_group_id"]:
            peers.extend(f"{a}/32" for a in sorted(set(members.get(rule["ref_group_id"], []))))
        for peer in peers:
            rules.setdefault(rule["group_id"], []).append(SecurityRule(direction, protocol, *ports, peer))
    public: dict[str, list[tuple[str, str]]] = {}
    for row in await db.fetchall("SELECT public_ip, network_interface_id, private_ip FROM net_addresses WHERE"
                                 " network_interface_id IS NOT NULL AND private_ip IS NOT NULL ORDER BY public_ip"):
        public.setdefault(row["network_interface_id"], []).append((row["public_ip"], row["private_ip"]))
    instances = {}
    attached = sorted({e["instance_id"] for e in enis if e["instance_id"]})
    if attached:
        for row in await db.fetchall(f"SELECT instance_id, state, data FROM ec2_instances WHERE instance_id IN"
                                     f" ({','.join('?' * len(attached))})", attached):
            instances[row["instance_id"]] = row
    unions: dict[tuple[str, ...], tuple[SecurityRule, ...]] = {}

    def union(group_ids: tuple[str, ...]) -> tuple[SecurityRule, ...]:
        """The union of the groups' rules, in order, made once per set of groups: interfaces in
        the same groups share it (a group whose rule names itself has one rule per member, so
        merging it again for each member was quadratic in the interfaces)."""
        found = unions.get(group_ids)
        if found is None:
            merged: dict[SecurityRule, None] = {}   # an ordered set
            for group_id in group_ids:
                merged.update(dict.fromkeys(rules.get(group_id, ())))
            found = unions[group_ids] = tuple(merged)
        return found
    interfaces = []
    for eni in enis:
        if eni["subnet_id"] not in included:
            continue
        instance = instances.get(eni["instance_id"]) if eni["instance_id"] else None
        active = instance is not None and instance["state"] in ACTIVE_STATES
        options = (json.loads(instance["data"] or "{}").get("metadata_options") or {}) if instance else {}
        private = tuple(addresses.get(eni["network_interface_id"], []))
        interfaces.append(Interface(
            interface_id=eni["network_interface_id"], subnet_id=eni["subnet_id"], mac=eni["mac"],
            private_ips=private, instance_id=eni["instance_id"] if active else None,
            device_index=eni["device_index"] or 0,
            hostname=hostname_of(private[0], eni["region"]) if private else "",
            rules=union(tuple(groups.get(eni["network_interface_id"], ()))),
            source_dest_check=bool(eni["source_dest_check"]),
            public_ips=tuple(public.get(eni["network_interface_id"], [])),
            availability_zone=eni["availability_zone"],
            metadata_enabled=options.get("HttpEndpoint", "enabled") == "enabled",
            metadata_hop_limit=int(options.get("HttpPutResponseHopLimit", 1))))
    return NetworkState(vpcs=state_vpcs, subnets=tuple(state_subnets), interfaces=tuple(interfaces))
