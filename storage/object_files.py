"""Stored S3 objects handed to other services (EC2's ImportImage, RegisterImage) as a readable
stream or a file, with the requester's read access checked.

``open_object`` looks the object up through the object store's own reads (``ObjectStore``), checks
that the requesting account may read it (``check_read_access``: the one decision the future access
evaluator replaces) and opens every file that holds its bytes *before* it returns. The open file
descriptors are a snapshot: an overwrite or a delete of the object meanwhile unlinks the blobs'
names, not the data an open descriptor reads (POSIX), so a reader always sees one whole version.

``object_file`` gives the snapshot a path, for tools such as qemu-img that want one: a single-blob
object is hard-linked (no copy; the link keeps the data alive after S3 drops the blob), an inline
object or a multipart object made of several part blobs is written (off the event loop, all-zero
MiBs left as holes) into a temporary file. Both live in a work folder the caller names and
removes; ``sweep_work`` removes what a crash left there.

Encrypted objects (``storage.sealed``) are handed out as plaintext: the store's ``data_key_of``
(installed by the S3 service that opened it) finds the data key of a version the requester may read (SSE-S3, SSE-KMS); a
version it cannot open for them (SSE-C: only the customer has the key) is ``AccessDenied``. Such
an object's file is always a plaintext copy, never a link to the sealed blob.

Crash story: nothing here writes the object store. A crash leaves at most a link or a temporary
file inside the caller's work folder, which the caller's start-up sweep removes (see
``ec2_api.import_tasks``). Nothing here knows about HTTP or AWS wire formats.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

from storage import sealed
from storage.objects import Bucket, ObjectStore, ObjectVersion

CHUNK = 1 << 20


class ObjectUnavailable(Exception):
    """The object cannot be handed out; ``reason`` is 'NoSuchBucket', 'NoSuchKey' or 'AccessDenied'."""

    def __init__(self, reason: str, bucket: str, key: str) -> None:
        self.reason, self.bucket, self.key = reason, bucket, key
        super().__init__(f"{reason}: s3://{bucket}/{key}")


class NoSuchObject(ObjectUnavailable, LookupError):
    pass


class ObjectAccessDenied(ObjectUnavailable, PermissionError):
    pass


def owner_only(bucket: Bucket, version: ObjectVersion | None, account_id: str) -> bool:
    """Today's rule: buckets are private to the account that owns them."""
    return bucket.account_id == account_id


# The one decision "may this account read this object?". The access evaluator, when it exists,
# replaces this with its own (ACLs, bucket policies, public access block); callers never decide.
read_access: Callable[[Bucket, ObjectVersion | None, str], bool] = owner_only

# An ObjectStore's ``data_key_of(version, account_id) -> data key`` (raises ``LookupError`` when it
# cannot be had) is installed by the S3 service that opened it, which knows the modes and keys.
DataKeyOf = Callable[[ObjectVersion, str], Awaitable[bytes]]


def check_read_access(bucket: Bucket, version: ObjectVersion | None, account_id: str, key: str) -> None:
    if not read_access(bucket, version, account_id):
        raise ObjectAccessDenied("AccessDenied", bucket.name, key)


def find_store(states: dict) -> ObjectStore | None:
    """The running object store among a server's service states (the S3 service's), or None."""
    for state in states.values():
        store = getattr(state, "store", None)
        if isinstance(store, ObjectStore):
            return store
    return None


@dataclass
class StoredObject:
    """An open snapshot of one object version: inline ``data``, or ``segments`` of open files
    (fd, offset, length) in order. Close it (``open_object`` does)."""

    bucket: str
    key: str
    size: int
    etag: str
    data: bytes | None = None
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    blob_path: str | None = None      # the single blob's path, when the object is one whole blob
    sizes: list[int] = field(default_factory=list)   # each segment's blob plaintext size
    data_key: bytes | None = None     # set: the blobs are sealed (storage.sealed)

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        """The object's bytes in order, read off the event loop."""
        if self.data is not None:
            for start in range(0, len(self.data), size):
                yield self.data[start:start + size]
            return
        for (fd, offset, length), size in zip(self.segments, self.sizes):
            if self.data_key is not None:
                pieces = sealed.plain_chunks(fd, self.data_key, size, offset, offset + length - 1)
                while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
                    yield piece
                continue
            end = offset + length
            while offset < end:
                piece = await asyncio.to_thread(os.pread, fd, min(size, end - offset), offset)
                if not piece:
                    raise OSError(errno.EIO, "a blob is shorter than its object's metadata says")
                offset += len(piece)
                yield piece

    def write_to(self, path: str) -> None:
        """Put the bytes at ``path`` (a new file): a hard link of a whole single blob, else a copy.
        Blocking: run it off the event loop."""
        if self.blob_path is not None and len(self.segments) == 1 and self.data_key is None:
            fd = self.segments[0][0]
            try:
                os.link(self.blob_path, path)
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return
                os.unlink(path)     # the name now holds other data: copy the snapshot instead
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
        with open(path, "xb") as out:
            if self.data is not None:
                out.write(self.data)
            at = 0
            for (fd, offset, length), size in zip(self.segments, self.sizes):
                if self.data_key is not None:
                    for piece in sealed.plain_chunks(fd, self.data_key, size, offset,
                                                     offset + length - 1):
                        _write_unless_zero(out.fileno(), piece, at)
                        at += len(piece)
                    continue
                _copy_range(fd, offset, length, out.fileno(), at)
                at += length
            out.truncate(self.size)     # a trailing hole still counts

    def close(self) -> None:
        for fd, _, _ in self.segments:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.segments = []


