"""Real VMs: the tiny image under QEMU (TCG on hosts without hardware KVM).

Few and slow-ish (a TCG boot takes ~10 s): boot with a metadata service served here, re-adopt
from a second driver, hot-plug a disk, stop gracefully; a guest that powers itself off; a
killed QEMU; a start that QEMU refuses.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time

import pytest

from backend import images
from backend.driver import StartError, VMSpec, VMState, utcnow
from backend.qemu import QemuDriver
from tests.backend.imds_stub import IMDSStub

pytestmark = pytest.mark.vm
BOOT_TIMEOUT = float(os.environ.get("NIMBO_VM_BOOT_TIMEOUT", "120"))


@pytest.fixture
def workdir():
    # short: unix socket paths are limited to 107 bytes
    path = tempfile.mkdtemp(prefix="nimbo-vm-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def driver(workdir):
    drv = QemuDriver(os.path.join(workdir, "vms"))
    yield drv
    for info in await drv.list():
        if info.state.is_active:
            await drv.stop(info.vm_id, force=True)
    await drv.close()


async def _vm(driver, tiny_image, workdir, vm_id, imds_socket=None) -> VMSpec:
    root = os.path.join(workdir, f"{vm_id}.qcow2")
    await images.create_overlay(tiny_image["disk"], root)
    spec = VMSpec(vm_id=vm_id, root_disk=root, vcpus=1, memory_mib=256, kernel=tiny_image["kernel"],
                  initrd=tiny_image["initrd"], cmdline=tiny_image["cmdline"],
                  smbios_uuid="ec2e1916-9099-7caf-fd21-0123456789ab", imds_socket=imds_socket,
                  root_disk_serial="vol0000000000000root")
    await driver.create(spec)
    return spec


async def _console_until(driver, vm_id, needle: bytes, count: int = 1, timeout: float = BOOT_TIMEOUT) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        out = await driver.console_output(vm_id, 1 << 20)
        if out.count(needle) >= count:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} x{count} on the console after {timeout}s:\n"
                                 + out.decode(errors="replace")[-3000:])
        await asyncio.sleep(0.1)


async def _event(events: list, kind: str, vm_id: str = None, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events if e.kind == kind and vm_id in (None, e.vm_id)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} event for {vm_id} in {events}")
        await asyncio.sleep(0.05)


async def test_boot_metadata_adoption_hotplug_graceful_stop(driver, tiny_image, workdir):
    vm_id = "i-0123456789abcdef0"
    sock = os.path.join(workdir, "imds.sock")
    metadata = {"instance-id": vm_id, "public-keys/0/openssh-key": "ssh-ed25519 AAAAC3Nz test@nimbo"}
    async with IMDSStub(sock, metadata, b"#!/bin/sh\necho MARKER-123\n") as imds:
        await _vm(driver, tiny_image, workdir, vm_id, sock)
        events = []
        driver.add_listener(events.append)
        t0 = time.monotonic()
        info = await driver.start(vm_id)
        assert info.state == VMState.RUNNING and info.pid and info.started_at
        out = await _console_until(driver, vm_id, b"nimbo-init: ready")
        boot_seconds = time.monotonic() - t0
        print(f"\nboot to ready under {driver.accel}: {boot_seconds:.1f}s")
        assert f"nimbo-init: instance-id {vm_id}".encode() in out
        assert b"nimbo-init: imds v2 token acquired" in out
        assert b"nimbo-init: ssh key installed: ssh-ed25519" in out
        assert b"\nMARKER-123\n" in out.replace(b"\r\n", b"\n")
        assert b"nimbo-init: user-data exit 0" in out
        assert b"nimbo-init: disk vda serial vol0000000000000root" in out
        assert imds.requests[0] == ("PUT", "/latest/api/token")
        assert ("GET", "/latest/user-data") in imds.requests
        assert [e.kind for e in events] == ["started"]

        # a second controller sees the same VM without touching it (QMP stays with the first)
        other = QemuDriver(driver.state_dir)
        try:
            again = await other.state(vm_id)
            assert (again.state, again.pid, again.started_at) == (VMState.RUNNING, info.pid, info.started_at)
            assert [(i.vm_id, i.pid) for i in await other.list()] == [(vm_id, info.pid)]
        finally:
            await other.close()

        # the controlling process "restarts": a new driver re-adopts the VM and takes over QMP
        await driver.close()
        driver = QemuDriver(driver.state_dir)
        events = []
        driver.add_listener(events.append)
        assert [(i.vm_id, i.state, i.pid) for i in await driver.list()] == [(vm_id, VMState.RUNNING, info.pid)]

        usage = await driver.usage(vm_id)
        assert usage["cpu_seconds"] > 0.5 and usage["rss_bytes"] > 50 * 2 ** 20

        # disk hot-plug: the guest reports the disk and its serial
        vol = os.path.join(workdir, "vol.qcow2")
        await images.create_blank(vol, 16 * 2 ** 20)
        await driver.attach_disk(vm_id, "vol0123456789abcdef0", vol)
        await _console_until(driver, vm_id, b"disk added vdb serial vol0123456789abcdef0", timeout=30)
        assert [d.disk_id for d in (await driver.spec(vm_id)).disks] == ["vol0123456789abcdef0"]
        assert set((await driver.usage(vm_id))["disks"]) == {"root", "vol0123456789abcdef0"}
        await driver.detach_disk(vm_id, "vol0123456789abcdef0")
        await _console_until(driver, vm_id, b"disk removed vdb", timeout=30)
        assert (await driver.spec(vm_id)).disks == []

        # graceful stop: ACPI power button, the guest powers off, QEMU exits
        t1 = time.monotonic()
        stopped = await driver.stop(vm_id, timeout=60)
        assert stopped.state == VMState.STOPPED, stopped
        assert stopped.exit_reason == "stopped by host (graceful)" and stopped.exit_code == 0
        assert time.monotonic() - t1 < 30
        assert not os.path.exists(f"/proc/{info.pid}")
        event = await _event(events, "stopped")
        assert event.state == VMState.STOPPED and event.at == stopped.stopped_at
        await driver.close()


async def test_guest_poweroff_panic_reset_and_killed_qemu(driver, tiny_image, workdir):
    """Two guests boot at once: one powers itself off, one panics; then a reset and a kill."""
    off, panic = "i-00000000000000b0b", "i-0000000000000dead"
    sock_off, sock_panic = os.path.join(workdir, "off.sock"), os.path.join(workdir, "panic.sock")
    async with IMDSStub(sock_off, {"instance-id": off}, b"#!/bin/sh\necho BYE\npoweroff\nsleep 60\n",
                        token_enabled=False, require_token=False), \
            IMDSStub(sock_panic, {"instance-id": panic}, b"#!/bin/sh\necho c >/proc/sysrq-trigger\n"):
        await _vm(driver, tiny_image, workdir, off, sock_off)
        await _vm(driver, tiny_image, workdir, panic, sock_panic)
        events = []
        driver.add_listener(events.append)
        await asyncio.gather(driver.start(off), driver.start(panic))
        event = await _event(events, "shutdown", off, timeout=BOOT_TIMEOUT)
        out = await driver.console_output(off)
        assert b"imds v2 unavailable, falling back to v1" in out and b"BYE" in out
        info = await driver.state(off)
        assert info.state == VMState.SHUTDOWN and info.exit_reason == "guest powered off"
        assert info.stopped_at == event.at and abs((utcnow() - info.stopped_at).total_seconds()) < 10

        await _event(events, "crashed", panic, timeout=BOOT_TIMEOUT)   # pvpanic
        info = await driver.state(panic)
        assert info.state == VMState.CRASHED and info.exit_reason == "guest kernel panicked"

        # start again, reset it at once, then kill its QEMU behind the driver's back
        events.clear()
        info = await driver.start(off)
        await driver.reboot(off)
        await _event(events, "reset", off, timeout=10)
        os.kill(info.pid, signal.SIGKILL)
        event = await _event(events, "shutdown", off, timeout=10)
        info = await driver.state(off)
        assert info.state == VMState.SHUTDOWN and info.exit_reason == "hypervisor killed by signal 9"
        assert info.stopped_at == event.at


async def test_start_refused_by_qemu(driver, tiny_image, workdir):
    bogus = os.path.join(workdir, "bogus.qcow2")
    with open(bogus, "wb") as f:
        f.write(b"this is not a qcow2 image" * 100)
    spec = VMSpec(vm_id="i-0bad", root_disk=bogus, kernel=tiny_image["kernel"])
    await driver.create(spec)
    with pytest.raises(StartError, match="qcow2"):
        await driver.start("i-0bad")
    info = await driver.state("i-0bad")
    assert info.state == VMState.CRASHED and not info.pid and info.started_at is None
    assert "qcow2" in info.exit_reason
    await driver.destroy("i-0bad")
    assert (await driver.state("i-0bad")).state == VMState.MISSING


async def test_graceful_stop_escalates_when_the_guest_ignores_it(driver, tiny_image, workdir):
    await _vm(driver, tiny_image, workdir, "i-0deaf")
    await driver.start("i-0deaf")          # the guest has no ACPI button handler this early
    t0 = time.monotonic()
    info = await driver.stop("i-0deaf", timeout=1)
    assert info.state == VMState.STOPPED and info.exit_reason == "stopped by host (forced after 1s)"
    assert time.monotonic() - t0 < 8
