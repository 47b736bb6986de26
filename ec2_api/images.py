"""Machine images (AMIs): DescribeImages, RegisterImage, DeregisterImage, Describe/ModifyImageAttribute,
and the registration of Nimbo's built-in tiny image (``register_tiny_image``, for the CLI).

An image's files live in ``<data_dir>/images/<image-id>/``: ``disk.<fmt>`` for a machine image
(instances boot from a qcow2 overlay on it), ``kernel`` / ``initrd`` for direct kernel boot. Kernel
and ramdisk images (``aki-``/``ari-``) hold one file each. Images are regional; an image owned by
another account is visible when it is public or shared with the caller (launch permissions).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import re
import shutil
import sqlite3
from typing import Any

from ec2_api import disks, ids, tag_store
from ec2_api.common import account_of, check_max_results, from_us, to_us
from ec2_api.errors import (InvalidAMIIDNotFound, InvalidAMINameDuplicate, InvalidAMINameMalformed,
                            InvalidParameterValue, InvalidUserIDMalformed, MissingParameter,
                            check_dry_run, ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.permissions import apply_permission_changes, owner_matches, permission_changes
from storage.ec2_schema import SCHEMA

AuthFailure = ec2_error("AuthFailure", 403, "Not authorized for image")
NIMBO_ALIAS = "nimbo"
TINY_PREFIX = "nimbo-tiny-"
DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda rw"
GIB = 1024 ** 3
_NAME_RE = re.compile(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$")


# -- reading ------------------------------------------------------------------------------------

def data_of(row: Any) -> dict:
    return json.loads(row["data"] or "{}")


def launch_users(row: Any) -> list[str]:
    return json.loads(row["launch_users"] or "[]")


def can_launch(row: Any, account_id: str) -> bool:
    return row["account_id"] == account_id or bool(row["is_public"]) or account_id in launch_users(row)


async def visible_images(ctx: Any) -> list[Any]:
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_images WHERE region = ? AND state != 'deregistered'"
        " AND (account_id = ? OR is_public = 1 OR launch_users LIKE ?)",
        (ctx.region, account, f'%"{account}"%'))
    return [row for row in rows if can_launch(row, account)]


async def image_for_launch(ctx: Any, image_id: str) -> Any:
    """The image a launch names, if the caller may launch it (else InvalidAMIID.*)."""
    ids.check_image_ids([image_id])
    row = await ctx.app.db.fetchone("SELECT * FROM ec2_images WHERE image_id = ? AND region = ?",
                                    (image_id, ctx.region))
    if row is None or row["state"] == "deregistered" or not can_launch(row, account_of(ctx)):
        raise InvalidAMIIDNotFound(f"The image id '[{image_id}]' does not exist")
    return row


async def owned_image(ctx: Any, image_id: str) -> Any:
    """An image the caller owns; another account's visible image is AuthFailure."""
    if not image_id:
        raise MissingParameter("The request must contain the parameter ImageId")
    ids.check_image_ids([image_id])
    row = await ctx.app.db.fetchone("SELECT * FROM ec2_images WHERE image_id = ? AND region = ?",
                                    (image_id, ctx.region))
    account = account_of(ctx)
    if row is None or row["state"] == "deregistered" or not can_launch(row, account):
        raise InvalidAMIIDNotFound(f"The image id '[{image_id}]' does not exist")
    if row["account_id"] != account:
        raise AuthFailure(f"Not authorized for image:{image_id}")
    return row


def root_size_gib(row: Any) -> int:
    return max(1, math.ceil((row["size_bytes"] or 0) / GIB))


def block_device_mappings(row: Any) -> list[dict]:
    if row["image_type"] != "machine":
        return []
    if data_of(row).get("block_device_mappings"):   # an image made of snapshots (ec2_api.image_snapshots)
        return data_of(row)["block_device_mappings"]
    return [{"DeviceName": row["root_device_name"], "Ebs": {
        "DeleteOnTermination": True, "SnapshotId": row["snapshot_id"], "VolumeSize": root_size_gib(row),
        "VolumeType": "gp2", "Encrypted": False}}]


