"""EC2 storage scenarios: EBS volumes (create, describe, modify, attributes, status, attach, detach,
delete), snapshots (create, create for an instance, copy, share, reset, delete), volumes from
snapshots and images registered from snapshots; AWS's error codes for the common mistakes.

Every volume, snapshot, image and instance a scenario makes is removed when it ends. Waiters poll
once a second (a snapshot on a real volume takes a moment).
"""
from __future__ import annotations

from conformance import scenario
from conformance.scenarios.ec2_instances import launch, wait

WAIT = {"Delay": 1, "MaxAttempts": 120}
MISSING_VOLUME = "vol-0123456789abcdef0"
MISSING_SNAPSHOT = "snap-0123456789abcdef0"


def zone(ctx, index: int = 0) -> str:
    zones = ctx.call("ec2", "DescribeAvailabilityZones")["AvailabilityZones"]
    return sorted(z["ZoneName"] for z in zones)[min(index, len(zones) - 1)]


def new_volume(ctx, **params) -> str:
    params.setdefault("AvailabilityZone", zone(ctx))
    params.setdefault("Size", 1)
    out = ctx.call("ec2", "CreateVolume", **params)
    ec2 = ctx.client("ec2", validate=False)
    ctx.defer(_delete_volume, ec2, out["VolumeId"])
    ec2.get_waiter("volume_available").wait(VolumeIds=[out["VolumeId"]], WaiterConfig=WAIT)
    return out["VolumeId"]


def _delete_volume(ec2, volume_id: str) -> None:
    try:
        (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
        if volume.get("Attachments"):
            ec2.detach_volume(VolumeId=volume_id, Force=True)
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ec2.delete_volume(VolumeId=volume_id)
    except Exception:  # noqa: BLE001 - a clean-up
        pass


def new_snapshot(ctx, volume_id: str, **params) -> str:
    out = ctx.call("ec2", "CreateSnapshot", VolumeId=volume_id, **params)
    ec2 = ctx.client("ec2", validate=False)
    ctx.defer(_delete_snapshot, ec2, out["SnapshotId"])
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[out["SnapshotId"]], WaiterConfig=WAIT)
    return out["SnapshotId"]


def _delete_snapshot(ec2, snapshot_id: str) -> None:
    try:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    except Exception:  # noqa: BLE001 - a clean-up
        pass


