"""EBS snapshots: CreateSnapshot, CreateSnapshots, CopySnapshot, DeleteSnapshot, DescribeSnapshots,
Describe/Modify/ResetSnapshotAttribute.

CreateSnapshot writes the ``pending`` row, freezes the volume's point in time at once (an internal
qcow2 snapshot, see ``snapshot_files``: crash-consistent, ~10-50 ms) and answers; the data is
exported in the background and the snapshot becomes ``completed`` (Progress 100%). CopySnapshot
names the same immutable bytes under a new id (a hard link), in any region of this endpoint.
Crash story: see ``snapshot_files`` (pending rows are finished or marked ``error`` at start-up;
work files are removed).

Who sees a snapshot: its owner, everyone when it is public (createVolumePermission group
``all``), and the accounts it is shared with. The snapshots behind images (``image_snapshots``)
are snapshots like the others, public when their image is.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from backend import images as backend_images
from backend.driver import DriverError
from ec2_api import ebs_store, ids, instance_store, snapshot_files, tag_store
from ec2_api.common import account_of, check_max_results, from_us, now_us
from ec2_api.ebs_store import (IncorrectState, InvalidSnapshotInUse, check_snapshot_ids, may_use_snapshot,
                               owned_volume, snapshot_not_found, volume_users)
from ec2_api.errors import (EC2Error, InvalidParameterCombination, InvalidParameterValue, InvalidUserIDMalformed,
                            MissingParameter, OperationNotPermitted, UnauthorizedOperation,
                            check_dry_run)
from ec2_api.filters import apply_filters, paginate
from ec2_api.permissions import apply_permission_changes, owner_matches, permission_changes

COPY_VOLUME_ID = "vol-ffffffff"   # what AWS shows as the volume of a copied or imported snapshot


class SnapshotFailed(EC2Error):
    code = "InternalError"
    status = 500


# -- rendering ---------------------------------------------------------------------------------------------

def snapshot_item(row: Any, tags: dict[str, str], viewer: str) -> dict:
    item = {
        "SnapshotId": row["snapshot_id"], "VolumeId": row["volume_id"], "State": row["state"],
        "StartTime": from_us(row["started_us"]), "Progress": f"{row['progress']}%", "OwnerId": row["account_id"],
        "Description": row["description"], "VolumeSize": row["volume_size"], "Encrypted": bool(row["encrypted"]),
        "KmsKeyId": row["kms_key_id"], "OwnerAlias": row["owner_alias"], "StorageTier": "standard",
        "Tags": tag_store.tag_list(tags) if row["account_id"] == viewer else None,
    }
    if row["state_message"]:
        item["StateMessage"] = row["state_message"]
    if row["completed_us"]:
        item["CompletionTime"] = from_us(row["completed_us"])
        item["FullSnapshotSizeInBytes"] = row["volume_size"] * ebs_store.GIB
    if row["encrypted"]:
        item["SseType"] = "sse-ebs"
    return item


def snapshot_info(row: Any, tags: dict[str, str]) -> dict:
    """CreateSnapshots' shorter shape."""
    return {"SnapshotId": row["snapshot_id"], "VolumeId": row["volume_id"], "State": row["state"],
            "StartTime": from_us(row["started_us"]), "Progress": f"{row['progress']}%",
            "OwnerId": row["account_id"], "Description": row["description"], "VolumeSize": row["volume_size"],
            "Encrypted": bool(row["encrypted"]), "Tags": tag_store.tag_list(tags) or None}


# -- CreateSnapshot / CreateSnapshots ---------------------------------------------------------------------------

async def _boot_for(db: Any, volume: Any) -> dict | None:
    """How a disk made from this volume boots (the instance's kernel and initrd for a root
    volume, else what its source snapshot knew), so that RegisterImage can make it launchable."""
    if volume["is_root"] and volume["instance_id"]:
        instance = await instance_store.load(db, volume["instance_id"])
        if instance is not None:
            boot = instance_store.data_of(instance).get("boot") or {}
            return {k: v for k, v in boot.items() if k in ("kernel", "initrd", "cmdline")} or None
    if volume["snapshot_id"]:
        source = await db.fetchone("SELECT data FROM ec2_snapshots WHERE snapshot_id = ?", (volume["snapshot_id"],))
        if source is not None:
            return ebs_store.data_of(source).get("boot")
    return None


