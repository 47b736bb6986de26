"""Fixtures for the S3 unit tests (helpers in ``tests/s3/helpers.py``)."""
from __future__ import annotations

import pytest

from tests.s3.helpers import close_harness, make_harness


@pytest.fixture
async def s3(tmp_path):
    h = await make_harness(str(tmp_path))
    try:
        yield h
    finally:
        await close_harness(h)


@pytest.fixture
async def bucket(s3):
    await s3.call("CreateBucket", Bucket="photos")
    return "photos"
