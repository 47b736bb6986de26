"""Build a Debian cloud image (kernel, systemd, openssh-server, cloud-init) from Debian's packages.

``build_debian_image(out_dir, suite="bookworm")`` returns a manifest with ``disk`` (a qcow2
holding a GPT disk whose partition 1 is the ext4 root filesystem), ``kernel`` (the cloud
kernel's uncompressed vmlinux with its PVH entry point, else the bzImage), ``initrd`` (the
image's own initramfs) and ``cmdline`` (``root=PARTUUID=...``): instances boot by direct kernel
boot, as the tiny image does.

Why direct kernel boot rather than a bootloader: under TCG, SeaBIOS + GRUB costs seconds before
the kernel starts, GRUB needs a BIOS boot partition written through a loop device or a mounted
filesystem (``grub-install`` cannot target an image file), and the bzImage's own decompressor
takes 10-16 s under TCG while the PVH vmlinux starts in about a second. The kernel and initrd
are those installed in the image (``/boot``), so the image stays a normal Debian system.

How (no loop devices, no mounts on the host): ``mmdebstrap --mode=unshare`` installs the
packages into a folder (its private mount namespace holds the chroot's /proc and /dev);
``mkfs.ext4 -d`` writes that folder into a partition-sized file; ``sfdisk`` writes a GPT onto a
sparse disk file; the partition is copied in at 1 MiB; ``qemu-img convert`` makes the qcow2.
The files Nimbo adds (cloud-init settings as Debian's cloud images have them, networkd, fstab,
initramfs settings) are listed by ``rootfs_files`` and unit tested without a build.

Cache and crash story: everything lives in ``out_dir``: ``debs/`` keeps the downloaded packages
(a rebuild downloads nothing), ``<suite>/`` the finished files and ``manifest.json``, which is
removed before the files are replaced (renamed from temporaries) and written after all are in
place, so a manifest never describes a mix of two builds. A build works in
``out_dir/build-*`` and deletes it when it ends, fails or is interrupted; a build that died
(SIGKILL, power loss) leaves such a folder, which the next build removes first. A lock file
serialises concurrent builds of the same ``out_dir``. A manifest whose recipe (packages, files,
recipe version) differs from the current one is rebuilt.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from typing import Callable, Iterator, Optional

from backend.tiny_image import extract_vmlinux, has_pvh_note

RECIPE_VERSION = 1
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
RELEASES = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
KERNEL_PACKAGE = "linux-image-cloud-amd64"   # virtio-only cloud kernel: smaller, boots faster
PACKAGES = [
    KERNEL_PACKAGE, "initramfs-tools", "systemd-sysv", "udev", "dbus", "systemd-resolved",
    "iproute2", "netbase", "isc-dhcp-client", "openssh-server", "cloud-init", "cloud-guest-utils", "e2fsprogs",
    "sudo", "ca-certificates", "less",
]
DISK_BYTES = 2 * 1024 ** 3          # the AMI's root volume (8 GiB on AWS; 2 GiB as Debian's images)
SECTOR = 512
PARTITION_START = 2048              # sectors: 1 MiB, as every partitioning tool aligns
GPT_BACKUP_SECTORS = 33             # backup header + entries at the disk's end
DEFAULT_USER = "admin"              # Debian's cloud images' user
# The kernel command line: the root partition by PARTUUID (no initramfs lookup by label needed),
# the serial console GetConsoleOutput reads, and boot-time trims that only skip probing
# hardware QEMU does not emulate (no PS/2 aux port, one UART) and crypto self-tests.
CMDLINE_TEMPLATE = ("root=PARTUUID={partuuid} rw console=ttyS0,115200 earlyprintk=ttyS0,115200 "
                    "consoleblank=0 cryptomgr.notests i8042.noaux i8042.nomux i8042.nopnp "
                    "8250.nr_uarts=1 no_timer_check")
_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")

Progress = Callable[[str], None]


class DebianImageError(Exception):
    pass


# -- what goes into the image (pure, unit tested) -----------------------------------------------

def check_suite(suite: str) -> str:
    if not _SUITE_RE.match(suite or ""):
        raise DebianImageError(f"invalid Debian suite {suite!r}")
    return suite


def release_of(suite: str) -> str:
    """Debian's version number of a suite ("12" for bookworm), or the suite's own name."""
    return RELEASES.get(suite, suite)


def cloud_config(user: str = DEFAULT_USER) -> str:
    """/etc/cloud/cloud.cfg.d/01_nimbo.cfg: the default user as Debian's cloud images have it
    (key pair's key, passwordless sudo, locked password), the Ec2 datasource's timeouts, and
    systemd-networkd as the network renderer. ds-identify keeps choosing the datasource: Ec2 is
    found when the SMBIOS system uuid and serial both start with ``ec2`` (as on Nitro)."""
    return f"""\
# Written by Nimbo's image builder (backend/debian_image.py).
system_info:
  default_user:
    name: {user}
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
  network:
    renderers: [networkd]
datasource:
  Ec2:
    timeout: 10
    max_wait: 60
disable_root: true
ssh_pwauth: false
preserve_hostname: false
manage_etc_hosts: localhost
ssh_deletekeys: true
ssh_genkeytypes: [rsa, ecdsa, ed25519]
locale: C.UTF-8
# The modules of Debian's cloud.cfg that have something to act on in this image (no snap, lxd,
# puppet, chef, salt, landscape, byobu, rsyslog, grub, locales): each module costs its import,
# which is slow under TCG.
cloud_init_modules: [migrator, seed_random, bootcmd, write-files, growpart, resizefs, disk_setup,
  mounts, set_hostname, update_hostname, update_etc_hosts, ca-certs, users-groups, ssh]
cloud_config_modules: [locale, set-passwords, apt-pipelining, apt-configure, ntp, timezone,
  disable-ec2-metadata, runcmd]
cloud_final_modules: [package-update-upgrade-install, write-files-deferred, scripts-vendor,
  scripts-per-once, scripts-per-boot, scripts-per-instance, scripts-user, ssh-authkey-fingerprints,
  keys-to-console, phone-home, final-message, power-state-change]
"""


def fallback_network() -> str:
    """A DHCP fallback for the first Ethernet interface, used only if cloud-init wrote nothing
    (networkd takes the first matching file in name order; cloud-init's is 10-cloud-init-*)."""
    return "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseHostname=false\n"


def fstab(partuuid: str) -> str:
    return (f"# <file system> <mount point> <type> <options> <dump> <pass>\n"
            f"PARTUUID={partuuid} / ext4 rw,discard,errors=remount-ro 0 1\n")


def kernel_cmdline(partuuid: str) -> str:
    return CMDLINE_TEMPLATE.format(partuuid=partuuid)


def initramfs_conf() -> str:
    """Only the modules a QEMU/KVM guest needs: a small initramfs unpacks fast under TCG."""
    return "MODULES=list\nCOMPRESS=gzip\n"


INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "ext4", "crc32c_generic"]


def rootfs_files(partuuid: str, user: str = DEFAULT_USER) -> dict[str, tuple[str, int]]:
    """Files Nimbo writes into the image: path -> (content, mode)."""
    return {
        "/etc/cloud/cloud.cfg.d/01_nimbo.cfg": (cloud_config(user), 0o644),
        "/etc/systemd/network/99-nimbo-dhcp.network": (fallback_network(), 0o644),
        "/etc/fstab": (fstab(partuuid), 0o644),
        "/etc/hostname": ("localhost\n", 0o644),
        "/etc/hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                       "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", 0o644),
        "/etc/default/locale": ("LANG=C.UTF-8\n", 0o644),   # cloud-init's locale needs no locale-gen
        "/etc/machine-id": ("", 0o444),   # systemd makes one per instance at first boot
    }


def early_files() -> dict[str, tuple[str, int]]:
    """Files needed before the packages install (so that the kernel's initramfs is built once)."""
    return {
        "/etc/initramfs-tools/conf.d/nimbo.conf": (initramfs_conf(), 0o644),
        # modules.d, not /etc/initramfs-tools/modules: that one is a conffile of initramfs-tools
        "/usr/share/initramfs-tools/modules.d/nimbo": ("".join(m + "\n" for m in INITRAMFS_MODULES), 0o644),
    }


# Run inside the chroot at the end: services to enable, files that must differ per instance.
CUSTOMIZE_COMMANDS = [
    "systemctl enable systemd-networkd.service systemd-resolved.service",
    "systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer",
    "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub /var/lib/dbus/machine-id",
    "passwd -l root",
]


def apt_sources(suite: str, mirror: str = DEFAULT_MIRROR) -> list[str]:
    """The image's apt sources, as Debian's cloud images have them: a release also gets its
    -updates and -security suites, so that the image is built with the security fixes (and
    ``apt-get upgrade`` in an instance finds the next ones). mmdebstrap writes them into the
    image's /etc/apt/sources.list."""
    lines = [f"deb {mirror} {suite} main"]
    if suite in RELEASES:
        lines += [f"deb {mirror} {suite}-updates main", f"deb {SECURITY_MIRROR} {suite}-security main"]
    return lines


def mmdebstrap_argv(suite: str, rootfs: str, debs: str, early_dir: str, late_dir: str,
                    mirror: str = DEFAULT_MIRROR, packages: Optional[list[str]] = None) -> list[str]:
    """The mmdebstrap command: the apt variant plus ``packages`` (no recommends), with the
    package cache synced in and out of ``debs`` and Nimbo's files copied in by hooks."""
    packages = packages or PACKAGES
    customize = [f"chroot \"$1\" sh -ec '{cmd}'" for cmd in CUSTOMIZE_COMMANDS]
    return [
        "mmdebstrap", "--mode=unshare", "--variant=apt", "--format=directory",
        "--skip=essential/unlink", "--aptopt=Acquire::Retries \"3\"",
        "--include=" + ",".join(packages),
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
        f"--essential-hook=sync-in {early_dir} /",
        f"--customize-hook=sync-in {late_dir} /",
        *[f"--customize-hook={c}" for c in customize],
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        suite, rootfs, *apt_sources(suite, mirror),
    ]


def partition_layout(disk_bytes: int = DISK_BYTES) -> tuple[int, int]:
    """(start, size) of the root partition in sectors: from 1 MiB to the last whole MiB
    before the backup GPT."""
    total = disk_bytes // SECTOR
    usable_end = total - GPT_BACKUP_SECTORS - 1
    size = ((usable_end - PARTITION_START + 1) // 2048) * 2048
    if size <= 0:
        raise DebianImageError(f"disk of {disk_bytes} bytes is too small")
    return PARTITION_START, size


def sfdisk_script(partuuid: str, disk_id: str, disk_bytes: int = DISK_BYTES) -> str:
    start, size = partition_layout(disk_bytes)
    return (f"label: gpt\nlabel-id: {disk_id}\nunit: sectors\n\n"
            f"start={start}, size={size}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, "
            f"uuid={partuuid}, name=\"root\"\n")


def mkfs_argv(rootfs: str, image: str, size_bytes: int, fs_uuid: str) -> list[str]:
    return ["mkfs.ext4", "-q", "-F", "-L", "root", "-U", fs_uuid, "-d", rootfs,
            "-E", "lazy_itable_init=1,lazy_journal_init=1", "-m", "1",
            image, f"{size_bytes // 1024}k"]


def recipe_hash(suite: str, mirror: str = DEFAULT_MIRROR) -> str:
    h = hashlib.sha256(f"{RECIPE_VERSION} {apt_sources(suite, mirror)} {PACKAGES} {CUSTOMIZE_COMMANDS} "
                       f"{CMDLINE_TEMPLATE} {DISK_BYTES} {INITRAMFS_MODULES}".encode())
    for files in (rootfs_files("P"), early_files()):
        for path, (content, mode) in sorted(files.items()):
            h.update(f"{path} {mode:o} {content}".encode())
    return h.hexdigest()[:16]


# -- the build ---------------------------------------------------------------------------------

def missing_tools() -> list[str]:
    tools = ["mmdebstrap", "mkfs.ext4", "sfdisk", "qemu-img", "unshare"]
    return [t for t in tools if shutil.which(t) is None and not os.path.exists(f"/sbin/{t}")]


def cached_manifest(out_dir: str, suite: str = DEFAULT_SUITE) -> Optional[dict]:
    """The finished build for ``suite`` if its recipe is current and its files exist."""
    path = os.path.join(os.path.abspath(out_dir), suite, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get("recipe") != recipe_hash(suite, manifest.get("mirror", DEFAULT_MIRROR)):
        return None
    if not all(os.path.exists(manifest.get(k) or "") for k in ("kernel", "initrd", "disk")):
        return None
    return manifest


def build_debian_image(out_dir: str, suite: str = DEFAULT_SUITE, *, force: bool = False,
                       mirror: str = DEFAULT_MIRROR, progress: Optional[Progress] = None) -> dict:
    """Build (or reuse) the image for ``suite`` in ``out_dir/<suite>``; returns the manifest:
    disk, kernel, initrd, cmdline (paths absolute), kernel_version, pvh, suite, release,
    build_seconds, disk_bytes (actual qcow2 size) and packages (versions of the key ones)."""
    check_suite(suite)
    say = progress or (lambda message: None)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.join(out_dir, "debs"), exist_ok=True)
    if not force and (manifest := cached_manifest(out_dir, suite)):
        say(f"using the cached build in {os.path.dirname(manifest['disk'])}")
        return manifest
    if os.geteuid() != 0:
        raise DebianImageError("building the Debian image needs root (mkfs.ext4 -d keeps the "
                               "files' owners only when run as root)")
    missing = missing_tools()
    if missing:
        raise DebianImageError(f"missing tools: {', '.join(missing)} (apt-get install mmdebstrap "
                               "fdisk e2fsprogs qemu-utils util-linux)")
    with _locked(out_dir):
        if not force and (manifest := cached_manifest(out_dir, suite)):
            return manifest
        for stale in glob.glob(os.path.join(out_dir, "build-*")):
            shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix="build-") as work:
            return _build(out_dir, work, suite, mirror, say)


def _build(out_dir: str, work: str, suite: str, mirror: str, say: Progress) -> dict:
    started = time.monotonic()

    def step(n: int, message: str) -> None:
        say(f"[{time.monotonic() - started:6.1f}s] {n}/4 {message}")

    partuuid, disk_id, fs_uuid = (str(uuid.uuid4()) for _ in range(3))
    early, late, rootfs = (os.path.join(work, d) for d in ("early", "late", "rootfs"))
    _write_tree(early, early_files())
    _write_tree(late, rootfs_files(partuuid))
    step(1, f"mmdebstrap {suite}: {len(PACKAGES)} packages and their dependencies from {mirror}")
    _run_streaming(mmdebstrap_argv(suite, rootfs, os.path.join(out_dir, "debs"), early, late, mirror),
                   lambda line: step(1, line if len(line) <= 120 else line[:117] + "..."))
    step(2, "kernel and initramfs")
    final = os.path.join(out_dir, suite)
    staging = os.path.join(work, "out")
    os.makedirs(staging)
    kernel = _take_kernel(rootfs, staging)
    packages = _package_versions(rootfs, ["cloud-init", "systemd", "openssh-server", KERNEL_PACKAGE])
    step(3, "ext4 root filesystem (mkfs.ext4 -d), GPT disk (sfdisk), qcow2 (qemu-img convert)")
    assemble_disk(rootfs, os.path.join(staging, "disk.qcow2"), work, partuuid=partuuid, disk_id=disk_id,
                  fs_uuid=fs_uuid)
    shutil.rmtree(rootfs, ignore_errors=True)
    step(4, "finishing")
    os.makedirs(final, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):   # no manifest over a mix of old and new files
        os.unlink(os.path.join(final, "manifest.json"))
    names = {"disk": "disk.qcow2", "kernel": os.path.basename(kernel["kernel"]), "initrd": "initrd.img"}
    for name in names.values():
        os.replace(os.path.join(staging, name), os.path.join(final, name))
    for old in os.listdir(final):
        if old not in names.values() and old != "manifest.json":
            os.unlink(os.path.join(final, old))
    manifest = {
        "suite": suite, "release": release_of(suite), "mirror": mirror,
        "disk": os.path.join(final, names["disk"]), "kernel": os.path.join(final, names["kernel"]),
        "initrd": os.path.join(final, names["initrd"]), "cmdline": kernel_cmdline(partuuid),
        "partuuid": partuuid, "kernel_version": kernel["version"], "pvh": kernel["pvh"],
        "packages": packages, "disk_virtual_bytes": DISK_BYTES,
        "disk_bytes": os.path.getsize(os.path.join(final, names["disk"])),
        "recipe": recipe_hash(suite, mirror), "build_seconds": round(time.monotonic() - started, 1),
    }
    _atomic_write(os.path.join(final, "manifest.json"), json.dumps(manifest, indent=1).encode())
    step(4, f"done: {manifest['disk']} ({manifest['disk_bytes'] / 2**20:.0f} MiB)")
    return manifest


def assemble_disk(rootfs: str, qcow2: str, work: str, *, partuuid: str, disk_id: str, fs_uuid: str,
                  disk_bytes: int = DISK_BYTES) -> None:
    """``rootfs`` as partition 1 (ext4) of a GPT disk of ``disk_bytes``, written as ``qcow2``;
    no loop device, no mount: mkfs.ext4 -d into a file, sfdisk onto a sparse file, a copy at the
    partition's offset, qemu-img convert."""
    start, size = partition_layout(disk_bytes)
    part = os.path.join(work, "root.ext4")
    raw = os.path.join(work, "disk.raw")
    try:
        _run(mkfs_argv(rootfs, part, size * SECTOR, fs_uuid))
        with open(raw, "wb") as f:
            f.truncate(disk_bytes)
        _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", raw],
             stdin=sfdisk_script(partuuid, disk_id, disk_bytes))
        _copy_sparse(part, raw, start * SECTOR)
        os.unlink(part)
        _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2 + ".tmp"])
        os.replace(qcow2 + ".tmp", qcow2)
    finally:
        for path in (part, raw, qcow2 + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _take_kernel(rootfs: str, staging: str) -> dict:
    """Copy the installed kernel (as a PVH vmlinux when it has the entry point) and initramfs."""
    vmlinuz = sorted(glob.glob(os.path.join(rootfs, "boot", "vmlinuz-*")))
    if not vmlinuz:
        raise DebianImageError("the image has no kernel in /boot")
    version = os.path.basename(vmlinuz[-1])[len("vmlinuz-"):]
    initrd = os.path.join(rootfs, "boot", f"initrd.img-{version}")
    if not os.path.exists(initrd):
        raise DebianImageError(f"the image has no initramfs for {version}")
    with open(vmlinuz[-1], "rb") as f:
        bzimage = f.read()
    vmlinux = uncompressed_kernel(bzimage)
    pvh = bool(vmlinux) and has_pvh_note(vmlinux)
    kernel = os.path.join(staging, "vmlinux" if pvh else "vmlinuz")
    with open(kernel, "wb") as f:
        f.write(vmlinux if pvh else bzimage)
    shutil.copyfile(initrd, os.path.join(staging, "initrd.img"))
    return {"kernel": kernel, "version": version, "pvh": pvh}


LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"


def uncompressed_kernel(bzimage: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage, or b"" when it cannot be unpacked (then the bzImage
    boots). Debian's generic kernel is xz-compressed; its cloud kernel uses LZ4 (``lz4 -dc``)."""
    try:
        return extract_vmlinux(bzimage)
    except Exception:  # noqa: BLE001 (not xz/gzip/zstd: try LZ4 below)
        pass
    if bzimage[0x202:0x206] != b"HdrS" or shutil.which("lz4") is None:
        return b""
    setup = ((bzimage[0x1F1] or 4) + 1) * 512
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    payload = bzimage[setup + offset:setup + offset + length]
    if not payload.startswith(LZ4_LEGACY_MAGIC):
        return b""
    proc = subprocess.run(["lz4", "-dc"], input=payload, capture_output=True)
    return proc.stdout if proc.stdout[:4] == b"\x7fELF" else b""


def _package_versions(rootfs: str, names: list[str]) -> dict[str, str]:
    out = _run(["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\n",
                *names], check=False)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _write_tree(root: str, files: dict[str, tuple[str, int]]) -> None:
    for path, (content, mode) in files.items():
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(content)
        os.chmod(target, mode)


def _copy_sparse(src: str, dst: str, offset: int, block: int = 1024 * 1024) -> None:
    """Copy ``src`` into ``dst`` at ``offset``, skipping all-zero blocks (dst is sparse)."""
    zero = bytes(block)
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        pos = 0
        while chunk := fin.read(block):
            if chunk != zero[:len(chunk)]:
                fout.seek(offset + pos)
                fout.write(chunk)
            pos += len(chunk)


def _run(argv: list[str], stdin: Optional[str] = None, check: bool = True) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise DebianImageError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _run_streaming(argv: list[str], on_line: Progress) -> None:
    """Run a long command, passing its informative lines (mmdebstrap's ``I:``) to ``on_line``."""
    tail: list[str] = []
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-40:]
            if line.startswith("I: "):
                on_line(line[3:])
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise DebianImageError(f"{argv[0]} failed ({code}):\n" + "\n".join(tail))


@contextlib.contextmanager
def _locked(out_dir: str) -> Iterator[None]:
    with open(os.path.join(out_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


if __name__ == "__main__":  # python -m backend.debian_image [OUT_DIR [SUITE]]
    import sys
    result = build_debian_image(sys.argv[1] if len(sys.argv) > 1 else ".cache/debian-image",
                                sys.argv[2] if len(sys.argv) > 2 else DEFAULT_SUITE,
                                force="--force" in sys.argv, progress=print)
    print(json.dumps(result, indent=1))
