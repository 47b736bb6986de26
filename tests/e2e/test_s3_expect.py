"""``Expect`` through raw HTTP and boto3 against a live server: S3 ignores expectations other
than ``100-continue``, and answers ``100 Continue`` only once the request is authenticated, so a
bad signature gets its 403 before any body is sent."""
from __future__ import annotations

import hashlib
import socket
import uuid

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@pytest.fixture(scope="module")
def bucket(server):
    name = f"expect-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=name)
    return name


def _signed_head(server, method: str, path: str, body: bytes, headers: dict,
                 secret: str | None = None) -> bytes:
    creds = server.credentials()
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body,
                         headers={**headers, "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    S3SigV4Auth(Credentials(creds["AWS_ACCESS_KEY_ID"], secret or creds["AWS_SECRET_ACCESS_KEY"]),
                "s3", "us-east-1").add_auth(request)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()
              if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_head(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_100_continue_only_after_authentication(server, bucket):
    body = b"b" * 5000
    # a bad signature: the 403 comes first, no 100 Continue, and the body is never sent
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_signed_head(server, "PUT", f"/{bucket}/k", body,
                                  {"Expect": "100-continue"}, secret="wrong" * 8))
        head = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 403"), head[:200]
    # a good one: 100 Continue, then the body, then 200
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_signed_head(server, "PUT", f"/{bucket}/k", body, {"Expect": "100-continue"}))
        head = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 100 Continue"), head[:200]
        sock.sendall(body)
        head = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
    assert server.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read() == body


def test_other_expectations_are_ignored(server, bucket):
    body = b"other expectation"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_signed_head(server, "PUT", f"/{bucket}/o", body, {"Expect": "200-ok"}) + body)
        head = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]


def test_boto3_large_put_with_expect_continue(server, bucket):
    s3 = server.client("s3")
    data = b"L" * (3 << 20)          # botocore sends Expect: 100-continue above 1 MiB
    s3.put_object(Bucket=bucket, Key="large", Body=data)
    assert s3.head_object(Bucket=bucket, Key="large")["ContentLength"] == len(data)
