"""Instances through their handlers: launch, the state machine, filters, pagination, idempotency,
tenant isolation and the usage events written with each state change."""
from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest

from ec2_api import errors
from ec2_api.instance_actions import (describe_instance_attribute, get_console_output, modify_instance_attribute,
                                      modify_instance_metadata_options, reboot_instances, start_instances,
                                      stop_instances, terminate_instances)
from ec2_api.instances import describe_instance_status, describe_instances, run_instances
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire


async def launch(env, image, count=1, account=ALICE, **params):
    out = await run_instances(env.ctx(account), {"ImageId": image, "MinCount": count, "MaxCount": count,
                                                 "InstanceType": "t3.micro", **params})
    wire("RunInstances", out)
    return out


async def describe(env, account=ALICE, **params):
    out = await describe_instances(env.ctx(account), params)
    wire("DescribeInstances", out)
    return [i for r in out["Reservations"] for i in r["Instances"]]


async def state_of(env, instance_id, account=ALICE):
    (item,) = await describe(env, account, InstanceIds=[instance_id])
    return item["State"]["Name"]


async def events(env, instance_id):
    rows = await env.db.fetchall(
        "SELECT dedupe_key, at_us, attrs FROM usage_events WHERE kind = 'instance_state' AND resource_id = ?"
        " ORDER BY seq", (instance_id,))
    return [(json.loads(r["attrs"])["state"], r["at_us"], r["dedupe_key"], json.loads(r["attrs"])) for r in rows]


async def test_run_answers_pending_then_runs(env, tiny_image):
    out = await launch(env, tiny_image, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
        {"ResourceType": "volume", "Tags": [{"Key": "disk", "Value": "root"}]}])
    (instance,) = out["Instances"]
    assert instance["State"] == {"Code": 0, "Name": "pending"}
    assert instance["InstanceId"].startswith("i-") and len(instance["InstanceId"]) == 19
    assert out["ReservationId"].startswith("r-") and len(out["ReservationId"]) == 19
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert instance["PrivateIpAddress"] == "172.31.0.4"
    assert instance["PrivateDnsName"] == "ip-172-31-0-4.ec2.internal"
    assert instance["Tags"] == [{"Key": "Name", "Value": "web"}]
    await env.settle()
    assert await state_of(env, instance["InstanceId"]) == "running"
    spec = await env.spec(instance["InstanceId"])
    assert spec.vcpus == 2 and spec.memory_mib == 1024
    assert spec.smbios_uuid.startswith("ec2") and len(spec.smbios_uuid) == 36
    assert spec.kernel.endswith("/kernel") and spec.initrd.endswith("/initrd")
    assert spec.cmdline == "console=ttyS0 quiet"
    assert spec.imds_socket.endswith(f"{instance['InstanceId']}.sock") and os.path.exists(spec.imds_socket)
    assert os.path.exists(spec.root_disk) and spec.root_disk.endswith(".qcow2")
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    tag_rows = await env.db.fetchall("SELECT key, value FROM ec2_tags WHERE resource_id = ?", (volume_id,))
    assert [(r["key"], r["value"]) for r in tag_rows] == [("disk", "root")]


