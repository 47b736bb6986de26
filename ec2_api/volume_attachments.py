"""AttachVolume and DetachVolume, and what an instance's life does to its volumes.

Attaching writes the attachment (``attaching``) on the volume row and in the instance's block
device list in one transaction, then hot-plugs the volume into the running VM through the driver
(``attach_disk``: a virtio disk whose serial is the volume id without its dash, as Nitro shows
it) and marks it ``attached``. An instance that is stopped gets the volume at its next start
(``disks_for_start`` builds the VM's disk list from the rows). Detaching goes ``detaching`` ->
the driver's ``detach_disk`` -> ``detached`` (the volume is ``available`` again). A driver
failure puts the row back as it was. Crash story: a row left ``attaching``/``detaching`` by a
crash is settled at start-up by ``ebs_sweep`` from what the driver's VM spec holds.

Instances: RunInstances writes the root volume's row (and those of its block device mappings),
terminate deletes the volumes whose DeleteOnTermination is set and detaches the others.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import defaultdict
from typing import Any, AsyncIterator

from backend.driver import DiskAttachment, DriverError, VMNotFoundError
from ec2_api import ebs_store, instance_store
from ec2_api.common import account_of, now_us
from ec2_api.ebs_store import (IncorrectState, InvalidAttachmentNotFound, InvalidVolumeZoneMismatch,
                               VolumeInUse, owned_volume)
from ec2_api.errors import (IncorrectInstanceState, InvalidParameterValue, MissingParameter,
                            UnsupportedOperation, check_dry_run)
from ec2_api.volumes import attachment_item

log = logging.getLogger("nimbo.ec2")
_file_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
DETACH_TIMEOUT = 10.0
FORCE_DETACH_TIMEOUT = 30.0


def file_lock(volume_id: str) -> asyncio.Lock:
    """Serialises the work on one volume file inside this process (attach, snapshot, resize)."""
    return _file_locks[volume_id]


def instance_lock(state: Any, instance_id: str) -> asyncio.Lock:
    """The lifecycle's lock of an instance: no boot or terminate interleaves with a hot-plug."""
    return state._locks[instance_id]   # noqa: SLF001 (the lifecycle's per-instance lock)


@contextlib.asynccontextmanager
async def volume_locks(state: Any, volumes: list[Any]) -> AsyncIterator[None]:
    """Work on these volumes' files: their instances' locks first (so that no VM starts and takes
    the file meanwhile), then the files' own, always in the same order (no deadlock)."""
    instances = sorted({v["instance_id"] for v in volumes if v["instance_id"]})
    locks = [instance_lock(state, i) for i in instances] + \
        [file_lock(v) for v in sorted({v["volume_id"] for v in volumes})]
    taken = []
    try:
        for lock in locks:
            await lock.acquire()
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()


# -- the instance's block device list (instance data, shown by DescribeInstances) ----------------------

async def _set_instance_device(tx: Any, instance_id: str, device: str, entry: dict | None) -> None:
    row = await tx.fetchone("SELECT data FROM ec2_instances WHERE instance_id = ?", (instance_id,))
    if row is None:
        return
    devices = [d for d in json.loads(row["data"] or "{}").get("block_devices", []) if d["device_name"] != device]
    if entry is not None:
        devices.append(entry)
    await instance_store.update_data(tx, instance_id, block_devices=devices)


def device_entry(row: Any) -> dict:
    return {"device_name": row["device"], "volume_id": row["volume_id"], "attach_us": row["attach_us"],
            "delete_on_termination": bool(row["delete_on_termination"]), "status": row["attach_state"]}


async def _devices_in_use(conn: Any, instance: Any) -> set[str]:
    rows = await conn.fetchall("SELECT device FROM ec2_volumes WHERE instance_id = ? AND state != 'deleted'",
                               (instance["instance_id"],))
    used = {r["device"] for r in rows}
    used.add(instance_store.data_of(instance).get("root_device_name", "/dev/xvda"))
    return used


# -- AttachVolume --------------------------------------------------------------------------------------

