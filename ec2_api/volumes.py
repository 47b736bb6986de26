"""EBS volumes: CreateVolume, DeleteVolume, DescribeVolumes, ModifyVolume,
DescribeVolumesModifications, DescribeVolumeStatus, Describe/ModifyVolumeAttribute, EnableVolumeIO.

A volume is a thin qcow2 file (``ebs_store``). CreateVolume writes the row in state ``creating``
and answers; the file is made in the background (blank, or a copy-on-write overlay on the
snapshot's file) under a ``.part`` name and renamed, then the volume becomes ``available``. A
crash in between leaves a ``creating`` row that the start-up sweep finishes (the work is
idempotent) and a ``.part`` file that it removes. DeleteVolume removes the row (with its
``deleted`` usage event) and then the file; a crash in between leaves a file no row names, which
the sweep removes.

Encryption: ``Encrypted`` and ``KmsKeyId`` are recorded and shown as AWS shows them; the data is
not encrypted at rest by Nimbo (the qcow2 file is plain).
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from backend import images as backend_images
from backend.driver import DriverError
from ec2_api import ebs_store, ids, tag_store
from ec2_api.common import account_of, check_max_results, from_us, now_us
from ec2_api.ebs_store import (GIB, SIZE_LIMITS, IncorrectModificationState, InvalidParameterDependency,
                               VolumeInUse, owned_volume, owned_volumes)
from ec2_api.errors import (InvalidParameterCombination, InvalidParameterValue, MissingParameter,
                            check_dry_run, ec2_error)
from ec2_api.filters import apply_filters, paginate

log = logging.getLogger("nimbo.ec2")
InvalidVolumeModificationNotFound = ec2_error("InvalidVolumeModification.NotFound")
DEFAULT_KMS_ALIAS = "alias/aws/ebs"


# -- type rules ---------------------------------------------------------------------------------------

def default_iops(volume_type: str, size_gib: int) -> int | None:
    if volume_type == "gp2":
        return min(max(100, 3 * size_gib), 16000)
    if volume_type == "gp3":
        return 3000
    return None


def check_volume_spec(volume_type: str, size_gib: int, iops: int | None, throughput: int | None,
                      *, iops_given: bool, throughput_given: bool) -> tuple[int | None, int | None]:
    """AWS's size, IOPS and throughput rules per type; returns (iops, throughput) with defaults."""
    if volume_type not in SIZE_LIMITS:
        raise InvalidParameterValue(f"Value ({volume_type}) for parameter volumeType is invalid. "
                                    f"Valid values: {', '.join(SIZE_LIMITS)}")
    low, high = SIZE_LIMITS[volume_type]
    if size_gib < low:
        raise InvalidParameterValue(f"Volume of {size_gib}GiB is too small; minimum is {low}GiB.")
    if size_gib > high:
        raise InvalidParameterValue(f"Volume of {size_gib}GiB is too large for volume type {volume_type}; "
                                    f"maximum is {high}GiB.")
    if volume_type in ("io1", "io2"):
        if iops is None:
            raise InvalidParameterCombination(f"The parameter iops must be specified for {volume_type} volumes.")
        top, ratio = (64000, 50) if volume_type == "io1" else (256000, 1000)
        if not 100 <= iops <= top:
            raise InvalidParameterValue(f"Volume iops of {iops} is too {'low' if iops < 100 else 'high'}; "
                                        f"{'minimum is 100' if iops < 100 else f'maximum is {top}'}.")
        if iops > ratio * size_gib:
            raise InvalidParameterValue(f"Iops to volume size ratio of {iops / size_gib:g} is too high; "
                                        f"maximum is {ratio}.")
    elif volume_type == "gp3":
        iops = 3000 if iops is None else iops
        if not 3000 <= iops <= 16000:
            raise InvalidParameterValue(f"Volume iops of {iops} is too {'low' if iops < 3000 else 'high'}; "
                                        f"{'minimum is 3000' if iops < 3000 else 'maximum is 16000'}.")
        if iops > max(3000, 500 * size_gib):
            raise InvalidParameterValue(f"Iops to volume size ratio of {iops / size_gib:g} is too high; "
                                        f"maximum is 500.")
    elif iops_given:
        raise InvalidParameterCombination(f"The parameter iops is not supported for {volume_type} volumes.")
    else:
        iops = default_iops(volume_type, size_gib)
    if volume_type == "gp3":
        throughput = 125 if throughput is None else throughput
        if not 125 <= throughput <= 1000:
            raise InvalidParameterValue(f"Throughput of {throughput} MiB/s is invalid; valid values are "
                                        f"125-1000 MiB/s.")
        if throughput > iops / 4:
            raise InvalidParameterValue(f"Throughput ({throughput} MiB/s) is too high for {iops} IOPS; the "
                                        f"maximum ratio is 0.25 MiB/s per IOPS.")
    elif throughput_given:
        raise InvalidParameterCombination("throughput can only be specified for volumeType gp3.")
    return iops, throughput


