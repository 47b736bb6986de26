"""Receiving an upload's body (PutObject, UploadPart): stream, hash, verify, store.

The body arrives as ``async read(n)`` (aiohttp's StreamReader), aws-chunked or not. Small bodies
(up to ``S3State.inline_max``) are kept in memory and stored inline in the metadata row; larger
ones are written to a blob. Blocks of ~1 MiB go to three worker lanes while the next block is being
read: one computes MD5 (the ETag), one the SHA-256 of the signature and the flexible checksum, one
writes the file. Memory stays at two blocks whatever the size. Every digest is checked before the
blob is fsynced and renamed into place; on any failure the temp file goes. With a data key
(``seal``) the bytes are encrypted on their way to disk (``storage.sealed``: in the writing lane
for blobs, in memory for inline objects); digests are always of the plaintext.
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import re
from dataclasses import dataclass, field

from s3_api import checksums
from s3_api.chunked import AwsChunkedReader
from s3_api.errors import (BadDigest, EntityTooLarge, IncompleteBody, InvalidArgument,
                           InvalidRequest, MissingContentLength, XAmzContentSHA256Mismatch)
from storage import sealed
from storage.space import StorageFull, is_out_of_space

BLOCK = 1 << 20
MAX_PUT_SIZE = 5 * 1024 ** 3
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SIGNED_STREAMING = {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"}
_UNSIGNED_STREAMING = {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"}


@dataclass
class Received:
    size: int
    md5: bytes
    checksums: dict[str, str] = field(default_factory=dict)   # algorithm -> base64
    blob_id: str | None = None
    data: bytes | None = None

    @property
    def etag(self) -> str:
        return self.md5.hex()


def payload_hash(ctx) -> str | None:
    auth = getattr(ctx, "auth", None)
    value = getattr(auth, "payload_hash", None) if auth is not None else None
    if value is None and ctx.headers is not None:
        value = ctx.headers.get("x-amz-content-sha256")
    return value


def is_aws_chunked(ctx) -> bool:
    mode = payload_hash(ctx) or ""
    if mode.startswith("STREAMING-"):
        return True
    encoding = ctx.headers.get("Content-Encoding", "") if ctx.headers is not None else ""
    return "aws-chunked" in encoding.lower()


def stored_content_encoding(value: str | None) -> str | None:
    """Content-Encoding to store: without the transport's ``aws-chunked``."""
    if not value:
        return None
    kept = [v.strip() for v in value.split(",") if v.strip() and v.strip().lower() != "aws-chunked"]
    return ", ".join(kept) or None


def transfer_chunked(ctx) -> bool:
    """The body comes with HTTP/1.1 chunked framing (``Transfer-Encoding: chunked``), so with
    no Content-Length: its size is known once it has been read."""
    encoding = ctx.headers.get("Transfer-Encoding", "") if ctx.headers is not None else ""
    return "chunked" in encoding.lower()


def expected_size(ctx, params: dict) -> int | None:
    """The body's declared size; None for a chunked transfer of unknown size (read to its end,
    bounded by the caller's maximum)."""
    if is_aws_chunked(ctx):
        decoded = ctx.headers.get("x-amz-decoded-content-length")
        if decoded is None:
            raise MissingContentLength()
        try:
            return int(decoded)
        except ValueError:
            raise InvalidArgument("x-amz-decoded-content-length is not a number",
                                  ArgumentName="x-amz-decoded-content-length",
                                  ArgumentValue=decoded) from None
    length = params.get("ContentLength")
    if length is None and ctx.headers is not None and "Content-Length" in ctx.headers:
        length = ctx.headers["Content-Length"]
    if length is None:
        if transfer_chunked(ctx):
            return None
        raise MissingContentLength()
    length = int(length)
    if length < 0:
        raise InvalidArgument("Content-Length is negative", ArgumentName="Content-Length")
    return length


