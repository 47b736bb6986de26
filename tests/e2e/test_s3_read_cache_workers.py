"""With several workers, each keeps its object reads' answers while the database is unchanged
(``storage.object_read_cache``); a write through another worker is seen by the very next read:
a worker that has just read (and kept) an object reads the other worker's overwrites and its
deletion at once."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer
from tests.e2e.test_workers import Clients, clients_on_each_worker


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    srv = NimboServer(str(tmp_path_factory.mktemp("cache-workers")),
                      extra_args=["--workers", "2", "--backend", "fake", "--access-log"]).start()
    yield srv
    if srv.process is not None:
        assert srv.stop() == 0


def test_a_kept_read_sees_the_other_workers_writes_at_once(workers):
    on = clients_on_each_worker(workers, Clients(workers))
    (_, a), (_, b) = sorted(on.items())
    a.create_bucket(Bucket="kept")
    a.put_object(Bucket="kept", Key="k", Body=b"first")
    for _ in range(3):      # read again and again: kept by b
        assert b.get_object(Bucket="kept", Key="k")["Body"].read() == b"first"
    for i in range(5):
        a.put_object(Bucket="kept", Key="k", Body=f"version {i}".encode())
        assert b.get_object(Bucket="kept", Key="k")["Body"].read() == f"version {i}".encode()
        assert b.head_object(Bucket="kept", Key="k")["ContentLength"] == len(f"version {i}")
    a.delete_object(Bucket="kept", Key="k")
    with pytest.raises(ClientError) as info:
        b.get_object(Bucket="kept", Key="k")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"
