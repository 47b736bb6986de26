"""The Buckets screen's object routes: upload (the browser streams the file; it shows the
progress), download, and a presigned link. PutObject and GetObject are S3's own handlers, called
as the signed-in account (``gateway.console.calls``); the link is signed with the account's key
exactly as an SDK presigns (botocore's signer), so it works with any HTTP client until it expires.
"""
from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

from aiohttp import web

from gateway.console.calls import ConsoleError, count_s3, request_context
from gateway.leader import is_https

MAX_PRESIGN_SECONDS = 7 * 24 * 3600   # SigV4's limit


def _target(request: web.Request) -> tuple[str, str]:
    bucket = request.query.get("bucket", "")
    key = request.query.get("key", "")
    if not bucket or not key:
        raise ConsoleError("ValidationError", "bucket and key are required")
    return bucket, key


async def upload(request: web.Request, app: Any, actor: Any, key_id: str, region: str) -> dict:
    from s3_api.objects import put_object  # noqa: PLC0415
    bucket, key = _target(request)
    length = request.content_length
    if length is None:
        raise ConsoleError("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
    content_type = request.headers.get("Content-Type") or "application/octet-stream"
    ctx = request_context(app, actor, key_id, "s3", "PutObject", region,
                          {"Content-Length": str(length)})
    ctx.bucket = bucket
    output = await put_object(ctx, {"Bucket": bucket, "Key": key, "Body": request.content,
                                    "ContentLength": length, "ContentType": content_type})
    count_s3(ctx, "PutObject", length, 0)
    return {"ETag": output.get("ETag"), "Bucket": bucket, "Key": key, "Size": length}


async def download(request: web.Request, app: Any, actor: Any, key_id: str, region: str) -> web.StreamResponse:
    from s3_api.objects import get_object  # noqa: PLC0415
    bucket, key = _target(request)
    ctx = request_context(app, actor, key_id, "s3", "GetObject", region)
    ctx.bucket = bucket
    output = await get_object(ctx, {"Bucket": bucket, "Key": key})
    body = output.get("Body")
    name = key.rsplit("/", 1)[-1] or "download"
    response = web.StreamResponse(headers={
        "Content-Type": output.get("ContentType") or "application/octet-stream",
        "Content-Disposition": f"attachment; filename*=UTF-8''{urllib.parse.quote(name)}",
        "Cache-Control": "no-store"})
    if output.get("ContentLength") is not None:
        response.content_length = int(output["ContentLength"])
    sent = 0
    try:
        await response.prepare(request)
        data = getattr(body, "data", None)
        if isinstance(data, (bytes, bytearray)):
            await response.write(bytes(data))
            sent = len(data)
        elif body is not None:
            async for chunk in body:
                await response.write(chunk)
                sent += len(chunk)
        await response.write_eof()
    except ConnectionError:
        pass
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
        count_s3(ctx, "GetObject", 0, sent)
    return response


async def presign(request: web.Request, app: Any, actor: Any, region: str, params: dict) -> dict:
    """A presigned GetObject URL for this console's endpoint, signed with one of the account's
    active keys (the session's when it is the account's own)."""
    bucket, key = params.get("bucket"), params.get("key")
    try:
        expires = int(params.get("expires", 3600))
    except (TypeError, ValueError):
        expires = 0
    if not bucket or not key or not 1 <= expires <= MAX_PRESIGN_SECONDS:
        raise ConsoleError("ValidationError", "bucket, key and expires (1 to 604800 seconds) are required")
    ctx = request_context(app, actor, None, "s3", "HeadObject", region)
    from s3_api.objects import head_object  # noqa: PLC0415 (the link is for an object the account can read)
    await head_object(ctx, {"Bucket": bucket, "Key": key})
    keys = [k for k in await app.accounts.store.list_keys(actor.account_id) if k.active]
    if not keys:
        raise ConsoleError("NoActiveKey", "The account has no active access key to sign with.")
    endpoint = f"{'https' if is_https(request) else 'http'}://{request.headers.get('Host', '')}"

    def sign() -> str:
        import botocore.config  # noqa: PLC0415
        import botocore.session  # noqa: PLC0415
        client = botocore.session.get_session().create_client(
            "s3", region_name=region, endpoint_url=endpoint, aws_access_key_id=keys[0].access_key_id,
            aws_secret_access_key=keys[0].secret_access_key,
            config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                             ExpiresIn=expires)
    return {"url": await asyncio.to_thread(sign), "expires": expires}
