"""QEMU command line construction (pure functions, unit tested without QEMU)."""
from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shlex
from dataclasses import dataclass
from typing import Optional

from .driver import DiskAttachment, NicAttachment, UserNetOptions, VMSpec

IMDS_ADDRESS = "169.254.169.254"


@dataclass(frozen=True)
class VMPaths:
    """The files of one VM inside the driver's state dir."""
    dir: str

    def _p(self, name: str) -> str:
        return os.path.join(self.dir, name)

    spec = property(lambda self: self._p("spec.json"))
    pidfile = property(lambda self: self._p("qemu.pid"))
    qmp = property(lambda self: self._p("qmp.sock"))
    console = property(lambda self: self._p("console.log"))
    qemu_log = property(lambda self: self._p("qemu.log"))
    exit = property(lambda self: self._p("exit"))               # "<status> <epoch>" by the wrapper
    started = property(lambda self: self._p("started"))         # epoch of the last start
    stop_requested = property(lambda self: self._p("stop-requested"))
    shutdown_event = property(lambda self: self._p("shutdown-event.json"))
    panicked = property(lambda self: self._p("panicked"))


def detect_accel(sys_module: str = "/sys/module", dev_kvm: str = "/dev/kvm") -> str:
    """'kvm' only with a hardware KVM module (kvm_intel/kvm_amd) and an accessible /dev/kvm.

    /dev/kvm alone is not enough: kvm_pvm hosts open it but cannot run stock guests.
    """
    return explain_accel(sys_module, dev_kvm)[0]


def explain_accel(sys_module: str = "/sys/module", dev_kvm: str = "/dev/kvm") -> tuple[str, str]:
    """(accelerator, why): what ``detect_accel`` chooses and the reason, for the server's log."""
    modules = [m for m in ("kvm_intel", "kvm_amd") if os.path.isdir(os.path.join(sys_module, m))]
    if not modules:
        other = " (/dev/kvm exists, but without a hardware KVM module it cannot run stock guests)" \
            if os.path.exists(dev_kvm) else ""
        return "tcg", ("no hardware KVM module (kvm_intel or kvm_amd) is loaded: the CPU's VT-x/AMD-V "
                       f"is absent or not passed through to this machine{other}; guests run emulated, slower")
    if not os.path.exists(dev_kvm):
        return "tcg", f"{modules[0]} is loaded but {dev_kvm} does not exist; guests run emulated, slower"
    if not os.access(dev_kvm, os.R_OK | os.W_OK):
        return "tcg", (f"{dev_kvm} is not readable and writable by this user (join the kvm group); "
                       "guests run emulated, slower")
    return "kvm", f"{modules[0]} is loaded and {dev_kvm} is usable"


def escape_opt(value: str) -> str:
    """QEMU option values escape a comma by doubling it."""
    return str(value).replace(",", ",,")


