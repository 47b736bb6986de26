"""Client mistakes and client hang-ups through real clients against a live server: each is the
service's own 4xx error (or one log line), never a 500 or a traceback."""
from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import socket
import time
import uuid

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import NimboServer


def s3_send(server, method: str, path: str, body: bytes = b"", headers=None):
    """A SigV4-signed S3 request as botocore signs it, sent as given."""
    creds = server.credentials()
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body,
                         headers=dict(headers or {}))
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]), "s3",
                "us-east-1").add_auth(request)
    prepared = request.prepare()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=dict(prepared.headers))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("encoding", ["no-such-encoding", "utf-32", "rot13", "x-mac-japanese"])
def test_xml_in_an_unknown_encoding_is_malformed_xml(server, encoding):
    s3 = server.client("s3")
    bucket = f"enc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = (f'<?xml version="1.0" encoding="{encoding}"?>'
            '<Delete><Object><Key>a</Key></Object></Delete>').encode()
    md5 = __import__("base64").b64encode(hashlib.md5(body).digest()).decode()
    status, answer = s3_send(server, "POST", f"/{bucket}?delete", body, {"Content-MD5": md5})
    assert status == 400, answer
    assert b"<Code>MalformedXML</Code>" in answer


@pytest.mark.parametrize("granularity,start,end", [
    ("MONTHLY", "9999-11-01", "9999-12-31"),
    ("MONTHLY", "9999-12-01", "9999-12-31"),
    ("DAILY", "2026-01-01", "10000-01-01"),
])
def test_cost_explorer_dates_at_the_end_of_time_are_validation_errors(server, granularity,
                                                                        start, end):
    ce = server.client("ce")
    with pytest.raises(ClientError) as info:
        ce.get_cost_and_usage(TimePeriod={"Start": start, "End": end}, Granularity=granularity,
                              Metrics=["UnblendedCost"])
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("ValidationException", 400)


def test_client_hanging_up_during_get_object_is_one_log_line(fresh_server):
    srv: NimboServer = fresh_server
    srv.extra_args = ["--access-log"]
    srv.start()
    s3 = srv.client("s3")
    bucket = f"abort-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="big", Body=b"z" * (32 << 20))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"})
    path = url[len(srv.endpoint):]
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
        sock.close()
    s3.head_object(Bucket=bucket, Key="big")           # still serving
    deadline = time.monotonic() + 10
    while srv.log().count("client abort:") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    log = srv.log()
    assert log.count("client abort:") == 3, log
    assert "Traceback" not in log and "internal error" not in log, log
    gets = [line for line in log.splitlines() if "nimbo.access" in line and " GetObject " in line]
    assert len(gets) == 3 and not any("-> 500" in line for line in gets), gets
