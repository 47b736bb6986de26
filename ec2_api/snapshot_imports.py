"""ImportSnapshot and DescribeImportSnapshotTasks: a disk image in S3 becomes an EBS snapshot.

The task (an ``ec2_import_tasks`` row with id ``import-snap-...`` and ``target_kind``
``snapshot``) is run by ``import_tasks.run_import``, the runner ImportImage uses: the object is
handed over by ``storage.object_files`` with the caller's S3 read access checked, inspected and
converted to a self-contained qcow2 by ``disk_conversion``; the target registered here
(``import_tasks.TARGETS["snapshot"]``) makes that qcow2 a ``completed`` snapshot owned by the
account (VolumeId ``vol-ffffffff``, VolumeSize the disk's virtual size in GiB rounded up), which
CreateVolume --snapshot-id and RegisterImage use like any other snapshot. CancelImportTask is
``import_tasks.cancel_import_task`` (it accepts ``import-snap-`` ids). The task's status walks
``active`` (StatusMessage pending, validating, validated, converting) to ``completed`` with
SnapshotId, or ``deleted`` with ``ClientError: ...`` (an unreadable, missing, corrupt or
unsupported upload) or after a cancel.

Crash story: the converted file is moved (fsynced rename) to ``snapshots/<snap-id>.qcow2`` after
the snapshot id is recorded in the task, then the snapshot row and its stored-bytes usage event
(EBS:SnapshotUsage, as ``snapshots`` records them) are written in one transaction; so a crash
never shows a half-made snapshot. At start-up ``import_tasks.recover`` completes a task whose
snapshot row exists and deletes (ServerError) any other, removing the moved file if the row never
came (``_forget``; ``ebs_sweep`` also removes ``snap-`` files no row names), and removes work
folders of dead workers.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
from typing import Any

from ec2_api import ebs_store, ids, import_tasks, snapshot_files, tag_store
from ec2_api.common import account_of, check_max_results, now_us, to_us
from ec2_api.errors import InvalidParameter, MissingParameter, check_dry_run
from ec2_api.filters import apply_filters, paginate
from ec2_api.import_tasks import RUNNER, ImportTarget, InvalidConversionTaskId, InvalidConversionTaskIdMalformed
from ec2_api.tags import Taggable, register_taggable

TASK_PREFIX = "import-snap"
IMPORTED_VOLUME_ID = "vol-ffffffff"
register_taggable(TASK_PREFIX, Taggable("import-snapshot-task", "ec2_import_tasks", "task_id",
                                        InvalidConversionTaskId, "import task ID"))


# -- ImportSnapshot ---------------------------------------------------------------------------------

def _container(params: dict) -> tuple[str, str, str | None, dict]:
    container = params.get("DiskContainer")
    if not container:
        raise MissingParameter("The request must contain the parameter DiskContainer")
    bucket, key, declared = import_tasks.disk_source(container, "VHD, VHDX, VMDK, RAW, QCOW2, VDI")
    return bucket, key, declared, container


async def import_snapshot(ctx: Any, params: dict) -> dict:
    bucket, key, declared, container = _container(params)
    if params.get("Encrypted") or params.get("KmsKeyId"):
        raise InvalidParameter("Encrypted imports need KMS, which this endpoint does not offer yet")
    description = params.get("Description")
    if description is not None and len(description) > 255:
        raise InvalidParameter("The description can be at most 255 characters long")
    tags = tag_store.tag_specifications(params, {"import-snapshot-task"}).get("import-snapshot-task", {})
    account = account_of(ctx)
    token = params.get("ClientToken")
    if token:
        existing = await _task_by_token(ctx, token)
        if existing is not None:
            return await _output(ctx, existing)
    check_dry_run(params)      # RoleName is accepted and ignored: Nimbo reads S3 as the caller
    task_id = ids.new_id(TASK_PREFIX)
    detail = {"DiskImageSize": 0.0, "UserBucket": {"S3Bucket": bucket, "S3Key": key}, "Url": container.get("Url"),
              "Description": container.get("Description"),
              "Format": (container.get("Format") or "").upper() or None}
    data = {"target_kind": "snapshot", "snapshot_details": [{k: v for k, v in detail.items() if v is not None}],
            "runner": RUNNER, "client_token": token, "source": {"bucket": bucket, "key": key, "declared": declared}}
    async with ctx.app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO ec2_import_tasks (task_id, account_id, region, status, status_message, progress,"
            " description, created_us, data) VALUES (?, ?, ?, 'active', 'pending', '0', ?, ?, ?)",
            (task_id, account, ctx.region, description, now_us(ctx), json.dumps(data)))
        await tag_store.write_tags(tx, account, ctx.region, task_id, "import-snapshot-task", tags)
    ctx.state.spawn(import_tasks.run_import(ctx.app, task_id))
    row = await ctx.app.db.fetchone("SELECT * FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
    return await _output(ctx, row)


async def _own_tasks(ctx: Any) -> list[Any]:
    return await ctx.app.db.fetchall(
        "SELECT * FROM ec2_import_tasks WHERE account_id = ? AND region = ? AND task_id LIKE 'import-snap-%'",
        (account_of(ctx), ctx.region))


async def _task_by_token(ctx: Any, token: str) -> Any:
    return next((r for r in await _own_tasks(ctx) if json.loads(r["data"] or "{}").get("client_token") == token),
                None)


async def _output(ctx: Any, row: Any) -> dict:
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [row["task_id"]])
    return task_item(row, tags[row["task_id"]])


def task_item(row: Any, tags: dict[str, str]) -> dict:
    """An ImportSnapshotTask: the task's state lives in its SnapshotTaskDetail."""
    data = json.loads(row["data"] or "{}")
    detail = dict((data.get("snapshot_details") or [{}])[0])
    detail.update(Status=row["status"], StatusMessage=row["status_message"], Progress=row["progress"],
                  SnapshotId=data.get("snapshot_id"), Encrypted=False)
    detail.pop("DeviceName", None)
    item = {"ImportTaskId": row["task_id"], "Description": row["description"],
            "SnapshotTaskDetail": {k: v for k, v in detail.items() if v is not None},
            "Tags": tag_store.tag_list(tags)}
    return {k: v for k, v in item.items() if v is not None}


