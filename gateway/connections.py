"""The HTTP connection layer under the gateway: how aiohttp's server parses and keeps
connections, set in one place for ``nimbo serve`` (``gateway.cli.run_server``) and tests.

- Request bodies are never inflated (``auto_decompress=False``): a ``Content-Encoding: gzip``
  body is data to store as sent (S3 keeps the bytes and returns the header); the services see
  exactly the bytes that were signed.
- A malformed HTTP message (bad request line, header, length or chunking) is one WARNING line
  with the peer and the reason (``ServerLog``), not aiohttp's ERROR with a traceback: it is the
  client's fault, and fuzzers and scanners send many.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("nimbo.http")


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger (``aiohttp.server``), with a client's malformed message reduced
    to one WARNING line on ``nimbo.http``; anything else is logged as aiohttp logs it."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
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


def handler_options(config: Any) -> dict[str, Any]:
    """Keyword arguments for aiohttp's ``AppRunner``/``Server`` (its request handler's)."""
    options: dict[str, Any] = {"auto_decompress": False, "logger": ServerLog()}
    keepalive = getattr(config, "http_keepalive_timeout", None)
    if keepalive is not None:
        options["keepalive_timeout"] = float(keepalive)
    return options