def zone_of(ctx: Any, params: dict) -> str:
    zones = list(ctx.app.config.regions[ctx.region])
    zone = params.get("AvailabilityZone")
    zone_id = params.get("AvailabilityZoneId")
    if zone and zone_id:
        raise InvalidParameterCombination("Specify either AvailabilityZone or AvailabilityZoneId, not both.")
    if zone_id:
        from ec2_api.regions import zone_id as zone_id_of  # noqa: PLC0415
        by_id = {zone_id_of(ctx.region, i): z for i, z in enumerate(zones)}
        if zone_id not in by_id:
            raise InvalidParameterValue(f"Invalid availability zone id: [{zone_id}]")
        return by_id[zone_id]
    if not zone:
        raise MissingParameter("The request must contain the parameter AvailabilityZone")
    if zone not in zones:
        raise InvalidParameterValue(f"Invalid availability zone: [{zone}]")
    return zone


def kms_key(ctx: Any, encrypted: bool, kms_key_id: str | None) -> str | None:
    if kms_key_id and not encrypted:
        raise InvalidParameterDependency("The parameter KmsKeyId requires the parameter Encrypted to be set.")
    if not encrypted:
        return None
    if kms_key_id:
        return kms_key_id if kms_key_id.startswith("arn:") else \
            f"arn:aws:kms:{ctx.region}:{account_of(ctx)}:{kms_key_id if kms_key_id.startswith('alias/') else 'key/' + kms_key_id}"
    return f"arn:aws:kms:{ctx.region}:{account_of(ctx)}:{DEFAULT_KMS_ALIAS}"


# -- rendering ----------------------------------------------------------------------------------------

def attachment_item(row: Any) -> dict:
    return {"AttachTime": from_us(row["attach_us"]), "Device": row["device"], "InstanceId": row["instance_id"],
            "State": row["attach_state"], "VolumeId": row["volume_id"],
            "DeleteOnTermination": bool(row["delete_on_termination"])}


def volume_item(row: Any, tags: dict[str, str], zone_ids: dict[str, str]) -> dict:
    item = {
        "Attachments": [attachment_item(row)] if row["instance_id"] else [],
        "AvailabilityZone": row["availability_zone"], "AvailabilityZoneId": zone_ids.get(row["availability_zone"]),
        "CreateTime": from_us(row["created_us"]), "Encrypted": bool(row["encrypted"]),
        "KmsKeyId": row["kms_key_id"], "Size": row["size_gib"], "SnapshotId": row["snapshot_id"] or "",
        "State": row["state"], "VolumeId": row["volume_id"], "Iops": row["iops"],
        "VolumeType": row["volume_type"], "MultiAttachEnabled": bool(row["multi_attach"]),
        "Throughput": row["throughput"], "Tags": tag_store.tag_list(tags) or None,
    }
    if row["encrypted"]:
        item["SseType"] = "sse-ebs"
    return item


def zone_ids(ctx: Any) -> dict[str, str]:
    from ec2_api.regions import zone_id  # noqa: PLC0415
    return {z: zone_id(ctx.region, i) for i, z in enumerate(ctx.app.config.regions[ctx.region])}


async def render(ctx: Any, rows: list[Any]) -> list[dict]:
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [r["volume_id"] for r in rows])
    zids = zone_ids(ctx)
    return [volume_item(r, tags[r["volume_id"]], zids) for r in rows]


