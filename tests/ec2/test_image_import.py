"""Bring your own image: S3 objects handed to EC2 through ``storage.object_files`` (a real object
store: inline, single-blob and multipart objects), RegisterImage with an S3 ImageLocation, and
ImportImage tasks (formats detected and checked, progress, failures, CancelImportTask, recovery
after a crash), with tenants kept apart."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from ec2_api import errors, import_tasks
from ec2_api.image_import import register_image
from ec2_api.images import describe_images
from ec2_api.import_tasks import cancel_import_task, describe_import_image_tasks, import_image
from ec2_api.instances import run_instances
from s3_api import service as s3_service
from s3_api.operations import OPERATIONS as S3_OPS
from storage import object_files
from storage.accounts import Account
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire
from tests.s3.helpers import Body

needs_qemu_img = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is needed")
MiB = 1024 * 1024


class S3:
    def __init__(self, env, state) -> None:
        self.env, self.state = env, state

    def ctx(self, account: str = ALICE) -> SimpleNamespace:
        who = Account(account, f"user-{account}", account * 5 + "abcd", False, 0.0)
        return SimpleNamespace(state=self.state, account=who, region="us-east-1", headers=CIMultiDict(),
                               auth=SimpleNamespace(payload_hash="UNSIGNED-PAYLOAD"), chunk_chain=None,
                               now=self.env.clock, host="", app=self.env.app, operation="", request_id="req")

    async def bucket(self, name: str, account: str = ALICE) -> None:
        await S3_OPS["CreateBucket"](self.ctx(account), {"Bucket": name})

    async def put(self, bucket: str, key: str, data: bytes, account: str = ALICE) -> None:
        await S3_OPS["PutObject"](self.ctx(account), {"Bucket": bucket, "Key": key, "Body": Body(data),
                                                  "ContentLength": len(data)})

    async def put_file(self, bucket: str, key: str, path, account: str = ALICE) -> None:
        with open(path, "rb") as fh:
            await self.put(bucket, key, fh.read(), account)

    async def put_multipart(self, bucket: str, key: str, data: bytes, part: int = 5 * MiB) -> None:
        ctx = self.ctx()
        upload = (await S3_OPS["CreateMultipartUpload"](ctx, {"Bucket": bucket, "Key": key}))["UploadId"]
        parts = []
        for number, start in enumerate(range(0, len(data), part), 1):
            piece = data[start:start + part]
            out = await S3_OPS["UploadPart"](ctx, {"Bucket": bucket, "Key": key, "UploadId": upload,
                                                "PartNumber": number, "Body": Body(piece),
                                                "ContentLength": len(piece)})
            parts.append({"PartNumber": number, "ETag": out["ETag"]})
        await S3_OPS["CompleteMultipartUpload"](ctx, {"Bucket": bucket, "Key": key, "UploadId": upload,
                                                  "MultipartUpload": {"Parts": parts}})


@pytest.fixture
async def s3(env):
    state = await s3_service.open_state(env.app)
    env.app.states = {"s3": state}
    yield S3(env, state)
    await env.state.wait_idle()
    await s3_service.close_state(state)


def make_disk(path, fmt: str, size: str = "8M", *extra: str) -> str:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *extra, str(path), size], check=True)
    return str(path)


async def task_of(env, task_id: str, account: str = ALICE) -> dict:
    out = await describe_import_image_tasks(env.ctx(account), {"ImportTaskIds": [task_id]})
    wire("DescribeImportImageTasks", out)
    return out["ImportImageTasks"][0]


# -- storage.object_files ---------------------------------------------------------------------------

async def test_object_files_hand_over_inline_blob_and_multipart_objects(env, s3, tmp_path):
    """Every way S3 stores an object reads back whole, for the owner only (buckets are private)."""
    await s3.bucket("uploads")
    small, single, multi = b"tiny" * 10, os.urandom(300 * 1024), os.urandom(11 * MiB + 123)
    holes = os.urandom(MiB + 7) + bytes(6 * MiB) + os.urandom(3) + bytes(5 * MiB + 1)   # copied sparse
    await s3.put("uploads", "small", small)
    await s3.put("uploads", "single", single)
    await s3.put_multipart("uploads", "multi", multi)
    await s3.put_multipart("uploads", "holes", holes)
    for key, data in (("small", small), ("single", single), ("multi", multi), ("holes", holes)):
        async with object_files.object_file(s3.state.store, "uploads", key, ALICE, str(tmp_path / "w")) as path:
            with open(path, "rb") as fh:
                assert fh.read() == data
        assert not os.path.exists(path)
        async with object_files.open_object(s3.state.store, "uploads", key, ALICE) as found:
            assert b"".join([c async for c in found.chunks(64 * 1024)]) == data
    with pytest.raises(object_files.ObjectAccessDenied):
        async with object_files.open_object(s3.state.store, "uploads", "single", BOB):
            pass
    with pytest.raises(object_files.NoSuchObject) as caught:
        async with object_files.open_object(s3.state.store, "uploads", "nothing", ALICE):
            pass
    assert caught.value.reason == "NoSuchKey"
    with pytest.raises(object_files.NoSuchObject):
        async with object_files.open_object(s3.state.store, "no-such-bucket", "x", ALICE):
            pass


async def test_an_open_object_survives_an_overwrite(env, s3, tmp_path):
    """The handed-over file is a snapshot: S3 replacing the object meanwhile changes nothing."""
    await s3.bucket("uploads")
    first = os.urandom(200 * 1024)
    await s3.put("uploads", "disk", first)
    async with object_files.object_file(s3.state.store, "uploads", "disk", ALICE, str(tmp_path / "w")) as path:
        await s3.put("uploads", "disk", os.urandom(200 * 1024))
        await s3.state.store.settled()
        with open(path, "rb") as fh:
            assert fh.read() == first


async def test_the_access_decision_is_one_replaceable_call(env, s3, tmp_path, monkeypatch):
    """A future access evaluator swaps ``read_access``; nothing else decides."""
    await s3.bucket("shared")
    await s3.put("shared", "k", b"data")
    monkeypatch.setattr(object_files, "read_access", lambda bucket, version, account: True)
    async with object_files.open_object(s3.state.store, "shared", "k", BOB) as found:
        assert found.data == b"data"


# -- RegisterImage with an S3 ImageLocation ---------------------------------------------------------

@needs_qemu_img
async def test_register_image_from_s3_objects(env, s3, tmp_path):
    await s3.bucket("uploads")
    await s3.put_file("uploads", "disk.vmdk", make_disk(tmp_path / "disk.vmdk", "vmdk"))
    kernel = bytearray(0x400)
    kernel[0x202:0x206] = b"HdrS"
    await s3.put("uploads", "vmlinuz", bytes(kernel))
    await s3.put("uploads", "initrd.gz", b"\x1f\x8b\x08" + b"\0" * 64)
    kernel_id = (await register_image(env.ctx(), {"Name": "kernel-6.1", "ImageLocation": "uploads/vmlinuz"}))["ImageId"]
    ramdisk_id = (await register_image(env.ctx(), {"Name": "initrd-6.1", "ImageLocation": "s3://uploads/initrd.gz"}))["ImageId"]
    assert kernel_id.startswith("aki-") and ramdisk_id.startswith("ari-")
    await env.settle()
    out = await register_image(env.ctx(), {"Name": "my-disk", "ImageLocation": "uploads/disk.vmdk",
                                           "KernelId": kernel_id, "RamdiskId": ramdisk_id})
    wire("RegisterImage", out)
    await env.settle()
    (image,) = (await describe_images(env.ctx(), {"ImageIds": [out["ImageId"]]}))["Images"]
    assert image["State"] == "available" and image["KernelId"] == kernel_id
    launched = await run_instances(env.ctx(), {"ImageId": out["ImageId"], "MinCount": 1, "MaxCount": 1})
    await env.settle()
    spec = await env.spec(launched["Instances"][0]["InstanceId"])
    assert spec.kernel.endswith(f"{kernel_id}/kernel") and spec.initrd.endswith(f"{ramdisk_id}/ramdisk")
    with pytest.raises(errors.EC2Error) as caught:
        await register_image(env.ctx(), {"Name": "missing", "ImageLocation": "uploads/nothing"})
    assert caught.value.code == "InvalidManifest" and "404" in caught.value.message
    with pytest.raises(errors.EC2Error) as caught:     # Bob may not read Alice's upload
        await register_image(env.ctx(BOB), {"Name": "stolen", "ImageLocation": "uploads/disk.vmdk"})
    assert caught.value.code == "InvalidManifest" and "403" in caught.value.message
    # an upload that points at a host file through a backing file is refused
    await s3.put_file("uploads", "sneaky.qcow2", make_disk(tmp_path / "sneaky.qcow2", "qcow2", "8M", "-F", "raw",
                                                           "-b", "/etc/hostname"))
    sneaky_id = (await register_image(env.ctx(), {"Name": "sneaky", "ImageLocation": "uploads/sneaky.qcow2"}))["ImageId"]
    await env.settle()
    (image,) = (await describe_images(env.ctx(), {"ImageIds": [sneaky_id]}))["Images"]
    assert image["State"] == "failed" and "refers to other files" in image["StateReason"]["Message"]
    assert not os.listdir(import_tasks.imports_dir(env.config))


# -- ImportImage ------------------------------------------------------------------------------------

@needs_qemu_img
@pytest.mark.parametrize("fmt,declared", [("qcow2", "QCOW2"), ("vmdk", "VMDK"), ("vpc", "VHD"), ("vdi", "VDI"),
                                          ("vhdx", "VHDX"), ("raw", "RAW"), ("vmdk", None)])
async def test_import_image_converts_each_format(env, s3, tmp_path, fmt, declared):
    await s3.bucket("uploads")
    await s3.put_file("uploads", f"disk.{fmt}", make_disk(tmp_path / f"disk.{fmt}", fmt, "64M"))
    container = {"UserBucket": {"S3Bucket": "uploads", "S3Key": f"disk.{fmt}"}, **({"Format": declared} if declared else {})}
    out = await import_image(env.ctx(), {"DiskContainers": [container], "Description": "mine",
                                         "TagSpecifications": [{"ResourceType": "import-image-task",
                                                                "Tags": [{"Key": "team", "Value": "a"}]}]})
    wire("ImportImage", out)
    assert out["Status"] == "active" and out["StatusMessage"] == "pending" and out["Progress"] == "2"
    assert out["Tags"] == [{"Key": "team", "Value": "a"}]
    await env.settle()
    task = await task_of(env, out["ImportTaskId"])
    assert task["Status"] == "completed" and "StatusMessage" not in task and "Progress" not in task
    detail = task["SnapshotDetails"][0]
    assert detail["Status"] == "completed" and detail["Format"] == (declared or "VMDK")
    assert detail["SnapshotId"].startswith("snap-") and detail["DiskImageSize"] > 0
    (image,) = (await describe_images(env.ctx(), {"ImageIds": [task["ImageId"]]}))["Images"]
    assert image["State"] == "available" and image["Name"] == out["ImportTaskId"]
    assert image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 1
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                      os.path.join(env.config.data_dir, "images", task["ImageId"], "disk.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    expected = 67125248 if fmt == "vpc" else 64 * MiB     # VHD rounds to its CHS geometry
    assert info["format"] == "qcow2" and info["virtual-size"] == expected and "backing-filename" not in info
    assert not os.listdir(import_tasks.imports_dir(env.config))


@needs_qemu_img
async def test_import_of_a_multipart_upload(env, s3, tmp_path):
    await s3.bucket("uploads")
    path = make_disk(tmp_path / "big.raw", "raw", "12M")
    with open(path, "r+b") as fh:
        fh.write(os.urandom(12 * MiB))
    with open(path, "rb") as fh:
        await s3.put_multipart("uploads", "big.raw", fh.read())
    out = await import_image(env.ctx(), {"DiskContainers": [{"Format": "raw", "Url": "s3://uploads/big.raw"}]})
    await env.settle()
    task = await task_of(env, out["ImportTaskId"])
    assert task["Status"] == "completed"
    converted = os.path.join(env.config.data_dir, "images", task["ImageId"], "disk.qcow2")
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", converted, str(back)], check=True)
    assert back.read_bytes() == open(path, "rb").read()


@needs_qemu_img
async def test_bad_uploads_fail_their_task_and_register_nothing(env, s3, tmp_path):
    """VM Import's failures: a declared format the file is not, garbage, a kernel, an unreadable or
    missing object -> status deleted with a ClientError message, and no image."""
    await s3.bucket("uploads")
    await s3.bucket("bobs", BOB)
    await s3.put_file("uploads", "disk.qcow2", make_disk(tmp_path / "d.qcow2", "qcow2"))
    await s3.put("uploads", "garbage.vmdk", os.urandom(64 * 1024))
    truncated = open(make_disk(tmp_path / "t.vmdk", "vmdk", "64M"), "rb").read()[:1024]
    await s3.put("uploads", "truncated.vmdk", truncated)
    await s3.put("uploads", "empty", b"")
    await s3.put("uploads", "vmlinux", b"\x7fELF" + b"\0" * 4096)
    await s3.put_file("bobs", "disk.qcow2", tmp_path / "d.qcow2", account=BOB)
    cases = {
        ("uploads", "disk.qcow2", "VMDK"): "not VMDK as declared",
        ("uploads", "garbage.vmdk", "VMDK"): "Unsupported VMDK File Format",
        ("uploads", "truncated.vmdk", "VMDK"): "Disk validation failed",
        ("uploads", "empty", None): "empty",
        ("uploads", "vmlinux", None): "kernel",
        ("bobs", "disk.qcow2", None): import_tasks.NO_ACCESS,
        ("uploads", "missing.qcow2", None): import_tasks.NO_OBJECT,
    }
    started = {}
    for (bucket, key, fmt), expected in cases.items():
        container = {"UserBucket": {"S3Bucket": bucket, "S3Key": key}, **({"Format": fmt} if fmt else {})}
        started[(bucket, key, fmt)] = (await import_image(env.ctx(), {"DiskContainers": [container]}))["ImportTaskId"]
    await env.settle()
    for case, expected in cases.items():
        task = await task_of(env, started[case])
        assert task["Status"] == "deleted", case
        assert task["StatusMessage"].startswith("ClientError: ") and expected in task["StatusMessage"], task
        assert "ImageId" not in task
    assert (await describe_images(env.ctx(), {"Owners": ["self"]}))["Images"] == []
    assert not os.listdir(import_tasks.imports_dir(env.config))
    assert not os.path.isdir(os.path.join(env.config.data_dir, "images")) or \
        not os.listdir(os.path.join(env.config.data_dir, "images"))


async def test_import_image_request_errors(env, s3):
    cases = [
        ({}, "MissingParameter"),
        ({"DiskContainers": [{"Format": "ISO", "Url": "s3://b/k"}]}, "InvalidParameter"),
        ({"DiskContainers": [{"Format": "RAW"}]}, "MissingParameter"),
        ({"DiskContainers": [{"Url": "s3://b/k"}, {"Url": "s3://b/k2"}]}, "InvalidParameter"),
        ({"DiskContainers": [{"Url": "s3://b/k"}], "Architecture": "arm64"}, "InvalidParameter"),
        ({"DiskContainers": [{"Url": "s3://b/k"}], "Encrypted": True}, "InvalidParameter"),
        ({"DiskContainers": [{"Url": "s3://b/k"}], "TagSpecifications": [
            {"ResourceType": "image", "Tags": [{"Key": "a", "Value": "b"}]}]}, "InvalidParameterValue"),
        ({"DiskContainers": [{"Url": "s3://b/k"}], "DryRun": True}, "DryRunOperation"),
    ]
    for params, code in cases:
        with pytest.raises(errors.EC2Error) as caught:
            await import_image(env.ctx(), params)
        assert caught.value.code == code, params
    assert (await describe_import_image_tasks(env.ctx(), {}))["ImportImageTasks"] == []
    with pytest.raises(errors.EC2Error) as caught:
        await describe_import_image_tasks(env.ctx(), {"ImportTaskIds": ["import-ami-0123456789abcdef0"]})
    assert caught.value.code == "InvalidConversionTaskId"
    with pytest.raises(errors.EC2Error) as caught:
        await describe_import_image_tasks(env.ctx(), {"ImportTaskIds": ["bogus"]})
    assert caught.value.code == "InvalidConversionTaskId.Malformed"


@needs_qemu_img
async def test_client_token_and_tenants_see_their_own_tasks(env, s3, tmp_path):
    await s3.bucket("uploads")
    await s3.put_file("uploads", "d.qcow2", make_disk(tmp_path / "d.qcow2", "qcow2"))
    params = {"ClientToken": "tok-1", "DiskContainers": [{"Url": "s3://uploads/d.qcow2"}]}
    first = await import_image(env.ctx(), params)
    again = await import_image(env.ctx(), params)
    assert first["ImportTaskId"] == again["ImportTaskId"]
    await env.settle()
    assert (await describe_import_image_tasks(env.ctx(BOB), {}))["ImportImageTasks"] == []
    with pytest.raises(errors.EC2Error) as caught:
        await describe_import_image_tasks(env.ctx(BOB), {"ImportTaskIds": [first["ImportTaskId"]]})
    assert caught.value.code == "InvalidConversionTaskId"
    with pytest.raises(errors.EC2Error) as caught:
        await cancel_import_task(env.ctx(BOB), {"ImportTaskId": first["ImportTaskId"]})
    assert caught.value.code == "InvalidConversionTaskId"
    done = await describe_import_image_tasks(env.ctx(), {"Filters": [{"Name": "task-state", "Values": ["completed"]}]})
    assert [t["ImportTaskId"] for t in done["ImportImageTasks"]] == [first["ImportTaskId"]]


@needs_qemu_img
async def test_cancel_import_task_stops_the_work(env, s3, tmp_path, monkeypatch):
    await s3.bucket("uploads")
    await s3.put_file("uploads", "d.qcow2", make_disk(tmp_path / "d.qcow2", "qcow2"))
    gate = asyncio.Event()
    real_inspect = import_tasks.disk_conversion.inspect_disk

    async def slow_inspect(*args, **kwargs):
        await gate.wait()
        return await real_inspect(*args, **kwargs)
    monkeypatch.setattr(import_tasks.disk_conversion, "inspect_disk", slow_inspect)
    out = await import_image(env.ctx(), {"DiskContainers": [{"Url": "s3://uploads/d.qcow2"}]})
    for _ in range(100):
        if (await task_of(env, out["ImportTaskId"]))["StatusMessage"] == "validating":
            break
        await asyncio.sleep(0.01)
    cancelled = await cancel_import_task(env.ctx(), {"ImportTaskId": out["ImportTaskId"], "CancelReason": "oops"})
    wire("CancelImportTask", cancelled)
    assert cancelled == {"ImportTaskId": out["ImportTaskId"], "PreviousState": "active", "State": "deleting"}
    assert (await task_of(env, out["ImportTaskId"]))["Status"] == "deleting"
    gate.set()
    await env.settle()
    task = await task_of(env, out["ImportTaskId"])
    assert task["Status"] == "deleted" and task["StatusMessage"] == "oops" and "ImageId" not in task
    with pytest.raises(errors.EC2Error) as caught:
        await cancel_import_task(env.ctx(), {"ImportTaskId": out["ImportTaskId"]})
    assert caught.value.code == "IncorrectState"
    assert (await describe_images(env.ctx(), {"Owners": ["self"]}))["Images"] == []
    assert not os.listdir(import_tasks.imports_dir(env.config))


async def test_recovery_settles_what_a_crash_left(env, s3):
    """A task whose worker died: deleted with a ServerError (its work folder and unfinished image
    folder removed); a task whose image row was written: completed."""
    db, config = env.db, env.config
    dead = f"{socket.gethostname()}:999999:0"
    for task_id, target, write_row in (("import-ami-00000000000000001", "ami-00000000000000001", False),
                                       ("import-ami-00000000000000002", "ami-00000000000000002", True)):
        data = {"runner": dead, "target_id": target, "snapshot_details": [{"Status": "active"}],
                "source": {"bucket": "b", "key": "k", "declared": None}}
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO ec2_import_tasks (task_id, account_id, region, status, status_message,"
                             " progress, created_us, data) VALUES (?, ?, 'us-east-1', 'active', 'converting', '40',"
                             " 0, ?)", (task_id, ALICE, json.dumps(data)))
        os.makedirs(os.path.join(import_tasks.imports_dir(config, task_id)))
        os.makedirs(os.path.join(config.data_dir, "images", target))
        if write_row:
            from ec2_api.images import insert_image
            await insert_image(db, image_id=target, account_id=ALICE, region="us-east-1", name=task_id,
                               state="available", created_us=0)
    # an operator's import killed between moving its disk in and writing the row; and one that got its row
    for image_id, write_row in (("ami-00000000000000003", False), ("ami-00000000000000004", True)):
        folder = os.path.join(config.data_dir, "images", image_id)
        os.makedirs(folder)
        with open(os.path.join(folder, import_tasks.PUBLISHING), "w") as fh:
            fh.write(dead)
        if write_row:
            from ec2_api.images import insert_image
            await insert_image(db, image_id=image_id, account_id=ALICE, region="us-east-1", name="cli", state="available",
                               created_us=0)
    counts = await import_tasks.recover(db, config)
    assert counts["completed"] == 1 and counts["deleted"] == 1 and counts["folders"] == 3
    assert not os.path.exists(os.path.join(config.data_dir, "images", "ami-00000000000000003"))
    assert os.listdir(os.path.join(config.data_dir, "images", "ami-00000000000000004")) == []
    lost = await task_of(env, "import-ami-00000000000000001")
    assert lost["Status"] == "deleted" and lost["StatusMessage"].startswith("ServerError:")
    assert not os.path.exists(os.path.join(config.data_dir, "images", "ami-00000000000000001"))
    kept = await task_of(env, "import-ami-00000000000000002")
    assert kept["Status"] == "completed" and kept["ImageId"] == "ami-00000000000000002"
    assert os.listdir(import_tasks.imports_dir(config)) == []


def test_disk_container_urls():
    """s3://, path-style and virtual-hosted-style https URLs all name a bucket and key."""
    cases = {"s3://b/dir/x.vmdk": ("b", "dir/x.vmdk"), "https://s3.us-east-1.amazonaws.com/b/k": ("b", "k"),
             "https://b.s3.us-east-1.amazonaws.com/k/x": ("b", "k/x"), "http://127.0.0.1:8773/b/k": ("b", "k")}
    for url, expected in cases.items():
        assert import_tasks.split_location(url) == expected
    for bad in ("s3://only-bucket", "", "https://host/"):
        with pytest.raises(errors.EC2Error):
            import_tasks.split_location(bad)


