"""Reading request bodies: the whole body, in as many reads as the network takes, bounded."""
from __future__ import annotations

import pytest

from gateway import dispatch, errors
from tests.s3.helpers import Body


async def test_read_all_reads_past_the_first_buffered_piece():
    data = bytes(range(256)) * 4000          # ~1 MB handed out 1,000 bytes at a time
    assert await dispatch.read_all(Body(data, piece=1000), 2 << 20) == data


async def test_read_all_refuses_more_than_the_limit():
    with pytest.raises(errors.MaxMessageLengthExceeded):
        await dispatch.read_all(Body(b"x" * 5000, piece=700), 4999)
    assert await dispatch.read_all(Body(b"x" * 5000, piece=700), 5000) == b"x" * 5000


async def test_a_body_broken_mid_way_is_incomplete_body_not_a_crash():
    from aiohttp.http_exceptions import TransferEncodingError

    class Broken:
        async def read(self, n: int = -1) -> bytes:
            raise TransferEncodingError("zz")
    with pytest.raises(errors.IncompleteBody):
        await dispatch.read_all(Broken(), 1000)

    class Gone:
        async def read(self, n: int = -1) -> bytes:
            raise ConnectionResetError("Connection lost")
    with pytest.raises(errors.IncompleteBody):
        await dispatch.read_all(Gone(), 1000)
