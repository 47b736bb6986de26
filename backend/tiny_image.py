"""Build a tiny bootable guest from Debian packages only, offline after the first download.

``build_tiny_image(out_dir)`` returns kernel (an uncompressed vmlinux with a PVH entry point,
booted directly by QEMU, much faster under TCG than the bzImage), initrd (a newc cpio with
busybox, the virtio modules and ``backend/guest/init.sh`` as /init), disk (a blank 64 MiB
qcow2 to use as root volume) and the kernel command line. Downloaded .debs stay in
``out_dir/debs`` and a finished build is reused while its recipe is unchanged.
"""
from __future__ import annotations

import glob
import hashlib
import json
import lzma
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import time
import zlib
from typing import Iterable, Optional

GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
RECIPE_VERSION = 2
# The drivers the guest needs; their dependencies are resolved from each module's .modinfo.
# ext4 mounts the root volume (formatted ext2 by busybox on first boot); crc32c is requested
# by name at mount time, not a modinfo dependency.
GUEST_MODULES = ["virtio_pci", "virtio_net", "virtio_blk", "button", "evdev", "pvpanic_mmio",
                 "crc32c_generic", "ext4"]
# The ssh server (Debian's dropbear-bin, from the build host: the Makefile installs it) and the
# shared libraries it loads, copied into the initramfs at the same paths.
SSH_BINARIES = ["/usr/sbin/dropbear", "/usr/bin/dropbearkey"]
# Boot-time trimming for a disposable test guest under TCG: skip crypto self-tests, PS/2 and
# extra UART probing, the W+X scan (rodata=off) and CPU bug mitigations.
DEFAULT_CMDLINE = ("console=ttyS0 panic=-1 quiet cryptomgr.notests i8042.noaux i8042.nomux "
                   "i8042.nopnp 8250.nr_uarts=1 no_timer_check rodata=off mitigations=off")
BLANK_DISK_BYTES = 64 * 1024 * 1024


class TinyImageError(Exception):
    pass


# -- newc cpio -----------------------------------------------------------------------------
class CpioWriter:
    """Writes a newc ("070701") archive, the format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.lstrip("/").encode() + b"\0"
        fields = [self._ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(name_b), 0]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._chunks += [header, name_b, _pad(len(header) + len(name_b)), data, _pad(len(data))]

    def directory(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def getvalue(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self._chunks)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


# -- kernel --------------------------------------------------------------------------------
_MAGICS = [(b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd")]


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage (payload located by the boot protocol header, with a
    fallback scan for the compression magic). Debian compresses with xz."""
    candidates = []
    if bzimage[0x202:0x206] == b"HdrS" and struct.unpack_from("<H", bzimage, 0x206)[0] >= 0x208:
        setup = ((bzimage[0x1F1] or 4) + 1) * 512
        offset, length = struct.unpack_from("<II", bzimage, 0x248)
        candidates.append(setup + offset)
    for magic, _ in _MAGICS:
        pos = bzimage.find(magic)
        while pos != -1 and len(candidates) < 16:
            candidates.append(pos)
            pos = bzimage.find(magic, pos + 1)
    for pos in candidates:
        out = _decompress(bzimage[pos:])
        if out and out[:4] == b"\x7fELF":
            return out
    raise TinyImageError("no ELF payload found in the bzImage")


def _decompress(data: bytes) -> Optional[bytes]:
    try:
        if data.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        if data.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if data.startswith(b"\x28\xb5\x2f\xfd"):
            try:
                import zstandard  # type: ignore
            except ImportError:
                return subprocess.run(["zstd", "-dc"], input=data, capture_output=True).stdout or None
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except (lzma.LZMAError, zlib.error, OSError):
        return None
    return None


def elf_notes(elf: bytes) -> Iterable[tuple[bytes, int, bytes]]:
    """(name, type, desc) of every note in a 64-bit little-endian ELF's PT_NOTE segments."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            pos += 12
            name = elf[pos:pos + namesz].rstrip(b"\0")
            pos += (namesz + 3) & ~3
            desc = elf[pos:pos + descsz]
            pos += (descsz + 3) & ~3
            yield name, ntype, desc


def has_pvh_note(elf: bytes) -> bool:
    """XEN_ELFNOTE_PHYS32_ENTRY (18): QEMU can boot the ELF directly through PVH."""
    return any(name == b"Xen" and ntype == 18 for name, ntype, _ in elf_notes(elf))


def modinfo(ko: bytes) -> dict[str, str]:
    """The key=value pairs of a kernel module's .modinfo section."""
    shoff, = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _t, _f, _a, off, size = struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if ko[stroff + name:ko.index(b"\0", stroff + name)] == b".modinfo":
            pairs = (item.split(b"=", 1) for item in ko[off:off + size].split(b"\0") if b"=" in item)
            return {k.decode(): v.decode(errors="replace") for k, v in pairs}
    return {}


