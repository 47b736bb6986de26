"""CreateTags, DeleteTags and DescribeTags over every taggable resource Nimbo has.

A resource type is taggable once registered here (``register_taggable``) with the table that holds
it; a module that adds a resource type (volumes, snapshots ...) registers it at import time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ec2_api import ids as ids_mod
from ec2_api import tag_store, vpc
from ec2_api.common import account_of, check_max_results
from ec2_api.errors import (EC2Error, InvalidAMIIDNotFound, InvalidGroupNotFound, InvalidInstanceIDNotFound,
                            InvalidKeyPairNotFound, InvalidSubnetIDNotFound, InvalidVpcIDNotFound,
                            MissingParameter, TagLimitExceeded, check_dry_run, ec2_error)
from ec2_api.filters import apply_filters, paginate


@dataclass(frozen=True)
class Taggable:
    resource_type: str
    table: str
    id_column: str
    not_found: type[EC2Error]
    wording: str          # "The {wording} '{id}' does not exist"


TAGGABLE: dict[str, Taggable] = {}


def register_taggable(prefix: str, taggable: Taggable) -> None:
    TAGGABLE[prefix] = taggable


_image = Taggable("image", "ec2_images", "image_id", InvalidAMIIDNotFound, "image id")
for _prefix in ("ami", "aki", "ari"):
    register_taggable(_prefix, _image)
register_taggable("i", Taggable("instance", "ec2_instances", "instance_id", InvalidInstanceIDNotFound,
                                "instance ID"))
register_taggable("key", Taggable("key-pair", "ec2_key_pairs", "key_pair_id", InvalidKeyPairNotFound,
                                  "key pair"))
register_taggable("vpc", Taggable("vpc", "ec2_vpcs", "vpc_id", InvalidVpcIDNotFound, "vpc ID"))
register_taggable("subnet", Taggable("subnet", "ec2_subnets", "subnet_id", InvalidSubnetIDNotFound,
                                     "subnet ID"))
register_taggable("sg", Taggable("security-group", "ec2_security_groups", "group_id",
                                 InvalidGroupNotFound, "security group"))
register_taggable("vol", Taggable("volume", "ec2_volumes", "volume_id",
                                  ec2_error("InvalidVolume.NotFound"), "volume"))
register_taggable("snap", Taggable("snapshot", "ec2_snapshots", "snapshot_id",
                                   ec2_error("InvalidSnapshot.NotFound"), "snapshot"))


async def _resolve(ctx: Any, resource_ids: list[str]) -> dict[str, str]:
    """{resource id: resource type} of resources the caller owns; raises for the first bad one."""
    if not resource_ids:
        raise MissingParameter("The request must contain the parameter resourceIdSet")
    await vpc.network_of(ctx)
    account = account_of(ctx)
    types: dict[str, str] = {}
    for resource_id in resource_ids:
        prefix = ids_mod.prefix_of(resource_id)
        taggable = TAGGABLE.get(prefix or "")
        if taggable is None:
            raise ids_mod.InvalidID(f"The ID '{resource_id}' is not valid")
        row = await ctx.app.db.fetchone(
            f"SELECT 1 FROM {taggable.table} WHERE {taggable.id_column} = ? AND account_id = ?"
            f" AND region = ?", (resource_id, account, ctx.region))
        if row is None:
            raise taggable.not_found(f"The {taggable.wording} '{resource_id}' does not exist")
        types[resource_id] = taggable.resource_type
    return types


async def create_tags(ctx: Any, params: dict) -> dict:
    resources = list(dict.fromkeys(params.get("Resources") or []))
    if not params.get("Tags"):
        raise MissingParameter("The request must contain the parameter Tags")
    tags = tag_store.validate_tags(params["Tags"])
    types = await _resolve(ctx, resources)
    check_dry_run(params)
    account = account_of(ctx)
    async with ctx.app.db.transaction() as tx:
        for resource_id, resource_type in types.items():
            await tag_store.write_tags(tx, account, ctx.region, resource_id, resource_type, tags)
            if await tag_store.count_tags(tx, account, resource_id) > tag_store.MAX_TAGS:
                raise TagLimitExceeded(
                    "The maximum number of Tags for a resource has been reached. "
                    f"Max. Tags per resource: {tag_store.MAX_TAGS}")
    return {}


async def delete_tags(ctx: Any, params: dict) -> dict:
    resources = list(dict.fromkeys(params.get("Resources") or []))
    types = await _resolve(ctx, resources)
    check_dry_run(params)
    account = account_of(ctx)
    wanted = params.get("Tags")
    async with ctx.app.db.transaction() as tx:
        for resource_id in types:
            if not wanted:
                await tx.execute("DELETE FROM ec2_tags WHERE account_id = ? AND resource_id = ?",
                                 (account, resource_id))
                continue
            for tag in wanted:
                key = tag.get("Key")
                if key is None:
                    continue
                if "Value" in tag and tag["Value"] is not None:
                    await tx.execute(
                        "DELETE FROM ec2_tags WHERE account_id = ? AND resource_id = ? AND key = ?"
                        " AND value = ?", (account, resource_id, key, tag["Value"]))
                else:
                    await tx.execute(
                        "DELETE FROM ec2_tags WHERE account_id = ? AND resource_id = ? AND key = ?",
                        (account, resource_id, key))
    return {}


async def describe_tags(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    max_results = _describe_tags_page_size(params)
    account = account_of(ctx)
    await vpc.network_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT resource_id, resource_type, key, value FROM ec2_tags WHERE account_id = ? AND region = ?",
        (account, ctx.region))
    by_resource: dict[str, dict[str, str]] = {}
    for row in rows:
        by_resource.setdefault(row["resource_id"], {})[row["key"]] = row["value"]
    items = [{"ResourceId": r["resource_id"], "ResourceType": r["resource_type"], "Key": r["key"],
              "Value": r["value"]} for r in rows]
    items = apply_filters(items, params.get("Filters"), {
        "key": lambda t: t["Key"],
        "value": lambda t: t["Value"],
        "resource-id": lambda t: t["ResourceId"],
        "resource-type": lambda t: t["ResourceType"],
    }, tags=lambda t: by_resource.get(t["ResourceId"], {}))
    page, token = paginate(items, lambda t: f"{t['ResourceId']}\x00{t['Key']}", max_results,
                           params.get("NextToken"))
    return {"Tags": page, "NextToken": token}


def _describe_tags_page_size(params: dict) -> int | None:
    """DescribeTags' MaxResults: at least 5; a value above 1,000 returns 1,000 items (AWS's
    documented behaviour for this action: not an error)."""
    value = params.get("MaxResults")
    if value is not None and value > 1000:
        return 1000
    return check_max_results(params, 5, 1000)
