"""Uploads framed with ``Transfer-Encoding: chunked`` and ``Content-Encoding: aws-chunked``
through raw signed HTTP (as botocore frames a trailing-checksum upload) against a live server."""
from __future__ import annotations

import base64
import http.client
import uuid
import zlib

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@pytest.fixture(scope="module")
def bucket(server):
    name = f"te-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=name)
    return name


def aws_chunked(data: bytes, trailer: bool = True, piece: int = 7000) -> bytes:
    out = b""
    for i in range(0, len(data), piece):
        chunk = data[i:i + piece]
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    out += b"0\r\n"
    if trailer:
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        out += f"x-amz-checksum-crc32:{crc}\r\n".encode()
    return out + b"\r\n"


def put(server, path: str, headers: dict, body: bytes, *, transfer_chunked: bool):
    """A SigV4 header-signed PUT (payload hash from ``headers``), the body sent either with
    Content-Length or with HTTP/1.1 chunked framing and no Content-Length."""
    creds = server.credentials()
    payload_hash = headers.pop("x-amz-content-sha256")
    request = AWSRequest(method="PUT", url=f"{server.endpoint}{path}", headers=dict(headers))

    class Signer(S3SigV4Auth):
        def payload(self, request):     # the streaming mode, as botocore signs it
            return payload_hash
    Signer(Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]), "s3",
           "us-east-1").add_auth(request)
    sent = {k: v for k, v in request.headers.items()}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        if transfer_chunked:
            sent["Transfer-Encoding"] = "chunked"
            conn.request("PUT", path, body=iter([body[:5000], body[5000:]]), headers=sent,
                         encode_chunked=True)
        else:
            sent["Content-Length"] = str(len(body))
            conn.request("PUT", path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_transfer_encoding_chunked_aws_chunked_with_trailer(server, bucket):
    """botocore's trailing-checksum upload: Transfer-Encoding: chunked, no Content-Length,
    Content-Encoding: aws-chunked with x-amz-decoded-content-length: accepted, as S3 does."""
    data = bytes(range(256)) * 100
    status, body = put(server, f"/{bucket}/trailer", {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data))}, aws_chunked(data), transfer_chunked=True)
    assert status == 200, body
    s3 = server.client("s3")
    assert s3.get_object(Bucket=bucket, Key="trailer")["Body"].read() == data


def test_put_without_length_or_transfer_encoding_is_missing_content_length(server, bucket):
    import socket
    creds = server.credentials()
    request = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/nolength",
                         headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})

    class Signer(S3SigV4Auth):
        def payload(self, request):
            return "UNSIGNED-PAYLOAD"
    Signer(Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]), "s3",
           "us-east-1").add_auth(request)
    head = [f"PUT /{bucket}/nolength HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 411") and b"<Code>MissingContentLength</Code>" in answer


@pytest.mark.parametrize("transfer_chunked", [False, True])
def test_content_encoding_gzip_then_aws_chunked(server, bucket, transfer_chunked):
    """``Content-Encoding: gzip, aws-chunked`` (botocore's with ContentEncoding="gzip"): the
    aws-chunked framing is removed, the gzip bytes stored as sent, Content-Encoding: gzip kept."""
    import gzip
    data = gzip.compress(b"compressible " * 3000)
    status, body = put(server, f"/{bucket}/gz", {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "gzip, aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data))}, aws_chunked(data),
        transfer_chunked=transfer_chunked)
    assert status == 200, body
    got = server.client("s3").get_object(Bucket=bucket, Key="gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["Body"].read() == data


def _add_transfer_encoding(request, **kwargs):
    request.headers.add_header("Transfer-Encoding", "chunked")


@pytest.mark.parametrize("size", [3, 200_000])
def test_boto3_put_with_transfer_encoding_chunked(server, bucket, size):
    """boto3 with ``Transfer-Encoding: chunked`` added (no Content-Length is sent then), as the
    s3-tests suite does: the signed body is read to its end and stored."""
    s3 = server.client("s3")
    s3.meta.events.register_first("before-sign.s3.*", _add_transfer_encoding)
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    out = s3.put_object(Bucket=bucket, Key=f"te-{size}", Body=data)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=f"mp-{size}")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=f"mp-{size}", UploadId=upload_id, PartNumber=1,
                          Body=data)
    s3.complete_multipart_upload(Bucket=bucket, Key=f"mp-{size}", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    plain = server.client("s3")
    assert plain.get_object(Bucket=bucket, Key=f"te-{size}")["Body"].read() == data
    assert plain.get_object(Bucket=bucket, Key=f"mp-{size}")["Body"].read() == data


def test_chunked_upload_bytes_are_metered(server, bucket):
    """Data sent with Transfer-Encoding: chunked (no Content-Length) counts as bytes in."""
    import sqlite3
    import time
    s3 = server.client("s3")
    s3.meta.events.register_first("before-sign.s3.*", _add_transfer_encoding)
    metered_bucket = f"tem-{uuid.uuid4().hex[:8]}"
    server.client("s3").create_bucket(Bucket=metered_bucket)
    s3.put_object(Bucket=metered_bucket, Key="k", Body=b"m" * 123_456)
    deadline = time.monotonic() + 15
    total = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{server.data_dir}/nimbo.db?mode=ro", uri=True) as db:
            total = db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM usage_counts WHERE usage_type ="
                " 'DataTransfer-In-Bytes' AND operation = 'PutObject' AND resource_id = ?",
                (metered_bucket,)).fetchone()[0]
        if total:
            break
        time.sleep(0.5)
    assert total >= 123_456
