"""Linux containers through libvirt-lxc: the ``c-`` instance family.

A container instance shares the host's kernel: there is no kernel, initrd, BIOS, ACPI or
virtual disk. What differs from a VM:

- Root filesystem: a directory, not a block device. It is made once per instance from the
  image's userland: the tiny image's initramfs (a newc cpio: busybox and its tools) is unpacked
  into ``<vm dir>/rootfs``. Images whose userland is only inside a partitioned qcow2 (the Debian
  cloud image) are not supported as containers yet (they would need qemu-nbd and a mount).
- Init: ``/bin/sh`` runs a short script (``CONTAINER_INIT``) instead of the image's ``/init``,
  which loads kernel modules and mounts disks a container does not have. It prints
  ``nimbo-container: userspace up`` and waits for SIGTERM (the graceful stop).
- Console: libvirt-lxc consoles are ptys; the init script writes to ``/nimbo-console.log``
  inside the root filesystem, which GetConsoleOutput reads.
- Network: a private network namespace with loopback only (``<privnet/>``) on this machine; a
  container on a host with a bridge (``bridge=``) gets a veth on it. The VPC taps, security
  groups and the metadata service are not wired to containers yet.
- Volumes: not attachable (no block devices in a container).
- CPU and memory: ``<vcpu>`` and ``<memory>`` become cgroup limits, not virtual hardware.
"""
from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from typing import Optional

from backend.driver import VMSpec

from .domain_xml import NIMBO_NS, _sub, domain_uuid

CONSOLE_FILE = "nimbo-console.log"
CONTAINER_INIT = (
    "exec >>/" + CONSOLE_FILE + " 2>&1; "
    "mkdir -p /proc /sys /tmp; "
    "echo \"nimbo-container: userspace up as $(hostname) ($(uname -r), shared kernel)\"; "
    "trap 'echo nimbo-container: power off; exit 0' TERM; "
    "while :; do sleep 1 & wait $!; done")


def is_container_type(instance_type: Optional[str]) -> bool:
    return bool(instance_type) and instance_type.startswith("c-")


def build_container(spec: VMSpec, rootfs: str, *, console_path: Optional[str] = None,
                    bridge: Optional[str] = None) -> ET.Element:
    """The ``<domain type='lxc'>`` of a container instance whose root filesystem is ``rootfs``."""
    dom = ET.Element("domain", {"type": "lxc"})
    _sub(dom, "name", spec.vm_id)
    _sub(dom, "uuid", domain_uuid(spec))
    meta = _sub(dom, "metadata")
    ET.SubElement(meta, f"{{{NIMBO_NS}}}instance", {"id": spec.vm_id, "kind": "container"})
    _sub(dom, "memory", str(int(spec.memory_mib)), unit="MiB")
    _sub(dom, "vcpu", str(int(spec.vcpus)))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "exe", arch="x86_64")
    _sub(os_el, "init", "/bin/sh")
    _sub(os_el, "initarg", "-c")
    _sub(os_el, "initarg", CONTAINER_INIT)
    features = _sub(dom, "features")
    if not bridge:
        _sub(features, "privnet")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    _sub(devices, "emulator", "/usr/lib/libvirt/libvirt_lxc")
    fs = _sub(devices, "filesystem", type="mount", accessmode="passthrough")
    _sub(fs, "source", dir=rootfs)
    _sub(fs, "target", dir="/")
    if bridge:
        for mac in [n.mac for n in spec.nics] or ([spec.mac] if spec.mac else []):
            iface = _sub(devices, "interface", type="bridge")
            _sub(iface, "mac", address=mac.lower())
            _sub(iface, "source", bridge=bridge)
    _sub(devices, "console", type="pty")
    return dom


def unpack_newc(archive: str, dest: str) -> int:
    """Unpack a newc ("070701") cpio (the tiny image's initramfs) into ``dest``; returns the
    number of entries. Paths are kept inside ``dest`` (no ``..``, no absolute names)."""
    os.makedirs(dest, exist_ok=True)
    count = 0
    with open(archive, "rb") as f:
        data = f.read()
    pos = 0
    root = os.path.realpath(dest)
    while pos + 110 <= len(data):
        header = data[pos:pos + 110]
        if header[:6] != b"070701":
            raise ValueError(f"{archive}: not a newc cpio (compressed initramfs are not supported)")
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        pos = (name_start + namesize + 3) & ~3
        body = data[pos:pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            break
        target = os.path.realpath(os.path.join(root, name.lstrip("/")))
        if target != root and not target.startswith(root + os.sep):
            raise ValueError(f"{archive}: entry {name!r} leaves the root filesystem")
        count += 1
        if stat.S_ISDIR(mode):
            os.makedirs(target, exist_ok=True)
        elif stat.S_ISLNK(mode):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                os.unlink(target)
            os.symlink(body.decode(), target)
        elif stat.S_ISREG(mode):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as out:
                out.write(body)
            os.chmod(target, stat.S_IMODE(mode))
        # device nodes are skipped: libvirt-lxc populates /dev itself
    return count
