"""The leader of ``nimbo serve --workers 2`` killed (kill -9) under a real guest: the QEMU keeps
running, another worker takes over, re-adopts it (same pid), serves its metadata to the guest
(a reboot reads it again) and drives it to termination; EC2 goes through either worker meanwhile."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

import pytest

from tests.e2e.test_workers import leader_of, wait_for, workers_of
from tests.vm.test_real_vm import (INSTANCE_TYPE, MARKER_SCRIPT, TINY_IMAGE_CACHE, WAIT, VMCloud,
                                   _clean_up, _missing_tools, console, console_until, is_qemu,
                                   state_of, wait_gone)

pytestmark = pytest.mark.vm


@pytest.fixture
def two_worker_cloud():
    missing = _missing_tools()
    if missing:
        pytest.skip(f"missing tools for VM tests: {', '.join(missing)}")
    from backend.tiny_image import build_tiny_image   # noqa: PLC0415
    build_tiny_image(TINY_IMAGE_CACHE)
    data_dir = tempfile.mkdtemp(prefix="nimbo-vmw-", dir="/tmp")   # short: unix socket paths
    os.symlink(os.path.abspath(TINY_IMAGE_CACHE), os.path.join(data_dir, "tiny-image"))
    cloud = VMCloud(data_dir)
    cloud.server.extra_args = ["--backend", "qemu", "--workers", "2"]
    cloud.image_id = cloud.server.nimbo("image", "build-tiny", "--data-dir", data_dir,
                                        "--if-missing").stdout.strip()
    cloud.server.start()
    try:
        yield cloud
    finally:
        _clean_up(cloud)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_leader_killed_under_a_running_guest(two_worker_cloud):
    cloud = two_worker_cloud
    ec2 = cloud.client()
    instance_id = ec2.run_instances(ImageId=cloud.image_id, MinCount=1, MaxCount=1,
                                    InstanceType=INSTANCE_TYPE, UserData=MARKER_SCRIPT)["Instances"][0]["InstanceId"]
    marker = f"NIMBO-MARKER-{instance_id}\n"
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    console_until(ec2, instance_id, marker)
    pid = cloud.qemu_pid(instance_id)
    assert pid and is_qemu(pid)

    leader = leader_of(cloud.server)
    os.kill(leader, signal.SIGKILL)
    wait_for(lambda: leader_of(cloud.server) != leader, what="another worker to lead")
    wait_for(lambda: (lambda now: len(now) == 2 and leader not in now)(workers_of(cloud.server)),
             what="the killed worker replaced")
    time.sleep(0.5)
    assert is_qemu(pid)                       # the guest never noticed
    for _ in range(4):                        # new connections: through either worker
        ec2 = cloud.client()
        assert state_of(ec2, instance_id)["State"]["Name"] == "running"
    assert cloud.qemu_pid(instance_id) == pid

    # the new leader drives the re-adopted QEMU (QMP) and serves the guest's metadata
    ec2.reboot_instances(InstanceIds=[instance_id])
    console_until(ec2, instance_id, marker, count=2)
    assert cloud.qemu_pid(instance_id) == pid
    assert console(ec2, instance_id).count(marker) == 2
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    wait_gone(pid)
