"""A real VM booting an image imported from S3: a raw disk with a known first sector is converted
to VMDK with qemu-img, uploaded to S3 and imported with ImportImage; the tiny image's kernel and
initrd are registered from S3 with RegisterImage (aki/ari); the instance boots on the QEMU driver
with the imported disk as its root volume, and its user data reads the disk's first bytes back
onto the console."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time

import pytest

from tests.vm.test_real_vm import INSTANCE_TYPE, TINY_IMAGE_CACHE, WAIT, console_until, vm_cloud  # noqa: F401

pytestmark = pytest.mark.vm
SIGNATURE = b"NIMBO-IMPORTED-DISK-OK"
READ_BACK = f"#!/bin/sh\necho \"disk says: $(head -c {len(SIGNATURE)} /dev/vda)\"\n"


def test_boot_an_image_imported_from_s3(vm_cloud):
    import boto3   # noqa: PLC0415
    from backend.tiny_image import build_tiny_image   # noqa: PLC0415
    artifacts = build_tiny_image(TINY_IMAGE_CACHE)
    env = vm_cloud.server.credentials()
    s3 = boto3.client("s3", endpoint_url=vm_cloud.server.endpoint, region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    ec2 = vm_cloud.client()
    work = tempfile.mkdtemp(prefix="nimbo-vm-import-", dir="/tmp")
    raw, vmdk = os.path.join(work, "disk.raw"), os.path.join(work, "disk.vmdk")
    with open(raw, "wb") as fh:
        fh.write(SIGNATURE + b"\n")
        fh.truncate(64 * 1024 * 1024)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", raw, vmdk], check=True)
    s3.create_bucket(Bucket="vm-imports")
    s3.upload_file(vmdk, "vm-imports", "disk.vmdk")
    s3.upload_file(artifacts["kernel"], "vm-imports", "vmlinux")
    s3.upload_file(artifacts["initrd"], "vm-imports", "initrd.img")

    started = time.monotonic()
    task_id = ec2.import_image(DiskContainers=[{"Format": "VMDK", "UserBucket": {
        "S3Bucket": "vm-imports", "S3Key": "disk.vmdk"}}])["ImportTaskId"]
    while True:
        (task,) = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"]
        if task["Status"] != "active":
            break
        assert time.monotonic() - started < 120, task
        time.sleep(0.2)
    assert task["Status"] == "completed", task
    print(f"\nImportImage of a 64 MiB VMDK: {time.monotonic() - started:.2f}s")
    kernel = ec2.register_image(Name="tiny-kernel", ImageLocation="vm-imports/vmlinux")["ImageId"]
    ramdisk = ec2.register_image(Name="tiny-initrd", ImageLocation="vm-imports/initrd.img")["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[kernel, ramdisk], WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})

    out = ec2.run_instances(ImageId=task["ImageId"], KernelId=kernel, RamdiskId=ramdisk, MinCount=1, MaxCount=1,
                            InstanceType=INSTANCE_TYPE, UserData=READ_BACK)
    instance_id = out["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    text = console_until(ec2, instance_id, f"disk says: {SIGNATURE.decode()}")
    assert f"nimbo-init: instance-id {instance_id}" in text
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
