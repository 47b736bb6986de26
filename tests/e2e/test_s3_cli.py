"""aws-cli (v1, ``python -m awscli``) against a live server: a 100 MiB ``aws s3 cp`` there and
back (multipart both ways), and ``aws s3 sync`` of a tree with odd names, both directions."""
from __future__ import annotations

import hashlib
import os
import time
import uuid

import pytest

from tests.e2e.test_foundation import aws_cli

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket(server):
    name = f"cli-{uuid.uuid4().hex[:10]}"
    server.client("s3").create_bucket(Bucket=name)
    return name


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def cli(server, *args):
    done = aws_cli(server, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_cp_100_mib_there_and_back(server, bucket, tmp_path):
    src, back = tmp_path / "big.bin", tmp_path / "back.bin"
    with open(src, "wb") as fh:
        for _ in range(100):
            fh.write(os.urandom(MiB))
    cli(server, "s3", "cp", str(src), f"s3://{bucket}/big.bin")
    head = server.client("s3").head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 100 * MiB
    assert head["ETag"].endswith('-13"')      # 8 MiB parts: the CLI's default multipart upload
    cli(server, "s3", "cp", f"s3://{bucket}/big.bin", str(back))
    assert sha256_file(back) == sha256_file(src)


ODD_NAMES = ["plain.txt", "with space.txt", "plus+sign.txt", "per%cent.txt", "amp&eq=.txt",
             "unicod\u00e9/sn\u00f8w \u2603.txt", "deep/er/tilde~dir/x.txt", "brackets[1].txt"]


def test_sync_odd_names_both_ways(server, bucket, tmp_path):
    up, back = tmp_path / "up", tmp_path / "back"
    # `aws s3 sync` uploads a file whose mtime is later than the object's LastModified, which S3
    # gives to the second: a file written in the same second as its upload but at a later fraction
    # of it looked newer on the second sync (a flaky "upload:"). Files written a minute before,
    # to the whole second, are what a user syncs: the second sync must find nothing to do.
    written = int(time.time()) - 60
    for i, name in enumerate(ODD_NAMES):
        path = up / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{i}: {name}\n".encode() * (i + 1))
        os.utime(path, (written, written))
    cli(server, "s3", "sync", str(up), f"s3://{bucket}/tree/")
    listed = server.client("s3").list_objects_v2(Bucket=bucket, Prefix="tree/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted("tree/" + n for n in ODD_NAMES)
    again = cli(server, "s3", "sync", str(up), f"s3://{bucket}/tree/")
    assert "upload:" not in again.stdout        # names and sizes round-trip: nothing to do
    cli(server, "s3", "sync", f"s3://{bucket}/tree/", str(back))
    for name in ODD_NAMES:
        assert (back / name).read_bytes() == (up / name).read_bytes(), name
