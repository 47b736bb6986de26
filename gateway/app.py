"""The aiohttp application: one endpoint for every service.

A request's way through: a request id; the service from the credential scope (unsigned requests
are S3's); the signature check; the service's protocol front end (``gateway.dispatch``); errors
rendered in one place (``render_error``); counted usage to the meter; one access-log line.
"""
from __future__ import annotations

import base64
import itertools
import logging
import os
import secrets
import time
import urllib.parse
import uuid
from typing import Any

from aiohttp import web

from billing.scheduler import start_billing, stop_billing
from gateway import data_dir as data_dirs
from gateway import dispatch, errors
from gateway.accounts import AccountService
from gateway.auth import sigv2_query
from gateway.auth.request import SignedRequest
from gateway.auth.sigv4 import authenticate
from gateway.config import Config
from gateway.connection_limits import track_requests
from gateway.connections import close_if_body_unsent, defer_expect
from gateway.context import AppContext, RequestContext, utc_now
from gateway.internal import report_delivery
from gateway.leader import LEADER_SERVICES, Leadership, client_address, is_https, workers_of
from gateway.metering import S3_SERVICE, Meter, MeterBuffer, s3_request_tier
from gateway.protocols import json_protocol, query, rest_xml
from gateway.services import Service, accepted_regions, protocol_of, signing_service, unsigned_service
from storage import accounts as account_rows
from storage import usage
from storage.metadata import open_metadata
from storage.space import SpaceGuard

log = logging.getLogger("nimbo")
access_log = logging.getLogger("nimbo.access")

APP_CONTEXT = web.AppKey("nimbo", AppContext)
SERVICES = web.AppKey("services", dict)


# S3 request ids: 16 upper-case hex digits, as S3's. A random per-process prefix and a counter
# (no system call per request, unique within a process, unlikely to repeat across restarts).
_REQUEST_ID_PREFIX = secrets.token_hex(4).upper()
_request_numbers = itertools.count(secrets.randbelow(1 << 32))


def new_request_id(service: str) -> str:
    if service == "s3":
        return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFF:08X}"
    return str(uuid.uuid4())


def s3_addressing(request: web.Request, s3_domain: str) -> tuple[str | None, str | None]:
    """(bucket, key) from virtual-hosted-style (``bucket.<s3_domain>``) or path-style addressing."""
    bucket, key, _ = _s3_target(request.raw_path.partition("?")[0], request.headers.get("Host"),
                                s3_domain)
    return bucket, key


def _s3_target(raw_path: str, host_header: str | None, s3_domain: str) -> tuple[str | None, str | None, bool]:
    """(bucket, key, virtual-hosted?) of an S3 request."""
    host = host_header.rsplit(":", 1)[0].lower() if host_header else ""
    if host.startswith("[") or not host.endswith("." + s3_domain):
        bucket, _, key = raw_path.lstrip("/").partition("/") if raw_path.startswith("/") else ("", "", "")
        bucket = _unquote(bucket) or None
        key_decoded = _unquote(key) if "/" in raw_path.lstrip("/") else None
        return bucket, (key_decoded if key_decoded else None), False
    bucket = host[: -len(s3_domain) - 1]
    key = _unquote(raw_path[1:]) if raw_path.startswith("/") else ""
    return bucket, key or None, True


def _unquote(text: str) -> str:
    return urllib.parse.unquote(text) if "%" in text else text