def creation_date(created_us: int) -> str:
    return from_us(created_us).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def describe_item(row: Any, tags: dict[str, str], viewer: str) -> dict:
    data = data_of(row)
    item = {
        "ImageId": row["image_id"],
        "ImageLocation": data.get("location") or f"{row['account_id']}/{row['name']}",
        "State": row["state"],
        "OwnerId": row["account_id"],
        "CreationDate": creation_date(row["created_us"]),
        "Public": bool(row["is_public"]),
        "ProductCodes": [],
        "Architecture": row["architecture"],
        "ImageType": row["image_type"],
        "KernelId": row["kernel_id"],
        "RamdiskId": row["ramdisk_id"],
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "BlockDeviceMappings": block_device_mappings(row),
        "Description": row["description"],
        "EnaSupport": True,
        "Hypervisor": "xen",
        "ImageOwnerAlias": row["owner_alias"],
        "Name": row["name"],
        "RootDeviceName": row["root_device_name"] if row["image_type"] == "machine" else None,
        "RootDeviceType": "ebs" if row["image_type"] == "machine" else "instance-store",
        "SriovNetSupport": "simple",
        "VirtualizationType": "hvm" if row["image_type"] == "machine" else "paravirtual",
        "BootMode": data.get("boot_mode"),
        "ImdsSupport": data.get("imds_support"),
        "SourceInstanceId": data.get("source_instance_id") if row["account_id"] == viewer else None,
        "Tags": tag_store.tag_list(tags) if row["account_id"] == viewer else [],
    }
    if row["state_reason"]:
        item["StateReason"] = {"Code": row["state"], "Message": row["state_reason"]}
    return item


def _ebs_values(item: dict, key: str) -> list:
    """A field of the EBS mappings (mappings without Ebs, such as NoDevice, have none)."""
    return [b["Ebs"][key] for b in item["BlockDeviceMappings"] if key in (b.get("Ebs") or {})]


_IMAGE_FILTERS = {
    "architecture": lambda i: i["Architecture"],
    "block-device-mapping.device-name": lambda i: [b["DeviceName"] for b in i["BlockDeviceMappings"]],
    "block-device-mapping.snapshot-id": lambda i: _ebs_values(i, "SnapshotId"),
    "block-device-mapping.volume-size": lambda i: _ebs_values(i, "VolumeSize"),
    "block-device-mapping.volume-type": lambda i: _ebs_values(i, "VolumeType"),
    "block-device-mapping.delete-on-termination": lambda i: _ebs_values(i, "DeleteOnTermination"),
    "block-device-mapping.encrypted": lambda i: _ebs_values(i, "Encrypted"),
    "creation-date": lambda i: i["CreationDate"],
    "description": lambda i: i["Description"],
    "ena-support": lambda i: i["EnaSupport"],
    "hypervisor": lambda i: i["Hypervisor"],
    "image-id": lambda i: i["ImageId"],
    "image-type": lambda i: i["ImageType"],
    "is-public": lambda i: i["Public"],
    "kernel-id": lambda i: i["KernelId"],
    "manifest-location": lambda i: i["ImageLocation"],
    "name": lambda i: i["Name"],
    "owner-alias": lambda i: i["ImageOwnerAlias"],
    "owner-id": lambda i: i["OwnerId"],
    "platform": lambda i: None,
    "platform-details": lambda i: i["PlatformDetails"],
    "ramdisk-id": lambda i: i["RamdiskId"],
    "root-device-name": lambda i: i["RootDeviceName"],
    "root-device-type": lambda i: i["RootDeviceType"],
    "state": lambda i: i["State"],
    "state-reason-code": lambda i: (i.get("StateReason") or {}).get("Code"),
    "state-reason-message": lambda i: (i.get("StateReason") or {}).get("Message"),
    "sriov-net-support": lambda i: i["SriovNetSupport"],
    "source-instance-id": lambda i: i["SourceInstanceId"],
    "usage-operation": lambda i: i["UsageOperation"],
    "virtualization-type": lambda i: i["VirtualizationType"],
    "imds-support": lambda i: i["ImdsSupport"],
    "boot-mode": lambda i: i["BootMode"],
}


def _executable_by(row: Any, users: list[str], account: str) -> bool:
    for user in users:
        if user == "all" and row["is_public"]:
            return True
        if user == "self" and (row["account_id"] == account or account in launch_users(row)):
            return True
        if user not in ("all", "self") and row["account_id"] == account and (
                row["is_public"] or user in launch_users(row)):
            return True
    return False


