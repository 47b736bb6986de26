"""The network part of an instance's metadata as its interfaces say it (what
``ec2_api.imds.metadata_tree`` serves): ``public-ipv4``/``public-hostname`` while the primary
interface has a public address, and ``network/interfaces/macs/<mac>/`` for every attached
interface (device number, addresses, public addresses, groups, subnet and VPC blocks), as AWS's
instance metadata shows them; cloud-init configures secondary interfaces from these entries."""
from __future__ import annotations

from typing import Any

from ec2_api.imds import hostname_of
from ec2_api.network_interfaces import interface_details, public_dns


async def network_metadata(db: Any, row: Any, tree: dict) -> None:
    """Update ``tree`` (an instance's meta-data tree) from its interfaces; unchanged without any."""
    enis = await db.fetchall("SELECT * FROM net_interfaces WHERE instance_id = ? ORDER BY device_index",
                             (row["instance_id"],))
    if not enis:
        return
    details = await interface_details(db, enis)
    vpc_ids = sorted({e["vpc_id"] for e in enis})
    blocks: dict[str, list[str]] = {}
    for vpc in await db.fetchall(f"SELECT vpc_id, cidr_block FROM ec2_vpcs WHERE vpc_id IN"
                                 f" ({','.join('?' * len(vpc_ids))})", vpc_ids):
        blocks[vpc["vpc_id"]] = [vpc["cidr_block"]]
    for extra in await db.fetchall("SELECT vpc_id, cidr_block FROM net_vpc_cidrs ORDER BY created_us"):
        if extra["vpc_id"] in blocks:
            blocks[extra["vpc_id"]].append(extra["cidr_block"])
    subnets = {s["subnet_id"]: s["cidr_block"] for s in await db.fetchall(
        f"SELECT subnet_id, cidr_block FROM ec2_subnets WHERE subnet_id IN ({','.join('?' * len(enis))})",
        [e["subnet_id"] for e in enis])}
    region = row["region"]
    macs: dict[str, Any] = {}
    for eni in enis:
        info = details[eni["network_interface_id"]]
        private = [a["private_ip"] for a in info["addresses"]]
        entry: dict[str, Any] = {
            "device-number": str(eni["device_index"]),
            "interface-id": eni["network_interface_id"],
            "local-hostname": hostname_of(private[0], region) if private else "",
            "local-ipv4s": "\n".join(private),
            "mac": eni["mac"],
            "owner-id": eni["account_id"],
            "security-group-ids": "\n".join(g["GroupId"] for g in info["groups"]),
            "security-groups": "\n".join(g["GroupName"] for g in info["groups"]),
            "subnet-id": eni["subnet_id"],
            "subnet-ipv4-cidr-block": subnets.get(eni["subnet_id"], ""),
            "vpc-id": eni["vpc_id"],
            "vpc-ipv4-cidr-block": (blocks.get(eni["vpc_id"]) or [""])[0],
            "vpc-ipv4-cidr-blocks": "\n".join(blocks.get(eni["vpc_id"]) or []),
        }
        publics = {private_ip: address["public_ip"] for private_ip, address in info["public"].items()}
        if publics:
            first = publics.get(private[0]) if private else None
            entry["public-ipv4s"] = "\n".join(publics[p] for p in private if p in publics)
            entry["ipv4-associations"] = {publics[p]: p for p in private if p in publics}
            if first:
                entry["public-hostname"] = public_dns(first, region)
        macs[eni["mac"]] = dict(sorted(entry.items()))
    tree["network"] = {"interfaces": {"macs": macs}}
    primary = details[enis[0]["network_interface_id"]]
    address = primary["public"].get(primary["addresses"][0]["private_ip"]) if primary["addresses"] else None
    if address is not None:
        tree["public-ipv4"] = address["public_ip"]
        tree["public-hostname"] = public_dns(address["public_ip"], region)
    groups = primary["groups"]
    tree["security-groups"] = "\n".join(g["GroupName"] for g in groups)
