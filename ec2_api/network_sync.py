"""Keeps the data path in line with the API: the glue between EC2's networking tables and a
``backend.network.model.DataPath``.

Wiring (what the gateway provides): ``app.network`` is the data path, or None for user-mode
networking (QEMU's slirp, the fallback where Nimbo is not root). ``make_data_path(config)``
builds it from the config key ``network``: ``auto`` (default: the namespace data path when Nimbo
runs as root with a real hypervisor, else None), ``namespace``, ``fake`` (``backend.network.fake``,
for tests) or ``user`` (None). The namespace data path is constructed as
``NamespaceDataPath(config.data_dir, imds_relay.socket_path(config), public_pool=[...],
host_access=config.network_host_access)``: its metadata relay connects to Nimbo's one metadata
socket, ``<data_dir>/imds.sock``, served by ``ec2_api.imds_relay``.

``NetworkSync`` (``ctx.state.network``, the EC2 lifecycle's ``network``):
- at open: starts the metadata listener, opens the data path (re-adopting what exists) and
  applies the desired state;
- after every change that alters the desired state: the API's actions call ``poke()``, and every
  change bumps ``net_generation`` in its transaction; instance state changes move
  ``ec2_instances.state_seq``. One runner task applies, debounced by ``DEBOUNCE_SECONDS``, one
  apply at a time; a poller notices changes made by other processes within ``POLL_SECONDS``
  (started only when the server runs several worker processes, ``--workers``). Before computing
  the state it runs ``instance_network.reconcile`` (interfaces of terminated instances,
  auto-assigned public addresses of stopped ones);
- ``nics_for(instance_id)``: what the driver's ``VMSpec.nics`` gets when booting a VM (after
  applying, so that the taps exist);
- ``sample_counters()``: per-interface byte counters into the usage ledger: internet out
  ``DataTransfer-Out-Bytes``, internet in ``DataTransfer-In-Bytes`` (free), between zones
  ``DataTransfer-Regional-Bytes`` both ways (operations InterZone-Out / InterZone-In, as AWS
  charges each side); traffic inside a zone is free and not recorded. The resource of the
  samples is the interface id (its counters reset when its tap is re-made).

Crash story: nothing here is persistent; the data path keeps its own state and this re-applies
the whole desired state at every start.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from backend.driver import NicAttachment
from backend.network.model import NetworkState
from ec2_api import imds_relay
from ec2_api.common import to_us
from ec2_api.instance_network import reconcile
from ec2_api.network_state import desired_state
from storage import usage

log = logging.getLogger("nimbo.network")
DEBOUNCE_SECONDS = 0.05
POLL_SECONDS = 0.25
COUNTERS = (("bytes_out_internet", "eni_out_internet_bytes"), ("bytes_in_internet", "eni_in_internet_bytes"),
            ("bytes_out_other_az", "eni_out_other_az_bytes"), ("bytes_in_other_az", "eni_in_other_az_bytes"))


def make_data_path(config: Any) -> Any:
    """The data path the config asks for (see the module docstring), or None: user-mode."""
    mode = str(getattr(config, "network", "auto") or "auto")
    if mode not in ("auto", "namespace", "user", "fake"):
        raise ValueError(f"config key network: {mode!r} is not one of auto, namespace, user, fake")
    if mode == "user":
        return None
    if mode == "fake":
        from backend.network.fake import FakeDataPath  # noqa: PLC0415
        return FakeDataPath(imds_relay.socket_path(config))
    if mode == "auto" and (getattr(config, "backend", "qemu") == "fake" or os.geteuid() != 0):
        log.info("instances use user-mode networking (no inbound access, no public addresses): %s",
                 "not root" if os.geteuid() != 0 else "the fake hypervisor backend")
        return None
    try:
        from backend.network import namespace  # noqa: PLC0415
    except ImportError:
        if mode == "namespace":
            raise RuntimeError("this build of Nimbo has no namespace data path") from None
        log.warning("no namespace data path in this build: instances use user-mode networking")
        return None
    ok, why = namespace.available()
    if not ok:
        if mode == "namespace":
            raise RuntimeError(f"the namespace data path cannot run here: {why}")
        log.warning("instances use user-mode networking: %s", why)
        return None
    from ec2_api.addresses import pool_of  # noqa: PLC0415
    return namespace.NamespaceDataPath(config.data_dir, imds_relay.socket_path(config),
                                       public_pool=[str(n) for n in pool_of(config)],
                                       host_access=bool(getattr(config, "network_host_access", False)))


async def open_network(app: Any, lifecycle: Any, *, background: bool = True) -> "NetworkSync":
    """Migrate the networking tables and start the sync of ``app.network`` (the data path, or
    None) as ``lifecycle.network``, before the lifecycle boots anything."""
    from ec2_api import network_schema  # noqa: PLC0415
    await app.db.migrate(network_schema.SCHEMA)
    lifecycle.network = NetworkSync(app.db, app.config, getattr(app, "network", None), lifecycle.imds, app.clock)
    await lifecycle.network.open(background=background)
    return lifecycle.network


async def close_network(lifecycle: Any) -> None:
    sync = getattr(lifecycle, "network", None)
    if sync is not None:
        await sync.close()


class NetworkSync:
    def __init__(self, db: Any, config: Any, data_path: Any, imds_server: Any, clock: Any) -> None:
        self.db = db
        self.config = config
        self.data_path = data_path
        self.clock = clock
        self.applied: NetworkState | None = None
        self.relay = imds_relay.ImdsRelayListener(imds_server, imds_relay.socket_path(config)) \
            if data_path is not None else None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._seen: tuple | None = None

    # -- life ------------------------------------------------------------------------------
    async def open(self, *, background: bool = True) -> None:
        if self.data_path is not None:
            await self.relay.open()
            await self.data_path.open()
        await self.sync_now()
        self._tasks.append(asyncio.create_task(self._runner()))
        if background and self.data_path is not None:
            if int(getattr(self.config, "workers", None) or 1) > 1:   # other processes may write
                self._tasks.append(asyncio.create_task(self._poller()))
            self._tasks.append(asyncio.create_task(self._sampler()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.data_path is not None:
            await self.data_path.close()
            await self.relay.close()

    # -- applying --------------------------------------------------------------------------
    def poke(self) -> None:
        self._wake.set()

    async def settle(self) -> NetworkState:
        """Apply now (tests; callers that must see the effect)."""
        return await self.sync_now()

    async def sync_now(self) -> NetworkState:
        async with self._lock:
            self._wake.clear()
            await reconcile(self.db, self.config, public_addresses=self.data_path is not None,
                            at_us=to_us(self.clock()))
            self._seen = await self._fingerprint()
            state = await desired_state(self.db, self.config)
            if self.data_path is not None and state != self.applied:
                await self.data_path.apply(state)
                self.applied = state
            elif self.data_path is None:
                self.applied = state
            return state

    async def _runner(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            try:
                await self.sync_now()
            except Exception:  # noqa: BLE001 (keep applying later changes)
                log.exception("applying the network state failed")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _fingerprint(self) -> tuple:
        row = await self.db.fetchone(
            "SELECT (SELECT value FROM net_generation WHERE id = 1) AS g, COUNT(*) AS n,"
            " COALESCE(SUM(state_seq), 0) AS s FROM ec2_instances")
        return (row["g"], row["n"], row["s"])

    async def _poller(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if await self._fingerprint() != self._seen:
                    self.poke()
            except Exception:  # noqa: BLE001
                log.exception("polling the network state failed")

    async def nics_for(self, instance_id: str) -> list[NicAttachment]:
        """The VM's NICs on the data path's taps, in device order ([] for user-mode)."""
        if self.data_path is None:
            return []
        await self.sync_now()
        rows = await self.db.fetchall("SELECT network_interface_id FROM net_interfaces WHERE instance_id = ?"
                                      " ORDER BY device_index", (instance_id,))
        return [self.data_path.nic(r["network_interface_id"]) for r in rows]

    # -- metering --------------------------------------------------------------------------
    async def _sampler(self) -> None:
        interval = float(getattr(self.config, "ec2_housekeeping_seconds", 60.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sample_counters()
            except Exception:  # noqa: BLE001
                log.exception("sampling the network counters failed")

    async def sample_counters(self) -> int:
        """Per-interface counters into the usage ledger; returns the bytes recorded."""
        if self.data_path is None:
            return 0
        counters = await self.data_path.counters()
        if not counters:
            return 0
        at = to_us(self.clock())
        owners = {r["network_interface_id"]: r for r in await self.db.fetchall(
            "SELECT network_interface_id, account_id, region FROM net_interfaces")}
        total = 0
        for interface_id, values in counters.items():
            owner = owners.get(interface_id)
            if owner is None:
                continue
            for field, name in COUNTERS:
                total += await usage.record_counter_sample(self.db, owner["account_id"], owner["region"], interface_id,
                                                           name, getattr(values, field), at)
        return total
