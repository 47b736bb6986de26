"""Start-up sweep of EBS state: what a crash (kill -9, power loss) interrupted is finished or undone,
and files that no row names are removed. Runs once when the EC2 service opens, before instances
are reconciled, so that a booting instance finds its volumes settled.

- root volume rows are made for instances that predate volume rows;
- ``.part`` files (half-written volumes and snapshots) are removed;
- ``creating`` volumes are made again (the work is idempotent; the source snapshot cannot be
  deleted meanwhile since the volume's overlay names it);
- ``attaching``/``detaching`` attachments are settled from the driver's VM spec;
- volumes deleted with their instance lose their files and rows;
- ``pending`` snapshots are exported again from their ``.source`` hard link (the frozen state is
  inside it), or become ``error`` when the crash came before the freeze completed; pending copies
  are linked again; a finished snapshot whose export tail was cut short loses its internal
  snapshot in the volume and its ``.source`` link;
- ``pending`` images made by CreateImage are watched again;
- orphaned volume and snapshot files are removed, and deleted snapshots no one builds on collected.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from backend.driver import DriverError, VMNotFoundError
from ec2_api import ebs_store, image_snapshots, instance_store, snapshot_files
from ec2_api.volumes import make_volume_file

log = logging.getLogger("nimbo.ec2")


async def sweep(state: Any) -> None:
    db, config = state.db, state.config
    await backfill_root_volumes(db)
    # files first (nothing is being written yet), then the rows, then the resumed work
    await asyncio.to_thread(_remove_part_files, config)
    await asyncio.to_thread(_remove_orphans, config, await _known_files(db))
    await _settle_attachments(state)
    from ec2_api import volume_attachments  # noqa: PLC0415
    for row in await db.fetchall("SELECT DISTINCT instance_id FROM ec2_volumes WHERE state = 'deleted'"
                                 " AND instance_id IS NOT NULL"):
        instance = await instance_store.load(db, row["instance_id"])
        if instance is None or instance["state"] == "terminated":
            for volume in await db.fetchall("SELECT path FROM ec2_volumes WHERE instance_id = ? AND state = 'deleted'",
                                            (row["instance_id"],)):
                await asyncio.to_thread(snapshot_files._unlink, volume["path"])   # noqa: SLF001
            await volume_attachments.forget_deleted(db, row["instance_id"])
    await snapshot_files.collect(db)
    for row in await db.fetchall("SELECT * FROM ec2_volumes WHERE state = 'creating' AND instance_id IS NULL"):
        state.spawn(make_volume_file(state, row))
    await _resume_snapshots(state)
    await image_snapshots.resume_pending_images(state)


async def backfill_root_volumes(db: Any) -> int:
    rows = await db.fetchall(
        "SELECT i.* FROM ec2_instances i LEFT JOIN ec2_volumes v ON v.volume_id = i.root_volume_id"
        " WHERE v.volume_id IS NULL AND i.state != 'terminated'")
    for instance in rows:
        data = instance_store.data_of(instance)
        root = data.get("root_volume") or {}
        image = await db.fetchone("SELECT * FROM ec2_images WHERE image_id = ?", (instance["image_id"],))
        from ec2_api.volumes import default_iops  # noqa: PLC0415
        volume_type = root.get("volume_type", "gp2")
        size = int(root.get("size_gib", 1))
        async with db.transaction() as tx:
            await ebs_store.insert_volume(
                tx, volume_id=instance["root_volume_id"], account_id=instance["account_id"],
                region=instance["region"], zone=instance["availability_zone"], size_gib=size,
                volume_type=volume_type, iops=default_iops(volume_type, size),
                throughput=125 if volume_type == "gp3" else None, encrypted=False, kms_key_id=None,
                snapshot_id=image["snapshot_id"] if image else None, multi_attach=False, state="in-use",
                created_us=instance["launch_time_us"], path=instance["root_disk"],
                base_path=(data.get("boot") or {}).get("base_disk"),
                base_format=(data.get("boot") or {}).get("base_format"), instance_id=instance["instance_id"],
                device=root.get("device_name") or data.get("root_device_name", "/dev/xvda"),
                attach_state="attached", delete_on_termination=root.get("delete_on_termination", True),
                is_root=True, record=False)
    return len(rows)


def _remove_part_files(config: Any) -> None:
    for folder in (ebs_store.volumes_dir(config), ebs_store.snapshots_dir(config)):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.endswith(".part"):
                snapshot_files._unlink(os.path.join(folder, name))   # noqa: SLF001


async def _settle_attachments(state: Any) -> None:
    db = state.db
    rows = await db.fetchall("SELECT * FROM ec2_volumes WHERE attach_state IN ('attaching', 'detaching')")
    from ec2_api import volume_attachments  # noqa: PLC0415
    for row in rows:
        instance = await instance_store.load(db, row["instance_id"])
        plugged = False
        if state.driver is not None and instance is not None:
            try:
                spec = await state.driver.spec(row["instance_id"])
                plugged = any(d.disk_id == ebs_store.disk_id(row["volume_id"]) for d in spec.disks)
            except (VMNotFoundError, DriverError):
                plugged = False
        running = instance is not None and instance["state"] == "running"
        keep = plugged if running else row["attach_state"] == "attaching"
        async with db.transaction() as tx:
            if keep and instance is not None:
                await tx.execute("UPDATE ec2_volumes SET attach_state = 'attached' WHERE volume_id = ?",
                                 (row["volume_id"],))
                fresh = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (row["volume_id"],))
                await volume_attachments._set_instance_device(   # noqa: SLF001
                    tx, row["instance_id"], fresh["device"], volume_attachments.device_entry(fresh))
            else:
                await volume_attachments._undo_attachment(tx, row)   # noqa: SLF001


async def _resume_snapshots(state: Any) -> None:
    db = state.db
    # a crash after an export was recorded but before its tail ran: the volume still holds the
    # internal snapshot and the hard link still names the frozen state
    for row in await db.fetchall("SELECT * FROM ec2_snapshots WHERE state IN ('completed', 'error')"
                                 " AND volume_id IS NOT NULL"):
        source = snapshot_files.work_files(row["path"])["source"]
        if os.path.exists(source):
            await snapshot_files.drop_internal(state, row["volume_id"], row["snapshot_id"])
            await asyncio.to_thread(snapshot_files._unlink, source)   # noqa: SLF001
    for row in await db.fetchall("SELECT * FROM ec2_snapshots WHERE state = 'pending'"):
        data = ebs_store.data_of(row)
        if data.get("kind") == "copy":
            from ec2_api.snapshots import finish_copy  # noqa: PLC0415
            state.spawn(finish_copy(state, row["snapshot_id"]))
        elif os.path.exists(snapshot_files.work_files(row["path"])["source"]):
            state.spawn(snapshot_files.export(state, row["snapshot_id"]))
        else:
            await snapshot_files.drop_internal(state, row["volume_id"], row["snapshot_id"])
            async with db.transaction() as tx:
                await tx.execute("UPDATE ec2_snapshots SET state = 'error', state_message = ? WHERE snapshot_id = ?"
                                 " AND state = 'pending'",
                                 ("Server.InternalError: Nimbo restarted before the snapshot's point in time "
                                  "was taken", row["snapshot_id"]))


async def _known_files(db: Any) -> set[str]:
    known: set[str] = set()
    for sql in ("SELECT path FROM ec2_volumes", "SELECT path FROM ec2_snapshots",
                "SELECT root_disk AS path FROM ec2_instances"):
        for row in await db.fetchall(sql):
            known.add(os.path.abspath(row["path"]))
    for row in await db.fetchall("SELECT path FROM ec2_snapshots WHERE state != 'deleted'"):
        known.add(os.path.abspath(snapshot_files.work_files(row["path"])["source"]))
    return known


def _remove_orphans(config: Any, known: set[str]) -> None:
    for folder, prefix in ((ebs_store.volumes_dir(config), "vol-"), (ebs_store.snapshots_dir(config), "snap-")):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.abspath(os.path.join(folder, name))
            if name.startswith(prefix) and path not in known:
                log.info("removing orphaned EBS file %s", path)
                snapshot_files._unlink(path)   # noqa: SLF001


__all__ = ["sweep", "backfill_root_volumes"]