async def handle(request: web.Request) -> web.StreamResponse:
    app: AppContext = request.app[APP_CONTEXT]
    services: dict[str, Service] = request.app[SERVICES]
    if app.leadership is not None:
        app.leadership.check_relay(request)   # another gateway's relay: believed if signed (gateway.cluster)
    if request.raw_path.startswith("/console") or request.raw_path == "/":
        from gateway import console  # noqa: PLC0415 (the web console: its rule in its docstring)
        if console.is_console_request(request, app.config.s3_domain):
            if app.leadership is not None and app.leadership.forwards("ec2") and console.needs_leader(request):
                return await console.forward_to_leader(request, app)   # EC2 and costs live there
            return await console.serve(request, app, services)
    started = time.monotonic()
    service_name = signing_service(request) or unsigned_service(request)
    ctx = RequestContext(app=app, request_id=new_request_id(service_name), service=service_name,
                         region=app.config.default_region, headers=request.headers,
                         host=request.headers.get("Host", ""), remote=client_address(request),
                         secure=is_https(request))
    try:
        response = await _serve(request, ctx, services)
    except Exception as exc:  # every failure becomes the service's own error document
        named = getattr(exc, "operation", None)     # e.g. S3's router: an operation not implemented
        if not ctx.requested_operation and isinstance(named, str):
            ctx.requested_operation = named
        response = render_error(request, ctx, exc)
    _add_request_headers(response, ctx)
    close_if_body_unsent(request, response)
    _meter(request, ctx, response)
    if app.config.access_log:  # off unless configured, like S3's server access logs
        access_log.info("%s %s %s %s %s -> %d %.1fms %s", ctx.remote, request.method,
                        logged_path(request.raw_path), ctx.service,
                        ctx.operation or ctx.requested_operation or "-", response.status,
                        (time.monotonic() - started) * 1000, ctx.request_id)
    return response


# Query parameters that authenticate a request: never logged, not even by name.
_AUTH_PARAMETERS = frozenset({"AWSAccessKeyId", "Signature", "Expires", "SignatureMethod",
                              "SignatureVersion", "Timestamp", "SecurityToken"})


def logged_path(raw_path: str) -> str:
    """The path as the access log shows it: with the query's parameter *names* (the sub-resource,
    ``/bucket?versioning``, ``?uploads``), never their values nor the signing parameters."""
    path, _, query = raw_path.partition("?")
    if not query:
        return path
    names = []
    for part in query.split("&"):
        name = urllib.parse.unquote_plus(part.partition("=")[0])
        if name and name not in _AUTH_PARAMETERS and not name.lower().startswith("x-amz-") \
                and name not in names:
            names.append(name)
    return f"{path}?{'&'.join(names)}" if names else path


