"""Object data encrypted at rest: the sealed format of blobs and inline rows.

A sealed blob (or inline row) is a 24-byte header followed by the data in segments of
``SEGMENT`` plaintext bytes (the last one shorter), each encrypted with AES-256-GCM and followed
by its 16-byte tag::

    header   b"NSE" | version (1) | log2(segment size) (1) | 3 zero bytes | salt (16)
    segment  ciphertext (SEGMENT bytes, the last one 0..SEGMENT) | tag (16)

Keys and nonces: every object has its own random 32-byte *data key* (wrapped by the master key,
a customer key or a KMS key: ``storage.key_wrap`` and the S3 layer). A blob is sealed with
``HMAC-SHA256(data key, "nimbo sealed blob" | salt)``, where the salt is 16 random bytes of the
blob's own header; segment ``i`` uses the 12-byte nonce ``i`` (big-endian). A (key, nonce) pair
therefore never repeats: segment indices are unique within a blob, and every blob -- an object's
single blob, its inline row, each part of a multipart upload, a part uploaded again under the
same number -- draws a fresh salt, so two blobs share a key only with probability 2^-128 even
when they belong to one object. The header is each segment's associated data (its version and
salt cannot be altered); the nonce binds a segment to its place (segments cannot be reordered);
the plaintext size kept in the metadata row says how many segments there must be (a truncated
blob fails to read, it never yields short data).

A ranged read decrypts only the segments the range touches: plaintext byte ``p`` lives in
segment ``p // SEGMENT``, stored at ``HEADER + (p // SEGMENT) * (SEGMENT + TAG)``.

Which rows are sealed is the metadata's business (the ``sse`` column, ``SCHEMA``): rows and
blobs written before this format existed have no ``sse`` and are read as plaintext, unchanged.

Crash story: sealing changes bytes, never the write protocol. A sealed blob is written to its
temporary file, fsynced and renamed like any blob (``storage.blobs``) before the row naming it
(with its wrapped data key in ``sse``) commits; a crash leaves an unreferenced blob for the
start-up collection, never a row whose key or bytes are missing. Everything here is synchronous
CPU work: callers run big buffers on the blob store's threads.
"""
from __future__ import annotations

import ctypes
import hashlib
import hmac
import mmap
import os
import secrets
from typing import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.db import Schema

_POPULATE = getattr(mmap, "MAP_POPULATE", 0)   # map the cached pages in one call, no faults

SEGMENT_SHIFT = 16
SEGMENT = 1 << SEGMENT_SHIFT          # 64 KiB of plaintext per segment
TAG = 16
STORED_SEGMENT = SEGMENT + TAG
MAGIC = b"NSE"
VERSION = 1
SALT = 16
HEADER = len(MAGIC) + 1 + 1 + 3 + SALT   # 24
DATA_KEY_BYTES = 32
READ_SEGMENTS = 16                    # segments per read of a stream: 1 MiB of plaintext