@scenario("ec2", ["CreateVolume", "DescribeVolumes", "DeleteVolume"], client="boto3")
def volume_life(ctx):
    """CreateVolume answers ``creating`` with the type's defaults (gp3: 3000 IOPS, 125 MiB/s), the
    volume becomes ``available``, is found by id and by filters, and is gone after DeleteVolume."""
    az = zone(ctx)
    out = ctx.call("ec2", "CreateVolume", AvailabilityZone=az, Size=1, VolumeType="gp3", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": ctx.name("vol")}]}])
    volume_id = out["VolumeId"]
    ec2 = ctx.client("ec2", validate=False)
    ctx.defer(_delete_volume, ec2, volume_id)
    ctx.check_equal((out["Size"], out["VolumeType"], out["Iops"], out["Throughput"]), (1, "gp3", 3000, 125),
                    "size, type, iops, throughput")
    ctx.check(out["State"] in ("creating", "available"), f"State {out['State']}")
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    (found,) = ctx.call("ec2", "DescribeVolumes", VolumeIds=[volume_id])["Volumes"]
    ctx.check_equal((found["State"], found["AvailabilityZone"], found["Attachments"]), ("available", az, []),
                    "state, zone, attachments")
    listed = ctx.call("ec2", "DescribeVolumes", Filters=[{"Name": "volume-id", "Values": [volume_id]},
                                                         {"Name": "volume-type", "Values": ["gp3"]}])["Volumes"]
    ctx.check_equal([v["VolumeId"] for v in listed], [volume_id], "volume-id + volume-type filters")
    ctx.call("ec2", "DeleteVolume", VolumeId=volume_id)
    with ctx.expect_error("InvalidVolume.NotFound", 400):
        ctx.call("ec2", "DescribeVolumes", VolumeIds=[volume_id])


@scenario("ec2", ["ModifyVolume", "DescribeVolumesModifications", "DescribeVolumeStatus",
                  "DescribeVolumeAttribute", "ModifyVolumeAttribute", "EnableVolumeIO"], client="boto3")
def volume_modify_and_attributes(ctx):
    """ModifyVolume grows a volume (the modification is listed with its original and target
    sizes); the volume's status is ok; autoEnableIO can be read and set."""
    volume_id = new_volume(ctx, Size=1)
    mod = ctx.call("ec2", "ModifyVolume", VolumeId=volume_id, Size=2)["VolumeModification"]
    ctx.check_equal((mod["OriginalSize"], mod["TargetSize"]), (1, 2), "original and target size")
    mods = ctx.call("ec2", "DescribeVolumesModifications", VolumeIds=[volume_id])["VolumesModifications"]
    ctx.check_equal([m["VolumeId"] for m in mods], [volume_id], "DescribeVolumesModifications")
    statuses = ctx.call("ec2", "DescribeVolumeStatus", VolumeIds=[volume_id])["VolumeStatuses"]
    ctx.check_equal([s["VolumeStatus"]["Status"] for s in statuses], ["ok"], "volume status")
    attr = ctx.call("ec2", "DescribeVolumeAttribute", VolumeId=volume_id, Attribute="autoEnableIO")
    ctx.check_equal(attr["AutoEnableIO"], {"Value": False}, "autoEnableIO")
    ctx.call("ec2", "ModifyVolumeAttribute", VolumeId=volume_id, AutoEnableIO={"Value": True})
    attr = ctx.call("ec2", "DescribeVolumeAttribute", VolumeId=volume_id, Attribute="autoEnableIO")
    ctx.check_equal(attr["AutoEnableIO"], {"Value": True}, "autoEnableIO after ModifyVolumeAttribute")
    ctx.call("ec2", "EnableVolumeIO", VolumeId=volume_id)


@scenario("ec2", ["AttachVolume", "DetachVolume"], client="boto3")
def attach_detach(ctx):
    """A volume attached to a running instance is ``in-use`` with the device; a second attach is
    VolumeInUse; after DetachVolume it is ``available`` again."""
    instance_id = launch(ctx)["Instances"][0]["InstanceId"]
    wait(ctx, "instance_running", [instance_id])
    az = ctx.call("ec2", "DescribeInstances", InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "Placement"]["AvailabilityZone"]
    volume_id = new_volume(ctx, AvailabilityZone=az)
    out = ctx.call("ec2", "AttachVolume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    ctx.check_equal((out["VolumeId"], out["InstanceId"], out["Device"]), (volume_id, instance_id, "/dev/sdf"),
                    "attachment")
    ec2 = ctx.client("ec2", validate=False)
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)
    with ctx.expect_error("VolumeInUse", 400):
        ctx.call("ec2", "AttachVolume", VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdg")
    with ctx.expect_error("VolumeInUse", 400):
        ctx.call("ec2", "DeleteVolume", VolumeId=volume_id)
    ctx.call("ec2", "DetachVolume", VolumeId=volume_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=WAIT)


@scenario("ec2", "AttachVolume", client="boto3", variant="zone mismatch")
def attach_zone_mismatch(ctx):
    """A volume in another availability zone: InvalidVolume.ZoneMismatch."""
    zones = ctx.call("ec2", "DescribeAvailabilityZones")["AvailabilityZones"]
    if len(zones) < 2:
        ctx.skip("the region has one availability zone")
    instance = launch(ctx)["Instances"][0]
    wait(ctx, "instance_running", [instance["InstanceId"]])
    other = next(z["ZoneName"] for z in zones if z["ZoneName"] != instance["Placement"]["AvailabilityZone"])
    volume_id = new_volume(ctx, AvailabilityZone=other)
    with ctx.expect_error("InvalidVolume.ZoneMismatch", 400):
        ctx.call("ec2", "AttachVolume", VolumeId=volume_id, InstanceId=instance["InstanceId"], Device="/dev/sdf")


@scenario("ec2", "CreateVolume", client="boto3", variant="bad input")
def create_volume_errors(ctx):
    """No size and no snapshot: MissingParameter; io1 without Iops: InvalidParameterCombination; st1 below
    125 GiB: InvalidParameterValue; an unknown snapshot: InvalidSnapshot.NotFound."""
    az = zone(ctx)
    with ctx.expect_error("MissingParameter", 400):
        ctx.call("ec2", "CreateVolume", AvailabilityZone=az)
    with ctx.expect_error("InvalidParameterCombination", 400):
        ctx.call("ec2", "CreateVolume", AvailabilityZone=az, Size=10, VolumeType="io1")
    with ctx.expect_error("InvalidParameterValue", 400):
        ctx.call("ec2", "CreateVolume", AvailabilityZone=az, Size=1, VolumeType="st1")
    with ctx.expect_error("InvalidSnapshot.NotFound", 400):
        ctx.call("ec2", "CreateVolume", AvailabilityZone=az, SnapshotId=MISSING_SNAPSHOT)


@scenario("ec2", ["DeleteVolume", "DeleteSnapshot"], client="boto3", variant="unknown id")
def delete_unknown(ctx):
    """Deleting what does not exist: InvalidVolume.NotFound, InvalidSnapshot.NotFound."""
    with ctx.expect_error("InvalidVolume.NotFound", 400):
        ctx.call("ec2", "DeleteVolume", VolumeId=MISSING_VOLUME)
    with ctx.expect_error("InvalidSnapshot.NotFound", 400):
        ctx.call("ec2", "DeleteSnapshot", SnapshotId=MISSING_SNAPSHOT)


@scenario("ec2", ["CreateSnapshot", "DescribeSnapshots", "DeleteSnapshot"], client="boto3")
def snapshot_life(ctx):
    """CreateSnapshot answers ``pending``, completes with Progress 100%, is listed with
    OwnerIds=self and a volume-id filter, a volume made from it names it, DeleteSnapshot removes it."""
    volume_id = new_volume(ctx)
    out = ctx.call("ec2", "CreateSnapshot", VolumeId=volume_id, Description="conformance")
    ctx.check(out["State"] in ("pending", "completed"), f"State {out['State']}")
    ctx.check_equal((out["VolumeId"], out["VolumeSize"]), (volume_id, 1), "VolumeId, VolumeSize")
    ec2 = ctx.client("ec2", validate=False)
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[out["SnapshotId"]], WaiterConfig=WAIT)
    found = ctx.call("ec2", "DescribeSnapshots", OwnerIds=["self"],
                     Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Snapshots"]
    ctx.check_equal([(s["SnapshotId"], s["Progress"]) for s in found], [(out["SnapshotId"], "100%")],
                    "DescribeSnapshots")
    restored = new_volume(ctx, SnapshotId=out["SnapshotId"])
    (volume,) = ctx.call("ec2", "DescribeVolumes", VolumeIds=[restored])["Volumes"]
    ctx.check_equal(volume["SnapshotId"], out["SnapshotId"], "volume's SnapshotId")
    ctx.call("ec2", "DeleteSnapshot", SnapshotId=out["SnapshotId"])
    with ctx.expect_error("InvalidSnapshot.NotFound", 400):
        ctx.call("ec2", "DescribeSnapshots", SnapshotIds=[out["SnapshotId"]])


@scenario("ec2", ["CopySnapshot", "ModifySnapshotAttribute", "DescribeSnapshotAttribute",
                  "ResetSnapshotAttribute"], client="boto3")
def snapshot_copy_and_share(ctx):
    """CopySnapshot makes a new completed snapshot; createVolumePermission can be added, read and
    reset."""
    snapshot_id = new_snapshot(ctx, new_volume(ctx))
    copy = ctx.call("ec2", "CopySnapshot", SourceSnapshotId=snapshot_id, SourceRegion=ctx.region,
                    Description="copy")["SnapshotId"]
    ec2 = ctx.client("ec2", validate=False)
    ctx.defer(_delete_snapshot, ec2, copy)
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[copy], WaiterConfig=WAIT)
    ctx.call("ec2", "ModifySnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission",
             OperationType="add", UserIds=["111122223333"])
    attr = ctx.call("ec2", "DescribeSnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission")
    ctx.check_equal(attr["CreateVolumePermissions"], [{"UserId": "111122223333"}], "CreateVolumePermissions")
    ctx.call("ec2", "ResetSnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission")
    attr = ctx.call("ec2", "DescribeSnapshotAttribute", SnapshotId=snapshot_id, Attribute="createVolumePermission")
    ctx.check_equal(attr.get("CreateVolumePermissions", []), [], "after ResetSnapshotAttribute")


