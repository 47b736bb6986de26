"""The files behind snapshots: taking the point in time, exporting it incrementally, collecting.

How a snapshot of a volume is taken (``freeze``): an internal qcow2 snapshot named after the
snapshot id is made inside the volume's own file. On a running VM it is QMP
``blockdev-snapshot-internal-sync`` inside one QMP ``transaction`` (``Driver.snapshot_disks``),
so CreateSnapshots gets every volume of the instance at the same instant; on a volume that no
running VM holds, ``qemu-img snapshot -c``. Why an internal snapshot and not
``blockdev-snapshot-sync`` (an external overlay) or a live copy (``drive-backup``): it is atomic
and crash-consistent (every write the guest finished is in, none after), it takes ~10-50 ms
whatever the volume's size, and the volume keeps its one file: an external overlay would switch
the running VM onto a new file and make every volume a growing chain that must later be
committed back while the guest writes, and a live copy keeps the VM's I/O path busy for the whole
copy. The guest's writes after the freeze go to new clusters (qcow2 copy-on-write), so the frozen
state can be read later at leisure.

Exporting (``export``, in the background): the frozen state is read without a lock
(``qemu-img convert -U -l snapshot.name=...``) through a hard link of the volume file (so a
DeleteVolume meanwhile cannot pull the data away) into a full copy, and then made incremental: a
qcow2 overlay on the full copy is rebased (safe mode: the clusters are compared) onto the
previous snapshot of the same volume, keeping only the clusters that differ. The result
``snapshots/<snap-id>.qcow2`` is a delta whose backing file is the parent snapshot's file (or a
self-contained copy for a volume's first snapshot). Then the internal snapshot is dropped from the
volume and the snapshot is ``completed``, with its stored bytes billed (EBS:SnapshotUsage).

Crash story: the row (``pending``) is written before the freeze; work files are
``<id>.source`` (the hard link), ``<id>.full.part`` and ``<id>.qcow2.part``. At start-up
``ebs_sweep`` removes the ``.part`` files and exports again from ``.source`` (the frozen state is
still inside it); a pending snapshot whose ``.source`` is missing (the crash came before the
freeze finished) becomes ``error``. A deleted snapshot whose file backs another snapshot, a volume
or an image keeps its file (hidden row, state ``deleted``) until ``collect`` finds it unneeded.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

from backend import images as backend_images
from backend.driver import DriverError
from ec2_api import ebs_store

log = logging.getLogger("nimbo.ec2")


def work_files(path: str) -> dict[str, str]:
    base = path[:-len(".qcow2")] if path.endswith(".qcow2") else path
    return {"source": base + ".source", "full": base + ".full.part", "part": path + ".part"}


def _unlink(*paths: str) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def link_or_copy(src: str, dst: str) -> None:
    """``dst`` names the same bytes as ``src`` (a hard link; a copy across file systems)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    _unlink(dst)
    try:
        os.link(src, dst)
    except OSError:
        import shutil  # noqa: PLC0415
        shutil.copyfile(src, dst + ".part")
        ebs_store.fsync_rename(dst + ".part", dst)


# -- the point in time ----------------------------------------------------------------------------------

def _running_disk(volume: Any) -> str:
    return "root" if volume["is_root"] else ebs_store.disk_id(volume["volume_id"])


async def freeze(state: Any, pairs: list[tuple[Any, Any]]) -> None:
    """Take the internal snapshot of each (snapshot row, volume row); the volumes attached to one
    running instance are frozen together, in one QMP transaction. On failure every internal
    snapshot already taken is dropped again and the error raised."""
    from ec2_api import volume_attachments  # noqa: PLC0415
    done: list[tuple[Any, Any]] = []
    by_instance: dict[str | None, list[tuple[Any, Any]]] = {}
    for snap, volume in pairs:
        key = volume["instance_id"] if volume["attach_state"] == "attached" else None
        by_instance.setdefault(key, []).append((snap, volume))
    try:
        for instance_id, group in by_instance.items():
            async with volume_attachments.volume_locks(state, [v for _, v in group]):
                frozen = False
                if instance_id and state.driver is not None:
                    frozen = await state.driver.snapshot_disks(
                        instance_id, {_running_disk(v): s["snapshot_id"] for s, v in group})
                if not frozen:
                    for snap, volume in group:
                        await backend_images.run_qemu_img("snapshot", "-c", snap["snapshot_id"], volume["path"])
                        done.append((snap, volume))
                else:
                    done.extend(group)
                for snap, volume in group:
                    await asyncio.to_thread(link_or_copy, volume["path"], work_files(snap["path"])["source"])
    except (DriverError, backend_images.ImageError, OSError):
        for snap, volume in done:
            await drop_internal(state, volume["volume_id"], snap["snapshot_id"])
            _unlink(work_files(snap["path"])["source"])
        raise


async def drop_internal(state: Any, volume_id: str, name: str) -> None:
    """Remove the internal snapshot ``name`` from the volume's file (wherever the volume is now)."""
    from ec2_api import volume_attachments  # noqa: PLC0415
    volume = await state.db.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ? AND state != 'deleted'",
                                     (volume_id,))
    if volume is None or not os.path.exists(volume["path"]):
        return
    async with volume_attachments.volume_locks(state, [volume]):
        try:
            if volume["instance_id"] and volume["attach_state"] == "attached" and state.driver is not None:
                if await state.driver.delete_disk_snapshots(volume["instance_id"], {_running_disk(volume): name}):
                    return
            await backend_images.run_qemu_img("snapshot", "-d", name, volume["path"])
        except (DriverError, backend_images.ImageError) as exc:
            if "not found" not in str(exc).lower() and "can't find" not in str(exc).lower():
                log.warning("could not drop the internal snapshot %s of %s: %s", name, volume_id, exc)