# -- CreateVolume ---------------------------------------------------------------------------------------

async def create_volume(ctx: Any, params: dict) -> dict:
    db, account = ctx.app.db, account_of(ctx)
    zone = zone_of(ctx, params)
    volume_type = params.get("VolumeType") or "gp2"
    snapshot = None
    if params.get("SnapshotId"):
        from ec2_api import image_snapshots  # noqa: PLC0415
        await image_snapshots.ensure_image_snapshots(db, ctx.app.config)
        snapshot = await ebs_store.usable_snapshot(db, account, ctx.region, params["SnapshotId"])
        if snapshot["state"] != "completed":
            raise ebs_store.IncorrectState(f"Snapshot '{snapshot['snapshot_id']}' is in the "
                                           f"'{snapshot['state']}' state.")
    size = params.get("Size")
    if size is None:
        if snapshot is None:
            raise MissingParameter("The request must contain the parameter size or snapshotId")
        size = snapshot["volume_size"]
    elif snapshot is not None and size < snapshot["volume_size"]:
        raise InvalidParameterValue(f"Volume of size {size}GB is smaller than snapshot "
                                    f"'{snapshot['snapshot_id']}', expect size >= {snapshot['volume_size']}GB")
    iops, throughput = check_volume_spec(volume_type, int(size), params.get("Iops"), params.get("Throughput"),
                                         iops_given=params.get("Iops") is not None,
                                         throughput_given=params.get("Throughput") is not None)
    multi = bool(params.get("MultiAttachEnabled"))
    if multi and volume_type not in ("io1", "io2"):
        raise InvalidParameterCombination("Multi-Attach is supported only for io1 and io2 volumes.")
    encrypted = bool(params.get("Encrypted")) or bool(snapshot and snapshot["encrypted"])
    kms = kms_key(ctx, encrypted, params.get("KmsKeyId") or (snapshot["kms_key_id"] if snapshot else None))
    tags = tag_store.tag_specifications(params, {"volume"}).get("volume", {})
    token = params.get("ClientToken")
    if token:
        replay = await db.fetchone("SELECT * FROM ec2_volumes WHERE account_id = ? AND region = ?"
                                   " AND json_extract(data, '$.client_token') = ?", (account, ctx.region, token))
        if replay is not None:
            check_dry_run(params)
            return (await render(ctx, [replay]))[0]
    check_dry_run(params)
    volume_id = ids.new_id("vol")
    at = now_us(ctx)
    async with db.transaction() as tx:
        row = await ebs_store.insert_volume(
            tx, volume_id=volume_id, account_id=account, region=ctx.region, zone=zone, size_gib=int(size),
            volume_type=volume_type, iops=iops, throughput=throughput, encrypted=encrypted, kms_key_id=kms,
            snapshot_id=snapshot["snapshot_id"] if snapshot else None, multi_attach=multi, state="creating",
            created_us=at, path=ebs_store.volume_file(ctx.app.config, volume_id),
            base_path=snapshot["path"] if snapshot else None, base_format=ebs_store.data_of(snapshot).get("format", "qcow2") if snapshot else None,
            data={"client_token": token} if token else None)
        if tags:
            await tag_store.write_tags(tx, account, ctx.region, volume_id, "volume", tags)
    ctx.state.spawn(make_volume_file(ctx.state, row))
    return (await render(ctx, [row]))[0]