async def _insert_pending(tx: Any, ctx: Any, volume: Any, description: str, at: int, boot: dict | None,
                          tags: dict[str, str]) -> Any:
    snapshot_id = ids.new_id("snap")
    await tx.execute(
        "INSERT INTO ec2_snapshots (snapshot_id, account_id, region, volume_id, volume_size, state, progress,"
        " started_us, description, encrypted, kms_key_id, path, source_path, data)"
        " VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?, ?)",
        (snapshot_id, volume["account_id"], volume["region"], volume["volume_id"], volume["size_gib"], at,
         description, volume["encrypted"], volume["kms_key_id"], ebs_store.snapshot_file(ctx.app.config, snapshot_id),
         volume["path"], json.dumps({"kind": "volume", "boot": boot, "format": "qcow2"}, sort_keys=True)))
    if tags:
        await tag_store.write_tags(tx, volume["account_id"], volume["region"], snapshot_id, "snapshot", tags)
    return await tx.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,))


def _check_volume_ready(volume: Any) -> None:
    if volume["state"] not in ("available", "in-use"):
        raise IncorrectState(f"The volume '{volume['volume_id']}' is '{volume['state']}'.")
    if volume["attach_state"] in ("attaching", "detaching"):
        raise IncorrectState(f"The volume '{volume['volume_id']}' is '{volume['attach_state']}'.")
    if not os.path.exists(volume["path"]):   # the volume of an instance that has not booted yet
        raise IncorrectState(f"The volume '{volume['volume_id']}' is not ready yet; try again when its "
                             f"instance is running.")


async def take_snapshots(ctx: Any, volumes: list[Any], description: str,
                         tags_for: Any) -> list[Any]:
    """Pending rows, then one frozen point in time for all of ``volumes``, then the exports in
    the background. A freeze that fails removes the rows again (nothing half-made stays)."""
    db = ctx.app.db
    at = now_us(ctx)
    rows = []
    boots = [await _boot_for(db, v) for v in volumes]
    async with db.transaction() as tx:
        for volume, boot in zip(volumes, boots):
            rows.append(await _insert_pending(tx, ctx, volume, description, at, boot, tags_for(volume)))
    try:
        await snapshot_files.freeze(ctx.state, list(zip(rows, volumes)))
    except (DriverError, backend_images.ImageError, OSError) as exc:
        async with db.transaction() as tx:
            for row in rows:
                await tx.execute("DELETE FROM ec2_snapshots WHERE snapshot_id = ?", (row["snapshot_id"],))
                await tag_store.delete_all_tags(tx, row["snapshot_id"])
        raise SnapshotFailed(f"The snapshot could not be taken: {exc}") from exc
    for row in rows:
        ctx.state.spawn(snapshot_files.export(ctx.state, row["snapshot_id"]))
    return rows


async def create_snapshot(ctx: Any, params: dict) -> dict:
    volume = await owned_volume(ctx.app.db, account_of(ctx), ctx.region, params.get("VolumeId"))
    description = params.get("Description") or ""
    if len(description) > 255:
        raise InvalidParameterValue("The description can be at most 255 characters long.")
    tags = tag_store.tag_specifications(params, {"snapshot"}).get("snapshot", {})
    _check_volume_ready(volume)
    check_dry_run(params)
    (row,) = await take_snapshots(ctx, [volume], description, lambda v: tags)
    return snapshot_item(row, tags, account_of(ctx))


