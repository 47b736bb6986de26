"""aws-chunked signature chains: the S3 documentation's streaming examples
("Transferring Payload in Multiple Chunks" and "Including Trailing Headers"): a 66,560-byte
object of 'a' in a 65,536-byte chunk, a 1,024-byte chunk and the final empty chunk."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from _auth_testkit import EXAMPLE_KEYS, S3_EXAMPLE_TIME, S3_SECRET, lookup, wire_request

from gateway.auth import errors
from gateway.auth.chunked import ChunkSignatureChain, canonical_trailer
from gateway.auth.sigv4 import authenticate

SCOPE = "20130524/us-east-1/s3/aws4_request"
CHUNKS = [b"a" * 65536, b"a" * 1024, b""]
PAYLOAD_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
PAYLOAD_CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNK_SIGNATURES = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]
TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def hand_signed_chain(seed: str) -> list[str]:
    """The documented algorithm, written out independently of gateway.auth."""
    key = _hmac(_hmac(_hmac(_hmac(b"AWS4" + S3_SECRET.encode(), "20130524"), "us-east-1"), "s3"),
                "aws4_request")
    signatures, previous = [], seed
    for chunk in CHUNKS:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", "20130524T000000Z", SCOPE, previous,
                             hashlib.sha256(b"").hexdigest(), hashlib.sha256(chunk).hexdigest()])
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        signatures.append(previous)
    return signatures


def test_hand_signed_chain_reproduces_the_published_signatures():
    assert hand_signed_chain(PAYLOAD_SEED) == PAYLOAD_CHUNK_SIGNATURES
    assert hand_signed_chain(TRAILER_SEED) == TRAILER_CHUNK_SIGNATURES


def seed_request(signed_headers: str, seed: str, payload_marker: str, extra=()):
    authorization = (f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{SCOPE},"
                     f"SignedHeaders={signed_headers},Signature={seed}")
    return wire_request("PUT", "/examplebucket/chunkObject.txt", [
        ("Host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("Authorization", authorization),
        ("x-amz-content-sha256", payload_marker), ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"), ("Content-Length", "66824"), *extra])


async def authenticated(request):
    return await authenticate(request, lookup(EXAMPLE_KEYS), S3_EXAMPLE_TIME + timedelta(minutes=1),
                              ["us-east-1"])


async def test_payload_example_seed_and_chain():
    result = await authenticated(seed_request(
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        PAYLOAD_SEED, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert result.payload_hash == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    assert result.streaming_signed and result.seed_signature == PAYLOAD_SEED
    assert (result.amz_date, result.scope) == ("20130524T000000Z", SCOPE)
    chain = ChunkSignatureChain(result)
    for chunk, signature in zip(CHUNKS, PAYLOAD_CHUNK_SIGNATURES, strict=True):
        assert chain.expected_chunk_signature(hashlib.sha256(chunk).hexdigest()) == signature
        chain.next(hashlib.sha256(chunk).hexdigest(), signature)
        assert chain.previous_signature == signature
    assert chain.chunks_verified == 3


async def test_trailer_example_seed_chain_and_trailer():
    result = await authenticated(seed_request(
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class;x-amz-trailer", TRAILER_SEED,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        extra=[("x-amz-trailer", "x-amz-checksum-crc32c")]))
    chain = ChunkSignatureChain(result)
    for chunk, signature in zip(CHUNKS, TRAILER_CHUNK_SIGNATURES, strict=True):
        chain.next(hashlib.sha256(chunk).hexdigest(), signature)
    trailer = canonical_trailer([("x-amz-checksum-crc32c", "sOO8/Q==")])
    assert trailer == b"x-amz-checksum-crc32c:sOO8/Q==\n"
    chain.trailer(trailer, TRAILER_SIGNATURE)


def chain_from_seed(seed: str) -> ChunkSignatureChain:
    from gateway.auth.request import AuthResult
    from gateway.auth.signing import derive_signing_key
    return ChunkSignatureChain(AuthResult(
        "AKIAIOSFODNN7EXAMPLE", "us-east-1", "s3", "v4", False,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        derive_signing_key(S3_SECRET, "20130524", "us-east-1", "s3"), seed,
        "20130524T000000Z", SCOPE))


def test_bad_chunk_signature_is_refused():
    chain = chain_from_seed(PAYLOAD_SEED)
    with pytest.raises(errors.SignatureDoesNotMatch) as caught:
        chain.next(hashlib.sha256(b"a" * 65535 + b"b").hexdigest(), PAYLOAD_CHUNK_SIGNATURES[0])
    assert caught.value.extra["StringToSign"].startswith("AWS4-HMAC-SHA256-PAYLOAD\n")
    assert errors.service_error(caught.value, "s3") == ("SignatureDoesNotMatch", 403)


def test_chunks_out_of_order_or_skipped_are_refused():
    chain = chain_from_seed(PAYLOAD_SEED)
    with pytest.raises(errors.SignatureDoesNotMatch):  # the second chunk sent first
        chain.next(hashlib.sha256(CHUNKS[1]).hexdigest(), PAYLOAD_CHUNK_SIGNATURES[1])
    chain = chain_from_seed(PAYLOAD_SEED)
    chain.next(hashlib.sha256(CHUNKS[0]).hexdigest(), PAYLOAD_CHUNK_SIGNATURES[0])
    with pytest.raises(errors.SignatureDoesNotMatch):  # the final chunk, skipping the second
        chain.next(hashlib.sha256(b"").hexdigest(), PAYLOAD_CHUNK_SIGNATURES[2])


def test_tampered_trailer_is_refused():
    chain = chain_from_seed(TRAILER_SEED)
    for chunk, signature in zip(CHUNKS, TRAILER_CHUNK_SIGNATURES, strict=True):
        chain.next(hashlib.sha256(chunk).hexdigest(), signature)
    with pytest.raises(errors.SignatureDoesNotMatch):
        chain.trailer(canonical_trailer([("x-amz-checksum-crc32c", "sOO8/A==")]),
                      TRAILER_SIGNATURE)


def test_chain_needs_a_v4_result():
    from gateway.auth.request import AuthResult
    with pytest.raises(ValueError):
        ChunkSignatureChain(AuthResult("AK", None, "s3", "v2", False, None, None, None, None,
                                       None))
