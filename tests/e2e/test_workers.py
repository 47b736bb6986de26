"""``nimbo serve --workers 2`` through boto3: requests land on both worker processes (the access
log names the pid), what one worker commits the other serves at once (read-after-write, a
deleted bucket, a disabled key), EC2 through either worker (the leader serves it), and kill -9 of
a worker and of the leader loses no acknowledged write and wedges nothing."""
from __future__ import annotations

import http.client
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import boto3
import botocore.config
import pytest
from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from gateway.data_dir import is_served
from tests.conftest import REPO, NimboServer, wait_for
from tests.e2e.test_ec2_api import _register_stub as register_stub_image

ACCESS = re.compile(r"nimbo\.access\[(\d+)\]: \S+ (\w+) (\S+) ")


def workers_of(srv: NimboServer) -> list[int]:
    with open(f"/proc/{srv.process.pid}/task/{srv.process.pid}/children") as fh:
        return sorted(int(pid) for pid in fh.read().split())


def leader_of(srv: NimboServer) -> int:
    with open(os.path.join(srv.data_dir, "leader.lock")) as fh:
        text = fh.read().strip()
    return int(text) if text else 0     # empty while a new leader writes its pid: none yet


class Clients:
    """boto3 clients of one account, each on its own connection (its own pool)."""

    def __init__(self, srv: NimboServer, account: str | None = None) -> None:
        self.srv = srv
        env = srv.credentials(account)
        self.session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                             aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                             region_name="us-east-1")

    def client(self, service: str = "s3"):
        return self.session.client(service, endpoint_url=self.srv.endpoint, config=botocore.config.Config(
            retries={"max_attempts": 1}, max_pool_connections=1, connect_timeout=10, read_timeout=30))


def served_by(srv: NimboServer, path: str) -> set[int]:
    """The pids whose access log shows a request for ``path``."""
    with open(srv.log_path, errors="replace") as fh:
        return {int(m.group(1)) for m in ACCESS.finditer(fh.read()) if m.group(3) == path}


def worker_of(srv: NimboServer, s3) -> int:
    """The worker that serves ``s3``'s connection: a probe request, found in the access log."""
    probe = f"/probe-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=probe[1:])
    return wait_for(lambda: served_by(srv, probe), what="the probe in the access log").pop()


def clients_on_each_worker(srv: NimboServer, clients: Clients, service: str = "s3") -> dict[int, object]:
    """One client per worker (new connections until each worker has one; the kernel spreads
    connections over the workers' sockets by their addresses)."""
    found: dict[int, object] = {}
    for _ in range(40):
        s3 = clients.client()
        found.setdefault(worker_of(srv, s3), s3)
        if len(found) == 2:
            return found
    raise AssertionError(f"40 connections all reached worker(s) {sorted(found)}")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    srv = NimboServer(str(tmp_path_factory.mktemp("workers")),
                      extra_args=["--workers", "2", "--backend", "fake", "--access-log"]).start()
    srv.image_id = register_stub_image(srv)
    yield srv
    if srv.process is not None:
        assert srv.stop() == 0


