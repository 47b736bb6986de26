"""Images made of snapshots: RegisterImage with BlockDeviceMappings, CreateImage, and the snapshots
behind every machine image.

- Every available machine image advertises a root snapshot id in DescribeImages; that snapshot is
  a real ``ec2_snapshots`` row (``ensure_image_snapshots``): its file is a hard link of the
  image's disk (the same immutable bytes, no copy), public when the image is. DeregisterImage
  leaves it, as AWS leaves an AMI's snapshots.
- RegisterImage with block device mappings that name snapshots makes an AMI whose root disk *is*
  the root snapshot's file (instances boot from copy-on-write overlays on it) and whose further
  mappings become volumes at launch. A snapshot an image uses cannot be deleted
  (InvalidSnapshot.InUse). The kernel and initrd a snapshot's disk needs (Nimbo's images boot a
  kernel directly) travel with the snapshot and are linked into the new image's folder.
- CreateImage snapshots every volume attached to the instance at one point in time (one QMP
  transaction on a running VM) and registers a ``pending`` AMI that becomes ``available`` when
  the snapshots complete (``failed`` if one fails). NoReboot: Nimbo never reboots the instance;
  the snapshots are crash-consistent (what a NoReboot=true CreateImage gives on AWS). A
  filesystem-consistent image needs the guest's co-operation: stop the instance first.

Crash story: an image row is written in one transaction with its mappings; a ``pending``
CreateImage whose snapshots were still exporting is watched again after a restart
(``resume_pending_images``).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from typing import Any

from ec2_api import disks, ebs_store, ids, images, instance_store, snapshot_files, tag_store
from ec2_api.block_device_mappings import device_mappings
from ec2_api.common import account_of, now_us
from ec2_api.ebs_store import GIB
from ec2_api.errors import (EC2Error, IncorrectInstanceState, InvalidParameterValue, MissingParameter,
                            check_dry_run, ec2_error)

log = logging.getLogger("nimbo.ec2")
InvalidBlockDeviceMapping = ec2_error("InvalidBlockDeviceMapping")
_ensure_locks: dict[Any, asyncio.Lock] = {}   # by event loop
IMAGE_WAIT_SECONDS = 6 * 3600


# -- the snapshots behind images --------------------------------------------------------------------

async def ensure_image_snapshots(db: Any, config: Any) -> int:
    """Make the snapshot rows that machine images advertise and nobody has made yet."""
    rows = await db.fetchall(
        "SELECT i.* FROM ec2_images i LEFT JOIN ec2_snapshots s ON s.snapshot_id = i.snapshot_id"
        " WHERE i.image_type = 'machine' AND i.state = 'available' AND i.snapshot_id IS NOT NULL"
        " AND i.disk_path IS NOT NULL AND s.snapshot_id IS NULL")
    if not rows:
        return 0
    made = 0
    async with _ensure_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        for image in rows:
            if await db.fetchone("SELECT 1 FROM ec2_snapshots WHERE snapshot_id = ?", (image["snapshot_id"],)):
                continue
            if not os.path.exists(image["disk_path"]):
                continue
            made += await _image_snapshot(db, config, image)
    return made


async def _image_snapshot(db: Any, config: Any, image: Any) -> int:
    fmt = image["disk_format"] or "qcow2"
    snapshot_id = image["snapshot_id"]
    path = ebs_store.snapshot_file(config, snapshot_id)
    if fmt != "qcow2":
        path = path[:-len(".qcow2")] + f".{fmt}"
    await asyncio.to_thread(snapshot_files.link_or_copy, image["disk_path"], path)
    data = images.data_of(image)
    boot = {k: v for k, v in (data.get("boot") or {}).items() if k in ("kernel", "initrd", "cmdline")}
    stored = await asyncio.to_thread(snapshot_files.stored_bytes, path)
    async with db.transaction() as tx:
        changed = await tx.execute(
            "INSERT OR IGNORE INTO ec2_snapshots (snapshot_id, account_id, region, volume_id, volume_size, state,"
            " progress, started_us, completed_us, description, path, stored_bytes, is_public, volume_users,"
            " owner_alias, data) VALUES (?, ?, ?, ?, ?, 'completed', 100, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (snapshot_id, image["account_id"], image["region"], "vol-ffffffff", images.root_size_gib(image),
             image["created_us"], image["created_us"], f"Created for {image['image_id']} ({image['name']})"[:255],
             path, stored, image["is_public"], image["launch_users"], image["owner_alias"],
             json.dumps({"kind": "image", "format": fmt, "boot": boot or None}, sort_keys=True)))
        if changed:
            row = await tx.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,))
            await ebs_store.record_snapshot_bytes(tx, row, stored, image["created_us"], "stored")
    return changed


# -- block device mappings of an image ------------------------------------------------------------------

async def _mappings(ctx: Any, params: dict, root_device: str) -> tuple[list[dict], Any]:
    """The image's mappings, checked; and the root snapshot row."""
    db, account = ctx.app.db, account_of(ctx)
    out: list[dict] = []
    root_snapshot = None
    for device, mapping in device_mappings(params):
        if mapping.get("NoDevice") is not None:
            out.append({"DeviceName": device, "NoDevice": ""})
            continue
        if mapping.get("VirtualName"):
            out.append({"DeviceName": device, "VirtualName": mapping["VirtualName"]})
            continue
        ebs = mapping.get("Ebs") or {}
        snapshot = None
        if ebs.get("SnapshotId"):
            snapshot = await ebs_store.usable_snapshot(db, account, ctx.region, ebs["SnapshotId"])
            if snapshot["state"] != "completed":
                raise ebs_store.IncorrectState(f"Snapshot '{snapshot['snapshot_id']}' is in the "
                                               f"'{snapshot['state']}' state.")
        size = ebs.get("VolumeSize") or (snapshot["volume_size"] if snapshot else None)
        if size is None:
            raise InvalidBlockDeviceMapping(f"The block device mapping for '{device}' needs a SnapshotId or a "
                                            f"VolumeSize")
        if snapshot is not None and size < snapshot["volume_size"]:
            raise InvalidBlockDeviceMapping(f"Volume of size {size}GB is smaller than snapshot "
                                            f"'{snapshot['snapshot_id']}', expect size >= {snapshot['volume_size']}GB")
        from ec2_api.volumes import check_volume_spec  # noqa: PLC0415
        volume_type = ebs.get("VolumeType") or "gp2"
        iops, throughput = check_volume_spec(volume_type, int(size), ebs.get("Iops"), ebs.get("Throughput"),
                                             iops_given=ebs.get("Iops") is not None,
                                             throughput_given=ebs.get("Throughput") is not None)
        entry = {"DeleteOnTermination": ebs.get("DeleteOnTermination", True), "VolumeSize": int(size),
                 "VolumeType": volume_type, "Encrypted": bool(ebs.get("Encrypted")) or bool(snapshot and snapshot["encrypted"])}
        if snapshot is not None:
            entry["SnapshotId"] = snapshot["snapshot_id"]
        if volume_type in ("io1", "io2", "gp3"):
            entry["Iops"] = iops
        if volume_type == "gp3":
            entry["Throughput"] = throughput
        out.append({"DeviceName": device, "Ebs": entry})
        if device == root_device:
            if snapshot is None:
                raise InvalidBlockDeviceMapping(f"The root device '{root_device}' needs a SnapshotId")
            root_snapshot = snapshot
    if root_snapshot is None:
        raise InvalidBlockDeviceMapping(f"The root device name '{root_device}' is not in the block device mapping")
    return out, root_snapshot


