"""EC2 across gateways: two ``nimbo serve`` processes (separate data directories, one PostgreSQL,
one blob directory, the fake driver) are one EC2. An instance launched through one gateway is
described, stopped, started, given a volume and terminated through the other, and both show the
same states; housekeeping never settles an instance with a driver that does not run it; kill -9
of the gateway that runs compute hands EC2 to the other (``gateway.cluster``)."""
from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer
from tests.conftest import wait_for as _wait_for

pytestmark = pytest.mark.postgresql_engine

HOUSEKEEPING = 0.3      # seconds between EC2 housekeeping passes: many of them within a test


def wait_for(predicate, timeout: float = 40.0, what: str = "condition"):
    """As ``tests.conftest.wait_for``, with waits sized for two gateways on a loaded machine."""
    return _wait_for(predicate, timeout, what)


def register_stub_image(url: str, data_dir: str) -> str:
    """A public image from a small stand-in disk (the fake driver never reads it)."""
    from ec2_api.images import register_tiny_image  # noqa: PLC0415
    from gateway.config import Config  # noqa: PLC0415
    from storage.postgres import PostgresDatabase  # noqa: PLC0415
    art = os.path.join(data_dir, "stub-artifacts")
    os.makedirs(art, exist_ok=True)
    with open(os.path.join(art, "disk.img"), "wb") as fh:
        fh.truncate(4 * 1024 * 1024)

    async def register() -> str:
        db = await PostgresDatabase.open(url)
        try:
            return await register_tiny_image(db, Config(data_dir=data_dir),
                                             {"disk": os.path.join(art, "disk.img")})
        finally:
            await db.close()
    return asyncio.run(register())


def cluster_leader(url: str) -> tuple[str, int, str] | None:
    """(address, pid, gateway) of the gateway that runs EC2, from the cluster's table."""
    import psycopg  # noqa: PLC0415
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT address, pid, gateway FROM cluster_leaders"
                               " WHERE role = 'ec2'").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return (row[0], row[1], row[2]) if row else None


class Cluster:
    def __init__(self, postgres, tmp_path, second_workers: int = 1) -> None:
        self.url = postgres.fresh_database("ec2c_" + uuid.uuid4().hex[:8])
        self.shared = tmp_path / "shared-blobs"
        config = tmp_path / "cluster.toml"
        config.write_text(f"ec2_housekeeping_seconds = {HOUSEKEEPING}\n")
        self.args = ["--backend", "fake", "--workers", "1", "--metadata", self.url,
                     "--blob-dir", str(self.shared), "--config", str(config), "--access-log"]
        self.first = NimboServer(str(tmp_path / "gw1"), extra_args=self.args).start()
        second = [*self.args[:3], str(second_workers), *self.args[4:]]
        self.second = NimboServer(str(tmp_path / "gw2"), extra_args=second).start()
        self.image = register_stub_image(self.url, str(tmp_path / "images"))

    def gateways(self) -> tuple[NimboServer, NimboServer]:
        return self.first, self.second

    def leader(self) -> NimboServer:
        gateway = wait_for(lambda: cluster_leader(self.url), what="a cluster leader")[2]
        return next(g for g in self.gateways() if gateway.endswith(":" + g.data_dir))

    def stop(self) -> None:
        for srv in self.gateways():
            srv.stop()


@pytest.fixture
def cluster(postgres, tmp_path, request):
    made = Cluster(postgres, tmp_path, getattr(request, "param", 1))
    yield made
    made.stop()


def instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def state(ec2, instance_id: str) -> str:
    return instance(ec2, instance_id)["State"]["Name"]


def seen_alike(clients, instance_id: str, wanted: str) -> dict:
    """The instance in ``wanted`` state through every gateway, with the same description."""
    views = wait_for(lambda: (lambda vs: all(v["State"]["Name"] == wanted for v in vs) and vs)(
        [instance(c, instance_id) for c in clients]), what=f"{instance_id} {wanted} everywhere")
    assert all(v == views[0] for v in views[1:]), views
    return views[0]