@needs_qemu_img
async def test_import_of_an_ova(env, s3, tmp_path):
    """An OVA (a tar of the .ovf descriptor and its VMDK) imports its disk, declared or detected."""
    import tarfile
    disk = make_disk(tmp_path / "disk1.vmdk", "vmdk", "32M")
    (tmp_path / "vm.ovf").write_text("<Envelope/>")
    ova = tmp_path / "vm.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        archive.add(tmp_path / "vm.ovf", arcname="vm.ovf")
        archive.add(disk, arcname="vm-disk1.vmdk")
    await s3.bucket("uploads")
    await s3.put_file("uploads", "vm.ova", ova)
    declared = await import_image(env.ctx(), {"DiskContainers": [{"Format": "OVA", "Url": "s3://uploads/vm.ova"}]})
    detected = await import_image(env.ctx(), {"DiskContainers": [{"Url": "s3://uploads/vm.ova"}]})
    await env.settle()
    for out in (declared, detected):
        task = await task_of(env, out["ImportTaskId"])
        assert task["Status"] == "completed", task
        assert task["SnapshotDetails"][0]["Format"] == "OVA"
    with tarfile.open(tmp_path / "novmdk.ova", "w", format=tarfile.USTAR_FORMAT) as archive:
        archive.add(tmp_path / "vm.ovf", arcname="vm.ovf")
    await s3.put_file("uploads", "novmdk.ova", tmp_path / "novmdk.ova")
    out = await import_image(env.ctx(), {"DiskContainers": [{"Format": "OVA", "Url": "s3://uploads/novmdk.ova"}]})
    await env.settle()
    task = await task_of(env, out["ImportTaskId"])
    assert task["Status"] == "deleted" and "no VMDK" in task["StatusMessage"]


async def test_recovery_fails_a_register_image_build_a_crash_stopped(env, s3):
    from ec2_api.images import insert_image
    dead = f"{socket.gethostname()}:999999:0"
    await insert_image(env.db, image_id="ami-00000000000000009", account_id=ALICE, region="us-east-1",
                       name="stuck", state="pending", created_us=0, data={"runner": dead})
    await insert_image(env.db, image_id="ami-00000000000000008", account_id=ALICE, region="us-east-1",
                       name="building", state="pending", created_us=0, data={"runner": import_tasks.RUNNER})
    os.makedirs(os.path.join(env.config.data_dir, "images", "ami-00000000000000009"))
    counts = await import_tasks.recover(env.db, env.config)
    assert counts["images"] == 1
    states = {i["ImageId"]: i["State"] for i in (await describe_images(env.ctx(), {"Owners": ["self"]}))["Images"]}
    assert states == {"ami-00000000000000009": "failed", "ami-00000000000000008": "pending"}
    assert not os.path.exists(os.path.join(env.config.data_dir, "images", "ami-00000000000000009"))
