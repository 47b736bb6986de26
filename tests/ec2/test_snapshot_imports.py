"""ImportSnapshot, DescribeImportSnapshotTasks and CancelImportTask on snapshot tasks: a disk image
in S3 becomes a completed EBS snapshot of the account (VolumeSize in GiB rounded up, stored bytes
billed as EBS:SnapshotUsage) that CreateVolume and RegisterImage use; bad uploads end ``deleted``
with a ClientError and no snapshot; tenants are kept apart; a crash leaves nothing half-made."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess

import pytest

from ec2_api import errors, import_tasks, snapshot_imports
from ec2_api.image_snapshots import register_image
from ec2_api.images import deregister_image, describe_images
from ec2_api.import_tasks import cancel_import_task
from ec2_api.snapshot_imports import describe_import_snapshot_tasks, import_snapshot
from ec2_api.snapshots import delete_snapshot, describe_snapshots
from ec2_api.volumes import create_volume, describe_volumes
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire
from tests.ec2.test_image_import import MiB, make_disk, needs_qemu_img, s3  # noqa: F401 (s3 is a fixture)
from tests.ec2.test_snapshots import volume_path

GiB = 1024 * MiB


async def task_of(env, task_id: str, account: str = ALICE) -> dict:
    out = await describe_import_snapshot_tasks(env.ctx(account), {"ImportTaskIds": [task_id]})
    wire("DescribeImportSnapshotTasks", out)
    return out["ImportSnapshotTasks"][0]


def snapshot_files_on_disk(env) -> list[str]:
    folder = os.path.join(env.config.data_dir, "snapshots")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@needs_qemu_img
async def test_import_snapshot_life_cycle(env, s3, tmp_path):
    """A qcow2 of 1 GiB + 1 byte (virtual) imports to a completed 2 GiB snapshot holding the same
    bytes; CreateVolume and RegisterImage use it; its stored bytes are billed."""
    await s3.bucket("uploads")
    raw = tmp_path / "d.raw"
    with open(raw, "wb") as fh:
        fh.truncate(GiB + 512)
        fh.seek(3 * MiB)
        fh.write(b"nimbo-import" * 1000)
    disk = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], check=True)
    await s3.put_file("uploads", "d.qcow2", disk)
    out = await import_snapshot(env.ctx(), {
        "DiskContainer": {"Format": "qcow2", "UserBucket": {"S3Bucket": "uploads", "S3Key": "d.qcow2"},
                          "Description": "disk one"},
        "Description": "my import", "RoleName": "vmimport",
        "TagSpecifications": [{"ResourceType": "import-snapshot-task", "Tags": [{"Key": "team", "Value": "a"}]}]})
    wire("ImportSnapshot", out)
    assert out["ImportTaskId"].startswith("import-snap-") and out["Description"] == "my import"
    assert out["SnapshotTaskDetail"]["Status"] == "active" and out["SnapshotTaskDetail"]["StatusMessage"] == "pending"
    assert out["Tags"] == [{"Key": "team", "Value": "a"}]
    await env.settle()
    task = await task_of(env, out["ImportTaskId"])
    detail = task["SnapshotTaskDetail"]
    assert detail["Status"] == "completed" and "Progress" not in detail, detail
    assert detail["Format"] == "QCOW2" and detail["DiskImageSize"] == os.path.getsize(disk)
    assert detail["UserBucket"] == {"S3Bucket": "uploads", "S3Key": "d.qcow2"} and detail["Description"] == "disk one"
    snapshot_id = detail["SnapshotId"]
    (snap,) = (await describe_snapshots(env.ctx(), {"SnapshotIds": [snapshot_id]}))["Snapshots"]
    assert snap["State"] == "completed" and snap["OwnerId"] == ALICE and snap["VolumeSize"] == 2
    assert snap["VolumeId"] == "vol-ffffffff" and snap["Progress"] == "100%"
    # billed like every snapshot: its stored bytes, written with the row
    stored = await env.db.fetchone("SELECT quantity, service FROM usage_events WHERE resource_id = ? AND"
                                   " kind = 'stored_bytes'", (snapshot_id,))
    assert stored is not None and 0 < stored["quantity"] < 16 * MiB      # sparse: only what is written
    # CreateVolume from it: its size, its bytes
    volume = await create_volume(env.ctx(), {"AvailabilityZone": "us-east-1a", "SnapshotId": snapshot_id})
    await env.settle()
    (described,) = (await describe_volumes(env.ctx(), {"VolumeIds": [volume["VolumeId"]]}))["Volumes"]
    assert described["Size"] == 2 and described["SnapshotId"] == snapshot_id
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", volume_path(env, volume["VolumeId"]), str(back)], check=True)
    with open(back, "rb") as fh:
        fh.seek(3 * MiB)
        assert fh.read(12 * 1000) == b"nimbo-import" * 1000
    # RegisterImage from it
    image = await register_image(env.ctx(), {"Name": "from-import", "RootDeviceName": "/dev/xvda",
                                             "BlockDeviceMappings": [{"DeviceName": "/dev/xvda",
                                                                      "Ebs": {"SnapshotId": snapshot_id}}]})
    (ami,) = (await describe_images(env.ctx(), {"ImageIds": [image["ImageId"]]}))["Images"]
    assert ami["State"] == "available"
    assert ami["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snapshot_id
    assert not os.listdir(import_tasks.imports_dir(env.config))
    # a snapshot like the others: in use by its image, deletable after; billing ends with it
    with pytest.raises(errors.EC2Error) as caught:
        await delete_snapshot(env.ctx(), {"SnapshotId": snapshot_id})
    assert caught.value.code == "InvalidSnapshot.InUse"
    await deregister_image(env.ctx(), {"ImageId": image["ImageId"]})
    await delete_snapshot(env.ctx(), {"SnapshotId": snapshot_id})
    total = await env.db.fetchone("SELECT SUM(quantity) AS q FROM usage_events WHERE resource_id = ? AND"
                                  " kind = 'stored_bytes'", (snapshot_id,))
    assert total["q"] == 0
    assert (await describe_snapshots(env.ctx(), {"OwnerIds": ["self"]}))["Snapshots"] == []
    assert os.path.exists(snapshot_imports._snapshot_path(env.config, snapshot_id))   # the volume still builds on it


@needs_qemu_img
@pytest.mark.parametrize("fmt,declared", [("vmdk", "VMDK"), ("vpc", "VHD"), ("vhdx", "VHDX"), ("raw", "RAW")])
async def test_import_snapshot_formats(env, s3, tmp_path, fmt, declared):
    await s3.bucket("uploads")
    await s3.put_file("uploads", f"d.{fmt}", make_disk(tmp_path / f"d.{fmt}", fmt, "64M"))
    out = await import_snapshot(env.ctx(), {"DiskContainer": {"Format": declared, "Url": f"s3://uploads/d.{fmt}"}})
    await env.settle()
    detail = (await task_of(env, out["ImportTaskId"]))["SnapshotTaskDetail"]
    assert detail["Status"] == "completed" and detail["Format"] == declared and detail["Url"] == f"s3://uploads/d.{fmt}"
    (snap,) = (await describe_snapshots(env.ctx(), {"SnapshotIds": [detail["SnapshotId"]]}))["Snapshots"]
    assert snap["VolumeSize"] == 1


@needs_qemu_img
async def test_bad_uploads_end_deleted_without_a_snapshot(env, s3, tmp_path):
    await s3.bucket("uploads")
    await s3.bucket("bobs", BOB)
    await s3.put_file("uploads", "d.qcow2", make_disk(tmp_path / "d.qcow2", "qcow2"))
    await s3.put("uploads", "garbage.vmdk", os.urandom(64 * 1024))
    await s3.put("uploads", "vmlinux", b"\x7fELF" + b"\0" * 4096)
    await s3.put_file("bobs", "d.qcow2", tmp_path / "d.qcow2", account=BOB)
    cases = {
        ("uploads", "d.qcow2", "VMDK"): "not VMDK as declared",
        ("uploads", "garbage.vmdk", "VMDK"): "Unsupported VMDK File Format",
        ("uploads", "vmlinux", None): "kernel",
        ("bobs", "d.qcow2", None): import_tasks.NO_ACCESS,          # Alice may not read Bob's bucket
        ("uploads", "missing.qcow2", None): import_tasks.NO_OBJECT,
    }
    started = {}
    for (bucket, key, fmt), _ in cases.items():
        container = {"UserBucket": {"S3Bucket": bucket, "S3Key": key}, **({"Format": fmt} if fmt else {})}
        started[(bucket, key, fmt)] = (await import_snapshot(env.ctx(), {"DiskContainer": container}))["ImportTaskId"]
    await env.settle()
    for case, expected in cases.items():
        task = await task_of(env, started[case])
        detail = task["SnapshotTaskDetail"]
        assert detail["Status"] == "deleted", case
        assert detail["StatusMessage"].startswith("ClientError: ") and expected in detail["StatusMessage"], detail
        assert "SnapshotId" not in detail
    assert (await describe_snapshots(env.ctx(), {"OwnerIds": ["self"]}))["Snapshots"] == []
    assert snapshot_files_on_disk(env) == []
    assert not os.listdir(import_tasks.imports_dir(env.config))


async def test_import_snapshot_request_errors(env, s3):
    cases = [
        ({}, "MissingParameter"),
        ({"DiskContainer": {"Format": "ISO", "Url": "s3://b/k"}}, "InvalidParameter"),
        ({"DiskContainer": {"Format": "RAW"}}, "MissingParameter"),
        ({"DiskContainer": {"UserBucket": {"S3Bucket": "b"}}}, "MissingParameter"),
        ({"DiskContainer": {"Url": "s3://only-bucket"}}, "InvalidParameter"),
        ({"DiskContainer": {"Url": "s3://b/k"}, "Encrypted": True}, "InvalidParameter"),
        ({"DiskContainer": {"Url": "s3://b/k"}, "TagSpecifications": [
            {"ResourceType": "snapshot", "Tags": [{"Key": "a", "Value": "b"}]}]}, "InvalidParameterValue"),
        ({"DiskContainer": {"Url": "s3://b/k"}, "DryRun": True}, "DryRunOperation"),
    ]
    for params, code in cases:
        with pytest.raises(errors.EC2Error) as caught:
            await import_snapshot(env.ctx(), params)
        assert caught.value.code == code, params
    assert (await describe_import_snapshot_tasks(env.ctx(), {}))["ImportSnapshotTasks"] == []
    for ids, code in ((["import-snap-0123456789abcdef0"], "InvalidConversionTaskId"),
                      (["import-ami-0123456789abcdef0"], "InvalidConversionTaskId.Malformed"),
                      (["bogus"], "InvalidConversionTaskId.Malformed")):
        with pytest.raises(errors.EC2Error) as caught:
            await describe_import_snapshot_tasks(env.ctx(), {"ImportTaskIds": ids})
        assert caught.value.code == code
    with pytest.raises(errors.EC2Error) as caught:
        await describe_import_snapshot_tasks(env.ctx(), {"MaxResults": 0})
    assert caught.value.code == "InvalidParameterValue"


@needs_qemu_img
async def test_tenants_filters_pagination_and_client_token(env, s3, tmp_path):
    await s3.bucket("uploads")
    await s3.put_file("uploads", "d.qcow2", make_disk(tmp_path / "d.qcow2", "qcow2"))
    params = {"ClientToken": "tok-1", "DiskContainer": {"Url": "s3://uploads/d.qcow2"}}
    first = await import_snapshot(env.ctx(), params)
    assert (await import_snapshot(env.ctx(), params))["ImportTaskId"] == first["ImportTaskId"]
    failed = await import_snapshot(env.ctx(), {"DiskContainer": {"Url": "s3://uploads/nothing"}})
    third = await import_snapshot(env.ctx(), {"DiskContainer": {"Url": "s3://uploads/d.qcow2"}})
    await env.settle()
    # Bob sees none of Alice's tasks, and cannot cancel them
    assert (await describe_import_snapshot_tasks(env.ctx(BOB), {}))["ImportSnapshotTasks"] == []
    with pytest.raises(errors.EC2Error) as caught:
        await describe_import_snapshot_tasks(env.ctx(BOB), {"ImportTaskIds": [first["ImportTaskId"]]})
    assert caught.value.code == "InvalidConversionTaskId"
    with pytest.raises(errors.EC2Error) as caught:
        await cancel_import_task(env.ctx(BOB), {"ImportTaskId": first["ImportTaskId"]})
    assert caught.value.code == "InvalidConversionTaskId"
    # and Bob cannot import from Alice's bucket
    stolen = await import_snapshot(env.ctx(BOB), {"DiskContainer": {"Url": "s3://uploads/d.qcow2"}})
    await env.settle()
    detail = (await task_of(env, stolen["ImportTaskId"], BOB))["SnapshotTaskDetail"]
    assert detail["Status"] == "deleted" and import_tasks.NO_ACCESS in detail["StatusMessage"]
    assert (await describe_snapshots(env.ctx(BOB), {"OwnerIds": ["self"]}))["Snapshots"] == []
    done = await describe_import_snapshot_tasks(env.ctx(), {"Filters": [{"Name": "task-state", "Values": ["completed"]}]})
    assert sorted(t["ImportTaskId"] for t in done["ImportSnapshotTasks"]) == sorted(
        [first["ImportTaskId"], third["ImportTaskId"]])
    gone = await describe_import_snapshot_tasks(env.ctx(), {"Filters": [{"Name": "task-state", "Values": ["deleted"]}]})
    assert [t["ImportTaskId"] for t in gone["ImportSnapshotTasks"]] == [failed["ImportTaskId"]]
    seen, token = [], None
    for _ in range(5):
        page = await describe_import_snapshot_tasks(env.ctx(), {"MaxResults": 1, **({"NextToken": token} if token else {})})
        assert len(page["ImportSnapshotTasks"]) <= 1
        seen += [t["ImportTaskId"] for t in page["ImportSnapshotTasks"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted([first["ImportTaskId"], failed["ImportTaskId"], third["ImportTaskId"]])


@needs_qemu_img
async def test_cancel_a_snapshot_import(env, s3, tmp_path, monkeypatch):
    await s3.bucket("uploads")
    await s3.put_file("uploads", "d.qcow2", make_disk(tmp_path / "d.qcow2", "qcow2"))
    gate = asyncio.Event()
    real_inspect = import_tasks.disk_conversion.inspect_disk

    async def slow_inspect(*args, **kwargs):
        await gate.wait()
        return await real_inspect(*args, **kwargs)
    monkeypatch.setattr(import_tasks.disk_conversion, "inspect_disk", slow_inspect)
    out = await import_snapshot(env.ctx(), {"DiskContainer": {"Url": "s3://uploads/d.qcow2"}})
    for _ in range(100):
        if (await task_of(env, out["ImportTaskId"]))["SnapshotTaskDetail"]["StatusMessage"] == "validating":
            break
        await asyncio.sleep(0.01)
    cancelled = await cancel_import_task(env.ctx(), {"ImportTaskId": out["ImportTaskId"]})
    assert cancelled == {"ImportTaskId": out["ImportTaskId"], "PreviousState": "active", "State": "deleting"}
    gate.set()
    await env.settle()
    detail = (await task_of(env, out["ImportTaskId"]))["SnapshotTaskDetail"]
    assert detail["Status"] == "deleted" and detail["StatusMessage"] == import_tasks.CANCELLED
    assert "SnapshotId" not in detail
    assert (await describe_snapshots(env.ctx(), {"OwnerIds": ["self"]}))["Snapshots"] == []
    assert snapshot_files_on_disk(env) == []


async def test_recovery_of_snapshot_imports(env, s3):
    """A worker killed after moving the disk in but before the row: the task is deleted with a
    ServerError and the file removed; one killed after the row: the task completes."""
    db, config = env.db, env.config
    dead = f"{socket.gethostname()}:999999:0"
    os.makedirs(os.path.join(config.data_dir, "snapshots"), exist_ok=True)
    for n, write_row in ((1, False), (2, True)):
        task_id, snap = f"import-snap-0000000000000000{n}", f"snap-0000000000000000{n}"
        data = {"runner": dead, "target_kind": "snapshot", "target_id": snap,
                "snapshot_details": [{"Status": "active"}], "source": {"bucket": "b", "key": "k", "declared": None}}
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO ec2_import_tasks (task_id, account_id, region, status, status_message,"
                             " progress, created_us, data) VALUES (?, ?, 'us-east-1', 'active', 'creating snapshot',"
                             " '92', 0, ?)", (task_id, ALICE, json.dumps(data)))
        os.makedirs(import_tasks.imports_dir(config, task_id))
        path = snapshot_imports._snapshot_path(config, snap)
        with open(path, "wb") as fh:
            fh.write(b"qcow")
        if write_row:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO ec2_snapshots (snapshot_id, account_id, region, volume_id, volume_size,"
                                 " state, progress, started_us, completed_us, path) VALUES (?, ?, 'us-east-1',"
                                 " 'vol-ffffffff', 1, 'completed', 100, 0, 0, ?)", (snap, ALICE, path))
    counts = await import_tasks.recover(db, config)
    assert counts["completed"] == 1 and counts["deleted"] == 1 and counts["folders"] == 2
    lost = (await task_of(env, "import-snap-00000000000000001"))["SnapshotTaskDetail"]
    assert lost["Status"] == "deleted" and lost["StatusMessage"].startswith("ServerError:")
    assert "SnapshotId" not in lost
    assert snapshot_files_on_disk(env) == ["snap-00000000000000002.qcow2"]
    kept = (await task_of(env, "import-snap-00000000000000002"))["SnapshotTaskDetail"]
    assert kept["Status"] == "completed" and kept["SnapshotId"] == "snap-00000000000000002"
    assert os.listdir(import_tasks.imports_dir(config)) == []
