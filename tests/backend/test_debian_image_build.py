"""The Debian image builder's parts that need no package download: the files it writes into the
image, its command lines, the partition layout, and the disk assembly (mkfs.ext4 -d + sfdisk +
qemu-img, no loop device) on a small tree."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

import pytest
import yaml

from backend import debian_image as di

PARTUUID = "0c3e2a50-58a8-4b8b-9d0e-7b1e3c1a9f10"


def test_cloud_config_is_debians_default_user_with_networkd():
    cfg = yaml.safe_load(di.cloud_config())
    user = cfg["system_info"]["default_user"]
    assert user["name"] == "admin" and user["lock_passwd"] is True
    assert user["sudo"] == ["ALL=(ALL) NOPASSWD:ALL"] and "sudo" in user["groups"]
    assert cfg["system_info"]["network"]["renderers"] == ["networkd"]
    assert cfg["disable_root"] is True and cfg["ssh_pwauth"] is False
    assert cfg["ssh_deletekeys"] is True and cfg["preserve_hostname"] is False
    # the modules that do what the image promises run; user data runs once per instance
    assert {"growpart", "resizefs", "set_hostname", "users-groups", "ssh"} <= set(cfg["cloud_init_modules"])
    assert {"scripts-per-instance", "scripts-user", "final-message"} <= set(cfg["cloud_final_modules"])
    # ds-identify must keep choosing the datasource (from the SMBIOS uuid): no fixed list
    assert "datasource_list" not in cfg
    assert cfg["datasource"]["Ec2"]["max_wait"] > 0
    assert cfg["locale"] == "C.UTF-8"


def test_rootfs_files():
    files = di.rootfs_files(PARTUUID)
    assert files["/etc/fstab"][0].splitlines()[-1].split()[:3] == [f"PARTUUID={PARTUUID}", "/", "ext4"]
    assert files["/etc/machine-id"][0] == ""          # one per instance, made at first boot
    assert "DHCP=yes" in files["/etc/systemd/network/99-nimbo-dhcp.network"][0]
    assert yaml.safe_load(files["/etc/cloud/cloud.cfg.d/01_nimbo.cfg"][0])["system_info"]
    assert all(path.startswith("/etc/") for path in files)
    early = di.early_files()
    modules = early["/usr/share/initramfs-tools/modules.d/nimbo"][0].split()
    assert {"virtio_pci", "virtio_blk"} <= set(modules)
    assert "MODULES=list" in early["/etc/initramfs-tools/conf.d/nimbo.conf"][0]


def test_kernel_cmdline_boots_the_partition_on_the_serial_console():
    line = di.kernel_cmdline(PARTUUID)
    assert f"root=PARTUUID={PARTUUID}" in line.split() and "console=ttyS0,115200" in line.split()
    assert "rw" in line.split()


def test_mmdebstrap_command_line():
    argv = di.mmdebstrap_argv("bookworm", "/w/rootfs", "/c/debs", "/w/early", "/w/late")
    assert argv[0] == "mmdebstrap" and "--mode=unshare" in argv and "--variant=apt" in argv
    assert argv[-5:] == ["bookworm", "/w/rootfs", "deb http://deb.debian.org/debian bookworm main",
                         "deb http://deb.debian.org/debian bookworm-updates main",
                         "deb http://deb.debian.org/debian-security bookworm-security main"]
    assert di.apt_sources("sid") == ["deb http://deb.debian.org/debian sid main"]
    include = next(a for a in argv if a.startswith("--include=")).split("=", 1)[1].split(",")
    for package in ("linux-image-cloud-amd64", "systemd-sysv", "openssh-server", "cloud-init",
                    "cloud-guest-utils", "e2fsprogs", "sudo", "isc-dhcp-client"):
        assert package in include
    hooks = [a for a in argv if a.startswith("--") and "hook=" in a]
    assert "--setup-hook=sync-in /c/debs /var/cache/apt/archives/" in hooks
    assert "--essential-hook=sync-in /w/early /" in hooks          # before the kernel's initramfs
    assert hooks[-1] == "--customize-hook=sync-out /var/cache/apt/archives /c/debs"
    assert any("systemctl enable systemd-networkd.service" in h for h in hooks)
    assert any("ssh_host_" in h for h in hooks)                     # no shared host keys


def test_partition_layout_and_sfdisk_script():
    start, size = di.partition_layout(2 * 1024 ** 3)
    assert start == 2048 and size % 2048 == 0
    assert (start + size) * 512 <= 2 * 1024 ** 3 - 33 * 512
    assert (start + size) * 512 > 2 * 1024 ** 3 - 2 * 1024 ** 2
    script = di.sfdisk_script(PARTUUID, "11111111-2222-3333-4444-555555555555")
    assert "label: gpt" in script and f"uuid={PARTUUID}" in script and f"size={size}" in script
    with pytest.raises(di.DebianImageError):
        di.partition_layout(1024 * 1024)


def test_suites_and_recipe():
    assert di.check_suite("bookworm") == "bookworm" and di.release_of("bookworm") == "12"
    assert di.release_of("sid") == "sid"
    for bad in ("", "Bookworm", "../x", "a b", "bookworm;rm"):
        with pytest.raises(di.DebianImageError):
            di.check_suite(bad)
    assert di.recipe_hash("bookworm") == di.recipe_hash("bookworm")
    assert di.recipe_hash("bookworm") != di.recipe_hash("trixie")


def test_cached_manifest_needs_current_recipe_and_files(tmp_path):
    folder = tmp_path / "bookworm"
    folder.mkdir()
    files = {k: str(folder / k) for k in ("disk", "kernel", "initrd")}
    for path in files.values():
        open(path, "wb").close()
    manifest = {**files, "recipe": di.recipe_hash("bookworm")}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert di.cached_manifest(str(tmp_path))["disk"] == files["disk"]
    (folder / "manifest.json").write_text(json.dumps({**manifest, "recipe": "old"}))
    assert di.cached_manifest(str(tmp_path)) is None
    (folder / "manifest.json").write_text(json.dumps(manifest))
    os.unlink(files["initrd"])
    assert di.cached_manifest(str(tmp_path)) is None
    # a cached build is returned without running anything (no root, no mmdebstrap needed)
    open(files["initrd"], "wb").close()
    assert di.build_debian_image(str(tmp_path))["kernel"] == files["kernel"]


def test_uncompressed_kernel_of_an_lz4_bzimage():
    if shutil.which("lz4") is None:
        pytest.skip("lz4 not installed")
    elf = b"\x7fELF" + bytes(range(256)) * 64
    payload = subprocess.run(["lz4", "-l", "-c"], input=elf, capture_output=True, check=True).stdout
    assert payload.startswith(di.LZ4_LEGACY_MAGIC)
    setup_sects = 4
    image = bytearray((setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x20F)
    struct.pack_into("<II", image, 0x248, 16, len(payload))
    image += b"\0" * 16 + payload
    assert di.uncompressed_kernel(bytes(image)) == elf
    assert di.uncompressed_kernel(b"\0" * 4096) == b""


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("mkfs.ext4", "sfdisk", "qemu-img", "debugfs")),
                    reason="mkfs.ext4, sfdisk, debugfs and qemu-img are needed")
def test_assemble_disk_without_loop_devices(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text("localhost\n")
    os.symlink("hostname", rootfs / "etc" / "link")
    qcow2 = tmp_path / "disk.qcow2"
    work = tmp_path / "work"
    work.mkdir()
    disk_bytes = 64 * 1024 ** 2
    di.assemble_disk(str(rootfs), str(qcow2), str(work), partuuid=PARTUUID,
                     disk_id="11111111-2222-3333-4444-555555555555",
                     fs_uuid="22222222-3333-4444-5555-666666666666", disk_bytes=disk_bytes)
    assert os.listdir(work) == []
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(qcow2)],
                                     capture_output=True, check=True, text=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == disk_bytes
    raw = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(raw)], check=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, check=True,
                                      text=True).stdout)["partitiontable"]
    (part,) = table["partitions"]
    assert table["label"] == "gpt" and part["uuid"].lower() == PARTUUID and part["start"] == 2048
    out = subprocess.run(["debugfs", "-R", "cat /etc/hostname", f"{raw}?offset={2048 * 512}"],
                         capture_output=True, text=True)
    assert out.stdout == "localhost\n", out.stderr


def test_a_build_sweeps_what_a_crashed_build_left_and_cleans_up_when_it_fails(tmp_path, monkeypatch):
    stale = tmp_path / "build-crashed"
    (stale / "rootfs").mkdir(parents=True)
    monkeypatch.setattr(di.os, "geteuid", lambda: 0)
    monkeypatch.setattr(di, "missing_tools", lambda: [])
    seen = []

    def failing_build(out_dir, work, suite, mirror, say):
        seen.append(sorted(os.listdir(out_dir)))
        (tmp_path / "bookworm").mkdir()
        raise di.DebianImageError("mmdebstrap failed (1): E: something")

    monkeypatch.setattr(di, "_build", failing_build)
    with pytest.raises(di.DebianImageError):
        di.build_debian_image(str(tmp_path))
    assert "build-crashed" not in seen[0] and any(n.startswith("build-") for n in seen[0])
    assert not any(n.startswith("build-") for n in os.listdir(tmp_path))
    assert di.cached_manifest(str(tmp_path)) is None


def test_a_build_that_cannot_run_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(di.os, "geteuid", lambda: 1000)
    with pytest.raises(di.DebianImageError, match="needs root"):
        di.build_debian_image(str(tmp_path))
    monkeypatch.setattr(di.os, "geteuid", lambda: 0)
    monkeypatch.setattr(di, "missing_tools", lambda: ["mmdebstrap"])
    with pytest.raises(di.DebianImageError, match="missing tools: mmdebstrap"):
        di.build_debian_image(str(tmp_path))
