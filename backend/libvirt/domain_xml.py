"""Domain XML for libvirt, built with ElementTree from a ``VMSpec`` (pure functions, no libvirt).

One builder serves every hypervisor libvirt drives; what differs per hypervisor is small and
named in ``FLAVOURS``:

- ``qemu`` / ``kvm``: QEMU under TCG or KVM (``<domain type='qemu'>`` where KVM is unusable),
  virtio disks (serial = the volume id), virtio NICs, the serial console appended to a file,
  pvpanic, no graphics, the SMBIOS uuid/serial ``ec2...`` that cloud-init looks for, direct
  kernel boot (PVH vmlinux) when the image has a kernel.
- ``lxc``: a Linux container (``containers.py`` adds the root filesystem).
- ``xen``, ``vmware`` (ESX), ``vbox`` (VirtualBox), ``hyperv``: the same guest in each
  hypervisor's words (disk bus, NIC model and source). These are validated against libvirt's
  RelaxNG schemas (``virt-xml-validate``) in the tests and are UNTESTED on real hosts here.

Network interfaces: on QEMU they are ``type='udp'`` sockets on the host's loopback that
``tap_relay`` joins to the instance's tap in Nimbo's VPC namespace (libvirt opens taps in its
own network namespace only; see tap_relay's docstring); ``type='user'`` without taps. Other
hypervisors get a bridge interface named by ``HostOptions.bridge``.
"""
from __future__ import annotations

import hashlib
import uuid as uuid_mod
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Optional

from backend.driver import DiskAttachment, VMSpec

NIMBO_NS = "https://nimbo.dev/xmlns/libvirt/1"


@dataclass(frozen=True)
class Flavour:
    domain_type: str
    disk_bus: str
    disk_prefix: str
    nic_model: Optional[str]
    image_format: str


FLAVOURS = {
    "qemu": Flavour("qemu", "virtio", "vd", "virtio", "qcow2"),
    "kvm": Flavour("kvm", "virtio", "vd", "virtio", "qcow2"),
    "lxc": Flavour("lxc", "", "", None, "dir"),
    "xen": Flavour("xen", "xen", "xvd", None, "qcow2"),
    "vmware": Flavour("vmware", "scsi", "sd", "vmxnet3", "vmdk"),
    "vbox": Flavour("vbox", "sata", "sd", "virtio", "vdi"),
    "hyperv": Flavour("hyperv", "scsi", "sd", None, "vhdx"),
}


@dataclass
class UdpNic:
    """A NIC as QEMU UDP sockets on the host's loopback: QEMU sends to ``relay_port`` and
    listens on ``qemu_port``; the relay copies frames to and from the tap."""
    interface_id: str
    mac: str
    qemu_port: int
    relay_port: int


@dataclass
class HostOptions:
    """What the host, not the instance, decides."""
    flavour: str = "qemu"
    emulator: Optional[str] = "/usr/bin/qemu-system-x86_64"
    console_path: Optional[str] = None        # the serial console, appended across boots
    tb_cache_mib: int = 32                   # TCG translation cache (0: QEMU's default)
    run_as_root: bool = True                 # DAC label +0:+0, no relabelling of Nimbo's files
    bridge: str = "nimbo0"                   # xen/vmware/vbox/hyperv: the host's bridge/port group
    udp_nics: list[UdpNic] = field(default_factory=list)   # qemu/kvm with Nimbo's taps
    user_network: bool = True                # qemu/kvm without taps: user-mode networking


def domain_uuid(spec: VMSpec) -> str:
    """The domain's uuid: the SMBIOS uuid (libvirt requires them equal), else derived from the id."""
    if spec.smbios_uuid:
        return str(uuid_mod.UUID(spec.smbios_uuid))
    return str(uuid_mod.UUID(bytes=hashlib.sha256(spec.vm_id.encode()).digest()[:16]))


def disk_target(index: int, flavour: Flavour) -> str:
    """vda, vdb, ... vdz, vdaa ... (index 0 is the root disk)."""
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            return flavour.disk_prefix + letters


