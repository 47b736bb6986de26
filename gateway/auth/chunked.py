"""The signature chain of an aws-chunked body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]).

Each chunk's signature is HMAC(signing key, string to sign) with

    AWS4-HMAC-SHA256-PAYLOAD \\n amz-date \\n scope \\n previous-signature \\n
    sha256('') \\n sha256(chunk-data)

the previous signature being the request's (seed) signature for the first chunk. The final,
zero-length chunk is signed the same way. A signed trailer chunk uses

    AWS4-HMAC-SHA256-TRAILER \\n amz-date \\n scope \\n previous-signature \\n sha256(trailer)

where the trailer bytes are its header lines as 'name:value\\n' (see :func:`canonical_trailer`).
Parsing the chunk framing is s3_api's job; this module only keeps and checks the chain.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import SignatureDoesNotMatch
from .request import AuthResult
from .signing import EMPTY_SHA256, sha256_hex, sign_hex, signatures_equal, spaced_hex

CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
TRAILER_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"


def canonical_trailer(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Trailing headers as signed: 'name:value\\n' per header, lower-case name, trimmed value,
    in the order given (the order they arrived in)."""
    return "".join(f"{name.strip().lower()}:{value.strip()}\n" for name, value in pairs).encode()


class ChunkSignatureChain:
    """Verifies chunk signatures one after the other, starting from the seed signature."""

    def __init__(self, auth: AuthResult):
        if not (auth.signing_key and auth.amz_date and auth.scope and auth.seed_signature):
            raise ValueError("a chunk signature chain needs a SigV4 AuthResult")
        self._key = auth.signing_key
        self._access_key_id = auth.access_key_id
        self._prefix = f"{auth.amz_date}\n{auth.scope}\n"
        self._previous = auth.seed_signature.lower()
        self.chunks_verified = 0

    @property
    def previous_signature(self) -> str:
        return self._previous

    def chunk_string_to_sign(self, chunk_sha256_hex: str) -> str:
        return (f"{CHUNK_ALGORITHM}\n{self._prefix}{self._previous}\n{EMPTY_SHA256}\n"
                f"{chunk_sha256_hex.lower()}")

    def expected_chunk_signature(self, chunk_sha256_hex: str) -> str:
        """The signature the next chunk must carry (does not advance the chain)."""
        return sign_hex(self._key, self.chunk_string_to_sign(chunk_sha256_hex))

    def next(self, chunk_sha256_hex: str, signature: str) -> None:
        """Check the next chunk's signature; raise SignatureDoesNotMatch on a mismatch."""
        self._check(self.chunk_string_to_sign(chunk_sha256_hex), signature)
        self.chunks_verified += 1

    def trailer(self, trailer_bytes: bytes, signature: str) -> None:
        """Check the x-amz-trailer-signature over the trailing header lines."""
        to_sign = (f"{TRAILER_ALGORITHM}\n{self._prefix}{self._previous}\n"
                   f"{sha256_hex(trailer_bytes)}")
        self._check(to_sign, signature)

    def _check(self, to_sign: str, signature: str) -> None:
        expected = sign_hex(self._key, to_sign)
        if not signatures_equal(expected, signature):
            raise SignatureDoesNotMatch(extra={"AWSAccessKeyId": self._access_key_id,
                                               "StringToSign": to_sign,
                                               "SignatureProvided": signature,
                                               "StringToSignBytes": spaced_hex(to_sign)})
        self._previous = expected