def _link_boot_files(boot: dict | None, folder: str) -> dict:
    """The kernel and initrd of ``boot`` linked into the image's own folder."""
    out: dict[str, Any] = {}
    for key in ("kernel", "initrd"):
        source = (boot or {}).get(key)
        if source and os.path.exists(source):
            target = os.path.join(folder, key)
            snapshot_files.link_or_copy(source, target)
            out[key] = target
    if (boot or {}).get("cmdline") and out.get("kernel"):
        out["cmdline"] = boot["cmdline"]
    return out


async def _boot_from(ctx: Any, params: dict, root_snapshot: Any) -> dict | None:
    boot: dict[str, Any] = {}
    for field, kind, key in (("KernelId", "kernel", "kernel"), ("RamdiskId", "ramdisk", "initrd")):
        if params.get(field):
            row = await images.image_for_launch(ctx, params[field])
            if row["image_type"] != kind:
                raise InvalidParameterValue(f"The image '{params[field]}' is not a {kind} image")
            boot[key] = row["disk_path"]
    if boot:
        if boot.get("kernel"):
            boot["cmdline"] = images.DEFAULT_CMDLINE
        return boot
    return ebs_store.data_of(root_snapshot).get("boot")


async def _insert_image(ctx: Any, *, image_id: str, name: str, state: str, root_device: str, root_snapshot: Any,
                        root_size_gib: int, mappings: list[dict], boot: dict | None, params: dict,
                        tags: dict[str, str], extra: dict | None = None, kernel_id: str | None = None,
                        ramdisk_id: str | None = None, architecture: str = "x86_64",
                        description: str | None = None) -> None:
    folder = disks.images_dir(ctx.app.config, image_id)
    os.makedirs(folder, exist_ok=True)
    files = await asyncio.to_thread(_link_boot_files, boot, folder)
    data = {"boot": files, "block_device_mappings": mappings, "location": f"{account_of(ctx)}/{name}",
            "boot_mode": params.get("BootMode"), "imds_support": params.get("ImdsSupport"),
            "from_snapshots": True, **(extra or {})}
    fmt = ebs_store.data_of(root_snapshot).get("format", "qcow2")
    try:
        async with ctx.app.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO ec2_images (image_id, account_id, region, name, description, state, image_type,"
                " architecture, root_device_name, disk_path, disk_format, size_bytes, kernel_id, ramdisk_id,"
                " snapshot_id, created_us, data) VALUES (?, ?, ?, ?, ?, ?, 'machine', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, account_of(ctx), ctx.region, name, description, state, architecture, root_device,
                 root_snapshot["path"], fmt, root_size_gib * GIB, kernel_id, ramdisk_id,
                 root_snapshot["snapshot_id"], now_us(ctx), json.dumps(data, sort_keys=True)))
            if tags:
                await tag_store.write_tags(tx, account_of(ctx), ctx.region, image_id, "image", tags)
    except sqlite3.IntegrityError as exc:
        await asyncio.to_thread(disks.remove_tree, folder)
        raise images.InvalidAMINameDuplicate(f"AMI name {name} is already in use") from exc
    except Exception:
        await asyncio.to_thread(disks.remove_tree, folder)
        raise


