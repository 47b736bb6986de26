"""TagResource, UntagResource and ListResourceTags for customer managed keys (AWS managed keys
cannot be tagged: their policy does not allow the account to)."""
from __future__ import annotations

from typing import Any

from kms_api import errors
from kms_api.identifiers import arn_of, find_key
from storage import kms_keys as store

MAX_TAGS = 50


def check_tags(tags: list[dict] | None) -> dict[str, str]:
    """A request's Tags as a dict; TagException for reserved or repeated keys, LimitExceededException
    past 50 (lengths are the model's, checked before)."""
    out: dict[str, str] = {}
    for tag in tags or []:
        key, value = tag.get("TagKey"), tag.get("TagValue")
        if key is None or value is None:
            raise errors.TagException("A tag needs a TagKey and a TagValue.")
        if key.lower().startswith("aws:"):
            raise errors.TagException(f"Tag key {key} is reserved: tag keys that begin with aws: are reserved "
                                      f"for AWS use.")
        if key in out:
            raise errors.TagException(f"Duplicate tag key {key}: a key can have only one tag with a given key.")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise errors.LimitExceededException(f"A KMS key can have at most {MAX_TAGS} tags.")
    return out


async def _key(ctx: Any, params: dict, action: str, changing: bool):
    from kms_api.keys import caller, customer_managed, not_pending_deletion   # noqa: PLC0415
    who = caller(ctx, action)
    key = await find_key(ctx.app, who, params.get("KeyId"), arn_error=errors.InvalidArnException, aliases=False)
    if changing:
        not_pending_deletion(customer_managed(who, key))
    return key


async def tag_resource(ctx: Any, params: dict) -> dict:
    key = await _key(ctx, params, "TagResource", True)
    tags = check_tags(params.get("Tags"))
    if not await store.set_tags(ctx.app.db, key.key_id, tags, MAX_TAGS):
        raise errors.LimitExceededException(f"{arn_of(key)} would have more than {MAX_TAGS} tags.")
    return {}


async def untag_resource(ctx: Any, params: dict) -> dict:
    key = await _key(ctx, params, "UntagResource", True)
    await store.remove_tags(ctx.app.db, key.key_id, list(params.get("TagKeys") or []))
    return {}


async def list_resource_tags(ctx: Any, params: dict) -> dict:
    from kms_api.keys import after_marker, page   # noqa: PLC0415
    key = await _key(ctx, params, "ListResourceTags", False)
    after = after_marker(params.get("Marker"))
    tags = [(k, v) for k, v in (await store.tags_of(ctx.app.db, key.key_id)).items() if after is None or k > after]
    shown, paging = page(tags, params.get("Limit"), 50, lambda t: t[0])
    return {"Tags": [{"TagKey": k, "TagValue": v} for k, v in shown], **paging}
