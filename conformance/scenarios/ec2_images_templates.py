"""EC2 scenarios for bring-your-own-image (ImportImage and ImportSnapshot from S3,
DescribeImportImageTasks, DescribeImportSnapshotTasks, CancelImportTask, RegisterImage from S3) and
launch templates (versions, $Latest/$Default, RunInstances with a template and its tags)."""
from __future__ import annotations

import time

from conformance import scenario
from conformance.scenarios.ec2_instances import launchable_image, terminate_quietly
from conformance.scenarios.ec2_storage import _delete_snapshot, _delete_volume, zone

MiB = 1024 * 1024
MISSING_TEMPLATE = "lt-0123456789abcdef0"


def _raw_disk(size: int = 4 * MiB) -> bytes:
    """A raw disk with an MBR signature (any format probe calls it raw)."""
    disk = bytearray(size)
    disk[510:512] = b"\x55\xaa"
    return bytes(disk)


def _wait_task(ctx, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        (task,) = ctx.call("ec2", "DescribeImportImageTasks", ImportTaskIds=[task_id])["ImportImageTasks"]
        if task.get("Status") in ("completed", "deleted") or time.monotonic() > deadline:
            return task
        time.sleep(0.5)


def _deregister_quietly(ctx, image_id: str) -> None:
    try:
        ctx.client("ec2", validate=False).deregister_image(ImageId=image_id)
    except Exception:  # noqa: BLE001 - a clean-up
        pass


@scenario("ec2", ["ImportImage", "DescribeImportImageTasks"], client="boto3")
def import_image_from_s3(ctx):
    """A raw disk uploaded to S3 becomes an available AMI through an import task that goes from
    active to completed."""
    bucket = ctx.bucket("import")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="disk.raw", Body=_raw_disk())
    out = ctx.call("ec2", "ImportImage", Description="conformance import", DiskContainers=[
        {"Format": "RAW", "UserBucket": {"S3Bucket": bucket, "S3Key": "disk.raw"}}])
    task_id = out.get("ImportTaskId", "")
    ctx.check(task_id.startswith("import-ami-"), f"ImportTaskId {task_id!r}")
    ctx.check_equal(out.get("Status"), "active", "ImportImage Status")
    task = _wait_task(ctx, task_id)
    ctx.check_equal(task.get("Status"), "completed", f"task status ({task.get('StatusMessage')})")
    image_id = task.get("ImageId", "")
    ctx.check(image_id.startswith("ami-"), f"ImageId {image_id!r}")
    ctx.defer(_deregister_quietly, ctx, image_id)
    (image,) = ctx.call("ec2", "DescribeImages", ImageIds=[image_id])["Images"]
    ctx.check_equal(image.get("State"), "available", "imported image State")


@scenario("ec2", "ImportImage", client="boto3", variant="not the declared format")
def import_image_wrong_format(ctx):
    """A file declared VMDK that is not one ends its task as deleted with a ClientError message."""
    bucket = ctx.bucket("import")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="junk.vmdk", Body=b"not a disk image" * 4096)
    out = ctx.call("ec2", "ImportImage", DiskContainers=[
        {"Format": "VMDK", "Url": f"s3://{bucket}/junk.vmdk"}])
    task = _wait_task(ctx, out["ImportTaskId"])
    ctx.check_equal(task.get("Status"), "deleted", "task status")
    ctx.check(str(task.get("StatusMessage", "")).startswith("ClientError"), f"StatusMessage {task.get('StatusMessage')!r}")
    ctx.check("ImageId" not in task, "a failed import registered an image")


@scenario("ec2", ["DescribeImportImageTasks", "CancelImportTask"], client="boto3", variant="unknown task")
def import_task_not_found(ctx):
    """An import task id that does not exist: InvalidConversionTaskId."""
    with ctx.expect_error("InvalidConversionTaskId"):
        ctx.call("ec2", "DescribeImportImageTasks", ImportTaskIds=["import-ami-0123456789abcdef0"])
    with ctx.expect_error("InvalidConversionTaskId"):
        ctx.call("ec2", "CancelImportTask", ImportTaskId="import-ami-0123456789abcdef0")