def resolve_modules(module_dir: str, wanted: list[str]) -> list[tuple[str, str]]:
    """(name, path) of ``wanted`` and their dependencies, dependencies first."""
    paths = {}
    for path in glob.glob(os.path.join(module_dir, "**", "*.ko"), recursive=True):
        paths[os.path.basename(path)[:-3].replace("-", "_")] = path
    order: list[tuple[str, str]] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in visiting or any(n == name for n, _ in order):
            return
        if name not in paths:
            raise TinyImageError(f"kernel module {name} not found (built in?)")
        visiting.add(name)
        with open(paths[name], "rb") as f:
            deps = modinfo(f.read()).get("depends", "")
        for dep in filter(None, deps.split(",")):
            visit(dep)
        order.append((name, paths[name]))

    for name in wanted:
        visit(name)
    return order


# -- packages ------------------------------------------------------------------------------
def _run(argv: list[str], cwd: Optional[str] = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TinyImageError(f"{' '.join(argv)}: {proc.stderr.strip()[-1000:]}")
    return proc.stdout


def _kernel_package() -> str:
    """linux-image-amd64 is a meta package: the versioned image it depends on."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split()[-1]
    raise TinyImageError(f"cannot resolve linux-image-amd64: {out!r}")


def _download(debs: str, pattern: str, package: Optional[str] = None) -> str:
    found = sorted(glob.glob(os.path.join(debs, pattern)))
    if found:
        return found[-1]
    names = [package] if package else None
    for attempt in range(2):
        try:
            name = names[0] if names else _kernel_package()
            _run(["apt-get", "download", "-q", name], cwd=debs)
            break
        except TinyImageError:
            if attempt:
                raise
            _run(["apt-get", "update", "-q"])
    found = sorted(glob.glob(os.path.join(debs, pattern)))
    if not found:
        raise TinyImageError(f"apt-get download left no {pattern} in {debs}")
    return found[-1]


def ssh_files() -> list[tuple[str, str]]:
    """(path in the guest, path on the host) of dropbear and its shared libraries; empty when
    dropbear-bin is not installed (the guest then has no ssh server)."""
    if not all(os.path.exists(b) for b in SSH_BINARIES):
        return []
    files: dict[str, str] = {}
    for binary in SSH_BINARIES:
        files[binary] = binary
        out = _run(["ldd", binary])
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts:
                path = parts[parts.index("=>") + 1]
            elif parts and parts[0].startswith("/"):
                path = parts[0]           # the dynamic loader
            else:
                continue
            if path.startswith("/") and os.path.exists(path):
                files[path] = os.path.realpath(path)
    return sorted(files.items())


def _recipe_hash() -> str:
    h = hashlib.sha256(f"{RECIPE_VERSION} {GUEST_MODULES} {DEFAULT_CMDLINE}".encode())
    for guest_path, host_path in ssh_files():
        with open(host_path, "rb") as f:
            h.update(guest_path.encode() + hashlib.sha256(f.read()).digest())
    for name in sorted(os.listdir(GUEST_DIR)):
        with open(os.path.join(GUEST_DIR, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()[:16]


# -- the build -----------------------------------------------------------------------------
def build_tiny_image(out_dir: str, *, force: bool = False) -> dict:
    """Build (or reuse) the tiny image in ``out_dir``; returns kernel, initrd, disk, cmdline
    (paths absolute and real: a cache first built through a symlink stays valid once the link
    is gone) plus kernel_version, pvh and build_seconds."""
    out_dir = os.path.realpath(out_dir)
    debs = os.path.join(out_dir, "debs")
    os.makedirs(debs, exist_ok=True)
    manifest_path = os.path.join(out_dir, "manifest.json")
    recipe = _recipe_hash()
    if not force and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get("recipe") == recipe and all(
                os.path.exists(manifest[k]) for k in ("kernel", "initrd", "disk")):
            return manifest
    started = time.monotonic()
    kernel_deb = _download(debs, "linux-image-[0-9]*-amd64_*.deb")
    busybox_deb = _download(debs, "busybox-static_*.deb", "busybox-static")
    kernel = _extract_kernel(out_dir, kernel_deb)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix="build-") as tmp:
        _run(["dpkg-deb", "-x", busybox_deb, tmp])
        busybox = os.path.join(tmp, "bin", "busybox")
        applets = _run([busybox, "--list-full"]).split()
        modules = [(n, os.path.join(kernel["dir"], "modules", n + ".ko")) for n in kernel["modules"]]
        initrd = build_initramfs(busybox, applets, modules, ssh_files(), recipe)
    initrd_path = os.path.join(out_dir, "initrd.cpio")
    _atomic_write(initrd_path, initrd)
    kernel_path, version, pvh = kernel["kernel"], kernel["version"], kernel["pvh"]
    disk_path = os.path.join(out_dir, "disk.qcow2")
    if not os.path.exists(disk_path):  # kept across rebuilds: overlays may use it as backing
        _run(["qemu-img", "create", "-q", "-f", "qcow2", disk_path + ".tmp", str(BLANK_DISK_BYTES)])
        os.replace(disk_path + ".tmp", disk_path)
    manifest = {"kernel": kernel_path, "initrd": initrd_path, "disk": disk_path,
                "cmdline": DEFAULT_CMDLINE, "kernel_version": version, "pvh": pvh,
                "modules": [n for n, _ in modules], "recipe": recipe, "ssh": bool(ssh_files()),
                "build_seconds": round(time.monotonic() - started, 2)}
    _atomic_write(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest


def _extract_kernel(out_dir: str, kernel_deb: str) -> dict:
    """Unpack the kernel package once (the slow part: ~6 s of xz) and keep only the kernel
    and the guest's modules in ``kernel-<hash>/``, so recipe changes rebuild in a second."""
    key = hashlib.sha256(f"{os.path.basename(kernel_deb)} {GUEST_MODULES}".encode()).hexdigest()[:12]
    kdir = os.path.join(out_dir, f"kernel-{key}")
    info_path = os.path.join(kdir, "kernel.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        # paths recorded by an older build may name a symlink that is gone: they are kdir's files
        info["dir"] = kdir
        info["kernel"] = os.path.join(kdir, os.path.basename(info.get("kernel") or "vmlinux"))
        if os.path.exists(info["kernel"]) and all(
                os.path.exists(os.path.join(kdir, "modules", n + ".ko")) for n in info.get("modules", [])):
            return info
    for stale in glob.glob(os.path.join(out_dir, "kernel-*")):
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(os.path.join(kdir, "modules"))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix="build-") as tmp:
        _run(["dpkg-deb", "-x", kernel_deb, tmp])
        vmlinuz = sorted(glob.glob(os.path.join(tmp, "boot", "vmlinuz-*")))[-1]
        version = os.path.basename(vmlinuz)[len("vmlinuz-"):]
        with open(vmlinuz, "rb") as f:
            bzimage = f.read()
        vmlinux = extract_vmlinux(bzimage)
        pvh = has_pvh_note(vmlinux)
        kernel_path = os.path.join(kdir, "vmlinux" if pvh else "vmlinuz")
        _atomic_write(kernel_path, vmlinux if pvh else bzimage)
        modules = resolve_modules(os.path.join(tmp, "lib", "modules", version), GUEST_MODULES)
        for name, path in modules:
            shutil.copyfile(path, os.path.join(kdir, "modules", name + ".ko"))
    info = {"dir": kdir, "kernel": kernel_path, "version": version, "pvh": pvh,
            "modules": [n for n, _ in modules]}
    _atomic_write(info_path, json.dumps(info, indent=1).encode())
    return info


# accounts for dropbear: root logs in with a key only (no password can match "*")
ETC_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/shadow": b"root:*:19000:0:99999:7:::\n",
    "etc/group": b"root:x:0:\n",
    "etc/shells": b"/bin/sh\n/bin/ash\n",
    "etc/nsswitch.conf": b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}


