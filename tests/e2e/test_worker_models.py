"""Which botocore models a worker process holds (``nimbo serve --workers 2``): S3's is loaded once,
by the parent, before it forks the workers; EC2's only by the process that serves EC2 (the
leader), on the first EC2 request; a worker that relays EC2 to the leader never loads it (the
request's bytes are relayed undecoded), and a worker that has served only S3 holds no EC2 model.
The first EC2 request, which loads the model, answers as any other."""
from __future__ import annotations

import re

import pytest

from tests.conftest import NimboServer
from tests.e2e.test_workers import (Clients, clients_on_each_worker, ec2_route, leader_of,
                                      workers_of)

LOADED = re.compile(r"nimbo\.models\[(\d+)\]: loaded the (\S+) model")


def loaded(srv: NimboServer) -> list[tuple[int, str]]:
    """(pid, service) of every model load the server logged."""
    with open(srv.log_path, errors="replace") as fh:
        return [(int(m.group(1)), m.group(2)) for m in LOADED.finditer(fh.read())]


@pytest.fixture
def two_workers(tmp_path):
    srv = NimboServer(str(tmp_path / "data"),
                      extra_args=["--workers", "2", "--backend", "fake", "--access-log"]).start()
    yield srv
    if srv.process is not None:
        assert srv.stop() == 0


def test_s3_workers_hold_no_ec2_model_until_ec2_is_asked(two_workers):
    srv = two_workers
    parent = srv.process.pid
    pids = workers_of(srv)
    on = clients_on_each_worker(srv, Clients(srv))
    assert sorted(on) == pids
    first = on[pids[0]]
    first.create_bucket(Bucket="models")
    for pid, s3 in on.items():     # S3 through each worker
        s3.put_object(Bucket="models", Key=f"from-{pid}", Body=b"x" * 1000)
        assert s3.get_object(Bucket="models", Key=f"from-{pid}")["Body"].read() == b"x" * 1000
        assert len(s3.list_objects_v2(Bucket="models")["Contents"]) >= 1
    # S3's model was loaded once, by the parent (shared by the workers it forked); no EC2 model
    assert loaded(srv) == [(parent, "s3")]

    leader = leader_of(srv)
    relay = next(pid for pid in pids if pid != leader)
    clients = Clients(srv)
    ec2 = clients.client("ec2")
    # the first EC2 request (it loads the model, in the leader) answers as any other
    answer = ec2.describe_regions()
    assert "us-east-1" in {r["RegionName"] for r in answer["Regions"]}
    assert ec2.describe_instances()["Reservations"] == []
    entries = {ec2_route(srv, answer["ResponseMetadata"]["RequestId"])[0]}
    for _ in range(40):   # more EC2 requests, over new connections, until the relaying worker took some
        other = clients.client("ec2")
        answer = other.describe_instances()
        assert answer["Reservations"] == []
        entry, serving = ec2_route(srv, answer["ResponseMetadata"]["RequestId"])
        assert serving == leader
        entries.add(entry)
        if relay in entries:
            break
    assert relay in entries, "no EC2 connection reached the worker that does not lead"
    loads = loaded(srv)
    assert loads.count((leader, "ec2")) == 1      # once, by the leader
    assert (relay, "ec2") not in loads            # relayed undecoded
    assert [pid for pid, service in loads if service == "s3"] == [parent]
