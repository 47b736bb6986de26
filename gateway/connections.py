"""The HTTP connection layer under the gateway: how aiohttp's server parses and keeps
connections, set in one place for ``nimbo serve`` (``gateway.cli.run_server``) and tests.

- Request bodies are never inflated (``auto_decompress=False``): a ``Content-Encoding: gzip``
  body is data to store as sent (S3 keeps the bytes and returns the header); the services see
  exactly the bytes that were signed.
- ``Expect``: aiohttp answers ``100 Continue`` before the handler runs and 417 to any other
  expectation. Nimbo defers it (``defer_expect`` is the route's expect handler): other
  expectations are ignored, as S3 ignores them, and ``100 Continue`` is sent by
  ``send_continue`` just before the body is first read, after authentication where the
  signature does not cover the body (S3), so a refused request gets its error (a 403) without
  the client sending the body; such a connection is then closed (``close_if_body_unsent``)
  rather than left waiting for a body that will not come.
- A malformed HTTP message (bad request line, header, length or chunking) is one WARNING line
  with the peer and the reason (``ServerLog``), not aiohttp's ERROR with a traceback: it is the
  client's fault, and fuzzers and scanners send many.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

log = logging.getLogger("nimbo.http")


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger (``aiohttp.server``), with a client's malformed message reduced
    to one WARNING line on ``nimbo.http``; anything else is logged as aiohttp logs it."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
            exc = exc.__cause__     # a body's framing broke while aiohttp drained it
        if isinstance(exc, HttpProcessingError):
            peer = args[0] if args and "%s" in str(msg) else "-"
            log.warning("malformed HTTP request from %s: %s (%s)", peer, _reason(exc),
                        type(exc).__name__)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


def _reason(exc: HttpProcessingError) -> str:
    """The first line of aiohttp's message (later lines quote the offending bytes), bounded."""
    text = (exc.message or "").strip().splitlines()
    reason = text[0].strip().rstrip(":") if text else ""
    return (reason or f"HTTP {exc.code}")[:200]


_CONTINUED = web.RequestKey("nimbo.100-continue-sent", bool)


async def defer_expect(request: web.Request) -> None:
    """The route's expect handler: nothing now (see ``send_continue``)."""


def expects_continue(request: web.BaseRequest) -> bool:
    return (request.version >= HttpVersion11 and
            request.headers.get("Expect", "").strip().lower() == "100-continue")


async def send_continue(request: web.BaseRequest) -> None:
    """``100 Continue`` if the client waits for it (once per request), before its body is read."""
    if request.get(_CONTINUED) or not expects_continue(request):
        return
    request[_CONTINUED] = True
    if request.content.is_eof():
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0     # the response proper has not started


def close_if_body_unsent(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """A request answered without its ``100 Continue``: the client holds its body back, so the
    connection cannot be reused (aiohttp would wait to drain that body)."""
    if expects_continue(request) and not request.get(_CONTINUED) and \
            not request.content.is_eof() and not response.prepared:
        response.force_close()


def handler_options(config: Any) -> dict[str, Any]:
    """Keyword arguments for aiohttp's ``AppRunner``/``Server`` (its request handler's)."""
    options: dict[str, Any] = {"auto_decompress": False, "logger": ServerLog()}
    keepalive = getattr(config, "http_keepalive_timeout", None)
    if keepalive is not None:
        options["keepalive_timeout"] = float(keepalive)
    return options
