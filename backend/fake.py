"""An in-process test double of the driver interface: no processes, no files.

States change at once, or after ``delay`` seconds (start: creating -> running; graceful stop:
running -> stopped). Test hooks simulate what a guest or the host would do:

    driver.fail_next_start("vm-1", "qemu: could not open disk")   # next start() raises StartError
    await driver.guest_poweroff("vm-1")                             # guest powered itself off
    await driver.guest_crash("vm-1")                                # guest kernel panicked
    driver.ignore_powerdown("vm-1")                                 # graceful stop times out

Console output is a synthetic log of what happened ("fake: started", ...); ``clock`` (a
callable returning an aware datetime) controls time. VMs live in ``store`` (a dict): pass the
same dict to a new FakeDriver to simulate a restart of the controlling process, and use
``guest_poweroff(..., silent=True)`` for a guest that powered off while nobody watched.
"""
from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional

from .driver import (DiskAttachment, DiskError, Driver, InvalidStateError, NicAttachment, StartError, VMEvent,
                     VMExistsError, VMInfo, VMNotFoundError, VMSpec, VMState, utcnow, validate_id)


@dataclass
class _FakeVM:
    spec: VMSpec
    info: VMInfo
    console: bytearray = field(default_factory=bytearray)
    cpu_seconds: float = 0.0
    run_since: Optional[datetime] = None
    ignore_powerdown: bool = False