def _sub(parent: ET.Element, tag: str, text: Optional[str] = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = str(text)
    return el


def disk_element(disk: DiskAttachment, target: str, flavour: Flavour) -> ET.Element:
    """A data volume as a ``<disk>`` (also what attachDeviceFlags takes for hot-plug)."""
    el = ET.Element("disk", {"type": "file", "device": "disk"})
    if flavour.domain_type in ("qemu", "kvm"):
        _sub(el, "driver", name="qemu", type=disk.format)
    elif flavour.domain_type == "xen":
        _sub(el, "driver", name="qemu", type=disk.format)
    _sub(el, "source", file=disk.path)
    _sub(el, "target", dev=target, bus=flavour.disk_bus)
    if disk.read_only:
        _sub(el, "readonly")
    if flavour.domain_type in ("qemu", "kvm", "xen"):
        _sub(el, "serial", disk.disk_id[:20])
    return el


def udp_nic_element(nic: UdpNic, index: int) -> ET.Element:
    el = ET.Element("interface", {"type": "udp"})
    _sub(el, "mac", address=nic.mac.lower())
    source = _sub(el, "source", address="127.0.0.1", port=str(nic.relay_port))
    _sub(source, "local", address="127.0.0.1", port=str(nic.qemu_port))
    _sub(el, "model", type="virtio")
    _sub(el, "alias", name=nic_alias(nic.interface_id))
    _sub(el, "address", type="pci", domain="0x0000", bus="0x00", slot=f"{0x10 + index:#04x}", function="0x0")
    return el


def nic_alias(interface_id: str) -> str:
    """A user alias (libvirt requires the ``ua-`` prefix) that names the interface's device."""
    return "ua-" + hashlib.sha1(interface_id.encode()).hexdigest()[:12]


def disk_alias(disk_id: str) -> str:
    return "ua-" + hashlib.sha1(disk_id.encode()).hexdigest()[:12]


def build_domain(spec: VMSpec, host: HostOptions) -> ET.Element:
    """The ``<domain>`` element that runs ``spec`` on a host of ``host.flavour``."""
    spec.validate()
    flavour = FLAVOURS[host.flavour]
    dom = ET.Element("domain", {"type": flavour.domain_type})
    _sub(dom, "name", spec.vm_id)
    _sub(dom, "uuid", domain_uuid(spec))
    meta = _sub(dom, "metadata")
    ET.SubElement(meta, f"{{{NIMBO_NS}}}instance", {"id": spec.vm_id})
    _sub(dom, "memory", str(int(spec.memory_mib)), unit="MiB")
    _sub(dom, "vcpu", str(int(spec.vcpus)))
    if flavour.domain_type == "lxc":
        raise ValueError("containers are built by backend.libvirt.containers.build_container")
    if flavour.domain_type in ("qemu", "kvm"):
        sysinfo = _sub(dom, "sysinfo", type="smbios")
        system = _sub(sysinfo, "system")
        # serial = uuid, as on EC2 Nitro: cloud-init identifies AWS only when both start with ec2
        _sub(system, "entry", domain_uuid(spec), name="uuid")
        if spec.smbios_uuid:
            _sub(system, "entry", spec.smbios_uuid, name="serial")
    os_el = _sub(dom, "os")
    if flavour.domain_type in ("qemu", "kvm"):
        _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    elif flavour.domain_type == "xen":
        _sub(os_el, "type", "hvm", arch="x86_64", machine="xenfv")
    else:
        _sub(os_el, "type", "hvm")
    if spec.kernel and flavour.domain_type in ("qemu", "kvm", "xen"):
        _sub(os_el, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_el, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_el, "cmdline", spec.cmdline)
    if flavour.domain_type in ("qemu", "kvm"):
        _sub(os_el, "smbios", mode="sysinfo")
    _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    if flavour.domain_type == "qemu" and host.tb_cache_mib:
        tcg = _sub(features, "tcg")
        _sub(tcg, "tb-cache", str(int(host.tb_cache_mib)), unit="MiB")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    if flavour.domain_type in ("qemu", "kvm") and host.emulator:
        _sub(devices, "emulator", host.emulator)
    root = DiskAttachment(spec.root_disk_serial or "root", spec.root_disk, spec.root_disk_format)
    root_el = disk_element(root, disk_target(0, flavour), flavour)
    if not spec.root_disk_serial:
        for serial in root_el.findall("serial"):
            root_el.remove(serial)
    devices.append(root_el)
    for i, disk in enumerate(spec.disks, start=1):
        el = disk_element(disk, disk_target(i, flavour), flavour)
        if flavour.domain_type in ("qemu", "kvm"):
            _sub(el, "alias", name=disk_alias(disk.disk_id))
        devices.append(el)
    _network(devices, spec, host, flavour)
    if flavour.domain_type in ("qemu", "kvm", "xen"):
        if host.console_path:
            serial = _sub(devices, "serial", type="file")
            _sub(serial, "source", path=host.console_path, append="on")
        else:
            serial = _sub(devices, "serial", type="pty")
        _sub(serial, "target", port="0")
    if flavour.domain_type in ("qemu", "kvm"):
        _sub(devices, "panic", model="isa")   # pvpanic: a guest panic ends the VM as crashed
        video = _sub(devices, "video")
        _sub(video, "model", type="none")
        _sub(devices, "memballoon", model="none")
        if host.run_as_root:
            label = _sub(dom, "seclabel", type="static", model="dac", relabel="no")
            _sub(label, "label", "+0:+0")
    return dom


def _network(devices: ET.Element, spec: VMSpec, host: HostOptions, flavour: Flavour) -> None:
    if flavour.domain_type in ("qemu", "kvm"):
        if host.udp_nics:
            for i, nic in enumerate(host.udp_nics):
                devices.append(udp_nic_element(nic, i))
        elif host.user_network:
            el = _sub(devices, "interface", type="user")
            from backend.qemu_cmdline import default_mac   # noqa: PLC0415
            _sub(el, "mac", address=(spec.mac or default_mac(spec.vm_id)).lower())
            _sub(el, "model", type="virtio")
        return
    macs = [n.mac for n in spec.nics] or ([spec.mac] if spec.mac else [])
    for mac in macs:
        el = _sub(devices, "interface", type="bridge")
        _sub(el, "mac", address=mac.lower())
        _sub(el, "source", bridge=host.bridge)
        if flavour.nic_model:
            _sub(el, "model", type=flavour.nic_model)


def to_string(el: ET.Element) -> str:
    ET.register_namespace("nimbo", NIMBO_NS)
    ET.indent(el)
    return ET.tostring(el, encoding="unicode")