def test_an_instance_launched_through_one_gateway_is_managed_through_the_other(cluster):
    first, second = cluster.gateways()
    one, two = first.client("ec2"), second.client("ec2")
    launched = one.run_instances(ImageId=cluster.image, InstanceType="t3.micro", MinCount=1,
                                 MaxCount=1)["Instances"][0]["InstanceId"]
    seen_alike((one, two), launched, "running")
    # the driver that runs it answers through either gateway (the fake driver's console log)
    for ec2 in (one, two):
        assert "fake: started" in ec2.get_console_output(InstanceId=launched).get("Output", "")
    time.sleep(HOUSEKEEPING * 8)    # many housekeeping passes, on whichever gateway
    view = seen_alike((one, two), launched, "running")
    assert "StateReason" not in view or view["StateReason"]["Code"] != "Server.InternalError"

    two.stop_instances(InstanceIds=[launched])
    view = seen_alike((one, two), launched, "stopped")
    assert view["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    one.start_instances(InstanceIds=[launched])
    seen_alike((one, two), launched, "running")

    volume = two.create_volume(AvailabilityZone=view["Placement"]["AvailabilityZone"],
                               Size=1)["VolumeId"]
    wait_for(lambda: one.describe_volumes(VolumeIds=[volume])["Volumes"][0]["State"] == "available",
             what="the volume available")
    two.attach_volume(VolumeId=volume, InstanceId=launched, Device="/dev/sdf")
    wait_for(lambda: one.describe_volumes(VolumeIds=[volume])["Volumes"][0]["Attachments"][0]["State"]
             == "attached", what="the volume attached, seen through the other gateway")
    assert f"disk attached {volume.replace('-', '')}" in one.get_console_output(InstanceId=launched)["Output"]

    one.terminate_instances(InstanceIds=[launched])
    seen_alike((one, two), launched, "terminated")
    logs = [open(g.log_path).read() for g in (first, second)]
    assert sum("this gateway (pid" in text for text in logs) == 1   # one leader, one driver
    assert all("Traceback" not in text for text in logs)


@pytest.mark.parametrize("cluster", [2], indirect=True)   # the survivor serves with two workers
def test_kill_9_of_the_gateway_that_runs_compute_hands_ec2_to_the_other(cluster):
    """PostgreSQL drops the dead gateway's session and its lock; the other gateway takes the lock,
    opens EC2 and settles the instances whose VMs died with the first gateway's driver as AWS
    settles an instance whose host failed: stopped, Server.InternalError. StartInstances brings
    one back on the new leader's driver; the killed gateway, started again, follows."""
    leader = cluster.leader()
    survivor = next(g for g in cluster.gateways() if g is not leader)
    ec2 = survivor.client("ec2")
    launched = [ec2.run_instances(ImageId=cluster.image, InstanceType="t3.micro", MinCount=1,
                                  MaxCount=1)["Instances"][0]["InstanceId"] for _ in range(2)]
    for instance_id in launched:
        seen_alike((ec2, leader.client("ec2")), instance_id, "running")
    stopped = launched[1]
    ec2.stop_instances(InstanceIds=[stopped])
    seen_alike((ec2,), stopped, "stopped")
    old_address = cluster_leader(cluster.url)[0]

    leader.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    view = instance(ec2, launched[0])           # waits for the new leader (relayed or served)
    took = time.monotonic() - killed_at
    print(f"EC2 answered through the survivor {took:.2f} s after kill -9 of the leader")
    assert took < 25    # within the relay's wait for a leader (30 s), on a loaded machine
    new = wait_for(lambda: (lambda row: row and row[0] != old_address and row)(cluster_leader(cluster.url)),
                   what="the survivor registered as the leader")
    assert new[2].endswith(":" + survivor.data_dir)
    view = seen_alike((ec2,), launched[0], "stopped")
    assert view["StateReason"]["Code"] == "Server.InternalError"
    assert view["StateTransitionReason"].startswith("Server.InternalError")
    assert instance(ec2, stopped)["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    ec2.start_instances(InstanceIds=[launched[0]])     # its VM again, on the new leader's driver
    seen_alike((ec2,), launched[0], "running")
    assert "fake: started" in ec2.get_console_output(InstanceId=launched[0])["Output"]
    fresh = ec2.run_instances(ImageId=cluster.image, InstanceType="t3.micro", MinCount=1,
                              MaxCount=1)["Instances"][0]["InstanceId"]
    seen_alike((ec2,), fresh, "running")

    os.unlink(os.path.join(leader.data_dir, "endpoint"))
    leader.start()                              # back, as a follower: it relays to the survivor
    back = leader.client("ec2")
    seen_alike((back, ec2), fresh, "running")
    back.terminate_instances(InstanceIds=[fresh])
    seen_alike((back, ec2), fresh, "terminated")
    assert cluster_leader(cluster.url)[2].endswith(":" + survivor.data_dir)
    with open(leader.log_path) as fh:
        assert "another gateway leads EC2 for the cluster" in fh.read()   # since its restart
    with open(survivor.log_path) as fh:
        text = fh.read()
    assert "Traceback" not in text
    assert text.count("leads EC2 for the cluster; other gateways relay") == 1


def _signed_request(srv: NimboServer, url: str, extra: dict[str, str]) -> int:
    """A SigV4-signed DescribeRegions of the admin to ``url`` with ``extra`` headers; its status."""
    import urllib.request  # noqa: PLC0415

    from botocore.auth import SigV4Auth  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415
    from botocore.credentials import Credentials  # noqa: PLC0415
    env = srv.credentials()
    body = "Action=DescribeRegions&Version=2016-11-15"
    req = AWSRequest("POST", url + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]), "ec2",
              "us-east-1").add_auth(req)
    headers = dict(req.headers.items())
    headers["Host"] = url.split("//", 1)[1]
    if callable(extra):
        extra = extra(headers)
    headers.update(extra)
    http = urllib.request.Request(url + "/", data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_relay_headers_are_believed_only_with_the_clusters_signature(cluster):
    """A client that sends the relay headers itself (to the leader's internal address or to any
    gateway) is served as itself: the leader's access log names its own address, not the one it
    claims. The same headers signed with the cluster's relay key (from the master key in
    blob_dir) are believed; a signed relay that reaches a gateway that does not lead is 421."""
    from gateway.cluster_relay import relay_key, sign  # noqa: PLC0415
    from gateway.config import Config  # noqa: PLC0415
    from gateway.leader import FORWARDED_FOR, FORWARDED_PROTO  # noqa: PLC0415
    leader = cluster.leader()
    follower = next(g for g in cluster.gateways() if g is not leader)
    internal = cluster_leader(cluster.url)[0]
    spoofed = {FORWARDED_FOR: "203.0.113.77", FORWARDED_PROTO: "https",
               "X-Nimbo-Relay-Time": str(int(time.time())), "X-Nimbo-Relay-Signature": "0" * 64}
    for url in (internal, leader.endpoint, follower.endpoint):
        assert _signed_request(leader, url, spoofed) == 200
    wrong_key = os.urandom(32)

    def signed_with(key, claimed):
        def add(headers):
            out = {FORWARDED_FOR: claimed, FORWARDED_PROTO: "http"}
            out.update(sign(key, "POST", "/", headers, claimed, "http"))
            return out
        return add
    assert _signed_request(leader, internal, signed_with(wrong_key, "203.0.113.78")) == 200
    key = relay_key(Config(data_dir=leader.data_dir, blob_dir=str(cluster.shared)))
    assert _signed_request(leader, internal, signed_with(key, "198.51.100.9")) == 200
    assert _signed_request(leader, follower.endpoint, signed_with(key, "198.51.100.10")) == 421
    time.sleep(0.3)
    with open(leader.log_path) as fh:
        access = [line for line in fh if "nimbo.access" in line or " -> " in line]
    assert not any("203.0.113.7" in line for line in access), "a client's own relay headers believed"
    assert any("198.51.100.9 POST / ec2 DescribeRegions -> 200" in line for line in access)
    assert not any("198.51.100.10" in line for line in access)


def test_other_tenants_cannot_reach_an_instance_through_any_gateway(cluster):
    first, second = cluster.gateways()
    first.nimbo("admin", "--data-dir", first.data_dir, "create-account", "tenant-b")
    owner = first.client("ec2")
    launched = owner.run_instances(ImageId=cluster.image, InstanceType="t3.micro", MinCount=1,
                                   MaxCount=1)["Instances"][0]["InstanceId"]
    volume = owner.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    seen_alike((owner, second.client("ec2")), launched, "running")
    for srv in (first, second):
        other = srv.client("ec2", account="tenant-b")
        assert other.describe_instances()["Reservations"] == []
        assert other.describe_volumes()["Volumes"] == []
        for call, kwargs, code in (
                (other.describe_instances, {"InstanceIds": [launched]}, "InvalidInstanceID.NotFound"),
                (other.stop_instances, {"InstanceIds": [launched]}, "InvalidInstanceID.NotFound"),
                (other.terminate_instances, {"InstanceIds": [launched]}, "InvalidInstanceID.NotFound"),
                (other.get_console_output, {"InstanceId": launched}, "InvalidInstanceID.NotFound"),
                (other.attach_volume, {"VolumeId": volume, "InstanceId": launched, "Device": "/dev/sdf"},
                 "InvalidVolume.NotFound")):
            with pytest.raises(ClientError) as err:
                call(**kwargs)
            assert err.value.response["Error"]["Code"] == code, call
    assert state(owner, launched) == "running"


def test_compute_hosts_are_the_clusters(cluster):
    """``nimbo host add`` on one gateway's data directory registers the host in the cluster's
    PostgreSQL database: every gateway (and so whichever leads EC2) places on it."""
    first, second = cluster.gateways()
    added = second.nimbo("host", "add", "rack2", "qemu+tcp://rack2.invalid/system", "--zone", "us-east-1b",
                         "--vcpus", "16", "--memory-mib", "8192", "--data-dir", second.data_dir)
    host_id = added.stdout.split()[0]
    assert host_id.startswith("h-")
    listed = first.nimbo("host", "list", "--data-dir", first.data_dir).stdout
    assert host_id in listed and "rack2" in listed
    assert not os.path.exists(os.path.join(second.data_dir, "nimbo.db"))   # no stray SQLite file
    first.nimbo("host", "remove", "rack2", "--data-dir", first.data_dir)
    assert "rack2" not in second.nimbo("host", "list", "--data-dir", second.data_dir).stdout


def test_a_leader_whose_lock_session_ends_stops_and_the_other_leads(cluster):
    """Fencing: when the EC2 leader's lock session ends while its process lives (PostgreSQL
    restarted, the connection cut), another gateway may take the lock at once, so the old leader
    stops itself rather than drive VMs beside the new one."""
    import zlib  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    from gateway.cluster import lock_name  # noqa: PLC0415
    leader = cluster.leader()
    other = next(g for g in cluster.gateways() if g is not leader)
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        ended = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                             " AND objid::bigint = %s", (zlib.crc32(lock_name("public").encode()),)).fetchall()
    assert ended == [(True,)]
    wait_for(lambda: leader.process.poll() is not None, what="the fenced leader to stop")
    assert leader.process.returncode == 0          # a clean stop (its VMs would keep running)
    with open(leader.log_path) as fh:
        assert "lost the cluster's EC2 lock" in fh.read()
    wait_for(lambda: cluster_leader(cluster.url)[2].endswith(":" + other.data_dir),
             what="the other gateway to lead")
    ec2 = other.client("ec2")
    launched = ec2.run_instances(ImageId=cluster.image, InstanceType="t3.micro", MinCount=1,
                                 MaxCount=1)["Instances"][0]["InstanceId"]
    seen_alike((ec2,), launched, "running")


