"""RunInstances on several compute hosts (ec2_api.compute_hosts): instances are placed by free
vCPUs and memory (spread or pack), honour Placement.AvailabilityZone (a host belongs to a zone)
and Placement.HostId, DescribeInstances shows Placement.HostId and filters by host-id, and the
host reaches the driver's spec. Handler level, with the fake driver; the libvirt side is in
tests/backend/test_libvirt_test_driver.py and tests/vm/test_libvirt_vm.py."""
from __future__ import annotations

import pytest

from ec2_api import compute_hosts, errors
from ec2_api.instance_actions import start_instances, stop_instances, terminate_instances
from ec2_api.instances import describe_instances, run_instances
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire


async def launch(env, image, count=1, account=ALICE, **params):
    out = await run_instances(env.ctx(account), {"ImageId": image, "MinCount": count, "MaxCount": count,
                                                 "InstanceType": "t3.micro", **params})   # 2 vCPUs, 1 GiB
    wire("RunInstances", out)
    return out["Instances"]


async def describe(env, account=ALICE, **params):
    out = wire("DescribeInstances", await describe_instances(env.ctx(account), params))
    return [i for r in out["Reservations"] for i in r["Instances"]]


async def add(env, name, zone="us-east-1a", vcpus=8, memory_mib=4096):
    return (await compute_hosts.add_host(env.db, name, f"test:///{name}", zone=zone, vcpus=vcpus,
                                         memory_mib=memory_mib, probe=False))["host_id"]


async def test_without_hosts_nothing_changes(env, tiny_image):
    (instance,) = await launch(env, tiny_image)
    assert "HostId" not in instance["Placement"]
    await env.settle()
    assert (await env.spec(instance["InstanceId"])).host_id is None


async def test_spread_places_on_the_emptier_host_and_the_driver_gets_it(env, tiny_image):
    a = await add(env, "a")
    b = await add(env, "b")
    instances = await launch(env, tiny_image, count=4)
    assert [i["Placement"]["HostId"] for i in instances] == [a, b, a, b]
    await env.settle()
    on_b = await describe(env, Filters=[{"Name": "host-id", "Values": [b]}], MaxResults=5)
    assert sorted(i["InstanceId"] for i in on_b) == sorted(i["InstanceId"] for i in instances[1::2])
    first = on_b[0]
    assert first["Placement"]["HostId"] == b
    assert (await env.spec(first["InstanceId"])).host_id == b   # the cluster driver creates it there
    assert len(await describe(env, Filters=[{"Name": "host-id", "Values": [a]}])) == 2


async def test_pack_fills_a_host_first_and_freed_room_counts_again(env, tiny_image):
    env.config.placement = "pack"
    a = await add(env, "a", vcpus=6, memory_mib=4096)   # room for three t3.micro
    b = await add(env, "b", vcpus=6, memory_mib=4096)
    instances = await launch(env, tiny_image, count=4)
    assert [i["Placement"]["HostId"] for i in instances] == [a, a, a, b]
    await env.settle()
    await terminate_instances(env.ctx(), {"InstanceIds": [instances[0]["InstanceId"]]})
    await env.settle()
    (again,) = await launch(env, tiny_image)
    assert again["Placement"]["HostId"] == a   # pack: a (two left) is fuller than b (one)
    env.config.placement = "spread"
    (spread,) = await launch(env, tiny_image)
    assert spread["Placement"]["HostId"] == b   # spread: the emptier one


async def test_availability_zone_chooses_among_that_zones_hosts(env, tiny_image):
    a = await add(env, "a", zone="us-east-1a")
    b = await add(env, "b", zone="us-east-1b")
    (in_b,) = await launch(env, tiny_image, Placement={"AvailabilityZone": "us-east-1b"})
    assert in_b["Placement"] == {**in_b["Placement"], "AvailabilityZone": "us-east-1b", "HostId": b}
    (in_a,) = await launch(env, tiny_image)
    assert in_a["Placement"]["HostId"] == a
    with pytest.raises(errors.InsufficientInstanceCapacity, match="zone us-east-1c"):
        await launch(env, tiny_image, Placement={"AvailabilityZone": "us-east-1c"})


