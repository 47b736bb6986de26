"""The console's HTTP routes (under ``/console``):

=======  ==========================  =========================================================
GET      /console/                   the page (``static/index.html``); /console redirects here
GET      /console/static/NAME        its CSS and JavaScript
POST     /console/api/sign-in        access key id + secret -> the session cookie
POST     /console/api/sign-out       ends the session, removes the cookie
GET      /console/api/session        who is signed in, the CSRF token, the regions
POST     /console/api/call           {service, operation, params}: an API operation's handler
PUT      /console/api/object         ?bucket=&key=: upload (PutObject)
GET      /console/api/object         ?bucket=&key=: download (GetObject)
POST     /console/api/presign        {bucket, key, expires}: a presigned GetObject link
GET      /console/api/costs.csv      ?period=YYYY-MM: the billing report's CSV
GET      /console/api/focus.csv      ?period=YYYY-MM: the month's FOCUS 1.2 CSV
GET      /console/api/accounts       accounts (the admin: all; a tenant: its own)
GET      /console/api/overview       the admin: each account's instances, volumes, buckets
POST     /console/api/accounts       {name}: a new account (admin)
GET      /console/api/keys           ?account=: access keys, never their secrets
POST     /console/api/keys           {account?}: a new key (its secret shown once)
POST     /console/api/key-status     {accessKeyId, status}
POST     /console/api/key-delete     {accessKeyId}
=======  ==========================  =========================================================

Every ``/console/api/`` route but sign-in needs a session; every one that changes something
needs its CSRF token (``csrf``). The admin acts as another account with ``X-Nimbo-Account``
(a tenant's header naming another account is refused); ``X-Nimbo-Region`` picks a served region.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from aiohttp import web

from gateway.console import csrf, keys, objects, sessions
from gateway.console.calls import ConsoleError, call, error_of
from gateway.dispatch import read_all
from gateway.errors import MaxMessageLengthExceeded
from gateway.leader import client_address, is_https

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
_STATIC = {name for name in os.listdir(STATIC_DIR) if os.path.splitext(name)[1] in _STATIC_TYPES}
_PERIOD = re.compile(r"\d{4}-\d{2}")
MAX_JSON = 1 << 20
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json",
                        headers={"Cache-Control": "no-store", **(headers or {})})


async def _body(request: web.Request) -> dict:
    if request.content_length is not None and request.content_length > MAX_JSON:
        raise ConsoleError("RequestTooLarge", "The request body is too large.", 413)
    try:
        raw = await read_all(request.content, MAX_JSON)   # every byte, not what arrived so far
    except MaxMessageLengthExceeded:
        raise ConsoleError("RequestTooLarge", "The request body is too large.", 413) from None
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ConsoleError("MalformedJSON", "The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise ConsoleError("MalformedJSON", "The request body must be a JSON object.")
    return data


def serve_error(exc: Exception) -> web.Response:
    status, body = error_of(exc, "ec2" if not isinstance(exc, ConsoleError) else "console")
    response = _json(body, status)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def serve(request: web.Request, app: Any, services: dict) -> web.StreamResponse:
    try:
        response = await _route(request, app, services)
    except Exception as exc:  # the service's own error, or the console's
        return serve_error(exc)
    for name, value in SECURITY_HEADERS.items():
        if not response.prepared:
            response.headers.setdefault(name, value)
    return response


async def _route(request: web.Request, app: Any, services: dict) -> web.StreamResponse:
    path = request.path
    if path in ("/", "/console"):
        return web.Response(status=302, headers={"Location": "/console/"})
    if path == "/console/" or path == "/console/index.html":
        return _static("index.html")
    if path.startswith("/console/static/"):
        return _static(path[len("/console/static/"):])
    if not path.startswith("/console/api/"):
        raise ConsoleError("NotFound", "No such page.", 404)
    name = path[len("/console/api/"):]
    if name == "sign-in" and request.method == "POST":
        return await _sign_in(request, app)
    token = request.cookies.get(sessions.COOKIE)
    session, account = await sessions.find(app.db, app.accounts, token)
    if session is None:
        raise ConsoleError("NotSignedIn", "Sign in first.", 401)
    csrf.check(request, session)
    if name == "sign-out" and request.method == "POST":
        await sessions.end_session(app.db, token)
        return _json({}, headers={"Set-Cookie": sessions.cookie_header("", is_https(request), 0)})
    if name == "session" and request.method == "GET":
        return _json({"AccountId": account.account_id, "Name": account.name, "IsAdmin": account.is_admin,
                      "AccessKeyId": session.access_key_id, "CsrfToken": session.csrf_token,
                      "ExpiresAt": session.expires_at, "Regions": list(app.config.regions),
                      "Region": app.config.default_region, "Endpoint": _endpoint(request)})
    actor = await _actor(request, app, account)
    region = _region(request, app)
    key_id = session.access_key_id if actor.account_id == account.account_id else None
    return await _api(request, app, services, name, account, actor, session, key_id, region)


async def _api(request, app, services, name, account, actor, session, key_id, region):
    method = request.method
    accounts = app.accounts
    if name == "call" and method == "POST":
        data = await _body(request)
        service = str(data.get("service", ""))
        try:
            return _json(await call(app, services, actor, key_id, service, str(data.get("operation", "")),
                                    data.get("params", {}), region))
        except ConsoleError:
            raise
        except Exception as exc:     # rendered as that service's API renders it
            status, body = error_of(exc, service)
            return _json(body, status)
    if name == "object" and method == "PUT":
        return _json(await _as_s3(objects.upload(request, app, actor, key_id, region)))
    if name == "object" and method == "GET":
        return await _as_s3(objects.download(request, app, actor, key_id, region))
    if name == "presign" and method == "POST":
        return _json(await _as_s3(objects.presign(request, app, actor, region, await _body(request))))
    if name in ("costs.csv", "focus.csv") and method == "GET":
        return await _costs_file(request, app, account, actor, name)
    if name == "overview" and method == "GET":
        return _json(await _overview(app, services, account, region))
    if name == "accounts":
        if method == "GET":
            return _json(await keys.list_accounts(accounts, account))
        if method == "POST":
            return _json(await keys.create_account(accounts, account, str((await _body(request)).get("name", ""))))
    if name == "keys":
        if method == "GET":
            return _json(await keys.list_keys(accounts, account, request.query.get("account")))
        if method == "POST":
            return _json(await keys.create_key(accounts, account, (await _body(request)).get("account")))
    if name == "key-status" and method == "POST":
        data = await _body(request)
        return _json(await keys.set_key_status(accounts, account, session.access_key_id,
                                               str(data.get("accessKeyId", "")), str(data.get("status", ""))))
    if name == "key-delete" and method == "POST":
        data = await _body(request)
        return _json(await keys.delete_key(accounts, account, session.access_key_id,
                                           str(data.get("accessKeyId", ""))))
    raise ConsoleError("NotFound", f"No console route {method} {name}.", 404)


async def _overview(app: Any, services: dict, account: Any, region: str) -> dict:
    """Each account's resources as that account's own Describe and List calls answer (the admin's
    view of every account)."""
    if not account.is_admin:
        raise ConsoleError("AccessDenied", "Only the admin account sees every account.", 403)
    rows = []
    for other in await app.accounts.store.list_accounts():
        reservations = (await call(app, services, other, None, "ec2", "DescribeInstances", {}, region))["Reservations"]
        states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
        volumes = (await call(app, services, other, None, "ec2", "DescribeVolumes", {}, region))["Volumes"]
        buckets = (await call(app, services, other, None, "s3", "ListBuckets", {}, region)).get("Buckets") or []
        rows.append({"AccountId": other.account_id, "Name": other.name,
                     "Instances": sum(1 for s in states if s != "terminated"),
                     "Running": states.count("running"), "Volumes": len(volumes), "Buckets": len(buckets)})
    return {"Accounts": rows}


async def _as_s3(awaitable):
    """An S3 handler's error as S3 names it (NoSuchBucket, AccessDenied ...)."""
    try:
        return await awaitable
    except ConsoleError:
        raise
    except Exception as exc:
        status, body = error_of(exc, "s3")
        raise ConsoleError(body["Error"]["Code"], body["Error"]["Message"], status) from exc