def build_initramfs(busybox: str, applets: list[str], modules: list[tuple[str, str]],
                    extra_files: Optional[list[tuple[str, str]]] = None, recipe: str = "") -> bytes:
    cpio = CpioWriter()
    dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run",
            "etc", "etc/nimbo", "etc/dropbear", "root", "var", "var/lib", "var/lib/nimbo",
            "var/log", "lib", "lib/modules", "newroot"]
    for guest_path, _ in extra_files or []:
        parent = os.path.dirname(guest_path.lstrip("/"))
        while parent and parent not in dirs:
            dirs.append(parent)
            parent = os.path.dirname(parent)
    for d in sorted(dirs, key=lambda d: d.count("/")):
        cpio.directory(d, 0o1777 if d == "tmp" else 0o700 if d == "root" else 0o755)
    cpio.char_device("dev/console", 5, 1)
    cpio.char_device("dev/null", 1, 3, 0o666)
    with open(busybox, "rb") as f:
        cpio.file("bin/busybox", f.read(), 0o755)
    for applet in applets:
        if applet.lstrip("/") != "bin/busybox":
            cpio.symlink(applet, "/bin/busybox")
    for name, path in modules:
        with open(path, "rb") as f:
            cpio.file(f"lib/modules/{name}.ko", f.read())
    cpio.file("etc/nimbo/modules", "".join(f"{n}\n" for n, _ in modules).encode())
    for src, dst in (("init.sh", "init"), ("udhcpc.script", "etc/nimbo/udhcpc.script"),
                     ("uevent.sh", "etc/nimbo/uevent")):
        with open(os.path.join(GUEST_DIR, src), "rb") as f:
            cpio.file(dst, f.read(), 0o755)
    for guest_path, host_path in extra_files or []:
        with open(host_path, "rb") as f:
            cpio.file(guest_path.lstrip("/"), f.read(), 0o755)
    for name, data in ETC_FILES.items():
        cpio.file(name, data, 0o600 if name == "etc/shadow" else 0o644)
    cpio.file("etc/nimbo/recipe", (recipe or "none").encode() + b"\n")
    cpio.file("etc/hostname", b"nimbo\n")
    return cpio.getvalue()


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


if __name__ == "__main__":  # python -m backend.tiny_image OUT_DIR
    import sys
    print(json.dumps(build_tiny_image(sys.argv[1] if len(sys.argv) > 1 else ".cache/tiny-image"), indent=1))