async def test_host_id_is_honoured_and_checked(env, tiny_image):
    await add(env, "a")
    b = await add(env, "b", vcpus=2, memory_mib=1024)   # room for one
    (on_b,) = await launch(env, tiny_image, Placement={"HostId": b})
    assert on_b["Placement"]["HostId"] == b
    with pytest.raises(errors.InsufficientInstanceCapacity, match=f"host {b}"):
        await launch(env, tiny_image, Placement={"HostId": b})
    with pytest.raises(compute_hosts.InvalidHostIDNotFound) as missing:
        await launch(env, tiny_image, Placement={"HostId": "h-0123456789abcdef0"})
    assert missing.value.code == "InvalidHostID.NotFound"
    with pytest.raises(compute_hosts.InvalidHostIDMalformed):
        await launch(env, tiny_image, Placement={"HostId": "rack-1"})
    c = await add(env, "c", zone="us-east-1b")
    with pytest.raises(errors.InvalidParameterCombination):
        await launch(env, tiny_image, Placement={"HostId": c, "AvailabilityZone": "us-east-1a"})


async def test_a_failed_launch_places_nothing(env, tiny_image):
    await add(env, "a", vcpus=2, memory_mib=1024)
    with pytest.raises(errors.InsufficientInstanceCapacity):
        await launch(env, tiny_image, count=2)   # MinCount 2, room for one
    assert await describe(env) == []
    loads = await compute_hosts.host_loads(env.db)
    assert [(h.used_vcpus, h.used_memory_mib) for h in loads] == [(0, 0)]


async def test_a_stopped_instance_keeps_its_host_and_holds_no_room(env, tiny_image):
    a = await add(env, "a", vcpus=2, memory_mib=1024)
    (instance,) = await launch(env, tiny_image)
    await env.settle()
    await stop_instances(env.ctx(), {"InstanceIds": [instance["InstanceId"]]})
    await env.settle()
    assert [h.used_vcpus for h in await compute_hosts.host_loads(env.db)] == [0]
    await start_instances(env.ctx(), {"InstanceIds": [instance["InstanceId"]]})
    await env.settle()
    (item,) = await describe(env, InstanceIds=[instance["InstanceId"]])
    assert item["State"]["Name"] == "running" and item["Placement"]["HostId"] == a


async def test_tenants_see_only_their_own_instances_on_a_host(env, tiny_image):
    a = await add(env, "a")
    await launch(env, tiny_image, account=ALICE)
    assert await describe(env, BOB, Filters=[{"Name": "host-id", "Values": [a]}]) == []
    assert len(await describe(env, ALICE, Filters=[{"Name": "host-id", "Values": [a]}])) == 1


async def test_host_registry(env):
    a = await add(env, "a")
    with pytest.raises(ValueError, match="exists already"):
        await add(env, "a")
    text = compute_hosts.render_hosts(await compute_hosts.list_hosts(env.db), await compute_hosts.host_loads(env.db))
    assert f"{a}\ta\tus-east-1a\ttest:///a\t0/8\t0/4096\tavailable" in text
    await compute_hosts.remove_host(env.db, "a")
    assert await compute_hosts.list_hosts(env.db) == []
    with pytest.raises(LookupError):
        await compute_hosts.remove_host(env.db, "a")


async def test_container_types_go_to_lxc_hosts_and_vms_never_do(env, tiny_image):
    with pytest.raises(errors.InvalidParameterValue, match="libvirt-lxc"):
        await launch(env, tiny_image, InstanceType="c-small")   # no container host at all
    vm_host = await add(env, "kvm1")
    lxc_host = (await compute_hosts.add_host(env.db, "lxc1", "lxc:///", zone="us-east-1a", vcpus=8,
                                             memory_mib=4096, probe=False))["host_id"]
    # (not through wire(): "c-small" is Nimbo's own name, outside botocore's InstanceType enum)
    out = await run_instances(env.ctx(), {"ImageId": tiny_image, "MinCount": 1, "MaxCount": 1,
                                          "InstanceType": "c-small"})
    (container,) = out["Instances"]
    assert container["Placement"]["HostId"] == lxc_host and container["InstanceType"] == "c-small"
    vms = await launch(env, tiny_image, count=3)   # spread would pick the emptier lxc1: not a VM host
    assert {i["Placement"]["HostId"] for i in vms} == {vm_host}
    with pytest.raises(errors.InsufficientInstanceCapacity, match="container"):
        await launch(env, tiny_image, InstanceType="c-small", Placement={"HostId": vm_host})
