"""Requests that Nimbo makes to itself on an account's behalf (billing delivering a Cost and Usage
Report into a tenant's bucket): the same handlers, checks and usage events as a client's request."""
from __future__ import annotations

import uuid
from typing import Any

from multidict import CIMultiDict

from gateway.context import AppContext, RequestContext


class BytesBody:
    """A request body held in memory, read like aiohttp's stream."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    async def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else min(len(self._data), self._offset + n)
        chunk = bytes(self._data[self._offset:end])
        self._offset = end
        return chunk


def report_delivery(context: AppContext) -> Any:
    """``deliver(bucket, key, data, account_id)`` for billing: a PutObject as that account, so a
    missing bucket is NoSuchBucket and another account's bucket is AccessDenied."""
    from s3_api.objects import put_object  # noqa: PLC0415 (the S3 handler does the work)

    async def deliver(bucket: str, key: str, data: bytes, account_id: str) -> None:
        account = await context.accounts.store.get_account(account_id)
        if account is None:
            raise LookupError(f"no account {account_id}")
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        ctx = RequestContext(app=context, request_id=uuid.uuid4().hex, service="s3",
                             region=context.config.default_region,
                             headers=CIMultiDict({"Content-Length": str(len(data))}),
                             operation="PutObject", account=account, state=context.states.get("s3"))
        await put_object(ctx, {"Bucket": bucket, "Key": key, "Body": BytesBody(data),
                               "ContentLength": len(data), "ContentType": content_type})

    async def remove(bucket: str, key: str, account_id: str) -> None:
        """A DeleteObject as that account (an overwritten CUR assembly's files)."""
        from s3_api.objects import delete_object  # noqa: PLC0415
        account = await context.accounts.store.get_account(account_id)
        if account is None:
            raise LookupError(f"no account {account_id}")
        ctx = RequestContext(app=context, request_id=uuid.uuid4().hex, service="s3",
                             region=context.config.default_region, headers=CIMultiDict(),
                             operation="DeleteObject", account=account, state=context.states.get("s3"))
        await delete_object(ctx, {"Bucket": bucket, "Key": key})
    deliver.remove = remove  # type: ignore[attr-defined]
    return deliver
