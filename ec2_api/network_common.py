"""Small helpers the networking actions share: telling the data path that something changed,
tags at creation, "which of these ids exist" checks, attribute booleans."""
from __future__ import annotations

from typing import Any, Iterable

from ec2_api import tag_store
from ec2_api.errors import EC2Error, InvalidParameterValue, not_found


def changed(ctx: Any) -> None:
    """Ask the network syncer (``ec2_api.network_sync``) to re-apply the desired state soon."""
    sync = getattr(getattr(ctx, "state", None), "network", None)
    if sync is not None:
        sync.poke()


def creation_tags(params: dict, resource_type: str) -> dict[str, str]:
    return tag_store.tag_specifications(params, {resource_type}).get(resource_type, {})


async def write_creation_tags(tx: Any, ctx: Any, resource_id: str, resource_type: str,
                              tags: dict[str, str]) -> None:
    if tags:
        await tag_store.write_tags(tx, ctx.account.account_id, ctx.region, resource_id, resource_type, tags)


async def delete_tags(tx: Any, resource_ids: Iterable[str]) -> None:
    for resource_id in resource_ids:
        await tx.execute("DELETE FROM ec2_tags WHERE resource_id = ?", (resource_id,))


def select_wanted(rows: list[Any], key: str, wanted: list[str] | None, error: type[EC2Error],
                  what: str) -> list[Any]:
    """The rows whose ``key`` is in ``wanted`` (all rows when nothing is asked); ids that are not
    the caller's raise ``error`` worded as EC2 words it."""
    if not wanted:
        return rows
    known = {row[key] for row in rows}
    missing = [w for w in dict.fromkeys(wanted) if w not in known]
    if missing:
        raise not_found(error, what, missing)
    chosen = set(wanted)
    return [row for row in rows if row[key] in chosen]


def attribute_bool(value: Any, name: str) -> bool | None:
    """The ``Value`` of an AttributeBooleanValue (None when absent)."""
    if value is None:
        return None
    inner = value.get("Value") if isinstance(value, dict) else value
    if inner is None:
        return None
    if isinstance(inner, str):
        if inner.lower() not in ("true", "false"):
            raise InvalidParameterValue(f"Value ({inner}) for parameter {name} is invalid.")
        return inner.lower() == "true"
    return bool(inner)


def tags_or_none(tags: dict[str, str]) -> list[dict] | None:
    return tag_store.tag_list(tags) or None