@scenario("ec2", "CreateSnapshots", client="boto3")
def snapshots_of_instance(ctx):
    """CreateSnapshots of an instance: one snapshot per attached volume (the root volume here)."""
    instance_id = launch(ctx)["Instances"][0]["InstanceId"]
    wait(ctx, "instance_running", [instance_id])
    out = ctx.call("ec2", "CreateSnapshots", InstanceSpecification={"InstanceId": instance_id},
                   Description="set")["Snapshots"]
    ec2 = ctx.client("ec2", validate=False)
    for item in out:
        ctx.defer(_delete_snapshot, ec2, item["SnapshotId"])
    ctx.check(len(out) >= 1, "no snapshot made")
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[s["SnapshotId"] for s in out], WaiterConfig=WAIT)


@scenario("ec2", "RegisterImage", client="boto3", variant="from a snapshot")
def register_from_snapshot(ctx):
    """RegisterImage with a root block device mapping naming a snapshot makes an available AMI
    that advertises the snapshot; the snapshot is then InvalidSnapshot.InUse."""
    snapshot_id = new_snapshot(ctx, new_volume(ctx))
    image_id = ctx.call("ec2", "RegisterImage", Name=ctx.name("ami"), RootDeviceName="/dev/xvda",
                        Architecture="x86_64", VirtualizationType="hvm",
                        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}])["ImageId"]
    ec2 = ctx.client("ec2", validate=False)
    ctx.defer(ec2.deregister_image, ImageId=image_id)
    ec2.get_waiter("image_available").wait(ImageIds=[image_id], WaiterConfig=WAIT)
    (image,) = ctx.call("ec2", "DescribeImages", ImageIds=[image_id])["Images"]
    ctx.check_equal([m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m], [snapshot_id],
                    "BlockDeviceMappings' SnapshotId")
    with ctx.expect_error("InvalidSnapshot.InUse", 400):
        ctx.call("ec2", "DeleteSnapshot", SnapshotId=snapshot_id)