async def attach_volume(ctx: Any, params: dict) -> dict:
    db, account = ctx.app.db, account_of(ctx)
    for name in ("Device", "InstanceId", "VolumeId"):
        if not params.get(name):
            raise MissingParameter(f"The request must contain the parameter {name}")
    volume = await owned_volume(db, account, ctx.region, params["VolumeId"])
    (instance,) = await instance_store.load_owned(db, account, ctx.region, [params["InstanceId"]], now_us(ctx))
    device = params["Device"]
    if not ebs_store.valid_device(device):
        raise InvalidParameterValue(f"Value ({device}) for parameter device is invalid. {device} is not a valid "
                                    f"EBS device name.")
    if volume["instance_id"] or volume["state"] == "in-use":
        raise VolumeInUse(f"{volume['volume_id']} is already attached to an instance")
    if volume["state"] != "available":
        raise IncorrectState(f"The volume '{volume['volume_id']}' is not 'available'.")
    if volume["availability_zone"] != instance["availability_zone"]:
        raise InvalidVolumeZoneMismatch(
            f"The volume '{volume['volume_id']}' is not in the same availability zone as instance "
            f"'{instance['instance_id']}'")
    if instance["state"] not in ("running", "stopped"):
        raise IncorrectInstanceState(f"Instance '{instance['instance_id']}' is not 'running' or 'stopped'.")
    if device in await _devices_in_use(db, instance):
        raise InvalidParameterValue(f"Invalid value '{device}' for unixDevice. Attachment point {device} is "
                                    f"already in use")
    check_dry_run(params)
    at = now_us(ctx)
    running = instance["state"] == "running"
    async with db.transaction() as tx:
        fresh = await tx.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance["instance_id"],))
        if fresh["state"] not in ("running", "stopped"):
            raise IncorrectInstanceState(f"Instance '{instance['instance_id']}' is not 'running' or 'stopped'.")
        if device in await _devices_in_use(tx, fresh):
            raise InvalidParameterValue(f"Invalid value '{device}' for unixDevice. Attachment point {device} is "
                                        f"already in use")
        row = await ebs_store.set_volume_state(
            tx, volume["volume_id"], "in-use", from_states=("available",), instance_id=instance["instance_id"],
            device=device, attach_state="attaching" if running else "attached", attach_us=at,
            delete_on_termination=0)
        if row is None:
            raise VolumeInUse(f"{volume['volume_id']} is already attached to an instance")
        await _set_instance_device(tx, instance["instance_id"], device, device_entry(row))
    if running:
        ctx.state.spawn(_hot_plug(ctx.state, row))
    return attachment_item(row)


async def _hot_plug(state: Any, row: Any) -> None:
    volume_id, instance_id = row["volume_id"], row["instance_id"]
    error = None
    async with instance_lock(state, instance_id), file_lock(volume_id):
        instance = await instance_store.load(state.db, instance_id)
        if instance is not None and instance["state"] == "running" and state.driver is not None:
            try:
                await state.driver.attach_disk(instance_id, ebs_store.disk_id(volume_id), row["path"])
            except (DriverError, OSError) as exc:
                error = exc
        async with state.db.transaction() as tx:
            if error is None:
                await tx.execute("UPDATE ec2_volumes SET attach_state = 'attached' WHERE volume_id = ?"
                                 " AND attach_state = 'attaching'", (volume_id,))
                fresh = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (volume_id,))
                if fresh is not None and fresh["instance_id"] == instance_id:
                    await _set_instance_device(tx, instance_id, fresh["device"], device_entry(fresh))
            else:
                log.warning("attaching %s to %s failed: %s", volume_id, instance_id, error)
                await _undo_attachment(tx, row)


async def _undo_attachment(tx: Any, row: Any) -> None:
    await ebs_store.set_volume_state(tx, row["volume_id"], "available", from_states=("in-use",),
                                     instance_id=None, device=None, attach_state=None, attach_us=None,
                                     delete_on_termination=0)
    await _set_instance_device(tx, row["instance_id"], row["device"], None)


# -- DetachVolume --------------------------------------------------------------------------------------

async def detach_volume(ctx: Any, params: dict) -> dict:
    db, account = ctx.app.db, account_of(ctx)
    volume = await owned_volume(db, account, ctx.region, params.get("VolumeId"))
    if not volume["instance_id"]:
        raise IncorrectState(f"Volume '{volume['volume_id']}' is in the '{volume['state']}' state.")
    if params.get("InstanceId") and params["InstanceId"] != volume["instance_id"] or \
            params.get("Device") and params["Device"] != volume["device"]:
        raise InvalidAttachmentNotFound(
            f"The volume '{volume['volume_id']}' is not attached to instance "
            f"'{params.get('InstanceId') or volume['instance_id']}' as device '{params.get('Device') or volume['device']}'")
    instance = await instance_store.load(db, volume["instance_id"])
    if volume["is_root"]:
        if instance is not None and instance["state"] != "stopped":
            raise IncorrectState(f"Unable to detach root volume '{volume['volume_id']}' from instance "
                                 f"'{volume['instance_id']}'")
        raise UnsupportedOperation("Nimbo does not detach root volumes; create a snapshot and a new volume "
                                   "from it instead")
    if volume["attach_state"] != "attached":
        raise IncorrectState(f"Volume '{volume['volume_id']}' is '{volume['attach_state']}'.")
    if instance is not None and instance["state"] not in ("running", "stopped", "terminated"):
        raise IncorrectInstanceState(f"Instance '{instance['instance_id']}' is not 'running' or 'stopped'.")
    check_dry_run(params)
    running = instance is not None and instance["state"] == "running"
    async with db.transaction() as tx:
        if running:
            changed = await tx.execute("UPDATE ec2_volumes SET attach_state = 'detaching' WHERE volume_id = ?"
                                       " AND attach_state = 'attached'", (volume["volume_id"],))
            row = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (volume["volume_id"],))
            if changed:
                await _set_instance_device(tx, row["instance_id"], row["device"], device_entry(row))
        else:
            row = volume
            await _undo_attachment(tx, volume)
    if running:
        ctx.state.spawn(_hot_unplug(ctx.state, row, bool(params.get("Force"))))
    out = attachment_item(row)
    out["State"] = "detaching" if running else "detached"
    return out


