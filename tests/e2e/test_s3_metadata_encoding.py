"""Non-ASCII user metadata through boto3 and raw signed HTTP against a live server, as S3 treats
it: values are decoded (RFC 2047 encoded words, raw UTF-8) before they are stored and returned
RFC 2047-encoded (``=?UTF-8?B?...?=``) when they are not ASCII, so every header on the wire is
ASCII and botocore (which refuses to send non-ASCII metadata) gets back what it sent."""
from __future__ import annotations

import base64
import hashlib
import socket
import uuid

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def b_word(text: str) -> str:
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


@pytest.fixture(scope="module")
def bucket(server):
    name = f"meta-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=name)
    return name


def test_rfc2047_metadata_round_trips_through_boto3(server, bucket):
    s3 = server.client("s3")
    sent = {"name": b_word("café ☃"), "q": "=?utf-8?q?caf=C3=A9?=", "plain": "ascii only"}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata=sent)
    got = s3.head_object(Bucket=bucket, Key="k")["Metadata"]
    assert got == {"name": b_word("café ☃"), "q": b_word("café"), "plain": "ascii only"}
    assert s3.get_object(Bucket=bucket, Key="k")["Metadata"] == got
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert copied["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.head_object(Bucket=bucket, Key="copy")["Metadata"] == got


def _raw_put(server, path: str, value_bytes: bytes) -> bytes:
    creds = server.credentials()
    body = b"raw"
    value = value_bytes.decode("utf-8", "surrogateescape")
    request = AWSRequest(method="PUT", url=f"{server.endpoint}{path}", data=body,
                         headers={"x-amz-meta-city": value,
                                  "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    S3SigV4Auth(Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]), "s3",
                "us-east-1").add_auth(request)
    lines = [f"PUT {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{server.port}".encode(),
             f"Content-Length: {len(body)}".encode()]
    for name, text in request.headers.items():
        if name.lower() in ("host", "content-length"):
            continue
        raw = value_bytes if name.lower() == "x-amz-meta-city" else text.encode()
        lines.append(name.encode() + b": " + raw)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return sock.recv(65536)


def test_raw_utf8_metadata_comes_back_rfc2047_encoded(server, bucket):
    answer = _raw_put(server, f"/{bucket}/raw", "Zürich".encode())
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    s3 = server.client("s3")
    assert s3.head_object(Bucket=bucket, Key="raw")["Metadata"] == {"city": b_word("Zürich")}
    # every byte of the answer's headers is ASCII
    url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "raw"})
    path = url[len(server.endpoint):]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200") and head.isascii(), head
    assert b"x-amz-meta-city: " + b_word("Zürich").encode() in head
