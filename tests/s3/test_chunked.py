"""aws-chunked bodies: unsigned with a trailer, signed per chunk (with and without a trailer)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib

import pytest

from s3_api import errors
from s3_api.chunked import AwsChunkedReader
from tests.s3.helpers import Body, md5_hex

EMPTY = hashlib.sha256(b"").hexdigest()
KEY = hashlib.sha256(b"signing key").digest()
DATE, SCOPE = "20260501T120000Z", "20260501/us-east-1/s3/aws4_request"
SEED = "a" * 64


class SignatureMismatch(Exception):
    pass


class Chain:
    """SigV4 chunk chain, written from AWS's description (independent of the gateway's)."""

    def __init__(self, previous: str = SEED) -> None:
        self.previous = previous
        self.calls: list[tuple] = []

    def _sign(self, text: str) -> str:
        return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()

    def chunk_signature(self, chunk_sha: str) -> str:
        return self._sign(f"AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{self.previous}\n{EMPTY}\n"
                          f"{chunk_sha}")

    def trailer_signature(self, trailer: bytes) -> str:
        return self._sign(f"AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{self.previous}\n"
                          f"{hashlib.sha256(trailer).hexdigest()}")

    def next(self, chunk_sha: str, signature: str) -> None:
        self.calls.append(("chunk", chunk_sha))
        expected = self.chunk_signature(chunk_sha)
        if expected != signature:
            raise SignatureMismatch(chunk_sha)
        self.previous = expected

    def trailer(self, trailer: bytes, signature: str) -> None:
        self.calls.append(("trailer", trailer))
        if self.trailer_signature(trailer) != signature:
            raise SignatureMismatch("trailer")


def encode(data: bytes, chunk: int, *, signed: bool, trailers: dict | None = None,
           corrupt_chunk: int | None = None) -> bytes:
    signer = Chain()
    out = []
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for n, piece in enumerate(pieces):
        head = f"{len(piece):x}"
        if signed:
            sig = signer.chunk_signature(hashlib.sha256(piece).hexdigest())
            signer.previous = sig
            if n == corrupt_chunk:
                sig = "0" * 64
            head += f";chunk-signature={sig}"
        out.append(head.encode() + b"\r\n" + piece + (b"\r\n" if piece else b""))
    if trailers:
        lines = "".join(f"{k}:{v}\n" for k, v in trailers.items()).encode()
        out.append(b"".join(f"{k}:{v}\r\n".encode() for k, v in trailers.items()))
        if signed:
            out.append(f"x-amz-trailer-signature:{signer.trailer_signature(lines)}\r\n".encode())
    out.append(b"\r\n")
    return b"".join(out)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def chunked_ctx(s3, data: bytes, mode: str, chain=None, trailer: str | None = None):
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-content-sha256": mode}
    if trailer:
        headers["x-amz-trailer"] = trailer
    return s3.ctx(headers=headers, payload_hash=mode, chunk_chain=chain)


async def test_unsigned_with_trailer_like_botocore(s3, bucket):
    data = os.urandom(300_000)
    body = encode(data, 65536, signed=False, trailers={"x-amz-checksum-crc32": crc32_b64(data)})
    ctx = chunked_ctx(s3, data, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer="x-amz-checksum-crc32")
    out = await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body, piece=7000),
                        ContentLength=len(body), ContentEncoding="aws-chunked",
                        ChecksumAlgorithm="CRC32")
    assert out["ETag"] == f'"{md5_hex(data)}"' and out["ChecksumCRC32"] == crc32_b64(data)
    got, stored = await s3.get(bucket, "k")
    assert stored == data and "ContentEncoding" not in got   # aws-chunked is not stored


async def test_trailer_checksum_mismatch(s3, bucket):
    data = os.urandom(1000)
    body = encode(data, 512, signed=False, trailers={"x-amz-checksum-crc32": crc32_b64(b"other")})
    ctx = chunked_ctx(s3, data, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", trailer="x-amz-checksum-crc32")
    with pytest.raises(errors.BadDigest, match="CRC32"):
        await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body),
                      ContentLength=len(body))


async def test_signed_chunks(s3, bucket):
    data = os.urandom(200_000)
    body = encode(data, 65536, signed=True)
    chain = Chain()
    ctx = chunked_ctx(s3, data, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", chain)
    out = await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body, piece=10_000),
                        ContentLength=len(body))
    assert out["ETag"] == f'"{md5_hex(data)}"'
    assert [c[1] for c in chain.calls] == [hashlib.sha256(data[i:i + 65536]).hexdigest()
                                           for i in range(0, len(data), 65536)] + [EMPTY]


async def test_signed_chunks_with_trailer(s3, bucket):
    data = os.urandom(100_000)
    body = encode(data, 8192, signed=True, trailers={"x-amz-checksum-crc32": crc32_b64(data)})
    chain = Chain()
    ctx = chunked_ctx(s3, data, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", chain,
                      trailer="x-amz-checksum-crc32")
    await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body), ContentLength=len(body))
    assert chain.calls[-1] == ("trailer", f"x-amz-checksum-crc32:{crc32_b64(data)}\n".encode())


async def test_bad_chunk_signature_stores_nothing(s3, bucket):
    await s3.put(bucket, "k", b"previous")
    data = os.urandom(200_000)
    body = encode(data, 65536, signed=True, corrupt_chunk=1)
    ctx = chunked_ctx(s3, data, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", Chain())
    with pytest.raises(SignatureMismatch):
        await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body),
                      ContentLength=len(body))
    assert s3.blob_files() == []
    _, stored = await s3.get(bucket, "k")
    assert stored == b"previous"


async def test_decoded_length_must_match(s3, bucket):
    data = os.urandom(5000)
    body = encode(data, 1000, signed=False)
    ctx = chunked_ctx(s3, data + b"more", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    with pytest.raises(errors.IncompleteBody):
        await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body),
                      ContentLength=len(body))


async def test_truncated_and_malformed_framing():
    data = b"x" * 100
    body = encode(data, 50, signed=False)
    reader = AwsChunkedReader(Body(body[:60]))
    with pytest.raises(errors.IncompleteBody):
        while await reader.read(1 << 20):
            pass
    reader = AwsChunkedReader(Body(b"zz\r\nabc\r\n0\r\n\r\n"))
    with pytest.raises(errors.InvalidRequest):
        await reader.read(1 << 20)
    reader = AwsChunkedReader(Body(b"3\r\nabcXX0\r\n\r\n"))
    with pytest.raises(errors.InvalidRequest):
        while await reader.read(1 << 20):
            pass
    reader = AwsChunkedReader(Body(b"1" * 10000))
    with pytest.raises((errors.InvalidRequest, errors.IncompleteBody)):
        await reader.read(1 << 20)


async def test_decoder_bounded_reads():
    data = os.urandom(3 * 65536 + 5)
    reader = AwsChunkedReader(Body(encode(data, 65536, signed=False), piece=65536))
    got = []
    while True:
        piece = await reader.read(4096)
        if not piece:
            break
        assert len(piece) <= 4096
        got.append(piece)
    assert b"".join(got) == data and reader.decoded_size == len(data)


async def test_with_the_gateways_chain(s3, bucket):
    chunked = pytest.importorskip("gateway.auth.chunked")
    request = pytest.importorskip("gateway.auth.request")
    auth = request.AuthResult(access_key_id="AKID", region="us-east-1", service="s3",
                              signature_version="v4", presigned=False,
                              payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                              signing_key=KEY, seed_signature=SEED, amz_date=DATE, scope=SCOPE)
    data = os.urandom(70_000)
    body = encode(data, 65536, signed=True, trailers={"x-amz-checksum-crc32": crc32_b64(data)})
    ctx = chunked_ctx(s3, data, auth.payload_hash, chunked.ChunkSignatureChain(auth),
                      trailer="x-amz-checksum-crc32")
    await s3.call("PutObject", ctx, Bucket=bucket, Key="k", Body=Body(body), ContentLength=len(body))
    _, stored = await s3.get(bucket, "k")
    assert stored == data