async def create_snapshots(ctx: Any, params: dict) -> dict:
    spec = params.get("InstanceSpecification") or {}
    if not spec.get("InstanceId"):
        raise MissingParameter("The request must contain the parameter InstanceSpecification.InstanceId")
    db, account = ctx.app.db, account_of(ctx)
    (instance,) = await instance_store.load_owned(db, account, ctx.region, [spec["InstanceId"]], now_us(ctx))
    if instance["state"] in ("terminated", "shutting-down"):
        raise IncorrectState(f"The instance '{instance['instance_id']}' is '{instance['state']}'.")
    excluded = set(spec.get("ExcludeDataVolumeIds") or [])
    ebs_store.check_volume_ids(excluded)
    volumes = [v for v in await ebs_store.volumes_of_instance(db, instance["instance_id"])
               if v["attach_state"] == "attached"]
    for volume_id in excluded:
        if not any(v["volume_id"] == volume_id for v in volumes):
            raise InvalidParameterValue(f"The volume '{volume_id}' is not attached to instance "
                                        f"'{instance['instance_id']}'")
        if any(v["volume_id"] == volume_id and v["is_root"] for v in volumes):
            raise InvalidParameterValue("The boot volume cannot be excluded with ExcludeDataVolumeIds; use "
                                        "ExcludeBootVolume")
    volumes = [v for v in volumes if v["volume_id"] not in excluded
               and not (spec.get("ExcludeBootVolume") and v["is_root"])]
    if not volumes:
        raise InvalidParameterValue("No volumes to snapshot: every volume of the instance is excluded")
    tags = tag_store.tag_specifications(params, {"snapshot"}).get("snapshot", {})
    copy = params.get("CopyTagsFromSource")
    if copy is not None and copy != "volume":
        raise InvalidParameterValue(f"Value ({copy}) for parameter CopyTagsFromSource is invalid.")
    for volume in volumes:
        _check_volume_ready(volume)
    check_dry_run(params)
    volume_tags = await tag_store.tags_of(db, account, [v["volume_id"] for v in volumes]) if copy else {}
    rows = await take_snapshots(ctx, volumes, params.get("Description") or "",
                                lambda v: {**volume_tags.get(v["volume_id"], {}), **tags})
    all_tags = await tag_store.tags_of(db, account, [r["snapshot_id"] for r in rows])
    return {"Snapshots": [snapshot_info(r, all_tags[r["snapshot_id"]]) for r in rows]}


# -- CopySnapshot -------------------------------------------------------------------------------------------

async def copy_snapshot(ctx: Any, params: dict) -> dict:
    db, account = ctx.app.db, account_of(ctx)
    source_id, source_region = params.get("SourceSnapshotId"), params.get("SourceRegion")
    if not source_id:
        raise MissingParameter("The request must contain the parameter SourceSnapshotId")
    if not source_region:
        raise MissingParameter("The request must contain the parameter SourceRegion")
    if source_region not in ctx.app.config.regions:
        raise InvalidParameterValue(f"Invalid region: {source_region}")
    if params.get("DestinationRegion") and params["DestinationRegion"] != ctx.region:
        raise InvalidParameterValue("DestinationRegion must be the region the request is sent to")
    source = await ebs_store.usable_snapshot(db, account, source_region, source_id)
    if source["state"] != "completed":
        raise IncorrectState(f"Snapshot '{source_id}' is in the '{source['state']}' state.")
    encrypted = bool(params.get("Encrypted")) or bool(source["encrypted"])
    from ec2_api.volumes import kms_key  # noqa: PLC0415
    kms = kms_key(ctx, encrypted, params.get("KmsKeyId") or source["kms_key_id"])
    tags = tag_store.tag_specifications(params, {"snapshot"}).get("snapshot", {})
    check_dry_run(params)
    snapshot_id = ids.new_id("snap")
    path = ebs_store.snapshot_file(ctx.app.config, snapshot_id)
    data = {**ebs_store.data_of(source), "kind": "copy", "source_snapshot_id": source_id}
    at = now_us(ctx)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO ec2_snapshots (snapshot_id, account_id, region, volume_id, volume_size, state, progress,"
            " started_us, description, encrypted, kms_key_id, path, parent_path, source_path, data)"
            " VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            (snapshot_id, account, ctx.region, COPY_VOLUME_ID, source["volume_size"], at,
             params.get("Description") or f"[Copied {source_id} from {source_region}]", int(encrypted), kms, path,
             source["parent_path"], source["path"], json.dumps(data, sort_keys=True)))
        if tags:
            await tag_store.write_tags(tx, account, ctx.region, snapshot_id, "snapshot", tags)
    ctx.state.spawn(finish_copy(ctx.state, snapshot_id))
    return {"SnapshotId": snapshot_id, "Tags": tag_store.tag_list(tags) or None}


