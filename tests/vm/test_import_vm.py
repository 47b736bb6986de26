"""Real VMs booting images imported from S3: a raw disk with a known first sector is converted to
VMDK and to qcow2 with qemu-img, both uploaded to S3 and imported with ImportImage; the tiny
image's kernel and initrd are registered from S3 with RegisterImage (aki/ari); one instance of each
image boots on the QEMU driver (side by side) with the imported disk as its root volume, and its
user data reads the disk's first bytes back onto the console."""
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
    raw = os.path.join(work, "disk.raw")
    with open(raw, "wb") as fh:
        fh.write(SIGNATURE + b"\n")
        fh.truncate(64 * 1024 * 1024)
    s3.create_bucket(Bucket="vm-imports")
    for fmt in ("vmdk", "qcow2"):
        converted = os.path.join(work, f"disk.{fmt}")
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, raw, converted], check=True)
        s3.upload_file(converted, "vm-imports", f"disk.{fmt}")
    s3.upload_file(artifacts["kernel"], "vm-imports", "vmlinux")
    s3.upload_file(artifacts["initrd"], "vm-imports", "initrd.img")

    images = {}
    for fmt in ("vmdk", "qcow2"):
        started = time.monotonic()
        task_id = ec2.import_image(DiskContainers=[{"Format": fmt.upper(), "UserBucket": {
            "S3Bucket": "vm-imports", "S3Key": f"disk.{fmt}"}}])["ImportTaskId"]
        while True:
            (task,) = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"]
            if task["Status"] != "active":
                break
            assert time.monotonic() - started < 120, task
            time.sleep(0.2)
        assert task["Status"] == "completed", task
        print(f"\nImportImage of a 64 MiB {fmt}: {time.monotonic() - started:.2f}s")
        images[fmt] = task["ImageId"]
    kernel = ec2.register_image(Name="tiny-kernel", ImageLocation="vm-imports/vmlinux")["ImageId"]
    ramdisk = ec2.register_image(Name="tiny-initrd", ImageLocation="vm-imports/initrd.img")["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[kernel, ramdisk], WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})

    launched = []
    for image_id in images.values():
        out = ec2.run_instances(ImageId=image_id, KernelId=kernel, RamdiskId=ramdisk, MinCount=1, MaxCount=1,
                                InstanceType=INSTANCE_TYPE, UserData=READ_BACK)
        launched.append(out["Instances"][0]["InstanceId"])
    ec2.get_waiter("instance_running").wait(InstanceIds=launched, WaiterConfig=WAIT)
    for instance_id in launched:
        text = console_until(ec2, instance_id, f"disk says: {SIGNATURE.decode()}")
        assert f"nimbo-init: instance-id {instance_id}" in text
    ec2.terminate_instances(InstanceIds=launched)
    ec2.get_waiter("instance_terminated").wait(InstanceIds=launched, WaiterConfig=WAIT)
