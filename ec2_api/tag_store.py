"""Tags as rows of ``ec2_tags``: read for Describe output and filters, written by CreateTags and by
the TagSpecifications of the create calls. Tags belong to the account that set them."""
from __future__ import annotations

from typing import Any, Iterable

from ec2_api.errors import InvalidParameterValue, TagLimitExceeded

MAX_TAGS = 50


async def tags_of(db: Any, account_id: str, resource_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """{resource id: {key: value}} for the given resources (every id present, maybe empty)."""
    ids = list(dict.fromkeys(resource_ids))
    found: dict[str, dict[str, str]] = {rid: {} for rid in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = await db.fetchall(
            f"SELECT resource_id, key, value FROM ec2_tags WHERE account_id = ?"
            f" AND resource_id IN ({marks}) ORDER BY key", (account_id, *chunk))
        for row in rows:
            found[row["resource_id"]][row["key"]] = row["value"]
    return found


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def validate_tags(tags: list[dict], *, allow_aws_prefix: bool = False) -> dict[str, str]:
    """The {key: value} of a Tags list, checked as EC2 checks it."""
    out: dict[str, str] = {}
    for tag in tags or []:
        key = tag.get("Key")
        value = tag.get("Value") or ""
        if key is None or key == "":
            raise InvalidParameterValue("Tag key cannot be null or empty")
        if len(key) > 128:
            raise InvalidParameterValue(
                "Tag key exceeds the maximum length of 128 characters")
        if len(value) > 256:
            raise InvalidParameterValue(
                "Tag value exceeds the maximum length of 256 characters")
        if key.lower().startswith("aws:") and not allow_aws_prefix:
            raise InvalidParameterValue(
                "Tag keys starting with 'aws:' are reserved for internal use")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise TagLimitExceeded(
            f"The maximum number of Tags for a resource has been reached. Max. Tags per resource: {MAX_TAGS}")
    return out


def tag_specifications(params: dict, allowed: Iterable[str]) -> dict[str, dict[str, str]]:
    """{resource type: tags} from TagSpecifications, refusing types the operation cannot tag."""
    allowed = set(allowed)
    specs: dict[str, dict[str, str]] = {}
    for spec in params.get("TagSpecifications") or []:
        resource_type = spec.get("ResourceType")
        if resource_type not in allowed:
            raise InvalidParameterValue(
                f"'{resource_type}' is not a valid taggable resource type for this operation.")
        merged = specs.setdefault(resource_type, {})
        merged.update(validate_tags(spec.get("Tags") or []))
        if len(merged) > MAX_TAGS:
            raise TagLimitExceeded(
                f"The maximum number of Tags for a resource has been reached. Max. Tags per resource: {MAX_TAGS}")
    return specs


async def write_tags(tx: Any, account_id: str, region: str, resource_id: str, resource_type: str,
                     tags: dict[str, str]) -> None:
    await tx.executemany(
        "INSERT INTO ec2_tags (account_id, region, resource_id, resource_type, key, value)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(account_id, resource_id, key)"
        " DO UPDATE SET value = excluded.value",
        [(account_id, region, resource_id, resource_type, k, v) for k, v in tags.items()])


async def delete_all_tags(tx: Any, resource_id: str) -> None:
    await tx.execute("DELETE FROM ec2_tags WHERE resource_id = ?", (resource_id,))


async def count_tags(tx: Any, account_id: str, resource_id: str) -> int:
    row = await tx.fetchone("SELECT COUNT(*) AS n FROM ec2_tags WHERE account_id = ? AND resource_id = ?",
                            (account_id, resource_id))
    return row["n"]