async def finish_copy(state: Any, snapshot_id: str) -> None:
    """The copy's file is a hard link of the source's (immutable) file: same bytes, own name."""
    import asyncio  # noqa: PLC0415
    row = await state.db.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,))
    if row is None or row["state"] != "pending":
        return
    try:
        await asyncio.to_thread(snapshot_files.link_or_copy, row["source_path"], row["path"])
    except OSError as exc:
        async with state.db.transaction() as tx:
            await tx.execute("UPDATE ec2_snapshots SET state = 'error', state_message = ? WHERE snapshot_id = ?",
                             (f"Client.InternalError: the copy failed: {exc}"[:250], snapshot_id))
        return
    stored = snapshot_files.stored_bytes(row["path"])
    at = max(state.now_us(), row["started_us"])
    async with state.db.transaction() as tx:
        if await tx.execute("UPDATE ec2_snapshots SET state = 'completed', progress = 100, completed_us = ?,"
                            " stored_bytes = ? WHERE snapshot_id = ? AND state = 'pending'", (at, stored, snapshot_id)):
            await ebs_store.record_snapshot_bytes(tx, row, stored, at, "stored")


# -- DeleteSnapshot -------------------------------------------------------------------------------------------

async def owned_snapshot(ctx: Any, snapshot_id: str | None) -> Any:
    if not snapshot_id:
        raise MissingParameter("The request must contain the parameter SnapshotId")
    check_snapshot_ids([snapshot_id])
    from ec2_api import image_snapshots  # noqa: PLC0415
    await image_snapshots.ensure_image_snapshots(ctx.app.db, ctx.app.config)
    row = await ctx.app.db.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ? AND region = ?"
                                    " AND state != 'deleted'", (snapshot_id, ctx.region))
    if row is None or not may_use_snapshot(row, account_of(ctx)):
        raise snapshot_not_found([snapshot_id])
    if row["account_id"] != account_of(ctx):
        raise UnauthorizedOperation(f"You are not authorized to perform this operation on snapshot {snapshot_id}.")
    return row


async def delete_snapshot(ctx: Any, params: dict) -> dict:
    row = await owned_snapshot(ctx, params.get("SnapshotId"))
    image = await ctx.app.db.fetchone(
        "SELECT image_id FROM ec2_images WHERE region = ? AND (snapshot_id = ? OR data LIKE ?) LIMIT 1",
        (ctx.region, row["snapshot_id"], f'%"{row["snapshot_id"]}"%'))
    if image is not None:
        raise InvalidSnapshotInUse(f"The snapshot {row['snapshot_id']} is currently in use by {image['image_id']}")
    if row["state"] == "pending":
        raise IncorrectState(f"The snapshot '{row['snapshot_id']}' is 'pending'; delete it once it completes.")
    check_dry_run(params)
    at = now_us(ctx)
    async with ctx.app.db.transaction() as tx:
        changed = await tx.execute("UPDATE ec2_snapshots SET state = 'deleted' WHERE snapshot_id = ?"
                                   " AND state IN ('completed', 'error')", (row["snapshot_id"],))
        if changed:
            await ebs_store.record_snapshot_bytes(tx, row, -int(row["stored_bytes"]), at, "deleted")
            await tag_store.delete_all_tags(tx, row["snapshot_id"])
    await snapshot_files.collect(ctx.app.db)
    return {}


# -- DescribeSnapshots ------------------------------------------------------------------------------------------