@scenario("ec2", "ImportImage", client="awscli")
def import_image_cli(ctx):
    """`aws ec2 import-image --disk-containers` and `describe-import-image-tasks`."""
    bucket = ctx.bucket("import")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="disk.raw", Body=_raw_disk())
    out = ctx.aws("ec2", "import-image", "--disk-containers",
                  f'[{{"Format":"raw","UserBucket":{{"S3Bucket":"{bucket}","S3Key":"disk.raw"}}}}]')
    task = _wait_task(ctx, out["ImportTaskId"])
    ctx.check_equal(task.get("Status"), "completed", f"task status ({task.get('StatusMessage')})")
    if task.get("ImageId"):
        ctx.defer(_deregister_quietly, ctx, task["ImageId"])
    listed = ctx.aws("ec2", "describe-import-image-tasks", "--import-task-ids", out["ImportTaskId"])
    ctx.check_equal([t["ImportTaskId"] for t in listed["ImportImageTasks"]], [out["ImportTaskId"]],
                    "describe-import-image-tasks")


# --- ImportSnapshot -----------------------------------------------------------------------------------
def _wait_snapshot_task(ctx, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        (task,) = ctx.call("ec2", "DescribeImportSnapshotTasks",
                           ImportTaskIds=[task_id])["ImportSnapshotTasks"]
        if (task.get("SnapshotTaskDetail") or {}).get("Status") in ("completed", "deleted") \
                or time.monotonic() > deadline:
            return task
        time.sleep(0.5)




@scenario("ec2", ["ImportSnapshot", "DescribeImportSnapshotTasks"], client="boto3")
def import_snapshot_from_s3(ctx):
    """A raw disk uploaded to S3 becomes a completed snapshot (SnapshotTaskDetail active, then
    completed with SnapshotId) from which CreateVolume makes a volume of the snapshot's size."""
    bucket = ctx.bucket("import")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="disk.raw", Body=_raw_disk())
    out = ctx.call("ec2", "ImportSnapshot", Description="conformance snapshot import", DiskContainer={
        "Format": "RAW", "UserBucket": {"S3Bucket": bucket, "S3Key": "disk.raw"}})
    task_id = out.get("ImportTaskId", "")
    ctx.check(task_id.startswith("import-snap-"), f"ImportTaskId {task_id!r}")
    ctx.check_equal((out.get("SnapshotTaskDetail") or {}).get("Status"), "active", "ImportSnapshot Status")
    detail = _wait_snapshot_task(ctx, task_id).get("SnapshotTaskDetail") or {}
    ctx.check_equal(detail.get("Status"), "completed", f"task status ({detail.get('StatusMessage')})")
    snapshot_id = detail.get("SnapshotId", "")
    ctx.check(snapshot_id.startswith("snap-"), f"SnapshotId {snapshot_id!r}")
    ctx.defer(_delete_snapshot, ctx.client("ec2", validate=False), snapshot_id)
    (snap,) = ctx.call("ec2", "DescribeSnapshots", SnapshotIds=[snapshot_id])["Snapshots"]
    ctx.check_equal(snap.get("State"), "completed", "imported snapshot State")
    ctx.check_equal(snap.get("VolumeSize"), 1, "imported snapshot VolumeSize (GiB, rounded up)")
    volume = ctx.call("ec2", "CreateVolume", AvailabilityZone=zone(ctx), SnapshotId=snapshot_id)
    ctx.defer(_delete_volume, ctx.client("ec2", validate=False), volume["VolumeId"])
    ctx.check_equal(volume.get("Size"), 1, "volume from the imported snapshot: Size")


@scenario("ec2", "ImportSnapshot", client="boto3", variant="not the declared format")
def import_snapshot_wrong_format(ctx):
    """A file declared VMDK that is not one ends its task as deleted with a ClientError message
    and no snapshot."""
    bucket = ctx.bucket("import")
    ctx.call("s3", "PutObject", Bucket=bucket, Key="junk.vmdk", Body=b"not a disk image" * 4096)
    out = ctx.call("ec2", "ImportSnapshot", DiskContainer={"Format": "VMDK", "Url": f"s3://{bucket}/junk.vmdk"})
    detail = _wait_snapshot_task(ctx, out["ImportTaskId"]).get("SnapshotTaskDetail") or {}
    ctx.check_equal(detail.get("Status"), "deleted", "task status")
    ctx.check(str(detail.get("StatusMessage", "")).startswith("ClientError"),
              f"StatusMessage {detail.get('StatusMessage')!r}")
    ctx.check("SnapshotId" not in detail, "a failed import made a snapshot")


