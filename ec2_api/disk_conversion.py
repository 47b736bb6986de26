"""A user's disk image turned into a self-contained qcow2: what ImportImage (and later ImportSnapshot
and ImportVolume) run on an uploaded file.

``inspect_disk`` recognises the format (qemu-img's probe; an OVA is a tar archive whose first VMDK
is the disk) and checks it against the format the request declared, as VM Import does ("Disk
validation failed [Unsupported VMDK File Format]"); ``convert_disk`` runs ``qemu-img convert -p``
as a subprocess (never on the event loop), reporting its progress, into ``<target>.part`` renamed
into place when complete. A corrupt image fails in one of the two with ``DiskValidationError``,
whose message is what the task's StatusMessage shows after ``ClientError: ``.

Images that refer to other host files (a backing file, external VMDK extents, a qcow2 data file)
are refused, and the probed format is always passed to qemu-img explicitly.
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import tarfile
from dataclasses import dataclass
from typing import Awaitable, Callable

from backend import images as backend_images

# The Format a DiskContainer may declare -> qemu-img's format name. AWS takes OVA, VHD, VHDX, VMDK
# and RAW; Nimbo's hypervisors add QCOW2 and VDI.
DECLARED_FORMATS = {"RAW": "raw", "VMDK": "vmdk", "VHD": "vpc", "VHDX": "vhdx", "QCOW2": "qcow2",
                    "VDI": "vdi", "OVA": "ova"}
WIRE_FORMATS = {v: k for k, v in DECLARED_FORMATS.items()}
READABLE = ("raw", "qcow2", "vmdk", "vpc", "vhdx", "vdi")
MAX_VIRTUAL_SIZE = 16 * 1024 ** 4          # EBS's largest volume
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
_KERNEL_MAGIC = (b"\x7fELF",)


class DiskValidationError(Exception):
    """The upload is not a disk image Nimbo can import; ``str()`` is VM Import's wording."""


@dataclass
class DiskInfo:
    path: str                  # the disk itself (inside an OVA: the extracted VMDK)
    format: str                # qemu-img's name: raw, qcow2, vmdk, vpc, vhdx, vdi
    virtual_size: int
    file_size: int
    container: str             # what the upload was: the format name, or "ova"

    @property
    def wire_format(self) -> str:
        return WIRE_FORMATS.get(self.container, self.container.upper())


def declared_format(value: str | None) -> str | None:
    """qemu-img's name for a DiskContainer Format (any case), None when not given; ValueError
    when it is not one Nimbo imports."""
    if not value:
        return None
    found = DECLARED_FORMATS.get(value.upper())
    if found is None:
        raise ValueError(value)
    return found


def _head(path: str, size: int = 1024) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def _extract_ova_disk(path: str, work_dir: str) -> str:
    """The first VMDK of an OVA (a tar of .ovf, .mf and disks) written to ``work_dir``."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                if member.isfile() and member.name.lower().endswith(".vmdk"):
                    target = os.path.join(work_dir, "ova-disk.vmdk")
                    source = archive.extractfile(member)
                    with open(target, "wb") as out:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                    return target
    except tarfile.TarError as exc:
        raise DiskValidationError(f"Disk validation failed [Invalid OVA file: {exc}]") from exc
    raise DiskValidationError("Disk validation failed [OVA file contains no VMDK disk]")


async def inspect_disk(path: str, declared: str | None, work_dir: str) -> DiskInfo:
    """What the upload at ``path`` is, checked against the ``declared`` format (qemu-img's name,
    'ova', or None to take what the probe finds)."""
    size = os.path.getsize(path)
    if size == 0:
        raise DiskValidationError("Disk validation failed [The disk image is empty]")
    container = declared
    disk_path = path
    head = await asyncio.to_thread(_head, path, 0x210)
    if declared == "ova" or (declared is None and head[257:262] == b"ustar"):
        disk_path = await asyncio.to_thread(_extract_ova_disk, path, work_dir)
        container, declared = "ova", "vmdk"
        head = await asyncio.to_thread(_head, disk_path, 0x210)
    if declared in (None, "raw") and (head.startswith(_KERNEL_MAGIC) or head[0x202:0x206] == b"HdrS"):
        raise DiskValidationError("Disk validation failed [The file is a kernel, not a disk image]")
    try:
        probed = await backend_images.info(disk_path)
    except backend_images.ImageError as exc:
        raise DiskValidationError(f"Disk validation failed [{exc.message}]") from exc
    found = probed.get("format") or "raw"
    if declared is not None and found != declared:
        wanted = WIRE_FORMATS.get(declared, declared.upper())
        if found == "raw":
            raise DiskValidationError(f"Disk validation failed [Unsupported {wanted} File Format]")
        raise DiskValidationError(f"Disk validation failed [The disk is {WIRE_FORMATS.get(found, found)}, "
                                  f"not {wanted} as declared]")
    if found not in READABLE:
        raise DiskValidationError(f"Disk validation failed [Unsupported disk format {found}]")
    checked = probed
    if checked["external_files"]:
        raise DiskValidationError("Disk validation failed [The disk refers to other files "
                                  "(a backing file or external extents)]")
    virtual = int(checked["virtual_size"] or 0)
    if virtual <= 0:
        raise DiskValidationError("Disk validation failed [The disk has no size]")
    if virtual > MAX_VIRTUAL_SIZE:
        raise DiskValidationError("Disk validation failed [The disk is larger than 16 TiB]")
    return DiskInfo(disk_path, found, virtual, os.path.getsize(disk_path), container or found)


def _die_with_parent() -> None:
    """In the child: a qemu-img whose server is killed dies too (no writer outlives a crash)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def convert_disk(disk: DiskInfo, target: str,
                       on_progress: Callable[[float], Awaitable[None]] | None = None) -> int:
    """``disk`` as a self-contained qcow2 at ``target``; returns its virtual size. A cancelled
    caller kills qemu-img and leaves no ``target`` behind."""
    tmp = target + ".part"
    argv = [backend_images.QEMU_IMG, "convert", "-p", "-f", disk.format, "-O", "qcow2", disk.path, tmp]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent)
    try:
        errors = asyncio.ensure_future(proc.stderr.read())
        last = -1.0
        while chunk := await proc.stdout.read(4096):
            marks = _PROGRESS.findall(chunk)
            if marks and on_progress is not None:
                percent = float(marks[-1])
                if percent - last >= 5 or percent >= 100:
                    last = percent
                    await on_progress(percent)
        stderr = await errors
        code = await proc.wait()
        if code != 0:
            message = stderr.decode(errors="replace").strip().removeprefix("qemu-img: ")
            raise DiskValidationError(f"Disk validation failed [{message or f'qemu-img exit status {code}'}]")
        os.replace(tmp, target)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return int((await backend_images.info(target, "qcow2"))["virtual_size"])
