"""DescribeRegions and DescribeAvailabilityZones: the regions this endpoint serves, each with
its own availability zones (from the server's configuration)."""
from __future__ import annotations

import urllib.parse
from typing import Any

from ec2_api.errors import InvalidParameterValue
from ec2_api.filters import apply_filters

_DIRECTIONS = {"northeast": "ne", "southeast": "se", "northwest": "nw", "southwest": "sw",
               "north": "n", "south": "s", "east": "e", "west": "w", "central": "c"}


def region_code(region: str) -> str:
    """AWS's short form of a region name: us-east-1 -> use1, ap-southeast-2 -> apse2."""
    parts = region.split("-")
    if len(parts) < 3:
        return region.replace("-", "")
    middle = "".join(_DIRECTIONS.get(p, p[:1]) for p in parts[1:-1])
    return parts[0] + middle + parts[-1]


def zone_id(region: str, index: int) -> str:
    return f"{region_code(region)}-az{index + 1}"


def endpoint_host(ctx: Any) -> str:
    url = ctx.app.config.endpoint_url
    return urllib.parse.urlsplit(url).netloc or url


async def describe_regions(ctx: Any, params: dict) -> dict:
    served = list(ctx.app.config.regions)
    wanted = params.get("RegionNames") or []
    unknown = [name for name in wanted if name not in served]
    if unknown:
        raise InvalidParameterValue(f"Invalid region: {unknown[0]}")
    host = endpoint_host(ctx)
    regions = [{"RegionName": name, "Endpoint": host, "OptInStatus": "opt-in-not-required"}
               for name in served if not wanted or name in wanted]
    regions = apply_filters(regions, params.get("Filters"), {
        "region-name": lambda r: r["RegionName"],
        "endpoint": lambda r: r["Endpoint"],
        "opt-in-status": lambda r: r["OptInStatus"],
    })
    return {"Regions": regions}


def zones_of(ctx: Any, region: str) -> list[dict]:
    return [{
        "ZoneName": name,
        "ZoneId": zone_id(region, index),
        "State": "available",
        "OptInStatus": "opt-in-not-required",
        "Messages": [],
        "RegionName": region,
        "GroupName": region,
        "NetworkBorderGroup": region,
        "ZoneType": "availability-zone",
    } for index, name in enumerate(ctx.app.config.regions[ctx.region])]


async def describe_availability_zones(ctx: Any, params: dict) -> dict:
    zones = zones_of(ctx, ctx.region)
    for field, key in (("ZoneNames", "ZoneName"), ("ZoneIds", "ZoneId")):
        wanted = params.get(field) or []
        known = {z[key] for z in zones}
        for name in wanted:
            if name not in known:
                raise InvalidParameterValue(f"Invalid availability zone: [{name}]")
        if wanted:
            zones = [z for z in zones if z[key] in wanted]
    zones = apply_filters(zones, params.get("Filters"), {
        "zone-name": lambda z: z["ZoneName"],
        "zone-id": lambda z: z["ZoneId"],
        "region-name": lambda z: z["RegionName"],
        "state": lambda z: z["State"],
        "opt-in-status": lambda z: z["OptInStatus"],
        "group-name": lambda z: z["GroupName"],
        "network-border-group": lambda z: z["NetworkBorderGroup"],
        "zone-type": lambda z: z["ZoneType"],
        "message": lambda z: [m.get("Message") for m in z["Messages"]],
    })
    return {"AvailabilityZones": zones}
