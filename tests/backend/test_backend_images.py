"""backend.images against the real qemu-img on small files."""
from __future__ import annotations

import os
import shutil

import pytest

from backend import images
from backend.images import ImageError

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")
MiB = 1024 * 1024


def _raw(path, size=4 * MiB) -> bytes:
    data = bytearray(size)
    for i in range(0, size, 64 * 1024):   # sparse-ish, recognisable content
        data[i:i + 16] = f"block {i:010d}".encode()
    with open(path, "wb") as f:
        f.write(data)
    return bytes(data)


async def test_convert_round_trip_through_every_format(tmp_path):
    original = _raw(tmp_path / "disk.raw")
    src, src_fmt = str(tmp_path / "disk.raw"), "raw"
    for fmt in ("qcow2", "vmdk", "vpc", "vdi", "qcow2"):
        dst = str(tmp_path / f"disk-{fmt}-{os.path.basename(src)}.{fmt}")
        result = await images.convert(src, dst, fmt, src_format=src_fmt)
        assert result["format"] == fmt
        assert result["virtual_size"] == len(original), fmt
        assert (await images.info(dst))["format"] == fmt      # probed
        assert not os.path.exists(dst + ".part")
        src, src_fmt = dst, fmt
    back = str(tmp_path / "back.raw")
    await images.convert(src, back, "raw")
    with open(back, "rb") as f:
        assert f.read() == original


async def test_info_overlay_blank_resize(tmp_path):
    base = str(tmp_path / "base.qcow2")
    blank = await images.create_blank(base, 8 * MiB)
    assert blank["format"] == "qcow2" and blank["virtual_size"] == 8 * MiB
    assert blank["backing_file"] is None and blank["external_files"] == []

    overlay = str(tmp_path / "overlay.qcow2")
    info = await images.create_overlay(base, overlay, size_bytes=16 * MiB)
    assert info["virtual_size"] == 16 * MiB
    assert info["backing_file"] == base and info["backing-filename-format"] == "qcow2"
    same = await images.create_overlay(base, str(tmp_path / "o2.qcow2"))
    assert same["virtual_size"] == 8 * MiB
    with pytest.raises(ImageError, match="smaller than the backing"):
        await images.create_overlay(base, str(tmp_path / "o3.qcow2"), size_bytes=MiB)

    grown = await images.resize(overlay, 32 * MiB)
    assert grown["virtual_size"] == 32 * MiB
    with pytest.raises(ImageError, match="cannot shrink"):
        await images.resize(overlay, MiB)

    raw = await images.create_blank(str(tmp_path / "blank.raw"), 2 * MiB, "raw")
    assert raw["format"] == "raw" and raw["virtual_size"] == 2 * MiB


async def test_convert_flattens_only_when_allowed(tmp_path):
    base = str(tmp_path / "base.raw")
    original = _raw(base, MiB)
    overlay = str(tmp_path / "overlay.qcow2")
    await images.create_overlay(base, overlay)
    # a qcow2 that points at another host file is refused by default (think: an upload)
    with pytest.raises(ImageError, match="refers to other files"):
        await images.convert(overlay, str(tmp_path / "out.qcow2"))
    flat = await images.convert(overlay, str(tmp_path / "flat.raw"), "raw", allow_external=True)
    assert flat["backing_file"] is None
    with open(tmp_path / "flat.raw", "rb") as f:
        assert f.read() == original


async def test_vmdk_with_external_extent_is_refused(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"s" * 512 * 8)
    descriptor = tmp_path / "evil.vmdk"
    descriptor.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\n'
        f'RW 8 FLAT "{secret}" 0\n\n'
        'ddb.adapterType = "ide"\nddb.geometry.cylinders = "1"\n'
        'ddb.geometry.heads = "1"\nddb.geometry.sectors = "8"\n')
    info = await images.info(str(descriptor))
    assert str(secret) in info["external_files"]
    with pytest.raises(ImageError, match="refers to other files"):
        await images.convert(str(descriptor), str(tmp_path / "out.qcow2"))


async def test_errors_carry_qemu_img_message(tmp_path):
    with pytest.raises(ImageError) as err:
        await images.info(str(tmp_path / "missing.qcow2"))
    assert "No such file" in str(err.value) and err.value.returncode == 1
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"not an image" * 100)
    with pytest.raises(ImageError, match="qcow2"):
        await images.info(str(junk), "qcow2")
    with pytest.raises(ImageError, match="unsupported image format"):
        await images.convert(str(junk), str(tmp_path / "x"), "iso")
    with pytest.raises(ImageError):
        await images.create_blank(str(tmp_path / "zero.qcow2"), 0)
    assert not os.path.exists(tmp_path / "x.part")
