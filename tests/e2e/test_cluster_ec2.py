"""EC2 across gateways: two ``nimbo serve`` processes (separate data directories, one PostgreSQL,
one blob directory, the fake driver) are one EC2. An instance launched through one gateway is
described, stopped, started, given a volume and terminated through the other, and both show the
same states; housekeeping never settles an instance with a driver that does not run it; kill -9
of the gateway that runs compute hands EC2 to the other (``gateway.cluster``)."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer

pytestmark = pytest.mark.postgresql_engine

HOUSEKEEPING = 0.3      # seconds between EC2 housekeeping passes: many of them within a test


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


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


def cluster_leader(url: str) -> tuple[str, int] | None:
    """(address, pid) of the gateway that runs EC2, from the cluster's table."""
    import psycopg  # noqa: PLC0415
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT address, pid FROM cluster_leaders WHERE role = 'ec2'").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return (row[0], row[1]) if row else None


class Cluster:
    def __init__(self, postgres, tmp_path) -> None:
        self.url = postgres.fresh_database("ec2c_" + uuid.uuid4().hex[:8])
        self.shared = tmp_path / "shared-blobs"
        config = tmp_path / "cluster.toml"
        config.write_text(f"ec2_housekeeping_seconds = {HOUSEKEEPING}\n")
        self.args = ["--backend", "fake", "--workers", "1", "--metadata", self.url,
                     "--blob-dir", str(self.shared), "--config", str(config), "--access-log"]
        self.first = NimboServer(str(tmp_path / "gw1"), extra_args=self.args).start()
        self.second = NimboServer(str(tmp_path / "gw2"), extra_args=self.args).start()
        self.image = register_stub_image(self.url, str(tmp_path / "images"))

    def gateways(self) -> tuple[NimboServer, NimboServer]:
        return self.first, self.second

    def leader(self) -> NimboServer:
        pid = wait_for(lambda: cluster_leader(self.url), what="a cluster leader")[1]
        return next(g for g in self.gateways() if g.process and g.process.pid == pid)

    def stop(self) -> None:
        for srv in self.gateways():
            srv.stop()


@pytest.fixture
def cluster(postgres, tmp_path):
    made = Cluster(postgres, tmp_path)
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
