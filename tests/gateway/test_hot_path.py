"""The gateway's request path, in process over real HTTP: request ids, the optional access log,
one route for everything (Expect: 100-continue included), inline objects sent as one response,
the query string parsed once, the event loop choice."""
from __future__ import annotations

import asyncio
import logging
import random
import re
import urllib.parse

import aiohttp
import boto3
import botocore.config
import pytest
from aiohttp.test_utils import TestServer

from gateway import app as gateway_app
from gateway import cli, dispatch
from gateway.app import APP_CONTEXT, create_app
from gateway.config import load_config


class Running:
    def __init__(self, server: TestServer, key) -> None:
        self.server = server
        self.endpoint = str(server.make_url("")).rstrip("/")
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id=key.access_key_id,
                               aws_secret_access_key=key.secret_access_key,
                               config=botocore.config.Config(signature_version="s3v4"))

    def presign(self, operation: str, **params) -> str:
        return self.s3.generate_presigned_url(operation, params, ExpiresIn=600)


async def _start(tmp_path, **config) -> Running:
    app = create_app(load_config(None, data_dir=str(tmp_path / "data"), backend="fake", **config))
    server = TestServer(app)
    await server.start_server()
    key = (await app[APP_CONTEXT].accounts.store.list_keys(None))[0]
    return Running(server, key)


@pytest.fixture
async def nimbo(tmp_path):
    running = await _start(tmp_path)
    yield running
    await running.server.close()


async def _request(method: str, url: str, data: bytes | None = None, headers=None):
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, data=data, headers=headers or {}) as response:
            return response.status, response.headers.copy(), await response.read()


async def test_inline_object_round_trip_and_request_ids(nimbo):
    status, _, _ = await _request("PUT", nimbo.presign("create_bucket", Bucket="hot"))
    assert status == 200
    body = bytes(range(256)) * 16
    status, headers, _ = await _request("PUT", nimbo.presign("put_object", Bucket="hot", Key="a b+c"),
                                        data=body, headers={"Expect": "100-continue"})
    assert status == 200 and headers["ETag"].startswith('"')
    ids = set()
    for _ in range(5):
        status, headers, got = await _request("GET", nimbo.presign("get_object", Bucket="hot", Key="a b+c"))
        assert status == 200 and got == body
        assert headers["Content-Length"] == str(len(body))
        assert re.fullmatch(r"[0-9A-F]{16}", headers["x-amz-request-id"])
        assert headers["x-amz-id-2"] and headers["Server"] == "Nimbo"
        ids.add(headers["x-amz-request-id"])
    assert len(ids) == 5
    status, headers, got = await _request("HEAD", nimbo.presign("head_object", Bucket="hot", Key="a b+c"))
    assert status == 200 and got == b"" and headers["Content-Length"] == str(len(body))
    status, headers, got = await _request("GET", nimbo.presign("get_object", Bucket="hot", Key="a b+c"),
                                          headers={"Range": "bytes=10-19"})
    assert status == 206 and got == body[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(body)}"


async def test_any_path_and_method_reach_the_gateway(nimbo):
    status, headers, body = await _request("GET", nimbo.endpoint + "/no-such-bucket/deep/key?x=1")
    assert status in (403, 404) and b"<Error>" in body and headers["x-amz-request-id"]
    status, _, body = await _request("PATCH", nimbo.endpoint + "/")
    assert status == 405 and b"MethodNotAllowed" in body


async def test_access_log_is_off_unless_configured(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nimbo.access")
    quiet = await _start(tmp_path / "quiet")
    try:
        await _request("GET", quiet.presign("list_buckets"))
    finally:
        await quiet.server.close()
    assert not [r for r in caplog.records if r.name == "nimbo.access"]
    loud = await _start(tmp_path / "loud", access_log=True)
    try:
        await _request("GET", loud.presign("list_buckets"))
    finally:
        await loud.server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "nimbo.access"]
    assert len(lines) == 1 and " GET / s3 ListBuckets -> 200 " in lines[0]


def test_request_ids_are_s3_shaped_and_distinct():
    ids = [gateway_app.new_request_id("s3") for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9A-F]{16}", i) for i in ids) and len(set(ids)) == 1000
    assert re.fullmatch(r"[0-9a-f-]{36}", gateway_app.new_request_id("ec2"))


def test_query_is_parsed_as_parse_qsl_does():
    rng = random.Random(5)
    alphabet = "ab=&+%2F%zz%E9é ;"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
        expected = urllib.parse.parse_qsl(text, keep_blank_values=True)
        assert list(dispatch.query_multidict(text).items()) == expected, text


def test_event_loop_is_uvloop_when_installed(monkeypatch):
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("NIMBO_EVENT_LOOP", raising=False)
    assert cli._event_loop_runner() is uvloop.run
    monkeypatch.setenv("NIMBO_EVENT_LOOP", "asyncio")
    assert cli._event_loop_runner() is asyncio.run
