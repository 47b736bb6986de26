"""A real guest launched through the gateway that does not lead EC2: two ``nimbo serve --backend
qemu`` on one PostgreSQL (``gateway.cluster``). The leader's QEMU driver runs the VM and its
metadata service answers the guest; the other gateway relays RunInstances, DescribeInstances,
GetConsoleOutput and TerminateInstances to it and never starts a VM of its own."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from tests.conftest import NimboServer
from tests.vm.test_real_vm import (INSTANCE_TYPE, MARKER_SCRIPT, TINY_IMAGE_CACHE, WAIT, VMCloud,
                                   _clean_up, _missing_tools, console_until, is_qemu, state_of,
                                   wait_gone)

pytestmark = pytest.mark.vm


@pytest.fixture
def vm_cluster(postgres):
    missing = _missing_tools()
    if missing:
        pytest.skip(f"missing tools for VM tests: {', '.join(missing)}")
    from backend.tiny_image import build_tiny_image   # noqa: PLC0415
    build_tiny_image(TINY_IMAGE_CACHE)
    url = postgres.fresh_database("vmc_" + uuid.uuid4().hex[:8])
    root = tempfile.mkdtemp(prefix="nimbo-vmc-", dir="/tmp")   # short: unix socket paths
    shared = os.path.join(root, "blobs")
    args = ["--backend", "qemu", "--workers", "1", "--metadata", url, "--blob-dir", shared]
    leader = VMCloud(os.path.join(root, "a"))
    os.makedirs(leader.data_dir)
    os.symlink(os.path.abspath(TINY_IMAGE_CACHE), os.path.join(leader.data_dir, "tiny-image"))
    leader.server.extra_args = args
    follower = NimboServer(os.path.join(root, "b"), extra_args=args)
    try:
        leader.server.start(timeout=60)          # first: it leads EC2
        leader.image_id = leader.server.nimbo("image", "build-tiny", "--data-dir", leader.data_dir,
                                              "--if-missing").stdout.strip()
        follower.start(timeout=60)
        yield leader, follower
    finally:
        follower.stop()
        _clean_up(leader)
        if os.geteuid() == 0:
            from backend.network.namespace import net_destroy   # noqa: PLC0415
            net_destroy(follower.data_dir)
        shutil.rmtree(root, ignore_errors=True)


def test_a_guest_launched_through_the_other_gateway_runs_on_the_leader(vm_cluster):
    leader, follower = vm_cluster
    ec2 = follower.client("ec2")
    instance_id = ec2.run_instances(ImageId=leader.image_id, MinCount=1, MaxCount=1,
                                    InstanceType=INSTANCE_TYPE,
                                    UserData=MARKER_SCRIPT)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    # the guest read its own id from the leader's metadata service; the follower relays its console
    console_until(ec2, instance_id, f"NIMBO-MARKER-{instance_id}\n")
    pid = leader.qemu_pid(instance_id)
    assert pid and is_qemu(pid)
    assert not os.path.isdir(os.path.join(follower.data_dir, "vms", instance_id))
    assert state_of(leader.client(), instance_id) == state_of(ec2, instance_id)
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    wait_gone(pid)