def test_two_workers_serve_and_see_each_others_writes(two_workers):
    srv = two_workers
    assert len(workers_of(srv)) == 2
    on = clients_on_each_worker(srv, Clients(srv))
    (pid_a, a), (pid_b, b) = sorted(on.items())
    a.create_bucket(Bucket="shared")
    for i in range(5):      # read-after-write, each way, with no wait
        a.put_object(Bucket="shared", Key=f"a{i}", Body=f"from a {i}".encode())
        assert b.get_object(Bucket="shared", Key=f"a{i}")["Body"].read() == f"from a {i}".encode()
        b.put_object(Bucket="shared", Key=f"a{i}", Body=b"overwritten by b")
        assert a.get_object(Bucket="shared", Key=f"a{i}")["Body"].read() == b"overwritten by b"
    assert served_by(srv, "/shared/a0") == {pid_a, pid_b}
    listed = b.list_objects_v2(Bucket="shared")
    assert [o["Key"] for o in listed["Contents"]] == [f"a{i}" for i in range(5)]
    # a bucket deleted through one worker is gone for the other at once
    b.create_bucket(Bucket="short-lived")
    b.delete_bucket(Bucket="short-lived")
    with pytest.raises(ClientError) as info:
        a.put_object(Bucket="short-lived", Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"


def test_disabled_key_refused_by_every_worker_within_a_second(two_workers):
    srv = two_workers
    srv.nimbo("admin", "--data-dir", srv.data_dir, "create-account", "worker-tenant")
    clients = Clients(srv, "worker-tenant")
    on = clients_on_each_worker(srv, clients)
    for s3 in on.values():
        s3.list_buckets()                     # the key is in each worker's cache
    key_id = clients.session.get_credentials().access_key
    srv.nimbo("admin", "--data-dir", srv.data_dir, "disable-key", key_id)
    time.sleep(1.1)                           # gateway.accounts: cached for a second at most
    for s3 in on.values():
        with pytest.raises(ClientError) as info:
            s3.list_buckets()
        # S3's answer to a disabled key (gateway.auth.errors): 403 AccessDenied
        assert info.value.response["Error"]["Code"] == "AccessDenied"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def ec2_route(srv: NimboServer, request_id: str) -> tuple[int, int]:
    """(the worker that took the EC2 request, the one that served it), from the access log."""
    def lines():
        with open(srv.log_path, errors="replace") as fh:
            return [(int(m.group(1)), m.group(2)) for m in re.finditer(
                r"nimbo\.access\[(\d+)\]: \S* POST \S+ ec2 (\S+) -> \d+ [\d.]+ms " + request_id,
                fh.read())]
    found = wait_for(lambda: (lambda got: got if any(op != "forwarded-to-leader" for _, op in got)
                              else None)(lines()), what="the EC2 request in the access log")
    serving = next(pid for pid, op in found if op != "forwarded-to-leader")
    entry = next((pid for pid, op in found if op == "forwarded-to-leader"), serving)
    return entry, serving


def test_ec2_through_either_worker_and_tenants_isolated(two_workers):
    """EC2 is the leader's: a worker that does not lead forwards it; both see one state, and a
    tenant sees none of the admin's instances, through either worker."""
    srv = two_workers
    srv.nimbo("admin", "--data-dir", srv.data_dir, "create-account", "worker-tenant-2")
    admin, tenant = Clients(srv), Clients(srv, "worker-tenant-2")
    leader = leader_of(srv)
    seen: dict[int, object] = {}
    for _ in range(40):
        ec2 = admin.client("ec2")
        entry, serving = ec2_route(srv, ec2.describe_regions()["ResponseMetadata"]["RequestId"])
        assert serving == leader              # whichever worker took it
        seen.setdefault(entry, ec2)
        if len(seen) == 2:
            break
    assert sorted(seen) == workers_of(srv)
    ids = []
    for ec2 in seen.values():
        ids += [i["InstanceId"] for i in ec2.run_instances(
            ImageId=srv.image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1)["Instances"]]
    for ec2 in seen.values():
        found = {i["InstanceId"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
                 for i in r["Instances"]}
        assert found == set(ids)
    for _ in range(40):                       # the tenant, through the worker that forwards
        other = tenant.client("ec2")
        entry, _ = ec2_route(srv, other.describe_regions()["ResponseMetadata"]["RequestId"])
        if entry != leader:
            break
    else:
        raise AssertionError("no tenant connection reached the worker that does not lead")
    with pytest.raises(ClientError) as info:
        other.describe_instances(InstanceIds=ids[:1])
    assert info.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as info:
        other.terminate_instances(InstanceIds=ids[:1])
    assert info.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert other.describe_instances()["Reservations"] == []
    with pytest.raises(ClientError) as info:
        tenant.client().get_object(Bucket="shared", Key="a0")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_ec2_query_get_signed_v2_through_the_worker_that_forwards(two_workers):
    """A GET with the query signed by SigV2 (names and values with odd characters): forwarded
    byte for byte, so the leader's signature check sees what the client signed."""
    srv = two_workers
    env = srv.credentials()
    leader = leader_of(srv)
    for _ in range(40):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        probe = f"/probe-{uuid.uuid4().hex[:12]}"
        conn.request("HEAD", probe)
        conn.getresponse().read()
        if wait_for(lambda: served_by(srv, probe), what="the probe") != {leader}:
            break
        conn.close()
    else:
        raise AssertionError("40 connections all reached the leader")
    request = AWSRequest(method="GET", url=srv.endpoint + "/", params={
        "Action": "DescribeRegions", "Version": "2016-11-15",
        "Filter.1.Name": "region-name", "Filter.1.Value.1": "us-east-1",
        "Filter.2.Name": "opt-in-status", "Filter.2.Value.1": "opt-in-not-required",
        "Filter.2.Value.2": "a value/with spaces+plus&amp;=~*"})
    SigV2Auth(Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])).add_auth(request)
    prepared = request.prepare()
    conn.request("GET", prepared.url[len(srv.endpoint):], headers=dict(prepared.headers))
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    assert answer.status == 200, body
    assert b"<regionName>us-east-1</regionName>" in body and body.count(b"<regionName>") == 1


