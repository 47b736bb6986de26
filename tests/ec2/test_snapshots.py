"""EBS snapshots through their handlers on the fake driver (real qcow2 files): pending -> completed,
the data of the point in time, incremental storage, volumes from snapshots, CreateSnapshots,
CopySnapshot, sharing, images made of snapshots, deleting rules, isolation and the start-up sweep
after a crash."""
from __future__ import annotations

import asyncio
import os

from backend import images as backend_images
from ec2_api import image_snapshots, images, snapshot_files, snapshots, volume_attachments, volumes
from ec2_api.instances import describe_instances
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire
from tests.ec2.test_instances import launch
from tests.ec2.test_volumes import create, describe_volume, raises, running_instance

GIB = 1024 ** 3


async def qemu_io(path: str, command: str) -> str:
    proc = await asyncio.create_subprocess_exec("qemu-io", "-f", "qcow2", "-c", command, path,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    return out.decode() + err.decode()


async def reads(path: str, offset: int, pattern: int, length: int = 65536) -> bool:
    out = await qemu_io(path, f"read -P {pattern} {offset} {length}")
    return "Pattern verification failed" not in out


def volume_path(env, volume_id):
    return os.path.join(env.config.data_dir, "volumes", f"{volume_id}.qcow2")


async def new_volume(env, account=ALICE, **params):
    out = await create(env, account, **{"Size": 1, **params})
    await env.settle()
    return out["VolumeId"]


async def snap(env, volume_id, account=ALICE, **params):
    out = await snapshots.create_snapshot(env.ctx(account), {"VolumeId": volume_id, **params})
    wire("CreateSnapshot", out)
    return out


async def describe_snapshot(env, snapshot_id, account=ALICE):
    out = await snapshots.describe_snapshots(env.ctx(account), {"SnapshotIds": [snapshot_id]})
    wire("DescribeSnapshots", out)
    return out["Snapshots"][0]


async def test_snapshot_life_cycle_and_data(env):
    vol = await new_volume(env)
    await qemu_io(volume_path(env, vol), "write -P 0xab 0 64k")
    out = await snap(env, vol, Description="first", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert out["State"] == "pending" and out["Progress"] == "0%" and out["VolumeSize"] == 1
    assert out["Tags"] == [{"Key": "k", "Value": "v"}] and out["Description"] == "first"
    await qemu_io(volume_path(env, vol), "write -P 0xcd 0 64k")   # after the point in time
    await env.settle()
    done = await describe_snapshot(env, out["SnapshotId"])
    assert done["State"] == "completed" and done["Progress"] == "100%" and done["VolumeId"] == vol
    # a volume from the snapshot holds the data of the point in time, not what came after
    restored = await new_volume(env, SnapshotId=out["SnapshotId"])
    assert (await describe_volume(env, restored))["SnapshotId"] == out["SnapshotId"]
    assert await reads(volume_path(env, restored), 0, 0xab)
    assert await reads(volume_path(env, vol), 0, 0xcd)
    # the internal snapshot is gone from the volume again, no work files are left
    assert out["SnapshotId"] not in await backend_images.run_qemu_img("snapshot", "-l", "-U", volume_path(env, vol))
    assert sorted(os.listdir(os.path.join(env.config.data_dir, "snapshots"))) == [f"{out['SnapshotId']}.qcow2"]
    # billed: stored bytes of the snapshot's file
    event = await env.db.fetchone("SELECT quantity FROM usage_events WHERE resource_id = ? AND kind = 'stored_bytes'",
                                  (out["SnapshotId"],))
    assert event["quantity"] > 0
    await raises("InvalidParameterValue", volumes.create_volume(
        env.ctx(), {"AvailabilityZone": "us-east-1a", "SnapshotId": out["SnapshotId"], "Size": 0}))
    bigger = await new_volume(env, SnapshotId=out["SnapshotId"], Size=3)
    assert (await backend_images.info(volume_path(env, bigger)))["virtual_size"] == 3 * GIB


async def test_snapshots_are_incremental(env):
    vol = await new_volume(env, Size=1)
    path = volume_path(env, vol)
    await qemu_io(path, "write -P 0x11 0 4M")
    first = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    await qemu_io(path, "write -P 0x22 4M 256k")
    second = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    folder = os.path.join(env.config.data_dir, "snapshots")
    first_file, second_file = (os.path.join(folder, f"{s}.qcow2") for s in (first, second))
    info = await backend_images.info(second_file)
    assert info["backing_file"] == first_file                    # a delta on the previous snapshot
    assert info["actual_size"] < 1024 * 1024 < (await backend_images.info(first_file))["actual_size"]
    restored = await new_volume(env, SnapshotId=second)
    assert await reads(volume_path(env, restored), 0, 0x11, 4 * 1024 * 1024)
    assert await reads(volume_path(env, restored), 4 * 1024 * 1024, 0x22, 256 * 1024)
    # deleting the parent keeps its file while the delta builds on it; deleting both frees both
    await snapshots.delete_snapshot(env.ctx(), {"SnapshotId": first})
    await raises("InvalidSnapshot.NotFound", describe_snapshot(env, first))
    assert os.path.exists(first_file)
    await volumes.delete_volume(env.ctx(), {"VolumeId": restored})
    await snapshots.delete_snapshot(env.ctx(), {"SnapshotId": second})
    assert os.listdir(folder) == []
    amounts = await env.db.fetchall("SELECT SUM(quantity) AS total FROM usage_events WHERE kind = 'stored_bytes'")
    assert amounts[0]["total"] == 0


async def test_snapshot_of_attached_volume_goes_through_the_driver(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    vol = await new_volume(env)
    await volume_attachments.attach_volume(env.ctx(), {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"})
    await env.settle()
    await qemu_io(volume_path(env, vol), "write -P 0x5a 0 64k")
    out = await snap(env, vol)
    assert ("snapshot_disks", instance_id) in env.driver.calls
    await env.settle()
    assert (await describe_snapshot(env, out["SnapshotId"]))["State"] == "completed"
    restored = await new_volume(env, SnapshotId=out["SnapshotId"])
    assert await reads(volume_path(env, restored), 0, 0x5a)


async def test_create_snapshots_of_an_instance(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    vols = [await new_volume(env) for _ in range(2)]
    for vol, device in zip(vols, ("/dev/sdf", "/dev/sdg")):
        await volume_attachments.attach_volume(env.ctx(), {"VolumeId": vol, "InstanceId": instance_id, "Device": device})
    await env.settle()
    from ec2_api.tags import create_tags
    await create_tags(env.ctx(), {"Resources": [vols[0]], "Tags": [{"Key": "role", "Value": "db"}]})
    calls = len(env.driver.calls)
    out = await snapshots.create_snapshots(env.ctx(), {
        "InstanceSpecification": {"InstanceId": instance_id, "ExcludeDataVolumeIds": [vols[1]]},
        "CopyTagsFromSource": "volume", "Description": "set"})
    wire("CreateSnapshots", out)
    assert [c for c in env.driver.calls[calls:] if c[0] == "snapshot_disks"] == [("snapshot_disks", instance_id)]
    by_volume = {s["VolumeId"]: s for s in out["Snapshots"]}
    assert set(by_volume) == {vols[0], (await describe_instances(env.ctx(), {"InstanceIds": [instance_id]}))
                              ["Reservations"][0]["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]}
    assert by_volume[vols[0]]["Tags"] == [{"Key": "role", "Value": "db"}]
    await env.settle()
    for item in out["Snapshots"]:
        assert (await describe_snapshot(env, item["SnapshotId"]))["State"] == "completed"
    await raises("InvalidParameterValue", snapshots.create_snapshots(env.ctx(), {
        "InstanceSpecification": {"InstanceId": instance_id, "ExcludeDataVolumeIds": ["vol-0123456789abcdef0"]}}))


async def test_snapshot_errors(env):
    vol = await new_volume(env)
    await raises("DryRunOperation", snapshots.create_snapshot(env.ctx(), {"VolumeId": vol, "DryRun": True}))
    await raises("MissingParameter", snapshots.create_snapshot(env.ctx(), {}))
    await raises("InvalidVolumeID.Malformed", snapshots.create_snapshot(env.ctx(), {"VolumeId": "vol-x"}))
    await volumes.delete_volume(env.ctx(), {"VolumeId": vol})
    await raises("InvalidVolume.NotFound", snapshots.create_snapshot(env.ctx(), {"VolumeId": vol}))
    await raises("InvalidSnapshot.NotFound", snapshots.delete_snapshot(env.ctx(), {"SnapshotId": "snap-0123456789abcdef0"}))
    await raises("InvalidSnapshotID.Malformed", snapshots.describe_snapshots(env.ctx(), {"SnapshotIds": ["snap"]}))
    await raises("InvalidUserID.Malformed", snapshots.describe_snapshots(env.ctx(), {"OwnerIds": ["someone"]}))
    assert await env.db.fetchall("SELECT 1 FROM ec2_snapshots") == []


async def test_sharing_and_attributes(env):
    vol = await new_volume(env)
    sid = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    ctx, bob = env.ctx(), env.ctx(BOB)
    await raises("InvalidSnapshot.NotFound", describe_snapshot(env, sid, BOB))
    await raises("InvalidSnapshot.NotFound", volumes.create_volume(bob, {"AvailabilityZone": "us-east-1a", "SnapshotId": sid}))
    await snapshots.modify_snapshot_attribute(ctx, {"SnapshotId": sid, "Attribute": "createVolumePermission",
                                                    "OperationType": "add", "UserIds": [BOB]})
    attr = await snapshots.describe_snapshot_attribute(ctx, {"SnapshotId": sid, "Attribute": "createVolumePermission"})
    wire("DescribeSnapshotAttribute", attr)
    assert attr["CreateVolumePermissions"] == [{"UserId": BOB}]
    assert (await describe_snapshot(env, sid, BOB))["OwnerId"] == ALICE
    restorable = await snapshots.describe_snapshots(bob, {"RestorableByUserIds": ["self"]})
    assert [s["SnapshotId"] for s in restorable["Snapshots"]] == [sid]
    assert (await snapshots.describe_snapshots(bob, {"OwnerIds": ["self"]}))["Snapshots"] == []
    by_owner = await snapshots.describe_snapshots(bob, {"OwnerIds": [ALICE]})
    assert [s["SnapshotId"] for s in by_owner["Snapshots"]] == [sid]
    bob_vol = await new_volume(env, BOB, SnapshotId=sid)
    assert (await describe_volume(env, bob_vol, BOB))["SnapshotId"] == sid
    await raises("UnauthorizedOperation", snapshots.delete_snapshot(bob, {"SnapshotId": sid}))
    await snapshots.modify_snapshot_attribute(ctx, {"SnapshotId": sid, "CreateVolumePermission": {
        "Remove": [{"UserId": BOB}], "Add": [{"Group": "all"}]}})
    attr = await snapshots.describe_snapshot_attribute(ctx, {"SnapshotId": sid, "Attribute": "createVolumePermission"})
    assert attr["CreateVolumePermissions"] == [{"Group": "all"}]
    await snapshots.reset_snapshot_attribute(ctx, {"SnapshotId": sid, "Attribute": "createVolumePermission"})
    await raises("InvalidSnapshot.NotFound", describe_snapshot(env, sid, BOB))
    await raises("InvalidParameterValue", snapshots.modify_snapshot_attribute(
        ctx, {"SnapshotId": sid, "OperationType": "add", "GroupNames": ["friends"]}))
    await raises("InvalidUserID.Malformed", snapshots.modify_snapshot_attribute(
        ctx, {"SnapshotId": sid, "OperationType": "add", "UserIds": ["bob"]}))
    encrypted = await new_volume(env, Encrypted=True)
    esid = (await snap(env, encrypted))["SnapshotId"]
    await env.settle()
    await raises("OperationNotPermitted", snapshots.modify_snapshot_attribute(
        ctx, {"SnapshotId": esid, "OperationType": "add", "GroupNames": ["all"]}))


async def test_copy_snapshot_across_regions(env):
    vol = await new_volume(env)
    await qemu_io(volume_path(env, vol), "write -P 0x77 0 64k")
    sid = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    eu = env.ctx(region="eu-west-1")
    out = await snapshots.copy_snapshot(eu, {"SourceSnapshotId": sid, "SourceRegion": "us-east-1",
                                             "Description": "copy", "Encrypted": True})
    wire("CopySnapshot", out)
    await env.settle()
    copy = (await snapshots.describe_snapshots(eu, {"SnapshotIds": [out["SnapshotId"]]}))["Snapshots"][0]
    assert copy["State"] == "completed" and copy["Encrypted"] and copy["VolumeId"] == "vol-ffffffff"
    restored = (await volumes.create_volume(eu, {"AvailabilityZone": "eu-west-1a", "SnapshotId": out["SnapshotId"]}))
    await env.settle()
    assert await reads(volume_path(env, restored["VolumeId"]), 0, 0x77)
    await snapshots.delete_snapshot(env.ctx(), {"SnapshotId": sid})     # the copy keeps its own bytes
    assert await reads(volume_path(env, restored["VolumeId"]), 0, 0x77)
    await raises("InvalidSnapshot.NotFound", snapshots.copy_snapshot(
        env.ctx(BOB), {"SourceSnapshotId": out["SnapshotId"], "SourceRegion": "eu-west-1"}))
    await raises("MissingParameter", snapshots.copy_snapshot(eu, {"SourceSnapshotId": sid}))


async def test_public_image_snapshot_exists_and_registers(env, tiny_image):
    image = await env.db.fetchone("SELECT * FROM ec2_images WHERE image_id = ?", (tiny_image,))
    bob = env.ctx(BOB)
    item = (await snapshots.describe_snapshots(bob, {"SnapshotIds": [image["snapshot_id"]]}))["Snapshots"][0]
    assert item["State"] == "completed" and item["OwnerAlias"] == "nimbo"
    out = await image_snapshots.register_image(bob, {
        "Name": "from-public", "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": image["snapshot_id"]}}]})
    wire("RegisterImage", out)
    ami = (await images.describe_images(bob, {"ImageIds": [out["ImageId"]]}))["Images"][0]
    assert ami["State"] == "available"
    assert ami["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == image["snapshot_id"]
    launched = await launch(env, out["ImageId"], account=BOB)
    await env.settle()
    spec = await env.spec(launched["Instances"][0]["InstanceId"])
    assert spec.kernel and os.path.exists(spec.kernel)      # the tiny image's kernel came along
    await raises("UnauthorizedOperation", snapshots.delete_snapshot(bob, {"SnapshotId": image["snapshot_id"]}))


async def test_images_of_snapshots(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    vol = await new_volume(env)
    await volume_attachments.attach_volume(env.ctx(), {"VolumeId": vol, "InstanceId": instance_id, "Device": "/dev/sdf"})
    await env.settle()
    await qemu_io(volume_path(env, vol), "write -P 0x42 0 64k")
    out = await image_snapshots.create_image(env.ctx(), {"InstanceId": instance_id, "Name": "with-data",
                                                         "NoReboot": True, "TagSpecifications": [
                                                             {"ResourceType": "snapshot", "Tags": [{"Key": "a", "Value": "b"}]}]})
    wire("CreateImage", out)
    await env.settle()
    ami = (await images.describe_images(env.ctx(), {"ImageIds": [out["ImageId"]]}))["Images"][0]
    assert ami["State"] == "available"
    mappings = {m["DeviceName"]: m["Ebs"] for m in ami["BlockDeviceMappings"]}
    assert sorted(mappings) == ["/dev/sdf", "/dev/xvda"]
    data_snapshot = mappings["/dev/sdf"]["SnapshotId"]
    assert (await describe_snapshot(env, data_snapshot))["Tags"] == [{"Key": "a", "Value": "b"}]
    await raises("InvalidSnapshot.InUse", snapshots.delete_snapshot(env.ctx(), {"SnapshotId": data_snapshot}))
    # launching it gives a volume from the data snapshot at /dev/sdf
    launched = await launch(env, out["ImageId"])
    await env.settle()
    new_id = launched["Instances"][0]["InstanceId"]
    spec = await env.spec(new_id)
    assert len(spec.disks) == 1 and await reads(spec.disks[0].path, 0, 0x42)
    # RegisterImage from the snapshots, then DeregisterImage leaves them
    registered = await image_snapshots.register_image(env.ctx(), {
        "Name": "registered", "RootDeviceName": "/dev/xvda", "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": mappings["/dev/xvda"]["SnapshotId"], "VolumeSize": 2}},
            {"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": data_snapshot}}]})
    for image_id in (out["ImageId"], registered["ImageId"]):
        await images.deregister_image(env.ctx(), {"ImageId": image_id})
    assert (await describe_snapshot(env, data_snapshot))["State"] == "completed"
    assert (await describe_snapshot(env, data_snapshot))["Tags"] == [{"Key": "a", "Value": "b"}]
    await snapshots.delete_snapshot(env.ctx(), {"SnapshotId": data_snapshot})
    for bad, code in (
            ([{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}], "InvalidSnapshot.NotFound"),
            ([{"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": mappings["/dev/xvda"]["SnapshotId"]}}],
             "InvalidBlockDeviceMapping")):
        await raises(code, image_snapshots.register_image(env.ctx(), {
            "Name": "bad-one", "RootDeviceName": "/dev/xvda", "BlockDeviceMappings": bad}))


async def test_snapshot_isolation(env):
    vol = await new_volume(env)
    sid = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    bob = env.ctx(BOB)
    assert sid not in [s["SnapshotId"] for s in (await snapshots.describe_snapshots(bob, {}))["Snapshots"]]
    for call in (snapshots.describe_snapshots(bob, {"SnapshotIds": [sid]}),
                 snapshots.delete_snapshot(bob, {"SnapshotId": sid}),
                 snapshots.describe_snapshot_attribute(bob, {"SnapshotId": sid, "Attribute": "createVolumePermission"}),
                 snapshots.modify_snapshot_attribute(bob, {"SnapshotId": sid, "OperationType": "add", "UserIds": [BOB]}),
                 snapshots.reset_snapshot_attribute(bob, {"SnapshotId": sid, "Attribute": "createVolumePermission"}),
                 snapshots.copy_snapshot(bob, {"SourceSnapshotId": sid, "SourceRegion": "us-east-1"}),
                 volumes.create_volume(bob, {"AvailabilityZone": "us-east-1a", "SnapshotId": sid}),
                 image_snapshots.register_image(bob, {"Name": "steal", "RootDeviceName": "/dev/xvda",
                                                      "BlockDeviceMappings": [{"DeviceName": "/dev/xvda",
                                                                               "Ebs": {"SnapshotId": sid}}]})):
        await raises("InvalidSnapshot.NotFound", call)
    await raises("InvalidVolume.NotFound", snapshots.create_snapshot(bob, {"VolumeId": vol}))
    await raises("InvalidInstanceID.NotFound", snapshots.create_snapshots(
        bob, {"InstanceSpecification": {"InstanceId": "i-0123456789abcdef0"}}))


# -- crash story: what a kill -9 leaves, the next start settles ----------------------------------------------

async def test_sweep_after_a_crash(env):
    vol = await new_volume(env)
    await qemu_io(volume_path(env, vol), "write -P 0x33 0 64k")
    sid = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    lost = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    folder = os.path.join(env.config.data_dir, "snapshots")

    async def crash():
        db = await _open_db(env)
        # a snapshot frozen but not yet exported (its .source link exists) ...
        await db.execute_in_tx("UPDATE ec2_snapshots SET state = 'pending', progress = 0 WHERE snapshot_id = ?", sid)
        os.unlink(os.path.join(folder, f"{sid}.qcow2"))
        await backend_images.run_qemu_img("snapshot", "-c", sid, volume_path(env, vol))
        snapshot_files.link_or_copy(volume_path(env, vol), os.path.join(folder, f"{sid}.source"))
        open(os.path.join(folder, f"{sid}.qcow2.part"), "wb").write(b"half")
        # ... one whose freeze never happened, a volume still being created, and orphans
        await db.execute_in_tx("UPDATE ec2_snapshots SET state = 'pending' WHERE snapshot_id = ?", lost)
        os.unlink(os.path.join(folder, f"{lost}.qcow2"))
        await db.execute_in_tx("UPDATE ec2_volumes SET state = 'creating' WHERE volume_id = ?", vol)
        open(os.path.join(env.config.data_dir, "volumes", "vol-0123456789abcdef0.qcow2"), "wb").write(b"x")
        open(os.path.join(folder, "snap-0123456789abcdef0.qcow2"), "wb").write(b"x")
        open(volume_path(env, vol) + ".part", "wb").write(b"x")
        await db.close()

    await env.restart(crash)
    await env.settle()
    done = await describe_snapshot(env, sid)
    assert done["State"] == "completed"
    restored = await new_volume(env, SnapshotId=sid)
    assert await reads(volume_path(env, restored), 0, 0x33)
    assert (await describe_snapshot(env, lost))["State"] == "error"
    assert (await describe_volume(env, vol))["State"] == "available"
    assert sorted(os.listdir(folder)) == [f"{sid}.qcow2"]
    assert sorted(os.listdir(os.path.join(env.config.data_dir, "volumes"))) == sorted(
        [f"{vol}.qcow2", f"{restored}.qcow2"])
    assert sid not in await backend_images.run_qemu_img("snapshot", "-l", "-U", volume_path(env, vol))


async def _open_db(env):
    from storage.db import Database

    class Db:
        def __init__(self, db):
            self.db = db

        async def execute_in_tx(self, sql, *args):
            async with self.db.transaction() as tx:
                await tx.execute(sql, args)

        async def close(self):
            await self.db.close()
    return Db(await Database.open(os.path.join(env.config.data_dir, "nimbo.db")))


async def test_first_snapshot_of_a_restored_volume_is_a_delta_on_its_source(env):
    vol = await new_volume(env)
    await qemu_io(volume_path(env, vol), "write -P 0x11 0 4M")
    source = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    restored = await new_volume(env, SnapshotId=source)
    await qemu_io(volume_path(env, restored), "write -P 0x22 0 64k")
    first = (await snap(env, restored))["SnapshotId"]
    await env.settle()
    folder = os.path.join(env.config.data_dir, "snapshots")
    info = await backend_images.info(os.path.join(folder, f"{first}.qcow2"))
    assert info["backing_file"] == os.path.join(folder, f"{source}.qcow2")
    assert info["actual_size"] < 1024 * 1024
    again = await new_volume(env, SnapshotId=first)
    assert await reads(volume_path(env, again), 0, 0x22)
    assert await reads(volume_path(env, again), 65536, 0x11, 4 * 1024 * 1024 - 65536)


async def test_create_image_of_another_accounts_instance(env, tiny_image):
    instance_id = await running_instance(env, tiny_image)
    await raises("InvalidInstanceID.NotFound", image_snapshots.create_image(
        env.ctx(BOB), {"InstanceId": instance_id, "Name": "not-mine"}))
    assert await env.db.fetchall("SELECT 1 FROM ec2_snapshots WHERE account_id = ?", (BOB,)) == []


async def test_register_image_mappings_and_filters(env, tiny_image):
    vol = await new_volume(env)
    sid = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    out = await image_snapshots.register_image(env.ctx(), {
        "Name": "mapped", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [
            {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": sid, "VolumeType": "gp3", "DeleteOnTermination": False}},
            {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2}},
            {"DeviceName": "/dev/sdc", "NoDevice": ""},
            {"DeviceName": "/dev/sdd", "VirtualName": "ephemeral0"}]})
    listed = await images.describe_images(env.ctx(), {"Filters": [
        {"Name": "block-device-mapping.snapshot-id", "Values": [sid]}]})
    wire("DescribeImages", listed)
    (image,) = listed["Images"]
    assert image["ImageId"] == out["ImageId"] and image["RootDeviceName"] == "/dev/sda1"
    assert [m["DeviceName"] for m in image["BlockDeviceMappings"]] == ["/dev/sda1", "/dev/sdb", "/dev/sdc", "/dev/sdd"]
    assert image["BlockDeviceMappings"][0]["Ebs"] == {"DeleteOnTermination": False, "SnapshotId": sid, "VolumeSize": 1,
                                                      "VolumeType": "gp3", "Encrypted": False, "Iops": 3000,
                                                      "Throughput": 125}
    by_size = await images.describe_images(env.ctx(), {"Filters": [
        {"Name": "block-device-mapping.volume-size", "Values": ["2"]}]})
    assert [i["ImageId"] for i in by_size["Images"]] == [out["ImageId"]]
    # launching it: the root from the snapshot (kept at termination), a new blank 2 GiB volume at /dev/sdb
    launched = await launch(env, out["ImageId"])
    await env.settle()
    mappings = {b["DeviceName"]: b["Ebs"] for b in launched["Instances"][0]["BlockDeviceMappings"]}
    assert sorted(mappings) == ["/dev/sda1", "/dev/sdb"] and mappings["/dev/sda1"]["DeleteOnTermination"] is False
    assert (await describe_volume(env, mappings["/dev/sdb"]["VolumeId"]))["Size"] == 2


async def test_launch_with_a_volume_from_a_snapshot(env, tiny_image):
    """RunInstances BlockDeviceMappings: an extra EBS volume made from a snapshot, larger than it."""
    vol = await new_volume(env)
    await qemu_io(volume_path(env, vol), "write -P 0x3c 0 64k")
    sid = (await snap(env, vol))["SnapshotId"]
    await env.settle()
    out = await launch(env, tiny_image, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": sid, "VolumeSize": 2, "VolumeType": "gp3"}}])
    await env.settle()
    volume_id = {b["DeviceName"]: b["Ebs"]["VolumeId"] for b in out["Instances"][0]["BlockDeviceMappings"]}["/dev/sdf"]
    volume = await describe_volume(env, volume_id)
    assert (volume["SnapshotId"], volume["Size"], volume["VolumeType"]) == (sid, 2, "gp3")
    assert volume["Attachments"][0]["DeleteOnTermination"] is True
    assert await reads(volume_path(env, volume_id), 0, 0x3c)
    await raises("InvalidBlockDeviceMapping", launch(env, tiny_image, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": sid, "VolumeSize": 0}}]))