@scenario("ec2", ["DescribeImportSnapshotTasks", "CancelImportTask"], client="boto3", variant="unknown snapshot task")
def import_snapshot_task_not_found(ctx):
    """A snapshot import task id that does not exist: InvalidConversionTaskId."""
    with ctx.expect_error("InvalidConversionTaskId"):
        ctx.call("ec2", "DescribeImportSnapshotTasks", ImportTaskIds=["import-snap-0123456789abcdef0"])
    with ctx.expect_error("InvalidConversionTaskId"):
        ctx.call("ec2", "CancelImportTask", ImportTaskId="import-snap-0123456789abcdef0")


# --- launch templates -------------------------------------------------------------------------------
def _template(ctx, **data) -> dict:
    name = ctx.name("lt")
    out = ctx.call("ec2", "CreateLaunchTemplate", LaunchTemplateName=name, VersionDescription="v1",
                   LaunchTemplateData=data or {"InstanceType": "t2.nano"})
    template = out["LaunchTemplate"]
    ctx.defer(ctx.client("ec2", validate=False).delete_launch_template,
              LaunchTemplateId=template["LaunchTemplateId"])
    return template


@scenario("ec2", ["CreateLaunchTemplate", "CreateLaunchTemplateVersion", "DescribeLaunchTemplates",
                  "DescribeLaunchTemplateVersions", "ModifyLaunchTemplate", "DeleteLaunchTemplateVersions",
                  "DeleteLaunchTemplate"], client="boto3")
def launch_template_life(ctx):
    """Versions count up from 1; $Latest and $Default name them; ModifyLaunchTemplate moves the
    default; the default version cannot be deleted alone; DeleteLaunchTemplate removes it all."""
    template = _template(ctx, InstanceType="t2.nano")
    tid = template["LaunchTemplateId"]
    ctx.check(tid.startswith("lt-"), f"LaunchTemplateId {tid!r}")
    ctx.check_equal((template.get("DefaultVersionNumber"), template.get("LatestVersionNumber")), (1, 1), "versions")
    v2 = ctx.call("ec2", "CreateLaunchTemplateVersion", LaunchTemplateId=tid, SourceVersion="1",
                  LaunchTemplateData={"InstanceType": "t2.micro"})["LaunchTemplateVersion"]
    ctx.check_equal(v2.get("VersionNumber"), 2, "new VersionNumber")
    ctx.check_equal(v2.get("LaunchTemplateData", {}).get("InstanceType"), "t2.micro", "version 2 InstanceType")
    latest = ctx.call("ec2", "DescribeLaunchTemplateVersions", LaunchTemplateId=tid,
                      Versions=["$Latest"])["LaunchTemplateVersions"]
    ctx.check_equal([v["VersionNumber"] for v in latest], [2], "$Latest")
    default = ctx.call("ec2", "DescribeLaunchTemplateVersions", LaunchTemplateName=template["LaunchTemplateName"],
                       Versions=["$Default"])["LaunchTemplateVersions"]
    ctx.check_equal([v["VersionNumber"] for v in default], [1], "$Default")
    modified = ctx.call("ec2", "ModifyLaunchTemplate", LaunchTemplateId=tid, DefaultVersion="2")
    ctx.check_equal(modified["LaunchTemplate"].get("DefaultVersionNumber"), 2, "DefaultVersionNumber after modify")
    deleted = ctx.call("ec2", "DeleteLaunchTemplateVersions", LaunchTemplateId=tid, Versions=["1", "2"])
    ctx.check_equal([v["VersionNumber"] for v in deleted.get("SuccessfullyDeletedLaunchTemplateVersions", [])],
                    [1], "deleted versions")
    ctx.check_equal([v["VersionNumber"] for v in deleted.get("UnsuccessfullyDeletedLaunchTemplateVersions", [])],
                    [2], "the default version is not deleted")
    listed = ctx.call("ec2", "DescribeLaunchTemplates", LaunchTemplateIds=[tid])["LaunchTemplates"]
    ctx.check_equal([t["LaunchTemplateId"] for t in listed], [tid], "DescribeLaunchTemplates by id")
    ctx.call("ec2", "DeleteLaunchTemplate", LaunchTemplateId=tid)
    with ctx.expect_error("InvalidLaunchTemplateId.NotFound"):
        ctx.call("ec2", "DescribeLaunchTemplates", LaunchTemplateIds=[tid])


