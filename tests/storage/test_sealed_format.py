"""The sealed format of encrypted object data (storage.sealed) and data-key wrapping
(storage.key_wrap): round trips at every segment boundary, partial reads, and refusals of
altered, truncated or wrongly keyed data."""
from __future__ import annotations

import os

import pytest

from storage import key_wrap, sealed
from storage.blobs import BlobStore

SEG = sealed.SEGMENT


def test_sealed_size_and_layout():
    key = sealed.new_data_key()
    for size in (0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 17):
        data = os.urandom(size)
        out = sealed.seal(key, data)
        assert len(out) == sealed.sealed_size(size)
        assert out[:3] == b"NSE" and out[3] == sealed.VERSION
        if size >= 16:
            assert data[:16] not in out        # no plaintext on the way
        assert sealed.unseal(key, out, size) == data


def test_every_range_decrypts_only_what_it_asks():
    key = sealed.new_data_key()
    size = 3 * SEG + 100
    data = os.urandom(size)
    out = sealed.seal(key, data)
    for start, end in ((0, 0), (SEG - 1, SEG), (SEG - 3, 2 * SEG + 5), (size - 1, size - 1),
                       (2 * SEG, 3 * SEG - 1), (5, size - 1), (3 * SEG, size - 1)):
        assert sealed.unseal_range(key, out, size, start, end) == data[start:end + 1]


def test_a_fresh_salt_per_blob_so_no_key_nonce_pair_repeats():
    key = sealed.new_data_key()
    data = b"x" * (SEG + 10)
    one, two = sealed.seal(key, data), sealed.seal(key, data)
    assert one[8:24] != two[8:24]                 # salts differ
    assert one[24:24 + 32] != two[24:24 + 32]     # so do the ciphertexts of the same plaintext


def test_altered_truncated_or_foreign_data_is_refused():
    key = sealed.new_data_key()
    data = os.urandom(2 * SEG + 3)
    out = bytearray(sealed.seal(key, data))
    with pytest.raises(sealed.SealBroken):
        sealed.unseal(sealed.new_data_key(), bytes(out), len(data))
    flipped = bytearray(out)
    flipped[sealed.HEADER + SEG + 20] ^= 1
    with pytest.raises(sealed.SealBroken):
        sealed.unseal(key, bytes(flipped), len(data))
    with pytest.raises(sealed.SealBroken):     # the whole last segment gone
        sealed.unseal(key, bytes(out[:-(3 + sealed.TAG)]), len(data))
    swapped = bytes(out[:sealed.HEADER]) + bytes(out[sealed.HEADER + sealed.STORED_SEGMENT:
                                                      sealed.HEADER + 2 * sealed.STORED_SEGMENT]) \
        + bytes(out[sealed.HEADER:sealed.HEADER + sealed.STORED_SEGMENT]) \
        + bytes(out[sealed.HEADER + 2 * sealed.STORED_SEGMENT:])
    with pytest.raises(sealed.SealBroken):     # segments in another order
        sealed.unseal(key, swapped, len(data))


def test_sealing_writer_matches_whole_buffer_reads(tmp_path):
    blobs = BlobStore(str(tmp_path / "blobs"))
    blobs.setup()
    try:
        key = sealed.new_data_key()
        data = os.urandom(5 * SEG + 1234)
        writer = sealed.SealingWriter(blobs.create(), key)
        at = 0
        for size in (1, SEG - 1, 7, 2 * SEG + 5, 100, len(data)):   # odd piece sizes
            writer.write_pieces([data[at:at + size]])
            at += size
        writer.commit()
        raw = open(blobs.path(writer.blob_id), "rb").read()
        assert len(raw) == sealed.sealed_size(len(data)) and data[:64] not in raw
        fd = blobs.open(writer.blob_id)
        try:
            assert b"".join(sealed.plain_chunks(fd, key, len(data), 0, len(data) - 1)) == data
            got = b"".join(sealed.plain_chunks(fd, key, len(data), SEG - 2, 4 * SEG + 9))
            assert got == data[SEG - 2:4 * SEG + 10]
        finally:
            os.close(fd)
    finally:
        blobs.close()


def test_key_wrapping_is_bound_to_its_purpose():
    ring = key_wrap.KeyRing(os.urandom(32))
    data_key = sealed.new_data_key()
    wrapped = ring.wrap_s3(data_key)
    assert data_key not in wrapped and ring.unwrap_s3(wrapped) == data_key
    with pytest.raises(key_wrap.UnwrapFailed):
        key_wrap.KeyRing(os.urandom(32)).unwrap_s3(wrapped)     # another master key
    customer = os.urandom(32)
    with pytest.raises(key_wrap.UnwrapFailed):
        key_wrap.unwrap_customer(customer, wrapped)
    verifier = ring.customer_key_verifier(customer)
    assert customer not in verifier
    assert ring.customer_key_matches(customer, verifier)
    assert not ring.customer_key_matches(os.urandom(32), verifier)


def test_a_cached_opener_still_authenticates_every_read():
    """Repeated reads of one small sealed buffer reuse its opener (``sealed.cached_opener``),
    yet an altered segment under the same header, or the same header under another data key,
    is still refused on the read after a good one."""
    key = sealed.new_data_key()
    data = os.urandom(4096)
    out = sealed.seal(key, data)
    assert sealed.unseal_range(key, out, len(data), 0, len(data) - 1) == data
    header = out[:sealed.HEADER]
    assert sealed.cached_opener(key, header) is sealed.cached_opener(key, header)
    altered = bytearray(out)
    altered[sealed.HEADER + 100] ^= 1
    with pytest.raises(sealed.SealBroken):
        sealed.unseal_range(key, bytes(altered), len(data), 0, len(data) - 1)
    with pytest.raises(sealed.SealBroken):
        sealed.unseal_range(sealed.new_data_key(), out, len(data), 0, len(data) - 1)
    assert sealed.unseal_range(key, out, len(data), 10, 19) == data[10:20]


def test_a_small_object_read_in_one_piece_is_checked_like_any():
    """The one-segment read (a small object, decrypted straight into its own bytes) still
    refuses a truncated buffer and answers every range of it."""
    key = sealed.new_data_key()
    data = os.urandom(5000)
    out = sealed.seal(key, data)
    for start, end in ((0, 4999), (0, 0), (4999, 4999), (100, 200)):
        assert sealed.unseal_range(key, out, len(data), start, end) == data[start:end + 1]
    for cut in (1, 17, 4000):
        with pytest.raises(sealed.SealBroken):
            sealed.unseal_range(key, out[:-cut], len(data), 0, len(data) - 1)
