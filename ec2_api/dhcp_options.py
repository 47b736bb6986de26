"""CreateDhcpOptions, DeleteDhcpOptions, DescribeDhcpOptions and AssociateDhcpOptions.

A DHCP options set is what the data path's DHCP server hands to the guests of a VPC: the domain
name (option 15) and the name servers (option 6; ``AmazonProvidedDNS`` is the VPC's resolver at
its base + 2). Each region has a default set (``ec2.internal`` in us-east-1,
``REGION.compute.internal`` elsewhere); ``AssociateDhcpOptions`` with ``default`` leaves a VPC
with no options set (its guests then get the region's domain name and the VPC resolver).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, now_us
from ec2_api.errors import InvalidParameterValue, MissingParameter, check_dry_run, ec2_error
from ec2_api.filters import filter_and_paginate
from ec2_api.network_common import changed, creation_tags, delete_tags, tags_or_none, write_creation_tags
from ec2_api.vpc import bump_generation, network_of, owned_resource, owned_resources, owned_vpc

InvalidDhcpOptionIDNotFound = ec2_error("InvalidDhcpOptionID.NotFound")
InvalidDhcpOptionsIdMalformed = ec2_error("InvalidDhcpOptionsId.Malformed")
DependencyViolation = ec2_error("DependencyViolation")
KEYS = ("domain-name", "domain-name-servers", "ntp-servers", "netbios-name-servers", "netbios-node-type",
        "ipv6-address-preferred-lease-time")


def _render(row: Any, tags: dict[str, str]) -> dict:
    configurations = json.loads(row["configurations"])
    return {"DhcpOptionsId": row["dhcp_options_id"], "OwnerId": row["account_id"],
            "DhcpConfigurations": [{"Key": key, "Values": [{"Value": v} for v in values]}
                                   for key, values in sorted(configurations.items())],
            "Tags": tags_or_none(tags)}


def _validate(configurations: list[dict] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in configurations or []:
        key, values = item.get("Key"), [str(v) for v in item.get("Values") or []]
        if key not in KEYS:
            raise InvalidParameterValue(f"Value ({key}) for parameter dhcpConfiguration is invalid. "
                                        f"Unrecognized option")
        if not values:
            raise InvalidParameterValue(f"Value for parameter dhcpConfiguration '{key}' is invalid: no values")
        if key in ("domain-name-servers", "ntp-servers", "netbios-name-servers"):
            if len(values) > 4:
                raise InvalidParameterValue(f"Value for parameter {key} is invalid: at most 4 servers")
            for value in values:
                if key == "domain-name-servers" and value == "AmazonProvidedDNS":
                    continue
                try:
                    ipaddress.IPv4Address(value)
                except ValueError as exc:
                    raise InvalidParameterValue(f"Value ({value}) for parameter {key} is invalid. "
                                                f"Invalid IPv4 address") from exc
        if key == "netbios-node-type" and values != ["2"] and values not in (["1"], ["4"], ["8"]):
            raise InvalidParameterValue(f"Value ({values[0]}) for parameter netbios-node-type is invalid.")
        if key == "domain-name" and len(" ".join(values)) > 255:
            raise InvalidParameterValue("Value for parameter domain-name is invalid: at most 255 characters")
        out.setdefault(key, []).extend(values)
    if not out:
        raise MissingParameter("The request must contain the parameter dhcpConfiguration")
    return out


async def create_dhcp_options(ctx: Any, params: dict) -> dict:
    configurations = _validate(params.get("DhcpConfigurations"))
    tags = creation_tags(params, "dhcp-options")
    await network_of(ctx)
    check_dry_run(params)
    dopt_id = ids.new_id("dopt")
    async with ctx.app.db.transaction() as tx:
        await tx.execute("INSERT INTO net_dhcp_options (dhcp_options_id, account_id, region, configurations,"
                         " created_us) VALUES (?, ?, ?, ?, ?)",
                         (dopt_id, account_of(ctx), ctx.region, json.dumps(configurations), now_us(ctx)))
        await write_creation_tags(tx, ctx, dopt_id, "dhcp-options", tags)
        row = await tx.fetchone("SELECT * FROM net_dhcp_options WHERE dhcp_options_id = ?", (dopt_id,))
    return {"DhcpOptions": _render(row, tags)}


async def _owned(ctx: Any, dopt_id: Any) -> Any:
    return await owned_resource(ctx, "net_dhcp_options", "dhcp_options_id", dopt_id, parameter="dhcpOptionsId",
                                prefix="dopt", malformed=InvalidDhcpOptionsIdMalformed,
                                not_found_error=InvalidDhcpOptionIDNotFound, noun="dhcpOption")


async def delete_dhcp_options(ctx: Any, params: dict) -> dict:
    row = await _owned(ctx, params.get("DhcpOptionsId"))
    check_dry_run(params)
    dopt_id = row["dhcp_options_id"]
    async with ctx.app.db.transaction() as tx:
        if await tx.fetchone("SELECT 1 FROM ec2_vpcs WHERE dhcp_options_id = ?", (dopt_id,)):
            raise DependencyViolation(f"The dhcpOptions '{dopt_id}' has dependencies and cannot be deleted.")
        await tx.execute("DELETE FROM net_dhcp_options WHERE dhcp_options_id = ?", (dopt_id,))
        await delete_tags(tx, [dopt_id])
    return {}


async def associate_dhcp_options(ctx: Any, params: dict) -> dict:
    dopt_id = params.get("DhcpOptionsId")
    vpc = await owned_vpc(ctx, params.get("VpcId"))
    if dopt_id != "default":
        dopt_id = (await _owned(ctx, dopt_id))["dhcp_options_id"]
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE ec2_vpcs SET dhcp_options_id = ? WHERE vpc_id = ?", (dopt_id, vpc["vpc_id"]))
        await bump_generation(tx)
    changed(ctx)
    return {}


async def describe_dhcp_options(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    rows = await owned_resources(ctx, "net_dhcp_options", "dhcp_options_id", params.get("DhcpOptionsIds"),
                                 InvalidDhcpOptionIDNotFound, "dhcpOption")
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [r["dhcp_options_id"] for r in rows])
    items = [_render(r, tags[r["dhcp_options_id"]]) for r in rows]
    page, token = filter_and_paginate(items, params, {
        "dhcp-options-id": lambda d: d["DhcpOptionsId"],
        "key": lambda d: [c["Key"] for c in d["DhcpConfigurations"]],
        "value": lambda d: [v["Value"] for c in d["DhcpConfigurations"] for v in c["Values"]],
        "owner-id": lambda d: d["OwnerId"],
    }, tags, "DhcpOptionsId")
    return {"DhcpOptions": page, "NextToken": token}


def configuration_of(row: Any | None) -> dict[str, list[str]]:
    return json.loads(row["configurations"]) if row is not None else {}
