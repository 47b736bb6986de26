"""The CUR delivery seam the server wires to S3 (gateway.internal.report_delivery): a PutObject
and, for OVERWRITE_REPORT (issue 9 item 18), a DeleteObject, both as the report's account."""
from __future__ import annotations

import pytest

from gateway.app import APP_CONTEXT
from gateway.internal import report_delivery
from tests.gateway.test_hot_path import _request, _start


@pytest.fixture
async def running(tmp_path):
    server = await _start(tmp_path)
    yield server
    await server.server.close()


async def test_deliver_then_remove_as_the_account(running):
    status, _, _ = await _request("PUT", running.presign("create_bucket", Bucket="reports"))
    assert status == 200
    context = running.server.app[APP_CONTEXT]
    account_id = (await context.accounts.store.list_keys(None))[0].account_id
    deliver = report_delivery(context)
    await deliver("reports", "cur/a/1.csv.gz", b"data", account_id)
    status, _, body = await _request("GET", running.presign("get_object", Bucket="reports", Key="cur/a/1.csv.gz"))
    assert (status, body) == (200, b"data")
    await deliver.remove("reports", "cur/a/1.csv.gz", account_id)
    status, _, _ = await _request("GET", running.presign("get_object", Bucket="reports", Key="cur/a/1.csv.gz"))
    assert status == 404
    await deliver.remove("reports", "cur/a/1.csv.gz", account_id)      # already gone: harmless


async def test_another_account_cannot_remove_from_the_bucket(running):
    await _request("PUT", running.presign("create_bucket", Bucket="owned"))
    context = running.server.app[APP_CONTEXT]
    owner = (await context.accounts.store.list_keys(None))[0].account_id
    tenant = await context.accounts.create_account("tenant-x")
    deliver = report_delivery(context)
    await deliver("owned", "k", b"kept", owner)
    with pytest.raises(Exception) as caught:
        await deliver.remove("owned", "k", tenant.account_id)
    assert getattr(caught.value, "code", "") in ("AccessDenied", "NoSuchBucket")
    status, _, body = await _request("GET", running.presign("get_object", Bucket="owned", Key="k"))
    assert (status, body) == (200, b"kept")