# -- the target: a converted qcow2 becomes a snapshot ---------------------------------------------------------

def _snapshot_path(config: Any, snapshot_id: str) -> str:
    return ebs_store.snapshot_file(config, snapshot_id)


async def _snapshot_exists(db: Any, snapshot_id: str) -> bool:
    return await db.fetchone("SELECT 1 FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,)) is not None


def _move_in(converted: str, path: str) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ebs_store.fsync_rename(converted, path)           # the same durable rename as every snapshot
    return snapshot_files.stored_bytes(path)


async def _publish_snapshot(app: Any, row: Any, data: dict, snapshot_id: str, converted: str,
                            virtual_size: int) -> None:
    """Move the finished qcow2 to the snapshot's file, then write the completed row and its
    stored bytes (EBS:SnapshotUsage) in one transaction."""
    path = _snapshot_path(app.config, snapshot_id)
    stored = await asyncio.to_thread(_move_in, converted, path)
    size_gib = max(1, math.ceil(virtual_size / ebs_store.GIB))
    at = max(to_us(app.clock()), row["created_us"])
    description = row["description"] or f"Created by Nimbo VM Import for {row['task_id']}"
    snap_data = {"kind": "import", "format": "qcow2", "boot": None, "import_task_id": row["task_id"]}
    async with app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO ec2_snapshots (snapshot_id, account_id, region, volume_id, volume_size, state, progress,"
            " started_us, completed_us, description, path, stored_bytes, data)"
            " VALUES (?, ?, ?, ?, ?, 'completed', 100, ?, ?, ?, ?, ?, ?)",
            (snapshot_id, row["account_id"], row["region"], IMPORTED_VOLUME_ID, size_gib, row["created_us"], at,
             description[:255], path, stored, json.dumps(snap_data, sort_keys=True)))
        snap = await tx.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ?", (snapshot_id,))
        await ebs_store.record_snapshot_bytes(tx, snap, stored, at, "stored")


async def _complete_snapshot(db: Any, task_id: str, snapshot_id: str) -> None:
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT data FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
        data = json.loads(row["data"])
        data["snapshot_id"] = snapshot_id
        for detail in data.get("snapshot_details") or []:
            detail["Status"] = "completed"
        await tx.execute("UPDATE ec2_import_tasks SET status = 'completed', status_message = NULL,"
                         " progress = NULL, data = ? WHERE task_id = ?", (json.dumps(data), task_id))


SNAPSHOT = ImportTarget("snap", "creating snapshot", _snapshot_path, _snapshot_exists, _publish_snapshot,
                        _complete_snapshot, steps=())
import_tasks.TARGETS["snapshot"] = SNAPSHOT


# -- DescribeImportSnapshotTasks ----------------------------------------------------------------------

async def describe_import_snapshot_tasks(ctx: Any, params: dict) -> dict:
    max_results = check_max_results(params, 1, 500)
    wanted = params.get("ImportTaskIds") or []
    for task_id in wanted:
        if not ids.is_valid(task_id, TASK_PREFIX):
            raise InvalidConversionTaskIdMalformed(f"The import task ID '{task_id}' is malformed")
    check_dry_run(params)
    rows = await _own_tasks(ctx)
    known = {row["task_id"] for row in rows}
    missing = [t for t in wanted if t not in known]
    if missing:
        raise InvalidConversionTaskId(f"The import task ID '{missing[0]}' does not exist")
    if wanted:
        rows = [row for row in rows if row["task_id"] in wanted]
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [row["task_id"] for row in rows])
    items = [task_item(row, tags[row["task_id"]]) for row in rows]
    items = apply_filters(items, params.get("Filters"), {
        "task-state": lambda t: t["SnapshotTaskDetail"]["Status"], "import-task-id": lambda t: t["ImportTaskId"],
    }, tags=lambda t: tags[t["ImportTaskId"]])
    page, token = paginate(items, lambda t: t["ImportTaskId"], max_results, params.get("NextToken"),
                           minimum=1, maximum=500)
    return {"ImportSnapshotTasks": page, "NextToken": token}


__all__ = ["import_snapshot", "describe_import_snapshot_tasks", "SNAPSHOT"]
