"""What a driver that runs VMs it starts itself keeps on disk: one folder per VM under its state
directory, ``<state_dir>/<vm_id>/spec.json`` naming what was asked for (written whole, by rename),
and a lock per VM that serialises the verbs on it within the process.

The QEMU driver and the libvirt driver both keep their VMs this way; what else sits in the folder
(pid file and QMP socket, or the domain's console log and NIC ports) is each driver's own. The
folder outlives Nimbo: ``vm_ids`` is what a restarted driver re-adopts from.
"""
from __future__ import annotations

import asyncio
import json
import os

from .driver import Driver, VMNotFoundError, VMSpec, validate_id
from .qemu_state import read_text, write_text

SPEC_FILE = "spec.json"


class StateDirDriver(Driver):
    def __init__(self, state_dir: str) -> None:
        super().__init__()
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    def vm_dir(self, vm_id: str) -> str:
        return os.path.join(self.state_dir, validate_id(vm_id))

    def vm_file(self, vm_id: str, name: str) -> str:
        return os.path.join(self.vm_dir(vm_id), name)

    def vm_ids(self) -> list[str]:
        """The VMs that have a spec, in name order."""
        return [name for name in sorted(os.listdir(self.state_dir))
                if os.path.exists(os.path.join(self.state_dir, name, SPEC_FILE))]

    def _lock(self, vm_id: str) -> asyncio.Lock:
        return self._locks.setdefault(vm_id, asyncio.Lock())

    def _forget(self, vm_id: str) -> None:
        """After destroy: the VM's lock is no longer needed."""
        self._locks.pop(vm_id, None)

    def _load_spec(self, vm_id: str) -> VMSpec:
        raw = read_text(self.vm_file(vm_id, SPEC_FILE))
        if raw is None:
            raise VMNotFoundError(vm_id)
        return VMSpec.from_dict(json.loads(raw))

    def _save_spec(self, spec: VMSpec) -> None:
        write_text(self.vm_file(spec.vm_id, SPEC_FILE), json.dumps(spec.to_dict(), indent=1))

    async def spec(self, vm_id: str) -> VMSpec:
        return self._load_spec(vm_id)
