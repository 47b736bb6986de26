"""Big objects through the blob store: the upload lanes (MD5, checksums, and sealing plus
writing in their own lanes, ``s3_api.payload``), the sealed reads that decrypt straight from a
mapping of the file (``storage.sealed.read_plain``), and the GET bodies (``s3_api.streaming``)."""
from __future__ import annotations

import asyncio
import hashlib
import os
from types import SimpleNamespace

import pytest

from s3_api import checksums, payload, sealed_io, streaming
from storage import sealed
from storage.blobs import BlobStore

SEG = sealed.SEGMENT


@pytest.fixture
def blobs(tmp_path):
    store = BlobStore(str(tmp_path / "blobs"))
    store.setup()
    yield store
    store.close()


class _Pieces:
    """An upload body that arrives in pieces of awkward sizes (never a segment's multiple)."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = memoryview(data)
        self._piece = piece

    async def read(self, n: int = -1) -> bytes:
        take = min(n if n > 0 else self._piece, self._piece, len(self._data))
        out, self._data = bytes(self._data[:take]), self._data[take:]
        return out


def _read_blob(blobs, blob_id: str) -> bytes:
    with open(blobs.path(blob_id), "rb") as fh:
        return fh.read()


@pytest.mark.parametrize("size", [2 * payload.BLOCK + 12345, payload.BLOCK, 3 * SEG + 1])
async def test_a_sealed_upload_in_odd_pieces_is_the_plaintext_sealed_in_order(blobs, size):
    """Blocks that split segments anywhere: the blob must still hold every segment in order under
    consecutive nonces, and the digests are of the plaintext."""
    data = os.urandom(size)
    key = sealed.new_data_key()
    state = SimpleNamespace(inline_max=0, blobs=blobs)
    got = await payload.store(state, _Pieces(data, 100_003), size=size, inline_ok=False,
                              declared=checksums.declared({}, None), seal=key)
    assert got.md5 == hashlib.md5(data).digest()
    assert got.checksums["CRC64NVME"] == checksums.compute("CRC64NVME", data)
    stored = _read_blob(blobs, got.blob_id)
    assert len(stored) == sealed.sealed_size(size)
    assert data[:64] not in stored
    assert sealed.unseal(key, stored, size) == data


async def test_a_plain_upload_is_written_as_it_came(blobs):
    data = os.urandom(payload.BLOCK + 777)
    state = SimpleNamespace(inline_max=0, blobs=blobs)
    got = await payload.store(state, _Pieces(data, 65_537), size=len(data), inline_ok=False,
                              declared=checksums.declared({}, None))
    assert _read_blob(blobs, got.blob_id) == data


async def test_a_failed_sealed_write_fails_the_upload_and_leaves_no_file(blobs, monkeypatch):
    """An error in the writing lane (sealing included) reaches the request, and the temp file
    goes, while the other lanes' jobs for that block finish."""
    calls = {"n": 0}
    real = sealed.SealingWriter.write_pieces

    def broken(self, pieces):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("cipher failed")
        return real(self, pieces)

    monkeypatch.setattr(sealed.SealingWriter, "write_pieces", broken)
    state = SimpleNamespace(inline_max=0, blobs=blobs)
    data = os.urandom(3 * payload.BLOCK)
    with pytest.raises(RuntimeError, match="cipher failed"):
        await asyncio.wait_for(payload.store(state, _Pieces(data, 1 << 20), size=len(data),
                                             inline_ok=False,
                                             declared=checksums.declared({}, None),
                                             seal=sealed.new_data_key()), 30)
    leftovers = [name for _, _, files in os.walk(blobs.root) for name in files
                 if name != ".lock"]
    assert leftovers == []


def _sealed_file(blobs, data: bytes, key: bytes) -> int:
    writer = sealed.SealingWriter(blobs.create(), key)
    writer.write(data)
    writer.commit()
    return blobs.open(writer.blob_id), writer.blob_id


def test_mapped_reads_match_the_plaintext_at_every_boundary(blobs):
    key = sealed.new_data_key()
    size = 40 * SEG + 333
    data = os.urandom(size)
    fd, _ = _sealed_file(blobs, data, key)
    try:
        opener = sealed.Opener(key, sealed.read_header(fd))
        for start, end in ((0, size - 1), (1, 20 * SEG), (SEG - 1, 17 * SEG + 1),
                           (size - 5 * SEG, size - 1), (3, 9), (size - 1, size - 1)):
            assert bytes(sealed.read_plain(fd, opener, size, start, end)) == data[start:end + 1]
    finally:
        os.close(fd)


