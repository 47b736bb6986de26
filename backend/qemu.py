"""The QEMU driver: one QEMU process per VM, controlled over QMP, outliving this process.

Per-VM folder ``<state_dir>/<vm_id>/`` (see ``VMPaths``): spec.json, qemu.pid, qmp.sock,
console.log (serial console, appended across boots), qemu.log (QEMU's stderr), started,
and the exit markers below.

Process model: QEMU runs in the foreground under a tiny ``sh`` wrapper in its own session
(double-forked, so it is not our child and survives us). When QEMU exits, the wrapper writes
``exit`` = "<status> <epoch>": the exit time is known even if no driver watched. If the wrapper
itself was killed too (host reboot), the exit time falls back to the console log's mtime.

How an exit is classified (``VMInfo.state``):
  ``stop-requested`` marker written by ``stop()``          -> stopped
  guest panic (pvpanic, ``panicked`` marker) or status not 0 and not a kill signal -> crashed
  status 0 (guest powered off) or killed by a signal     -> shutdown

Re-adoption: ``list()``/``state()`` read pidfiles and markers only; a live VM gets a watcher
task that connects to its QMP socket for events (QMP serves one client at a time: if another
driver instance holds it, the watcher polls the pid until the socket frees up).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
from typing import Any, Optional

from .driver import (DiskAttachment, DiskError, InvalidStateError, NicAttachment, StartError, VMEvent,
                     VMExistsError, VMInfo, VMNotFoundError, VMSpec, VMState, utcnow, validate_id)
from .qemu_cmdline import (VMPaths, blockdev_args, build_command, device_id, disk_device_args,
                           explain_accel, nic_hotplug_args, nic_ids, nics_namespace, node_name,
                           tap_options)
from .qemu_state import (exit_classification, pid_alive, proc_usage, read_text, ts, unlink,
                          write_text)
from .state_dir import StateDirDriver
from .qmp import QMPClient, QMPConnectionError, QMPError

log = logging.getLogger(__name__)
POWERDOWN_REPEAT_SECONDS = 3.0   # a graceful stop presses the power button again this often

_QMP_STATUS = {"running": VMState.RUNNING, "prelaunch": VMState.CREATING,
               "inmigrate": VMState.CREATING, "shutdown": VMState.SHUTDOWN,
               "guest-panicked": VMState.CRASHED, "internal-error": VMState.CRASHED}

# $1 = vm dir, $2... = QEMU argv. Runs QEMU in the foreground, then records how and when it ended.
_WRAPPER = ('d=$1; shift; "$@" </dev/null >>"$d/qemu.log" 2>&1; rc=$?; '
            'echo "$rc $(date +%s.%N)" >"$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"')


class QemuDriver(StateDirDriver):
    def __init__(self, state_dir: str, *, qemu_binary: str = "qemu-system-x86_64",
                 accel: str = "auto", tb_size_mib: int = 32, start_timeout: float = 30.0,
                 virtio_rng: bool = False):
        super().__init__(state_dir)
        self.qemu_binary = qemu_binary
        self.accel, why = explain_accel() if accel == "auto" else (accel, "as configured")
        log.info("QEMU accelerator: %s (%s)", self.accel.upper(), why)
        self.tb_size_mib = tb_size_mib
        self.start_timeout = start_timeout
        self.virtio_rng = virtio_rng
        self._qmp: dict[str, QMPClient] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._starting: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def paths(self, vm_id: str) -> VMPaths:
        return VMPaths(self.vm_dir(vm_id))

    def _pid(self, paths: VMPaths) -> Optional[int]:
        raw = read_text(paths.pidfile)
        try:
            return int(raw.strip()) if raw else None
        except ValueError:
            return None

    def _alive_pid(self, paths: VMPaths) -> Optional[int]:
        pid = self._pid(paths)
        return pid if pid_alive(pid, paths.dir) else None

    def _probe(self, vm_id: str) -> VMInfo:
        """State from files and /proc alone (no QMP)."""
        paths = self.paths(vm_id)
        if not os.path.exists(paths.spec):
            return VMInfo(vm_id, VMState.MISSING)
        started = read_text(paths.started)
        started_at = ts(float(started)) if started else None
        if vm_id in self._starting:
            return VMInfo(vm_id, VMState.CREATING, self._pid(paths), started_at)
        pid = self._alive_pid(paths)
        if pid:
            return VMInfo(vm_id, VMState.RUNNING, pid, started_at)
        if started is None and not os.path.exists(paths.exit):
            return VMInfo(vm_id, VMState.CREATING)  # defined, never started
        state, at, reason, status = exit_classification(paths)
        return VMInfo(vm_id, state, None, started_at, ts(at), reason, status)

    async def _info(self, vm_id: str) -> VMInfo:
        info = self._probe(vm_id)
        qmp = self._qmp.get(vm_id)
        if info.state == VMState.RUNNING and qmp is not None and qmp.is_connected:
            try:
                status = (await qmp.execute("query-status", timeout=5))["status"]
                info.state = _QMP_STATUS.get(status, VMState.PAUSED)
            except (QMPError, QMPConnectionError, asyncio.TimeoutError):
                pass
        elif info.state == VMState.RUNNING:
            self._ensure_watcher(vm_id)
        return info

    async def _require_qmp(self, vm_id: str, timeout: float = 3.0) -> QMPClient:
        qmp = self._qmp.get(vm_id)
        if qmp is not None and qmp.is_connected:
            return qmp
        if self._alive_pid(self.paths(vm_id)):  # the watcher connects (again): give it a moment
            self._ensure_watcher(vm_id)
            watcher = self._watchers[vm_id]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while loop.time() < deadline and not watcher.done():
                qmp = self._qmp.get(vm_id)
                if qmp is not None and qmp.is_connected:
                    return qmp
                await asyncio.sleep(0.05)
        raise InvalidStateError(f"{vm_id}: no QMP connection (not running, or held by another controller)")

    async def _wait_gone(self, paths: VMPaths, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._alive_pid(paths):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        # give the wrapper a moment to record the exit status and time
        grace = loop.time() + 1.0
        while not os.path.exists(paths.exit) and loop.time() < grace:
            await asyncio.sleep(0.02)
        return True

    # -- lifecycle -----------------------------------------------------------------------
    async def create(self, spec: VMSpec) -> VMInfo:
        spec.validate()
        paths = self.paths(spec.vm_id)
        build_command(spec, paths, self.accel, self.qemu_binary)  # validates the network options
        if len(paths.qmp.encode()) > 107:
            raise ValueError(f"state dir too long for a unix socket path: {paths.qmp}")
        async with self._lock(spec.vm_id):
            if os.path.exists(paths.spec):
                raise VMExistsError(spec.vm_id)
            os.makedirs(paths.dir, exist_ok=True)
            self._save_spec(spec)
        return self._probe(spec.vm_id)

    async def update(self, spec: VMSpec) -> VMInfo:
        spec.validate()
        async with self._lock(spec.vm_id):
            info = self._probe(spec.vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(spec.vm_id)
            if info.state.is_active or info.state == VMState.CREATING and info.pid:
                raise InvalidStateError(f"{spec.vm_id} is {info.state.value}")
            self._save_spec(spec)
        return info

    async def start(self, vm_id: str) -> VMInfo:
        async with self._lock(vm_id):
            info = self._probe(vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(vm_id)
            if info.state.is_active:
                info = await self._info(vm_id)
                if info.state == VMState.CREATING:  # a controller died between launch and cont
                    await (await self._require_qmp(vm_id)).execute("cont")
                    info = await self._info(vm_id)
                return info
            spec = self._load_spec(vm_id)
            paths = self.paths(vm_id)
            for f in [spec.root_disk, spec.kernel, spec.initrd] + [d.path for d in spec.disks]:
                if f and not os.path.exists(f):
                    raise StartError(f"{vm_id}: file not found: {f}")
            if spec.imds_socket and not spec.nics and shutil.which("socat") is None:
                raise StartError(f"{vm_id}: socat is needed for the metadata service (apt-get install socat)")
            await _check_taps(vm_id, spec)
            argv = build_command(spec, paths, self.accel, self.qemu_binary, self.tb_size_mib,
                                 self.virtio_rng)
            unlink(paths.exit, paths.stop_requested, paths.panicked, paths.shutdown_event,
                    paths.pidfile, paths.qmp)
            self._starting.add(vm_id)
            try:
                await self._launch(paths, argv)
                qmp = await self._connect_new(paths)
                try:
                    self._attach(vm_id, qmp)
                    write_text(paths.started, f"{utcnow().timestamp():.6f}")
                    await qmp.execute("cont")
                except BaseException:
                    await qmp.close()
                    raise
            except (QMPConnectionError, QMPError) as exc:
                pid = self._alive_pid(paths)
                if pid:  # e.g. cont refused: do not leave a half-started QEMU behind
                    _kill(pid, signal.SIGKILL)
                await self._wait_gone(paths, 2.0)
                raise StartError(f"{vm_id}: {self._failure_text(paths) or exc}") from None
            finally:
                self._starting.discard(vm_id)
            info = self._probe(vm_id)
            self._emit(VMEvent(vm_id, "started", info.state, info.started_at or utcnow()))
            return info

    async def _launch(self, paths: VMPaths, argv: list[str]) -> None:
        with open(paths.qemu_log, "a") as f:
            f.write(f"--- {utcnow().isoformat()} start\n")
        # sh -c '(wrapper) &' : the wrapper is orphaned at once and runs in its own session.
        outer = f"({_WRAPPER}) </dev/null >/dev/null 2>&1 &"
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", outer, "nimbo-vm", paths.dir, *argv,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True, close_fds=True)
        await proc.wait()

    async def _connect_new(self, paths: VMPaths) -> QMPClient:
        """Wait for the new QEMU's QMP socket; fail early when QEMU already exited."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            if os.path.exists(paths.exit):
                raise QMPConnectionError("QEMU exited during start-up")
            if os.path.exists(paths.qmp):
                try:
                    return await QMPClient.connect(paths.qmp, timeout=max(1.0, deadline - loop.time()))
                except QMPConnectionError:
                    if os.path.exists(paths.exit) or loop.time() >= deadline:
                        raise
            if loop.time() >= deadline:
                pid = self._alive_pid(paths)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                raise QMPConnectionError(f"no QMP socket after {self.start_timeout}s")
            await asyncio.sleep(0.02)

    def _failure_text(self, paths: VMPaths) -> str:
        lines = (read_text(paths.qemu_log) or "").splitlines()
        idx = max((i for i, line in enumerate(lines) if line.startswith("--- ")), default=-1)
        return "; ".join(line for line in lines[idx + 1:] if line.strip())[-2000:]

    async def stop(self, vm_id: str, force: bool = False, timeout: float = 60.0) -> VMInfo:
        async with self._lock(vm_id):
            return await self._stop(vm_id, force, timeout)

    async def _stop(self, vm_id: str, force: bool, timeout: float) -> VMInfo:
        paths = self.paths(vm_id)
        info = self._probe(vm_id)
        if info.state == VMState.MISSING:
            raise VMNotFoundError(vm_id)
        pid = self._alive_pid(paths)
        if not pid:
            return info
        qmp: Optional[QMPClient] = self._qmp.get(vm_id)
        if qmp is None or not qmp.is_connected:
            qmp = None
            if not force:  # the ACPI button needs QMP (a forced stop makes do with SIGTERM)
                try:
                    qmp = await self._require_qmp(vm_id)
                except InvalidStateError:  # another controller holds QMP
                    pass
        how = "forced"
        if not force and qmp is not None:
            write_text(paths.stop_requested, "graceful")
            deadline = asyncio.get_running_loop().time() + timeout
            try:
                # A press of the ACPI power button is lost on a guest that has no handler for it
                # yet (still booting): press again every few seconds until the timeout.
                while True:
                    await qmp.execute("system_powerdown", timeout=5)
                    remaining = deadline - asyncio.get_running_loop().time()
                    if await self._wait_gone(paths, max(0.0, min(POWERDOWN_REPEAT_SECONDS, remaining))):
                        return self._probe(vm_id)
                    if remaining <= POWERDOWN_REPEAT_SECONDS:
                        break
            except (QMPError, QMPConnectionError, asyncio.TimeoutError):
                pass
            how = f"forced after {timeout:g}s"
        write_text(paths.stop_requested, how)
        if qmp is not None:
            try:
                await qmp.execute("quit", timeout=2)
            except (QMPError, QMPConnectionError, asyncio.TimeoutError):
                pass
        else:
            _kill(pid, signal.SIGTERM)
        if not await self._wait_gone(paths, 5.0):
            _kill(pid, signal.SIGKILL)
            await self._wait_gone(paths, 5.0)
        return self._probe(vm_id)

    async def reboot(self, vm_id: str) -> VMInfo:
        async with self._lock(vm_id):
            info = self._probe(vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(vm_id)
            if not info.state.is_active:
                raise InvalidStateError(f"{vm_id} is {info.state.value}")
            qmp = await self._require_qmp(vm_id)
            await qmp.execute("system_reset")
            return await self._info(vm_id)

    async def destroy(self, vm_id: str) -> None:
        async with self._lock(vm_id):
            paths = self.paths(vm_id)
            if not os.path.exists(paths.dir):
                raise VMNotFoundError(vm_id)
            if self._alive_pid(paths):
                await self._stop(vm_id, True, 0)
            watcher = self._watchers.pop(vm_id, None)
            if watcher is not None:
                watcher.cancel()
            qmp = self._qmp.pop(vm_id, None)
            if qmp is not None:
                await qmp.close()
            shutil.rmtree(paths.dir, ignore_errors=True)
        self._forget(vm_id)

    # -- inspection ----------------------------------------------------------------------
    async def state(self, vm_id: str) -> VMInfo:
        return await self._info(vm_id)

    async def list(self) -> list[VMInfo]:
        return [await self._info(vm_id) for vm_id in self.vm_ids()]

    async def console_output(self, vm_id: str, max_bytes: int = 64 * 1024) -> bytes:
        paths = self.paths(vm_id)
        if not os.path.exists(paths.spec):
            raise VMNotFoundError(vm_id)
        try:
            with open(paths.console, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read()
        except FileNotFoundError:
            return b""

    async def usage(self, vm_id: str) -> dict[str, Any]:
        paths = self.paths(vm_id)
        if not os.path.exists(paths.spec):
            raise VMNotFoundError(vm_id)
        out: dict[str, Any] = {"cpu_seconds": None, "rss_bytes": None, "net_rx_bytes": None,
                               "net_tx_bytes": None, "disks": {}, "sampled_at": utcnow()}
        pid = self._alive_pid(paths)
        if not pid:
            return out
        out.update(proc_usage(pid))
        qmp = self._qmp.get(vm_id)
        if qmp is not None and qmp.is_connected:
            try:
                stats = await qmp.execute("query-blockstats", timeout=5)
            except (QMPError, QMPConnectionError, asyncio.TimeoutError):
                stats = []
            names = {node_name(d.disk_id): d.disk_id for d in self._load_spec(vm_id).disks}
            names["root"] = "root"
            for entry in stats:
                disk = names.get(entry.get("node-name") or "")
                if disk is None:
                    continue
                s = entry.get("stats", {})
                out["disks"][disk] = {"read_bytes": s.get("rd_bytes", 0), "write_bytes": s.get("wr_bytes", 0),
                                      "read_ops": s.get("rd_operations", 0), "write_ops": s.get("wr_operations", 0)}
        return out

    # -- disks ---------------------------------------------------------------------------
    async def attach_disk(self, vm_id: str, disk_id: str, path: str, *, format: str = "qcow2",
                          read_only: bool = False) -> None:
        validate_id(disk_id, "disk_id")
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if any(d.disk_id == disk_id for d in spec.disks):
                raise DiskError(f"{disk_id} is already attached to {vm_id}")
            if not os.path.exists(path):
                raise DiskError(f"{path}: not found")
            disk = DiskAttachment(disk_id, os.path.abspath(path), format, read_only)
            if self._alive_pid(self.paths(vm_id)):
                qmp = await self._require_qmp(vm_id)
                node = node_name(disk_id)
                try:
                    await qmp.execute("blockdev-add", blockdev_args(node, disk.path, format, read_only))
                except QMPError as exc:
                    raise DiskError(f"{disk_id}: {exc.desc}") from None
                try:
                    await qmp.execute("device_add", disk_device_args(disk))
                except QMPError as exc:
                    await _quiet(qmp.execute("blockdev-del", {"node-name": node}))
                    raise DiskError(f"{disk_id}: {exc.desc}") from None
            spec.disks.append(disk)
            self._save_spec(spec)

    async def detach_disk(self, vm_id: str, disk_id: str, timeout: float = 10.0) -> None:
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            disk = next((d for d in spec.disks if d.disk_id == disk_id), None)
            if disk is None:
                raise DiskError(f"{disk_id} is not attached to {vm_id}")
            if self._alive_pid(self.paths(vm_id)):
                qmp = await self._require_qmp(vm_id)
                dev = device_id(disk_id)
                deleted = qmp.expect_event("DEVICE_DELETED", lambda d: d.get("device") == dev)
                try:
                    await qmp.execute("device_del", {"id": dev})
                    await asyncio.wait_for(deleted, timeout)
                except QMPError as exc:
                    deleted.cancel()
                    if exc.error_class != "DeviceNotFound":
                        raise DiskError(f"{disk_id}: {exc.desc}") from None
                except asyncio.TimeoutError:
                    raise DiskError(f"{disk_id}: the guest did not release the disk in {timeout:g}s") from None
                try:
                    await qmp.execute("blockdev-del", {"node-name": node_name(disk_id)})
                except QMPError as exc:
                    log.warning("%s: blockdev-del %s: %s", vm_id, disk_id, exc)
            spec.disks = [d for d in spec.disks if d.disk_id != disk_id]
            self._save_spec(spec)

    # -- network interfaces --------------------------------------------------------------
    async def attach_nic(self, vm_id: str, nic: NicAttachment) -> None:
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if any(n.interface_id == nic.interface_id for n in spec.nics):
                raise InvalidStateError(f"{nic.interface_id} is already attached to {vm_id}")
            nics = spec.nics + [nic]
            tap_options(nics)
            if self._alive_pid(self.paths(vm_id)):
                # a running QEMU lives in the namespace of its first taps (or the host's)
                if not spec.nics or nics_namespace(spec.nics) != nic.netns:
                    raise InvalidStateError(f"{vm_id} runs outside {nic.netns}: stop it to attach {nic.interface_id}")
                await _check_taps(vm_id, VMSpec(vm_id=vm_id, root_disk=spec.root_disk, nics=[nic]))
                qmp = await self._require_qmp(vm_id)
                netdev_args, device_args = nic_hotplug_args(nic)
                try:
                    await qmp.execute("netdev_add", netdev_args)
                except QMPError as exc:
                    raise InvalidStateError(f"{nic.interface_id}: {exc.desc}") from None
                try:
                    await qmp.execute("device_add", device_args)
                except QMPError as exc:
                    await _quiet(qmp.execute("netdev_del", {"id": netdev_args["id"]}))
                    raise InvalidStateError(f"{nic.interface_id}: {exc.desc}") from None
            else:
                nics_namespace(nics)
            spec.nics = nics
            self._save_spec(spec)

    async def detach_nic(self, vm_id: str, interface_id: str, timeout: float = 10.0) -> None:
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if not any(n.interface_id == interface_id for n in spec.nics):
                raise InvalidStateError(f"{interface_id} is not attached to {vm_id}")
            if self._alive_pid(self.paths(vm_id)):
                qmp = await self._require_qmp(vm_id)
                netdev, device = nic_ids(interface_id)
                deleted = qmp.expect_event("DEVICE_DELETED", lambda d: d.get("device") == device)
                try:
                    await qmp.execute("device_del", {"id": device})
                    await asyncio.wait_for(deleted, timeout)
                except QMPError as exc:
                    deleted.cancel()
                    if exc.error_class != "DeviceNotFound":
                        raise InvalidStateError(f"{interface_id}: {exc.desc}") from None
                except asyncio.TimeoutError:
                    raise InvalidStateError(f"{interface_id}: the guest did not release it in {timeout:g}s") from None
                await _quiet(qmp.execute("netdev_del", {"id": netdev}))
            spec.nics = [n for n in spec.nics if n.interface_id != interface_id]
            self._save_spec(spec)
    async def _disk_node(self, vm_id: str, disk_id: str) -> str:
        if disk_id == "root":
            return "root"
        if not any(d.disk_id == disk_id for d in self._load_spec(vm_id).disks):
            raise DiskError(f"{disk_id} is not attached to {vm_id}")
        return node_name(disk_id)

    async def snapshot_disks(self, vm_id: str, names: dict[str, str]) -> bool:
        async with self._lock(vm_id):
            if not self._alive_pid(self.paths(vm_id)):
                return False
            qmp = await self._require_qmp(vm_id)
            actions = [{"type": "blockdev-snapshot-internal-sync",
                        "data": {"device": await self._disk_node(vm_id, disk_id), "name": name}}
                       for disk_id, name in names.items()]
            try:   # one QMP transaction: every disk at the same instant, or none
                await qmp.execute("transaction", {"actions": actions})
            except QMPError as exc:
                raise DiskError(f"{vm_id}: {exc.desc}") from None
            return True

    async def delete_disk_snapshots(self, vm_id: str, names: dict[str, str]) -> bool:
        async with self._lock(vm_id):
            if not self._alive_pid(self.paths(vm_id)):
                return False
            qmp = await self._require_qmp(vm_id)
            for disk_id, name in names.items():
                try:
                    await qmp.execute("blockdev-snapshot-delete-internal-sync",
                                      {"device": await self._disk_node(vm_id, disk_id), "name": name})
                except QMPError as exc:
                    if "not found" not in exc.desc.lower():
                        raise DiskError(f"{vm_id}: {exc.desc}") from None
            return True

    async def resize_disk(self, vm_id: str, disk_id: str, size_bytes: int) -> bool:
        async with self._lock(vm_id):
            if not self._alive_pid(self.paths(vm_id)):
                return False
            qmp = await self._require_qmp(vm_id)
            try:
                await qmp.execute("block_resize", {"node-name": await self._disk_node(vm_id, disk_id),
                                                   "size": int(size_bytes)})
            except QMPError as exc:
                raise DiskError(f"{vm_id}: {exc.desc}") from None
            return True

    # -- watching ------------------------------------------------------------------------
    def _attach(self, vm_id: str, qmp: QMPClient) -> None:
        """Adopt a fresh QMP connection and make sure a watcher follows the VM."""
        self._qmp[vm_id] = qmp
        paths = self.paths(vm_id)
        qmp.on_event(lambda name, data, stamp: self._on_qmp_event(vm_id, paths, name, data, stamp))
        self._ensure_watcher(vm_id)

    def _ensure_watcher(self, vm_id: str) -> None:
        task = self._watchers.get(vm_id)
        if task is None or task.done():
            self._watchers[vm_id] = asyncio.get_running_loop().create_task(self._watch_vm(vm_id))

    def _on_qmp_event(self, vm_id: str, paths: VMPaths, name: str, data: dict, stamp: dict) -> None:
        at = ts(stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6) if stamp else utcnow()
        if name == "SHUTDOWN":
            write_text(paths.shutdown_event, json.dumps({**data, "at": at.timestamp()}))
        elif name == "GUEST_PANICKED":
            write_text(paths.panicked, json.dumps(data))
        elif name == "RESET":
            self._emit(VMEvent(vm_id, "reset", VMState.RUNNING, at, data.get("reason")))
        elif name == "STOP" and vm_id not in self._starting:
            self._emit(VMEvent(vm_id, "paused", VMState.PAUSED, at))
        elif name == "RESUME" and vm_id not in self._starting:
            self._emit(VMEvent(vm_id, "resumed", VMState.RUNNING, at))

    async def _watch_vm(self, vm_id: str) -> None:
        """Follow one live VM until its QEMU is gone, then emit the final event."""
        paths = self.paths(vm_id)
        try:
            while self._alive_pid(paths):
                qmp = self._qmp.get(vm_id)
                if qmp is None or not qmp.is_connected:
                    try:
                        qmp = await QMPClient.connect(paths.qmp, timeout=2.0)
                        self._attach(vm_id, qmp)
                    except QMPConnectionError:
                        qmp = None
                if qmp is not None:
                    await qmp.closed.wait()
                    self._qmp.pop(vm_id, None)
                else:  # another controller holds QMP: poll the pid, retry later
                    for _ in range(50):
                        if not self._alive_pid(paths):
                            break
                        await asyncio.sleep(0.1)
            await self._wait_gone(paths, 2.0)
            info = self._probe(vm_id)
            if info.state not in (VMState.MISSING, VMState.RUNNING, VMState.CREATING):
                self._emit(VMEvent(vm_id, info.state.value, info.state, info.stopped_at or utcnow(),
                                   info.exit_reason))
        finally:
            if self._watchers.get(vm_id) is asyncio.current_task():
                self._watchers.pop(vm_id, None)
            qmp = self._qmp.pop(vm_id, None)
            if qmp is not None:
                await qmp.close()

    async def close(self) -> None:
        tasks = list(self._watchers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for qmp in list(self._qmp.values()):
            await qmp.close()
        self._qmp.clear()
        self._watchers.clear()


async def _check_taps(vm_id: str, spec: VMSpec) -> None:
    """QEMU would create a missing tap itself (unbridged, silently offline): refuse instead."""
    for nic in spec.nics:
        argv = ["ip"] + (["-n", nic.netns] if nic.netns else []) + ["link", "show", "dev", nic.tap]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            where = f" in network namespace {nic.netns}" if nic.netns else ""
            raise StartError(f"{vm_id}: tap {nic.tap} of {nic.interface_id} not found{where}: "
                             f"{err.decode(errors='replace').strip()}")


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


async def _quiet(coro) -> None:
    try:
        await coro
    except Exception:
        pass