def test_a_gateway_with_ec2_leader_false_only_relays(postgres, tmp_path):
    """``ec2_leader = false``: the gateway started first still never leads EC2; it relays to the
    one that may."""
    url = postgres.fresh_database("ec2c_" + uuid.uuid4().hex[:8])
    relay_only = tmp_path / "relay-only.toml"
    relay_only.write_text("ec2_leader = false\n")
    common = ["--backend", "fake", "--workers", "1", "--metadata", url, "--blob-dir", str(tmp_path / "blobs")]
    first = NimboServer(str(tmp_path / "gw1"), extra_args=[*common, "--config", str(relay_only)]).start()
    second = None
    try:
        assert cluster_leader(url) is None
        second = NimboServer(str(tmp_path / "gw2"), extra_args=common).start()
        assert wait_for(lambda: cluster_leader(url), what="a leader")[2].endswith(":" + second.data_dir)
        image = register_stub_image(url, str(tmp_path / "images"))
        ec2 = first.client("ec2")
        launched = ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1,
                                     MaxCount=1)["Instances"][0]["InstanceId"]
        seen_alike((ec2, second.client("ec2")), launched, "running")
    finally:
        for srv in (first, second):
            if srv is not None:
                srv.stop()


def test_the_console_and_cost_explorer_through_a_gateway_that_does_not_lead(cluster):
    """What the workers relay is what the gateways relay: the console's API calls (cookie session,
    CSRF token) and Cost Explorer reach the EC2 leader from the other gateway."""
    from tests.gateway.test_console_http import Browser  # noqa: PLC0415
    leader = cluster.leader()
    follower = next(g for g in cluster.gateways() if g is not leader)
    launched = leader.client("ec2").run_instances(ImageId=cluster.image, InstanceType="t3.micro",
                                                  MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    browser = Browser(follower)
    assert browser.sign_in().status_code == 200
    listed = browser.ok("ec2", "DescribeInstances", {"InstanceIds": [launched]})
    assert listed["Reservations"][0]["Instances"][0]["InstanceId"] == launched
    browser.ok("ec2", "StopInstances", {"InstanceIds": [launched]})
    seen_alike((leader.client("ec2"), follower.client("ec2")), launched, "stopped")
    # the leader's driver stopped the VM it runs (not a driver of the follower's own)
    assert "stopped by host" in leader.client("ec2").get_console_output(InstanceId=launched)["Output"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    costs = follower.client("ce").get_cost_and_usage(
        TimePeriod={"Start": today, "End": tomorrow}, Granularity="DAILY", Metrics=["UnblendedCost"])
    assert costs["ResultsByTime"][0]["TimePeriod"]["Start"] == today
