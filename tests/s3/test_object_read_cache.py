"""Object reads keep their lookup's answer while the database does not change
(``storage.object_read_cache``): a repeated GET runs no table query, and any commit -- through
this store, or by another connection or process, as another ``--workers`` process would -- is
seen by the very next read (S3's read-after-write consistency)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from storage import object_read_cache


def _selects(store) -> list[str]:
    seen: list[str] = []
    store.reader.set_trace_callback(seen.append)
    return seen


async def test_a_repeated_read_queries_no_table(s3, bucket):
    store = s3.state.store
    await s3.put(bucket, "k", b"data")
    first = store.bucket_object_access(bucket, "k")
    seen = _selects(store)
    try:
        assert store.bucket_object_access(bucket, "k") is first
        _, body = await s3.get(bucket, "k")
    finally:
        store.reader.set_trace_callback(None)
    assert body == b"data"
    assert seen and all(sql.startswith("PRAGMA data_version") for sql in seen), seen


async def test_an_overwrite_is_read_at_once(s3, bucket):
    await s3.put(bucket, "k", b"one")
    assert (await s3.get(bucket, "k"))[1] == b"one"
    await s3.put(bucket, "k", b"two")
    assert (await s3.get(bucket, "k"))[1] == b"two"
    await s3.call("DeleteObject", Bucket=bucket, Key="k")
    with pytest.raises(Exception) as err:
        await s3.get(bucket, "k")
    assert getattr(err.value, "code", "") == "NoSuchKey"


async def test_a_commit_by_another_process_is_read_at_once(s3, bucket):
    """Another process (another ``--workers`` worker) changes the row: the next read sees it."""
    store = s3.state.store
    await s3.put(bucket, "k", b"data")
    before = store.bucket_object_access(bucket, "k")[1]
    assert store.bucket_object_access(bucket, "k")[1] is before       # kept
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
              " c.execute(\"UPDATE s3_objects SET etag = 'changed' WHERE bucket = ? AND key = ?\","
              " (sys.argv[2], 'k'))")
    subprocess.run([sys.executable, "-c", script, store.db.path, bucket], check=True, timeout=60)
    after = store.bucket_object_access(bucket, "k")[1]
    assert after is not before and after.etag == "changed"
    out, _ = await s3.get(bucket, "k")
    assert out["ETag"] == '"changed"'


async def test_kept_bytes_are_bounded(s3, bucket, monkeypatch):
    monkeypatch.setattr(object_read_cache, "MAX_BYTES", 10_000)
    store = s3.state.store
    for name in ("a", "b", "c"):
        await s3.put(bucket, name, b"x" * 4000)
    for name in ("a", "b", "c"):
        store.bucket_object_access(bucket, name)
    kept = store._read_cache.current()
    assert 0 < len(kept) < 3
    assert store._read_cache._bytes <= 10_000


async def test_answers_are_fresh_dicts_of_the_stored_headers(s3, bucket):
    """A hot object's stored headers are parsed once; each GET still gets its own answer (one
    request's members never leak into the next)."""
    await s3.put(bucket, "k", b"data", ContentType="text/plain", Metadata={"a": "1"})
    first, _ = await s3.get(bucket, "k", Range="bytes=0-1")
    assert first["ContentRange"] == "bytes 0-1/4" and first["ContentType"] == "text/plain"
    second, body = await s3.get(bucket, "k")
    assert "ContentRange" not in second and body == b"data"
    assert second["Metadata"] == {"a": "1"} and second["ContentLength"] == 4