# -- RegisterImage ----------------------------------------------------------------------------------------

async def register_image(ctx: Any, params: dict) -> dict:
    """RegisterImage: from snapshots when a block device mapping names one, else from a file in S3
    (``image_import.register_image``)."""
    if not any((m.get("Ebs") or {}).get("SnapshotId") for m in params.get("BlockDeviceMappings") or []):
        from ec2_api import image_import  # noqa: PLC0415
        return await image_import.register_image(ctx, params)
    name = images.check_name(params.get("Name"))
    if params.get("ImageLocation"):
        raise InvalidParameterValue("Specify either an ImageLocation or block device mappings with snapshots, "
                                    "not both")
    architecture = params.get("Architecture") or "x86_64"
    if architecture not in ("x86_64", "i386"):
        raise InvalidParameterValue(f"Unsupported architecture '{architecture}': Nimbo runs x86 guests")
    await ensure_image_snapshots(ctx.app.db, ctx.app.config)
    root_device = params.get("RootDeviceName") or next(
        m["DeviceName"] for m in params["BlockDeviceMappings"] if (m.get("Ebs") or {}).get("SnapshotId"))
    mappings, root_snapshot = await _mappings(ctx, params, root_device)
    tags = tag_store.tag_specifications(params, {"image"}).get("image", {})
    await images.check_name_free(ctx.app.db, account_of(ctx), ctx.region, name)
    boot = await _boot_from(ctx, params, root_snapshot)
    check_dry_run(params)
    root_size = next(m["Ebs"]["VolumeSize"] for m in mappings if m["DeviceName"] == root_device)
    image_id = ids.new_id("ami")
    await _insert_image(ctx, image_id=image_id, name=name, state="available", root_device=root_device,
                        root_snapshot=root_snapshot, root_size_gib=root_size, mappings=mappings, boot=boot,
                        params=params, tags=tags, kernel_id=params.get("KernelId"),
                        ramdisk_id=params.get("RamdiskId"), architecture=architecture,
                        description=params.get("Description"))
    return {"ImageId": image_id}


