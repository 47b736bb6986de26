"""EBS rows: volumes and snapshots, their files, ids, errors and usage events.

Tables (schema ``ebs``, migrated by ``ec2_api.operations.open_state``):

- ``ec2_volumes``: one row per volume, root volumes of instances included. A volume is one qcow2
  file ``volumes/<vol-id>.qcow2`` (thin: it takes space as it is written), an overlay on
  ``base_path`` when it was made from a snapshot or an image (copy-on-write). The attachment
  (one instance at most) lives on the row: ``instance_id``, ``device``, ``attach_state``.
- ``ec2_snapshots``: one row per snapshot; its data is ``snapshots/<snap-id>.qcow2``, a qcow2
  delta on ``parent_path`` (the previous snapshot of the same volume: incremental storage).
  A deleted snapshot whose file still backs another snapshot or a volume keeps a hidden row in
  state ``deleted`` until nothing needs the file (``snapshot_files.collect``).

Crash story: a row is written before its file work starts and every file is written under a
``.part`` name, fsynced and renamed; the start-up sweep (``ebs_sweep``) finishes or undoes what a
crash interrupted and removes files that no row names. Usage events share the transaction of the
state change that causes them (``volume_state`` with the provisioned size, ``stored_bytes`` of a
snapshot's file).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

from ec2_api import ids
from ec2_api.errors import EC2Error, ec2_error
from storage import usage
from storage.db import Schema

SCHEMA = Schema(
    "ebs",
    [
        """
        CREATE TABLE ec2_volumes (
            volume_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            availability_zone TEXT NOT NULL,
            size_gib INTEGER NOT NULL,
            volume_type TEXT NOT NULL,
            iops INTEGER,
            throughput INTEGER,
            encrypted INTEGER NOT NULL DEFAULT 0,
            kms_key_id TEXT,
            snapshot_id TEXT,
            multi_attach INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            state_seq INTEGER NOT NULL DEFAULT 0,
            created_us INTEGER NOT NULL,
            path TEXT NOT NULL,
            base_path TEXT,
            base_format TEXT,
            instance_id TEXT,
            device TEXT,
            attach_state TEXT,
            attach_us INTEGER,
            delete_on_termination INTEGER NOT NULL DEFAULT 0,
            is_root INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ec2_volumes_by_owner ON ec2_volumes(account_id, region);
        CREATE INDEX ec2_volumes_by_instance ON ec2_volumes(instance_id);
        CREATE TABLE ec2_snapshots (
            snapshot_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            volume_id TEXT NOT NULL,
            volume_size INTEGER NOT NULL,
            state TEXT NOT NULL,
            state_message TEXT,
            progress INTEGER NOT NULL DEFAULT 0,
            started_us INTEGER NOT NULL,
            completed_us INTEGER,
            description TEXT NOT NULL DEFAULT '',
            encrypted INTEGER NOT NULL DEFAULT 0,
            kms_key_id TEXT,
            path TEXT NOT NULL,
            parent_path TEXT,
            source_path TEXT,
            stored_bytes INTEGER NOT NULL DEFAULT 0,
            is_public INTEGER NOT NULL DEFAULT 0,
            volume_users TEXT NOT NULL DEFAULT '[]',
            owner_alias TEXT,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ec2_snapshots_by_owner ON ec2_snapshots(account_id, region);
        CREATE INDEX ec2_snapshots_by_volume ON ec2_snapshots(volume_id)
        """
    ],
)

SERVICE = "AmazonEC2"
GIB = 1024 ** 3

InvalidVolumeNotFound = ec2_error("InvalidVolume.NotFound")
InvalidVolumeIDMalformed = ec2_error("InvalidVolumeID.Malformed")
InvalidVolumeZoneMismatch = ec2_error("InvalidVolume.ZoneMismatch")
VolumeInUse = ec2_error("VolumeInUse")
IncorrectState = ec2_error("IncorrectState")
IncorrectModificationState = ec2_error("IncorrectModificationState")
InvalidSnapshotNotFound = ec2_error("InvalidSnapshot.NotFound")
InvalidSnapshotIDMalformed = ec2_error("InvalidSnapshotID.Malformed")
InvalidSnapshotInUse = ec2_error("InvalidSnapshot.InUse")
InvalidAttachmentNotFound = ec2_error("InvalidAttachment.NotFound")
InvalidParameterDependency = ec2_error("InvalidParameterDependency")
InvalidZoneNotFound = ec2_error("InvalidZone.NotFound")
SnapshotCreationPerVolumeRateExceeded = ec2_error("SnapshotCreationPerVolumeRateExceeded")

# Volume types: (min GiB, max GiB)
SIZE_LIMITS = {"gp2": (1, 16384), "gp3": (1, 16384), "io1": (4, 16384), "io2": (4, 65536),
               "st1": (125, 16384), "sc1": (125, 16384), "standard": (1, 1024)}
VOLUME_TYPES = tuple(SIZE_LIMITS)
_DEVICE_RE = re.compile(r"^/dev/(sd[a-z]([1-9]|1[0-5])?|xvd[a-z]{1,2}|hd[a-z])$")


# -- files ------------------------------------------------------------------------------------------

def volumes_dir(config: Any) -> str:
    return os.path.join(config.data_dir, "volumes")


def snapshots_dir(config: Any) -> str:
    return os.path.join(config.data_dir, "snapshots")


def volume_file(config: Any, volume_id: str) -> str:
    return os.path.join(volumes_dir(config), f"{volume_id}.qcow2")


def volume_file_for(sibling: str, volume_id: str) -> str:
    """A volume's file next to another volume's (an instance's root disk)."""
    return os.path.join(os.path.dirname(sibling), f"{volume_id}.qcow2")


def snapshot_file(config: Any, snapshot_id: str) -> str:
    return os.path.join(snapshots_dir(config), f"{snapshot_id}.qcow2")


def fsync_rename(tmp: str, path: str) -> None:
    """Put the written file ``tmp`` in place as ``path``, durably: its data, then the rename."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def disk_id(volume_id: str) -> str:
    """The virtio serial of a volume, as Nitro shows it: the id without its dash (20 bytes)."""
    return volume_id.replace("-", "")


# -- ids ---------------------------------------------------------------------------------------------

def check_volume_ids(values: Iterable[str]) -> None:
    for value in values:
        if not ids.is_valid(value, "vol"):
            raise InvalidVolumeIDMalformed(f'Invalid id: "{value}" (expecting "vol-...")')


def check_snapshot_ids(values: Iterable[str]) -> None:
    for value in values:
        if not ids.is_valid(value, "snap"):
            raise InvalidSnapshotIDMalformed(f'Invalid id: "{value}" (expecting "snap-...")')


def volume_not_found(missing: list[str]) -> EC2Error:
    if len(missing) == 1:
        return InvalidVolumeNotFound(f"The volume '{missing[0]}' does not exist.")
    return InvalidVolumeNotFound(f"The volumes '{', '.join(missing)}' do not exist.")


def snapshot_not_found(missing: list[str]) -> EC2Error:
    if len(missing) == 1:
        return InvalidSnapshotNotFound(f"The snapshot '{missing[0]}' does not exist.")
    return InvalidSnapshotNotFound(f"The snapshots '{', '.join(missing)}' do not exist.")


def valid_device(device: str | None) -> bool:
    return bool(device) and _DEVICE_RE.match(device) is not None


# -- rows ---------------------------------------------------------------------------------------------

def data_of(row: Any) -> dict:
    return json.loads(row["data"] or "{}")


def volume_users(row: Any) -> list[str]:
    return json.loads(row["volume_users"] or "[]")


def may_use_snapshot(row: Any, account_id: str) -> bool:
    """The owner, everyone when public, and the accounts given createVolumePermission."""
    return row["account_id"] == account_id or bool(row["is_public"]) or account_id in volume_users(row)


async def owned_volumes(conn: Any, account_id: str, region: str, volume_ids: list[str]) -> list[Any]:
    """The caller's volumes with these ids, in the order asked (InvalidVolume.* otherwise)."""
    wanted = list(dict.fromkeys(volume_ids))
    check_volume_ids(wanted)
    rows: dict[str, Any] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in await conn.fetchall(
                f"SELECT * FROM ec2_volumes WHERE account_id = ? AND region = ? AND volume_id IN ({marks})"
                f" AND state != 'deleted'", (account_id, region, *chunk)):
            rows[row["volume_id"]] = row
    missing = [v for v in wanted if v not in rows]
    if missing:
        raise volume_not_found(missing)
    return [rows[v] for v in wanted]


async def owned_volume(conn: Any, account_id: str, region: str, volume_id: str | None) -> Any:
    if not volume_id:
        from ec2_api.errors import MissingParameter  # noqa: PLC0415
        raise MissingParameter("The request must contain the parameter VolumeId")
    return (await owned_volumes(conn, account_id, region, [volume_id]))[0]


async def usable_snapshot(conn: Any, account_id: str, region: str, snapshot_id: str) -> Any:
    """A completed snapshot the caller may make volumes from (InvalidSnapshot.* otherwise)."""
    check_snapshot_ids([snapshot_id])
    row = await conn.fetchone("SELECT * FROM ec2_snapshots WHERE snapshot_id = ? AND region = ?"
                              " AND state != 'deleted'", (snapshot_id, region))
    if row is None or not may_use_snapshot(row, account_id):
        raise snapshot_not_found([snapshot_id])
    return row


async def volumes_of_instance(conn: Any, instance_id: str) -> list[Any]:
    return await conn.fetchall(
        "SELECT * FROM ec2_volumes WHERE instance_id = ? AND state != 'deleted' ORDER BY is_root DESC, attach_us,"
        " volume_id", (instance_id,))


# -- usage events -------------------------------------------------------------------------------------

async def record_volume_event(tx: Any, row: Any, state: str, at_us: int, *, key: str | None = None) -> None:
    """The provisioned size and type of a volume from ``at_us`` on (``deleted`` ends billing).
    The dedupe key names the change (``created``, ``modified:N``, ``deleted``), so a replay of
    the same change records nothing twice."""
    await usage.record_event(
        tx, dedupe_key=f"{row['volume_id']}:{key or state}", account_id=row["account_id"],
        region=row["region"], service=SERVICE, kind="volume_state", resource_id=row["volume_id"],
        at_us=at_us, quantity=int(row["size_gib"]) * GIB,
        attrs={"state": state, "volume_type": row["volume_type"],
               "availability_zone": row["availability_zone"], "instance_id": row["instance_id"]})


async def record_snapshot_bytes(tx: Any, row: Any, delta: int, at_us: int, key: str) -> None:
    """Snapshot storage (EBS:SnapshotUsage): the bytes of its file, added when it completes and
    taken away when it is deleted."""
    if not delta:
        return
    await usage.record_event(
        tx, dedupe_key=f"{row['snapshot_id']}:{key}", account_id=row["account_id"], region=row["region"],
        service=SERVICE, kind="stored_bytes", resource_id=row["snapshot_id"], at_us=at_us,
        quantity=int(delta), attrs={"volume_id": row["volume_id"]})


async def set_volume_state(tx: Any, volume_id: str, state: str, *, from_states: Iterable[str],
                           **columns: Any) -> Any | None:
    """Compare-and-set of a volume's state (and further columns); the fresh row, or None."""
    from_states = tuple(from_states)
    marks = ",".join("?" * len(from_states))
    sets = {"state": state, **columns}
    assignments = ", ".join(f"{k} = ?" for k in sets) + ", state_seq = state_seq + 1"
    changed = await tx.execute(
        f"UPDATE ec2_volumes SET {assignments} WHERE volume_id = ? AND state IN ({marks})",
        (*sets.values(), volume_id, *from_states))
    if not changed:
        return None
    return await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (volume_id,))


async def update_volume_data(tx: Any, volume_id: str, **changes: Any) -> None:
    row = await tx.fetchone("SELECT data FROM ec2_volumes WHERE volume_id = ?", (volume_id,))
    data = json.loads(row["data"] or "{}")
    data.update(changes)
    await tx.execute("UPDATE ec2_volumes SET data = ? WHERE volume_id = ?",
                     (json.dumps(data, sort_keys=True), volume_id))


async def insert_volume(tx: Any, *, volume_id: str, account_id: str, region: str, zone: str, size_gib: int,
                        volume_type: str, iops: int | None, throughput: int | None, encrypted: bool,
                        kms_key_id: str | None, snapshot_id: str | None, multi_attach: bool, state: str,
                        created_us: int, path: str, base_path: str | None = None,
                        base_format: str | None = None, instance_id: str | None = None,
                        device: str | None = None, attach_state: str | None = None,
                        delete_on_termination: bool = False, is_root: bool = False,
                        data: dict | None = None, record: bool = True) -> Any:
    await tx.execute(
        "INSERT INTO ec2_volumes (volume_id, account_id, region, availability_zone, size_gib, volume_type, iops,"
        " throughput, encrypted, kms_key_id, snapshot_id, multi_attach, state, created_us, path, base_path,"
        " base_format, instance_id, device, attach_state, attach_us, delete_on_termination, is_root, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (volume_id, account_id, region, zone, size_gib, volume_type, iops, throughput, int(encrypted),
         kms_key_id, snapshot_id, int(multi_attach), state, created_us, path, base_path, base_format,
         instance_id, device, attach_state, created_us if instance_id else None, int(delete_on_termination),
         int(is_root), json.dumps(data or {}, sort_keys=True)))
    row = await tx.fetchone("SELECT * FROM ec2_volumes WHERE volume_id = ?", (volume_id,))
    if record:
        await record_volume_event(tx, row, state, created_us, key="created")
    return row
