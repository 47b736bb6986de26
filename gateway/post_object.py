"""POST Object (browser-based uploads) through the gateway.

The request carries no Authorization: its multipart form holds a policy and the policy's
signature. ``gateway.app`` hands such a request (``POST /bucket`` path-style or ``POST /`` on a
bucket's virtual host, ``Content-Type: multipart/form-data``) here before its signature check:
the form's fields are read (``s3_api.post_object.read_form``), the form's signature, the policy's
expiration and its conditions verified (``gateway.auth.post_policy``), the file stored
(``s3_api.post_object.post_object``) and the answer the form asks for rendered: 204 (default),
200, 201 with ``<PostResponse>``, or a 303 to ``success_action_redirect``. Errors propagate to
``gateway.app``, which renders them as any S3 error; the request is metered as ``PostObject``.
"""
from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from gateway.auth.post_policy import check_policy, verify_post_form
from gateway.connections import send_continue
from gateway.metering import S3_SERVICE, Meter
from gateway.protocols.xml_io import document, element
from gateway.services import accepted_regions
from s3_api import post_object as forms
from s3_api.errors import AccessDenied, MalformedPOSTRequest


async def serve_post_object(request: web.Request, ctx: Any, service: Any,
                            bucket: str) -> web.StreamResponse:
    app = ctx.app
    ctx.operation = "PostObject"
    ctx.bucket = bucket
    ctx.meter = Meter(app.meter_buffer, None, ctx.region, S3_SERVICE,
                      int(app.clock().timestamp() * 1_000_000))
    await send_continue(request)     # the form carries the signature: it must be read
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:
        raise MalformedPOSTRequest() from exc
    form = await forms.read_form(reader)
    auth = await verify_post_form(form.fields, app.accounts.secret_for,
                                  accepted_regions(ctx.service, list(app.config.regions)))
    if auth is not None:
        ctx.access_key_id = auth.access_key_id
        if auth.region in app.config.regions:
            ctx.region = ctx.meter.region = auth.region
        _, ctx.account = await app.accounts.lookup(auth.access_key_id)
        if ctx.account is None:
            raise AccessDenied()
        ctx.meter.account_id = ctx.account.account_id
        check_policy(auth.policy, forms.policy_fields(form), bucket, app.clock())
    # anonymous (no signature): the bucket's ACL or policy decides (s3_api.access_control)
    result = await forms.post_object(ctx, bucket, form,
                                     auth.policy.length_range if auth is not None else None)
    return _answer(request, ctx, form, result)


def object_location(request: web.Request, ctx: Any, bucket: str, key: str) -> str:
    """The new object's URL, in the request's own addressing style."""
    host = request.headers.get("Host") or request.host
    quoted_key = urllib.parse.quote(key, safe="")
    suffix = "." + ctx.app.config.s3_domain
    if host.rsplit(":", 1)[0].lower().endswith(suffix):
        return f"{request.scheme}://{host}/{quoted_key}"
    return f"{request.scheme}://{host}/{urllib.parse.quote(bucket, safe='')}/{quoted_key}"


def post_response(location: str, result: dict) -> bytes:
    children = "".join(element(tag, text) for tag, text in (
        ("Location", location), ("Bucket", result["Bucket"]), ("Key", result["Key"]), ("ETag", result["ETag"])))
    return document(element("PostResponse", children=children))     # S3's PostResponse has no namespace


def _answer(request: web.Request, ctx: Any, form: forms.PostForm, result: dict) -> web.Response:
    status, redirect = forms.success_answer(form, result)
    location = object_location(request, ctx, result["Bucket"], result["Key"])
    headers = {"ETag": result["ETag"], "Location": redirect or location,
               **result.get("headers", {})}     # e.g. the object's encryption headers
    if status == 201:
        return web.Response(status=201, body=post_response(location, result),
                            headers={**headers, "Content-Type": "application/xml"})
    return web.Response(status=status, headers=headers)
