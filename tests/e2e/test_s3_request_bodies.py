"""Request bodies through real clients against a live server: a body is read whole (bounded by
the configured limit) whatever the network hands over at a time, and never inflated."""
from __future__ import annotations

import uuid

import pytest


def name(hint: str) -> str:
    return f"{hint}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


def test_delete_objects_of_1000_long_keys_reads_the_whole_body(s3):
    """DeleteObjects of 1,000 keys of ~500 bytes (a ~0.5 MB body, S3's maximum key count): the
    signed payload hash matches only when the whole body is read, every time."""
    bucket = name("bodies")
    s3.create_bucket(Bucket=bucket)
    keys = [f"{i:04d}/" + "k" * 490 for i in range(1000)]
    for attempt in range(8):
        out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys],
                                                       "Quiet": False})
        assert not out.get("Errors"), out.get("Errors")[:1]
        assert len(out["Deleted"]) == 1000, attempt
