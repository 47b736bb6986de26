"""EBS end to end: boto3 and aws-cli against a live ``nimbo serve --backend fake`` (the fake driver
starts VMs at once; volume and snapshot files are real qcow2 files made by qemu-img). The volume
and snapshot life cycles with AWS's waiters, attach/detach to a running instance, volumes from
snapshots, sharing, block device mappings, images made of snapshots, AWS's error codes on the
wire, tenant isolation, and a kill -9 of the server in the middle of volume and snapshot work.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import threading
import time

from tests.conftest import NimboServer
from tests.e2e.test_ec2_api import FAST, TENANT, cloud, error_of, launched, run   # noqa: F401 (fixtures)

ZONE = "us-east-1a"


def running(cloud, launched, account=None, **params) -> str:
    out = run(cloud, launched, account, **params)
    instance_id = out["Instances"][0]["InstanceId"]
    cloud.client(account).get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    return instance_id


def test_volume_life_cycle_with_waiters(cloud, launched):
    ec2 = cloud.client()
    instance_id = running(cloud, launched)
    volume = ec2.create_volume(AvailabilityZone=ZONE, Size=8, VolumeType="gp3", Iops=4000, Throughput=200,
                               TagSpecifications=[{"ResourceType": "volume",
                                                   "Tags": [{"Key": "Name", "Value": "e2e"}]}])
    vol = volume["VolumeId"]
    assert volume["State"] == "creating" and volume["Iops"] == 4000 and volume["Throughput"] == 200
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    attachment = ec2.attach_volume(VolumeId=vol, InstanceId=instance_id, Device="/dev/sdf")
    assert attachment["State"] == "attaching"
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
    (described,) = ec2.describe_volumes(VolumeIds=[vol])["Volumes"]
    assert described["Attachments"][0]["InstanceId"] == instance_id
    assert described["Tags"] == [{"Key": "Name", "Value": "e2e"}]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert [b["DeviceName"] for b in instance["BlockDeviceMappings"]] == ["/dev/xvda", "/dev/sdf"]
    by_filter = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    assert len(by_filter["Volumes"]) == 2      # the root volume and the new one
    modified = ec2.modify_volume(VolumeId=vol, Size=9)["VolumeModification"]
    assert modified["TargetSize"] == 9 and modified["OriginalSize"] == 8
    for _ in range(40):
        mods = ec2.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"]
        if mods[0]["ModificationState"] == "completed":
            break
        time.sleep(0.25)
    assert mods[0]["ModificationState"] == "completed"
    assert ec2.describe_volume_status(VolumeIds=[vol])["VolumeStatuses"][0]["VolumeStatus"]["Status"] == "ok"
    assert error_of(ec2.delete_volume, VolumeId=vol)[:2] == ("VolumeInUse", 400)
    ec2.detach_volume(VolumeId=vol)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    ec2.delete_volume(VolumeId=vol)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert error_of(ec2.describe_volumes, VolumeIds=[vol])[:2] == ("InvalidVolume.NotFound", 400)


def test_error_codes_on_the_wire(cloud, launched):
    ec2 = cloud.client()
    instance_id = running(cloud, launched)
    other_zone = ec2.create_volume(AvailabilityZone="us-east-1b", Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[other_zone], WaiterConfig=FAST)
    assert error_of(ec2.attach_volume, VolumeId=other_zone, InstanceId=instance_id,
                    Device="/dev/sdf")[:2] == ("InvalidVolume.ZoneMismatch", 400)
    assert error_of(ec2.create_volume, AvailabilityZone=ZONE, Size=1, DryRun=True)[:2] == ("DryRunOperation", 412)
    assert error_of(ec2.create_volume, AvailabilityZone=ZONE)[:2] == ("MissingParameter", 400)
    assert error_of(ec2.create_volume, AvailabilityZone=ZONE, Size=10, VolumeType="io1")[0] == "InvalidParameterCombination"
    assert error_of(ec2.create_volume, AvailabilityZone=ZONE, Size=1, VolumeType="st1")[0] == "InvalidParameterValue"
    assert error_of(ec2.delete_volume, VolumeId="vol-0123456789abcdef0")[:2] == ("InvalidVolume.NotFound", 400)
    assert error_of(ec2.delete_volume, VolumeId="vol-1")[0] == "InvalidVolumeID.Malformed"
    assert error_of(ec2.delete_snapshot, SnapshotId="snap-0123456789abcdef0")[0] == "InvalidSnapshot.NotFound"
    assert error_of(ec2.detach_volume, VolumeId=other_zone)[0] == "IncorrectState"
    code, status, message = error_of(ec2.create_snapshot, VolumeId="vol-0123456789abcdef0")
    assert (code, status) == ("InvalidVolume.NotFound", 400) and "vol-0123456789abcdef0" in message
    ec2.delete_volume(VolumeId=other_zone)


def test_snapshots_and_volumes_from_them(cloud):
    ec2, tenant = cloud.client(), cloud.client(TENANT)
    vol = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    started = time.monotonic()
    snapshot = ec2.create_snapshot(VolumeId=vol, Description="e2e", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert snapshot["State"] == "pending"
    sid = snapshot["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
    print(f"snapshot of a 1 GiB volume completed in {time.monotonic() - started:.2f} s (API, fake driver)")
    (described,) = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
    assert described["Progress"] == "100%" and described["Tags"] == [{"Key": "k", "Value": "v"}]
    mine = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol]}])
    assert [s["SnapshotId"] for s in mine["Snapshots"]] == [sid]
    assert error_of(ec2.create_volume, AvailabilityZone=ZONE, SnapshotId=sid, Size=0)[0] == "InvalidParameterValue"
    from_snap = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=sid)
    assert from_snap["Size"] == 1 and from_snap["SnapshotId"] == sid
    # sharing with the tenant
    assert error_of(tenant.describe_snapshots, SnapshotIds=[sid])[0] == "InvalidSnapshot.NotFound"
    ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[cloud.account_id(TENANT)])
    attr = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert attr["CreateVolumePermissions"] == [{"UserId": cloud.account_id(TENANT)}]
    theirs = tenant.create_volume(AvailabilityZone=ZONE, SnapshotId=sid)["VolumeId"]
    tenant.get_waiter("volume_available").wait(VolumeIds=[theirs], WaiterConfig=FAST)
    copy = ec2.copy_snapshot(SourceSnapshotId=sid, SourceRegion="us-east-1", Description="copy")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[copy], WaiterConfig=FAST)
    ec2.reset_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert error_of(tenant.describe_snapshots, SnapshotIds=[sid])[0] == "InvalidSnapshot.NotFound"
    ec2.get_waiter("volume_available").wait(VolumeIds=[from_snap["VolumeId"]], WaiterConfig=FAST)
    for client, volume_id in ((ec2, vol), (ec2, from_snap["VolumeId"]), (tenant, theirs)):
        client.delete_volume(VolumeId=volume_id)
    ec2.delete_snapshot(SnapshotId=sid)
    ec2.delete_snapshot(SnapshotId=copy)
    left = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert not left & {sid, copy}


def test_aws_cli_volume_and_snapshot(cloud, launched):
    instance_id = running(cloud, launched)
    volume = cloud.aws_json("ec2", "create-volume", "--availability-zone", ZONE, "--size", "1",
                            "--volume-type", "gp3")
    vol = volume["VolumeId"]
    assert cloud.aws("ec2", "wait", "volume-available", "--volume-ids", vol).returncode == 0
    started = time.monotonic()
    attachment = cloud.aws_json("ec2", "attach-volume", "--volume-id", vol, "--instance-id", instance_id,
                                "--device", "/dev/sdf")
    assert attachment["Device"] == "/dev/sdf"
    assert cloud.aws("ec2", "wait", "volume-in-use", "--volume-ids", vol).returncode == 0
    print(f"attach-volume to in-use through aws-cli: {time.monotonic() - started:.2f} s (fake driver)")
    snapshot = cloud.aws_json("ec2", "create-snapshot", "--volume-id", vol, "--description", "cli")
    assert cloud.aws("ec2", "wait", "snapshot-completed", "--snapshot-ids", snapshot["SnapshotId"]).returncode == 0
    restored = cloud.aws_json("ec2", "create-volume", "--availability-zone", ZONE, "--snapshot-id",
                              snapshot["SnapshotId"])
    assert restored["SnapshotId"] == snapshot["SnapshotId"]
    listed = cloud.aws_json("ec2", "describe-volumes", "--filters", f"Name=snapshot-id,Values={snapshot['SnapshotId']}")
    assert [v["VolumeId"] for v in listed["Volumes"]] == [restored["VolumeId"]]
    bad = cloud.aws("ec2", "attach-volume", "--volume-id", vol, "--instance-id", instance_id, "--device", "/dev/sdg")
    assert bad.returncode != 0 and "VolumeInUse" in bad.stderr
    cloud.aws_json("ec2", "detach-volume", "--volume-id", vol)
    assert cloud.aws("ec2", "wait", "volume-available", "--volume-ids", vol).returncode == 0
    for volume_id in (vol, restored["VolumeId"]):
        assert cloud.aws("ec2", "wait", "volume-available", "--volume-ids", volume_id).returncode == 0
        cloud.aws_json("ec2", "delete-volume", "--volume-id", volume_id)
    cloud.aws_json("ec2", "delete-snapshot", "--snapshot-id", snapshot["SnapshotId"])


def test_block_device_mappings_and_images_of_snapshots(cloud, launched):
    ec2 = cloud.client()
    out = run(cloud, launched, BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 2}},
        {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1, "VolumeType": "gp3", "DeleteOnTermination": False}}])
    instance_id = out["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    mappings = {b["DeviceName"]: b["Ebs"]["VolumeId"] for b in out["Instances"][0]["BlockDeviceMappings"]}
    assert sorted(mappings) == ["/dev/sdb", "/dev/xvda"]
    image_id = ec2.create_image(InstanceId=instance_id, Name="e2e-with-data", NoReboot=True)["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[image_id], WaiterConfig=FAST)
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    snapshot_ids = {m["DeviceName"]: m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]}
    assert sorted(snapshot_ids) == ["/dev/sdb", "/dev/xvda"]
    assert error_of(ec2.delete_snapshot, SnapshotId=snapshot_ids["/dev/sdb"])[0] == "InvalidSnapshot.InUse"
    registered = ec2.register_image(Name="e2e-registered", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_ids["/dev/xvda"]}}])["ImageId"]
    second = run(cloud, launched, ImageId=registered)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[second], WaiterConfig=FAST)
    ec2.terminate_instances(InstanceIds=[instance_id, second])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id, second], WaiterConfig=FAST)
    (left,) = ec2.describe_volumes(VolumeIds=[mappings["/dev/sdb"]])["Volumes"]
    assert left["State"] == "available"                       # DeleteOnTermination false
    assert error_of(ec2.describe_volumes, VolumeIds=[mappings["/dev/xvda"]])[0] == "InvalidVolume.NotFound"
    for ami in (image_id, registered):
        ec2.deregister_image(ImageId=ami)
    described = ec2.describe_snapshots(SnapshotIds=list(snapshot_ids.values()))["Snapshots"]
    assert {s["State"] for s in described} == {"completed"}  # DeregisterImage leaves the snapshots
    for sid in snapshot_ids.values():
        ec2.delete_snapshot(SnapshotId=sid)
    ec2.delete_volume(VolumeId=mappings["/dev/sdb"])


def test_public_image_snapshot_is_registrable(cloud):
    tenant = cloud.client(TENANT)
    (image,) = tenant.describe_images(ImageIds=[cloud.image_id])["Images"]
    sid = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    (snapshot,) = tenant.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
    assert snapshot["State"] == "completed"
    ami = tenant.register_image(Name="tenant-from-public", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}])["ImageId"]
    assert tenant.describe_images(ImageIds=[ami])["Images"][0]["State"] == "available"
    tenant.deregister_image(ImageId=ami)


def test_tenants_are_isolated(cloud):
    ec2, tenant = cloud.client(), cloud.client(TENANT)
    vol = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    sid = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
    assert vol not in [v["VolumeId"] for v in tenant.describe_volumes()["Volumes"]]
    assert sid not in [s["SnapshotId"] for s in tenant.describe_snapshots()["Snapshots"]]
    for call, kwargs, code in (
            (tenant.describe_volumes, {"VolumeIds": [vol]}, "InvalidVolume.NotFound"),
            (tenant.delete_volume, {"VolumeId": vol}, "InvalidVolume.NotFound"),
            (tenant.modify_volume, {"VolumeId": vol, "Size": 4}, "InvalidVolume.NotFound"),
            (tenant.create_snapshot, {"VolumeId": vol}, "InvalidVolume.NotFound"),
            (tenant.describe_volume_attribute, {"VolumeId": vol, "Attribute": "autoEnableIO"}, "InvalidVolume.NotFound"),
            (tenant.delete_snapshot, {"SnapshotId": sid}, "InvalidSnapshot.NotFound"),
            (tenant.create_volume, {"AvailabilityZone": ZONE, "SnapshotId": sid}, "InvalidSnapshot.NotFound"),
            (tenant.copy_snapshot, {"SourceSnapshotId": sid, "SourceRegion": "us-east-1"}, "InvalidSnapshot.NotFound"),
            (tenant.create_tags, {"Resources": [vol], "Tags": [{"Key": "a", "Value": "b"}]}, "InvalidVolume.NotFound")):
        assert error_of(call, **kwargs)[0] == code, call
    ec2.delete_snapshot(SnapshotId=sid)
    ec2.delete_volume(VolumeId=vol)


# -- kill -9 in the middle of volume and snapshot work -----------------------------------------------------

def test_kill_9_during_volume_and_snapshot_work_leaves_nothing_half_made():
    data_dir = tempfile.mkdtemp(prefix="nimbo-e2e-ebs-", dir="/tmp")
    server = NimboServer(data_dir, extra_args=["--backend", "fake"])
    try:
        server.start()
        for round_ in range(3):
            ec2 = server.client("ec2")
            base = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
            ec2.get_waiter("volume_available").wait(VolumeIds=[base], WaiterConfig=FAST)
            stop = threading.Event()

            def churn() -> None:   # volumes and snapshots, as fast as the server answers
                for _ in range(200):
                    if stop.is_set():
                        return
                    try:
                        sid = ec2.create_snapshot(VolumeId=base)["SnapshotId"]
                        ec2.create_volume(AvailabilityZone=ZONE, Size=2)
                        ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=sid) if random.random() < 0.5 else None
                    except Exception:  # noqa: BLE001 (the server is killed under us)
                        return
            worker = threading.Thread(target=churn)
            worker.start()
            time.sleep(0.3 + random.random() * 0.7)
            server.stop(signal.SIGKILL)
            stop.set()
            worker.join(30)
            print(f"\nkill -9 round {round_}: left behind {_in_flight(data_dir)}")
            server.start()
            ec2 = server.client("ec2")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                volumes = ec2.describe_volumes()["Volumes"]
                snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
                work = [f for f in os.listdir(os.path.join(data_dir, "snapshots"))
                        if not f.endswith((".qcow2", ".raw"))]
                # an export records its snapshot, then drops its work files: both must happen
                if all(v["State"] == "available" for v in volumes) and not work and \
                        all(s["State"] in ("completed", "error") for s in snapshots):
                    break
                time.sleep(0.2)
            assert {v["State"] for v in volumes} <= {"available"}, volumes
            assert {s["State"] for s in snapshots} <= {"completed", "error"}, snapshots
            volume_files = set(os.listdir(os.path.join(data_dir, "volumes")))
            assert volume_files == {f"{v['VolumeId']}.qcow2" for v in volumes}, round_
            snapshot_files = set(os.listdir(os.path.join(data_dir, "snapshots")))
            completed = {f"{s['SnapshotId']}.qcow2" for s in snapshots if s["State"] == "completed"}
            assert completed <= snapshot_files, round_
            leftovers = [f for f in snapshot_files if not f.endswith(".qcow2") and not f.endswith(".raw")]
            assert leftovers == [], leftovers
            # what completed is usable: a volume from every completed snapshot
            for s in snapshots:
                if s["State"] == "completed":
                    made = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=s["SnapshotId"])["VolumeId"]
                    ec2.get_waiter("volume_available").wait(VolumeIds=[made], WaiterConfig=FAST)
                    ec2.delete_volume(VolumeId=made)
    except BaseException:
        print(f"the server's log (tail):\n{server.log()}")   # shown by pytest for a failure
        raise
    finally:
        server.stop(signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def _in_flight(data_dir: str) -> dict:
    """What the killed server was in the middle of (read from its files, before the restart)."""
    import sqlite3   # noqa: PLC0415
    conn = sqlite3.connect(os.path.join(data_dir, "nimbo.db"))
    try:
        creating = conn.execute("SELECT COUNT(*) FROM ec2_volumes WHERE state = 'creating'").fetchone()[0]
        pending = conn.execute("SELECT COUNT(*) FROM ec2_snapshots WHERE state = 'pending'").fetchone()[0]
    finally:
        conn.close()
    parts = sum(name.endswith((".part", ".source")) for folder in ("volumes", "snapshots")
                if os.path.isdir(os.path.join(data_dir, folder))
                for name in os.listdir(os.path.join(data_dir, folder)))
    return {"creating volumes": creating, "pending snapshots": pending, "work files": parts}

