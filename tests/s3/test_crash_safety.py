"""Crash safety: nothing half-written becomes visible, and start-up collects what a crash left."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from storage.blobs import TMP_SUFFIX
from tests.s3.helpers import close_harness, make_harness

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def test_failure_between_blob_and_commit(tmp_path):
    s3 = await make_harness(str(tmp_path))
    await s3.call("CreateBucket", Bucket="photos")
    old = os.urandom(300_000)
    await s3.put("photos", "k", old)
    store = s3.state.store

    def crash(fn):
        raise RuntimeError("power cut before the metadata commit")

    store.write = crash              # the blob is durable, the row never comes
    store.discard = lambda ids: None  # a dead process cleans nothing up
    with pytest.raises(RuntimeError):
        await s3.put("photos", "k", os.urandom(400_000))
    assert len(s3.blob_files()) == 2  # the orphan is on disk
    del store.write, store.discard
    _, body = await s3.get("photos", "k")
    assert body == old                # the previous version is intact
    await close_harness(s3)

    s3 = await make_harness(str(tmp_path))   # start-up collects the orphan
    try:
        assert len(s3.blob_files()) == 1
        _, body = await s3.get("photos", "k")
        assert body == old
    finally:
        await close_harness(s3)


async def test_startup_removes_temp_files(tmp_path):
    s3 = await make_harness(str(tmp_path))
    await s3.call("CreateBucket", Bucket="photos")
    await s3.put("photos", "big", os.urandom(100_000))
    folder = os.path.dirname(s3.blob_files()[0])
    junk = os.path.join(folder, "deadbeef" * 4 + TMP_SUFFIX)
    open(junk, "wb").write(b"partial")
    await close_harness(s3)
    s3 = await make_harness(str(tmp_path))
    try:
        assert not os.path.exists(junk) and len(s3.blob_files()) == 1
    finally:
        await close_harness(s3)


async def test_no_collection_while_another_process_serves(tmp_path):
    first = await make_harness(str(tmp_path))
    await first.call("CreateBucket", Bucket="photos")
    folder = os.path.join(str(tmp_path), "blobs", "abc")
    os.makedirs(folder, exist_ok=True)
    in_flight = os.path.join(folder, "abc" + "0" * 29 + TMP_SUFFIX)
    open(in_flight, "wb").write(b"being written by the first process")
    second = await make_harness(str(tmp_path))
    try:
        assert os.path.exists(in_flight)     # the first store holds its lock: no collection
    finally:
        await close_harness(second)
        await close_harness(first)


UPLOADER = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, {repo!r})
    from tests.s3.helpers import make_harness, Body

    class Slow(Body):
        async def read(self, n=-1):
            if self.pos > 3 * 1024 * 1024:
                print("uploading", flush=True)
                await asyncio.sleep(3600)
            return await super().read(n)

    async def main():
        s3 = await make_harness({data_dir!r})
        data = os.urandom(8 * 1024 * 1024)
        await s3.call("PutObject", Bucket="photos", Key="k", Body=Slow(data), ContentLength=len(data))

    asyncio.run(main())
""")


async def test_sigkill_mid_upload(tmp_path):
    s3 = await make_harness(str(tmp_path))
    await s3.call("CreateBucket", Bucket="photos")
    await s3.put("photos", "k", b"the old version")
    await close_harness(s3)
    script = UPLOADER.format(repo=REPO, data_dir=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.strip() == b"uploading"
        temps = [p for p in s3.blob_files() if p.endswith(TMP_SUFFIX)]
        assert len(temps) == 1                       # half an object, as a temp file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    s3 = await make_harness(str(tmp_path))
    try:
        assert s3.blob_files() == []
        _, body = await s3.get("photos", "k")
        assert body == b"the old version"
    finally:
        await close_harness(s3)