async def _hot_unplug(state: Any, row: Any, force: bool) -> None:
    volume_id, instance_id = row["volume_id"], row["instance_id"]
    error = None
    async with instance_lock(state, instance_id), file_lock(volume_id):
        if state.driver is not None:
            try:
                await state.driver.detach_disk(instance_id, ebs_store.disk_id(volume_id),
                                               timeout=FORCE_DETACH_TIMEOUT if force else DETACH_TIMEOUT)
            except VMNotFoundError:
                pass
            except DriverError as exc:
                if "is not attached" not in str(exc):
                    error = exc
        async with state.db.transaction() as tx:
            if error is None:
                await _undo_attachment(tx, row)
            else:   # the guest kept the disk: it stays attached
                log.warning("detaching %s from %s failed: %s", volume_id, instance_id, error)
                await tx.execute("UPDATE ec2_volumes SET attach_state = 'attached' WHERE volume_id = ?",
                                 (volume_id,))
                fresh = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (volume_id,))
                await _set_instance_device(tx, instance_id, fresh["device"], device_entry(fresh))


# -- what an instance's life does to its volumes ------------------------------------------------------

async def disks_for_start(state: Any, instance: Any) -> list[DiskAttachment]:
    """The data volumes a starting VM gets: every attached one, in attach order; volumes of the
    launch's block device mappings get their files here on first boot."""
    from ec2_api.volumes import write_volume_file  # noqa: PLC0415
    rows = await ebs_store.volumes_of_instance(state.db, instance["instance_id"])
    out = []
    for row in rows:
        if row["is_root"]:
            continue
        if not os.path.exists(row["path"]):
            await write_volume_file(row["path"], int(row["size_gib"]) * ebs_store.GIB, row["base_path"],
                                    row["base_format"])
        if row["state"] == "creating":
            async with state.db.transaction() as tx:
                await ebs_store.set_volume_state(tx, row["volume_id"], "in-use", from_states=("creating",))
        if row["attach_state"] in ("attaching", "attached"):
            out.append(DiskAttachment(ebs_store.disk_id(row["volume_id"]), row["path"]))
    return out


async def on_instance_terminated(tx: Any, instance: Any, at_us: int) -> None:
    """In the transaction that makes the instance ``terminated``: its DeleteOnTermination volumes
    are deleted (rows kept in ``deleted`` until their files are removed), the others detached."""
    rows = await tx.fetchall("SELECT * FROM ec2_volumes WHERE instance_id = ? AND state != 'deleted'",
                             (instance["instance_id"],))
    for row in rows:
        if row["delete_on_termination"]:
            fresh = await ebs_store.set_volume_state(tx, row["volume_id"], "deleted", from_states=(row["state"],),
                                                     attach_state="detached")
            if fresh is not None:
                await ebs_store.record_volume_event(tx, fresh, "deleted", at_us)
        else:
            await ebs_store.set_volume_state(tx, row["volume_id"], "available", from_states=(row["state"],),
                                             instance_id=None, device=None, attach_state=None, attach_us=None,
                                             is_root=0)


async def release_files(db: Any, instance: Any) -> None:
    """After the VM is gone: remove the files of the volumes that go with the instance."""
    rows = await db.fetchall("SELECT volume_id, path, delete_on_termination, state FROM ec2_volumes"
                             " WHERE instance_id = ?", (instance["instance_id"],))
    for row in rows:
        if row["delete_on_termination"]:
            await asyncio.to_thread(_unlink, row["path"])


async def forget_deleted(db: Any, instance_id: str) -> None:
    """Rows of volumes deleted with their instance, once their files are gone."""
    async with db.transaction() as tx:
        rows = await tx.fetchall("SELECT volume_id FROM ec2_volumes WHERE instance_id = ? AND state = 'deleted'",
                                 (instance_id,))
        for row in rows:
            await tx.execute("DELETE FROM ec2_tags WHERE resource_id = ?", (row["volume_id"],))
            await tx.execute("DELETE FROM ec2_volumes WHERE volume_id = ?", (row["volume_id"],))
    if rows:   # a deleted snapshot that only these volumes built on can go now
        from ec2_api import snapshot_files  # noqa: PLC0415
        await snapshot_files.collect(db)


def _unlink(path: str) -> None:
    for name in (path, path + ".part"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
