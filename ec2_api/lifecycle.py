"""The instances' life behind the API: the hypervisor driver's calls run here, in background tasks,
and their outcomes become state changes (``instance_store.change_state``).

RunInstances and StartInstances answer ``pending`` at once; the VM is prepared (root disk overlay,
metadata socket, driver spec) and started here, then the instance becomes ``running``. Stop and
terminate likewise. A VM that stops on its own (the guest powered off, the process died) is noticed
through the driver's events, or at start-up by ``reconcile``, and the instance follows: stopped, or
terminated when its shutdown behaviour says so, at the time the VM stopped.

Every action on one instance holds that instance's lock, so the steps of a launch, a stop and a
terminate never interleave; ``settle`` compares the row with the driver's view and fixes the row.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from typing import Any, Awaitable

from backend.driver import DriverError, UserNetOptions, VMNotFoundError, VMSpec, VMState
from ec2_api import disks, images, instance_store, volume_attachments
from ec2_api.common import gmt, to_us
from ec2_api.imds import ImdsServer, hostname_of
from ec2_api.instance_store import ACTIVE_STATES, GUEST_SHUTDOWN, change_state
from storage import usage

log = logging.getLogger("nimbo.ec2")

HOUSEKEEPING_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
UNEXPECTED_STOP = ("Server.InternalError", "Server.InternalError: The instance stopped unexpectedly")
START_FAILED = ("Server.InternalError", "Server.InternalError: Internal error on launch")


class Lifecycle:
    def __init__(self, db: Any, config: Any, driver: Any, clock: Any) -> None:
        self.db = db
        self.config = config
        self.driver = driver
        self.clock = clock
        self.imds = ImdsServer(db, config)
        self.stop_timeout = float(getattr(config, "instance_stop_timeout", STOP_TIMEOUT_SECONDS))
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task] = set()
        self._remove_listener: Any = None
        self._housekeeper: asyncio.Task | None = None

    def now_us(self) -> int:
        return to_us(self.clock())

    # -- start-up and shut-down -----------------------------------------------------------
    async def open(self, *, housekeeping: bool = True) -> None:
        if self.driver is not None:
            self._remove_listener = self.driver.add_listener(self._on_event)
            await self.reconcile()
        if housekeeping:
            self._housekeeper = asyncio.create_task(self._housekeeping_loop())

    async def close(self, grace: float = 5.0) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
        if self._remove_listener is not None:
            self._remove_listener()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.imds.close_all()

    async def wait_idle(self) -> None:
        """Wait until no background work is under way (tests; orderly shut-down)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def reconcile(self) -> None:
        """After a restart: bring every instance that should have a VM in line with the driver."""
        rows = await self.db.fetchall(
            f"SELECT instance_id, state FROM ec2_instances WHERE state IN ({','.join('?' * len(ACTIVE_STATES))})",
            ACTIVE_STATES)
        try:
            await self.driver.list()   # re-adopts (watches) the VMs that still run
        except DriverError:
            log.exception("the driver could not list its VMs")
        for row in rows:
            instance_id, state = row["instance_id"], row["state"]
            if state == "pending":
                self.boot(instance_id)
            elif state == "stopping":
                self.stop(instance_id, force=False)
            elif state == "shutting-down":
                self.terminate(instance_id)
            else:
                await self.settle(instance_id)
                current = await instance_store.load(self.db, instance_id)
                if current is not None and current["state"] == "running":
                    await self.imds.open(instance_id)

    # -- what the handlers ask for --------------------------------------------------------
    def boot(self, instance_id: str) -> None:
        """Start a ``pending`` instance's VM (first launch or StartInstances)."""
        self.spawn(self._boot(instance_id))

    def stop(self, instance_id: str, force: bool) -> None:
        """Stop a ``stopping`` instance's VM."""
        self.spawn(self._stop(instance_id, force))

    def terminate(self, instance_id: str) -> None:
        """Destroy a ``shutting-down`` instance's VM and free what it holds."""
        self.spawn(self._terminate(instance_id))

    def reboot(self, instance_id: str) -> None:
        self.spawn(self._reboot(instance_id))

    async def console_output(self, instance_id: str) -> bytes:
        if self.driver is None:
            return b""
        try:
            return await self.driver.console_output(instance_id)
        except (VMNotFoundError, DriverError):
            return b""

    # -- background work ------------------------------------------------------------------
    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("instance task failed", exc_info=task.exception())

    def _on_event(self, event: Any) -> None:
        if event.kind in ("shutdown", "stopped", "crashed") and event.vm_id.startswith("i-"):
            self.spawn(self.settle(event.vm_id))

    async def _boot(self, instance_id: str) -> None:
        async with self._locks[instance_id]:
            row = await instance_store.load(self.db, instance_id)
            if row is None or row["state"] != "pending":
                return
            try:
                if self.driver is None:
                    raise DriverError("no hypervisor backend is configured")
                spec = await self._prepare(row)
                if getattr(self, "network", None) is not None:   # taps of the data path, or user-mode
                    spec.nics = await self.network.nics_for(instance_id)
                await self.imds.open(instance_id)
                info = await self.driver.state(instance_id)
                if info.state == VMState.MISSING:
                    await self.driver.create(spec)
                elif not info.state.is_active:
                    await self.driver.update(spec)
                info = await self.driver.start(instance_id)
            except Exception as exc:  # noqa: BLE001 (any failure to start is the instance's failure)
                log.warning("instance %s failed to start: %s", instance_id, exc)
                await self._start_failed(row, exc)
                return
            at = to_us(info.started_at) if info.started_at else self.now_us()
            at = max(at, row["state_changed_us"])
            changed = await change_state(self.db, instance_id, "running", at, from_states=("pending",),
                                         reason=(None, None), transition_reason="")
            if changed is None:
                log.info("instance %s left pending while its VM started", instance_id)

    async def _start_failed(self, row: Any, exc: Exception) -> None:
        instance_id = row["instance_id"]
        first_launch = row["launch_time_us"] == row["pending_time_us"]
        await self.imds.close(instance_id)
        if first_launch:
            await self._release(row)
            await change_state(self.db, instance_id, "terminated", self.now_us(), from_states=("pending",),
                               reason=START_FAILED, updates={"private_ip": None},
                               transition_reason=f"Server error ({gmt(self.now_us())})")
            await volume_attachments.forget_deleted(self.db, instance_id)
            await images.collect_image_files(self.db, self.config, row["image_id"])
        else:
            await change_state(self.db, instance_id, "stopped", self.now_us(), from_states=("pending",),
                               reason=START_FAILED,
                               transition_reason=f"Server error ({gmt(self.now_us())})")

    async def _prepare(self, row: Any) -> VMSpec:
        """The root disk (made on first launch) and the driver spec of the instance."""
        data = instance_store.data_of(row)
        boot = data["boot"]
        if not os.path.exists(row["root_disk"]):
            if row["launch_time_us"] != row["pending_time_us"]:   # not its first launch: never a blank disk
                raise DriverError(f"the root disk {row['root_disk']} is out of reach (gateway.cluster)")
            size = int(data["root_volume"]["size_gib"]) * 1024 ** 3
            await disks.create_overlay(boot["base_disk"], boot["base_format"], row["root_disk"], size)
        return VMSpec(
            vm_id=row["instance_id"], root_disk=row["root_disk"], vcpus=int(data["vcpus"]),
            memory_mib=int(data["memory_mib"]), root_disk_format="qcow2",
            kernel=boot.get("kernel"), initrd=boot.get("initrd"), cmdline=boot.get("cmdline"),
            smbios_uuid=data["smbios_uuid"], mac=row["mac"], imds_socket=self.imds.path(row["instance_id"]),
            root_disk_serial=row["root_volume_id"].replace("-", ""),
            disks=await volume_attachments.disks_for_start(self, row), host_id=data.get("host_id"),
            user_net=UserNetOptions(hostname=hostname_of(row["private_ip"], row["region"]).split(".")[0]))

    async def _stop(self, instance_id: str, force: bool) -> None:
        # No instance lock around the driver's stop: a graceful stop may take its whole timeout,
        # and a forced stop or a terminate must not queue behind it. Nothing else can start
        # while the instance is ``stopping``; ``settle`` records the outcome under the lock.
        row = await instance_store.load(self.db, instance_id)
        if row is None or row["state"] != "stopping":
            return
        await self._driver_stop(instance_id, force)
        await self.settle(instance_id)

    async def _driver_stop(self, instance_id: str, force: bool) -> None:
        if self.driver is None:
            return
        try:
            await self.driver.stop(instance_id, force=force, timeout=self.stop_timeout)
        except VMNotFoundError:
            pass
        except DriverError:
            log.exception("stopping %s failed", instance_id)

    async def _reboot(self, instance_id: str) -> None:
        async with self._locks[instance_id]:
            row = await instance_store.load(self.db, instance_id)
            if row is None or row["state"] != "running" or self.driver is None:
                return
            try:
                await self.driver.reboot(instance_id)
            except DriverError:
                log.exception("rebooting %s failed", instance_id)

    async def _terminate(self, instance_id: str) -> None:
        async with self._locks[instance_id]:
            row = await instance_store.load(self.db, instance_id)
            if row is None or row["state"] != "shutting-down":
                return
            await self._release(row)
            await change_state(self.db, instance_id, "terminated", max(self.now_us(), row["state_changed_us"]),
                               from_states=("shutting-down",), updates={"private_ip": None})
            await volume_attachments.forget_deleted(self.db, instance_id)
        self._locks.pop(instance_id, None)
        await images.collect_image_files(self.db, self.config, row["image_id"])

    async def _release(self, row: Any) -> None:
        """Destroy the VM, close its metadata socket, delete its root disk when it goes with it."""
        instance_id = row["instance_id"]
        await self.imds.close(instance_id)
        if self.driver is not None:
            try:
                await self.driver.destroy(instance_id)
            except VMNotFoundError:
                pass
            except DriverError:
                log.exception("destroying %s failed", instance_id)
        root = instance_store.data_of(row).get("root_volume") or {}
        if root.get("delete_on_termination", True):
            disks.remove(row["root_disk"])
        await volume_attachments.release_files(self.db, row)

    async def settle(self, instance_id: str) -> None:
        """Make the row agree with the driver when the VM stopped without being asked (or while
        Nimbo was down): running -> stopped (or terminated, per the shutdown behaviour), stopping
        -> stopped, at the time the VM stopped."""
        async with self._locks[instance_id]:
            row = await instance_store.load(self.db, instance_id)
            if row is None or row["state"] not in ("running", "stopping") or self.driver is None:
                return
            info = await self.driver.state(instance_id)
            if info.state.is_active:
                return
            at = to_us(info.stopped_at) if info.stopped_at else self.now_us()
            at = max(at, row["state_changed_us"])
            guest = info.state == VMState.SHUTDOWN
            if row["state"] == "stopping":
                await change_state(self.db, instance_id, "stopped", at, from_states=("stopping",))
                await self.imds.close(instance_id)
                return
            reason = GUEST_SHUTDOWN if guest else UNEXPECTED_STOP
            if guest and row["shutdown_behavior"] == "terminate":
                await change_state(self.db, instance_id, "shutting-down", at, from_states=("running",),
                                   reason=reason, transition_reason=f"{reason[1]} ({gmt(at)})")
                self.terminate(instance_id)
                return
            async with self.db.transaction() as tx:
                await change_state(self.db, instance_id, "stopping", at, from_states=("running",),
                                   reason=reason, transition_reason=f"{reason[1]} ({gmt(at)})", tx=tx)
                await change_state(self.db, instance_id, "stopped", at, from_states=("stopping",), tx=tx)
            await self.imds.close(instance_id)

    # -- housekeeping ---------------------------------------------------------------------
    async def _housekeeping_loop(self) -> None:
        interval = float(getattr(self.config, "ec2_housekeeping_seconds", HOUSEKEEPING_SECONDS))
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.cluster_lock("ec2-housekeeping") as held:   # once per cluster
                    if held:
                        await self.housekeeping()
            except Exception:  # noqa: BLE001 (keep the loop alive)
                log.exception("EC2 housekeeping failed")

    async def housekeeping(self) -> None:
        await self.sweep()
        await self.purge_terminated()
        await self.sample_counters()

    async def sweep(self) -> None:
        """Settle every running or stopping instance: a VM whose stop event was missed (a driver
        watcher that died, an event lost in a restart) still ends its instance's running time."""
        if self.driver is None:
            return
        rows = await self.db.fetchall(
            "SELECT instance_id FROM ec2_instances WHERE state IN ('running', 'stopping')")
        for row in rows:
            try:
                await self.settle(row["instance_id"])
            except DriverError:
                log.exception("checking %s failed", row["instance_id"])

    async def purge_terminated(self) -> int:
        """Forget instances terminated more than an hour ago (and their tags)."""
        horizon = self.now_us() - instance_store.TERMINATED_VISIBLE_US
        rows = await self.db.fetchall(
            "SELECT instance_id, root_volume_id, data FROM ec2_instances WHERE state = 'terminated'"
            " AND state_changed_us <= ?", (horizon,))
        if not rows:
            return 0
        async with self.db.transaction() as tx:
            for row in rows:
                await tx.execute("DELETE FROM ec2_tags WHERE resource_id = ?", (row["instance_id"],))
                if (instance_store.data_of(row).get("root_volume") or {}).get("delete_on_termination", True):
                    await tx.execute("DELETE FROM ec2_tags WHERE resource_id = ?", (row["root_volume_id"],))
                await tx.execute("DELETE FROM ec2_instances WHERE instance_id = ? AND state = 'terminated'",
                                 (row["instance_id"],))
        return len(rows)

    async def sample_counters(self) -> None:
        """Network byte counters of running VMs into the ledger (reset-safe, see storage.usage)."""
        if self.driver is None or not hasattr(usage, "record_counter_sample"):
            return
        if getattr(getattr(self, "network", None), "data_path", None) is not None:
            return   # the data path's per-interface counters are billed instead (network_sync)
        rows = await self.db.fetchall(
            "SELECT instance_id, account_id, region FROM ec2_instances WHERE state = 'running'")
        for row in rows:
            try:
                counters = await self.driver.usage(row["instance_id"])
                info = await self.driver.state(row["instance_id"])
            except DriverError:
                continue
            epoch = info.started_at.isoformat() if info.started_at else None
            at = self.now_us()
            for name in ("net_rx_bytes", "net_tx_bytes"):
                value = counters.get(name)
                if value is not None:
                    await usage.record_counter_sample(self.db, row["account_id"], row["region"],
                                                      row["instance_id"], name, value, at, epoch=epoch)


def host_capacity(config: Any) -> tuple[int, int]:
    """(vCPUs, MiB) the host offers: configured, or the host's cores x 8 and 80 % of its RAM."""
    vcpus = getattr(config, "host_vcpus", None) or (os.cpu_count() or 1) * 8
    memory = getattr(config, "host_memory_mib", None)
    if not memory:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024) * 8 // 10
        except (ValueError, OSError):
            memory = 8192
    return int(vcpus), int(memory)


async def capacity_in_use(conn: Any) -> tuple[int, int]:
    """(vCPUs, MiB) held by instances that have (or are getting) a VM."""
    rows = await conn.fetchall(
        f"SELECT data FROM ec2_instances WHERE state IN ({','.join('?' * len(ACTIVE_STATES))})",
        ACTIVE_STATES)
    vcpus = memory = 0
    for row in rows:
        data = instance_store.data_of(row)
        vcpus += int(data.get("vcpus") or 0)
        memory += int(data.get("memory_mib") or 0)
    return vcpus, memory
