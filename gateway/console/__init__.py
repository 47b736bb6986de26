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
    started = time.monotonic()
    response = await serve_route(request, app, services)
    if getattr(app.config, "access_log", False):
        import logging  # noqa: PLC0415
        logging.getLogger("nimbo.access").info(
            "%s %s %s console - -> %d %.1fms -", request.remote, request.method, request.path,
            response.status, (time.monotonic() - started) * 1000)
    return response