class FakeDriver(Driver):
    def __init__(self, store: Optional[dict] = None, clock: Callable[[], datetime] = utcnow,
                 delay: float = 0.0, cpu_fraction: float = 0.05):
        super().__init__()
        self.delay = delay
        self.now = clock
        self.cpu_fraction = cpu_fraction   # cpu seconds accrued per running second
        self._vms: dict[str, _FakeVM] = store if store is not None else {}
        self._start_failures: dict[str, str] = {}
        self._next_pid = 40000
        self.calls: list[tuple[str, str]] = []  # (verb, vm_id), for assertions

    # -- test hooks ----------------------------------------------------------------------
    def fail_next_start(self, vm_id: str, message: str = "simulated start failure") -> None:
        self._start_failures[vm_id] = message

    def ignore_powerdown(self, vm_id: str, ignore: bool = True) -> None:
        self._vm(vm_id).ignore_powerdown = ignore

    async def guest_poweroff(self, vm_id: str, reason: str = "guest powered off",
                             silent: bool = False) -> None:
        """The guest powers itself off; ``silent``: while no controller watched (no event)."""
        self._exit(self._vm(vm_id), VMState.SHUTDOWN, reason, "shutdown", emit=not silent)

    async def guest_crash(self, vm_id: str, reason: str = "guest kernel panicked",
                          silent: bool = False) -> None:
        self._exit(self._vm(vm_id), VMState.CRASHED, reason, "crashed", emit=not silent)

    def write_console(self, vm_id: str, text: str) -> None:
        self._vm(vm_id).console += text.encode()

    # -- helpers -------------------------------------------------------------------------
    def _vm(self, vm_id: str) -> _FakeVM:
        try:
            return self._vms[vm_id]
        except KeyError:
            raise VMNotFoundError(vm_id) from None

    def _log(self, vm: _FakeVM, line: str) -> None:
        vm.console += f"fake: {line}\n".encode()

    def _settle_cpu(self, vm: _FakeVM) -> None:
        if vm.run_since is not None:
            vm.cpu_seconds += max(0.0, (self.now() - vm.run_since).total_seconds()) * self.cpu_fraction
            vm.run_since = self.now() if vm.info.state.is_active else None

    def _exit(self, vm: _FakeVM, state: VMState, reason: str, kind: str, emit: bool = True) -> None:
        if not vm.info.state.is_active:
            raise InvalidStateError(f"{vm.spec.vm_id} is {vm.info.state.value}")
        at = self.now()
        self._settle_cpu(vm)
        vm.run_since = None
        vm.info = VMInfo(vm.spec.vm_id, state, None, vm.info.started_at, at, reason,
                         0 if state != VMState.CRASHED else 1)
        self._log(vm, reason)
        if emit:
            self._emit(VMEvent(vm.spec.vm_id, kind, state, at, reason))

    async def _pause(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    # -- lifecycle -----------------------------------------------------------------------
    async def create(self, spec: VMSpec) -> VMInfo:
        _validate(spec)
        self.calls.append(("create", spec.vm_id))
        if spec.vm_id in self._vms:
            raise VMExistsError(spec.vm_id)
        vm = _FakeVM(copy.deepcopy(spec), VMInfo(spec.vm_id, VMState.CREATING))
        self._vms[spec.vm_id] = vm
        self._log(vm, f"created {spec.vcpus} vcpu {spec.memory_mib} MiB")
        return copy.copy(vm.info)

    async def update(self, spec: VMSpec) -> VMInfo:
        _validate(spec)
        vm = self._vm(spec.vm_id)
        if vm.info.state.is_active:
            raise InvalidStateError(f"{spec.vm_id} is {vm.info.state.value}")
        vm.spec = copy.deepcopy(spec)
        return copy.copy(vm.info)

    async def spec(self, vm_id: str) -> VMSpec:
        return copy.deepcopy(self._vm(vm_id).spec)

    async def start(self, vm_id: str) -> VMInfo:
        self.calls.append(("start", vm_id))
        vm = self._vm(vm_id)
        if vm.info.state.is_active:
            return copy.copy(vm.info)
        message = self._start_failures.pop(vm_id, None)
        if message is not None:
            self._log(vm, f"start failed: {message}")
            raise StartError(f"{vm_id}: {message}")
        vm.info = VMInfo(vm_id, VMState.CREATING, None, vm.info.started_at)
        await self._pause()
        self._next_pid += 1
        vm.info = VMInfo(vm_id, VMState.RUNNING, self._next_pid, self.now())
        vm.run_since = self.now()
        self._log(vm, "started")
        for i, nic in enumerate(vm.spec.nics):   # tap networking: what QEMU would attach
            self._log(vm, f"eth{i} {nic.interface_id} mac {nic.mac} tap {nic.tap} netns {nic.netns}")
        self._emit(VMEvent(vm_id, "started", VMState.RUNNING, vm.info.started_at))
        return copy.copy(vm.info)

    async def stop(self, vm_id: str, force: bool = False, timeout: float = 60.0) -> VMInfo:
        self.calls.append(("stop", vm_id))
        vm = self._vm(vm_id)
        if not vm.info.state.is_active:
            return copy.copy(vm.info)
        how = "forced"
        if not force:
            if vm.ignore_powerdown:
                await asyncio.sleep(min(timeout, self.delay or timeout))
                how = f"forced after {timeout:g}s"
            else:
                await self._pause()
                how = "graceful"
        if vm.info.state.is_active:  # a guest_poweroff() may have happened meanwhile
            self._exit(vm, VMState.STOPPED, f"stopped by host ({how})", "stopped")
        return copy.copy(vm.info)

    async def reboot(self, vm_id: str) -> VMInfo:
        self.calls.append(("reboot", vm_id))
        vm = self._vm(vm_id)
        if not vm.info.state.is_active:
            raise InvalidStateError(f"{vm_id} is {vm.info.state.value}")
        self._log(vm, "reset")
        self._emit(VMEvent(vm_id, "reset", VMState.RUNNING, self.now(), "host-qmp-system-reset"))
        return copy.copy(vm.info)

    async def destroy(self, vm_id: str) -> None:
        self.calls.append(("destroy", vm_id))
        vm = self._vm(vm_id)
        if vm.info.state.is_active:
            await self.stop(vm_id, force=True)
        del self._vms[vm_id]

    # -- inspection ----------------------------------------------------------------------
    async def state(self, vm_id: str) -> VMInfo:
        vm = self._vms.get(vm_id)
        return copy.copy(vm.info) if vm else VMInfo(vm_id, VMState.MISSING)

    async def list(self) -> list[VMInfo]:
        return [copy.copy(self._vms[k].info) for k in sorted(self._vms)]

    async def console_output(self, vm_id: str, max_bytes: int = 64 * 1024) -> bytes:
        return bytes(self._vm(vm_id).console[-max_bytes:])

    async def usage(self, vm_id: str) -> dict[str, Any]:
        vm = self._vm(vm_id)
        self._settle_cpu(vm)
        active = vm.info.state.is_active
        return {"cpu_seconds": vm.cpu_seconds if active else None,
                "rss_bytes": vm.spec.memory_mib * 1024 * 1024 if active else None,
                "net_rx_bytes": None, "net_tx_bytes": None,
                "disks": {d.disk_id: {"read_bytes": 0, "write_bytes": 0, "read_ops": 0, "write_ops": 0}
                          for d in vm.spec.disks} if active else {},
                "sampled_at": self.now()}

    # -- disks ---------------------------------------------------------------------------
    async def attach_disk(self, vm_id: str, disk_id: str, path: str, *, format: str = "qcow2",
                          read_only: bool = False) -> None:
        validate_id(disk_id, "disk_id")
        vm = self._vm(vm_id)
        if any(d.disk_id == disk_id for d in vm.spec.disks):
            raise DiskError(f"{disk_id} is already attached to {vm_id}")
        vm.spec.disks.append(DiskAttachment(disk_id, path, format, read_only))
        self._log(vm, f"disk attached {disk_id}")

    async def detach_disk(self, vm_id: str, disk_id: str, timeout: float = 10.0) -> None:
        vm = self._vm(vm_id)
        if not any(d.disk_id == disk_id for d in vm.spec.disks):
            raise DiskError(f"{disk_id} is not attached to {vm_id}")
        vm.spec.disks = [d for d in vm.spec.disks if d.disk_id != disk_id]
        self._log(vm, f"disk detached {disk_id}")

    # -- disk snapshots and growth: a running fake VM holds no file lock, so qemu-img does the
    # work a real hypervisor would do through QMP (the files are real qcow2 files) ------------
    def _disk_path(self, vm: _FakeVM, disk_id: str) -> str:
        if disk_id == "root":
            return vm.spec.root_disk
        for disk in vm.spec.disks:
            if disk.disk_id == disk_id:
                return disk.path
        raise DiskError(f"{disk_id} is not attached to {vm.spec.vm_id}")

    async def snapshot_disks(self, vm_id: str, names: dict[str, str]) -> bool:
        from . import images   # noqa: PLC0415
        vm = self._vm(vm_id)
        if not vm.info.state.is_active:
            return False
        self.calls.append(("snapshot_disks", vm_id))
        for disk_id, name in names.items():
            try:
                await images.run_qemu_img("snapshot", "-c", name, self._disk_path(vm, disk_id))
            except images.ImageError as exc:
                raise DiskError(exc.message) from None
        return True

    async def delete_disk_snapshots(self, vm_id: str, names: dict[str, str]) -> bool:
        from . import images   # noqa: PLC0415
        vm = self._vm(vm_id)
        if not vm.info.state.is_active:
            return False
        for disk_id, name in names.items():
            try:
                await images.run_qemu_img("snapshot", "-d", name, self._disk_path(vm, disk_id))
            except images.ImageError:
                pass
        return True

    async def resize_disk(self, vm_id: str, disk_id: str, size_bytes: int) -> bool:
        from . import images   # noqa: PLC0415
        vm = self._vm(vm_id)
        if not vm.info.state.is_active:
            return False
        self.calls.append(("resize_disk", vm_id))
        try:
            await images.resize(self._disk_path(vm, disk_id), size_bytes)
        except images.ImageError as exc:
            raise DiskError(exc.message) from None
        return True

    # -- network interfaces --------------------------------------------------------------
    async def attach_nic(self, vm_id: str, nic: NicAttachment) -> None:
        from .qemu_cmdline import nics_namespace, tap_options
        vm = self._vm(vm_id)
        if any(n.interface_id == nic.interface_id for n in vm.spec.nics):
            raise InvalidStateError(f"{nic.interface_id} is already attached to {vm_id}")
        nics = vm.spec.nics + [nic]
        tap_options(nics)
        if vm.info.state.is_active and (not vm.spec.nics or nics_namespace(vm.spec.nics) != nic.netns):
            raise InvalidStateError(f"{vm_id} runs outside {nic.netns}: stop it to attach {nic.interface_id}")
        nics_namespace(nics)
        vm.spec.nics = nics
        self._log(vm, f"nic attached {nic.interface_id}")

    async def detach_nic(self, vm_id: str, interface_id: str, timeout: float = 10.0) -> None:
        vm = self._vm(vm_id)
        if not any(n.interface_id == interface_id for n in vm.spec.nics):
            raise InvalidStateError(f"{interface_id} is not attached to {vm_id}")
        vm.spec.nics = [n for n in vm.spec.nics if n.interface_id != interface_id]
        self._log(vm, f"nic detached {interface_id}")


def _validate(spec: VMSpec) -> None:
    """What the QEMU driver checks too, network interfaces included."""
    from .qemu_cmdline import nics_namespace, tap_options
    spec.validate()
    if spec.nics:
        tap_options(spec.nics)
        nics_namespace(spec.nics)