async def test_state_machine_and_usage_events(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    instance_id = instance["InstanceId"]
    await env.settle()
    env.clock.advance(60)
    out = await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    wire("StopInstances", out)
    assert out["StoppingInstances"][0]["PreviousState"]["Name"] == "running"
    assert out["StoppingInstances"][0]["CurrentState"] == {"Code": 64, "Name": "stopping"}
    await env.settle()
    (item,) = await describe(env, InstanceIds=[instance_id])
    assert item["State"] == {"Code": 80, "Name": "stopped"}
    assert item["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert item["StateTransitionReason"].startswith("User initiated (2026-03-01 12:01:00 GMT)")
    # stopping a stopped instance is a no-op, starting a stopping one is not allowed
    again = await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    assert again["StoppingInstances"][0]["CurrentState"]["Name"] == "stopped"
    env.clock.advance(60)
    out = await start_instances(env.ctx(), {"InstanceIds": [instance_id]})
    wire("StartInstances", out)
    assert out["StartingInstances"][0]["CurrentState"] == {"Code": 0, "Name": "pending"}
    await env.settle()
    assert await state_of(env, instance_id) == "running"
    env.driver.delay = 0.2
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    with pytest.raises(errors.IncorrectInstanceState):
        await start_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    env.driver.delay = 0
    assert await state_of(env, instance_id) == "stopped"
    env.clock.advance(60)
    out = await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    wire("TerminateInstances", out)
    assert out["TerminatingInstances"][0]["CurrentState"] == {"Code": 32, "Name": "shutting-down"}
    await env.settle()
    (item,) = await describe(env, InstanceIds=[instance_id])
    assert item["State"] == {"Code": 48, "Name": "terminated"}
    assert "PrivateIpAddress" not in item or item["PrivateIpAddress"] is None
    assert not await env.vm_exists(instance_id)
    with pytest.raises(errors.IncorrectInstanceState):
        await start_instances(env.ctx(), {"InstanceIds": [instance_id]})
    again = await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    assert again["TerminatingInstances"][0]["PreviousState"]["Name"] == "terminated"
    states = [e[0] for e in await events(env, instance_id)]
    assert states == ["pending", "running", "stopping", "stopped", "pending", "running", "stopping", "stopped",
                      "shutting-down", "terminated"]
    recorded = await events(env, instance_id)
    assert all(e[2] == f"{instance_id}:{seq}:{e[0]}" for seq, e in enumerate(recorded))
    attrs = recorded[1][3]
    assert attrs["instance_type"] == "t3.micro" and attrs["vcpus"] == 2 and attrs["memory_mib"] == 1024
    assert attrs["image_id"] == tiny_image and attrs["availability_zone"] == "us-east-1a"
    volume_events = await env.db.fetchall(
        "SELECT attrs, quantity FROM usage_events WHERE kind = 'volume_state' ORDER BY seq")
    assert [json.loads(r["attrs"])["state"] for r in volume_events] == ["in-use", "deleted"]
    assert volume_events[0]["quantity"] == 1024 ** 3


async def test_terminated_instances_vanish_after_an_hour(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    await env.settle()
    await terminate_instances(env.ctx(), {"InstanceIds": [instance["InstanceId"]]})
    await env.settle()
    env.clock.advance(3599)
    assert len(await describe(env)) == 1
    env.clock.advance(2)
    assert await describe(env) == []
    with pytest.raises(errors.InvalidInstanceIDNotFound):
        await describe(env, InstanceIds=[instance["InstanceId"]])
    assert await env.state.purge_terminated() == 1


async def test_reboot_and_console_output(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    instance_id = instance["InstanceId"]
    with pytest.raises(errors.IncorrectInstanceState):
        await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})   # still pending
    await env.settle()
    assert await reboot_instances(env.ctx(), {"InstanceIds": [instance_id]}) == {}
    await env.settle()
    assert ("reboot", instance_id) in env.driver.calls
    out = await get_console_output(env.ctx(), {"InstanceId": instance_id})
    wire("GetConsoleOutput", out)
    assert b"fake: started" in base64.b64decode(out["Output"])


async def test_api_termination_and_stop_protection(env, tiny_image):
    (instance,) = (await launch(env, tiny_image, DisableApiTermination=True, DisableApiStop=True))["Instances"]
    instance_id = instance["InstanceId"]
    await env.settle()
    with pytest.raises(errors.OperationNotPermitted):
        await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    with pytest.raises(errors.OperationNotPermitted):
        await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    for attribute in ("DisableApiTermination", "DisableApiStop"):
        await modify_instance_attribute(env.ctx(), {"InstanceId": instance_id, attribute: {"Value": False}})
    out = await describe_instance_attribute(env.ctx(), {"InstanceId": instance_id,
                                                        "Attribute": "disableApiTermination"})
    assert wire("DescribeInstanceAttribute", out)["DisableApiTermination"] == {"Value": False}
    await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    assert await state_of(env, instance_id) == "terminated"


async def test_modify_type_and_user_data_only_when_stopped(env, tiny_image):
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    (instance,) = (await launch(env, tiny_image, UserData=user_data))["Instances"]
    instance_id = instance["InstanceId"]
    await env.settle()
    with pytest.raises(errors.IncorrectInstanceState):
        await modify_instance_attribute(env.ctx(), {"InstanceId": instance_id, "InstanceType": {"Value": "t3.large"}})
    out = await describe_instance_attribute(env.ctx(), {"InstanceId": instance_id, "Attribute": "userData"})
    assert out["UserData"] == {"Value": user_data}
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    await modify_instance_attribute(env.ctx(), {"InstanceId": instance_id, "InstanceType": {"Value": "t3.large"}})
    await modify_instance_attribute(env.ctx(), {"InstanceId": instance_id, "UserData": {"Value": b"new"}})
    with pytest.raises(errors.InvalidParameterValue):
        await modify_instance_attribute(env.ctx(), {"InstanceId": instance_id, "InstanceType": {"Value": "x9.huge"}})
    out = await describe_instance_attribute(env.ctx(), {"InstanceId": instance_id, "Attribute": "userData"})
    assert base64.b64decode(out["UserData"]["Value"]) == b"new"
    await start_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    spec = await env.spec(instance_id)
    assert (spec.vcpus, spec.memory_mib) == (2, 8192)
    (item,) = await describe(env, InstanceIds=[instance_id])
    assert item["InstanceType"] == "t3.large"
    last = (await events(env, instance_id))[-1][3]
    assert last["instance_type"] == "t3.large" and last["memory_mib"] == 8192


async def test_filters_and_pagination(env, tiny_image):
    first = await launch(env, tiny_image, count=3, KeyName=None,
                         TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "env", "Value": "prod"}]}])
    second = await launch(env, tiny_image, count=2, Placement={"AvailabilityZone": "us-east-1b"})
    await env.settle()
    ids_first = {i["InstanceId"] for i in first["Instances"]}
    await stop_instances(env.ctx(), {"InstanceIds": [second["Instances"][0]["InstanceId"]]})
    await env.settle()

    async def ids(*filters, **params):
        items = await describe(env, Filters=[{"Name": n, "Values": v} for n, v in filters], **params)
        return {i["InstanceId"] for i in items}

    assert await ids(("tag:env", ["prod"])) == ids_first
    assert await ids(("tag-key", ["env"])) == ids_first
    assert await ids(("tag-value", ["pr*"])) == ids_first
    assert await ids(("availability-zone", ["us-east-1b"])) == {i["InstanceId"] for i in second["Instances"]}
    assert await ids(("instance-state-name", ["stopped"])) == {second["Instances"][0]["InstanceId"]}
    assert await ids(("instance-state-code", ["16"])) == ids_first | {second["Instances"][1]["InstanceId"]}
    assert await ids(("reservation-id", [first["ReservationId"]])) == ids_first
    assert await ids(("image-id", [tiny_image]), ("instance-type", ["t3.micro"])) == \
        ids_first | {i["InstanceId"] for i in second["Instances"]}
    assert await ids(("private-ip-address", ["172.31.16.*"])) == {i["InstanceId"] for i in second["Instances"]}
    assert len(await ids(("vpc-id", [first["Instances"][0]["VpcId"]]))) == 5
    assert await ids(("subnet-id", [second["Instances"][0]["SubnetId"]])) == \
        {i["InstanceId"] for i in second["Instances"]}
    assert len(await ids(("launch-time", ["2026-03-01T12:*"]))) == 5
    assert await ids(("private-dns-name", ["ip-172-31-0-4.ec2.internal"])) == {first["Instances"][0]["InstanceId"]}
    with pytest.raises(errors.InvalidParameterValue):
        await ids(("no-such-filter", ["x"]))
    out = await describe_instances(env.ctx(), {"MaxResults": 5, "Filters": [
        {"Name": "instance-state-name", "Values": ["running", "stopped"]}]})
    assert out["NextToken"] is None
    page_one = await describe_instances(env.ctx(), {"MaxResults": 5})
    assert sum(len(r["Instances"]) for r in page_one["Reservations"]) == 5
    with pytest.raises(errors.InvalidParameterValue):
        await describe_instances(env.ctx(), {"MaxResults": 4})
    with pytest.raises(errors.InvalidParameterCombination):
        await describe_instances(env.ctx(), {"MaxResults": 5, "InstanceIds": list(ids_first)})


