"""Pieces of the tiny image builder that need no download: cpio, kernel and module parsing."""
from __future__ import annotations

import gzip
import lzma
import os
import shutil
import struct
import subprocess

import pytest

from backend.tiny_image import (CpioWriter, TinyImageError, elf_notes, extract_vmlinux, has_pvh_note,
                                modinfo, resolve_modules)


def _elf(sections: dict[str, bytes] = None, notes: list[tuple[bytes, int, bytes]] = None) -> bytes:
    """A minimal ELF64 little-endian file with the given sections and one PT_NOTE segment."""
    sections = sections or {}
    names = b"\0.shstrtab\0" + b"".join(n.encode() + b"\0" for n in sections)
    note_blob = b""
    for name, ntype, desc in notes or []:
        n = name + b"\0"
        note_blob += struct.pack("<III", len(n), len(desc), ntype)
        note_blob += n + b"\0" * (-len(n) % 4) + desc + b"\0" * (-len(desc) % 4)
    body = bytearray(b"\0" * 64)
    phoff = len(body)
    body += b"\0" * 56
    note_off = len(body)
    body += note_blob
    offsets = {}
    for name, data in sections.items():
        offsets[name] = len(body)
        body += data
    strtab_off = len(body)
    body += names
    shoff = len(body)
    shdrs = [b"\0" * 64]
    pos = names.index(b".shstrtab")
    for name, data in sections.items():
        shdrs.append(struct.pack("<IIQQQQIIQQ", names.index(name.encode() + b"\0"), 1, 0, 0,
                                 offsets[name], len(data), 0, 0, 1, 0))
    shdrs.append(struct.pack("<IIQQQQIIQQ", pos, 3, 0, 0, strtab_off, len(names), 0, 0, 1, 0))
    body += b"".join(shdrs)
    body[0:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    struct.pack_into("<HHIQQQIHHHHHH", body, 16, 2, 62, 1, 0, phoff, shoff, 0, 64, 56, 1, 64,
                     len(shdrs), len(shdrs) - 1)
    struct.pack_into("<IIQQQQQQ", body, phoff, 4, 4, note_off, 0, 0, len(note_blob), len(note_blob), 4)
    return bytes(body)


def test_cpio_is_readable_by_busybox(tmp_path):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox not installed")
    cpio = CpioWriter()
    cpio.directory("bin")
    cpio.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    cpio.file("odd", b"x" * 5)
    cpio.symlink("bin/sh", "/bin/busybox")
    cpio.char_device("dev/console", 5, 1)
    archive = cpio.getvalue()
    assert archive.startswith(b"070701") and len(archive) % 4 == 0
    listing = subprocess.run([busybox, "cpio", "-t"], input=archive, capture_output=True).stdout.decode()
    assert listing.split() == ["bin", "bin/hello", "odd", "bin/sh", "dev/console"]
    out = tmp_path / "x"
    out.mkdir()   # extract without the device node: creating one needs root
    subprocess.run([busybox, "cpio", "-i", "-d"], input=cpio_without_devices(), cwd=out, check=True,
                   capture_output=True)
    assert (out / "bin" / "hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.access(out / "bin" / "hello", os.X_OK)
    assert os.readlink(out / "bin" / "sh") == "/bin/busybox"
    assert (out / "odd").read_bytes() == b"xxxxx"


def cpio_without_devices() -> bytes:
    cpio = CpioWriter()
    cpio.directory("bin")
    cpio.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    cpio.file("odd", b"x" * 5)
    cpio.symlink("bin/sh", "/bin/busybox")
    return cpio.getvalue()


def _bzimage(payload: bytes, header: bool = True) -> bytes:
    image = bytearray(0x1000)
    if header:
        image[0x1F1] = 1                                  # setup_sects: setup is 2 * 512 bytes
        image[0x202:0x206] = b"HdrS"
        struct.pack_into("<H", image, 0x206, 0x20F)
        struct.pack_into("<II", image, 0x248, 0x100, len(payload))
    image = image[:1024] + b"\0" * 0x100 + payload + b"trailing"
    return bytes(image)


def test_extract_vmlinux_xz_by_header_and_gzip_by_scan():
    elf = _elf(notes=[(b"Xen", 18, b"\0" * 8)])
    assert extract_vmlinux(_bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ))) == elf
    assert extract_vmlinux(_bzimage(gzip.compress(elf), header=False)) == elf
    with pytest.raises(TinyImageError):
        extract_vmlinux(_bzimage(b"nothing compressed here"))


def test_pvh_note_detection():
    assert has_pvh_note(_elf(notes=[(b"Linux", 6, b"x"), (b"Xen", 18, b"\x50\x08\0\x01\0\0\0\0")]))
    assert not has_pvh_note(_elf(notes=[(b"Xen", 6, b"linux\0")]))
    assert list(elf_notes(b"not an elf")) == []


def test_modinfo_and_dependency_order(tmp_path):
    def ko(name, deps):
        info = f"license=GPL\0depends={deps}\0name={name}\0".encode()
        path = tmp_path / "kernel" / f"{name}.ko"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_elf({".text": b"\xc3", ".modinfo": info}))

    ko("virtio_ring", "")
    ko("virtio", "")
    ko("virtio_pci", "virtio_ring,virtio")
    ko("failover", "")
    ko("net_failover", "failover")
    ko("virtio_net", "net_failover,virtio_ring,virtio")
    assert modinfo((tmp_path / "kernel" / "virtio_net.ko").read_bytes())["depends"] == \
        "net_failover,virtio_ring,virtio"
    order = [n for n, _ in resolve_modules(str(tmp_path), ["virtio_pci", "virtio_net"])]
    assert order == ["virtio_ring", "virtio", "virtio_pci", "failover", "net_failover", "virtio_net"]
    with pytest.raises(TinyImageError, match="not found"):
        resolve_modules(str(tmp_path), ["virtio_scsi"])
