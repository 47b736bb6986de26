"""Several libvirt hosts behind one ``Driver``: each VM lives on the host its spec names.

``ClusterDriver(state_dir, hosts)`` holds one ``LibvirtDriver`` per host (``hosts``: host id ->
URI, from the ``compute_hosts`` table; ``set_hosts`` adds the ones registered later). A VM's
files live in ``<state_dir>/<host id>/<vm id>/``, so the host of an existing VM is the folder
that holds it: no separate map to keep in step. ``create(spec)`` puts the VM on
``spec.host_id`` (chosen by ``ec2_api.compute_hosts`` at RunInstances), or on the first host
when the spec names none. Events of every host reach this driver's listeners.

Crash story: nothing of its own; each host's driver keeps its files (see ``driver.py``).
"""
from __future__ import annotations

import os
from typing import Any, Awaitable, Callable, Optional

from backend.driver import Driver, NicAttachment, VMInfo, VMNotFoundError, VMSpec, VMState, validate_id

from .driver import LibvirtDriver


class ClusterDriver(Driver):
    def __init__(self, state_dir: str, hosts: Optional[dict[str, str]] = None,
                 factory: Optional[Callable[[str, str], Driver]] = None,
                 refresh: Optional[Callable[[], Awaitable[dict[str, str]]]] = None) -> None:
        super().__init__()
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self._factory = factory or (lambda folder, uri: LibvirtDriver(folder, uri))
        self.hosts: dict[str, Driver] = {}
        self.uris: dict[str, str] = {}
        self._refresh = refresh   # reads the registered hosts again (one added while serving)
        self.set_hosts(hosts or {})

    def set_hosts(self, hosts: dict[str, str]) -> None:
        """Add drivers for hosts not known yet (a host's driver is never replaced while VMs run)."""
        for host_id, uri in hosts.items():
            if host_id in self.hosts:
                continue
            driver = self._factory(os.path.join(self.state_dir, validate_id(host_id, "host_id")), uri)
            driver.add_listener(self._emit)
            self.hosts[host_id] = driver
            self.uris[host_id] = uri

    def host_of(self, vm_id: str) -> Optional[str]:
        validate_id(vm_id)
        for host_id in self.hosts:
            if os.path.exists(os.path.join(self.state_dir, host_id, vm_id, "spec.json")):
                return host_id
        return None

    def _driver(self, vm_id: str) -> Driver:
        host_id = self.host_of(vm_id)
        if host_id is None:
            raise VMNotFoundError(vm_id)
        return self.hosts[host_id]

    # -- lifecycle: to the VM's host ------------------------------------------------------
    async def create(self, spec: VMSpec) -> VMInfo:
        if not self.hosts and self._refresh is not None:
            self.set_hosts(await self._refresh())
        if not self.hosts:
            raise VMNotFoundError("no compute hosts are registered (nimbo host add NAME URI)")
        if spec.host_id and spec.host_id not in self.hosts and self._refresh is not None:
            self.set_hosts(await self._refresh())
        host_id = spec.host_id or next(iter(self.hosts))
        if host_id not in self.hosts:
            raise VMNotFoundError(f"{spec.vm_id}: unknown host {host_id}")
        existing = self.host_of(spec.vm_id)
        if existing is not None and existing != host_id:
            from backend.driver import VMExistsError   # noqa: PLC0415
            raise VMExistsError(f"{spec.vm_id} exists on {existing}")
        return await self.hosts[host_id].create(spec)

    async def update(self, spec: VMSpec) -> VMInfo:
        return await self._driver(spec.vm_id).update(spec)

    async def start(self, vm_id: str) -> VMInfo:
        return await self._driver(vm_id).start(vm_id)

    async def stop(self, vm_id: str, force: bool = False, timeout: float = 60.0) -> VMInfo:
        return await self._driver(vm_id).stop(vm_id, force=force, timeout=timeout)

    async def reboot(self, vm_id: str) -> VMInfo:
        return await self._driver(vm_id).reboot(vm_id)

    async def destroy(self, vm_id: str) -> None:
        await self._driver(vm_id).destroy(vm_id)

    async def state(self, vm_id: str) -> VMInfo:
        host_id = self.host_of(vm_id)
        if host_id is None:
            return VMInfo(vm_id, VMState.MISSING)
        return await self.hosts[host_id].state(vm_id)

    async def list(self) -> list[VMInfo]:
        out: list[VMInfo] = []
        for driver in self.hosts.values():
            try:
                out += await driver.list()
            except Exception:   # noqa: BLE001 (a host that is down must not hide the others)
                import logging   # noqa: PLC0415
                logging.getLogger(__name__).exception("listing the VMs of a compute host failed")
        return out

    async def spec(self, vm_id: str) -> VMSpec:
        return await self._driver(vm_id).spec(vm_id)

    async def console_output(self, vm_id: str, max_bytes: int = 64 * 1024) -> bytes:
        return await self._driver(vm_id).console_output(vm_id, max_bytes)

    async def usage(self, vm_id: str) -> dict[str, Any]:
        return await self._driver(vm_id).usage(vm_id)

    async def attach_disk(self, vm_id: str, disk_id: str, path: str, *, format: str = "qcow2",
                          read_only: bool = False) -> None:
        await self._driver(vm_id).attach_disk(vm_id, disk_id, path, format=format, read_only=read_only)

    async def detach_disk(self, vm_id: str, disk_id: str, timeout: float = 10.0) -> None:
        await self._driver(vm_id).detach_disk(vm_id, disk_id, timeout)

    async def attach_nic(self, vm_id: str, nic: NicAttachment) -> None:
        await self._driver(vm_id).attach_nic(vm_id, nic)

    async def detach_nic(self, vm_id: str, interface_id: str, timeout: float = 10.0) -> None:
        await self._driver(vm_id).detach_nic(vm_id, interface_id, timeout)

    async def snapshot_disks(self, vm_id: str, names: dict[str, str]) -> bool:
        return await self._driver(vm_id).snapshot_disks(vm_id, names)

    async def delete_disk_snapshots(self, vm_id: str, names: dict[str, str]) -> bool:
        return await self._driver(vm_id).delete_disk_snapshots(vm_id, names)

    async def resize_disk(self, vm_id: str, disk_id: str, size_bytes: int) -> bool:
        return await self._driver(vm_id).resize_disk(vm_id, disk_id, size_bytes)

    async def close(self) -> None:
        for driver in self.hosts.values():
            await driver.close()

