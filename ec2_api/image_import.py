"""Images made from files: RegisterImage (a disk, kernel or ramdisk uploaded to S3) and CreateImage
(a copy of an instance's root disk). ImportImage's tasks are ``ec2_api.import_tasks``'.

Both share one conversion path (``build_image``): the source is recognised (a Linux kernel, an
initramfs, or a disk image in raw, qcow2, vmdk, vpc/vhd, vdi or vhdx), disks are converted to a
self-contained qcow2 under ``images/<id>/``, and the image goes from ``pending`` to ``available``
(or ``failed``). The work runs in the background; ImageAvailable waiters poll DescribeImages.

S3 objects are reached through ``storage.object_files`` (a file holding an object the account may
read, valid for the block; an unreadable object is InvalidManifest, as AWS answers a manifest it
cannot fetch); a RegisterImage build records its worker, so that ``import_tasks.recover`` fails
an image a crash left ``pending``;
``register_image_file`` takes a local path for the CLI. Uploaded
disks that refer to other host files (backing files, external extents) are refused.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from typing import Any, AsyncIterator

from ec2_api import disks, ids, images, instance_store, tag_store
from ec2_api.common import account_of, now_us
from ec2_api.errors import (EC2Error, IncorrectInstanceState, InvalidParameter, InvalidParameterValue,
                            MissingParameter, check_dry_run, ec2_error)
from ec2_api.import_tasks import RUNNER, register_work_dir
from storage import object_files

log = logging.getLogger("nimbo.ec2")
InvalidSnapshotNotFound = ec2_error("InvalidSnapshot.NotFound")
InvalidManifest = ec2_error("InvalidManifest")
DISK_FORMATS = set(disks.FORMATS)
_RAMDISK_MAGIC = (b"\x1f\x8b", b"070701", b"070702", b"070707", b"\x28\xb5\x2f\xfd", b"\xfd7zXZ\x00",
                  b"\x02\x21\x4c\x18", b"\x04\x22\x4d\x18", b"BZh", b"\x5d\x00\x00")


def sniff_kind(path: str) -> str:
    """'kernel', 'ramdisk' or 'disk' from the file's first bytes (bzImage "HdrS", ELF vmlinux,
    compressed or newc cpio initramfs; anything else is left to qemu-img)."""
    with open(path, "rb") as fh:
        head = fh.read(0x210)
    if head[0x202:0x206] == b"HdrS" or head.startswith(b"\x7fELF"):
        return "kernel"
    if head.startswith(_RAMDISK_MAGIC):
        return "ramdisk"
    return "disk"


@contextlib.asynccontextmanager
async def object_file(ctx: Any, bucket: str, key: str) -> AsyncIterator[str]:
    """A readable file with the bytes of an S3 object the caller may read, for the block's
    duration (handed over by ``storage.object_files``, with the caller's read access checked)."""
    store = object_files.find_store(getattr(ctx.app, "states", {}) or {})
    if store is None:
        raise InvalidParameter("The object store is not running on this endpoint")
    work = register_work_dir(ctx.app.config)
    try:
        async with object_files.object_file(store, bucket, key, account_of(ctx), work) as path:
            yield path
    except object_files.ObjectAccessDenied as exc:
        raise InvalidManifest(f"HTTP 403 (Forbidden) response for URL s3://{bucket}/{key}: "
                              f"the object is not readable by this account") from exc
    except object_files.NoSuchObject as exc:
        raise InvalidManifest(f"HTTP 404 (Not Found) response for URL s3://{bucket}/{key}: "
                              f"check your image location") from exc
    finally:
        disks.remove_tree(work)


def split_location(location: str) -> tuple[str, str]:
    text = location.strip()
    for prefix in ("s3://", "https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            if prefix != "s3://":   # https://s3.host/bucket/key: drop the host
                text = text.partition("/")[2]
    bucket, _, key = text.partition("/")
    if not bucket or not key:
        raise InvalidParameterValue(f"Invalid image location '{location}': expected bucket/key")
    return bucket, key


async def build_image(db: Any, config: Any, image_id: str, source: str, kind: str,
                      source_format: str | None = None, *, instance_disk: bool = False) -> None:
    """Copy or convert ``source`` into the image's folder, then mark the image available.
    ``instance_disk``: the source is an instance's root disk (an overlay on Nimbo's own image)."""
    folder = disks.images_dir(config, image_id)
    try:
        if kind == "disk":
            target = os.path.join(folder, "disk.qcow2")
            if instance_disk:
                await disks.flatten_instance_disk(source, target)
            else:
                await disks.convert_upload(source, target, source_format)
            size = (await disks.info(target))["virtual_size"]
            await images.set_image_state(db, image_id, "available", disk_path=target, disk_format="qcow2",
                                         size_bytes=size)
        else:
            target = os.path.join(folder, kind)
            os.makedirs(folder, exist_ok=True)
            await asyncio.to_thread(shutil.copyfile, source, target)
            await images.set_image_state(db, image_id, "available", disk_path=target,
                                         size_bytes=os.path.getsize(target))
    except Exception as exc:  # noqa: BLE001 (the image records why it failed)
        log.warning("building image %s failed: %s", image_id, exc)
        await images.set_image_state(db, image_id, "failed", reason=f"Client.UnsupportedImage: {exc}"[:250])
        disks.remove_tree(folder)


async def _source_kind(path: str, declared_format: str | None = None) -> tuple[str, str | None]:
    kind = await asyncio.to_thread(sniff_kind, path)
    if kind != "disk":
        return kind, None
    fmt = declared_format or (await disks.info(path))["format"]
    if fmt not in DISK_FORMATS:
        raise InvalidParameter(f"Unsupported disk image format '{fmt}'")
    return kind, fmt


async def _boot_images(ctx: Any, kernel_id: str | None, ramdisk_id: str | None) -> dict:
    boot: dict[str, Any] = {}
    for image_id, kind in ((kernel_id, "kernel"), (ramdisk_id, "ramdisk")):
        if not image_id:
            continue
        row = await images.image_for_launch(ctx, image_id)
        if row["image_type"] != kind:
            raise InvalidParameterValue(f"The image '{image_id}' is not a {kind} image")
        boot["kernel" if kind == "kernel" else "initrd"] = row["disk_path"]
    return boot


async def register_image(ctx: Any, params: dict) -> dict:
    name = images.check_name(params.get("Name"))
    location = params.get("ImageLocation")
    for mapping in params.get("BlockDeviceMappings") or []:
        if (mapping.get("Ebs") or {}).get("SnapshotId"):
            snapshot = mapping["Ebs"]["SnapshotId"]
            raise InvalidSnapshotNotFound(f"The snapshot '{snapshot}' does not exist.")
    if not location:
        raise MissingParameter("The request must contain the parameter ImageLocation "
                               "(bucket/key of a disk image, kernel or ramdisk in S3)")
    architecture = params.get("Architecture") or "x86_64"
    if architecture not in ("x86_64", "i386"):
        raise InvalidParameterValue(f"Unsupported architecture '{architecture}': Nimbo runs x86 guests")
    tags = tag_store.tag_specifications(params, {"image", "snapshot"})
    bucket, key = split_location(location)
    account = account_of(ctx)
    await images.check_name_free(ctx.app.db, account, ctx.region, name)
    boot = await _boot_images(ctx, params.get("KernelId"), params.get("RamdiskId"))
    check_dry_run(params)
    async with object_file(ctx, bucket, key) as path:
        kind, fmt = await _source_kind(path)
    image_id = await _register(ctx, name=name, kind=kind, description=params.get("Description"),
                               architecture=architecture,
                               root_device_name=params.get("RootDeviceName") or "/dev/xvda",
                               kernel_id=params.get("KernelId"), ramdisk_id=params.get("RamdiskId"),
                               boot=boot, location=f"{bucket}/{key}", tags=tags,
                               boot_mode=params.get("BootMode"), imds_support=params.get("ImdsSupport"),
                               extra={"runner": RUNNER})
    ctx.state.spawn(_build_from_object(ctx, image_id, bucket, key, kind, fmt))
    return {"ImageId": image_id}


async def _build_from_object(ctx: Any, image_id: str, bucket: str, key: str, kind: str, fmt: str | None) -> None:
    try:
        async with object_file(ctx, bucket, key) as path:
            await build_image(ctx.app.db, ctx.app.config, image_id, path, kind, fmt)
    except EC2Error as exc:   # the object went away in between
        await images.set_image_state(ctx.app.db, image_id, "failed", reason=f"Client.InvalidParameter: {exc.message}")


async def _register(ctx: Any, *, name: str, kind: str, boot: dict, location: str, tags: dict,
                    description: str | None = None, architecture: str = "x86_64",
                    root_device_name: str = "/dev/xvda", kernel_id: str | None = None,
                    ramdisk_id: str | None = None, boot_mode: str | None = None,
                    imds_support: str | None = None, extra: dict | None = None) -> str:
    prefix = {"disk": "ami", "kernel": "aki", "ramdisk": "ari"}[kind]
    image_id = ids.new_id(prefix)
    if kind == "disk" and (boot.get("kernel") and "cmdline" not in boot):
        boot["cmdline"] = images.DEFAULT_CMDLINE
    await images.insert_image(
        ctx.app.db, image_id=image_id, account_id=account_of(ctx), region=ctx.region, name=name,
        state="pending", created_us=now_us(ctx),
        image_type={"disk": "machine", "kernel": "kernel", "ramdisk": "ramdisk"}[kind],
        description=description, architecture=architecture, root_device_name=root_device_name,
        kernel_id=kernel_id, ramdisk_id=ramdisk_id,
        data={"boot": boot, "location": location, "boot_mode": boot_mode, "imds_support": imds_support,
              **(extra or {})},
        tags=tags)
    return image_id


async def register_image_file(db: Any, config: Any, *, account_id: str, region: str, path: str, name: str,
                              description: str | None = None, public: bool = False,
                              kernel_path: str | None = None, initrd_path: str | None = None,
                              cmdline: str | None = None) -> str:
    """Register a local disk image file as an AMI (the CLI's path; converts now, then returns)."""
    from storage.ec2_schema import SCHEMA  # noqa: PLC0415
    await db.migrate(SCHEMA)
    kind, fmt = await _source_kind(path)
    if kind != "disk":
        raise ValueError(f"{path} is a {kind}, not a disk image")
    image_id = ids.new_id("ami")
    folder = disks.images_dir(config, image_id)
    boot: dict[str, Any] = {}
    os.makedirs(folder, exist_ok=True)
    for source, target in ((kernel_path, "kernel"), (initrd_path, "initrd")):
        if source:
            boot[target] = os.path.join(folder, target)
            await asyncio.to_thread(shutil.copyfile, source, boot[target])
    if kernel_path:
        boot["cmdline"] = cmdline or images.DEFAULT_CMDLINE
    from ec2_api.common import to_us  # noqa: PLC0415
    import datetime as dt  # noqa: PLC0415
    await images.insert_image(db, image_id=image_id, account_id=account_id, region=region, name=name,
                              state="pending", created_us=to_us(dt.datetime.now(dt.timezone.utc)),
                              description=description, is_public=public,
                              data={"boot": boot, "location": f"file://{os.path.abspath(path)}"})
    await build_image(db, config, image_id, path, "disk", fmt)
    return image_id


# -- CreateImage ----------------------------------------------------------------------------------

async def create_image(ctx: Any, params: dict) -> dict:
    name = images.check_name(params.get("Name"))
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    account = account_of(ctx)
    (row,) = await instance_store.load_owned(ctx.app.db, account, ctx.region, [instance_id], now_us(ctx))
    if row["state"] not in ("running", "stopped", "stopping"):
        raise IncorrectInstanceState(f"The instance '{instance_id}' is not in a valid state for this operation.")
    tags = tag_store.tag_specifications(params, {"image", "snapshot"})
    await images.check_name_free(ctx.app.db, account, ctx.region, name)
    check_dry_run(params)
    data = instance_store.data_of(row)
    boot = {k: v for k, v in (data.get("boot") or {}).items() if k in ("kernel", "initrd", "cmdline")}
    image_id = await _register(ctx, name=name, kind="disk", boot=boot, location=f"{account}/{name}",
                               tags=tags, description=params.get("Description"),
                               architecture=data.get("architecture", "x86_64"),
                               root_device_name=data.get("root_device_name", "/dev/xvda"),
                               kernel_id=data.get("kernel_id"), ramdisk_id=data.get("ramdisk_id"),
                               extra={"source_instance_id": instance_id})
    ctx.state.spawn(build_image(ctx.app.db, ctx.app.config, image_id, row["root_disk"], "disk", "qcow2",
                                instance_disk=True))
    return {"ImageId": image_id}