class _Lanes:
    """Three serial lanes on the blob store's threads, each releasing the GIL for its whole block:
    MD5 (the ETag) in one; the SHA-256 of the signature and the flexible checksum in another; the
    file write in the third. Up to ``DEPTH`` blocks are in flight, so the socket keeps being read
    while the lanes work, and a slow disk write never holds up the hashing (nor the reverse).

    Encryption at rest plugs in as the write lane's transform: ``writer.write_pieces`` (or a
    writer wrapping the blob writer) seals each block before writing it; the digests see the
    plaintext, as S3's ETag and checksums are of the plaintext. Sealing overlaps the hashing
    already; a lane of its own (sealing a block while the one before is written) was measured:
    ~12% more CPU per 256 MiB (one more hand-over per block, and the sealed bytes written from
    another core's cache) and no faster, since AES-GCM costs ~1/8 of MD5.

    ``BLOCK`` and ``DEPTH``, measured too: 4 MiB blocks save ~10% CPU in wake-ups but add ~45 MB
    to the worker's peak RSS during a 1 GiB upload (1 MiB blocks: ~10 MB)."""

    DEPTH = 2

    def __init__(self, blobs, md5, others, writer) -> None:
        self._md5_lane = blobs.lane()
        self._sums_lane = blobs.lane()
        self._write_lane = blobs.lane()
        self._md5 = md5
        self._others = others
        self._writer = writer
        self._in_flight: collections.deque = collections.deque()

    def _digest(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._md5.update(piece)

    def _sums(self, pieces: list[bytes]) -> None:
        for c in self._others:
            for piece in pieces:
                c.update(piece)

    async def feed(self, pieces: list[bytes]) -> None:
        """Hand over the next ~1 MiB, as the pieces it came in (no joining copy)."""
        while len(self._in_flight) >= self.DEPTH:
            await self._wait_oldest()
        jobs = [self._md5_lane.submit(self._digest, pieces),
                self._write_lane.submit(self._writer.write_pieces, pieces)]
        if self._others:
            jobs.append(self._sums_lane.submit(self._sums, pieces))
        self._in_flight.append([asyncio.wrap_future(job) for job in jobs])

    async def _wait_oldest(self) -> None:
        error = None
        for job in self._in_flight.popleft():   # every job is awaited, even after a failure
            try:
                await job
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error

    async def drain(self) -> None:
        error = None
        while self._in_flight:
            try:
                await self._wait_oldest()
            except BaseException as exc:   # keep draining: no job may outlive the writer
                error = error or exc
        if error is not None:
            raise error


async def _read(body, n: int) -> bytes:
    try:
        return await body.read(n)
    except (ConnectionError, EOFError, asyncio.IncompleteReadError) as exc:
        raise IncompleteBody() from exc
    except Exception as exc:
        if type(exc).__module__.startswith("aiohttp"):   # the client went away mid-body
            raise IncompleteBody() from exc
        raise   # e.g. the gateway's chunk signature mismatch


async def receive(ctx, state, params: dict, *, inline_ok: bool,
                  declared: checksums.Declared, also: tuple[str, ...] = (),
                  max_size: int = MAX_PUT_SIZE, seal: bytes | None = None) -> Received:
    """Read, verify and store the body of ``params['Body']``."""
    size = expected_size(ctx, params)
    if size is not None and size > max_size:
        raise EntityTooLarge(ProposedSize=size, MaxSizeAllowed=max_size)
    md5_expected = checksums.content_md5(params.get("ContentMD5"))
    mode = payload_hash(ctx) or ""
    sha_expected = mode.lower() if _HEX64.match(mode.lower()) else None
    body = params.get("Body")
    chunked = None
    if is_aws_chunked(ctx):
        signed = mode in _SIGNED_STREAMING
        chunked = AwsChunkedReader(body, signed=signed, chain=getattr(ctx, "chunk_chain", None))
        body = chunked
    sha = hashlib.sha256() if sha_expected else None

    def verify(md5, declared_sum) -> None:
        _verify(md5, md5_expected, sha, sha_expected, declared_sum, declared, chunked)

    return await store(state, body, size=size, inline_ok=inline_ok, declared=declared, also=also,
                       extra=(sha,) if sha is not None else (), verify=verify,
                       max_size=max_size, seal=seal)


async def store(state, body, *, size: int | None, inline_ok: bool, declared: checksums.Declared,
                also: tuple[str, ...] = (), extra: tuple = (), verify=None,
                max_size: int | None = None, seal: bytes | None = None) -> Received:
    """Read ``body`` (``async read(n)``) to its end, hash it and store it: inline when small,
    else as a durable blob. ``size`` is the declared length (IncompleteBody when the body is
    shorter or longer), or None when it is unknown (a POST form's file): then the first
    ``inline_max`` bytes are kept in memory and a blob is started only when more arrive.
    ``verify(md5, declared_checksum)`` runs before the blob is committed; ``extra`` are more
    digests (``update``) fed alongside; ``seal``: the data key the stored bytes are sealed with."""
    if body is None:
        body = _Empty()
    md5 = hashlib.md5()
    algorithms = [declared.algorithm] + [a for a in also if a != declared.algorithm]
    sums = [checksums.Checksum(a) for a in algorithms]
    others = list(sums) + list(extra)
    inline = inline_ok and (size is None or size <= state.inline_max)
    blobs = state.blobs
    writer = None
    lanes = None
    pieces: list[bytes] = []
    buffered = total = 0
    space = getattr(blobs, "space", None)
    if inline and space is not None:
        space.check_room(size or 0)    # new data: refused below the free-space watermark
    try:
        if not inline:
            writer = _create(blobs, size or 0, seal)
            lanes = _Lanes(blobs, md5, others, writer)
        while True:
            data = await _read(body, BLOCK)
            if not data:
                break
            total += len(data)
            if size is not None and total > size:
                raise IncompleteBody("The body is longer than its declared length.")
            if size is None and max_size is not None and total > max_size:
                raise EntityTooLarge(MaxSizeAllowed=max_size)
            pieces.append(data)
            if lanes is None:
                if size is not None or total <= state.inline_max:
                    continue
                writer = _create(blobs, 0, seal)     # an unsized body outgrew the inline limit
                lanes = _Lanes(blobs, md5, others, writer)
                buffered = total
            else:
                buffered += len(data)
            if buffered >= BLOCK:
                if size is None and space is not None:
                    space.check_room()     # an unsized body: the watermark as it grows
                block, pieces, buffered = pieces, [], 0
                await lanes.feed(block)
        if size is not None and total < size:
            raise IncompleteBody()
        if lanes is None:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            md5.update(data)
            for c in others:
                c.update(data)
        else:
            if pieces:
                await lanes.feed(pieces)
                pieces = []
            await lanes.drain()
        if verify is not None:
            verify(md5, sums[0])
        if writer is not None:
            await blobs.run(writer.commit)
    except BaseException as exc:
        if lanes is not None:
            try:
                await lanes.drain()
            except BaseException:
                pass
        if writer is not None:
            await asyncio.shield(blobs.run(writer.abort))
        if is_out_of_space(exc) and not isinstance(exc, StorageFull):
            raise StorageFull() from exc
        raise
    received = Received(total, md5.digest(), {c.algorithm: c.b64() for c in sums})
    if writer is None:
        received.data = data if seal is None else sealed.seal(seal, data)
    else:
        received.blob_id = writer.blob_id
    return received


def _create(blobs, expected: int, seal: bytes | None):
    writer = blobs.create(expected_size=expected)
    return writer if seal is None else sealed.SealingWriter(writer, seal)


def _verify(md5, md5_expected, sha, sha_expected, declared_sum, declared, chunked) -> None:
    if md5_expected is not None and md5.digest() != md5_expected:
        raise BadDigest(ExpectedDigest=md5_expected.hex(), CalculatedDigest=md5.hexdigest())
    if sha is not None and sha.hexdigest() != sha_expected:
        raise XAmzContentSHA256Mismatch(ClientComputedContentSHA256=sha_expected,
                                        S3ComputedContentSHA256=sha.hexdigest())
    expected = declared.expected
    if declared.trailer is not None:
        value = chunked.trailers.get(declared.trailer) if chunked is not None else None
        if value is None:
            raise InvalidRequest(f"The trailer {declared.trailer} named by x-amz-trailer was not"
                                 " sent.")
        expected = checksums.decode_value(declared.algorithm, value, declared.trailer)
    if expected is not None and declared_sum.digest() != expected:
        raise checksums.mismatch(declared.algorithm)


class _Empty:
    async def read(self, n: int = -1) -> bytes:
        return b""