async def describe_images(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    max_results = check_max_results(params, 5, 1000)
    account = account_of(ctx)
    wanted = params.get("ImageIds") or []
    if wanted and max_results is not None:
        raise InvalidParameterValue("The parameter imagesSet cannot be used with the parameter maxResults")
    ids.check_image_ids(wanted)
    rows = await visible_images(ctx)
    if wanted:
        found = {row["image_id"]: row for row in rows}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise InvalidAMIIDNotFound(f"The image id '[{', '.join(missing)}]' does not exist")
        rows = [found[i] for i in dict.fromkeys(wanted)]
    for owner in params.get("Owners") or []:
        if owner not in ("self", "amazon", "aws-marketplace", "aws-backup-vault", NIMBO_ALIAS) \
                and not re.fullmatch(r"\d{12}", owner):
            raise InvalidUserIDMalformed(f"Invalid user id: \"{owner}\"")
    if params.get("Owners"):
        rows = [row for row in rows if owner_matches(row, params["Owners"], account)]
    if params.get("ExecutableUsers"):
        rows = [row for row in rows if _executable_by(row, params["ExecutableUsers"], account)]
    tags = await tag_store.tags_of(ctx.app.db, account, [row["image_id"] for row in rows])
    items = [describe_item(row, tags[row["image_id"]], account) for row in rows]
    items = apply_filters(items, params.get("Filters"), _IMAGE_FILTERS, tags=lambda i: tags[i["ImageId"]])
    page, token = paginate(items, lambda i: i["ImageId"], max_results, params.get("NextToken"))
    return {"Images": page, "NextToken": token}


# -- writing ------------------------------------------------------------------------------------

def check_name(name: str | None) -> str:
    if not name:
        raise MissingParameter("The request must contain the parameter Name")
    if not _NAME_RE.match(name):
        raise InvalidAMINameMalformed(
            "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, "
            "'(', ')', '.', '-', '/' and '_'")
    return name


async def check_name_free(db: Any, account_id: str, region: str, name: str) -> None:
    row = await db.fetchone(
        "SELECT image_id FROM ec2_images WHERE account_id = ? AND region = ? AND name = ?",
        (account_id, region, name))
    if row is not None:
        raise InvalidAMINameDuplicate(f"AMI name {name} is already in use by AMI {row['image_id']}")


async def insert_image(db: Any, *, image_id: str, account_id: str, region: str, name: str, state: str,
                       created_us: int, image_type: str = "machine", description: str | None = None,
                       architecture: str = "x86_64", root_device_name: str = "/dev/xvda",
                       disk_path: str | None = None, disk_format: str | None = None, size_bytes: int = 0,
                       kernel_id: str | None = None, ramdisk_id: str | None = None, is_public: bool = False,
                       owner_alias: str | None = None, data: dict | None = None,
                       tags: dict[str, dict[str, str]] | None = None) -> None:
    snapshot_id = ids.new_id("snap") if image_type == "machine" else None
    try:
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO ec2_images (image_id, account_id, region, name, description, state, image_type,"
                " architecture, root_device_name, disk_path, disk_format, size_bytes, kernel_id, ramdisk_id,"
                " snapshot_id, is_public, owner_alias, created_us, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, account_id, region, name, description, state, image_type, architecture,
                 root_device_name, disk_path, disk_format, size_bytes, kernel_id, ramdisk_id, snapshot_id,
                 int(is_public), owner_alias, created_us, json.dumps(data or {}, sort_keys=True)))
            for resource_type, resource_tags in (tags or {}).items():
                resource_id = image_id if resource_type == "image" else snapshot_id
                if resource_id:
                    await tag_store.write_tags(tx, account_id, region, resource_id, resource_type,
                                               resource_tags)
    except sqlite3.IntegrityError as exc:
        raise InvalidAMINameDuplicate(f"AMI name {name} is already in use") from exc


async def set_image_state(db: Any, image_id: str, state: str, *, reason: str | None = None,
                          **columns: Any) -> None:
    assignments = ", ".join(["state = ?", "state_reason = ?"] + [f"{k} = ?" for k in columns])
    async with db.transaction() as tx:
        await tx.execute(f"UPDATE ec2_images SET {assignments} WHERE image_id = ?",
                         (state, reason, *columns.values(), image_id))


async def deregister_image(ctx: Any, params: dict) -> dict:
    row = await owned_image(ctx, params.get("ImageId"))
    check_dry_run(params)
    from ec2_api.image_snapshots import ensure_image_snapshots  # noqa: PLC0415 (AWS keeps an AMI's snapshots)
    await ensure_image_snapshots(ctx.app.db, ctx.app.config)
    async with ctx.app.db.transaction() as tx:
        await tx.execute("DELETE FROM ec2_images WHERE image_id = ?", (row["image_id"],))
        await tag_store.delete_all_tags(tx, row["image_id"])
    await collect_image_files(ctx.app.db, ctx.app.config, row["image_id"])
    return {"Return": True}