async def write_volume_file(path: str, size_bytes: int, base_path: str | None, base_format: str | None) -> None:
    """The volume's qcow2 file: blank, or an overlay on ``base_path`` (copy-on-write), written
    under a temporary name, fsynced and renamed into place."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    try:
        if base_path:
            await backend_images.create_overlay(base_path, tmp, size_bytes=size_bytes, backing_format=base_format)
        else:
            await backend_images.create_blank(tmp, size_bytes)
        await asyncio.to_thread(ebs_store.fsync_rename, tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


async def make_volume_file(state: Any, row: Any) -> None:
    """``creating`` -> ``available`` once the file exists; a failure -> ``error``."""
    db = state.db
    try:
        if not os.path.exists(row["path"]):
            await write_volume_file(row["path"], int(row["size_gib"]) * GIB, row["base_path"], row["base_format"])
    except Exception as exc:  # noqa: BLE001 (the volume records that it failed)
        log.warning("creating volume %s failed: %s", row["volume_id"], exc)
        async with db.transaction() as tx:
            fresh = await ebs_store.set_volume_state(tx, row["volume_id"], "error", from_states=("creating",))
            if fresh is not None:
                await ebs_store.record_volume_event(tx, fresh, "error", max(state.now_us(), row["created_us"]))
        return
    async with db.transaction() as tx:
        await ebs_store.set_volume_state(tx, row["volume_id"], "available", from_states=("creating",))


# -- DeleteVolume -----------------------------------------------------------------------------------------

async def delete_volume(ctx: Any, params: dict) -> dict:
    db = ctx.app.db
    row = await owned_volume(db, account_of(ctx), ctx.region, params.get("VolumeId"))
    if row["instance_id"] or row["state"] == "in-use":
        raise VolumeInUse(f"Volume {row['volume_id']} is currently attached to {row['instance_id']}")
    if row["state"] not in ("available", "error"):
        raise ebs_store.IncorrectState(f"The volume '{row['volume_id']}' is '{row['state']}'.")
    check_dry_run(params)
    await delete_volume_row(db, row, now_us(ctx), from_states=("available", "error"))
    return {}


async def delete_volume_row(db: Any, row: Any, at: int, *, from_states: tuple) -> bool:
    """The row goes (with its ``deleted`` event and tags), then the file."""
    async with db.transaction() as tx:
        fresh = await ebs_store.set_volume_state(tx, row["volume_id"], "deleted", from_states=from_states)
        if fresh is None:
            return False
        await ebs_store.record_volume_event(tx, fresh, "deleted", at)
        await tag_store.delete_all_tags(tx, row["volume_id"])
        await tx.execute("DELETE FROM ec2_volumes WHERE volume_id = ?", (row["volume_id"],))
    await asyncio.to_thread(_remove, row["path"])
    from ec2_api import snapshot_files  # noqa: PLC0415
    await snapshot_files.collect(db)
    return True


def _remove(path: str) -> None:
    for name in (path, path + ".part"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


# -- DescribeVolumes --------------------------------------------------------------------------------------

_VOLUME_FILTERS = {
    "attachment.attach-time": lambda v: [a["AttachTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z") for a in v["Attachments"]],
    "attachment.delete-on-termination": lambda v: [a["DeleteOnTermination"] for a in v["Attachments"]],
    "attachment.device": lambda v: [a["Device"] for a in v["Attachments"]],
    "attachment.instance-id": lambda v: [a["InstanceId"] for a in v["Attachments"]],
    "attachment.status": lambda v: [a["State"] for a in v["Attachments"]],
    "availability-zone": lambda v: v["AvailabilityZone"],
    "availability-zone-id": lambda v: v["AvailabilityZoneId"],
    "create-time": lambda v: v["CreateTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "encrypted": lambda v: v["Encrypted"],
    "fast-restored": lambda v: False,
    "multi-attach-enabled": lambda v: v["MultiAttachEnabled"],
    "size": lambda v: v["Size"],
    "snapshot-id": lambda v: v["SnapshotId"] or None,
    "status": lambda v: v["State"],
    "volume-id": lambda v: v["VolumeId"],
    "volume-type": lambda v: v["VolumeType"],
    "iops": lambda v: v["Iops"],
    "throughput": lambda v: v["Throughput"],
    "owner-id": lambda v: v["_owner"],
}


async def visible_volumes(ctx: Any, volume_ids: list[str]) -> list[Any]:
    if volume_ids:
        return await owned_volumes(ctx.app.db, account_of(ctx), ctx.region, volume_ids)
    return await ctx.app.db.fetchall(
        "SELECT * FROM ec2_volumes WHERE account_id = ? AND region = ? AND state != 'deleted'"
        " ORDER BY volume_id", (account_of(ctx), ctx.region))


async def describe_volumes(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    wanted = params.get("VolumeIds") or []
    if wanted and params.get("MaxResults") is not None:
        raise InvalidParameterCombination("The parameter volumeSet cannot be used with the parameter maxResults")
    max_results = check_max_results(params, 5, 500)
    rows = await visible_volumes(ctx, wanted)
    items = await render(ctx, rows)
    for item, row in zip(items, rows):
        item["_owner"] = row["account_id"]
    tags = {i["VolumeId"]: {t["Key"]: t["Value"] for t in i["Tags"] or []} for i in items}
    items = apply_filters(items, params.get("Filters"), _VOLUME_FILTERS, tags=lambda v: tags[v["VolumeId"]])
    page, token = paginate(items, lambda v: v["VolumeId"], max_results, params.get("NextToken"), maximum=500)
    for item in page:
        item.pop("_owner", None)
    return {"Volumes": page, "NextToken": token}


# -- ModifyVolume ------------------------------------------------------------------------------------------

def modification_item(volume_id: str, mod: dict) -> dict:
    return {
        "VolumeId": volume_id, "ModificationState": mod["state"], "StatusMessage": mod.get("message"),
        "TargetSize": mod["target"]["size"], "TargetIops": mod["target"]["iops"],
        "TargetVolumeType": mod["target"]["type"], "TargetThroughput": mod["target"]["throughput"],
        "TargetMultiAttachEnabled": mod["target"]["multi"],
        "OriginalSize": mod["original"]["size"], "OriginalIops": mod["original"]["iops"],
        "OriginalVolumeType": mod["original"]["type"], "OriginalThroughput": mod["original"]["throughput"],
        "OriginalMultiAttachEnabled": mod["original"]["multi"], "Progress": mod.get("progress", 0),
        "StartTime": from_us(mod["start_us"]), "EndTime": from_us(mod.get("end_us")),
    }


async def modify_volume(ctx: Any, params: dict) -> dict:
    db = ctx.app.db
    row = await owned_volume(db, account_of(ctx), ctx.region, params.get("VolumeId"))
    if row["state"] not in ("available", "in-use"):
        raise ebs_store.IncorrectState(f"The volume '{row['volume_id']}' is '{row['state']}'.")
    current = ebs_store.data_of(row).get("modification")
    if current and current["state"] in ("modifying", "optimizing"):
        raise IncorrectModificationState(f"Volume {row['volume_id']} is already being modified.")
    if all(params.get(k) is None for k in ("Size", "VolumeType", "Iops", "Throughput", "MultiAttachEnabled")):
        raise MissingParameter("The request must contain at least one of Size, VolumeType, Iops, Throughput "
                               "or MultiAttachEnabled")
    size = params.get("Size") if params.get("Size") is not None else row["size_gib"]
    if size < row["size_gib"]:
        raise InvalidParameterValue(f"New size cannot be smaller than existing size ({row['size_gib']}GiB)")
    volume_type = params.get("VolumeType") or row["volume_type"]
    keep_iops = volume_type == row["volume_type"] and volume_type in ("io1", "io2", "gp3")
    iops = params.get("Iops") if params.get("Iops") is not None else (row["iops"] if keep_iops else None)
    keep_tp = volume_type == row["volume_type"] == "gp3"
    throughput = params.get("Throughput") if params.get("Throughput") is not None else \
        (row["throughput"] if keep_tp else None)
    iops, throughput = check_volume_spec(volume_type, int(size), iops, throughput,
                                         iops_given=params.get("Iops") is not None,
                                         throughput_given=params.get("Throughput") is not None)
    multi = bool(params["MultiAttachEnabled"]) if params.get("MultiAttachEnabled") is not None \
        else bool(row["multi_attach"])
    if multi and volume_type not in ("io1", "io2"):
        raise InvalidParameterCombination("Multi-Attach is supported only for io1 and io2 volumes.")
    check_dry_run(params)
    at = now_us(ctx)
    mod = {"state": "modifying", "progress": 0, "start_us": at,
           "original": {"size": row["size_gib"], "iops": row["iops"], "type": row["volume_type"],
                        "throughput": row["throughput"], "multi": bool(row["multi_attach"])},
           "target": {"size": int(size), "iops": iops, "type": volume_type, "throughput": throughput,
                      "multi": multi}}
    async with db.transaction() as tx:
        fresh = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (row["volume_id"],))
        if fresh["state"] not in ("available", "in-use"):
            raise ebs_store.IncorrectState(f"The volume '{row['volume_id']}' is '{fresh['state']}'.")
        seq = int(ebs_store.data_of(fresh).get("modifications", 0)) + 1
        await tx.execute("UPDATE ec2_volumes SET size_gib = ?, volume_type = ?, iops = ?, throughput = ?,"
                         " multi_attach = ? WHERE volume_id = ?",
                         (int(size), volume_type, iops, throughput, int(multi), row["volume_id"]))
        await ebs_store.update_volume_data(tx, row["volume_id"], modification=mod, modifications=seq)
        fresh = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (row["volume_id"],))
        await ebs_store.record_volume_event(tx, fresh, fresh["state"], at, key=f"modified:{seq}")
    ctx.state.spawn(_grow(ctx, fresh, int(size) * GIB))
    return {"VolumeModification": modification_item(row["volume_id"], mod)}


async def _grow(ctx: Any, row: Any, size_bytes: int) -> None:
    """Grow the file: online through the hypervisor (QMP block_resize) when attached to a running
    VM, else with qemu-img; then the modification completes (or fails, with its message)."""
    from ec2_api import volume_attachments  # noqa: PLC0415
    db = ctx.app.db
    message = None
    try:
        async with volume_attachments.volume_locks(ctx.state, [row]):
            info = await backend_images.info(row["path"], "qcow2") if os.path.exists(row["path"]) else None
            if info is not None and info["virtual_size"] < size_bytes:
                online = False
                if row["instance_id"] and row["attach_state"] == "attached" and ctx.state.driver is not None:
                    disk = "root" if row["is_root"] else ebs_store.disk_id(row["volume_id"])
                    try:
                        online = await ctx.state.driver.resize_disk(row["instance_id"], disk, size_bytes)
                    except DriverError as exc:
                        log.info("online resize of %s failed (%s); trying offline", row["volume_id"], exc)
                if not online:
                    await backend_images.resize(row["path"], size_bytes)
    except Exception as exc:  # noqa: BLE001 (the modification records its failure)
        log.warning("modifying volume %s failed: %s", row["volume_id"], exc)
        message = f"The volume could not be grown: {exc}"[:250]
    async with db.transaction() as tx:
        fresh = await tx.fetchone("SELECT data FROM ec2_volumes WHERE volume_id = ?", (row["volume_id"],))
        if fresh is None:
            return
        mod = dict(ebs_store.data_of(fresh).get("modification") or {})
        mod.update(state="failed" if message else "completed", progress=100, end_us=now_us(ctx), message=message)
        await ebs_store.update_volume_data(tx, row["volume_id"], modification=mod)


async def describe_volumes_modifications(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    max_results = check_max_results(params, 5, 500)
    rows = await visible_volumes(ctx, params.get("VolumeIds") or [])
    never = [r["volume_id"] for r in rows if not ebs_store.data_of(r).get("modification")]
    if params.get("VolumeIds") and never:
        raise InvalidVolumeModificationNotFound(f"Modification for volume '{never[0]}' does not exist.")
    items = [modification_item(r["volume_id"], ebs_store.data_of(r)["modification"])
             for r in rows if ebs_store.data_of(r).get("modification")]
    items = apply_filters(items, params.get("Filters"), {
        "modification-state": lambda m: m["ModificationState"],
        "original-iops": lambda m: m["OriginalIops"], "original-size": lambda m: m["OriginalSize"],
        "original-volume-type": lambda m: m["OriginalVolumeType"],
        "original-multi-attach-enabled": lambda m: m["OriginalMultiAttachEnabled"],
        "start-time": lambda m: m["StartTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "target-iops": lambda m: m["TargetIops"], "target-size": lambda m: m["TargetSize"],
        "target-volume-type": lambda m: m["TargetVolumeType"],
        "target-throughput": lambda m: m["TargetThroughput"],
        "target-multi-attach-enabled": lambda m: m["TargetMultiAttachEnabled"],
        "volume-id": lambda m: m["VolumeId"],
    })
    page, token = paginate(items, lambda m: m["VolumeId"], max_results, params.get("NextToken"), maximum=500)
    return {"VolumesModifications": page, "NextToken": token}


# -- status and attributes --------------------------------------------------------------------------------

def _io_enabled(row: Any) -> bool:
    return ebs_store.data_of(row).get("io_enabled", True)


async def describe_volume_status(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    wanted = params.get("VolumeIds") or []
    if wanted and params.get("MaxResults") is not None:
        raise InvalidParameterCombination("The parameter volumeSet cannot be used with the parameter maxResults")
    max_results = check_max_results(params, 5, 1000)
    rows = await visible_volumes(ctx, wanted)
    zids = zone_ids(ctx)
    items = []
    for row in rows:
        status = "ok" if row["state"] in ("available", "in-use") and _io_enabled(row) else \
            "impaired" if row["state"] == "error" or not _io_enabled(row) else "insufficient-data"
        io = "passed" if status == "ok" else "failed" if status == "impaired" else "insufficient-data"
        item = {"VolumeId": row["volume_id"], "AvailabilityZone": row["availability_zone"],
                "AvailabilityZoneId": zids.get(row["availability_zone"]),
                "VolumeStatus": {"Status": status, "Details": [
                    {"Name": "io-enabled", "Status": io},
                    {"Name": "io-performance", "Status": "not-applicable"}]},
                "Actions": [], "Events": []}
        if not _io_enabled(row):
            item["Actions"] = [{"Code": "enable-volume-io", "Description": "Enable volume I/O",
                                "EventId": "evol-" + row["volume_id"][4:], "EventType": "potential-data-inconsistency"}]
        if row["instance_id"]:
            item["AttachmentStatuses"] = [{"InstanceId": row["instance_id"], "IoPerformance": "normal"}]
        items.append(item)
    items = apply_filters(items, params.get("Filters"), {
        "availability-zone": lambda s: s["AvailabilityZone"],
        "volume-status.status": lambda s: s["VolumeStatus"]["Status"],
        "volume-status.details-name": lambda s: [d["Name"] for d in s["VolumeStatus"]["Details"]],
        "volume-status.details-status": lambda s: [d["Status"] for d in s["VolumeStatus"]["Details"]],
        "action.code": lambda s: [a["Code"] for a in s["Actions"]],
        "action.description": lambda s: [a["Description"] for a in s["Actions"]],
        "action.event-id": lambda s: [a["EventId"] for a in s["Actions"]],
        "event.description": lambda s: None, "event.event-id": lambda s: None,
        "event.event-type": lambda s: None, "event.not-after": lambda s: None, "event.not-before": lambda s: None,
    })
    page, token = paginate(items, lambda s: s["VolumeId"], max_results, params.get("NextToken"))
    return {"VolumeStatuses": page, "NextToken": token}


async def describe_volume_attribute(ctx: Any, params: dict) -> dict:
    attribute = params.get("Attribute")
    if attribute not in ("autoEnableIO", "productCodes"):
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
    row = await owned_volume(ctx.app.db, account_of(ctx), ctx.region, params.get("VolumeId"))
    check_dry_run(params)
    out: dict[str, Any] = {"VolumeId": row["volume_id"]}
    if attribute == "autoEnableIO":
        out["AutoEnableIO"] = {"Value": bool(ebs_store.data_of(row).get("auto_enable_io", False))}
    else:
        out["ProductCodes"] = []
    return out


async def modify_volume_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_volume(ctx.app.db, account_of(ctx), ctx.region, params.get("VolumeId"))
    value = (params.get("AutoEnableIO") or {}).get("Value")
    if value is None:
        raise MissingParameter("The request must contain the parameter AutoEnableIO")
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await ebs_store.update_volume_data(tx, row["volume_id"], auto_enable_io=bool(value))
    return {}


async def enable_volume_io(ctx: Any, params: dict) -> dict:
    row = await owned_volume(ctx.app.db, account_of(ctx), ctx.region, params.get("VolumeId"))
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await ebs_store.update_volume_data(tx, row["volume_id"], io_enabled=True)
    return {}