# the ``sse`` columns: the object's (or upload's) encryption, as JSON; NULL: plaintext (a row
# written before encryption at rest existed)
SCHEMA = Schema("s3_sse", [
    """
    ALTER TABLE s3_objects ADD COLUMN sse TEXT;
    ALTER TABLE s3_versions ADD COLUMN sse TEXT;
    ALTER TABLE s3_uploads ADD COLUMN sse TEXT;
    CREATE TABLE s3_bucket_encryption (
        bucket TEXT PRIMARY KEY,
        config TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # which master key the data keys are wrapped with (storage.key_wrap.KeyRing.check_value)
    """
    CREATE TABLE s3_master_key_check (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value BLOB NOT NULL
    )
    """,
])


class SealBroken(Exception):
    """A sealed blob does not decrypt: wrong key, or altered or truncated data."""


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def sealed_size(plain_size: int) -> int:
    """Stored bytes of ``plain_size`` plaintext bytes."""
    segments = -(-plain_size // SEGMENT)
    return HEADER + plain_size + segments * TAG


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _blob_cipher(data_key: bytes, salt: bytes) -> AESGCM:
    return AESGCM(hmac.new(data_key, b"nimbo sealed blob" + salt, hashlib.sha256).digest())


def _new_header() -> bytes:
    return MAGIC + bytes([VERSION, SEGMENT_SHIFT, 0, 0, 0]) + secrets.token_bytes(SALT)


def _check_header(header: bytes) -> bytes:
    if len(header) != HEADER or header[:3] != MAGIC or header[3] != VERSION \
            or header[4] != SEGMENT_SHIFT:
        raise SealBroken("not a sealed blob of a known version")
    return header


class Sealer:
    """Seals one blob: ``header`` first, then ``segment(i, data)`` for i = 0, 1, ..."""

    def __init__(self, data_key: bytes) -> None:
        self.header = _new_header()
        self._aead = _blob_cipher(data_key, self.header[-SALT:])

    def segment(self, index: int, data) -> bytes:
        return self._aead.encrypt(_nonce(index), data, self.header)


class Opener:
    """Opens the segments of one sealed blob (its ``header`` read first)."""

    def __init__(self, data_key: bytes, header: bytes) -> None:
        self.header = _check_header(bytes(header))
        self._aead = _blob_cipher(data_key, self.header[-SALT:])

    def segment(self, index: int, stored) -> bytes:
        try:
            return self._aead.decrypt(_nonce(index), stored, self.header)
        except InvalidTag:
            raise SealBroken(f"segment {index} does not decrypt") from None

    def segments(self, first: int, stored: bytes | bytearray | memoryview, plain_len: int
                 ) -> bytearray:
        """The plaintext of consecutive segments from ``first`` stored in ``stored``, checking
        that they hold ``plain_len`` bytes (decrypted in place into one new buffer)."""
        view = memoryview(stored)
        count = -(-plain_len // SEGMENT)
        if len(view) != plain_len + count * TAG:
            raise SealBroken("a sealed blob is shorter than its metadata says")
        out = uninitialized(plain_len)
        target = memoryview(out)
        for i in range(count):
            piece = view[i * STORED_SEGMENT:(i + 1) * STORED_SEGMENT]
            try:
                self._aead.decrypt_into(_nonce(first + i), piece, self.header,
                                        target[i * SEGMENT:i * SEGMENT + len(piece) - TAG])
            except InvalidTag:
                raise SealBroken(f"segment {first + i} does not decrypt") from None
        return out


def _bytearray_maker():
    """``bytearray(n)`` zero-fills (a memset as costly as the copy it precedes: ~10 % of a big
    GET); CPython's ``PyByteArray_FromStringAndSize(NULL, n)`` does not. Every byte of such a
    buffer is written (decrypted into) before anyone reads it."""
    try:
        make = ctypes.pythonapi.PyByteArray_FromStringAndSize
    except (AttributeError, OSError):   # not CPython
        return bytearray
    make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    make.restype = ctypes.py_object
    return lambda n: make(None, n)


uninitialized = _bytearray_maker()


# --- whole buffers (inline rows, small copies) --------------------------------------------------

def seal(data_key: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """``data`` sealed as one blob (header and segments)."""
    sealer = Sealer(data_key)
    view = memoryview(data)
    out = [sealer.header]
    for index, start in enumerate(range(0, len(view), SEGMENT)):
        out.append(sealer.segment(index, view[start:start + SEGMENT]))
    return b"".join(out)


# Openers of recently read sealed buffers, by (data key, header): a hot small object's blob key
# (an HMAC) and its AES-GCM context are made once, not on every GET (~10 us of a 4 KiB GET).
# The same (key, header) always derives the same blob key, and every segment is still
# authenticated on every read (a changed buffer fails to decrypt). Bounded; data keys are held
# in memory by the S3 layer's key cache anyway.
_OPENERS: dict[tuple[bytes, bytes], "Opener"] = {}
_MAX_OPENERS = 4096


def cached_opener(data_key: bytes, header: bytes) -> "Opener":
    """``Opener(data_key, header)``, kept for the next read of the same buffer."""
    cache_key = (data_key, header)
    opener = _OPENERS.get(cache_key)
    if opener is None:
        opener = Opener(data_key, header)
        if len(_OPENERS) >= _MAX_OPENERS:
            _OPENERS.clear()
        _OPENERS[cache_key] = opener
    return opener


def unseal_range(data_key: bytes, sealed: bytes | memoryview, plain_size: int, start: int,
                 end: int) -> bytes:
    """Plaintext bytes ``start..end`` (inclusive) of a sealed buffer holding ``plain_size``
    bytes, decrypting only the segments they live in."""
    if end < start:
        return b""
    view = memoryview(sealed)
    opener = cached_opener(data_key, bytes(view[:HEADER]))
    first, last = start // SEGMENT, end // SEGMENT
    lo, hi = stored_span(first, last, plain_size)
    if first == last and hi - lo > TAG:   # one segment (a small object): into its own bytes
        if len(view) < hi:
            raise SealBroken("a sealed blob is shorter than its metadata says")
        plain = opener.segment(first, view[lo:hi])
        skip = start - first * SEGMENT
        if skip == 0 and end - start + 1 == len(plain):
            return plain
        return plain[skip:skip + end - start + 1]
    data = opener.segments(first, view[lo:hi], segment_span(first, last, plain_size))
    skip = start - first * SEGMENT
    return bytes(memoryview(data)[skip:skip + end - start + 1])


def unseal(data_key: bytes, sealed: bytes | memoryview, plain_size: int) -> bytes:
    return unseal_range(data_key, sealed, plain_size, 0, plain_size - 1)


def stored_span(first: int, last: int, plain_size: int) -> tuple[int, int]:
    """Stored offsets [lo, hi) of segments first..last of a blob of ``plain_size`` bytes."""
    lo = HEADER + first * STORED_SEGMENT
    plain = segment_span(first, last, plain_size)
    count = last - first + 1
    return lo, lo + plain + count * TAG


def segment_span(first: int, last: int, plain_size: int) -> int:
    """Plaintext bytes in segments first..last of a blob of ``plain_size`` bytes."""
    return max(0, min(plain_size, (last + 1) * SEGMENT) - first * SEGMENT)


# --- files ---------------------------------------------------------------------------------

def read_header(fd: int) -> bytes:
    header = os.pread(fd, HEADER, 0)
    if len(header) != HEADER:
        raise SealBroken("a sealed blob has no header")
    return header


def read_plain(fd: int, opener: Opener, plain_size: int, start: int, end: int
               ) -> bytearray | memoryview:
    """Plaintext ``start..end`` (inclusive) of the sealed file ``fd`` (blocking).

    The ciphertext is decrypted straight out of the page cache through a read-only mapping of
    just these segments (``_mapped``): ~4x faster than reading it into a fresh buffer first
    (no copy, no page faults of a new buffer). Blobs are immutable once committed (written
    under a temporary name, renamed, never truncated), and the file's size is checked before
    mapping, so no access falls past its end."""
    first, last = start // SEGMENT, end // SEGMENT
    lo, hi = stored_span(first, last, plain_size)
    plain_len = segment_span(first, last, plain_size)
    data = _decrypt_mapped(fd, opener, first, lo, hi, plain_len)
    if data is None:
        data = opener.segments(first, _pread_all(fd, hi - lo, lo), plain_len)
    skip = start - first * SEGMENT
    if skip == 0 and len(data) == end - start + 1:
        return data
    return memoryview(data)[skip:skip + end - start + 1]


MAP_MIN = 256 << 10     # smaller reads: pread (a mapping costs two system calls and a TLB flush)


def _decrypt_mapped(fd: int, opener: Opener, first: int, lo: int, hi: int, plain_len: int
                    ) -> bytearray | None:
    """Segments ``first..`` stored at [lo, hi) decrypted from a mapping of the file; None when
    the range is small or the file cannot be mapped (then the caller reads it)."""
    if hi - lo < MAP_MIN:
        return None
    if os.fstat(fd).st_size < hi:
        raise SealBroken("a sealed blob is shorter than its metadata says")
    base = lo - lo % mmap.ALLOCATIONGRANULARITY
    try:
        mapped = mmap.mmap(fd, hi - base, flags=mmap.MAP_SHARED | _POPULATE,
                           prot=mmap.PROT_READ, offset=base)
    except (OSError, ValueError):    # a filesystem without mmap: read instead
        return None
    try:
        with memoryview(mapped) as view:
            return opener.segments(first, view[lo - base:hi - base], plain_len)
    finally:
        try:
            mapped.close()
        except BufferError:    # a view still held by a traceback: unmapped when it is freed
            pass


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        if len(data) != size:
            raise SealBroken("a sealed blob is shorter than its metadata says")
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            raise SealBroken("a sealed blob is shorter than its metadata says")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def plain_chunks(fd: int, data_key: bytes, plain_size: int, start: int, end: int
                 ) -> Iterator[bytes]:
    """The plaintext ``start..end`` of a sealed file, ~1 MiB at a time (blocking)."""
    if end < start:
        return
    opener = Opener(data_key, read_header(fd))
    step = READ_SEGMENTS * SEGMENT
    at = start
    while at <= end:
        stop = min(end, (at // SEGMENT) * SEGMENT + step - 1)
        yield read_plain(fd, opener, plain_size, at, stop)
        at = stop + 1


class SealingWriter:
    """A ``storage.blobs.BlobWriter`` that seals what it is given: ``write``/``write_pieces``
    plaintext, then ``commit`` (the last segment, fsync, rename) or ``abort``. Blocking: run it
    off the event loop (the upload lanes do)."""

    def __init__(self, writer, data_key: bytes) -> None:
        self.writer = writer
        self.blob_id = writer.blob_id
        self._sealer = Sealer(data_key)
        self._buffer = bytearray()
        self._index = 0
        self.size = 0              # plaintext bytes taken
        writer.write(self._sealer.header)

    def write(self, data) -> None:
        self.write_pieces([data])

    def write_pieces(self, pieces) -> None:
        out = []
        for piece in pieces:
            view = memoryview(piece)
            self.size += len(view)
            if self._buffer:
                need = SEGMENT - len(self._buffer)
                self._buffer += view[:need]
                view = view[need:]
                if len(self._buffer) < SEGMENT:
                    continue
                out.append(self._sealer.segment(self._index, self._buffer))
                self._index += 1
                self._buffer = bytearray()
            while len(view) >= SEGMENT:
                out.append(self._sealer.segment(self._index, view[:SEGMENT]))
                self._index += 1
                view = view[SEGMENT:]
            if view:
                self._buffer += view
        if out:
            self.writer.write_pieces(out)

    def commit(self) -> None:
        if self._buffer:
            self.writer.write(self._sealer.segment(self._index, self._buffer))
            self._index += 1
            self._buffer = bytearray()
        self.writer.commit()

    def abort(self) -> None:
        self.writer.abort()
