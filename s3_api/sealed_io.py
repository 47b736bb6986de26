"""Reading and copying encrypted objects (``storage.sealed``): the GetObject body that decrypts
only the segments a range needs, and the copy loop of CopyObject and UploadPartCopy.

The body decrypts 2 MiB of segments per job on the blob store's threads (``BATCH_SEGMENTS``:
bigger jobs mean fewer thread hand-overs and socket wake-ups), straight from the page cache
(``sealed.read_plain`` maps the segments), so the event loop never runs the cipher on big buffers
and memory stays at ``READ_AHEAD`` such batches (decrypted ahead of the client, in parallel)
whatever the object's size. The copy loop reads ~1 MiB at a time.
Files are opened before the answer starts (a version overwritten meanwhile stays readable to the
end, POSIX keeps unlinked open files).
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import os

from s3_api import checksums
from s3_api.streaming import write_buffer
from storage import sealed
from storage.objects import ObjectStore, ObjectVersion

READ_AHEAD = 2
# segments decrypted per job: 2 MiB. Reading and decrypting a 256 MiB object took 0.101 s of CPU
# with 1 MiB jobs read into fresh buffers, 0.063 s with 2 MiB jobs from a mapping (4 MiB: the
# same CPU, but ~15 MB more that the allocator keeps after the GET)
BATCH_SEGMENTS = 32
OPEN_AHEAD = 64
CHUNK = 1 << 20


def pieces(store: ObjectStore, version: ObjectVersion, start: int, end: int
           ) -> list[tuple[str, int, int, int]]:
    """(blob id, offset in the blob's plaintext, length, the blob's plaintext size) covering bytes
    start..end (inclusive) of a blob-backed version."""
    if end < start:
        return []
    if not version.parts:
        return [(version.blob, start, end - start + 1, version.size)]
    out = []
    for _, part_start, size, _, _, blob in store.object_parts(version.version_id):
        part_end = part_start + size - 1
        if part_end < start or size == 0:
            continue
        if part_start > end:
            break
        lo, hi = max(start, part_start), min(end, part_end)
        out.append((blob, lo - part_start, hi - lo + 1, size))
    return out


class SealedBody:
    """A GetObject body of an encrypted blob-backed version: async iteration gives plaintext."""

    def __init__(self, blobs, data_key: bytes, segments: list[tuple[str, int, int, int]]) -> None:
        self._blobs = blobs
        self._key = data_key
        self._segments = segments
        self._fds: list[int | None] = [None] * len(segments)
        self.content_length = sum(s[2] for s in segments)
        self.write_buffer = write_buffer(self.content_length)
        self.data = None
        self._closed = False

    def open(self) -> None:
        try:
            for i in range(min(OPEN_AHEAD, len(self._segments))):
                self._fds[i] = self._blobs.open(self._segments[i][0])
        except BaseException:
            self.close()
            raise

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        try:
            for i, (blob_id, offset, length, size) in enumerate(self._segments):
                fd = self._fds[i]
                if fd is None:
                    fd = self._fds[i] = self._blobs.open(blob_id)
                async for chunk in self._piece(fd, offset, length, size):
                    yield chunk
                os.close(fd)
                self._fds[i] = -1
        finally:
            self.close()

    async def _piece(self, fd: int, offset: int, length: int, size: int):
        opener = await self._blobs.run(_opener, fd, self._key)
        ranges = list(_batches(offset, offset + length - 1))
        ahead: collections.deque[asyncio.Future] = collections.deque()
        following = 0
        try:
            for _ in ranges:
                while len(ahead) < READ_AHEAD and following < len(ranges):
                    ahead.append(asyncio.ensure_future(self._blobs.run(
                        sealed.read_plain, fd, opener, size, *ranges[following])))
                    following += 1
                yield await ahead.popleft()
        finally:
            if ahead:
                await asyncio.gather(*ahead, return_exceptions=True)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for i, fd in enumerate(self._fds):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds[i] = -1

    def __del__(self) -> None:
        self.close()


def _opener(fd: int, data_key: bytes) -> sealed.Opener:
    return sealed.Opener(data_key, sealed.read_header(fd))


def _batches(start: int, end: int):
    """Segment-aligned ranges of ~1 MiB covering start..end (inclusive)."""
    step = BATCH_SEGMENTS * sealed.SEGMENT
    at = start
    while at <= end:
        stop = min(end, (at // sealed.SEGMENT) * sealed.SEGMENT + step - 1)
        yield at, stop
        at = stop + 1


# --- copies ----------------------------------------------------------------------------------

def open_pieces(store: ObjectStore, found: list[tuple[str, int, int, int]]
                ) -> list[tuple[int, int, int, int]]:
    fds = []
    try:
        for blob_id, offset, length, size in found:
            fds.append((store.blobs.open(blob_id), offset, length, size))
    except BaseException:
        close_pieces(fds)
        raise
    return fds


def close_pieces(fds) -> None:
    for fd, *_ in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def plain_chunks(fd: int, data_key: bytes | None, offset: int, length: int, size: int):
    """Plaintext ``offset..offset+length-1`` of one blob (sealed when ``data_key``)."""
    if data_key is not None:
        yield from sealed.plain_chunks(fd, data_key, size, offset, offset + length - 1)
        return
    end = offset + length
    while offset < end:
        data = os.pread(fd, min(CHUNK, end - offset), offset)
        if not data:
            raise OSError("copy source is shorter than its metadata says")
        offset += len(data)
        yield data


def copy_plain(writer, sources: list[tuple[int, int, int, int]], data_key: bytes | None,
               algorithms: list[str]) -> tuple[bytes, dict[str, str]]:
    """Append the plaintext of ``sources`` to ``writer`` (which seals it when it is a
    ``sealed.SealingWriter``); the MD5 and checksums of that plaintext. Blocking."""
    digest = hashlib.md5()
    sums = [checksums.Checksum(a) for a in algorithms]
    for fd, offset, length, size in sources:
        for data in plain_chunks(fd, data_key, offset, length, size):
            digest.update(data)
            for c in sums:
                c.update(data)
            writer.write(data)
    return digest.digest(), {c.algorithm: c.b64() for c in sums}
