"""The HTTP connection layer under the gateway: how aiohttp's server parses and keeps
connections, set in one place for ``nimbo serve`` (``gateway.cli.run_server``) and tests.

- Request bodies are never inflated (``auto_decompress=False``): a ``Content-Encoding: gzip``
  body is data to store as sent (S3 keeps the bytes and returns the header); the services see
  exactly the bytes that were signed.
"""
from __future__ import annotations

from typing import Any


def handler_options(config: Any) -> dict[str, Any]:
    """Keyword arguments for aiohttp's ``AppRunner``/``Server`` (its request handler's)."""
    return {"auto_decompress": False}
