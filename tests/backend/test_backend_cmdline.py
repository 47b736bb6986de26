"""QEMU command line construction, acceleration detection and exit classification."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from backend.driver import DiskAttachment, HostForward, UserNetOptions, VMSpec, VMState
from backend.qemu_cmdline import (VMPaths, build_command, default_mac, detect_accel, device_id,
                                  escape_opt, netdev_option, node_name)
from backend.qemu_state import exit_classification, pid_alive, proc_usage


def _spec(**kw) -> VMSpec:
    base = dict(vm_id="i-0abc", root_disk="/var/x/root.qcow2", vcpus=2, memory_mib=512,
                kernel="/k/vmlinux", initrd="/k/initrd", cmdline="console=ttyS0 quiet",
                smbios_uuid="ec2e1916-9099-7caf-fd21-012345678901", mac="52:54:00:12:34:56",
                imds_socket="/run/nimbo/imds/i-0abc.sock")
    base.update(kw)
    return VMSpec(**base)


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_command_line_tcg():
    paths = VMPaths("/state/i-0abc")
    argv = build_command(_spec(), paths, accel="tcg", tb_size_mib=32)
    assert argv[0] == "qemu-system-x86_64"
    assert "-S" in argv and "-nodefaults" in argv and "-daemonize" not in argv
    assert _opt(argv, "-accel") == ["tcg,tb-size=32"]
    assert "-cpu" not in argv
    assert _opt(argv, "-smp") == ["2"] and _opt(argv, "-m") == ["512M"]
    assert _opt(argv, "-kernel") == ["/k/vmlinux"] and _opt(argv, "-initrd") == ["/k/initrd"]
    assert _opt(argv, "-append") == ["console=ttyS0 quiet"]
    assert _opt(argv, "-smbios") == ["type=1,uuid=ec2e1916-9099-7caf-fd21-012345678901,"
                                     "serial=ec2e1916-9099-7caf-fd21-012345678901"]
    assert _opt(argv, "-pidfile") == ["/state/i-0abc/qemu.pid"]
    assert _opt(argv, "-qmp") == ["unix:/state/i-0abc/qmp.sock,server=on,wait=off"]
    assert _opt(argv, "-chardev") == ["file,id=con0,path=/state/i-0abc/console.log,append=on"]
    assert _opt(argv, "-serial") == ["chardev:con0"]
    root = json.loads(_opt(argv, "-blockdev")[0])
    assert root == {"driver": "qcow2", "node-name": "root", "read-only": False,
                    "file": {"driver": "file", "filename": "/var/x/root.qcow2"}}
    devices = _opt(argv, "-device")
    assert "virtio-blk-pci,drive=root,id=vroot,bootindex=1" in devices
    assert "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56" in devices
    assert "virtio-rng-pci" not in devices
    net = _opt(argv, "-netdev")[0]
    assert net.startswith("user,id=n0,ipv6=off,net=169.254.169.0/24")
    assert "restrict=on" not in net
    assert net.endswith("guestfwd=tcp:169.254.169.254:80-cmd:socat - UNIX-CONNECT:/run/nimbo/imds/i-0abc.sock")


def test_command_line_kvm_disks_and_no_kernel():
    spec = _spec(kernel=None, initrd=None, cmdline=None, smbios_uuid=None, mac=None, imds_socket=None,
                 root_disk_serial="vol0aaaabbbbcccc", disks=[DiskAttachment("vol0123456789abcdef0", "/v/a,b.qcow2", "raw", True)])
    argv = build_command(spec, VMPaths("/s/i-0abc"), accel="kvm", virtio_rng=True)
    assert _opt(argv, "-accel") == ["kvm"] and _opt(argv, "-cpu") == ["host"]
    assert "-kernel" not in argv and "-smbios" not in argv
    blockdevs = [json.loads(b) for b in _opt(argv, "-blockdev")]
    assert blockdevs[1] == {"driver": "raw", "node-name": "d-vol0123456789abcdef0", "read-only": True,
                            "file": {"driver": "file", "filename": "/v/a,b.qcow2"}}
    devices = _opt(argv, "-device")
    assert ("virtio-blk-pci,id=v-vol0123456789abcdef0,drive=d-vol0123456789abcdef0,"
            "serial=vol0123456789abcdef0") in devices
    assert "virtio-rng-pci" in devices
    assert "virtio-blk-pci,drive=root,id=vroot,bootindex=1,serial=vol0aaaabbbbcccc" in devices
    assert f"virtio-net-pci,netdev=n0,mac={default_mac('i-0abc')}" in devices
    assert "guestfwd" not in _opt(argv, "-netdev")[0]


def test_netdev_options():
    net = UserNetOptions(restrict=True, dns="169.254.169.253", hostname="ip-169-254-169-15",
                         host_forwards=[HostForward(2222, 22)])
    opt = netdev_option(net, None)
    assert "restrict=on" in opt and "dns=169.254.169.253" in opt
    assert "hostname=ip-169-254-169-15" in opt
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in opt
    with pytest.raises(ValueError, match="must contain 169.254.169.254"):
        netdev_option(UserNetOptions(net="10.0.2.0/24"), "/run/x.sock")
    with pytest.raises(ValueError, match="outside"):
        netdev_option(UserNetOptions(dns="10.0.0.3"), None)
    with pytest.raises(ValueError, match="may not contain"):
        netdev_option(UserNetOptions(), "/run/a,b.sock")


def test_spec_validation_and_round_trip():
    spec = _spec(disks=[DiskAttachment("vol-1", "/v/1.qcow2")],
                 user_net=UserNetOptions(host_forwards=[HostForward(8022, 22, "tcp", "0.0.0.0")]))
    assert VMSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    for bad in (dict(vm_id="../etc"), dict(vm_id=""), dict(vcpus=0), dict(memory_mib=8),
                dict(kernel=None), dict(disks=[DiskAttachment("root", "/x")])):
        with pytest.raises(ValueError):
            _spec(**bad).validate()


def test_ids_and_escaping():
    assert escape_opt("a,b") == "a,,b"
    assert node_name("vol-1") == "d-vol-1" and device_id("vol-1") == "v-vol-1"
    long_id = "x" * 60
    assert len(node_name(long_id)) <= 31 and node_name(long_id) != node_name("y" * 60)
    assert default_mac("i-1") != default_mac("i-2")


def test_detect_accel(tmp_path):
    sysmod = tmp_path / "module"
    (sysmod / "kvm").mkdir(parents=True)
    (sysmod / "kvm_pvm").mkdir()
    dev = tmp_path / "kvm"
    dev.write_text("")
    assert detect_accel(str(sysmod), str(dev)) == "tcg"          # kvm_pvm cannot run stock guests
    (sysmod / "kvm_intel").mkdir()
    assert detect_accel(str(sysmod), str(dev)) == "kvm"
    assert detect_accel(str(sysmod), str(tmp_path / "nope")) == "tcg"


def _paths(tmp_path) -> VMPaths:
    paths = VMPaths(str(tmp_path))
    with open(paths.console, "w") as f:
        f.write("boot\n")
    return paths


def test_exit_classification(tmp_path):
    paths = _paths(tmp_path)
    # no wrapper record: the console log's mtime is the best guess
    os.utime(paths.console, (1_700_000_000, 1_700_000_000))
    state, at, reason, status = exit_classification(paths)
    assert (state, at, status) == (VMState.SHUTDOWN, 1_700_000_000, None)
    assert "unobserved" in reason

    with open(paths.exit, "w") as f:
        f.write("0 1700000100.250000000\n")
    with open(paths.shutdown_event, "w") as f:
        f.write(json.dumps({"guest": True, "reason": "guest-shutdown"}))
    assert exit_classification(paths) == (VMState.SHUTDOWN, 1700000100.25, "guest powered off", 0)

    with open(paths.exit, "w") as f:
        f.write("137 1700000200.0\n")
    assert exit_classification(paths)[::2] == (VMState.SHUTDOWN, "hypervisor killed by signal 9")

    with open(paths.exit, "w") as f:
        f.write("1 1700000300.0\n")
    with open(paths.qemu_log, "w") as f:
        f.write("qemu-system-x86_64: something broke\n")
    state, _, reason, status = exit_classification(paths)
    assert state == VMState.CRASHED and status == 1 and "something broke" in reason

    with open(paths.panicked, "w") as f:
        f.write("{}")
    assert exit_classification(paths)[0] == VMState.CRASHED

    with open(paths.stop_requested, "w") as f:
        f.write("graceful")
    assert exit_classification(paths)[::2] == (VMState.STOPPED, "stopped by host (graceful)")


def test_pid_alive_and_usage(tmp_path):
    marker = str(tmp_path / "vm-marker")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        for _ in range(100):  # until the child has exec'ed
            if pid_alive(proc.pid, marker):
                break
            time.sleep(0.02)
        assert pid_alive(proc.pid, marker)
        assert not pid_alive(proc.pid, str(tmp_path / "other"))   # a recycled pid is not ours
        usage = proc_usage(proc.pid)
        assert usage["cpu_seconds"] >= 0 and usage["rss_bytes"] > 0
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid, marker)
    assert not pid_alive(None, marker)