def test_a_truncated_or_altered_blob_is_refused_not_mapped_past_its_end(blobs):
    """A blob shorter than its metadata says fails with SealBroken (a mapping past the end of a
    file would kill the process with SIGBUS); an altered segment fails to decrypt."""
    key = sealed.new_data_key()
    size = 20 * SEG
    fd, blob_id = _sealed_file(blobs, os.urandom(size), key)
    try:
        opener = sealed.Opener(key, sealed.read_header(fd))
        path = blobs.path(blob_id)
        os.truncate(path, sealed.sealed_size(size) - 100)
        with pytest.raises(sealed.SealBroken, match="shorter"):
            sealed.read_plain(fd, opener, size, 0, size - 1)
        with open(path, "r+b") as fh:
            fh.seek(sealed.HEADER + 2 * sealed.STORED_SEGMENT + 5)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 1]))
        with pytest.raises(sealed.SealBroken, match="segment 2"):
            sealed.read_plain(fd, opener, size, 0, 10 * SEG - 1)
    finally:
        os.close(fd)


def test_uninitialized_buffers_are_bytearrays_of_the_size_asked():
    for n in (0, 1, 1 << 20):
        buf = sealed.uninitialized(n)
        assert type(buf) is bytearray and len(buf) == n


async def test_the_get_body_streams_a_big_sealed_object_in_order(blobs):
    key = sealed.new_data_key()
    size = 2 * sealed_io.BATCH_SEGMENTS * SEG + 3 * SEG + 7
    data = os.urandom(size)
    _, blob_id = _sealed_file(blobs, data, key)
    body = sealed_io.SealedBody(blobs, key, [(blob_id, 5, size - 5, size)])
    body.open()
    out = b"".join([bytes(chunk) async for chunk in body])
    assert out == data[5:]
    assert body.write_buffer == streaming.write_buffer(size - 5) is not None


def test_only_big_bodies_ask_for_a_bigger_socket_buffer():
    assert streaming.write_buffer(1000) is None
    high, low = streaming.write_buffer(100 << 20)
    assert high > low > 0


async def test_the_plaintext_get_body_reads_cached_pages_into_unzeroed_buffers_exactly(blobs):
    """Plaintext blobs are read from the page cache into buffers that are not zeroed first: what
    the body yields is the file's bytes and nothing past the range (a short read is trimmed)."""
    data = os.urandom(3 * streaming.CHUNK + 99)
    writer = blobs.create()
    writer.write(data)
    writer.commit()
    for offset, length in ((0, len(data)), (7, 2 * streaming.CHUNK + 5), (len(data) - 3, 3)):
        body = streaming.ObjectBody(blobs, segments=[(writer.blob_id, offset, length)])
        body.open()
        out = b"".join([bytes(chunk) async for chunk in body])
        assert out == data[offset:offset + length]


async def test_a_blob_upload_touches_the_disk_only_on_the_store_threads(blobs, monkeypatch):
    """A writer is made on the event loop; its file, and for a folder's first blob the folder and
    the root's fsync, must be made by the first write on the store's threads, never on the loop."""
    import threading
    loop_thread = threading.get_ident()
    calls: list[tuple[str, bool]] = []
    real_open, real_fsync = os.open, os.fsync

    def spy_open(path, *args, **kwargs):
        calls.append(("open", threading.get_ident() == loop_thread))
        return real_open(path, *args, **kwargs)

    def spy_fsync(fd):
        calls.append(("fsync", threading.get_ident() == loop_thread))
        return real_fsync(fd)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    data = os.urandom(payload.BLOCK + 1)
    state = SimpleNamespace(inline_max=0, blobs=blobs)
    stored = await payload.store(state, _Pieces(data, 65536), size=len(data), inline_ok=False,
                                 declared=checksums.declared({}, None), seal=None)
    monkeypatch.undo()
    assert _read_blob(blobs, stored.blob_id) == data
    assert ("open", False) in calls and ("fsync", False) in calls   # a folder's first blob
    assert not [name for name, on_loop in calls if on_loop], calls


def test_an_empty_blob_commits_and_an_unwritten_abort_leaves_nothing(blobs):
    empty = blobs.create()
    empty.commit()
    assert _read_blob(blobs, empty.blob_id) == b""
    dropped = blobs.create()
    dropped.abort()
    assert not os.path.exists(dropped.tmp_path) and not os.path.exists(dropped.path)