@scenario("ec2", ["CreateLaunchTemplate", "DescribeLaunchTemplates", "DescribeLaunchTemplateVersions"],
          client="boto3", variant="errors")
def launch_template_errors(ctx):
    """A name in use, a template or version that does not exist: EC2's codes."""
    template = _template(ctx)
    with ctx.expect_error("InvalidLaunchTemplateName.AlreadyExistsException"):
        ctx.call("ec2", "CreateLaunchTemplate", LaunchTemplateName=template["LaunchTemplateName"],
                 LaunchTemplateData={"InstanceType": "t2.nano"})
    with ctx.expect_error("InvalidLaunchTemplateId.NotFound"):
        ctx.call("ec2", "DescribeLaunchTemplateVersions", LaunchTemplateId=MISSING_TEMPLATE)
    with ctx.expect_error("InvalidLaunchTemplateName.NotFoundException"):
        ctx.call("ec2", "DescribeLaunchTemplates", LaunchTemplateNames=[ctx.name("none")])
    with ctx.expect_error("InvalidLaunchTemplateId.VersionNotFound"):
        ctx.call("ec2", "DescribeLaunchTemplateVersions", LaunchTemplateId=template["LaunchTemplateId"],
                 Versions=["42"])


@scenario("ec2", ["RunInstances", "CreateLaunchTemplate"], client="boto3", variant="launch template")
def run_instances_with_launch_template(ctx):
    """RunInstances takes what the call leaves out from the template (the call wins) and tags the
    instance with aws:ec2launchtemplate:id and :version."""
    image_id = launchable_image(ctx)
    template = _template(ctx, ImageId=image_id, InstanceType="t2.nano",
                         TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "from", "Value": "template"}]}])
    ec2 = ctx.call("ec2", "RunInstances", MinCount=1, MaxCount=1, InstanceType="t2.micro",
                   LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"})
    instance = ec2["Instances"][0]
    ctx.defer(terminate_quietly, ctx, [instance["InstanceId"]])
    ctx.check_equal(instance.get("ImageId"), image_id, "ImageId from the template")
    ctx.check_equal(instance.get("InstanceType"), "t2.micro", "the call's InstanceType wins")
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    ctx.check_equal(tags.get("aws:ec2launchtemplate:id"), template["LaunchTemplateId"], "aws:ec2launchtemplate:id")
    ctx.check_equal(tags.get("aws:ec2launchtemplate:version"), "1", "aws:ec2launchtemplate:version")
    ctx.check_equal(tags.get("from"), "template", "the template's instance tag")


@scenario("ec2", ["CreateLaunchTemplate", "DescribeLaunchTemplates"], client="awscli")
def launch_template_cli(ctx):
    """`aws ec2 create-launch-template --launch-template-data` and `describe-launch-templates`."""
    name = ctx.name("lt")
    out = ctx.aws("ec2", "create-launch-template", "--launch-template-name", name,
                  "--launch-template-data", '{"InstanceType":"t2.nano"}')
    tid = out["LaunchTemplate"]["LaunchTemplateId"]
    ctx.defer(ctx.client("ec2", validate=False).delete_launch_template, LaunchTemplateId=tid)
    listed = ctx.aws("ec2", "describe-launch-templates", "--launch-template-names", name)
    ctx.check_equal([t["LaunchTemplateId"] for t in listed["LaunchTemplates"]], [tid], "describe-launch-templates")
