"""AttachNetworkInterface / DetachNetworkInterface on a running instance: the interface reaches
(or leaves) the guest at once, hot-plugged through the driver (``attach_nic`` / ``detach_nic``),
where the data path is on (taps). With user-mode networking, or a driver that cannot hot-plug,
the change takes effect at the instance's next start, as before (``NetworkSync.nics_for``).

Order: attaching applies the network state first (the tap must exist before QEMU opens it), then
plugs; detaching unplugs first (the guest releases the device), then the caller records the
detachment and the next apply removes the tap. Both run under the lifecycle's lock of the
instance, so no boot or terminate interleaves.

Crash story: nothing persistent here. The database is the truth: a crash after the row changed
but before the plug leaves the guest with the old set of NICs until its next start, which boots
with the interfaces the database names.
"""
from __future__ import annotations

import logging
from typing import Any

from backend.driver import DriverError

log = logging.getLogger("nimbo.ec2")
DETACH_TIMEOUT = 10.0


def _hot(state: Any) -> bool:
    sync = getattr(state, "network", None)
    return getattr(state, "driver", None) is not None and sync is not None and sync.data_path is not None


async def _running(state: Any, instance_id: str) -> bool:
    row = await state.db.fetchone("SELECT state FROM ec2_instances WHERE instance_id = ?", (instance_id,))
    return row is not None and row["state"] == "running"


async def plug(state: Any, instance_id: str, interface_id: str) -> bool:
    """Hot-plug an interface just recorded as attached to ``instance_id``; True when the guest has it."""
    if not _hot(state):
        return False
    async with state._locks[instance_id]:   # noqa: SLF001 (the lifecycle's per-instance lock)
        if not await _running(state, instance_id):
            return False
        try:
            await state.network.sync_now()          # the tap first
            await state.driver.attach_nic(instance_id, state.network.data_path.nic(interface_id))
        except (DriverError, KeyError, NotImplementedError, OSError) as exc:
            log.warning("hot-plugging %s into %s failed (it joins at the next start): %s",
                        interface_id, instance_id, exc)
            return False
    return True


async def unplug(state: Any, instance_id: str, interface_id: str) -> bool:
    """Hot-unplug an interface about to be recorded as detached; True when the guest let it go."""
    if not _hot(state):
        return False
    async with state._locks[instance_id]:   # noqa: SLF001
        if not await _running(state, instance_id):
            return False
        try:
            await state.driver.detach_nic(instance_id, interface_id, timeout=DETACH_TIMEOUT)
        except (DriverError, NotImplementedError, OSError) as exc:
            log.warning("hot-unplugging %s from %s failed (it leaves at the next start): %s",
                        interface_id, instance_id, exc)
            return False
    return True
