"""EBS volumes through their handlers on the fake driver: the volume life cycle (creating ->
available -> in-use -> available -> deleted), AWS's type rules and errors, attach/detach to
running and stopped instances, ModifyVolume growing the file, block device mappings at launch,
terminate's DeleteOnTermination, filters, pagination, tags, DryRun and the usage events."""
from __future__ import annotations

import json
import os

import pytest

from backend import images as backend_images
from ec2_api import errors, volume_attachments, volumes
from ec2_api.instance_actions import (describe_instance_attribute, modify_instance_attribute, start_instances,
                                      stop_instances, terminate_instances)
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire
from tests.ec2.test_instances import describe, launch

GIB = 1024 ** 3


async def create(env, account=ALICE, **params):
    out = await volumes.create_volume(env.ctx(account), {"AvailabilityZone": "us-east-1a", **params})
    wire("CreateVolume", out)
    return out


async def describe_volume(env, volume_id, account=ALICE):
    out = await volumes.describe_volumes(env.ctx(account), {"VolumeIds": [volume_id]})
    wire("DescribeVolumes", out)
    return out["Volumes"][0]


async def raises(code, coro):
    with pytest.raises(errors.EC2Error) as caught:
        await coro
    assert caught.value.code == code, caught.value.message
    return caught.value


async def running_instance(env, image, **params):
    out = await launch(env, image, **params)
    await env.settle()
    return out["Instances"][0]["InstanceId"]


async def test_create_describe_delete_life_cycle(env):
    out = await create(env, Size=2, VolumeType="gp3", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}])
    assert out["State"] == "creating"
    assert out["Iops"] == 3000 and out["Throughput"] == 125 and out["Size"] == 2
    assert out["Tags"] == [{"Key": "Name", "Value": "data"}]
    await env.settle()
    volume = await describe_volume(env, out["VolumeId"])
    assert volume["State"] == "available" and volume["Attachments"] == []
    path = os.path.join(env.config.data_dir, "volumes", f"{out['VolumeId']}.qcow2")
    info = await backend_images.info(path)
    assert info["format"] == "qcow2" and info["virtual_size"] == 2 * GIB
    assert info["actual_size"] < 5 * 1024 * 1024       # thin: takes space as it is written
    await raises("DryRunOperation", volumes.delete_volume(env.ctx(), {"VolumeId": out["VolumeId"], "DryRun": True}))
    assert await volumes.delete_volume(env.ctx(), {"VolumeId": out["VolumeId"]}) == {}
    assert not os.path.exists(path)
    await raises("InvalidVolume.NotFound", describe_volume(env, out["VolumeId"]))
    rows = await env.db.fetchall("SELECT dedupe_key, quantity, attrs FROM usage_events WHERE resource_id = ?"
                                 " ORDER BY seq", (out["VolumeId"],))
    states = [json.loads(r["attrs"])["state"] for r in rows]
    assert states == ["creating", "deleted"] and rows[0]["quantity"] == 2 * GIB
    assert json.loads(rows[0]["attrs"])["volume_type"] == "gp3"


@pytest.mark.parametrize("params, code", [
    ({}, "MissingParameter"),                                                    # neither Size nor SnapshotId
    ({"Size": 10, "AvailabilityZone": "us-east-1z"}, "InvalidParameterValue"),
    ({"Size": 10, "VolumeType": "gp9"}, "InvalidParameterValue"),
    ({"Size": 20000}, "InvalidParameterValue"),                                  # gp2 max 16384
    ({"Size": 2000, "VolumeType": "standard"}, "InvalidParameterValue"),         # magnetic max 1024
    ({"Size": 100, "VolumeType": "st1"}, "InvalidParameterValue"),               # st1 min 125
    ({"Size": 10, "VolumeType": "io1"}, "InvalidParameterCombination"),          # io1 needs Iops
    ({"Size": 10, "VolumeType": "io1", "Iops": 1000}, "InvalidParameterValue"),  # 50 IOPS/GiB max
    ({"Size": 10, "VolumeType": "gp2", "Iops": 300}, "InvalidParameterCombination"),
    ({"Size": 10, "VolumeType": "gp3", "Iops": 2000}, "InvalidParameterValue"),
    ({"Size": 10, "VolumeType": "gp3", "Throughput": 1001}, "InvalidParameterValue"),
    ({"Size": 10, "VolumeType": "gp2", "Throughput": 200}, "InvalidParameterCombination"),
    ({"Size": 10, "KmsKeyId": "alias/mine"}, "InvalidParameterDependency"),
    ({"Size": 10, "MultiAttachEnabled": True}, "InvalidParameterCombination"),
    ({"SnapshotId": "snap-0123456789abcdef0"}, "InvalidSnapshot.NotFound"),
    ({"SnapshotId": "bogus"}, "InvalidSnapshotID.Malformed"),
    ({"Size": 10, "DryRun": True}, "DryRunOperation"),
])
async def test_create_volume_errors(env, params, code):
    await raises(code, volumes.create_volume(env.ctx(), {"AvailabilityZone": "us-east-1a", **params}))
    assert await env.db.fetchall("SELECT 1 FROM ec2_volumes") == []