def test_clean_stop_flushes_every_workers_usage_counts(two_workers):
    """SIGTERM stops every worker cleanly: each flushes its buffered request counts (gateway.metering),
    so the ledger holds exactly the PUTs the access logs show, from both workers, none twice."""
    srv = two_workers
    on = clients_on_each_worker(srv, Clients(srv))
    first = next(iter(on.values()))
    first.create_bucket(Bucket="metered")
    for n, s3 in enumerate(on.values()):
        for i in range(3 + n):
            s3.put_object(Bucket="metered", Key=f"k{n}-{i}", Body=b"x")
    with open(srv.log_path) as fh:
        puts = re.findall(r"nimbo\.access\[(\d+)\]: \S+ PUT /metered/\S+ s3 PutObject -> 200 ", fh.read())
    assert len(set(puts)) == 2 and len(puts) == 7
    pids = workers_of(srv)
    assert srv.stop() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived the server"
    with open(srv.log_path) as fh:
        log = fh.read()
    assert "Traceback" not in log and log.count(": shutting down") == 2
    db = sqlite3.connect(os.path.join(srv.data_dir, "nimbo.db"))
    try:
        (counted,) = db.execute("SELECT SUM(amount) FROM usage_counts WHERE operation = 'PutObject'"
                                " AND usage_type = 'Requests-Tier1' AND resource_id = 'metered'").fetchone()
    finally:
        db.close()
    assert counted == len(puts)


class Writer(threading.Thread):
    """PUTs on new connections until stopped; what was acknowledged, with its bytes."""

    def __init__(self, clients: Clients, bucket: str) -> None:
        super().__init__(daemon=True)
        self.clients, self.bucket = clients, bucket
        self.acknowledged: dict[str, bytes] = {}
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and i < 2000:
            s3 = self.clients.client()
            for _ in range(5):
                key, data = f"k{i:05d}", os.urandom(100 if i % 3 else 70_000)
                i += 1
                try:
                    s3.put_object(Bucket=self.bucket, Key=key, Body=data)
                except Exception:   # noqa: BLE001 (a connection to the killed worker)
                    self.failed += 1
                    break
                self.acknowledged[key] = data

    def wait_for_more(self, count: int) -> None:
        target = len(self.acknowledged) + count
        wait_for(lambda: len(self.acknowledged) >= target, 30, f"{count} more acknowledged PUTs")


def test_kill_9_of_a_worker_and_of_the_leader(tmp_path):
    srv = NimboServer(str(tmp_path / "data"),
                      extra_args=["--workers", "2", "--backend", "fake", "--access-log"]).start()
    try:
        admin = Clients(srv)
        s3, ec2 = admin.client(), admin.client("ec2")
        s3.create_bucket(Bucket="durable")
        image = register_stub_image(srv)
        before = ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1,
                                   MaxCount=1)["Instances"][0]["InstanceId"]
        writer = Writer(admin, "durable")
        writer.start()
        writer.wait_for_more(20)
        # a temp file as the surviving worker's upload in flight leaves: a worker (re)started
        # while another serves must not collect it (storage.blobs: start-up GC runs alone)
        in_flight = os.path.join(srv.data_dir, "blobs", "fff", "in-flight-upload.tmp")
        os.makedirs(os.path.dirname(in_flight), exist_ok=True)
        open(in_flight, "wb").close()
        for victim in ("worker", "leader"):
            workers, leader = workers_of(srv), leader_of(srv)
            pid = leader if victim == "leader" else next(p for p in workers if p != leader)
            os.kill(pid, signal.SIGKILL)      # mid-stream: writes in flight on that worker
            replaced = wait_for(lambda: (lambda now: len(now) == 2 and pid not in now and now)(
                workers_of(srv)), what=f"a new worker for the killed {victim}")
            if victim == "leader":
                new_leader = wait_for(lambda: leader_of(srv) != pid and leader_of(srv),
                                      what="another worker to lead")
                assert new_leader in replaced
            writer.wait_for_more(20)          # the others were not wedged
            # EC2 works through a new connection (any worker) and knows the earlier instance
            ec2 = admin.client("ec2")
            found = ec2.describe_instances(InstanceIds=[before])["Reservations"][0]["Instances"]
            assert found[0]["InstanceId"] == before
            launched = ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1)
            assert launched["Instances"][0]["State"]["Name"] == "pending"
        writer.stop.set()
        writer.join(30)
        assert os.path.exists(in_flight)
        s3 = admin.client()
        for key, data in writer.acknowledged.items():
            assert s3.get_object(Bucket="durable", Key=key)["Body"].read() == data, key
        assert len(writer.acknowledged) >= 60
        with open(srv.log_path) as fh:
            log = fh.read()
        assert log.count(" exited (signal 9); starting it again") == 2
        assert "Traceback" not in log
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("after", [0.3, 1.5])
def test_sigterm_while_the_workers_start_stops_them_all_at_once(tmp_path, after):
    """SIGTERM while the parent imports, forks or waits for its workers: every process goes,
    promptly, and nothing holds the data directory afterwards."""
    srv = NimboServer(str(tmp_path / "data"), extra_args=["--workers", "2", "--backend", "fake"])
    with open(tmp_path / "server.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(srv.port),
                                    "--data-dir", srv.data_dir, *srv.extra_args], cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT)
    time.sleep(after)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 10, "the stop waited for a worker that ignored SIGTERM"
    wait_for(lambda: not is_served(srv.data_dir), 5, "the workers to go")
