"""Disk files behind instances and images: qcow2 overlays on an image's disk, conversions of
uploaded disk images, flattened copies of instance disks for CreateImage. Paths live under the
data directory: ``volumes/<vol-id>.qcow2`` and ``images/<image-id>/``.

The qemu-img work is ``backend.images``'s; this module decides where files go and turns the
backend's errors into ``DiskToolError``.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

from backend import images as backend_images

FORMATS = backend_images.FORMATS


class DiskToolError(Exception):
    pass


def volumes_dir(config: Any) -> str:
    return os.path.join(config.data_dir, "volumes")


def images_dir(config: Any, image_id: str | None = None) -> str:
    base = os.path.join(config.data_dir, "images")
    return os.path.join(base, image_id) if image_id else base


def volume_path(config: Any, volume_id: str) -> str:
    return os.path.join(volumes_dir(config), f"{volume_id}.qcow2")


async def info(path: str, fmt: str | None = None) -> dict:
    """{'format': ..., 'virtual_size': bytes, 'external_files': [...]} of a disk image."""
    try:
        data = await backend_images.info(path, fmt)
    except backend_images.ImageError as exc:
        raise DiskToolError(exc.message) from exc
    return {"format": data["format"], "virtual_size": int(data["virtual_size"]),
            "external_files": data.get("external_files") or []}


# The overlay of a given base file and size is the same bytes every time (qemu-img writes no
# time or random data into it): qemu-img runs once per (base, size), later overlays are copies.
# A launch of a thousand instances then costs a thousand small file writes, not a thousand
# qemu-img processes (~30 ms of CPU each).
_templates: dict[tuple, bytes] = {}
_template_locks: dict[tuple, asyncio.Lock] = {}   # by (event loop, template key)
MAX_TEMPLATES = 64


async def create_overlay(base: str, base_format: str, path: str, size_bytes: int | None = None) -> None:
    """A qcow2 file at ``path`` backed by ``base``, grown to ``size_bytes`` when that is larger."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    base = os.path.abspath(base)
    try:
        stat = os.stat(base)
    except OSError as exc:
        raise DiskToolError(f"{base}: {exc.strerror}") from exc
    key = (base, stat.st_mtime_ns, stat.st_size, stat.st_ino, base_format, size_bytes)
    lock = _template_locks.setdefault((asyncio.get_running_loop(), key), asyncio.Lock())
    async with lock:
        template = _templates.get(key)
        if template is None:
            await _qemu_img_overlay(base, base_format, path, size_bytes)
            with open(path, "rb") as fh:
                template = fh.read()
            if len(_templates) >= MAX_TEMPLATES:
                _templates.clear()
                _template_locks.clear()
            _templates[key] = template
            return
    await asyncio.to_thread(_write_new, path, template)


async def _qemu_img_overlay(base: str, base_format: str, path: str, size_bytes: int | None) -> None:
    try:
        base_size = (await backend_images.info(base, base_format))["virtual_size"]
        size = size_bytes if size_bytes and size_bytes > base_size else None
        await backend_images.create_overlay(base, path, size_bytes=size, backing_format=base_format)
    except backend_images.ImageError as exc:
        raise DiskToolError(exc.message) from exc


def _write_new(path: str, data: bytes) -> None:
    tmp = f"{path}.part"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


async def convert_upload(src: str, dst: str, src_format: str | None = None) -> None:
    """A user's disk image as a self-contained qcow2; images that refer to other host files
    (backing files, external extents) are refused."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        await backend_images.convert(src, dst, "qcow2", src_format=src_format)
    except backend_images.ImageError as exc:
        raise DiskToolError(exc.message) from exc


async def flatten_instance_disk(src: str, dst: str) -> None:
    """A self-contained copy of an instance's root disk (its overlay and the image below), readable
    while the VM runs (a crash-consistent copy)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".part"
    try:
        await backend_images.run_qemu_img("convert", "-q", "-U", "-f", "qcow2", "-O", "qcow2", src, tmp)
        os.replace(tmp, dst)
    except backend_images.ImageError as exc:
        raise DiskToolError(exc.message) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
