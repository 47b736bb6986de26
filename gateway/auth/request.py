"""The request as the verifier sees it, and what a successful verification yields.

No aiohttp here: the gateway copies the few fields below out of its ``web.Request``
(``raw_path`` split at the first ``?``, headers as the ``CIMultiDict`` aiohttp already has).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class SignedRequest:
    method: str
    raw_path: str  # exactly as on the wire, still percent-encoded, without the query
    raw_query: str  # as on the wire, without the leading '?'
    headers: Mapping[str, str]  # case-insensitive; a CIMultiDict may hold repeated headers
    host_bucket: str | None = None  # bucket named by the Host (virtual-hosted-style S3)


@dataclass(frozen=True, slots=True)
class AuthResult:
    access_key_id: str
    region: str | None  # from the credential scope; None for SigV2
    service: str  # from the credential scope; 's3' for SigV2
    signature_version: Literal["v4", "v2"]
    presigned: bool
    # v4: the payload hash the signature covers: a hex digest, 'UNSIGNED-PAYLOAD' or one of the
    # 'STREAMING-...' markers. For S3 the caller must check a hex digest against the body it
    # streams (ContentSHA256Mismatch) and verify chunk signatures for STREAMING-AWS4-HMAC-*.
    payload_hash: str | None
    signing_key: bytes | None = field(repr=False)  # v4 only: for ChunkSignatureChain
    seed_signature: str | None  # v4 only: the request's own signature (seed of a chunk chain)
    amz_date: str | None  # v4 only: YYYYMMDDTHHMMSSZ as signed
    scope: str | None  # v4 only: 'YYYYMMDD/region/service/aws4_request'
    security_token: str | None = None  # X-Amz-Security-Token, if the client sent one

    @property
    def streaming_signed(self) -> bool:
        """True when the body is aws-chunked with per-chunk signatures."""
        return self.payload_hash in ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                     "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), in wire order."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, ()))
    lname = name.lower()
    return [v for k, v in headers.items() if k.lower() == lname]


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The header's values joined with ',' (as SigV4 canonicalizes them), or None if absent."""
    values = header_values(headers, name)
    if not values:
        return None
    return ",".join(values)


def header_names(headers: Mapping[str, str]) -> set[str]:
    """The lower-cased names of all headers present."""
    return {k.lower() for k in headers}