async def _sign_in(request: web.Request, app: Any) -> web.Response:
    csrf.check_origin(request)
    data = await _body(request)
    key_id = str(data.get("accessKeyId", ""))[:128]
    remote = client_address(request)
    try:
        sessions.check_attempts(remote, key_id)
        token, session = await sessions.sign_in(app.db, app.accounts, key_id,
                                                str(data.get("secretAccessKey", "")))
    except sessions.TooManyAttempts:
        raise ConsoleError("TooManySignInAttempts", "Too many failed sign-ins with this key from this "
                           "address; try again in a few minutes.", 429) from None
    except sessions.SignInFailed:
        sessions.record_failure(remote, key_id)
        raise ConsoleError("SignInFailed", "The access key id or secret is not right, or the key is "
                           "disabled.", 403) from None
    return _json({"AccountId": session.account_id, "CsrfToken": session.csrf_token},
                 headers={"Set-Cookie": sessions.cookie_header(token, is_https(request))})


async def _actor(request: web.Request, app: Any, account: Any) -> Any:
    wanted = request.headers.get("X-Nimbo-Account") or request.query.get("as", "")   # "as": links
    if not wanted or wanted == account.account_id:
        return account
    if not account.is_admin:
        raise ConsoleError("AccessDenied", "Only the admin account acts as another account.", 403)
    other = await app.accounts.store.get_account(wanted)
    if other is None:
        raise ConsoleError("NoSuchEntity", f"The account {wanted} does not exist.", 404)
    return other


def _region(request: web.Request, app: Any) -> str:
    region = request.headers.get("X-Nimbo-Region") or request.query.get("region") or app.config.default_region
    if region not in app.config.regions:
        raise ConsoleError("InvalidRegion", f"Nimbo does not serve the region {region!r}.")
    return region


def _endpoint(request: web.Request) -> str:
    return f"{'https' if is_https(request) else 'http'}://{request.headers.get('Host', '')}"


async def _costs_file(request: web.Request, app: Any, account: Any, actor: Any, name: str) -> web.Response:
    """The billing report's CSV or the FOCUS CSV of a month: the signed-in account's, or, for the
    admin, every account's (or the account it acts as)."""
    from billing.report import billing_report  # noqa: PLC0415
    period = request.query.get("period", "")
    if not _PERIOD.fullmatch(period):
        raise ConsoleError("ValidationError", "period must be YYYY-MM")
    if app.billing is not None:
        await app.billing.bring_up_to_date()
    whose = None if actor.is_admin else actor.account_id
    fmt = "focus" if name == "focus.csv" else "csv"
    try:
        text = await billing_report(app.db, app.config, period, whose, fmt, rate=False)
    except ValueError as exc:
        raise ConsoleError("ValidationError", str(exc)) from None
    filename = f"nimbo-{'focus' if fmt == 'focus' else 'costs'}-{period}.csv"
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _static(name: str) -> web.Response:
    if name not in _STATIC:
        raise ConsoleError("NotFound", "No such file.", 404)
    with open(os.path.join(STATIC_DIR, name), "rb") as fh:
        body = fh.read()
    return web.Response(body=body, headers={"Content-Type": _STATIC_TYPES[os.path.splitext(name)[1]],
                                            "Cache-Control": "no-cache"})
