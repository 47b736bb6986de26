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


# --- versions ------------------------------------------------------------------------------------

async def test_failure_between_blob_and_commit_keeps_every_version(tmp_path):
    s3 = await make_harness(str(tmp_path))
    await s3.call("CreateBucket", Bucket="photos")
    await s3.call("PutBucketVersioning", Bucket="photos",
                  VersioningConfiguration={"Status": "Enabled"})
    first, second = os.urandom(300_000), b"inline second"
    v1 = (await s3.put("photos", "k", first))["VersionId"]
    v2 = (await s3.put("photos", "k", second))["VersionId"]
    store = s3.state.store

    def crash(fn):
        raise RuntimeError("power cut before the metadata commit")

    store.write = crash
    store.discard = lambda ids: None
    with pytest.raises(RuntimeError):
        await s3.put("photos", "k", os.urandom(400_000))
    del store.write, store.discard
    await close_harness(s3)
    s3 = await make_harness(str(tmp_path))   # start-up collects the orphan, keeps the versions
    try:
        assert len(s3.blob_files()) == 1
        assert (await s3.get("photos", "k", VersionId=v1))[1] == first
        assert (await s3.get("photos", "k"))[1] == second
        out = await s3.call("ListObjectVersions", Bucket="photos")
        assert [v["VersionId"] for v in out["Versions"]] == [v2, v1]
    finally:
        await close_harness(s3)


async def test_existing_objects_become_the_null_version(tmp_path):
    """A data directory from before versioning: its objects are the null version after the
    migration, served as before, and versioning builds on them."""
    from storage.db import Database
    from storage.objects import SCHEMA
    from storage import usage
    db = await Database.open(os.path.join(str(tmp_path), "nimbo.db"))
    await db.migrate(SCHEMA)
    await db.migrate(usage.SCHEMA)
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO s3_buckets (name, account_id, region, created_us)"
                         " VALUES ('old', '111111111111', 'us-east-1', 1)")
        await tx.execute("INSERT INTO s3_inline (id, data) VALUES (7, x'6f6c64')")
        await tx.execute(
            "INSERT INTO s3_objects (bucket, key, version_id, size, etag, modified_us, owner_id,"
            " inline_id) VALUES ('old', 'k', 'abc', 3, 'e', 5000000, '111111111111', 7)")
    await db.close()
    s3 = await make_harness(str(tmp_path))
    try:
        got, body = await s3.get("old", "k", VersionId="null")
        assert body == b"old" and got["VersionId"] == "null"
        await s3.call("PutBucketVersioning", Bucket="old",
                      VersioningConfiguration={"Status": "Enabled"})
        await s3.put("old", "k", b"new")
        out = await s3.call("ListObjectVersions", Bucket="old")
        assert [(v["VersionId"], v["IsLatest"]) for v in out["Versions"]][1] == ("null", False)
        assert (await s3.get("old", "k", VersionId="null"))[1] == b"old"
    finally:
        await close_harness(s3)


VERSION_WRITER = textwrap.dedent("""
    import asyncio, os, sys
    sys.path.insert(0, {repo!r})
    from tests.s3.helpers import make_harness

    async def main():
        s3 = await make_harness({data_dir!r})
        for i in range(100000):
            key = "k%d" % (i % 3)
            if i % 5 == 4:
                out = await s3.call("DeleteObject", Bucket="photos", Key=key)
                print("delete", key, out["VersionId"], flush=True)
            elif i % 7 == 6:
                listed = await s3.call("ListObjectVersions", Bucket="photos", Prefix=key)
                old = listed.get("Versions", [])[-1:]
                if old:
                    await s3.call("DeleteObject", Bucket="photos", Key=key,
                                  VersionId=old[0]["VersionId"])
                    print("remove", key, old[0]["VersionId"], flush=True)
            else:
                data = os.urandom(70_000 if i % 2 else 100)
                out = await s3.put("photos", key, data)
                print("put", key, out["VersionId"], data.hex(), flush=True)

    asyncio.run(main())
""")


async def test_sigkill_during_versioned_writes(tmp_path):
    """kill -9 while versions are written, deleted and marked: every acknowledged version is
    there with its bytes, removed ones are gone, stored bytes equal the versions' sizes, and
    no blob is left that no version names."""
    s3 = await make_harness(str(tmp_path))
    await s3.call("CreateBucket", Bucket="photos")
    await s3.call("PutBucketVersioning", Bucket="photos",
                  VersioningConfiguration={"Status": "Enabled"})
    await close_harness(s3)
    script = VERSION_WRITER.format(repo=REPO, data_dir=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO)
    lines = []
    try:
        while len(lines) < 60:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            assert line, "the writer died"
            lines.append(line.decode().split())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    expected, removed, markers = {}, set(), set()
    for words in lines:
        if words[0] == "put":
            expected[words[2]] = (words[1], bytes.fromhex(words[3]))
        elif words[0] == "delete":
            markers.add(words[2])
        else:
            removed.add(words[2])
    s3 = await make_harness(str(tmp_path))
    try:
        out = await s3.call("ListObjectVersions", Bucket="photos")
        listed = {v["VersionId"]: v for v in out.get("Versions", [])}
        listed_markers = {m["VersionId"] for m in out.get("DeleteMarkers", [])}
        for vid, (key, data) in expected.items():
            if vid in removed:
                assert vid not in listed
                continue
            assert vid in listed, f"acknowledged version {vid} of {key} is missing"
            assert (await s3.get("photos", key, VersionId=vid))[1] == data
        assert markers <= listed_markers
        total = sum(v["Size"] for v in out.get("Versions", []))
        assert await s3.stored_bytes("photos") == total
        named = set(s3.state.store.referenced_blobs())
        files = {os.path.basename(p) for p in s3.blob_files()}
        assert files == named                      # no orphan, nothing missing
        for key in ("k0", "k1", "k2"):             # one newest version per key, current or marker
            latest = [v for v in out.get("Versions", []) + out.get("DeleteMarkers", [])
                      if v["Key"] == key and v["IsLatest"]]
            assert len(latest) <= 1
    finally:
        await close_harness(s3)
