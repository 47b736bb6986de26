"""ImportImage, DescribeImportImageTasks and CancelImportTask: a disk image in S3 becomes an AMI.

A task row (``ec2_import_tasks``) is written when the call is answered; the work runs in the
background of the process that took the call: the object is handed over by
``storage.object_files`` (with the caller's S3 read access checked), inspected and converted by
``ec2_api.disk_conversion`` inside the task's work folder ``<data>/imports/<task id>/``, and only a
complete qcow2 becomes an image. The task walks through VM Import's states: ``active`` with the
StatusMessages pending, validating, validated, converting, updating, booting, booted, preparing
ami; then ``completed`` (with ImageId), or ``deleted`` with ``ClientError: ...`` when the upload is
not importable, or after CancelImportTask (``deleting`` until the worker has stopped).

The runner is the same for any ``ImportTarget``: ImportImage's makes an AMI; ImportSnapshot's
(``snapshot_imports``, registered in ``TARGETS`` under the task's ``target_kind`` ``snapshot``)
makes a snapshot from the same converted qcow2.

Crash story: the image row is written only after its disk file sits complete in
``images/<ami>/`` (the id is recorded in the task first), so a crash never leaves a half-made
image visible. At start-up ``recover`` settles the tasks whose worker process is gone: a task whose
image row exists completes, any other is ``deleted`` with a ServerError message and the image
folder it may have begun is removed; work folders of tasks no live worker runs are removed, and so
is an image folder still marked ``.publishing`` by a dead process whose row never came (the
operator's ``nimbo image import`` publishes the same way). Images that RegisterImage left
``pending`` in a dead process are marked ``failed``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from ec2_api import disk_conversion, disks, ids, images, tag_store
from ec2_api.common import account_of, check_max_results, now_us
from ec2_api.errors import InvalidParameter, MissingParameter, check_dry_run, ec2_error
from ec2_api.filters import apply_filters, paginate
from ec2_api.tags import Taggable, register_taggable
from storage import object_files

log = logging.getLogger("nimbo.ec2")
InvalidConversionTaskId = ec2_error("InvalidConversionTaskId")
InvalidConversionTaskIdMalformed = ec2_error("InvalidConversionTaskId.Malformed")
IncorrectState = ec2_error("IncorrectState")

NO_ACCESS = "Disk validation failed [We do not have access to the given resource. Reason 403 Forbidden]"
NO_OBJECT = "Disk validation failed [Invalid S3 source location]"
CANCELLED = "User initiated task cancelation"
PUBLISHING = ".publishing"
INTERRUPTED = "ServerError: The import was interrupted by a restart of the service. Please retry."
register_taggable("import-ami", Taggable("import-image-task", "ec2_import_tasks", "task_id", InvalidConversionTaskId,
                                         "import task ID"))
_ARCHITECTURES = ("x86_64", "i386")
_LICENSES = ("AWS", "BYOL", "Auto")
_BOOT_MODES = ("legacy-bios", "uefi", "uefi-preferred")
_TASK_PREFIX = "import-ami"


class TaskCancelled(Exception):
    pass


def _process_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):       # dead, not yet reaped (a killed server's orphans)
            return None
        return fields[19].decode()          # field 22: start time in clock ticks since boot
    except (OSError, IndexError):
        return None


RUNNER = f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def runner_alive(runner: str | None) -> bool:
    """Whether the process named by a RUNNER string still runs (another host's: assumed so)."""
    if not runner:
        return False
    host, _, rest = runner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True
    return pid.isdigit() and _process_start(int(pid)) == started


def imports_dir(config: Any, task_id: str | None = None) -> str:
    base = os.path.join(config.data_dir, "imports")
    return os.path.join(base, task_id) if task_id else base


def register_work_dir(config: Any) -> str:
    """A fresh work folder for a RegisterImage build of this process (kept by ``recover`` while
    the process lives)."""
    pid, started = RUNNER.split(":")[1:]
    return imports_dir(config, f"register-{pid}-{started}-{ids.new_id('w')}")


def _work_alive(name: str, live: set[str]) -> bool:
    if name in live:
        return True
    if name.startswith("register-"):
        parts = name.split("-")
        return len(parts) >= 3 and runner_alive(f"{socket.gethostname()}:{parts[1]}:{parts[2]}")
    return False


def split_location(location: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``, ``https://host/bucket/key`` or ``bucket/key``."""
    text = (location or "").strip()
    for prefix in ("s3://", "https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            if prefix != "s3://":
                host, _, text = text.partition("/")
                label, dot, rest = host.partition(".")
                if dot and label != "s3" and (rest.startswith("s3.") or rest.startswith("s3-")):
                    text = f"{label}/{text}"        # virtual-hosted style: bucket.s3.region.amazonaws.com
            break
    bucket, _, key = text.partition("/")
    if not bucket or not key:
        raise InvalidParameter(f"The S3 location '{location}' is not valid: expected s3://bucket/key")
    return bucket, key


# -- ImportImage --------------------------------------------------------------------------------

def disk_source(container: dict, formats: str) -> tuple[str, str, str | None]:
    """A DiskContainer's declared format and its S3 object (bucket, key), from a UserBucket or a
    Url (one of the two); ``formats`` names the valid formats in the error (ImportImage also
    takes OVA)."""
    try:
        declared = disk_conversion.declared_format(container.get("Format"))
    except ValueError:
        raise InvalidParameter(f"Invalid value for format: {container.get('Format')}. "
                               f"Valid values are {formats}") from None
    bucket_spec = container.get("UserBucket") or {}
    if bucket_spec.get("S3Bucket") or bucket_spec.get("S3Key"):
        if not (bucket_spec.get("S3Bucket") and bucket_spec.get("S3Key")):
            raise MissingParameter("A UserBucket needs both S3Bucket and S3Key")
        if container.get("Url"):
            raise InvalidParameter("Specify either a UserBucket or a Url for the disk container, not both")
        return bucket_spec["S3Bucket"], bucket_spec["S3Key"], declared
    if container.get("Url"):
        return (*split_location(container["Url"]), declared)
    raise MissingParameter("A disk container needs a UserBucket (S3Bucket, S3Key) or a Url")


def _container(params: dict) -> tuple[str, str, str | None, dict]:
    containers = params.get("DiskContainers") or []
    if not containers:
        raise MissingParameter("The request must contain the parameter DiskContainer")
    if len(containers) > 1:
        raise InvalidParameter("Nimbo imports one disk per ImportImage: pass a single DiskContainer")
    container = containers[0]
    if container.get("SnapshotId"):
        raise InvalidParameter("Importing an image from a snapshot is not supported here: use "
                               "RegisterImage with BlockDeviceMappings")
    bucket, key, declared = disk_source(container, "OVA, VHD, VHDX, VMDK, RAW, QCOW2, VDI")
    return bucket, key, declared, container


def _choice(params: dict, name: str, allowed: tuple, default: str | None) -> str | None:
    value = params.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidParameter(f"Invalid value for {name}: {value}. Valid values are {', '.join(allowed)}")
    return value


async def import_image(ctx: Any, params: dict) -> dict:
    bucket, key, declared, container = _container(params)
    architecture = _choice(params, "Architecture", _ARCHITECTURES, "x86_64")
    license_type = _choice(params, "LicenseType", _LICENSES, "BYOL")
    boot_mode = _choice(params, "BootMode", _BOOT_MODES, None)
    platform = _choice(params, "Platform", ("Linux", "Windows"), "Linux")
    if platform == "Windows":
        raise InvalidParameter("Nimbo imports Linux images only")
    if params.get("Encrypted") or params.get("KmsKeyId"):
        raise InvalidParameter("Encrypted imports need KMS, which this endpoint does not offer yet")
    if params.get("Hypervisor") not in (None, "xen"):
        raise InvalidParameter(f"Invalid value for Hypervisor: {params['Hypervisor']}. Valid value is xen")
    tags = tag_store.tag_specifications(params, {"import-image-task"}).get("import-image-task", {})
    account = account_of(ctx)
    token = params.get("ClientToken")
    if token:
        existing = await _task_by_token(ctx, token)
        if existing is not None:
            return await _import_output(ctx, existing)
    check_dry_run(params)
    task_id = ids.new_id(_TASK_PREFIX)
    detail = {"DiskImageSize": 0.0, "Status": "active", "UserBucket": {"S3Bucket": bucket, "S3Key": key},
              "Description": container.get("Description"), "Format": (container.get("Format") or "").upper() or None,
              "DeviceName": container.get("DeviceName")}
    data = {"snapshot_details": [{k: v for k, v in detail.items() if v is not None}],
            "architecture": architecture, "license_type": license_type, "platform": platform,
            "boot_mode": boot_mode, "runner": RUNNER, "client_token": token,
            "source": {"bucket": bucket, "key": key, "declared": declared}}
    async with ctx.app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO ec2_import_tasks (task_id, account_id, region, status, status_message, progress,"
            " description, created_us, data) VALUES (?, ?, ?, 'active', 'pending', '2', ?, ?, ?)",
            (task_id, account, ctx.region, params.get("Description"), now_us(ctx), json.dumps(data)))
        await tag_store.write_tags(tx, account, ctx.region, task_id, "import-image-task", tags)
    ctx.state.spawn(run_import(ctx.app, task_id))
    row = await ctx.app.db.fetchone("SELECT * FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
    return await _import_output(ctx, row)


async def _task_by_token(ctx: Any, token: str) -> Any:
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_import_tasks WHERE account_id = ? AND region = ?", (account_of(ctx), ctx.region))
    return next((r for r in rows if json.loads(r["data"] or "{}").get("client_token") == token), None)


async def _import_output(ctx: Any, row: Any) -> dict:
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [row["task_id"]])
    item = task_item(row, tags[row["task_id"]])
    item.pop("BootMode", None)
    return item


def task_item(row: Any, tags: dict[str, str]) -> dict:
    data = json.loads(row["data"] or "{}")
    item = {
        "ImportTaskId": row["task_id"], "Status": row["status"], "StatusMessage": row["status_message"],
        "Progress": row["progress"], "ImageId": row["image_id"], "Description": row["description"],
        "Architecture": data.get("architecture", "x86_64"), "Platform": data.get("platform", "Linux"),
        "Encrypted": False, "LicenseType": data.get("license_type", "BYOL"),
        "BootMode": data.get("boot_mode"), "SnapshotDetails": data.get("snapshot_details") or [],
        "Tags": tag_store.tag_list(tags),
    }
    return {k: v for k, v in item.items() if v is not None}


# -- the work -----------------------------------------------------------------------------------

async def _update(db: Any, task_id: str, *, data: dict | None = None, **columns: Any) -> None:
    """Write the task's progress; a task cancelled meanwhile stops its worker here."""
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT status FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
        if row is None or row["status"] != "active":
            raise TaskCancelled()
        if data is not None:
            columns["data"] = json.dumps(data)
        assignments = ", ".join(f"{k} = ?" for k in columns)
        await tx.execute(f"UPDATE ec2_import_tasks SET {assignments} WHERE task_id = ?",
                         (*columns.values(), task_id))


@dataclass(frozen=True)
class ImportTarget:
    """What a task makes of its converted disk. ImportImage's target is an AMI; ImportSnapshot
    (``snapshot_imports``) is the same runner with a target whose ``publish`` makes a snapshot.

    ``publish(app, task row, task data, new id, converted qcow2, virtual size)`` moves the file
    into ``folder(config, id)`` and writes the resource's row last; ``exists(db, id)`` tells
    recovery whether that row was written; ``complete(db, task_id, id)`` ends the task;
    ``steps`` are the StatusMessages shown between converting and ``last_step``. ``folder`` may
    name a single file (a snapshot's), which ``_forget`` then unlinks."""

    id_prefix: str
    last_step: str
    folder: Callable[[Any, str], str]
    exists: Callable[[Any, str], Awaitable[bool]]
    publish: Callable[..., Awaitable[None]]
    complete: Callable[[Any, str, str], Awaitable[None]]
    steps: tuple = (("updating", "82"), ("booting", "85"), ("booted", "88"))   # after converting


async def run_import(app: Any, task_id: str) -> None:
    db, config = app.db, app.config
    row = await db.fetchone("SELECT * FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
    data = json.loads(row["data"])
    target = TARGETS[data.get("target_kind", "image")]
    source = data["source"]
    work = imports_dir(config, task_id)
    made = None
    try:
        store = object_files.find_store(getattr(app, "states", {}) or {})
        if store is None:
            raise disk_conversion.DiskValidationError("Disk validation failed [The object store is not "
                                                      "running on this endpoint]")
        await _update(db, task_id, status_message="validating", progress="5")
        async with object_files.object_file(store, source["bucket"], source["key"], row["account_id"],
                                            work) as path:
            disk = await disk_conversion.inspect_disk(path, source["declared"], work)
            detail = data["snapshot_details"][0]
            detail.update(DiskImageSize=float(os.path.getsize(path)), Format=disk.wire_format)
            await _update(db, task_id, status_message="validated", progress="15", data=data)
            await _update(db, task_id, status_message="converting", progress="20")

            async def progress(percent: float) -> None:
                await _update(db, task_id, progress=str(20 + int(percent * 0.6)))

            converted = os.path.join(work, "disk.qcow2")
            virtual_size = await disk_conversion.convert_disk(disk, converted, progress)
        for message, percent in target.steps:
            await _update(db, task_id, status_message=message, progress=percent)
        made = ids.new_id(target.id_prefix)
        data["target_id"] = made
        await _update(db, task_id, status_message=target.last_step, progress="92", data=data)
        await target.publish(app, row, data, made, converted, virtual_size)
        await target.complete(db, task_id, made)
    except TaskCancelled:
        await _finish(db, task_id, "deleted", None, from_status="deleting")
        await _forget(db, config, target, made)
    except object_files.ObjectAccessDenied:
        await _fail(db, task_id, f"ClientError: {NO_ACCESS}")
    except object_files.NoSuchObject:
        await _fail(db, task_id, f"ClientError: {NO_OBJECT}")
    except disk_conversion.DiskValidationError as exc:
        await _fail(db, task_id, f"ClientError: {exc}")
        await _forget(db, config, target, made)
    except Exception as exc:  # noqa: BLE001 (the task records that it failed)
        log.exception("import task %s failed", task_id)
        await _fail(db, task_id, f"ServerError: {exc}")
        await _forget(db, config, target, made)
    finally:
        disks.remove_tree(work)


async def _publish_image(app: Any, row: Any, data: dict, image_id: str, converted: str, virtual_size: int) -> None:
    """Move the finished disk into the image's folder, then write the image's row."""
    folder = disks.images_dir(app.config, image_id)
    target = _move_in(folder, converted)
    source = data["source"]
    await images.insert_image(
        app.db, image_id=image_id, account_id=row["account_id"], region=row["region"], name=row["task_id"],
        state="available", created_us=row["created_us"], description=row["description"],
        architecture=data.get("architecture", "x86_64"), root_device_name="/dev/sda1", disk_path=target,
        disk_format="qcow2", size_bytes=virtual_size,
        data={"boot": {}, "location": f"{source['bucket']}/{source['key']}", "import_task_id": row["task_id"],
              "boot_mode": data.get("boot_mode") or "legacy-bios", "platform_details": "Linux/UNIX"})
    _published(folder)


def _move_in(folder: str, converted: str) -> str:
    """Move a finished disk into a new image folder, marked as being published by this process
    until its row is written (``recover`` removes a marked folder of a dead process)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, PUBLISHING), "w") as fh:
        fh.write(RUNNER)
    target = os.path.join(folder, "disk.qcow2")
    os.replace(converted, target)
    return target


def _published(folder: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, PUBLISHING))


async def _image_exists(db: Any, image_id: str) -> bool:
    return await db.fetchone("SELECT 1 FROM ec2_images WHERE image_id = ?", (image_id,)) is not None


async def _complete_image(db: Any, task_id: str, image_id: str) -> None:
    image = await db.fetchone("SELECT snapshot_id FROM ec2_images WHERE image_id = ?", (image_id,))
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT data FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
        data = json.loads(row["data"])
        for detail in data.get("snapshot_details") or []:
            detail.update(Status="completed", DeviceName="/dev/sda1", SnapshotId=image["snapshot_id"])
        await tx.execute("UPDATE ec2_import_tasks SET status = 'completed', status_message = NULL, progress = NULL,"
                         " image_id = ?, data = ? WHERE task_id = ?", (image_id, json.dumps(data), task_id))


IMAGE = ImportTarget("ami", "preparing ami", disks.images_dir, _image_exists, _publish_image, _complete_image)
TARGETS: dict[str, ImportTarget] = {"image": IMAGE}


async def _finish(db: Any, task_id: str, status: str, message: str | None, from_status: str = "active") -> None:
    """End a task (``message`` None: the cancellation's reason)."""
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT data, status FROM ec2_import_tasks WHERE task_id = ?", (task_id,))
        if row is None or row["status"] not in (from_status, "active"):
            return
        data = json.loads(row["data"])
        message = message or data.get("cancel_reason") or CANCELLED
        for detail in data.get("snapshot_details") or []:
            detail["Status"] = status
        await tx.execute("UPDATE ec2_import_tasks SET status = ?, status_message = ?, progress = NULL, data = ?"
                         " WHERE task_id = ?", (status, message[:255], json.dumps(data), task_id))


async def _fail(db: Any, task_id: str, message: str) -> None:
    await _finish(db, task_id, "deleted", message)


async def _forget(db: Any, config: Any, target: ImportTarget, made: str | None) -> None:
    """Remove a folder the last step began whose row was never written."""
    if made and not await target.exists(db, made):
        path = target.folder(config, made)
        if os.path.isdir(path):
            disks.remove_tree(path)
        else:                                       # a target whose resource is one file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# -- the operator's import of a local file (``nimbo image import``) ---------------------------------

async def import_local_file(db: Any, config: Any, path: str, *, account_id: str, region: str, name: str,
                            description: str | None = None, declared: str | None = None, public: bool = False,
                            owner_alias: str | None = None, created_us: int,
                            on_progress: Any = None) -> str:
    """A local disk image converted and registered as an AMI of ``account_id`` (public if asked).
    Same checks and crash story as ImportImage: the row is written after the disk is complete."""
    from storage.ec2_schema import SCHEMA  # noqa: PLC0415
    await db.migrate(SCHEMA)
    images.check_name(name)
    await images.check_name_free(db, account_id, region, name)
    work = register_work_dir(config)
    os.makedirs(work, exist_ok=True)
    image_id = None
    try:
        disk = await disk_conversion.inspect_disk(path, disk_conversion.declared_format(declared), work)
        converted = os.path.join(work, "disk.qcow2")
        virtual_size = await disk_conversion.convert_disk(disk, converted, on_progress)
        image_id = ids.new_id("ami")
        folder = disks.images_dir(config, image_id)
        target = _move_in(folder, converted)
        await images.insert_image(
            db, image_id=image_id, account_id=account_id, region=region, name=name, state="available",
            created_us=created_us, description=description, root_device_name="/dev/sda1", disk_path=target,
            disk_format="qcow2", size_bytes=virtual_size, is_public=public, owner_alias=owner_alias,
            data={"boot": {}, "location": f"file://{os.path.abspath(path)}", "boot_mode": "legacy-bios"})
        _published(folder)
        return image_id
    except BaseException:
        await _forget(db, config, IMAGE, image_id)
        raise
    finally:
        disks.remove_tree(work)


# -- DescribeImportImageTasks, CancelImportTask ----------------------------------------------------

async def describe_import_image_tasks(ctx: Any, params: dict) -> dict:
    max_results = check_max_results(params, 1, 500)
    wanted = params.get("ImportTaskIds") or []
    for task_id in wanted:
        if not ids.is_valid(task_id, _TASK_PREFIX):
            raise InvalidConversionTaskIdMalformed(f"The import task ID '{task_id}' is malformed")
    check_dry_run(params)
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_import_tasks WHERE account_id = ? AND region = ? AND task_id LIKE 'import-ami-%'",
        (account, ctx.region))
    known = {row["task_id"] for row in rows}
    missing = [t for t in wanted if t not in known]
    if missing:
        raise InvalidConversionTaskId(f"The import task ID '{missing[0]}' does not exist")
    if wanted:
        rows = [row for row in rows if row["task_id"] in wanted]
    tags = await tag_store.tags_of(ctx.app.db, account, [row["task_id"] for row in rows])
    items = [task_item(row, tags[row["task_id"]]) for row in rows]
    items = apply_filters(items, params.get("Filters"), {
        "task-state": lambda t: t["Status"], "import-task-id": lambda t: t["ImportTaskId"],
    }, tags=lambda t: tags[t["ImportTaskId"]])
    page, token = paginate(items, lambda t: t["ImportTaskId"], max_results, params.get("NextToken"),
                           minimum=1, maximum=500)
    return {"ImportImageTasks": page, "NextToken": token}


async def cancel_import_task(ctx: Any, params: dict) -> dict:
    task_id = params.get("ImportTaskId")
    if not task_id:
        raise MissingParameter("The request must contain the parameter ImportTaskId")
    if not ids.is_valid(task_id, "import-ami", "import-snap"):
        raise InvalidConversionTaskIdMalformed(f"The import task ID '{task_id}' is malformed")
    row = await ctx.app.db.fetchone(
        "SELECT status, data FROM ec2_import_tasks WHERE task_id = ? AND account_id = ? AND region = ?",
        (task_id, account_of(ctx), ctx.region))
    if row is None:
        raise InvalidConversionTaskId(f"The import task ID '{task_id}' does not exist")
    if row["status"] != "active":
        raise IncorrectState(f"The import task '{task_id}' is {row['status']} and cannot be cancelled")
    check_dry_run(params)
    data = json.loads(row["data"])
    data["cancel_reason"] = params.get("CancelReason")
    async with ctx.app.db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE ec2_import_tasks SET status = 'deleting', data = ? WHERE task_id = ? AND status = 'active'",
            (json.dumps(data), task_id))
    if not changed:
        raise IncorrectState(f"The import task '{task_id}' has finished and cannot be cancelled")
    if not runner_alive(data.get("runner")):      # nobody will notice: settle it here
        await _finish(ctx.app.db, task_id, "deleted", None, from_status="deleting")
    return {"ImportTaskId": task_id, "PreviousState": "active", "State": "deleting"}


async def _sweep_unpublished(db: Any, config: Any) -> int:
    """Image folders a dead process was publishing: kept (unmarked) if their row made it, else removed."""
    root, removed = disks.images_dir(config), 0
    if not os.path.isdir(root):
        return 0
    for entry in os.scandir(root):
        marker = os.path.join(entry.path, PUBLISHING)
        try:
            with open(marker) as fh:
                runner = fh.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if runner_alive(runner):
            continue
        if await _image_exists(db, entry.name):
            _published(entry.path)
        else:
            disks.remove_tree(entry.path)
            removed += 1
    return removed


# -- start-up ---------------------------------------------------------------------------------------

async def recover(db: Any, config: Any) -> dict[str, int]:
    """Settle what a crash left: tasks of dead workers, their folders, RegisterImage's stuck images."""
    counts = {"completed": 0, "deleted": 0, "folders": 0, "images": 0}
    rows = await db.fetchall("SELECT task_id, status, data FROM ec2_import_tasks"
                             " WHERE status IN ('active', 'deleting')")
    live = set()
    for row in rows:
        data = json.loads(row["data"] or "{}")
        if runner_alive(data.get("runner")):
            live.add(row["task_id"])
            continue
        target = TARGETS[data.get("target_kind", "image")]
        made = data.get("target_id")
        if made and await target.exists(db, made):
            await target.complete(db, row["task_id"], made)
            counts["completed"] += 1
            continue
        await _finish(db, row["task_id"], "deleted", INTERRUPTED if row["status"] == "active" else None,
                      from_status=row["status"])
        await _forget(db, config, target, made)
        counts["deleted"] += 1
    counts["folders"] = object_files.sweep_work(imports_dir(config), keep=lambda name: _work_alive(name, live))
    counts["folders"] += await _sweep_unpublished(db, config)
    for image in await db.fetchall("SELECT image_id, data FROM ec2_images WHERE state = 'pending'"):
        runner = json.loads(image["data"] or "{}").get("runner")
        if runner and not runner_alive(runner):
            await images.set_image_state(db, image["image_id"], "failed",
                                         reason="Server.InternalError: interrupted by a restart of the service")
            disks.remove_tree(disks.images_dir(config, image["image_id"]))
            counts["images"] += 1
    if any(counts.values()):
        log.info("import recovery: %s", counts)
    return counts


__all__ = ["import_image", "describe_import_image_tasks", "cancel_import_task", "recover", "run_import"]