@scenario("ec2", ["CreateVolume", "CreateSnapshot", "DescribeVolumes", "DeleteVolume"], client="awscli")
def volumes_cli(ctx):
    """`aws ec2 create-volume`, `wait volume-available`, `create-snapshot`, `create-volume
    --snapshot-id`, `describe-volumes --filters`, `delete-volume`."""
    az = zone(ctx)
    volume = ctx.aws("ec2", "create-volume", "--availability-zone", az, "--size", "1")
    ec2 = ctx.client("ec2", validate=False)
    ctx.defer(_delete_volume, ec2, volume["VolumeId"])
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume["VolumeId"]], WaiterConfig=WAIT)
    snapshot = ctx.aws("ec2", "create-snapshot", "--volume-id", volume["VolumeId"])
    ctx.defer(_delete_snapshot, ec2, snapshot["SnapshotId"])
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot["SnapshotId"]], WaiterConfig=WAIT)
    restored = ctx.aws("ec2", "create-volume", "--availability-zone", az, "--snapshot-id", snapshot["SnapshotId"])
    ctx.defer(_delete_volume, ec2, restored["VolumeId"])
    listed = ctx.aws("ec2", "describe-volumes", "--filters",
                     f"Name=snapshot-id,Values={snapshot['SnapshotId']}")["Volumes"]
    ctx.check_equal([v["VolumeId"] for v in listed], [restored["VolumeId"]], "snapshot-id filter")