# -- CreateImage ----------------------------------------------------------------------------------------------

async def create_image(ctx: Any, params: dict) -> dict:
    from ec2_api import snapshots  # noqa: PLC0415
    db, account = ctx.app.db, account_of(ctx)
    name = images.check_name(params.get("Name"))
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    (instance,) = await instance_store.load_owned(db, account, ctx.region, [instance_id], now_us(ctx))
    if instance["state"] not in ("running", "stopped"):
        raise IncorrectInstanceState(f"The instance '{instance_id}' is not in a valid state for this operation.")
    tags = tag_store.tag_specifications(params, {"image", "snapshot"})
    await images.check_name_free(db, account, ctx.region, name)
    volumes = [v for v in await ebs_store.volumes_of_instance(db, instance_id) if v["attach_state"] == "attached"]
    overrides = {m.get("DeviceName"): m for m in params.get("BlockDeviceMappings") or []}
    root_device = instance_store.data_of(instance).get("root_device_name", "/dev/xvda")
    if overrides.get(root_device, {}).get("NoDevice") is not None:
        raise InvalidBlockDeviceMapping("The root device cannot be excluded from the image")
    volumes = [v for v in volumes if overrides.get(v["device"], {}).get("NoDevice") is None]
    root = next((v for v in volumes if v["is_root"]), None)
    if root is None:
        raise IncorrectInstanceState(f"The instance '{instance_id}' has no root volume attached.")
    for volume in volumes:
        snapshots._check_volume_ready(volume)   # noqa: SLF001
        size = ((overrides.get(volume["device"]) or {}).get("Ebs") or {}).get("VolumeSize")
        if size is not None and size < volume["size_gib"]:
            raise InvalidBlockDeviceMapping(f"Volume of size {size}GB is smaller than the volume attached at "
                                            f"'{volume['device']}' ({volume['size_gib']}GB)")
    check_dry_run(params)
    image_id = ids.new_id("ami")
    description = f"Created by CreateImage({instance_id}) for {image_id}"
    rows = await snapshots.take_snapshots(ctx, volumes, description, lambda v: tags.get("snapshot", {}))
    mappings = []
    by_volume = {r["volume_id"]: r for r in rows}
    for volume in volumes:
        ebs = (overrides.get(volume["device"]) or {}).get("Ebs") or {}
        entry = {"DeleteOnTermination": ebs.get("DeleteOnTermination", bool(volume["delete_on_termination"])),
                 "SnapshotId": by_volume[volume["volume_id"]]["snapshot_id"],
                 "VolumeSize": ebs.get("VolumeSize") or volume["size_gib"],
                 "VolumeType": ebs.get("VolumeType") or volume["volume_type"], "Encrypted": bool(volume["encrypted"])}
        if entry["VolumeType"] in ("io1", "io2", "gp3"):
            entry["Iops"] = ebs.get("Iops") or volume["iops"]
        if entry["VolumeType"] == "gp3":
            entry["Throughput"] = ebs.get("Throughput") or volume["throughput"] or 125
        mappings.append({"DeviceName": volume["device"], "Ebs": entry})
    for device, mapping in overrides.items():
        if mapping.get("VirtualName") and not any(m["DeviceName"] == device for m in mappings):
            mappings.append({"DeviceName": device, "VirtualName": mapping["VirtualName"]})
    data = instance_store.data_of(instance)
    boot = {k: v for k, v in (data.get("boot") or {}).items() if k in ("kernel", "initrd", "cmdline")}
    root_row = by_volume[root["volume_id"]]
    root_size = next(m["Ebs"]["VolumeSize"] for m in mappings if m["DeviceName"] == root_device)
    try:
        await _insert_image(ctx, image_id=image_id, name=name, state="pending", root_device=root_device,
                            root_snapshot=root_row, root_size_gib=root_size, mappings=mappings, boot=boot,
                            params={}, tags=tags.get("image", {}),
                            extra={"source_instance_id": instance_id,
                                   "snapshot_ids": [r["snapshot_id"] for r in rows]},
                            kernel_id=data.get("kernel_id"), ramdisk_id=data.get("ramdisk_id"),
                            architecture=data.get("architecture", "x86_64"), description=params.get("Description"))
    except EC2Error:   # the name was taken meanwhile: the snapshots taken for it go again
        ctx.state.spawn(discard_snapshots(ctx.state, [r["snapshot_id"] for r in rows]))
        raise
    ctx.state.spawn(complete_image(ctx.state, image_id))
    return {"ImageId": image_id}


