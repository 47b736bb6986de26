"""Several gateways, one cluster: two ``nimbo serve`` processes on their own ports and data
directories, sharing one PostgreSQL (``--metadata``, started by the test session) and one blob
directory (``--blob-dir``). What S3 promises holds across them: a PUT through one is read through
the other at once (read-after-write), a delete is seen everywhere, kill -9 of a gateway loses
nothing it acknowledged, and the background passes run on one gateway at a time."""
from __future__ import annotations

import os
import signal
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer

pytestmark = pytest.mark.postgresql_engine


@pytest.fixture
def cluster(postgres, tmp_path):
    url = postgres.fresh_database("cluster_" + uuid.uuid4().hex[:8])
    shared = tmp_path / "shared-blobs"
    args = ["--backend", "fake", "--workers", "1", "--metadata", url, "--blob-dir", str(shared)]
    first = NimboServer(str(tmp_path / "gw1"), extra_args=args).start()
    second = NimboServer(str(tmp_path / "gw2"), extra_args=args).start()
    # one master key for the cluster (SSE-S3 data keys are wrapped by it), beside the shared blobs
    assert os.path.isfile(shared / "master.key")
    assert not os.path.exists(os.path.join(first.data_dir, "master.key"))
    yield first, second, shared
    for srv in (first, second):
        srv.stop()


def test_both_gateways_serve_one_store(cluster):
    first, second, shared = cluster
    one, two = first.client("s3"), second.client("s3")
    assert first.credentials()["AWS_ACCESS_KEY_ID"] == second.credentials()["AWS_ACCESS_KEY_ID"]
    one.create_bucket(Bucket="shared")
    assert [b["Name"] for b in two.list_buckets()["Buckets"]] == ["shared"]
    one.put_object(Bucket="shared", Key="sealed", Body=b"SSE-S3", ServerSideEncryption="AES256")
    assert two.get_object(Bucket="shared", Key="sealed")["Body"].read() == b"SSE-S3"
    big = os.urandom(300_000)          # a blob file (not inline): read from the shared directory
    for n in range(20):                # read-after-write, each time, both directions
        writer, reader = (one, two) if n % 2 else (two, one)
        body = big + str(n).encode()
        writer.put_object(Bucket="shared", Key=f"k{n}", Body=body)
        assert reader.get_object(Bucket="shared", Key=f"k{n}")["Body"].read() == body
    assert any(os.scandir(shared))
    listed = two.list_objects_v2(Bucket="shared")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(["sealed"] + [f"k{n}" for n in range(20)])
    one.delete_object(Bucket="shared", Key="k3")
    with pytest.raises(ClientError) as err:
        two.get_object(Bucket="shared", Key="k3")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    two.delete_objects(Bucket="shared", Delete={"Objects": [{"Key": f"k{n}"} for n in range(20)]
                                                + [{"Key": "sealed"}]})
    assert one.list_objects_v2(Bucket="shared")["KeyCount"] == 0
    one.delete_bucket(Bucket="shared")
    with pytest.raises(ClientError) as err:
        two.head_bucket(Bucket="shared")
    assert err.value.response["Error"]["Code"] in ("404", "NoSuchBucket")


def test_kill_9_of_a_gateway_loses_nothing_acknowledged(cluster):
    first, second, _ = cluster
    one, two = first.client("s3"), second.client("s3")
    one.create_bucket(Bucket="durable")
    written = {}
    for n in range(30):
        body = os.urandom(1000 + n * 7000)
        one.put_object(Bucket="durable", Key=f"obj/{n}", Body=body)
        written[f"obj/{n}"] = body
    first.stop(signal.SIGKILL)                     # no clean shutdown of the writer
    for key, body in written.items():
        assert two.get_object(Bucket="durable", Key=key)["Body"].read() == body
    two.put_object(Bucket="durable", Key="after", Body=b"the cluster goes on")
    os.unlink(os.path.join(first.data_dir, "endpoint"))
    first.start()                                  # it comes back and sees everything
    again = first.client("s3")
    assert again.get_object(Bucket="durable", Key="after")["Body"].read() == b"the cluster goes on"
    assert again.list_objects_v2(Bucket="durable")["KeyCount"] == 31


def test_other_tenants_see_nothing_across_gateways(cluster):
    first, second, _ = cluster
    first.nimbo("admin", "--data-dir", first.data_dir, "create-account", "tenant-b")
    owner, other = first.client("s3"), second.client("s3", account="tenant-b")
    owner.create_bucket(Bucket="private-one")
    owner.put_object(Bucket="private-one", Key="secret", Body=b"x")
    with pytest.raises(ClientError) as err:
        other.get_object(Bucket="private-one", Key="secret")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert other.list_buckets()["Buckets"] == []
