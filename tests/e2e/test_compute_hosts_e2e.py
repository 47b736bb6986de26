"""Compute hosts through the real clients: ``nimbo host add/list`` on a live server's data directory
(``--backend fake``: the placement is the same code as with libvirt, the VMs are not real), then
boto3's RunInstances placed by zone and HostId, DescribeInstances' Placement.HostId and its host-id
filter as botocore parses them, and EC2's error codes for a host that does not exist or is full.
The libvirt side with real hosts is tests/vm/test_libvirt_vm.py."""
from __future__ import annotations

import shutil
import tempfile

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer
from tests.e2e.test_ec2_api import _register_stub


@pytest.fixture(scope="module")
def server():
    data_dir = tempfile.mkdtemp(prefix="nimbo-e2e-hosts-", dir="/tmp")
    srv = NimboServer(data_dir, extra_args=["--backend", "fake", "--workers", "1"])
    srv.start()
    try:
        yield srv, _register_stub(srv)
    finally:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def host_add(srv, *args: str) -> str:
    out = srv.nimbo("host", "add", *args, "--data-dir", srv.data_dir)
    return out.stdout.split()[0]


def test_instances_land_on_the_hosts_of_their_zone_and_say_so(server):
    srv, image_id = server
    a = host_add(srv, "rack-a", "qemu+ssh://root@rack-a/system", "--zone", "us-east-1a",
                 "--vcpus", "4", "--memory-mib", "2048")
    b = host_add(srv, "rack-b", "qemu+ssh://root@rack-b/system", "--zone", "us-east-1b",
                 "--vcpus", "1", "--memory-mib", "512")
    listing = srv.nimbo("host", "list", "--data-dir", srv.data_dir).stdout
    assert f"{a}\track-a\tus-east-1a\tqemu+ssh://root@rack-a/system\t0/4\t0/2048\tavailable" in listing
    ec2 = srv.client("ec2")
    in_a = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t2.nano")["Instances"]
    assert {i["Placement"]["HostId"] for i in in_a} == {a}
    in_b = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t2.nano",
                             Placement={"AvailabilityZone": "us-east-1b"})["Instances"]
    assert in_b[0]["Placement"]["HostId"] == b and in_b[0]["Placement"]["AvailabilityZone"] == "us-east-1b"
    found = ec2.describe_instances(Filters=[{"Name": "host-id", "Values": [a]}])
    ids = sorted(i["InstanceId"] for r in found["Reservations"] for i in r["Instances"])
    assert ids == sorted(i["InstanceId"] for i in in_a)
    assert "1/1\t512/512" in srv.nimbo("host", "list", "--data-dir", srv.data_dir).stdout   # rack-b is full

    (on_b,) = ec2.describe_instances(Filters=[{"Name": "host-id", "Values": [b]}])["Reservations"]
    assert on_b["Instances"][0]["Placement"]["AvailabilityZone"] == "us-east-1b"
    with pytest.raises(ClientError) as full:   # HostId alone: launched in the host's zone, where it is full
        ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t2.nano",
                          Placement={"HostId": b})
    assert full.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    with pytest.raises(ClientError) as missing:
        ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t2.nano",
                          Placement={"HostId": "h-0123456789abcdef0"})
    assert missing.value.response["Error"]["Code"] == "InvalidHostID.NotFound"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    busy = srv.nimbo("host", "remove", "rack-b", "--data-dir", srv.data_dir, check=False)
    assert busy.returncode != 0 and "still has instances" in busy.stderr
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in in_a + in_b])
