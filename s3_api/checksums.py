"""S3's flexible checksums: CRC32, CRC32C, CRC64NVME, SHA1, SHA256.

Values travel base64-encoded (the big-endian bytes of a CRC, the digest of a SHA). An object
without a checksum from its client gets CRC64NVME, as S3 does since 2025. A multipart object's
checksum is either FULL_OBJECT (CRCs combined over the parts, without reading data again) or
COMPOSITE (the checksum of the concatenated part checksums, then ``-N``).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import zlib

import crc32c as _crc32c
from awscrt import checksums as _crt

from s3_api.errors import BadDigest, InvalidDigest, InvalidRequest

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
DEFAULT_ALGORITHM = "CRC64NVME"
CRC_WIDTH = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8}
DIGEST_SIZE = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
FULL_OBJECT = "FULL_OBJECT"
COMPOSITE = "COMPOSITE"


def header_name(algorithm: str) -> str:
    return "x-amz-checksum-" + algorithm.lower()


def member(algorithm: str) -> str:
    """The model's member name: ChecksumCRC32 ..."""
    return "Checksum" + algorithm


_BY_HEADER = {header_name(a): a for a in ALGORITHMS}


class Checksum:
    """An incremental checksum of one algorithm."""

    __slots__ = ("algorithm", "_crc", "_hash")

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._crc = 0
        self._hash = hashlib.new(algorithm.lower()) if algorithm in ("SHA1", "SHA256") else None

    def update(self, data) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "CRC32":
            self._crc = zlib.crc32(data, self._crc)
        elif self.algorithm == "CRC32C":
            self._crc = _crc32c.crc32c(data, self._crc)
        else:
            self._crc = _crt.crc64nvme(bytes(data) if not isinstance(data, bytes) else data, self._crc)

    @property
    def crc(self) -> int:
        return self._crc

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(CRC_WIDTH[self.algorithm], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def compute(algorithm: str, data: bytes) -> str:
    c = Checksum(algorithm)
    c.update(data)
    return c.b64()


def decode_value(algorithm: str, value: str, what: str | None = None) -> bytes:
    """The raw bytes of a base64 checksum value; InvalidRequest when it is not one."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZE[algorithm]:
        raise InvalidRequest(f"Value for {what or header_name(algorithm)} header is invalid.")
    return raw


def algorithm_named(name: str | None, what: str = "x-amz-checksum-algorithm") -> str | None:
    """The algorithm a header names (None when absent); InvalidRequest for one Nimbo lacks."""
    if not name:
        return None
    upper = name.upper()
    if upper not in ALGORITHMS:
        raise InvalidRequest(f"Value for {what} header is invalid. Checksum algorithm provided is"
                             " unsupported. Please try again with any of the valid types: [CRC32,"
                             " CRC32C, CRC64NVME, SHA1, SHA256]")
    return upper


def algorithm_of_header(name: str) -> str | None:
    return _BY_HEADER.get(name.strip().lower())


def mismatch(algorithm: str) -> BadDigest:
    return BadDigest(f"The {algorithm} you specified did not match the calculated checksum.")


def content_md5(value: str | None) -> bytes | None:
    """The 16 bytes a Content-MD5 header names; InvalidDigest when it is not base64 of 16 bytes."""
    if value is None:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest() from None
    if len(raw) != 16:
        raise InvalidDigest()
    return raw


class Declared:
    """What a client said about a payload's checksum: the algorithm to compute, and the value to
    check (from a header now, or from an aws-chunked trailer later)."""

    __slots__ = ("algorithm", "expected", "trailer", "explicit")

    def __init__(self, algorithm: str, expected: bytes | None, trailer: str | None,
                 explicit: bool) -> None:
        self.algorithm = algorithm
        self.expected = expected
        self.trailer = trailer        # the trailer header's name, when the value comes last
        self.explicit = explicit      # False: our default CRC64NVME, not the client's choice


def declared(params: dict, headers, fallback: str | None = None) -> Declared:
    """Read x-amz-checksum-*, x-amz-sdk-checksum-algorithm and x-amz-trailer of an upload."""
    given = [(a, params[member(a)]) for a in ALGORITHMS if params.get(member(a)) is not None]
    if not given and headers is not None:  # headers the model does not name (x-amz-checksum-...)
        given = [(a, headers[header_name(a)]) for a in ALGORITHMS
                 if header_name(a) in headers]
    if len(given) > 1:
        raise InvalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types"
                             " are not allowed.")
    sdk = algorithm_named(params.get("ChecksumAlgorithm"), "x-amz-sdk-checksum-algorithm")
    trailer_names = headers.get("x-amz-trailer") if headers is not None else None
    trailer = None
    if trailer_names:
        names = [n.strip().lower() for n in trailer_names.split(",") if n.strip()]
        algos = [algorithm_of_header(n) for n in names]
        if len(names) != 1 or algos[0] is None:
            raise InvalidRequest("The value specified in the x-amz-trailer header is not supported")
        trailer = names[0]
        if given:
            raise InvalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum"
                                 " Types are not allowed.")
        if sdk and sdk != algos[0]:
            raise InvalidRequest("Value for x-amz-sdk-checksum-algorithm header is invalid.")
        return Declared(algos[0], None, trailer, True)
    if given:
        algorithm, value = given[0]
        if sdk and sdk != algorithm:
            raise InvalidRequest("Value for x-amz-sdk-checksum-algorithm header is invalid.")
        return Declared(algorithm, decode_value(algorithm, value), None, True)
    if sdk:
        return Declared(sdk, None, None, True)
    if fallback:
        return Declared(fallback, None, None, True)
    return Declared(DEFAULT_ALGORITHM, None, None, False)


# --- multipart ---------------------------------------------------------------------------------

def default_type(algorithm: str) -> str:
    return FULL_OBJECT if algorithm == "CRC64NVME" else COMPOSITE


def check_type(algorithm: str, checksum_type: str | None) -> str:
    """The checksum type of a multipart upload (CreateMultipartUpload's x-amz-checksum-type)."""
    if not checksum_type:
        return default_type(algorithm)
    checksum_type = checksum_type.upper()
    if checksum_type not in (FULL_OBJECT, COMPOSITE):
        raise InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    if checksum_type == FULL_OBJECT and algorithm not in CRC_WIDTH:
        raise InvalidRequest(f"The FULL_OBJECT checksum type cannot be used with the "
                             f"{algorithm.lower()} checksum algorithm.")
    if checksum_type == COMPOSITE and algorithm == "CRC64NVME":
        raise InvalidRequest("The COMPOSITE checksum type cannot be used with the crc64nvme"
                             " checksum algorithm.")
    return checksum_type


def composite(algorithm: str, part_values: list[str]) -> str:
    """base64(checksum(concatenated raw part checksums)) + '-N'."""
    c = Checksum(algorithm)
    for value in part_values:
        c.update(base64.b64decode(value))
    return f"{c.b64()}-{len(part_values)}"


_COMBINE = {"CRC32": _crt.combine_crc32, "CRC32C": _crt.combine_crc32c,
            "CRC64NVME": _crt.combine_crc64nvme}


def full_object(algorithm: str, parts: list[tuple[str, int]]) -> str:
    """The CRC of the whole object from (base64 part CRC, part size) pairs."""
    combine = _COMBINE[algorithm]
    crc = None
    for value, size in parts:
        part_crc = int.from_bytes(base64.b64decode(value), "big")
        crc = part_crc if crc is None else combine(crc, part_crc, size)
    return base64.b64encode((crc or 0).to_bytes(CRC_WIDTH[algorithm], "big")).decode()
