"""ImportSnapshot end to end, as a new user would: a qcow2 made with qemu-img is uploaded to S3,
imported with aws-cli's ``import-snapshot``, followed with DescribeImportSnapshotTasks, and the
snapshot becomes a volume (``create-volume --snapshot-id``, its size the disk's rounded up) and an
AMI (RegisterImage with a BlockDeviceMapping) that launches; another tenant can neither import
from the bucket nor see the task; a server killed with SIGKILL mid-import leaves no snapshot and no
file behind after its next start. Against a live ``nimbo serve --backend fake``."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer
from tests.e2e.test_byoi_e2e import Cloud, qemu_img_create

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is needed")
TENANT = "tenant-impsnap"


def wait_snapshot_task(ec2, task_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (task,) = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task_id])["ImportSnapshotTasks"]
        if task["SnapshotTaskDetail"]["Status"] in ("completed", "deleted"):
            return task
        time.sleep(0.2)
    raise AssertionError(f"import task {task_id} did not finish: {task}")


@pytest.fixture(scope="module")
def cloud():
    data_dir = tempfile.mkdtemp(prefix="nimbo-e2e-impsnap-", dir="/tmp")
    work = tempfile.mkdtemp(prefix="nimbo-e2e-impsnap-work-", dir="/tmp")
    server = NimboServer(data_dir, extra_args=["--backend", "fake"])
    server.start()
    server.nimbo("admin", "--data-dir", data_dir, "create-account", TENANT)
    yield Cloud(server, work)
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_import_snapshot_with_aws_cli_then_volume_and_image(cloud):
    assert cloud.aws("s3", "mb", "s3://impsnap-uploads").returncode == 0
    disk = qemu_img_create(os.path.join(cloud.work, "disk.qcow2"), "qcow2", "1025M")   # 1 GiB + 1 MiB
    assert cloud.aws("s3", "cp", disk, "s3://impsnap-uploads/disks/disk.qcow2").returncode == 0
    container = json.dumps({"Description": "cli disk", "Format": "qcow2",
                            "UserBucket": {"S3Bucket": "impsnap-uploads", "S3Key": "disks/disk.qcow2"}})
    out = cloud.aws_json("ec2", "import-snapshot", "--description", "from the cli", "--disk-container", container,
                         "--tag-specifications", "ResourceType=import-snapshot-task,Tags=[{Key=team,Value=a}]")
    task_id = out["ImportTaskId"]
    assert task_id.startswith("import-snap-") and out["SnapshotTaskDetail"]["Status"] == "active"
    ec2 = cloud.client("ec2")
    task = wait_snapshot_task(ec2, task_id)
    detail = task["SnapshotTaskDetail"]
    assert detail["Status"] == "completed" and detail["Format"] == "QCOW2", task
    assert task["Description"] == "from the cli" and task["Tags"] == [{"Key": "team", "Value": "a"}]
    listed = cloud.aws_json("ec2", "describe-import-snapshot-tasks", "--filters", "Name=task-state,Values=completed")
    assert [t["ImportTaskId"] for t in listed["ImportSnapshotTasks"]] == [task_id]
    snapshot_id = detail["SnapshotId"]
    (snap,) = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snap["State"] == "completed" and snap["VolumeSize"] == 2 and snap["VolumeId"] == "vol-ffffffff"
    volume = cloud.aws_json("ec2", "create-volume", "--snapshot-id", snapshot_id, "--availability-zone", "us-east-1a")
    assert volume["Size"] == 2 and volume["SnapshotId"] == snapshot_id
    cloud.aws_json("ec2", "wait", "volume-available", "--volume-ids", volume["VolumeId"])
    image_id = ec2.register_image(Name="from-imported-snapshot", RootDeviceName="/dev/xvda",
                                  BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                                        "Ebs": {"SnapshotId": snapshot_id}}])["ImageId"]
    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["State"] == "available" and image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snapshot_id
    assert image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 2
    run = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    instance_id = run["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 0.5, "MaxAttempts": 40})
    ec2.terminate_instances(InstanceIds=[instance_id])
    # a corrupt upload: a deleted task with a clear message, no snapshot
    cloud.client("s3").put_object(Bucket="impsnap-uploads", Key="junk.vmdk", Body=os.urandom(100_000))
    bad = ec2.import_snapshot(DiskContainer={"Format": "VMDK", "Url": "s3://impsnap-uploads/junk.vmdk"})
    detail = wait_snapshot_task(ec2, bad["ImportTaskId"])["SnapshotTaskDetail"]
    assert detail["Status"] == "deleted" and detail["StatusMessage"] == \
        "ClientError: Disk validation failed [Unsupported VMDK File Format]" and "SnapshotId" not in detail
    owned = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert snapshot_id in owned and len([s for s in owned if s != snapshot_id]) == 0


def test_another_tenant_cannot_import_from_the_bucket_nor_see_the_task(cloud):
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="impsnap-private")
    path = qemu_img_create(os.path.join(cloud.work, "private.qcow2"), "qcow2", "16M")
    s3.upload_file(path, "impsnap-private", "private.qcow2")
    tenant = cloud.client("ec2", TENANT)
    out = tenant.import_snapshot(DiskContainer={"Url": "s3://impsnap-private/private.qcow2"})
    detail = wait_snapshot_task(tenant, out["ImportTaskId"])["SnapshotTaskDetail"]
    assert detail["Status"] == "deleted" and "403 Forbidden" in detail["StatusMessage"] and "SnapshotId" not in detail
    assert tenant.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    owner = cloud.client("ec2")
    mine = owner.import_snapshot(DiskContainer={"Url": "s3://impsnap-private/private.qcow2"})["ImportTaskId"]
    assert wait_snapshot_task(owner, mine)["SnapshotTaskDetail"]["Status"] == "completed"
    assert mine not in [t["ImportTaskId"] for t in tenant.describe_import_snapshot_tasks()["ImportSnapshotTasks"]]
    for call in (lambda: tenant.describe_import_snapshot_tasks(ImportTaskIds=[mine]),
                 lambda: tenant.cancel_import_task(ImportTaskId=mine)):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "InvalidConversionTaskId"


def test_kill_9_during_a_snapshot_import_leaves_nothing_behind(tmp_path):
    data_dir = str(tmp_path / "data")
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    real = shutil.which("qemu-img")
    (wrapper_dir / "qemu-img").write_text(f'#!/bin/sh\nif [ "$1" = convert ]; then sleep 30; fi\nexec {real} "$@"\n')
    (wrapper_dir / "qemu-img").chmod(0o755)
    server = NimboServer(data_dir, extra_args=["--backend", "fake"])
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{wrapper_dir}:{path}"
    try:
        server.start()
    finally:
        os.environ["PATH"] = path
    try:
        s3, ec2 = server.client("s3"), server.client("ec2")
        s3.create_bucket(Bucket="crash")
        s3.upload_file(qemu_img_create(str(tmp_path / "d.qcow2"), "qcow2", "64M"), "crash", "d.qcow2")
        task_id = ec2.import_snapshot(DiskContainer={"Url": "s3://crash/d.qcow2"})["ImportTaskId"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (task,) = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task_id])["ImportSnapshotTasks"]
            if task["SnapshotTaskDetail"].get("StatusMessage") == "converting":
                break
            time.sleep(0.1)
        assert task["SnapshotTaskDetail"].get("StatusMessage") == "converting", task
        server.stop(signal.SIGKILL)
        os.unlink(os.path.join(data_dir, "endpoint"))
        time.sleep(0.3)
        server.start()
        ec2 = server.client("ec2")
        (task,) = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task_id])["ImportSnapshotTasks"]
        detail = task["SnapshotTaskDetail"]
        assert detail["Status"] == "deleted" and detail["StatusMessage"].startswith("ServerError:")
        assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
        assert os.listdir(os.path.join(data_dir, "imports")) == []
        snaps = os.path.join(data_dir, "snapshots")
        assert not os.path.isdir(snaps) or os.listdir(snaps) == []
    finally:
        server.stop(signal.SIGKILL)