_SNAPSHOT_FILTERS = {
    "description": lambda s: s["Description"],
    "encrypted": lambda s: s["Encrypted"],
    "owner-alias": lambda s: s["OwnerAlias"],
    "owner-id": lambda s: s["OwnerId"],
    "progress": lambda s: s["Progress"],
    "snapshot-id": lambda s: s["SnapshotId"],
    "start-time": lambda s: s["StartTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "status": lambda s: s["State"],
    "storage-tier": lambda s: s["StorageTier"],
    "volume-id": lambda s: s["VolumeId"],
    "volume-size": lambda s: s["VolumeSize"],
    "kms-key-id": lambda s: s["KmsKeyId"],
}


def _restorable_by(row: Any, users: list[str], account: str) -> bool:
    for user in users:
        if user == "all" and row["is_public"]:
            return True
        if user == "self" and may_use_snapshot(row, account):
            return True
        if user not in ("all", "self") and (row["account_id"] == user or row["is_public"]
                                            or user in volume_users(row)):
            return True
    return False


async def describe_snapshots(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    wanted = params.get("SnapshotIds") or []
    if wanted and params.get("MaxResults") is not None:
        raise InvalidParameterCombination("The parameter snapshotSet cannot be used with the parameter maxResults")
    max_results = check_max_results(params, 5, 1000)
    check_snapshot_ids(wanted)
    for owner in params.get("OwnerIds") or []:
        if owner not in ("self", "amazon", "aws-marketplace", "nimbo") and not re.fullmatch(r"\d{12}", owner):
            raise InvalidUserIDMalformed(f'Invalid user id: "{owner}"')
    from ec2_api import image_snapshots  # noqa: PLC0415
    await image_snapshots.ensure_image_snapshots(ctx.app.db, ctx.app.config)
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_snapshots WHERE region = ? AND state != 'deleted'"
        " AND (account_id = ? OR is_public = 1 OR volume_users LIKE ?)", (ctx.region, account, f'%"{account}"%'))
    rows = [r for r in rows if may_use_snapshot(r, account)]
    if wanted:
        found = {r["snapshot_id"]: r for r in rows}
        missing = [s for s in wanted if s not in found]
        if missing:
            raise snapshot_not_found(missing)
        rows = [found[s] for s in dict.fromkeys(wanted)]
    if params.get("OwnerIds"):
        rows = [r for r in rows if owner_matches(r, params["OwnerIds"], account)]
    if params.get("RestorableByUserIds"):
        rows = [r for r in rows if _restorable_by(r, params["RestorableByUserIds"], account)]
    tags = await tag_store.tags_of(ctx.app.db, account, [r["snapshot_id"] for r in rows])
    items = [snapshot_item(r, tags[r["snapshot_id"]], account) for r in rows]
    items = apply_filters(items, params.get("Filters"), _SNAPSHOT_FILTERS, tags=lambda s: tags[s["SnapshotId"]])
    page, token = paginate(items, lambda s: s["SnapshotId"], max_results, params.get("NextToken"))
    return {"Snapshots": page, "NextToken": token}


# -- attributes -----------------------------------------------------------------------------------------------

async def describe_snapshot_attribute(ctx: Any, params: dict) -> dict:
    attribute = params.get("Attribute")
    if attribute not in ("createVolumePermission", "productCodes"):
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
    row = await owned_snapshot(ctx, params.get("SnapshotId"))
    check_dry_run(params)
    out: dict[str, Any] = {"SnapshotId": row["snapshot_id"]}
    if attribute == "createVolumePermission":
        out["CreateVolumePermissions"] = ([{"Group": "all"}] if row["is_public"] else []) + \
            [{"UserId": u} for u in volume_users(row)]
    else:
        out["ProductCodes"] = []
    return out


async def modify_snapshot_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_snapshot(ctx, params.get("SnapshotId"))
    attribute = params.get("Attribute")
    if attribute not in (None, "createVolumePermission"):
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Only "
                                    f"createVolumePermission can be modified.")
    add, remove = permission_changes(params, "CreateVolumePermission", "GroupNames")
    if not add and not remove:
        raise MissingParameter("The request must contain a createVolumePermission to add or remove")
    for entry in add + remove:
        group, user = entry.get("Group"), entry.get("UserId")
        if group is not None and group != "all":
            raise InvalidParameterValue(f"Value ({group}) for parameter group is invalid. Only 'all' is supported.")
        if user is not None and not re.fullmatch(r"\d{12}", user):
            raise InvalidUserIDMalformed(f"User ID '{user}' is invalid")
    if row["encrypted"] and any(e.get("Group") == "all" for e in add):
        raise OperationNotPermitted("Encrypted snapshots cannot be made public.")
    check_dry_run(params)
    public, users = apply_permission_changes(bool(row["is_public"]), volume_users(row), add, remove)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE ec2_snapshots SET is_public = ?, volume_users = ? WHERE snapshot_id = ?",
                         (int(public), json.dumps(users), row["snapshot_id"]))
    return {}


async def reset_snapshot_attribute(ctx: Any, params: dict) -> dict:
    attribute = params.get("Attribute")
    if attribute != "createVolumePermission":
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Only "
                                    f"createVolumePermission can be reset.")
    row = await owned_snapshot(ctx, params.get("SnapshotId"))
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("UPDATE ec2_snapshots SET is_public = 0, volume_users = '[]' WHERE snapshot_id = ?",
                         (row["snapshot_id"],))
    return {}