async def collect_image_files(db: Any, config: Any, image_id: str) -> bool:
    """Delete a deregistered image's files once no instance's root disk is built on them."""
    if await db.fetchone("SELECT 1 FROM ec2_images WHERE image_id = ?", (image_id,)):
        return False
    if await db.fetchone("SELECT 1 FROM ec2_instances WHERE image_id = ? AND state != 'terminated'",
                         (image_id,)):
        return False
    folder = disks.images_dir(config, image_id)
    if os.path.isdir(folder):
        await asyncio.to_thread(disks.remove_tree, folder)
    return True


# -- attributes ---------------------------------------------------------------------------------

_ATTRIBUTES = {"description", "kernel", "ramdisk", "launchPermission", "productCodes", "blockDeviceMapping",
               "sriovNetSupport", "bootMode", "tpmSupport", "uefiData", "lastLaunchedTime", "imdsSupport",
               "deregistrationProtection"}


async def describe_image_attribute(ctx: Any, params: dict) -> dict:
    attribute = params.get("Attribute")
    if attribute not in _ATTRIBUTES:
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
    row = await owned_image(ctx, params.get("ImageId"))
    check_dry_run(params)
    data = data_of(row)
    out: dict[str, Any] = {"ImageId": row["image_id"]}
    if attribute == "description":
        out["Description"] = {"Value": row["description"]} if row["description"] else {}
    elif attribute == "kernel":    # no kernel: no <kernel> element at all (EC2 writes no empty one)
        if row["kernel_id"]:
            out["KernelId"] = {"Value": row["kernel_id"]}
    elif attribute == "ramdisk":
        if row["ramdisk_id"]:
            out["RamdiskId"] = {"Value": row["ramdisk_id"]}
    elif attribute == "launchPermission":
        permissions = [{"Group": "all"}] if row["is_public"] else []
        out["LaunchPermissions"] = permissions + [{"UserId": u} for u in launch_users(row)]
    elif attribute == "productCodes":
        out["ProductCodes"] = []
    elif attribute == "blockDeviceMapping":
        out["BlockDeviceMappings"] = block_device_mappings(row)
    elif attribute == "sriovNetSupport":
        out["SriovNetSupport"] = {"Value": "simple"}
    elif attribute == "lastLaunchedTime":
        last = data.get("last_launched_us")
        out["LastLaunchedTime"] = {"Value": creation_date(last)} if last else {}
    elif attribute == "deregistrationProtection":
        out["DeregistrationProtection"] = {"Value": "disabled"}
    else:
        key = {"bootMode": "BootMode", "tpmSupport": "TpmSupport", "uefiData": "UefiData",
               "imdsSupport": "ImdsSupport"}[attribute]
        value = data.get({"bootMode": "boot_mode", "imdsSupport": "imds_support"}.get(attribute, ""))
        out[key] = {"Value": value} if value else {}
    return out


async def modify_image_attribute(ctx: Any, params: dict) -> dict:
    row = await owned_image(ctx, params.get("ImageId"))
    attribute = params.get("Attribute")
    description = (params.get("Description") or {}).get("Value")
    if attribute == "description" and description is None:
        description = params.get("Value")
    changes_permissions = bool(params.get("LaunchPermission") or params.get("UserIds")
                               or params.get("UserGroups") or attribute == "launchPermission")
    if description is None and not changes_permissions:
        if attribute and attribute not in ("description", "launchPermission"):
            raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid.")
        raise MissingParameter("The request must contain a launch permission or a description")
    add, remove = permission_changes(params, "LaunchPermission", "UserGroups") if changes_permissions else ([], [])
    for entry in add + remove:
        group, user = entry.get("Group"), entry.get("UserId")
        if group is not None and group != "all":
            raise InvalidParameterValue(f"Invalid value '{group}' for group: only 'all' is supported")
        if user is not None and not re.fullmatch(r"\d{12}", user):
            raise InvalidUserIDMalformed(f"User ID '{user}' is invalid")
    check_dry_run(params)
    is_public, users = apply_permission_changes(bool(row["is_public"]), launch_users(row), add, remove)
    async with ctx.app.db.transaction() as tx:
        await tx.execute(
            "UPDATE ec2_images SET is_public = ?, launch_users = ?, description = ? WHERE image_id = ?",
            (int(is_public), json.dumps(users), row["description"] if description is None else description,
             row["image_id"]))
    return {}


