"""The VMs of a lost machine (``gateway.cluster``: the cluster's EC2 leader died with its QEMU VMs,
another gateway leads now with a driver that cannot reach them): their instances are settled as
AWS settles an instance whose host failed, and a restart never boots a blank root disk."""
from __future__ import annotations

import os

from ec2_api.instance_actions import start_instances
from ec2_api.instance_store import load
from tests.ec2.conftest import ALICE
from tests.ec2.test_reconcile import item, launch


async def test_vms_the_new_leader_cannot_reach_are_stopped_as_on_a_failed_host(env, tiny_image):
    instance_id = await launch(env, tiny_image)
    await env.settle()
    assert (await item(env, instance_id))["State"]["Name"] == "running"

    async def machine_lost():
        env.store.clear()           # the new leader's driver knows none of the old VMs
    await env.restart(machine_lost)
    await env.settle()
    found = await item(env, instance_id)
    assert found["State"]["Name"] == "stopped"
    assert found["StateReason"]["Code"] == "Server.InternalError"
    assert "stopped unexpectedly" in found["StateReason"]["Message"]

    # its disks are reachable here: StartInstances runs it on the new leader's driver
    await start_instances(env.ctx(ALICE), {"InstanceIds": [instance_id]})
    await env.settle()
    assert (await item(env, instance_id))["State"]["Name"] == "running"


async def test_a_root_disk_out_of_reach_is_never_replaced_by_a_blank_one(env, tiny_image):
    instance_id = await launch(env, tiny_image)
    await env.settle()
    root_disk = (await load(env.db, instance_id))["root_disk"]
    assert os.path.exists(root_disk)

    async def machine_lost():
        env.store.clear()
        os.unlink(root_disk)        # it lived in the lost machine's data directory
    await env.restart(machine_lost)
    await env.settle()
    env.clock.advance(60)
    await start_instances(env.ctx(ALICE), {"InstanceIds": [instance_id]})
    await env.settle()
    found = await item(env, instance_id)
    assert found["State"]["Name"] == "stopped"
    assert found["StateReason"]["Code"] == "Server.InternalError"
    assert not os.path.exists(root_disk)       # no fresh overlay from the image in its place
    assert not await env.vm_exists(instance_id)
