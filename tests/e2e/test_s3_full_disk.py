"""A full disk through boto3 against a live server whose data directory is a small tmpfs
(mounted by the test, as root; skipped otherwise).

Nimbo keeps a free-space watermark (``storage_min_free_mib``) and a reserve file
(``storage_reserve_mib``): new data is refused below the watermark with S3's ServiceUnavailable
(503), every out-of-space condition (ENOSPC on a blob, SQLITE_FULL) answers the same error, and
deletes, metadata commits and a restart keep working even when something else filled the disk."""
from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer

MiB = 1024 * 1024


def _mount_tmpfs(path: str, mib: int) -> bool:
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs", path],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mount = str(tmp_path / "disk")
    if not _mount_tmpfs(mount, 24):
        pytest.skip("mounting a tmpfs needs root")
    config = tmp_path / "nimbo.toml"
    config.write_text("storage_min_free_mib = 4\nstorage_reserve_mib = 2\n")
    srv = NimboServer(os.path.join(mount, "data"), extra_args=["--config", str(config)])
    try:
        yield srv, mount
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", mount], check=False)


def _error(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def _fill(mount: str, name: str) -> None:
    """Fill the filesystem to the last byte with a file that is not Nimbo's."""
    with open(os.path.join(mount, name), "wb", buffering=0) as fh:   # nothing left to flush at close
        block = b"\0" * 65536
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
    # the last partial block
    with open(os.path.join(mount, name + ".tail"), "wb", buffering=0) as fh:
        for size in (4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass


def _blob_files(data_dir: str) -> list[str]:
    return [name for _, _, names in os.walk(os.path.join(data_dir, "blobs")) for name in names
            if not name.startswith(".")]


def test_full_disk_refuses_new_data_and_keeps_deletes_and_restart_working(small_disk):
    srv, mount = small_disk
    srv.start()
    s3 = srv.client("s3")
    bucket = f"full-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)

    # large objects (blobs) until refused: the watermark's error, never a 500
    stored = []
    for i in range(40):
        try:
            s3.put_object(Bucket=bucket, Key=f"big/{i}", Body=os.urandom(MiB))
        except ClientError as exc:
            assert _error(exc) == ("ServiceUnavailable", 503)
            break
        stored.append(f"big/{i}")
    else:
        pytest.fail("a 24 MiB disk took 40 MiB")
    assert len(stored) >= 10
    # small (inline) objects until refused: the same error
    for i in range(1000):
        try:
            s3.put_object(Bucket=bucket, Key=f"small/{i}", Body=b"s" * 10000)
        except ClientError as exc:
            assert _error(exc) == ("ServiceUnavailable", 503)
            break
        stored.append(f"small/{i}")
    else:
        pytest.fail("10 MB of small objects went past the watermark")

    # something else fills the disk to the last byte: deletes still work, new data is refused
    _fill(mount, "outsider")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="tiny", Body=b"t")
    assert _error(info.value) == ("ServiceUnavailable", 503)
    s3.delete_object(Bucket=bucket, Key=stored.pop())
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stored[:3]]})
    assert not out.get("Errors") and len(out["Deleted"]) == 3
    del stored[:3]
    assert "Contents" in s3.list_objects_v2(Bucket=bucket)
    # the freed blobs make room for the reserve again, before any new data
    reserve = os.path.join(srv.data_dir, "space-reserve")
    deadline = time.monotonic() + 10
    while not os.path.exists(reserve) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.path.exists(reserve)

    # full again, then a restart: the server starts and deletes work
    _fill(mount, "outsider2")
    srv.stop()
    srv.start()
    s3 = srv.client("s3")
    s3.delete_object(Bucket=bucket, Key=stored.pop())
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stored]})
    assert not out.get("Errors") and len(out["Deleted"]) == len(stored)

    # full to the last byte with the reserve used up: a stop still ends promptly and cleanly
    # (once the deleted objects' blobs are unlinked: that happens just after the commit)
    deadline = time.monotonic() + 10
    while _blob_files(srv.data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _blob_files(srv.data_dir)
    _fill(mount, "outsider3")
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="refused", Body=b"r")
    s3.list_buckets()
    _fill(mount, "outsider4")
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 10

    # space is back: new data is accepted again
    for name in ("outsider", "outsider2", "outsider3", "outsider4"):
        os.unlink(os.path.join(mount, name))
        os.unlink(os.path.join(mount, name + ".tail"))
    srv.start()
    s3 = srv.client("s3")
    s3.put_object(Bucket=bucket, Key="after", Body=b"a" * 100000)
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"a" * 100000
    assert "Traceback" not in srv.log(), srv.log()