# -- the built-in tiny image --------------------------------------------------------------------

async def _admin_account(db: Any) -> str:
    try:
        row = await db.fetchone("SELECT account_id FROM accounts WHERE is_admin = 1 ORDER BY created_at LIMIT 1")
    except sqlite3.OperationalError:
        row = None
    if row is None:
        raise RuntimeError("Nimbo has no admin account yet: start the server once (or bootstrap the "
                           "accounts) before registering images")
    return row["account_id"]


async def find_tiny_image(db: Any, region: str, owner: str | None = None, prefix: str = TINY_PREFIX) -> str | None:
    """The newest available tiny image (or built-in image named ``prefix``...) in the region, or None."""
    await db.migrate(SCHEMA)
    owner = owner or await _admin_account(db)
    row = await db.fetchone(
        "SELECT image_id FROM ec2_images WHERE account_id = ? AND region = ? AND name LIKE ?"
        " AND state = 'available' ORDER BY created_us DESC LIMIT 1", (owner, region, prefix + "%"))
    return row["image_id"] if row else None


async def register_tiny_image(db: Any, config: Any, artifacts: dict, *, if_missing: bool = False,
                              owner_account_id: str | None = None, now: dt.datetime | None = None,
                              prefix: str = TINY_PREFIX,
                              description: str = "Nimbo tiny Linux (busybox) for tests and demos") -> str:
    """Register the tiny image (``backend.tiny_image.build_tiny_image``'s kernel, initrd, disk and
    cmdline) as a public AMI of the admin account in every configured region; returns its id in
    the default region. With ``if_missing``, an existing tiny image is kept and its id returned.
    Other built-in images (``backend.debian_image``) register through it with their own name
    ``prefix`` and ``description``."""
    await db.migrate(SCHEMA)
    owner = owner_account_id or await _admin_account(db)
    regions = list(config.regions)
    if if_missing:
        existing = {r: await find_tiny_image(db, r, owner, prefix) for r in regions}
        if all(existing.values()):
            return existing[regions[0]]
    else:
        existing = {r: None for r in regions}
    now = now or dt.datetime.now(dt.timezone.utc)
    disk_info = await disks.info(artifacts["disk"])
    result: dict[str, str] = {}
    for region in regions:
        if existing.get(region):
            result[region] = existing[region]
            continue
        name = await _free_tiny_name(db, owner, region, now, prefix)
        image_id = ids.new_id("ami")
        folder = disks.images_dir(config, image_id)
        files = await asyncio.to_thread(_copy_artifacts, artifacts, folder, disk_info["format"])
        await insert_image(
            db, image_id=image_id, account_id=owner, region=region, name=name, state="available",
            created_us=to_us(now), description=description,
            disk_path=files["disk"], disk_format=disk_info["format"], size_bytes=disk_info["virtual_size"],
            is_public=True, owner_alias=NIMBO_ALIAS,
            data={"boot": {"kernel": files.get("kernel"), "initrd": files.get("initrd"),
                           "cmdline": artifacts.get("cmdline") or DEFAULT_CMDLINE},
                  "location": f"{NIMBO_ALIAS}/{name}", "boot_mode": "legacy-bios"})
        result[region] = image_id
    return result[regions[0]]


async def _free_tiny_name(db: Any, owner: str, region: str, now: dt.datetime, prefix: str = TINY_PREFIX) -> str:
    base = prefix + now.strftime("%Y%m%d")
    name, counter = base, 1
    while await db.fetchone("SELECT 1 FROM ec2_images WHERE account_id = ? AND region = ? AND name = ?",
                            (owner, region, name)):
        counter += 1
        name = f"{base}-{counter}"
    return name


def _copy_artifacts(artifacts: dict, folder: str, disk_format: str) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    files = {}
    for key, target in (("disk", f"disk.{disk_format}"), ("kernel", "kernel"), ("initrd", "initrd")):
        source = artifacts.get(key)
        if not source:
            continue
        destination = os.path.join(folder, target)
        shutil.copyfile(source, destination)
        os.chmod(destination, 0o444 if key != "disk" else 0o644)
        files[key] = destination
    return files

