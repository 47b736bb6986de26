"""AddTagsToResource, RemoveTagsFromResource and ListTagsForResource for parameters (the only
resource type this endpoint has; Terraform's aws_ssm_parameter reads its tags this way)."""
from __future__ import annotations

import re
from typing import Any

from ssm_api import errors
from ssm_api.parameters import bare_name
from storage import parameters as store

MAX_TAGS = 50
_TAG_KEY = re.compile(r"^[\w\s+=.:/@-]{1,128}$")


async def _parameter(ctx: Any, params: dict) -> str:
    kind = params.get("ResourceType")
    if kind != "Parameter":
        raise errors.InvalidResourceType(f"{kind} is not a resource type this endpoint can tag: only Parameter.")
    name = bare_name(params.get("ResourceId"))
    if name.startswith(store.PUBLIC_PREFIX) or not await store.versions(ctx.app.db, ctx.account.account_id,
                                                                         ctx.region, name):
        raise errors.InvalidResourceId()
    return name


async def add_tags_to_resource(ctx: Any, params: dict) -> dict:
    name = await _parameter(ctx, params)
    tags = {}
    for tag in params.get("Tags") or []:
        key, value = tag.get("Key") or "", tag.get("Value") or ""
        if not _TAG_KEY.match(key) or key.lower().startswith("aws:") or len(value) > 256:
            raise errors.ValidationException(f"The tag key or value is not valid: {key!r}")
        tags[key] = value
    account, region = ctx.account.account_id, ctx.region
    if len({**await store.tags_of(ctx.app.db, account, region, name), **tags}) > MAX_TAGS:
        raise errors.TooManyTagsError()
    await store.set_tags(ctx.app.db, account, region, name, tags)
    return {}


async def remove_tags_from_resource(ctx: Any, params: dict) -> dict:
    name = await _parameter(ctx, params)
    await store.remove_tags(ctx.app.db, ctx.account.account_id, ctx.region, name, list(params.get("TagKeys") or []))
    return {}


async def list_tags_for_resource(ctx: Any, params: dict) -> dict:
    name = await _parameter(ctx, params)
    tags = await store.tags_of(ctx.app.db, ctx.account.account_id, ctx.region, name)
    return {"TagList": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
