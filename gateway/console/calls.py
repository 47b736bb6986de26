"""How the console runs an API operation: the service's own handler, called as the signed-in
account with a ``RequestContext`` like a signed request's (no second implementation of anything),
its input checked against the botocore model's input shape as a client's would be, its errors the
service's own (code, message, HTTP status), its output the handler's dict made JSON-able.

EC2 actions go through ``ec2_api.invoke`` (id syntax, DryRun) as the gateway's Query front end
calls them; S3 requests are counted by the meter as the gateway counts them (request tier, bytes).
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
import time
import uuid
from decimal import Decimal
from typing import Any

import botocore.exceptions
import botocore.validate
from multidict import CIMultiDict

from gateway import errors
from gateway.context import RequestContext
from gateway.metering import S3_SERVICE, Meter, s3_request_tier
from gateway.protocols import rest_xml
from gateway.protocols.models import service_model

log = logging.getLogger("nimbo.console")

# The services the console may call, and their names on the bill.
BILLING_SERVICES = {"ec2": "AmazonEC2", "s3": S3_SERVICE, "ce": "ce", "sts": "sts", "ssm": "ssm",
                    "bcm-data-exports": "bcm-data-exports"}


class ConsoleError(Exception):
    """An error of the console's own (not of an operation): a code, a status, a message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def request_context(app: Any, account: Any, access_key_id: str | None, service: str, operation: str,
                    region: str, headers: dict | None = None) -> RequestContext:
    ctx = RequestContext(app=app, request_id=str(uuid.uuid4()), service=service, region=region,
                         headers=CIMultiDict(headers or {}), operation=operation,
                         requested_operation=operation, account=account,
                         access_key_id=access_key_id, state=app.states.get(service))
    ctx.meter = Meter(app.meter_buffer, account.account_id, region,
                      BILLING_SERVICES.get(service, service), int(time.time() * 1_000_000))
    return ctx


def operation_of(services: dict, service_name: str, operation: str) -> tuple[Any, Any, Any]:
    """(service, operation model, handler); ConsoleError when the console cannot call it."""
    service = services.get(service_name)
    if service is None or service_name not in BILLING_SERVICES:
        raise ConsoleError("UnknownService", f"The console does not call the {service_name!r} service.")
    model = service_model(service.model)
    if operation not in model.operation_names or operation not in service.operations:
        raise ConsoleError("UnknownOperation", f"{service_name} has no operation {operation!r} in Nimbo.")
    op_model = model.operation_model(operation)
    if service.protocol == "rest-xml" and rest_xml.has_streaming_payload(op_model):
        raise ConsoleError("UnknownOperation", f"{operation} moves a body: the console's object "
                           "routes do it.")
    return service, op_model, service.operations[operation]


def check_input(op_model: Any, params: Any) -> dict:
    """The parameters as a client's validator checks them against the input shape."""
    if not isinstance(params, dict):
        raise ConsoleError("ValidationError", "params must be a JSON object")
    try:
        botocore.validate.validate_parameters(params, op_model.input_shape)
    except botocore.exceptions.ParamValidationError as exc:
        raise ConsoleError("ValidationError", str(exc.kwargs.get("report", exc)).strip()) from None
    return _blobs(op_model.input_shape, params)


def _blobs(shape: Any, value: Any) -> Any:
    """Blob members as bytes: JSON carries them as base64 text (as the JSON protocols do), the
    handlers get what the codecs give them."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ConsoleError("ValidationError", f"{shape.name} must be base64") from None
    if kind == "structure" and isinstance(value, dict):
        return {k: _blobs(shape.members.get(k), v) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_blobs(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _blobs(shape.value, v) for k, v in value.items()}
    return value


async def call(app: Any, services: dict, account: Any, access_key_id: str | None, service_name: str,
               operation: str, params: Any, region: str) -> dict:
    """The handler's output, JSON-able; the operation's own errors propagate (``error_of``)."""
    service, op_model, handler = operation_of(services, service_name, operation)
    params = check_input(op_model, params)
    ctx = request_context(app, account, access_key_id, service_name, operation, region)
    if service_name == "s3":
        ctx.bucket = params.get("Bucket")
    if service.protocol == "ec2":
        from ec2_api.invoke import invoke  # noqa: PLC0415
        output = await invoke(ctx, operation, handler, params)
    else:
        output = await handler(ctx, params)
    if service_name == "s3":
        count_s3(ctx, operation, 0, 0)
    return await jsonable(output or {})


def count_s3(ctx: RequestContext, operation: str, received: int, sent: int) -> None:
    """An S3 request of the console on the meter, as the gateway meters a client's."""
    if ctx.bill_to:
        ctx.meter.account_id = ctx.bill_to
    resource = ctx.bucket or ""
    tier = s3_request_tier(operation)
    if tier:
        ctx.meter.count(tier, operation, 1, resource)
    if received:
        ctx.meter.count("DataTransfer-In-Bytes", operation, received, resource)
    if sent:
        ctx.meter.count("DataTransfer-Out-Bytes", operation, sent, resource)


async def jsonable(value: Any) -> Any:
    """A handler's output as JSON values: timestamps ISO 8601, Decimals and bytes as text; the
    gateway's private keys (``__status__``) dropped; a streaming body closed."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("__"):
                continue
            if hasattr(item, "aclose") or hasattr(item, "__aiter__"):
                close = getattr(item, "aclose", None)
                if close is not None:
                    await close()
                continue
            out[key] = await jsonable(item)
        return out
    if isinstance(value, (list, tuple)):
        return [await jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode()
    return value


def error_of(exc: BaseException, service: str) -> tuple[int, dict]:
    """(HTTP status, {"Error": {"Code", "Message"}}) as the service's API answers ``exc``."""
    if isinstance(exc, ConsoleError):
        return exc.status, {"Error": {"Code": exc.code, "Message": exc.message}}
    wire = errors.wire_error(exc, service)
    if wire is None:
        log.exception("console: internal error in %s", service)
        wire = errors.internal_error()
    return wire.status, {"Error": {"Code": wire.code, "Message": wire.message}}