async def test_type_defaults(env):
    gp2 = await create(env, Size=50)
    assert gp2["VolumeType"] == "gp2" and gp2["Iops"] == 150 and gp2.get("Throughput") is None
    small = await create(env, Size=1)
    assert small["Iops"] == 100
    io2 = await create(env, Size=10, VolumeType="io2", Iops=5000, Encrypted=True)
    assert io2["Iops"] == 5000 and io2["Encrypted"] and io2["KmsKeyId"].endswith(":alias/aws/ebs")
    st1 = await create(env, Size=125, VolumeType="st1")
    assert st1["Iops"] is None
    by_id = await volumes.create_volume(env.ctx(), {"Size": 1, "AvailabilityZoneId": "use1-az2"})
    assert by_id["AvailabilityZone"] == "us-east-1b"
    await env.settle()


async def test_describe_filters_and_pages(env):
    made = [await create(env, Size=i + 1, VolumeType="gp3" if i % 2 else "gp2") for i in range(7)]
    await env.settle()
    ctx = env.ctx()
    gp3 = await volumes.describe_volumes(ctx, {"Filters": [{"Name": "volume-type", "Values": ["gp3"]}]})
    assert sorted(v["VolumeId"] for v in gp3["Volumes"]) == sorted(m["VolumeId"] for m in made[1::2])
    sized = await volumes.describe_volumes(ctx, {"Filters": [{"Name": "size", "Values": ["1", "7"]},
                                                             {"Name": "status", "Values": ["available"]}]})
    assert len(sized["Volumes"]) == 2
    seen, token = [], None
    while True:
        page = await volumes.describe_volumes(ctx, {"MaxResults": 5, **({"NextToken": token} if token else {})})
        wire("DescribeVolumes", page)
        seen += [v["VolumeId"] for v in page["Volumes"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(m["VolumeId"] for m in made)
    await raises("InvalidParameterValue", volumes.describe_volumes(ctx, {"MaxResults": 600}))
    await raises("InvalidParameterCombination", volumes.describe_volumes(
        ctx, {"MaxResults": 5, "VolumeIds": [made[0]["VolumeId"]]}))
    await raises("InvalidParameterValue", volumes.describe_volumes(ctx, {"Filters": [{"Name": "nope", "Values": ["x"]}]}))
    await raises("InvalidVolumeID.Malformed", volumes.describe_volumes(ctx, {"VolumeIds": ["vol-zz"]}))


async def test_root_volume_is_a_volume(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    (item,) = await describe(env, InstanceIds=[instance_id])
    root_id = item["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = await describe_volume(env, root_id)
    assert volume["State"] == "in-use"
    (attachment,) = volume["Attachments"]
    assert attachment == {**attachment, "InstanceId": instance_id, "Device": "/dev/xvda", "State": "attached",
                          "DeleteOnTermination": True}
    image = (await env.db.fetchone("SELECT snapshot_id FROM ec2_images WHERE image_id = ?", (tiny_image,)))
    assert volume["SnapshotId"] == image["snapshot_id"]
    spec = await env.spec(instance_id)
    assert spec.root_disk_serial == root_id.replace("-", "")
    await raises("VolumeInUse", volumes.delete_volume(env.ctx(), {"VolumeId": root_id}))


async def test_attach_detach_running_instance(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    vol = (await create(env, Size=1))["VolumeId"]
    await raises("IncorrectState", volume_attachments.attach_volume(
        env.ctx(), {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"}))   # still creating
    await env.settle()
    ctx = env.ctx()
    params = {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"}
    await raises("DryRunOperation", volume_attachments.attach_volume(ctx, {**params, "DryRun": True}))
    await raises("InvalidParameterValue", volume_attachments.attach_volume(ctx, {**params, "Device": "/dev/foo"}))
    await raises("InvalidParameterValue", volume_attachments.attach_volume(ctx, {**params, "Device": "/dev/xvda"}))
    out = await volume_attachments.attach_volume(ctx, params)
    wire("AttachVolume", out)
    assert out["State"] == "attaching" and out["Device"] == "/dev/sdf"
    await env.settle()
    volume = await describe_volume(env, vol)
    assert volume["State"] == "in-use" and volume["Attachments"][0]["State"] == "attached"
    spec = await env.spec(instance_id)
    assert [d.disk_id for d in spec.disks] == [vol.replace("-", "")]      # the serial the guest sees
    (item,) = await describe(env, InstanceIds=[instance_id])
    assert [(b["DeviceName"], b["Ebs"]["VolumeId"]) for b in item["BlockDeviceMappings"]][1] == ("/dev/sdf", vol)
    await raises("VolumeInUse", volume_attachments.attach_volume(ctx, {**params, "Device": "/dev/sdg"}))
    other = (await create(env, Size=1))["VolumeId"]
    await env.settle()
    await raises("InvalidParameterValue", volume_attachments.attach_volume(
        ctx, {"VolumeId": other, "InstanceId": instance_id, "Device": "/dev/sdf"}))   # device in use
    await raises("VolumeInUse", volumes.delete_volume(ctx, {"VolumeId": vol}))
    await raises("InvalidAttachment.NotFound", volume_attachments.detach_volume(
        ctx, {"VolumeId": vol, "Device": "/dev/sdz"}))
    out = await volume_attachments.detach_volume(ctx, {"VolumeId": vol, "InstanceId": instance_id})
    wire("DetachVolume", out)
    assert out["State"] == "detaching"
    await env.settle()
    volume = await describe_volume(env, vol)
    assert volume["State"] == "available" and volume["Attachments"] == []
    assert (await env.spec(instance_id)).disks == []
    await raises("IncorrectState", volume_attachments.detach_volume(ctx, {"VolumeId": vol}))


async def test_attach_zone_mismatch_and_instance_state(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    vol = (await create(env, Size=1, AvailabilityZone="us-east-1b"))["VolumeId"]
    await env.settle()
    await raises("InvalidVolume.ZoneMismatch", volume_attachments.attach_volume(
        env.ctx(), {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"}))
    await raises("InvalidInstanceID.NotFound", volume_attachments.attach_volume(
        env.ctx(), {"VolumeId": vol, "InstanceId": "i-0123456789abcdef0", "Device": "/dev/sdf"}))


async def test_attach_to_stopped_instance_takes_effect_at_start(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    vol = (await create(env, Size=1))["VolumeId"]
    await env.settle()
    out = await volume_attachments.attach_volume(env.ctx(), {"VolumeId": vol, "InstanceId": instance_id,
                                                             "Device": "/dev/sdh"})
    assert out["State"] == "attached"
    assert (await env.spec(instance_id)).disks == []
    await start_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    assert [d.disk_id for d in (await env.spec(instance_id)).disks] == [vol.replace("-", "")]


async def test_modify_volume_grows_the_file(env, tiny_image):
    vol = (await create(env, Size=1))["VolumeId"]
    await env.settle()
    ctx = env.ctx()
    await raises("InvalidVolumeModification.NotFound", volumes.describe_volumes_modifications(
        ctx, {"VolumeIds": [vol]}))
    await raises("InvalidParameterValue", volumes.modify_volume(ctx, {"VolumeId": vol, "Size": 0}))
    await raises("MissingParameter", volumes.modify_volume(ctx, {"VolumeId": vol}))
    out = await volumes.modify_volume(ctx, {"VolumeId": vol, "Size": 3, "VolumeType": "gp3"})
    wire("ModifyVolume", out)
    assert out["VolumeModification"]["ModificationState"] == "modifying"
    assert out["VolumeModification"]["OriginalSize"] == 1 and out["VolumeModification"]["TargetSize"] == 3
    await env.settle()
    path = os.path.join(env.config.data_dir, "volumes", f"{vol}.qcow2")
    assert (await backend_images.info(path))["virtual_size"] == 3 * GIB
    mods = await volumes.describe_volumes_modifications(ctx, {"VolumeIds": [vol]})
    wire("DescribeVolumesModifications", mods)
    assert mods["VolumesModifications"][0]["ModificationState"] == "completed"
    volume = await describe_volume(env, vol)
    assert volume["Size"] == 3 and volume["VolumeType"] == "gp3" and volume["Iops"] == 3000
    # online, attached to a running VM: through the driver (QMP block_resize on QEMU)
    instance_id = await running_instance(env, tiny_image)
    await volume_attachments.attach_volume(ctx, {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"})
    await env.settle()
    await volumes.modify_volume(ctx, {"VolumeId": vol, "Size": 4})
    await env.settle()
    assert ("resize_disk", instance_id) in env.driver.calls
    assert (await backend_images.info(path))["virtual_size"] == 4 * GIB
    events = await env.db.fetchall("SELECT quantity FROM usage_events WHERE resource_id = ? ORDER BY seq", (vol,))
    assert [e["quantity"] // GIB for e in events] == [1, 3, 4]


async def test_status_and_attributes(env):
    vol = (await create(env, Size=1))["VolumeId"]
    await env.settle()
    ctx = env.ctx()
    status = await volumes.describe_volume_status(ctx, {"VolumeIds": [vol]})
    wire("DescribeVolumeStatus", status)
    assert status["VolumeStatuses"][0]["VolumeStatus"]["Status"] == "ok"
    out = await volumes.describe_volume_attribute(ctx, {"VolumeId": vol, "Attribute": "autoEnableIO"})
    wire("DescribeVolumeAttribute", out)
    assert out["AutoEnableIO"] == {"Value": False}
    await volumes.modify_volume_attribute(ctx, {"VolumeId": vol, "AutoEnableIO": {"Value": True}})
    out = await volumes.describe_volume_attribute(ctx, {"VolumeId": vol, "Attribute": "autoEnableIO"})
    assert out["AutoEnableIO"] == {"Value": True}
    out = await volumes.describe_volume_attribute(ctx, {"VolumeId": vol, "Attribute": "productCodes"})
    assert out["ProductCodes"] == []
    await raises("InvalidParameterValue", volumes.describe_volume_attribute(ctx, {"VolumeId": vol, "Attribute": "x"}))
    assert await volumes.enable_volume_io(ctx, {"VolumeId": vol}) == {}


async def test_launch_block_device_mappings_and_terminate(env, tiny_image):
    out = await launch(env, tiny_image, BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 2, "VolumeType": "gp3"}},
        {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": False}},
        {"DeviceName": "/dev/sdc", "Ebs": {"VolumeSize": 4, "VolumeType": "io1", "Iops": 200}},
        {"DeviceName": "/dev/sdd", "NoDevice": ""}])
    (instance,) = out["Instances"]
    devices = {b["DeviceName"]: b["Ebs"] for b in instance["BlockDeviceMappings"]}
    assert sorted(devices) == ["/dev/sdb", "/dev/sdc", "/dev/xvda"]
    await env.settle()
    instance_id = instance["InstanceId"]
    spec = await env.spec(instance_id)
    assert len(spec.disks) == 2 and all(os.path.exists(d.path) for d in spec.disks)
    root = await describe_volume(env, devices["/dev/xvda"]["VolumeId"])
    assert root["Size"] == 2 and root["VolumeType"] == "gp3"
    keep = await describe_volume(env, devices["/dev/sdb"]["VolumeId"])
    assert keep["Attachments"][0]["DeleteOnTermination"] is False
    # DescribeInstanceAttribute / ModifyInstanceAttribute blockDeviceMapping
    attr = await describe_instance_attribute(env.ctx(), {"InstanceId": instance_id, "Attribute": "blockDeviceMapping"})
    assert len(attr["BlockDeviceMappings"]) == 3
    await modify_instance_attribute(env.ctx(), {"InstanceId": instance_id, "BlockDeviceMappings": [
        {"DeviceName": "/dev/sdc", "Ebs": {"DeleteOnTermination": False}}]})
    await raises("InvalidParameterValue", modify_instance_attribute(env.ctx(), {
        "InstanceId": instance_id, "BlockDeviceMappings": [{"DeviceName": "/dev/sdq", "Ebs": {"DeleteOnTermination": False}}]}))
    sdc = await describe_volume(env, devices["/dev/sdc"]["VolumeId"])
    assert sdc["Attachments"][0]["DeleteOnTermination"] is False
    await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    await raises("InvalidVolume.NotFound", describe_volume(env, devices["/dev/xvda"]["VolumeId"]))
    for device in ("/dev/sdb", "/dev/sdc"):
        left = await describe_volume(env, devices[device]["VolumeId"])
        assert left["State"] == "available" and left["Attachments"] == []
    files = os.listdir(os.path.join(env.config.data_dir, "volumes"))
    assert sorted(files) == sorted(f"{devices[d]['VolumeId']}.qcow2" for d in ("/dev/sdb", "/dev/sdc"))


@pytest.mark.parametrize("mapping, code", [
    ({"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 0}}, "InvalidBlockDeviceMapping"),
    ({"DeviceName": "/dev/sdb", "Ebs": {}}, "InvalidBlockDeviceMapping"),
    ({"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}, "InvalidSnapshot.NotFound"),
    ({"DeviceName": "/dev/xvda", "NoDevice": ""}, "InvalidBlockDeviceMapping"),
    ({"DeviceName": "/dev/bogus", "Ebs": {"VolumeSize": 1}}, "InvalidBlockDeviceMapping"),
    ({"Ebs": {"VolumeSize": 1}}, "MissingParameter"),
])
async def test_launch_mapping_errors(env, tiny_image, mapping, code):
    await raises(code, launch(env, tiny_image, BlockDeviceMappings=[mapping]))
    assert await env.db.fetchall("SELECT 1 FROM ec2_instances") == []


async def test_stop_start_keeps_volumes(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    vol = (await create(env, Size=1))["VolumeId"]
    await env.settle()
    await volume_attachments.attach_volume(env.ctx(), {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"})
    await env.settle()
    path = os.path.join(env.config.data_dir, "volumes", f"{vol}.qcow2")
    await backend_images.run_qemu_img("snapshot", "-c", "marker", path)   # stands in for written data
    await stop_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    await start_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    assert "marker" in await backend_images.run_qemu_img("snapshot", "-l", "-U", path)
    assert [d.disk_id for d in (await env.spec(instance_id)).disks] == [vol.replace("-", "")]


async def test_accounts_are_isolated(env, tiny_image):
    vol = (await create(env, Size=1))["VolumeId"]
    instance_id = await running_instance(env, tiny_image)
    await env.settle()
    bob = env.ctx(BOB)
    assert (await volumes.describe_volumes(bob, {}))["Volumes"] == []
    for call in (volumes.describe_volumes(bob, {"VolumeIds": [vol]}),
                 volumes.delete_volume(bob, {"VolumeId": vol}),
                 volumes.modify_volume(bob, {"VolumeId": vol, "Size": 5}),
                 volumes.describe_volume_attribute(bob, {"VolumeId": vol, "Attribute": "autoEnableIO"}),
                 volumes.modify_volume_attribute(bob, {"VolumeId": vol, "AutoEnableIO": {"Value": True}}),
                 volumes.enable_volume_io(bob, {"VolumeId": vol}),
                 volumes.describe_volume_status(bob, {"VolumeIds": [vol]}),
                 volumes.describe_volumes_modifications(bob, {"VolumeIds": [vol]}),
                 volume_attachments.detach_volume(bob, {"VolumeId": vol})):
        await raises("InvalidVolume.NotFound", call)
    bob_vol = (await create(env, BOB, Size=1))["VolumeId"]
    await env.settle()
    await raises("InvalidInstanceID.NotFound", volume_attachments.attach_volume(
        bob, {"VolumeId": bob_vol, "InstanceId": instance_id, "Device": "/dev/sdf"}))
    await raises("InvalidVolume.NotFound", volume_attachments.attach_volume(
        env.ctx(), {"VolumeId": bob_vol, "InstanceId": instance_id, "Device": "/dev/sdf"}))
    assert (await describe_volume(env, vol))["State"] == "available"


async def test_sweep_settles_attachments_a_crash_interrupted(env, tiny_image):
    """A crash between the attachment's row and the hot-plug (or the unplug): at the next start
    the row follows what the VM really has, so no attachment stays half-made."""
    instance_id = await running_instance(env, tiny_image)
    plugged, unplugged = await create(env, Size=1), await create(env, Size=1)
    await env.settle()
    await volume_attachments.attach_volume(env.ctx(), {"VolumeId": plugged["VolumeId"], "InstanceId": instance_id,
                                                       "Device": "/dev/sdf"})
    await env.settle()

    async def crash():
        from storage.db import Database
        db = await Database.open(os.path.join(env.config.data_dir, "nimbo.db"))
        async with db.transaction() as tx:   # one detach and one attach were under way
            await tx.execute("UPDATE ec2_volumes SET attach_state = 'detaching' WHERE volume_id = ?",
                             (plugged["VolumeId"],))
            await tx.execute("UPDATE ec2_volumes SET state = 'in-use', instance_id = ?, device = '/dev/sdg',"
                             " attach_state = 'attaching', attach_us = 1 WHERE volume_id = ?",
                             (instance_id, unplugged["VolumeId"]))
        await db.close()

    await env.restart(crash)
    await env.settle()
    kept = await describe_volume(env, plugged["VolumeId"])       # the VM still has it: attached
    assert kept["State"] == "in-use" and kept["Attachments"][0]["State"] == "attached"
    undone = await describe_volume(env, unplugged["VolumeId"])   # never plugged: available again
    assert undone["State"] == "available" and undone["Attachments"] == []
    (item,) = await describe(env, InstanceIds=[instance_id])
    assert [b["DeviceName"] for b in item["BlockDeviceMappings"]] == ["/dev/xvda", "/dev/sdf"]