async def _serve(request: web.Request, ctx: RequestContext, services: dict[str, Service]) -> web.StreamResponse:
    app = ctx.app
    service = services.get(ctx.service)
    if service is None:
        raise errors.UnsupportedOperation(f"Nimbo does not serve the {ctx.service} service.")
    ctx.state = app.states.get(service.name)
    bucket = key = None
    virtual_hosted = False
    body = b""
    raw_path, _, raw_query = request.raw_path.partition("?")
    if service.protocol == "rest-xml":
        bucket, key, virtual_hosted = _s3_target(raw_path, request.headers.get("Host"),
                                                 app.config.s3_domain)
        from s3_api import preflight  # noqa: PLC0415 (CORS: s3_api's, before authentication)
        if preflight.is_preflight(request.method):
            ctx.requested_operation = "PreflightRequest"
            return web.Response(headers=preflight.answer(ctx, bucket, key))
        ctx.cors_headers = preflight.response_headers(ctx.state, bucket, request.method,
                                                      request.headers)
    else:
        body = await dispatch.read_body(request, app.config.max_request_body)
        if app.leadership is not None and app.leadership.forwards(service.name):
            return await app.leadership.forward(request, ctx, body)   # gateway.leader
    if (service.protocol == "rest-xml" and request.method == "POST" and bucket and not key
            and request.headers.get("Content-Type", "").lower().startswith("multipart/form-data")):
        from gateway.post_object import serve_post_object  # noqa: PLC0415 (POST Object: a signed form)
        return await serve_post_object(request, ctx, service, bucket)
    host_bucket = bucket if virtual_hosted else None
    if service.protocol != "rest-xml" and _query_sigv2(request, raw_query, body):
        auth = await sigv2_query.authenticate(
            request.method, request.headers.get("Host", ""), raw_path or "/",
            dispatch.form_pairs(request, body), app.accounts.secret_for, app.clock(),
            service=ctx.service, secure=is_https(request))
    else:
        signed = SignedRequest(method=request.method, raw_path=raw_path, raw_query=raw_query,
                               headers=request.headers, host_bucket=host_bucket)
        auth = await authenticate(signed, app.accounts.secret_for, app.clock(),
                                  _accepted_regions(ctx.service, app.config.regions),
                                  body_sha256=None if service.protocol == "rest-xml" else dispatch.body_sha256(body))
    if auth is None and service.protocol != "rest-xml":
        from gateway.auth.errors import MissingAuthentication  # noqa: PLC0415
        raise MissingAuthentication("Request is missing Authentication Token")
    if auth is not None:
        ctx.auth = auth
        ctx.access_key_id = auth.access_key_id
        if auth.region in app.config.regions:
            ctx.region = auth.region
        _, ctx.account = await app.accounts.lookup(auth.access_key_id)
    ctx.meter = Meter(app.meter_buffer, ctx.account.account_id if ctx.account else None, ctx.region,
                      _billing_service(ctx.service), _now_us(app))
    if service.protocol == "rest-xml":
        from s3_api.router import resolve  # noqa: PLC0415 (S3 routing is s3_api's)
        query_args = dispatch.query_multidict(raw_query)   # parsed once: routing and decoding
        operation_name = resolve(request.method, bucket, key, query_args, request.headers)
        uri_params = {k: v for k, v in (("Bucket", bucket), ("Key", key)) if v is not None}
        ctx.bucket = bucket
        ctx.chunk_chain = _chunk_chain(auth)
        return await dispatch.call_rest_xml(ctx, service, request, operation_name, uri_params,
                                            app.config.max_request_body, query_args=query_args)
    if service.protocol == "json":
        return await dispatch.call_json(ctx, service, request, body)
    return await dispatch.call_query(ctx, service, request, body)


def _query_sigv2(request: web.Request, raw_query: str, body: bytes) -> bool:
    """A Query request (EC2 ...) signed with SigV2: ``SignatureVersion`` among its parameters and
    no Authorization header."""
    if "Authorization" in request.headers:
        return False
    return "SignatureVersion=" in raw_query or b"SignatureVersion=" in body


def _chunk_chain(auth: Any) -> Any:
    if auth is None or not (auth.payload_hash or "").startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
        return None
    from gateway.auth.chunked import ChunkSignatureChain  # noqa: PLC0415
    return ChunkSignatureChain(auth)


def _virtual_hosted(request: web.Request, config: Config) -> bool:
    host = request.headers.get("Host", "").rsplit(":", 1)[0].lower()
    return host.endswith("." + config.s3_domain)


_ACCEPTED: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}


def _accepted_regions(service: str, regions: dict) -> tuple[str, ...]:
    """``accepted_regions`` of the served regions, made once per service (and region set)."""
    key = (service, tuple(regions))
    found = _ACCEPTED.get(key)
    if found is None:
        if len(_ACCEPTED) > 64:
            _ACCEPTED.clear()
        found = _ACCEPTED[key] = accepted_regions(service, list(regions))
    return found


_BILLING_SERVICES = {"s3": S3_SERVICE, "ec2": "AmazonEC2"}


def _billing_service(service: str) -> str:
    return _BILLING_SERVICES.get(service, service)


def _now_us(app: AppContext) -> int:
    if app.clock is utc_now:     # the real clock: no datetime to make
        return int(time.time() * 1_000_000)
    return int(app.clock().timestamp() * 1_000_000)