async def test_pagination_over_several_pages(env, tiny_image):
    await launch(env, tiny_image, count=12)
    seen, token = [], None
    while True:
        params = {"MaxResults": 5, **({"NextToken": token} if token else {})}
        out = await describe_instances(env.ctx(), params)
        wire("DescribeInstances", out)
        seen += [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]
        token = out.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 12 and seen == sorted(seen)


async def test_client_token_is_idempotent(env, tiny_image):
    first = await launch(env, tiny_image, count=2, ClientToken="token-1")
    again = await launch(env, tiny_image, count=2, ClientToken="token-1")
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in first["Instances"]]
    assert len(await describe(env)) == 2
    with pytest.raises(errors.IdempotentParameterMismatch):
        await launch(env, tiny_image, count=1, ClientToken="token-1")
    other = await launch(env, tiny_image, count=2, ClientToken="token-1", account=BOB)
    assert other["ReservationId"] != first["ReservationId"]


async def test_tenants_never_see_each_other(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    instance_id = instance["InstanceId"]
    assert await describe(env, BOB) == []
    for call, params in ((describe_instances, {"InstanceIds": [instance_id]}),
                         (stop_instances, {"InstanceIds": [instance_id]}),
                         (terminate_instances, {"InstanceIds": [instance_id]}),
                         (get_console_output, {"InstanceId": instance_id}),
                         (describe_instance_attribute, {"InstanceId": instance_id, "Attribute": "userData"})):
        with pytest.raises(errors.InvalidInstanceIDNotFound) as caught:
            await call(env.ctx(BOB), params)
        assert caught.value.message == f"The instance ID '{instance_id}' does not exist"
    with pytest.raises(errors.InvalidInstanceIDNotFound):
        await describe_instances(env.ctx(ALICE, "eu-west-1"), {"InstanceIds": [instance_id]})
    for bad in ("i-123", "instance-1", "i-XYZ0123456789abcd", ""):
        with pytest.raises(errors.EC2Error) as caught:
            await describe_instances(env.ctx(), {"InstanceIds": [bad]})
        assert caught.value.code == "InvalidInstanceID.Malformed"
    with pytest.raises(errors.InvalidInstanceIDNotFound) as caught:
        await describe_instances(env.ctx(), {"InstanceIds": [instance_id, "i-0123456789abcdef0", "i-0123456789abcdef1"]})
    assert "'i-0123456789abcdef0, i-0123456789abcdef1' do not exist" in caught.value.message


async def test_launch_validation(env, tiny_image):
    ctx = env.ctx()
    base = {"ImageId": tiny_image, "MinCount": 1, "MaxCount": 1}
    cases = [
        ({"ImageId": "ami-0123456789abcdef0"}, "InvalidAMIID.NotFound"),
        ({"ImageId": "bogus"}, "InvalidAMIID.Malformed"),
        ({"InstanceType": "z9.mega"}, "InvalidParameterValue"),
        ({"KeyName": "nope"}, "InvalidKeyPair.NotFound"),
        ({"MinCount": 3, "MaxCount": 2}, "InvalidParameterValue"),
        ({"UserData": "not base64!"}, "InvalidParameterValue"),
        ({"Placement": {"AvailabilityZone": "us-east-1z"}}, "InvalidParameterValue"),
        ({"SubnetId": "subnet-0123456789abcdef0"}, "InvalidSubnetID.NotFound"),
        ({"MetadataOptions": {"HttpTokens": "always"}}, "InvalidParameterValue"),
        ({"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 0}}]},
         "InvalidBlockDeviceMapping"),
        ({"TagSpecifications": [{"ResourceType": "vpc", "Tags": [{"Key": "a", "Value": "b"}]}]},
         "InvalidParameterValue"),
        ({"DryRun": True}, "DryRunOperation"),
    ]
    for extra, code in cases:
        with pytest.raises(errors.EC2Error) as caught:
            await run_instances(ctx, {**base, **extra})
        assert caught.value.code == code, (extra, caught.value.code, caught.value.message)
    assert await describe(env) == []


async def test_capacity_and_min_max_count(env, tiny_image):
    env.config.host_vcpus = 6   # room for three t3.micro (2 vCPUs each)
    out = await launch(env, tiny_image, count=1)
    out = await run_instances(env.ctx(), {"ImageId": tiny_image, "MinCount": 1, "MaxCount": 5,
                                          "InstanceType": "t3.micro"})
    assert len(out["Instances"]) == 2   # as many as fit
    with pytest.raises(errors.InsufficientInstanceCapacity):
        await launch(env, tiny_image, count=1)
    await env.settle()
    instance_id = out["Instances"][0]["InstanceId"]
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    await launch(env, tiny_image, count=1)   # the stopped one released its vCPUs
    with pytest.raises(errors.InsufficientInstanceCapacity):
        await start_instances(env.ctx(), {"InstanceIds": [instance_id]})


async def test_failed_start_terminates_and_frees(env, tiny_image):
    original = env.driver.start

    async def failing(vm_id):
        env.driver.fail_next_start(vm_id, "qemu: could not open disk image")
        return await original(vm_id)
    env.driver.start = failing
    (instance,) = (await launch(env, tiny_image))["Instances"]
    await env.settle()
    (item,) = await describe(env, InstanceIds=[instance["InstanceId"]])
    assert item["State"]["Name"] == "terminated"
    assert item["StateReason"]["Code"] == "Server.InternalError"
    spec_path = os.path.join(env.config.data_dir, "volumes", instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"] + ".qcow2")
    assert not os.path.exists(spec_path)
    assert not await env.vm_exists(instance["InstanceId"])
    env.driver.start = original
    (again,) = (await launch(env, tiny_image))["Instances"]
    assert again["PrivateIpAddress"] == "172.31.0.4"   # the failed instance's address was freed


async def test_instance_status(env, tiny_image):
    out = await launch(env, tiny_image, count=2)
    await env.settle()
    first, second = (i["InstanceId"] for i in out["Instances"])
    await stop_instances(env.ctx(), {"InstanceIds": [second]})
    await env.settle()
    status = await describe_instance_status(env.ctx(), {})
    wire("DescribeInstanceStatus", status)
    assert [s["InstanceId"] for s in status["InstanceStatuses"]] == [first]
    assert status["InstanceStatuses"][0]["InstanceStatus"]["Status"] == "initializing"
    env.clock.advance(10)
    status = await describe_instance_status(env.ctx(), {"IncludeAllInstances": True})
    by_id = {s["InstanceId"]: s for s in status["InstanceStatuses"]}
    assert by_id[first]["InstanceStatus"]["Status"] == "ok"
    assert by_id[second]["InstanceStatus"]["Status"] == "not-applicable"
    assert by_id[second]["InstanceState"] == {"Code": 80, "Name": "stopped"}


async def test_metadata_options(env, tiny_image):
    (instance,) = (await launch(env, tiny_image, MetadataOptions={"HttpTokens": "required"}))["Instances"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    out = await modify_instance_metadata_options(env.ctx(), {"InstanceId": instance["InstanceId"],
                                                             "InstanceMetadataTags": "enabled"})
    wire("ModifyInstanceMetadataOptions", out)
    (item,) = await describe(env, InstanceIds=[instance["InstanceId"]])
    assert item["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    assert item["MetadataOptions"]["HttpTokens"] == "required"


async def test_terminate_while_launching(env, tiny_image):
    env.driver.delay = 0.3   # the VM takes a while to start
    (instance,) = (await launch(env, tiny_image))["Instances"]
    instance_id = instance["InstanceId"]
    await asyncio.sleep(0.05)
    out = await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    assert out["TerminatingInstances"][0]["PreviousState"]["Name"] == "pending"
    await env.settle()
    assert await state_of(env, instance_id) == "terminated"
    assert not await env.vm_exists(instance_id)
    assert [e[0] for e in await events(env, instance_id)] == ["pending", "shutting-down", "terminated"]


async def test_forced_stop_does_not_wait_for_a_graceful_one(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    instance_id = instance["InstanceId"]
    await env.settle()
    env.driver.ignore_powerdown(instance_id)   # the guest ignores the power button
    env.state.stop_timeout = 30
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await asyncio.sleep(0.05)
    assert await state_of(env, instance_id) == "stopping"
    out = await stop_instances(env.ctx(), {"InstanceIds": [instance_id], "Force": True})
    assert out["StoppingInstances"][0]["CurrentState"]["Name"] == "stopping"
    for _ in range(50):
        if await state_of(env, instance_id) == "stopped":
            break
        await asyncio.sleep(0.02)
    assert await state_of(env, instance_id) == "stopped"
    for task in list(env.state._tasks):   # the graceful stop still sleeps in the fake driver
        task.cancel()


async def test_terminate_while_stopping(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    instance_id = instance["InstanceId"]
    await env.settle()
    env.driver.ignore_powerdown(instance_id)
    env.state.stop_timeout = 30
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await asyncio.sleep(0.05)
    await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    for _ in range(50):
        if await state_of(env, instance_id) == "terminated":
            break
        await asyncio.sleep(0.02)
    assert await state_of(env, instance_id) == "terminated"
    for task in list(env.state._tasks):
        task.cancel()


async def test_every_instance_attribute_has_the_model_shape(env, tiny_image):
    (instance,) = (await launch(env, tiny_image))["Instances"]
    from ec2_api.instance_actions import _DESCRIBABLE
    for attribute in sorted(_DESCRIBABLE):
        out = await describe_instance_attribute(env.ctx(), {"InstanceId": instance["InstanceId"],
                                                            "Attribute": attribute})
        parsed = wire("DescribeInstanceAttribute", out)
        assert parsed["InstanceId"] == instance["InstanceId"]
    with pytest.raises(errors.InvalidParameterValue):
        await describe_instance_attribute(env.ctx(), {"InstanceId": instance["InstanceId"], "Attribute": "color"})
    await modify_instance_attribute(env.ctx(), {"InstanceId": instance["InstanceId"],
                                                "Attribute": "instanceInitiatedShutdownBehavior", "Value": "terminate"})
    out = await describe_instance_attribute(env.ctx(), {"InstanceId": instance["InstanceId"],
                                                        "Attribute": "instanceInitiatedShutdownBehavior"})
    assert out["InstanceInitiatedShutdownBehavior"] == {"Value": "terminate"}
    with pytest.raises(errors.InvalidParameterCombination):
        await modify_instance_attribute(env.ctx(), {"InstanceId": instance["InstanceId"],
                                                    "DisableApiStop": {"Value": True},
                                                    "DisableApiTermination": {"Value": True}})
