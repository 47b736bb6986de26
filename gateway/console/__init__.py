"""The web console: ``/console/`` on the same server and port as the APIs.

Which requests are the console's (``is_console_request``), the rule that keeps S3 whole:

- a path-style request to ``/console`` or ``/console/...`` that carries **no** signature (no
  ``Authorization`` header, no presigned ``X-Amz-Credential`` / ``AWSAccessKeyId`` query) and is
  not addressed virtual-hosted style (``Host: <bucket>.<s3_domain>``) is the console's;
- every signed request is an API request, so a bucket named ``console`` works for every SDK and
  CLI (path-style or virtual-hosted); only *anonymous path-style* reads of a public bucket named
  ``console`` are shadowed: such a bucket is read anonymously as ``console.<s3_domain>``;
- an unsigned ``GET /`` from a browser (``Accept`` names ``text/html``) is redirected to
  ``/console/``; any other unsigned ``GET /`` stays S3's anonymous ListBuckets (AccessDenied).

The parts: ``sessions`` (sign-in, the session cookie), ``csrf``, ``calls`` (an API operation
through its own handler as the signed-in account), ``objects`` (upload, download, presigned link),
``keys`` (access keys and accounts), ``routes`` (the HTTP routes), ``static/`` (the page, its CSS and
JavaScript: plain files, no build step, nothing loaded from elsewhere; the cost chart is an SVG the
page draws itself).
"""
from __future__ import annotations

from typing import Any

PREFIX = "/console"


def is_console_request(request: Any, s3_domain: str) -> bool:
    raw_path = request.raw_path
    path, _, query = raw_path.partition("?")
    if path == "/" and request.method == "GET" and not query:
        if "text/html" not in request.headers.get("Accept", ""):
            return False
    elif not (path == PREFIX or path.startswith(PREFIX + "/")):
        return False
    if "Authorization" in request.headers:
        return False
    lowered = query.lower()
    if "x-amz-credential=" in lowered or "awsaccesskeyid=" in lowered:
        return False
    host = request.headers.get("Host", "").rsplit(":", 1)[0].lower()
    return not host.endswith("." + s3_domain)


async def serve(request: Any, app: Any, services: dict) -> Any:
    """The console's answer; one access-log line when the server logs requests (the path only:
    never a query's values nor a body)."""
    import time  # noqa: PLC0415
    from gateway.console.routes import serve as serve_route  # noqa: PLC0415 (loaded on first use)
    from gateway.leader import client_address  # noqa: PLC0415
    started = time.monotonic()
    response = await serve_route(request, app, services)
    if getattr(app.config, "access_log", False):
        import logging  # noqa: PLC0415
        logging.getLogger("nimbo.access").info(
            "%s %s %s console - -> %d %.1fms -", client_address(request), request.method, request.path,
            response.status, (time.monotonic() - started) * 1000)
    return response


def needs_leader(request: Any) -> bool:
    """Whether this console request must be served by the leader worker when several serve
    (``--workers``): its API calls and cost files reach EC2 and Cost Explorer, which live there.
    Object uploads and downloads (S3, served by every worker) and the static page stay here."""
    path = request.path
    return path.startswith(PREFIX + "/api/") and path != PREFIX + "/api/object"



async def forward_to_leader(request: Any, app: Any) -> Any:
    """Serve ``request`` through the leader worker (``needs_leader``); a body over the console's
    bound is refused here as the console refuses it."""
    from gateway import errors  # noqa: PLC0415
    from gateway.context import RequestContext  # noqa: PLC0415
    from gateway.dispatch import read_all  # noqa: PLC0415
    from gateway.console.routes import MAX_JSON, ConsoleError, serve_error  # noqa: PLC0415
    try:
        body = await read_all(request.content, MAX_JSON)
    except errors.MaxMessageLengthExceeded:
        return serve_error(ConsoleError("RequestTooLarge", "The request body is too large.", 413))
    ctx = RequestContext(app=app, request_id="console", service="console",
                         region=app.config.default_region, headers=request.headers)
    return await app.leadership.forward(request, ctx, body)
