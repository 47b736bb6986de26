"""Decoding ``Content-Encoding: aws-chunked`` bodies, with bounded memory.

    <hex size>[;chunk-signature=<sig>]\\r\\n <data> \\r\\n ... 0[;chunk-signature=<sig>]\\r\\n
    [<trailer name>:<value>\\r\\n ... [x-amz-trailer-signature:<sig>\\r\\n]] \\r\\n

Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) are checked through the gateway's chunk
signature chain: ``chain.next(sha256 hex of the chunk's data, signature)`` after each chunk (the
final empty one included) and ``chain.trailer(canonical trailer bytes, signature)`` where the bytes
are ``name:value\\n`` per trailer, as SigV4 signs them. The chain raises on a mismatch. Data of a
chunk is handed out before its signature is checked; callers commit nothing before the end.
"""
from __future__ import annotations

import asyncio
import hashlib

from s3_api.errors import IncompleteBody, InternalError, InvalidRequest

MAX_LINE = 4096
READ_SIZE = 1 << 16
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_THREAD_HASH_BYTES = 256 << 10


class AwsChunkedReader:
    """A decoded view of an aws-chunked body: ``await read(n)``; ``b''`` once the final chunk and
    the trailers have been read (and verified); ``trailers`` then holds them (lower-case names)."""

    def __init__(self, raw, *, signed: bool = False, chain=None) -> None:
        if signed and chain is None:
            raise InternalError("a signed aws-chunked body without a chunk signature chain")
        self._raw = raw
        self._signed = signed
        self._chain = chain
        self._buf = bytearray()
        self._remaining = 0        # data bytes left in the current chunk
        self._in_chunk = False     # a chunk's data was read and its CRLF is due
        self._signature = ""
        self._sha = None
        self._eof = False
        self._raw_eof = False
        self.trailers: dict[str, str] = {}
        self.decoded_size = 0

    async def read(self, n: int = READ_SIZE) -> bytes:
        if self._eof:
            return b""
        if n <= 0:
            n = READ_SIZE
        while self._remaining == 0:
            if self._in_chunk:
                await self._end_chunk()
            size = await self._chunk_header()
            if size == 0:
                await self._finish()
                return b""
            self._remaining = size
            self._in_chunk = True
            self._sha = hashlib.sha256() if self._signed else None
        want = min(n, self._remaining)
        if self._buf:
            data = bytes(self._buf[:want])
            del self._buf[:want]
        else:
            data = await self._raw.read(want)
            if not data:
                raise IncompleteBody()
        self._remaining -= len(data)
        self.decoded_size += len(data)
        if self._sha is not None:
            if len(data) >= _THREAD_HASH_BYTES:
                await asyncio.to_thread(self._sha.update, data)
            else:
                self._sha.update(data)
        return data

    # --- framing -------------------------------------------------------------------------
    async def _fill(self) -> bool:
        if self._raw_eof:
            return False
        data = await self._raw.read(READ_SIZE)
        if not data:
            self._raw_eof = True
            return False
        self._buf += data
        return True

    async def _line(self, eof_ok: bool = False) -> bytes | None:
        start = 0
        while True:
            end = self._buf.find(b"\r\n", start)
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 2]
                return line
            if len(self._buf) > MAX_LINE:
                raise InvalidRequest("An aws-chunked header line is too long.")
            start = max(0, len(self._buf) - 1)
            if not await self._fill():
                if eof_ok and not self._buf:
                    return None
                raise IncompleteBody()

    async def _chunk_header(self) -> int:
        line = await self._line()
        size_text, _, extension = line.partition(b";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise InvalidRequest("The aws-chunked encoding of the body is malformed.") from None
        if size < 0:
            raise InvalidRequest("The aws-chunked encoding of the body is malformed.")
        self._signature = ""
        name, _, value = extension.partition(b"=")
        if name.strip() == b"chunk-signature":
            self._signature = value.strip().decode("ascii", "replace")
        if self._signed and not self._signature:
            raise InvalidRequest("A chunk of a signed aws-chunked body has no chunk-signature.")
        return size

    async def _end_chunk(self) -> None:
        while len(self._buf) < 2:
            if not await self._fill():
                raise IncompleteBody()
        if self._buf[:2] != b"\r\n":
            raise InvalidRequest("The aws-chunked encoding of the body is malformed.")
        del self._buf[:2]
        self._in_chunk = False
        if self._signed:
            self._chain.next(self._sha.hexdigest(), self._signature)

    async def _finish(self) -> None:
        if self._signed:
            self._chain.next(_EMPTY_SHA256, self._signature)
        trailer_signature = None
        canonical = []
        while True:
            line = await self._line(eof_ok=True)
            if not line:   # the closing empty line, or the end of the body
                break
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            if not sep:
                raise InvalidRequest("The aws-chunked trailer of the body is malformed.")
            name, value = name.strip().lower(), value.strip()
            if name == "x-amz-trailer-signature":
                trailer_signature = value
                continue
            self.trailers[name] = value
            canonical.append(f"{name}:{value}\n")
        if self._signed and (self.trailers or trailer_signature is not None):
            if trailer_signature is None:
                raise InvalidRequest("The aws-chunked trailer has no x-amz-trailer-signature.")
            self._chain.trailer("".join(canonical).encode(), trailer_signature)
        self._eof = True