def default_mac(vm_id: str) -> str:
    digest = hashlib.sha256(vm_id.encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


def node_name(disk_id: str) -> str:
    """Block node name (max 31 chars, starts with a letter)."""
    return "d" + hashlib.sha1(disk_id.encode()).hexdigest()[:16] if len(disk_id) > 28 \
        else "d-" + disk_id


def device_id(disk_id: str) -> str:
    return "v" + node_name(disk_id)[1:]


def blockdev_args(node: str, path: str, fmt: str, read_only: bool) -> dict:
    """Arguments for QMP blockdev-add (and, JSON-encoded, for -blockdev)."""
    return {
        "driver": fmt,
        "node-name": node,
        "read-only": bool(read_only),
        "file": {"driver": "file", "filename": os.path.abspath(path)},
    }


def disk_device_args(disk: DiskAttachment) -> dict:
    """Arguments for QMP device_add of a data volume."""
    return {
        "driver": "virtio-blk-pci",
        "id": device_id(disk.disk_id),
        "drive": node_name(disk.disk_id),
        "serial": disk.disk_id,
    }


def netdev_option(net: UserNetOptions, imds_socket: Optional[str], netdev_id: str = "n0") -> str:
    network = ipaddress.ip_network(net.net, strict=False)
    parts = [f"user,id={netdev_id}", "ipv6=off", f"net={network}"]
    if net.restrict:
        parts.append("restrict=on")
    for key in ("host", "dns", "dhcpstart"):
        value = getattr(net, key)
        if value:
            if ipaddress.ip_address(value) not in network:
                raise ValueError(f"user_net.{key} {value} is outside {network}")
            parts.append(f"{key}={value}")
    if net.hostname:
        parts.append(f"hostname={escape_opt(net.hostname)}")
    for fwd in net.host_forwards:
        if fwd.protocol not in ("tcp", "udp"):
            raise ValueError(f"bad forward protocol {fwd.protocol!r}")
        parts.append(f"hostfwd={fwd.protocol}:{fwd.host_addr}:{int(fwd.host_port)}-:{int(fwd.guest_port)}")
    if imds_socket:
        if ipaddress.ip_address(IMDS_ADDRESS) not in network:
            raise ValueError(f"user_net.net {network} must contain {IMDS_ADDRESS} for the metadata service")
        path = os.path.abspath(imds_socket)
        if "," in path or "'" in path:
            raise ValueError(f"imds_socket path may not contain ',' or quotes: {path!r}")
        # QEMU runs the command through /bin/sh once per guest connection, wired to stdin/stdout.
        parts.append(f"guestfwd=tcp:{IMDS_ADDRESS}:80-cmd:socat - {shlex.quote('UNIX-CONNECT:' + path)}")
    return ",".join(parts)


def build_command(spec: VMSpec, paths: VMPaths, accel: str = "tcg",
                  qemu_binary: str = "qemu-system-x86_64", tb_size_mib: int = 32,
                  virtio_rng: bool = False) -> list[str]:
    """The argv that runs ``spec`` in the foreground, started paused (-S) for QMP ``cont``.

    virtio-rng is off by default: each PCI device costs ~0.6 s of guest boot under TCG and
    current kernels do not block on entropy.
    """
    spec.validate()
    argv = [qemu_binary, "-name", f"guest={spec.vm_id}", "-nodefaults", "-no-user-config",
            "-S", "-machine", "pc"]
    if accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", f"tcg,tb-size={int(tb_size_mib)}" if tb_size_mib else "tcg"]
    argv += ["-smp", str(int(spec.vcpus)), "-m", f"{int(spec.memory_mib)}M",
             "-display", "none", "-vga", "none", "-rtc", "base=utc",
             "-pidfile", paths.pidfile,
             "-qmp", f"unix:{escape_opt(paths.qmp)},server=on,wait=off",
             "-chardev", f"file,id=con0,path={escape_opt(paths.console)},append=on",
             "-serial", "chardev:con0",
             "-device", "pvpanic", "-action", "panic=exit-failure"]
    if virtio_rng:
        argv += ["-device", "virtio-rng-pci"]
    if spec.smbios_uuid:
        # serial = uuid, as on EC2 Nitro: cloud-init identifies AWS only when both start with ec2
        argv += ["-smbios", f"type=1,uuid={escape_opt(spec.smbios_uuid)},serial={escape_opt(spec.smbios_uuid)}"]
    if spec.kernel:
        argv += ["-kernel", spec.kernel]
        if spec.initrd:
            argv += ["-initrd", spec.initrd]
        if spec.cmdline:
            argv += ["-append", spec.cmdline]
    root = blockdev_args("root", spec.root_disk, spec.root_disk_format, False)
    root_dev = "virtio-blk-pci,drive=root,id=vroot,bootindex=1"
    if spec.root_disk_serial:
        root_dev += f",serial={escape_opt(spec.root_disk_serial)}"
    argv += ["-blockdev", _json(root), "-device", root_dev]
    for disk in spec.disks:
        node = node_name(disk.disk_id)
        dev = disk_device_args(disk)
        argv += ["-blockdev", _json(blockdev_args(node, disk.path, disk.format, disk.read_only)),
                 "-device", ",".join([dev.pop("driver")] + [f"{k}={escape_opt(v)}" for k, v in dev.items()])]
    if spec.nics:
        argv += tap_options(spec.nics)
        netns = nics_namespace(spec.nics)
        if netns:   # QEMU opens its taps by name: run it inside the namespace that holds them
            argv = ["ip", "netns", "exec", netns] + argv
        return argv
    argv += ["-netdev", netdev_option(spec.user_net, spec.imds_socket),
             "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac or default_mac(spec.vm_id)}"]
    return argv


_TAP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def nics_namespace(nics: list[NicAttachment]) -> Optional[str]:
    """The one network namespace all of a VM's taps live in (a QEMU process has one)."""
    spaces = {n.netns for n in nics}
    if len(spaces) > 1:
        raise ValueError(f"a VM's network interfaces must share one namespace, not {sorted(map(str, spaces))}")
    netns = spaces.pop() if spaces else None
    if netns is not None and not re.match(r"^[A-Za-z0-9_.-]{1,200}$", netns):
        raise ValueError(f"bad network namespace name {netns!r}")
    return netns


def tap_options(nics: list[NicAttachment]) -> list[str]:
    """One virtio-net per nic on its tap (the first becomes the guest's eth0). No vhost:
    /dev/vhost-net may be missing, and TCG gains nothing from it."""
    argv: list[str] = []
    macs = set()
    for i, nic in enumerate(nics):
        if not _TAP_RE.match(nic.tap):
            raise ValueError(f"bad tap name {nic.tap!r} (1-15 of [A-Za-z0-9_.-])")
        if not _MAC_RE.match(nic.mac) or nic.mac.lower() in macs:
            raise ValueError(f"bad or duplicate MAC {nic.mac!r}")
        macs.add(nic.mac.lower())
        netdev, device = nic_ids(nic.interface_id)
        argv += ["-netdev", f"tap,id={netdev},ifname={nic.tap},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev={netdev},id={device},mac={nic.mac.lower()},addr={0x10 + i:#x}"]
    return argv


def nic_ids(interface_id: str) -> tuple[str, str]:
    """QEMU's netdev and device ids of an interface (stable, so that it can be detached)."""
    h = hashlib.sha1(interface_id.encode()).hexdigest()[:12]
    return f"nd{h}", f"nic{h}"


def nic_hotplug_args(nic: NicAttachment) -> tuple[dict, dict]:
    """QMP netdev_add and device_add arguments of a hot-plugged interface."""
    tap_options([nic])   # validates the name and MAC
    netdev, device = nic_ids(nic.interface_id)
    return ({"type": "tap", "id": netdev, "ifname": nic.tap, "script": "no", "downscript": "no"},
            {"driver": "virtio-net-pci", "id": device, "netdev": netdev, "mac": nic.mac.lower()})


def _json(obj: dict) -> str:
    import json
    return json.dumps(obj, separators=(",", ":"))