async def complete_image(state: Any, image_id: str, timeout: float = IMAGE_WAIT_SECONDS) -> None:
    """``pending`` -> ``available`` when every snapshot of the image completed (``failed`` if one
    failed or vanished)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        image = await state.db.fetchone("SELECT * FROM ec2_images WHERE image_id = ?", (image_id,))
        if image is None or image["state"] != "pending":
            return
        wanted = images.data_of(image).get("snapshot_ids") or []
        rows = await state.db.fetchall(
            f"SELECT state FROM ec2_snapshots WHERE snapshot_id IN ({','.join('?' * len(wanted))})", wanted) \
            if wanted else []
        states = [r["state"] for r in rows]
        failed = len(rows) < len(wanted) or any(s not in ("pending", "completed") for s in states)
        if failed or loop.time() > deadline:
            await images.set_image_state(state.db, image_id, "failed",
                                         reason="Client.SnapshotFailed: a snapshot of the image failed")
            return
        if all(s == "completed" for s in states):
            await images.set_image_state(state.db, image_id, "available")
            return
        await asyncio.sleep(0.2)


async def discard_snapshots(state: Any, snapshot_ids: list[str], timeout: float = 3600) -> None:
    """Delete snapshots a failed CreateImage took, once their export is over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for snapshot_id in snapshot_ids:
        while loop.time() < deadline:
            row = await state.db.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,))
            if row is None or row["state"] != "pending":
                break
            await asyncio.sleep(0.2)
        if row is None or row["state"] == "pending":
            continue
        async with state.db.transaction() as tx:
            if await tx.execute("UPDATE ec2_snapshots SET state = 'deleted' WHERE snapshot_id = ?"
                                " AND state IN ('completed', 'error')", (snapshot_id,)):
                await ebs_store.record_snapshot_bytes(tx, row, -int(row["stored_bytes"]), state.now_us(), "deleted")
                await tag_store.delete_all_tags(tx, snapshot_id)
    await snapshot_files.collect(state.db)


async def resume_pending_images(state: Any) -> None:
    rows = await state.db.fetchall("SELECT image_id, data FROM ec2_images WHERE state = 'pending'")
    for row in rows:
        if json.loads(row["data"] or "{}").get("from_snapshots"):
            state.spawn(complete_image(state, row["image_id"]))
