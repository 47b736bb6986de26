"""The in-process fake driver behaves like the interface promises."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from backend.driver import (DiskError, Driver, InvalidStateError, StartError, VMExistsError,
                            VMNotFoundError, VMSpec, VMState)
from backend.fake import FakeDriver


class Clock:
    def __init__(self):
        self.t = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def __call__(self):
        return self.t

    def advance(self, seconds: float):
        self.t += timedelta(seconds=seconds)


def spec(vm_id="i-1") -> VMSpec:
    return VMSpec(vm_id=vm_id, root_disk="/tmp/none.qcow2")


async def test_lifecycle_and_events():
    clock = Clock()
    driver = FakeDriver(clock=clock)
    assert isinstance(driver, Driver)
    events = []
    remove = driver.add_listener(events.append)
    assert (await driver.state("i-1")).state == VMState.MISSING
    assert (await driver.create(spec())).state == VMState.CREATING
    with pytest.raises(VMExistsError):
        await driver.create(spec())
    info = await driver.start("i-1")
    assert info.state == VMState.RUNNING and info.pid and info.started_at == clock.t
    assert (await driver.start("i-1")).pid == info.pid          # idempotent
    clock.advance(100)
    usage = await driver.usage("i-1")
    assert usage["cpu_seconds"] == pytest.approx(5.0) and usage["net_rx_bytes"] is None
    await driver.reboot("i-1")
    stopped = await driver.stop("i-1")
    assert stopped.state == VMState.STOPPED and stopped.stopped_at == clock.t
    assert stopped.exit_reason == "stopped by host (graceful)"
    assert [e.kind for e in events] == ["started", "reset", "stopped"]
    with pytest.raises(InvalidStateError):
        await driver.reboot("i-1")
    remove()
    await driver.start("i-1")
    assert len(events) == 3
    assert b"fake: started" in await driver.console_output("i-1")
    await driver.destroy("i-1")
    assert (await driver.state("i-1")).state == VMState.MISSING
    with pytest.raises(VMNotFoundError):
        await driver.start("i-1")


async def test_guest_poweroff_crash_and_watch():
    driver = FakeDriver()
    await driver.create(spec())
    await driver.start("i-1")

    async def first_event():
        async for event in driver.watch():
            return event

    waiter = asyncio.create_task(first_event())
    await asyncio.sleep(0)
    await driver.guest_poweroff("i-1")
    event = await asyncio.wait_for(waiter, 1)
    assert (event.kind, event.state, event.vm_id) == ("shutdown", VMState.SHUTDOWN, "i-1")
    info = await driver.state("i-1")
    assert info.state == VMState.SHUTDOWN and info.stopped_at == event.at and info.pid is None
    await driver.start("i-1")
    await driver.guest_crash("i-1")
    assert (await driver.state("i-1")).state == VMState.CRASHED


async def test_start_failure_and_delay():
    driver = FakeDriver(delay=0.05)
    await driver.create(spec())
    driver.fail_next_start("i-1", "qemu: could not open disk")
    with pytest.raises(StartError, match="could not open disk"):
        await driver.start("i-1")
    assert (await driver.state("i-1")).state == VMState.CREATING
    task = asyncio.create_task(driver.start("i-1"))
    await asyncio.sleep(0.01)
    assert (await driver.state("i-1")).state == VMState.CREATING
    assert (await task).state == VMState.RUNNING


async def test_forced_and_timed_out_stops():
    driver = FakeDriver()
    await driver.create(spec())
    await driver.start("i-1")
    assert (await driver.stop("i-1", force=True)).exit_reason == "stopped by host (forced)"
    await driver.start("i-1")
    driver.ignore_powerdown("i-1")
    info = await driver.stop("i-1", timeout=0.01)
    assert info.state == VMState.STOPPED and "forced after" in info.exit_reason


async def test_restart_shares_store_and_silent_poweroff():
    store: dict = {}
    first = FakeDriver(store=store)
    await first.create(spec())
    await first.start("i-1")
    events = []
    first.add_listener(events.append)
    await first.guest_poweroff("i-1", silent=True)
    assert events == []
    second = FakeDriver(store=store)
    assert [(i.vm_id, i.state) for i in await second.list()] == [("i-1", VMState.SHUTDOWN)]


async def test_disks_and_update():
    driver = FakeDriver()
    await driver.create(spec())
    await driver.attach_disk("i-1", "vol-1", "/v/1.qcow2")
    with pytest.raises(DiskError):
        await driver.attach_disk("i-1", "vol-1", "/v/1.qcow2")
    assert [d.disk_id for d in (await driver.spec("i-1")).disks] == ["vol-1"]
    await driver.detach_disk("i-1", "vol-1")
    with pytest.raises(DiskError):
        await driver.detach_disk("i-1", "vol-1")
    bigger = spec()
    bigger.memory_mib = 1024
    await driver.update(bigger)
    assert (await driver.spec("i-1")).memory_mib == 1024
    await driver.start("i-1")
    with pytest.raises(InvalidStateError):
        await driver.update(bigger)


async def test_disk_snapshots_and_resize_act_on_running_vms_only(tmp_path):
    """snapshot_disks/delete_disk_snapshots/resize_disk: False while the VM does not run (the
    caller uses qemu-img itself), else they act on the disks' files (the real driver uses QMP)."""
    from backend import images
    root, data = str(tmp_path / "root.qcow2"), str(tmp_path / "data.qcow2")
    for path in (root, data):
        await images.create_blank(path, 1024 * 1024)
    driver = FakeDriver()
    await driver.create(VMSpec(vm_id="i-1", root_disk=root))
    await driver.attach_disk("i-1", "vol1", data)
    assert await driver.snapshot_disks("i-1", {"root": "s1", "vol1": "s1"}) is False
    assert await driver.resize_disk("i-1", "vol1", 2 * 1024 * 1024) is False
    await driver.start("i-1")
    assert await driver.snapshot_disks("i-1", {"root": "s1", "vol1": "s1"}) is True
    for path in (root, data):
        assert "s1" in await images.run_qemu_img("snapshot", "-l", path)
    assert await driver.delete_disk_snapshots("i-1", {"root": "s1", "vol1": "s1"}) is True
    assert "s1" not in await images.run_qemu_img("snapshot", "-l", data)
    assert await driver.resize_disk("i-1", "vol1", 2 * 1024 * 1024) is True
    assert (await images.info(data))["virtual_size"] == 2 * 1024 * 1024
    with pytest.raises(DiskError):
        await driver.snapshot_disks("i-1", {"vol9": "s2"})
