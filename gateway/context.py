"""What an operation handler receives besides its input dict: the request context.

Handlers (``async def put_object(ctx, params) -> dict``) in ``ec2_api``, ``s3_api`` and ``billing``
never import the gateway; they use these attributes only:

- ``request_id``: str, also in the response headers.
- ``account``: ``storage.accounts.Account`` of the signer, or None for an anonymous S3 request.
- ``access_key_id``: str | None.
- ``region``: the region the request was signed for (or the default region when unsigned).
- ``service``: 's3', 'ec2', 'sts', 'ce', 'cur'.
- ``operation``: the botocore operation name.
- ``state``: the service's own state object (what its ``open_state`` returned at start-up).
- ``app``: the ``AppContext`` (config, db, accounts, clock, backend).
- ``headers``: the request headers (case-insensitive multidict), for what no model member carries
  (``Expect``, ``x-amz-decoded-content-length``, ``Content-Encoding: aws-chunked`` ...).
- ``auth``: ``gateway.auth.request.AuthResult`` or None (payload hash mode, chunk-signing chain).
- ``remote``: the client's address (None when there is no connection); ``secure``: whether the
  request came over TLS (S3's SSE-C refuses keys sent in the clear: ``s3_api.encryption``).
- ``host``: the Host header; ``now()``: the current time (aware UTC datetime; tests inject a clock).
- ``meter``: ``gateway.metering.Meter`` bound to this request: ``ctx.meter.count(usage_type,
  operation, amount, resource_id='')`` for counted usage (bytes in/out, requests).
- ``chunk_chain``: for ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD*`` uploads, the chunk-signature chain
  (``.next(chunk_sha256_hex, signature)``, ``.trailer(bytes, signature)``), else None.
- ``bucket``, ``bill_to``: an S3 handler sets the bucket (metering resource) and may name the
  account that pays for the request (the bucket owner) when it is not the requester.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class AppContext:
    """Everything that lives as long as the server: made once at start-up."""

    config: Any
    db: Any
    accounts: Any
    clock: Callable[[], dt.datetime] = utc_now
    backend: Any = None
    network: Any = None        # the instance network's data path (ec2_api.network_sync); None: user-mode
    states: dict[str, Any] = field(default_factory=dict)
    meter_buffer: Any = None
    billing: Any = None
    leadership: Any = None     # gateway.leader.Leadership: whether this process leads, forwarding


@dataclass
class RequestContext:
    app: AppContext
    request_id: str
    service: str
    region: str
    headers: Any
    host: str = ""
    operation: str = ""
    requested_operation: str = ""   # what was asked, also when unsupported (the access log's name)
    account: Any = None
    access_key_id: str | None = None
    auth: Any = None
    state: Any = None
    meter: Any = None
    chunk_chain: Any = None
    bill_to: str | None = None   # an S3 handler may name the bucket owner as the payer
    bucket: str | None = None
    remote: str | None = None
    secure: bool = False
    cors_headers: dict[str, str] | None = None   # S3: Access-Control-* of a cross-origin request
    _host_id: str | None = field(default=None, repr=False, compare=False)

    def now(self) -> dt.datetime:
        return self.app.clock()

    @property
    def host_id(self) -> str:
        if self._host_id is None:   # made once: every S3 response and error carries it
            self._host_id = base64.b64encode(hashlib.sha256(self.request_id.encode()).digest()).decode()
        return self._host_id

    def response_headers(self) -> dict[str, str]:
        """The request-id headers every response of this request carries (and an S3
        cross-origin request's ``Access-Control-*`` headers, ``s3_api.preflight``)."""
        if self.service == "s3":
            headers = {"x-amz-request-id": self.request_id, "x-amz-id-2": self.host_id,
                       "Server": "Nimbo"}
            if self.cors_headers:
                headers.update(self.cors_headers)
            return headers
        return {"x-amzn-RequestId": self.request_id}