def render_error(request: web.Request, ctx: RequestContext, exc: BaseException) -> web.Response:
    """The one place where an exception becomes the protocol's error document."""
    wire = errors.wire_error(exc, ctx.service)
    if wire is None:
        log.exception("internal error in %s %s (request id %s)", ctx.service, ctx.operation or "-",
                      ctx.request_id)
        wire = errors.internal_error()
    protocol = protocol_of(ctx.service)
    headers: dict[str, str] = {}
    if protocol == "rest-xml":
        body = rest_xml.encode_rest_xml_error(wire.code, wire.message, ctx.request_id,
                                              ctx.host_id, wire.extra)
        headers["Content-Type"] = "application/xml"
        headers.update(getattr(exc, "headers", None) or {})  # e.g. InvalidRange's Content-Range
        if request.method == "HEAD" or wire.status == 304:
            body = b""
    elif protocol == "json":
        body = json_protocol.encode_json_error(wire.code, wire.message)
        headers["Content-Type"] = "application/x-amz-json-1.1"
        headers["x-amzn-ErrorType"] = wire.code
    else:
        body = query.encode_query_error(wire.code, wire.message, ctx.request_id, wire.status,
                                        protocol, sender_fault=wire.sender_fault)
        headers["Content-Type"] = dispatch.XML_CONTENT_TYPE
    if wire.status == 304:
        return web.Response(status=304, headers={k: v for k, v in wire.extra.items()
                                                 if k in ("ETag", "Last-Modified")})
    return web.Response(status=wire.status, body=body, headers=headers)


def _add_request_headers(response: web.StreamResponse, ctx: RequestContext) -> None:
    if response.prepared:
        return  # a streamed response sent these with its headers (gateway.dispatch)
    for name, value in ctx.response_headers().items():
        response.headers[name] = value


def _meter(request: web.Request, ctx: RequestContext, response: web.StreamResponse) -> None:
    """S3 request tiers and bytes moved in and out, to the account that made the request."""
    if ctx.meter is None or ctx.service != "s3" or not ctx.operation:
        return
    if ctx.bill_to:
        ctx.meter.account_id = ctx.bill_to
    resource = ctx.bucket or ""
    tier = s3_request_tier(ctx.operation)
    if tier:
        ctx.meter.count(tier, ctx.operation, 1, resource)
    received = request.content_length or getattr(request.content, "total_bytes", 0)  # chunked: read
    if received:
        ctx.meter.count("DataTransfer-In-Bytes", ctx.operation, received, resource)
    sent = getattr(response, "body_length_sent", None)
    if sent is None:
        sent = response.content_length or 0
    if sent and request.method != "HEAD":
        ctx.meter.count("DataTransfer-Out-Bytes", ctx.operation, sent, resource)


async def _startup(app: web.Application) -> None:
    context: AppContext = app[APP_CONTEXT]
    config: Config = context.config
    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    space = space_guard(config)   # before the database: a full disk must not stop start-up
    context.db = await open_metadata(config.metadata, config.data_dir)
    data_dirs.record_metadata(config.data_dir, config.metadata)   # for `nimbo admin`, `credentials`
    context.db.space = space
    await account_rows.migrate(context.db)
    await context.db.migrate(usage.SCHEMA)
    store = account_rows.AccountStore(context.db)
    context.accounts = AccountService(store)
    admin, key = await context.accounts.bootstrap()
    if key is not None:
        log.info("created the admin account %s; `nimbo credentials --data-dir %s` prints its key",
                 admin.account_id, config.data_dir)
    for service in app[SERVICES].values():
        if service.open_state is not None and service.name not in LEADER_SERVICES:
            context.states[service.name] = await service.open_state(context)
    context.meter_buffer = MeterBuffer(context.db, config.meter_flush_seconds)
    context.meter_buffer.start()
    # the leader's parts: here, or later in the worker that takes over (gateway.leader)
    context.leadership = Leadership(config, lambda: _lead(context, app[SERVICES]), context.db)
    await context.leadership.start()
    if workers_of(config) == 1:   # with workers, the parent writes it once every one serves
        with open(config.path("endpoint"), "w") as fh:  # written last: the server is ready
            fh.write(config.endpoint_url + "\n")


