"""The three protocol front ends: decode a request with the model-driven codec, call the
operation's handler, encode its output. Errors propagate to ``gateway.app`` which renders them."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import urllib.parse
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, MultiDict

from gateway import errors
from gateway.auth.signing import worth_keeping
from gateway.connections import send_continue
from gateway.protocols import errors as protocol_errors
from gateway.protocols import json_protocol, query, rest_xml
from gateway.protocols.models import service_model
from gateway.services import Service

log = logging.getLogger("nimbo")
XML_CONTENT_TYPE = "text/xml;charset=UTF-8"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LOWER_HEX64 = re.compile(r"[0-9a-f]{64}")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, refusing one larger than ``limit`` before reading it all.

    ``StreamReader.read(n)`` hands out what has arrived so far (up to ``n``), not ``n`` bytes:
    the body is read until its end, in as many reads as the network takes."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.MaxMessageLengthExceeded()
    await send_continue(request)
    return await read_all(request.content, limit)


async def read_all(stream: Any, limit: int) -> bytes:
    """Every byte of ``stream`` (``async read(n)``, ``b''`` at its end); more than ``limit`` bytes
    is MaxMessageLengthExceeded (raised as soon as the limit is passed)."""
    pieces: list[bytes] = []
    total = 0
    while True:
        try:
            piece = await stream.read(limit + 1 - total)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:   # the client went away
            raise errors.IncompleteBody() from exc
        except HttpProcessingError as exc:    # a broken chunked framing, found mid-body
            raise errors.IncompleteBody(f"The body's framing is malformed: "
                                        f"{(exc.message or '').splitlines()[0][:100]}") from exc
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
        if total > limit:
            raise errors.MaxMessageLengthExceeded()
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _form_pairs(text: str) -> list[tuple[str, str]]:
    """``name=value&...`` pairs; a broken percent-escape or invalid UTF-8 is MalformedQueryString."""
    if _BAD_ESCAPE.search(text):
        raise errors.MalformedQueryString()
    try:
        return urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise errors.MalformedQueryString() from exc


def form_pairs(request: web.Request, body: bytes) -> list[tuple[str, str]]:
    """A Query request's parameters: the query string's, then a form body's, in wire order."""
    pairs = _form_pairs(request.raw_path.partition("?")[2])
    if body and request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        try:
            pairs += _form_pairs(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise errors.MalformedQueryString("The request body is not valid UTF-8.") from exc
    return pairs


_OPERATIONS: dict[tuple[str, str], Any] = {}


def _operation(service: Service, name: str):
    """(operation model or None, handler or None); the model's answer is kept per name."""
    key = (service.model, name)
    operation = _OPERATIONS.get(key)
    if operation is None:
        model = service_model(service.model)
        if name not in model.operation_names:
            return None, None
        if len(_OPERATIONS) > 4096:   # names come from requests: keep the table bounded
            _OPERATIONS.clear()
        operation = _OPERATIONS[key] = model.operation_model(name)
    return operation, service.operations.get(name)


def query_multidict(raw_query: str) -> MultiDict:
    """The decoded query string of an S3 request (a MultiDict; '+' is a space): what
    ``parse_qsl(raw_query, keep_blank_values=True)`` gives, without its per-call overhead."""
    pairs = []
    if raw_query:
        for part in raw_query.split("&"):
            if not part:
                continue
            if "%" in part or "+" in part:
                pairs.append(_decoded_pair(part))
            else:
                name, _, value = part.partition("=")
                pairs.append((name, value))
    return MultiDict(pairs)


# Decoded query parts, kept: those that need decoding recur from request to request (a
# presigned URL's credential scope, percent-encoded keys of a listing's prefix...). Bounded.
# (The same rule of what is kept as the signature checks' table: ``signing.worth_keeping``.)
_DECODED: dict[str, tuple[str, str]] = {}
_MAX_DECODED = 4096


def _decoded_pair(part: str) -> tuple[str, str]:
    found = _DECODED.get(part)
    if found is None:
        unquote = urllib.parse.unquote
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        found = (name, value)
        if worth_keeping(part):
            if len(_DECODED) >= _MAX_DECODED:
                _DECODED.clear()
            _DECODED[part] = found
    return found


async def call_query(ctx: Any, service: Service, request: web.Request, body: bytes) -> web.Response:
    """EC2 and the Query services (STS): form parameters in the query string and the body."""
    pairs = form_pairs(request, body)
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    action = params.get("Action")
    if not action:
        raise errors.EC2MissingAction() if service.protocol == "ec2" else errors.InvalidAction(
            "The request must contain the parameter Action")
    operation, handler = _operation(service, action)
    if operation is None:
        raise errors.InvalidAction(f"The action {action} is not valid for this web service.")
    ctx.requested_operation = action
    if handler is None:
        raise errors.UnsupportedOperation(f"The action {action} is not supported by Nimbo yet.")
    ctx.operation = action
    decoded = query.decode_query(operation, params, service.protocol)
    if service.protocol == "ec2":   # id syntax and DryRun, the same for every EC2 action
        from ec2_api.invoke import invoke  # noqa: PLC0415
        output = await invoke(ctx, action, handler, decoded)
    else:
        output = await handler(ctx, decoded)
    payload = query.encode_query_response(operation, output or {}, ctx.request_id, service.protocol)
    return web.Response(body=payload, headers={"Content-Type": XML_CONTENT_TYPE})


async def call_json(ctx: Any, service: Service, request: web.Request, body: bytes) -> web.Response:
    """The JSON services (Cost Explorer, CUR): ``X-Amz-Target: Prefix.Operation``."""
    model = service_model(service.model)
    prefix, _, name = request.headers.get("X-Amz-Target", "").partition(".")
    if prefix != model.metadata.get("targetPrefix") or not name:
        raise errors.UnknownOperationException()
    operation, handler = _operation(service, name)
    if operation is None:
        raise errors.UnknownOperationException()
    ctx.requested_operation = name
    if handler is None:
        raise errors.UnknownOperationException(f"The operation {name} is not supported by Nimbo yet.")
    ctx.operation = name
    decoded = json_protocol.decode_json(operation, body)
    output = await handler(ctx, decoded)
    return web.Response(body=json_protocol.encode_json(operation, output or {}),
                        headers={"Content-Type": json_protocol.content_type(model)})


# S3 names a broken XML body after what it holds, for these operations (s3_api.acls)
_MALFORMED_BODY_CODES = {"PutBucketAcl": "MalformedACLError", "PutObjectAcl": "MalformedACLError"}


async def call_rest_xml(ctx: Any, service: Service, request: web.Request, operation_name: str,
                        uri_params: dict[str, str], max_body: int,
                        query_args: MultiDict | None = None) -> web.StreamResponse:
    """S3: the operation was resolved from method, path and query by ``s3_api.router``
    (``query_args``: the query string as the router saw it, parsed here when not given)."""
    operation, handler = _operation(service, operation_name)
    ctx.requested_operation = operation_name
    if handler is None:
        raise errors.NotImplementedS3(f"{operation_name} is not implemented by Nimbo yet.")
    ctx.operation = operation_name
    if query_args is None:
        query_args = query_multidict(request.raw_path.partition("?")[2])
    body: bytes | None = None
    stream = None
    if rest_xml.has_streaming_payload(operation):
        await send_continue(request)     # authenticated: the client may send the body now
        stream = request.content
    elif request.can_read_body:
        body = await read_body(request, max_body)
        _verify_payload_hash(ctx, body)
    try:
        decoded = rest_xml.decode_rest_xml(operation, uri_params=uri_params, query=query_args,
                                           headers=request.headers, body=body, stream=stream)
    except protocol_errors.MalformedXML as exc:
        named = _MALFORMED_BODY_CODES.get(operation_name)
        if named is not None:
            exc.code = named
        raise
    output = dict(await handler(ctx, decoded) or {})
    status = output.pop("__status__", None)
    encoded = rest_xml.encode_rest_xml(operation, output)
    return await _write_rest_response(request, encoded, status, ctx.response_headers)


def _widen_write_buffer(request: web.Request, body: Any) -> None:
    """A big streamed body (GetObject) keeps several MiB queued on the socket (``write_buffer``:
    the body's own hint), so that the next chunk is ready before the client runs dry."""
    limits = getattr(body, "write_buffer", None)
    transport = request.transport
    if limits and transport is not None:
        transport.set_write_buffer_limits(high=limits[0], low=limits[1])


def _verify_payload_hash(ctx: Any, body: bytes) -> None:
    claimed = getattr(ctx.auth, "payload_hash", None)
    if claimed and len(claimed) == 64 and _LOWER_HEX64.fullmatch(claimed.lower()):
        actual = body_sha256(body)
        if actual != claimed.lower():
            raise errors.XAmzContentSHA256Mismatch(ClientComputedContentSHA256=claimed,
                                            S3ComputedContentSHA256=actual)


async def _write_rest_response(request: web.Request, encoded: Any, status: int | None,
                               request_headers: Any) -> web.StreamResponse:
    """The response of ``encoded``; ``request_headers()``: the request-id (and CORS) headers,
    which a streamed response sends with its own (``gateway.app`` adds them to the others)."""
    headers = encoded.headers
    body = encoded.body
    code = status or encoded.status
    data = getattr(body, "data", None)
    if isinstance(data, (bytes, bytearray)) and not isinstance(body, (bytes, bytearray)):
        # a streaming body that is one buffer already (an inline object): sent as a plain
        # response, headers and body in one write
        close = getattr(body, "close", None)
        if close is not None:
            close()
        else:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        body = data if request.method != "HEAD" else b""
    if isinstance(body, (bytes, bytearray)) or body is None:
        response = web.Response(status=code, body=bytes(body) if body else b"",
                                headers=CIMultiDict(headers))
        if body and "Content-Type" not in response.headers:
            response.headers["Content-Type"] = "application/xml"
        return response
    response = web.StreamResponse(status=code)
    for name, value in headers:
        response.headers.add(name, value)
    extra_headers = request_headers()
    for name, value in extra_headers.items():
        response.headers[name] = value
    sent = 0
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            _widen_write_buffer(request, body)
            async for chunk in body:
                await response.write(chunk)
                sent += len(chunk)
        await response.write_eof()
    except ConnectionError:    # the client hung up (aiohttp's ClientConnectionResetError too)
        log.info("client abort: %s went away during %s %s after %d bytes of the body"
                 " (request id %s)",
                 request.remote, request.method, request.path, sent,
                 extra_headers.get("x-amz-request-id", "-"))
        response.client_aborted = True  # type: ignore[attr-defined]
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
        response.body_length_sent = sent  # type: ignore[attr-defined]
    return response