_ZEROS = bytes(CHUNK)


def _write_unless_zero(dst: int, piece: bytes, at: int) -> None:
    """Write ``piece`` at ``at`` unless it is all zeros (a hole: the file is sparse)."""
    if piece == _ZEROS[:len(piece)]:
        return
    view = memoryview(piece)
    written = 0
    while written < len(piece):
        written += os.pwrite(dst, view[written:], at + written)


def _copy_range(src: int, offset: int, length: int, dst: int, at: int) -> None:
    """Copy ``length`` bytes of ``src`` from ``offset`` to ``dst`` at ``at``, leaving all-zero
    chunks as holes: disk images are mostly zeros, and a sparse copy is read back (by qemu-img)
    without touching them."""
    done = 0
    while done < length:
        piece = os.pread(src, min(CHUNK, length - done), offset + done)
        if not piece:
            raise OSError(errno.EIO, "a blob is shorter than its object's metadata says")
        if piece != _ZEROS[:len(piece)]:
            view = memoryview(piece)
            written = 0
            while written < len(piece):
                written += os.pwrite(dst, view[written:], at + done + written)
        done += len(piece)


def _snapshot(store: ObjectStore, bucket_name: str, key: str, account_id: str) -> StoredObject:
    bucket, version = store.bucket_and_object(bucket_name, key)
    if bucket is None:
        raise NoSuchObject("NoSuchBucket", bucket_name, key)
    check_read_access(bucket, version, account_id, key)
    if version is None:
        raise NoSuchObject("NoSuchKey", bucket_name, key)
    found = StoredObject(bucket_name, key, version.size, version.etag)
    found.version = version
    if version.data is not None:
        found.data = bytes(version.data)
        return found
    if version.parts:
        pieces = [(row[5], 0, row[2]) for row in store.object_parts(version.version_id)]
    elif version.blob:
        pieces = [(version.blob, 0, version.size)]
        found.blob_path = store.blobs.path(version.blob)
    else:
        found.data = b""
        return found
    found.sizes = [length for _, _, length in pieces]
    try:
        for blob_id, offset, length in pieces:
            found.segments.append((store.blobs.open(blob_id), offset, length))
    except BaseException:
        found.close()
        raise
    return found


@contextlib.asynccontextmanager
async def open_object(store: ObjectStore, bucket: str, key: str, account_id: str) -> AsyncIterator[StoredObject]:
    """The current version of s3://bucket/key as ``account_id`` may read it, open for the block.
    Raises ``NoSuchObject`` or ``ObjectAccessDenied``."""
    found = None
    for _ in range(3):
        try:
            found = _snapshot(store, bucket, key, account_id)
            break
        except FileNotFoundError:   # replaced between the lookup and the open: look again
            continue
    if found is None:
        raise NoSuchObject("NoSuchKey", bucket, key)
    try:
        await _unseal(store, found, account_id)
        yield found
    finally:
        found.close()


async def _unseal(store: ObjectStore, found: StoredObject, account_id: str) -> None:
    """Give an encrypted snapshot its data key (inline bytes: decrypted at once)."""
    version = found.__dict__.pop("version", None)
    if version is None or not getattr(version, "sse", None):
        return
    data_key_of: DataKeyOf | None = getattr(store, "data_key_of", None)
    if data_key_of is None:
        raise ObjectAccessDenied("AccessDenied", found.bucket, found.key)
    try:
        data_key = await data_key_of(version, account_id)
    except LookupError:
        raise ObjectAccessDenied("AccessDenied", found.bucket, found.key) from None
    if found.data is not None:
        found.data = sealed.unseal(data_key, found.data, found.size) if found.size else b""
    else:
        found.data_key = data_key


@contextlib.asynccontextmanager
async def object_file(store: ObjectStore, bucket: str, key: str, account_id: str,
                      work_dir: str, name: str = "source") -> AsyncIterator[str]:
    """A path in ``work_dir`` holding the object's bytes, for the block's duration."""
    os.makedirs(work_dir, mode=0o700, exist_ok=True)
    path = os.path.join(work_dir, name)
    async with open_object(store, bucket, key, account_id) as found:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        try:
            await asyncio.to_thread(found.write_to, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def sweep_work(root: str, keep: Callable[[str], bool] = lambda name: False) -> int:
    """Remove the entries of a work folder that ``keep`` does not name (start-up, after a crash)."""
    if not os.path.isdir(root):
        return 0
    removed = 0
    for entry in os.scandir(root):
        if keep(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        removed += 1
    return removed


__all__ = ["ObjectUnavailable", "NoSuchObject", "ObjectAccessDenied", "StoredObject", "open_object",
           "object_file", "find_store", "check_read_access", "read_access", "owner_only", "sweep_work"]
