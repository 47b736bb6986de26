"""VMs outlive Nimbo: after a restart every instance agrees with the hypervisor again, at the time
the VM really stopped; guests that power themselves off follow their shutdown behaviour."""
from __future__ import annotations

import datetime as dt
import json

from ec2_api.common import to_us
from ec2_api.instance_actions import stop_instances, terminate_instances
from ec2_api.instances import describe_instances, run_instances
from tests.ec2.conftest import ALICE


async def launch(env, image, **params):
    out = await run_instances(env.ctx(), {"ImageId": image, "MinCount": 1, "MaxCount": 1,
                                          "InstanceType": "t3.nano", **params})
    return out["Instances"][0]["InstanceId"]


async def item(env, instance_id):
    out = await describe_instances(env.ctx(ALICE), {"InstanceIds": [instance_id]})
    return out["Reservations"][0]["Instances"][0]


async def ledger(env, instance_id):
    rows = await env.db.fetchall(
        "SELECT at_us, attrs FROM usage_events WHERE kind = 'instance_state' AND resource_id = ? ORDER BY seq",
        (instance_id,))
    return [(json.loads(r["attrs"])["state"], r["at_us"]) for r in rows]


async def test_guest_power_off_while_down_becomes_stopped_at_that_time(env, tiny_image):
    instance_id = await launch(env, tiny_image)
    await env.settle()
    keep_running = await launch(env, tiny_image)
    await env.settle()
    off_at = env.clock() + dt.timedelta(minutes=10)

    async def meanwhile():
        env.clock.now = off_at
        await env.driver.guest_poweroff(instance_id, silent=True)
        env.clock.advance(3600)
    await env.restart(meanwhile)
    await env.settle()
    found = await item(env, instance_id)
    assert found["State"]["Name"] == "stopped"
    assert found["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    assert (await item(env, keep_running))["State"]["Name"] == "running"
    states = await ledger(env, instance_id)
    assert [s for s, _ in states] == ["pending", "running", "stopping", "stopped"]
    assert states[-1][1] == states[-2][1] == to_us(off_at)
    assert env.state.imds.is_open(keep_running) and not env.state.imds.is_open(instance_id)


async def test_power_off_while_down_with_terminate_behaviour(env, tiny_image):
    instance_id = await launch(env, tiny_image, InstanceInitiatedShutdownBehavior="terminate")
    await env.settle()
    off_at = env.clock() + dt.timedelta(minutes=5)
    async def meanwhile():
        env.clock.now = off_at
        await env.driver.guest_poweroff(instance_id, silent=True)
        env.clock.advance(600)
    await env.restart(meanwhile)
    await env.settle()
    found = await item(env, instance_id)
    assert found["State"]["Name"] == "terminated"
    states = await ledger(env, instance_id)
    assert [s for s, _ in states] == ["pending", "running", "shutting-down", "terminated"]
    assert states[2][1] == to_us(off_at)
    assert not await env.vm_exists(instance_id)


async def test_guest_power_off_event_while_up(env, tiny_image):
    stopper = await launch(env, tiny_image)
    terminator = await launch(env, tiny_image, InstanceInitiatedShutdownBehavior="terminate")
    await env.settle()
    env.clock.advance(30)
    await env.driver.guest_poweroff(stopper)
    await env.driver.guest_poweroff(terminator)
    await env.settle()
    assert (await item(env, stopper))["State"]["Name"] == "stopped"
    assert (await item(env, terminator))["State"]["Name"] == "terminated"


async def test_crash_becomes_stopped_with_server_error(env, tiny_image):
    instance_id = await launch(env, tiny_image, InstanceInitiatedShutdownBehavior="terminate")
    await env.settle()
    await env.driver.guest_crash(instance_id)
    await env.settle()
    found = await item(env, instance_id)
    assert found["State"]["Name"] == "stopped"
    assert found["StateReason"]["Code"] == "Server.InternalError"


async def test_interrupted_work_resumes_after_restart(env, tiny_image):
    pending = await launch(env, tiny_image)           # never started: Nimbo went down at once
    await env.state.close(grace=0)
    env.state = None
    await env.restart()
    await env.settle()
    assert (await item(env, pending))["State"]["Name"] == "running"
    env.driver.delay = 5
    await stop_instances(env.ctx(), {"InstanceIds": [pending]})
    await env.state.close(grace=0)   # the graceful stop is cut short by the restart
    env.state = None
    env.driver.delay = 0
    await env.restart()
    await env.settle()
    assert (await item(env, pending))["State"]["Name"] == "stopped"
    await terminate_instances(env.ctx(), {"InstanceIds": [pending]})
    await env.state.close(grace=0)
    env.state = None
    await env.restart()
    await env.settle()
    assert (await item(env, pending))["State"]["Name"] == "terminated"


async def test_vm_missing_after_restart(env, tiny_image):
    instance_id = await launch(env, tiny_image)
    await env.settle()
    async def meanwhile():
        await env.driver.destroy(instance_id)   # the VM is gone (its state dir was lost)
    await env.restart(meanwhile)
    await env.settle()
    found = await item(env, instance_id)
    assert found["State"]["Name"] == "stopped"
    assert found["StateReason"]["Code"] == "Server.InternalError"


async def test_housekeeping_catches_a_missed_stop_event(env, tiny_image):
    instance_id = await launch(env, tiny_image)
    await env.settle()
    await env.driver.guest_poweroff(instance_id, silent=True)   # no event reaches Nimbo
    assert (await item(env, instance_id))["State"]["Name"] == "running"
    env.clock.advance(60)
    await env.state.housekeeping()
    await env.settle()
    assert (await item(env, instance_id))["State"]["Name"] == "stopped"