# -- the export ----------------------------------------------------------------------------------------

async def parent_of(db: Any, snap: Any) -> Any | None:
    """The snapshot this one is stored as a delta on: the latest completed snapshot of the same
    volume whose file still exists, else the snapshot the volume was made from (as EBS stores a
    restored volume's first snapshot incrementally)."""
    rows = list(await db.fetchall(
        "SELECT * FROM ec2_snapshots WHERE volume_id = ? AND state = 'completed' AND snapshot_id != ?"
        " AND started_us <= ? ORDER BY started_us DESC, snapshot_id LIMIT 5",
        (snap["volume_id"], snap["snapshot_id"], snap["started_us"])))
    rows += await db.fetchall(
        "SELECT s.* FROM ec2_snapshots s JOIN ec2_volumes v ON v.snapshot_id = s.snapshot_id"
        " WHERE v.volume_id = ? AND s.state = 'completed'", (snap["volume_id"],))
    for row in rows:
        if os.path.exists(row["path"]) and ebs_store.data_of(row).get("format", "qcow2") == "qcow2":
            return row
    return None


async def export(state: Any, snapshot_id: str) -> None:
    """``pending`` -> ``completed`` (or ``error``) once the frozen state is stored."""
    db = state.db
    snap = await db.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,))
    if snap is None or snap["state"] != "pending":
        return
    files = work_files(snap["path"])
    parent = None
    try:
        parent = await parent_of(db, snap)
        await backend_images.run_qemu_img("convert", "-q", "-U", "-f", "qcow2", "-l",
                                          f"snapshot.name={snapshot_id}", "-O", "qcow2", files["source"],
                                          files["full"])
        await _progress(db, snapshot_id, 60 if parent is not None else 90)
        if parent is not None:
            size = (await backend_images.info(files["full"], "qcow2"))["virtual_size"]
            await backend_images.run_qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", files["full"],
                                              files["part"], str(size))
            await backend_images.run_qemu_img("rebase", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                                              parent["path"], files["part"])
            _unlink(files["full"])
        else:
            os.replace(files["full"], files["part"])
        await asyncio.to_thread(ebs_store.fsync_rename, files["part"], snap["path"])
    except (backend_images.ImageError, OSError) as exc:
        log.warning("snapshot %s failed: %s", snapshot_id, exc)
        _unlink(files["full"], files["part"], snap["path"])
        await _finish(state, snap, None, f"Client.InternalError: the snapshot could not be stored: {exc}"[:250])
    else:
        await _finish(state, snap, parent, None)
    await drop_internal(state, snap["volume_id"], snapshot_id)
    _unlink(files["source"])


async def _progress(db: Any, snapshot_id: str, percent: int) -> None:
    async with db.transaction() as tx:
        await tx.execute("UPDATE ec2_snapshots SET progress = ? WHERE snapshot_id = ? AND state = 'pending'",
                         (percent, snapshot_id))


async def _finish(state: Any, snap: Any, parent: Any | None, error: str | None) -> None:
    at = max(state.now_us(), snap["started_us"])
    stored = 0 if error else await asyncio.to_thread(stored_bytes, snap["path"])
    async with state.db.transaction() as tx:
        if error:
            await tx.execute("UPDATE ec2_snapshots SET state = 'error', state_message = ? WHERE snapshot_id = ?"
                             " AND state = 'pending'", (error, snap["snapshot_id"]))
            return
        changed = await tx.execute(
            "UPDATE ec2_snapshots SET state = 'completed', progress = 100, completed_us = ?, stored_bytes = ?,"
            " parent_path = ? WHERE snapshot_id = ? AND state = 'pending'",
            (at, stored, parent["path"] if parent is not None else None, snap["snapshot_id"]))
        if changed:
            await ebs_store.record_snapshot_bytes(tx, snap, stored, at, "stored")


def stored_bytes(path: str) -> int:
    st = os.stat(path)
    return min(st.st_size, st.st_blocks * 512) if st.st_blocks else st.st_size


# -- collection ------------------------------------------------------------------------------------------

async def collect(db: Any) -> int:
    """Remove the files (and hidden rows) of deleted snapshots that nothing builds on any more:
    no snapshot's delta, no volume's overlay and no image uses the file."""
    removed = 0
    while True:
        rows = await db.fetchall(
            "SELECT s.snapshot_id, s.path FROM ec2_snapshots s WHERE s.state = 'deleted'"
            " AND NOT EXISTS (SELECT 1 FROM ec2_snapshots c WHERE c.parent_path = s.path"
            "                 AND c.snapshot_id != s.snapshot_id)"
            " AND NOT EXISTS (SELECT 1 FROM ec2_volumes v WHERE v.base_path = s.path AND v.state != 'deleted')"
            " AND NOT EXISTS (SELECT 1 FROM ec2_images i WHERE i.disk_path = s.path)")
        if not rows:
            return removed
        for row in rows:
            await asyncio.to_thread(_unlink, row["path"], *work_files(row["path"]).values())
            async with db.transaction() as tx:
                await tx.execute("DELETE FROM ec2_snapshots WHERE snapshot_id = ? AND state = 'deleted'",
                                 (row["snapshot_id"],))
            removed += 1


def boot_of(data: dict) -> dict | None:
    boot = data.get("boot")
    return json.loads(json.dumps(boot)) if boot else None