async def _lead(context: AppContext, services: dict[str, Service]) -> None:
    """What runs once per data directory (on PostgreSQL, once per cluster: ``gateway.cluster``),
    in the leader: the VM driver, the instance network, EC2's state (housekeeping, driver events,
    the metadata service) and billing."""
    config = context.config
    if context.backend is None and config.backend == "libvirt":   # its hosts are in the database
        from ec2_api.compute_hosts import open_cluster  # noqa: PLC0415
        context.backend = await open_cluster(context.db, config)
    if context.backend is None:
        context.backend = make_backend(config)
    if context.network is None:
        from ec2_api.network_sync import make_data_path  # noqa: PLC0415
        context.network = make_data_path(config)
    for service in services.values():
        if service.name in LEADER_SERVICES:
            service.load_operations()     # the leader's services' packages (gateway.services)
            if service.open_state is not None:
                context.states[service.name] = await service.open_state(context)
    context.billing = await start_billing(context, deliver=report_delivery(context))


def space_guard(config: Config) -> SpaceGuard:
    """The data directory's free-space watermark and reserve (``storage.space``), started."""
    guard = SpaceGuard(config.data_dir, int(config.storage_min_free_mib * (1 << 20)),
                       int(config.storage_reserve_mib * (1 << 20)))
    guard.start()
    return guard


async def _cleanup(app: web.Application) -> None:
    context: AppContext = app[APP_CONTEXT]
    if context.leadership is not None:
        await context.leadership.stop_watching()    # no take-over while stopping
    if context.billing is not None:
        await stop_billing(context.billing)
    if context.meter_buffer is not None:
        await context.meter_buffer.stop()
    for service in app[SERVICES].values():
        state = context.states.pop(service.name, None)
        if state is not None and service.close_state is not None:
            await service.close_state(state)
    if context.backend is not None:
        await context.backend.close()  # stops watching; VMs keep running
    if context.leadership is not None:
        await context.leadership.close()    # last of the leader's parts: its lock
    if context.db is not None:
        await context.db.close()


def make_backend(config: Config) -> Any:
    """The hypervisor driver named by ``config.backend``."""
    if config.backend == "fake":
        from backend.fake import FakeDriver  # noqa: PLC0415
        return FakeDriver()
    if config.backend == "qemu":
        from backend.network.namespace import available  # noqa: PLC0415
        from backend.qemu import QemuDriver  # noqa: PLC0415
        tap, why = available()   # tap networking needs root; else user-mode networking
        (log.info if tap else log.warning)("instance network: %s", why)
        return QemuDriver(config.path("vms"))
    raise ValueError(f"unknown backend {config.backend!r} (qemu, libvirt or fake)")


def create_app(config: Config, clock=None, services: dict[str, Service] | None = None,
               backend: Any = None) -> web.Application:
    from gateway.registry import default_services  # noqa: PLC0415 (imports every API package)
    app = web.Application(client_max_size=config.max_request_body)
    context = AppContext(config=config, db=None, accounts=None, backend=backend)
    if clock is not None:
        context.clock = clock
    app[APP_CONTEXT] = context
    app[SERVICES] = services if services is not None else default_services()
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    route = app.router.add_route("*", "/{tail:.*}", track_requests(handle),
                                 expect_handler=defer_expect)   # 100 Continue once authenticated
    app.router.resolve = _single_route(route)  # type: ignore[method-assign]
    return app


def _single_route(route: Any):
    """The router's ``resolve`` for an application with one catch-all route: every request is
    matched to it at once (aiohttp's resolve builds the request's decoded URL and walks its path
    segments; nothing here reads ``match_info``)."""
    from aiohttp.web_urldispatcher import UrlMappingMatchInfo  # noqa: PLC0415

    async def resolve(request: web.Request) -> UrlMappingMatchInfo:
        return UrlMappingMatchInfo({}, route)
    return resolve
