"""qemu-img helpers, run as asyncio subprocesses (never blocking the event loop).

Formats: raw, qcow2, vmdk, vpc (VHD), vdi. Read-only queries use ``-U`` (no lock), so they
work on images a running VM holds open.

Safety for images that come from users: ``convert`` refuses sources that reference other host
files (a backing file, external vmdk extents, an external qcow2 data file) unless
``allow_external=True``, and always passes the source format explicitly once probed, so a raw
image that merely looks like qcow2 cannot reach host files either (pass ``src_format='raw'``
when you know the upload is raw).
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Optional

FORMATS = ("raw", "qcow2", "vmdk", "vpc", "vdi")
QEMU_IMG = "qemu-img"


class ImageError(Exception):
    """qemu-img failed or the image is unacceptable; ``str()`` carries qemu-img's message."""

    def __init__(self, message: str, returncode: Optional[int] = None, argv: Optional[list[str]] = None):
        super().__init__(message)
        self.message = message
        self.returncode = returncode
        self.argv = argv or []


async def run_qemu_img(*args: str, timeout: Optional[float] = None) -> str:
    argv = [QEMU_IMG, *args]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError as exc:
        raise ImageError(f"{QEMU_IMG} not found", None, argv) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        message = message.removeprefix("qemu-img: ")
        raise ImageError(message, proc.returncode, argv)
    return out.decode(errors="replace")


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ImageError(f"unsupported image format {fmt!r} (use one of {', '.join(FORMATS)})")
    return fmt


async def info(path: str, fmt: Optional[str] = None) -> dict[str, Any]:
    """qemu-img's JSON info plus convenience keys: format, virtual_size, actual_size,
    backing_file (or None), external_files (other host files the image refers to)."""
    args = ["info", "-U", "--output=json"]
    if fmt:
        args += ["-f", _check_format(fmt)]
    data = json.loads(await run_qemu_img(*args, path))
    external: list[str] = []
    backing = data.get("full-backing-filename") or data.get("backing-filename")
    if backing:
        external.append(backing)
    specific = (data.get("format-specific") or {}).get("data") or {}
    me = os.path.realpath(path)
    for extent in specific.get("extents", []) or []:
        name = extent.get("filename")
        if name and os.path.realpath(name) != me:
            external.append(name)
    if specific.get("data-file"):
        external.append(specific["data-file"])
    data.update(format=data.get("format"), virtual_size=data.get("virtual-size"),
                actual_size=data.get("actual-size"), backing_file=backing,
                external_files=external)
    return data


async def convert(src: str, dst: str, out_format: str = "qcow2", *, src_format: Optional[str] = None,
                  allow_external: bool = False, compress: bool = False,
                  timeout: Optional[float] = None) -> dict[str, Any]:
    """Convert ``src`` into a new ``dst`` (written to a temporary name, renamed when complete).
    Returns ``info(dst)``."""
    _check_format(out_format)
    src_info = await info(src, src_format)
    fmt = _check_format(src_format or src_info["format"])
    if src_info["external_files"] and not allow_external:
        raise ImageError(f"{src}: refers to other files ({', '.join(src_info['external_files'])})")
    tmp = f"{dst}.part"
    args = ["convert", "-q", "-f", fmt, "-O", out_format]
    if compress:
        if out_format != "qcow2":
            raise ImageError("compression is only supported for qcow2 output")
        args.append("-c")
    if out_format == "vpc":  # keep the exact size (VHD's CHS geometry would round it)
        args += ["-o", "force_size=on"]
    try:
        await run_qemu_img(*args, src, tmp, timeout=timeout)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return await info(dst, out_format)


async def create_overlay(backing: str, dst: str, size_bytes: Optional[int] = None,
                         backing_format: Optional[str] = None) -> dict[str, Any]:
    """A qcow2 ``dst`` on top of ``backing`` (absolute path recorded), optionally larger."""
    backing = os.path.abspath(backing)
    binfo = await info(backing, backing_format)
    bfmt = _check_format(backing_format or binfo["format"])
    if size_bytes is not None and size_bytes < binfo["virtual_size"]:
        raise ImageError(f"size {size_bytes} is smaller than the backing image ({binfo['virtual_size']})")
    args = ["create", "-q", "-f", "qcow2", "-F", bfmt, "-b", backing, dst]
    if size_bytes is not None:
        args.append(str(int(size_bytes)))
    await run_qemu_img(*args)
    return await info(dst, "qcow2")


async def create_blank(dst: str, size_bytes: int, fmt: str = "qcow2") -> dict[str, Any]:
    if size_bytes <= 0:
        raise ImageError("size must be positive")
    await run_qemu_img("create", "-q", "-f", _check_format(fmt), dst, str(int(size_bytes)))
    return await info(dst, fmt)


async def resize(path: str, size_bytes: int, fmt: str = "qcow2") -> dict[str, Any]:
    """Grow an image (shrinking is refused: it would lose data)."""
    current = await info(path, fmt)
    if size_bytes < current["virtual_size"]:
        raise ImageError(f"cannot shrink {path} from {current['virtual_size']} to {size_bytes}")
    await run_qemu_img("resize", "-q", "-f", _check_format(fmt), path, str(int(size_bytes)))
    return await info(path, fmt)
