"""The libvirt driver: the ``Driver`` verbs on one libvirt host (``qemu:///system``,
``qemu+ssh://host/system``, ``qemu+tcp://...``, ``lxc:///``, ``test:///default``).

A VM is a persistent libvirt domain named by its vm id, with the SMBIOS uuid as domain uuid;
its XML is generated from the spec (``domain_xml``) and defined again at every start, so the
stored spec is the one truth. Nimbo keeps per VM, in ``<state_dir>/<vm_id>/``: ``spec.json``,
``console.log`` (the serial console, when the host is this machine), ``started`` (epoch),
``stop-requested`` (this driver's stop), ``exit.json`` (when and how the domain went off, written
by the event handler or by the first look that found it off), ``nics.json`` (UDP ports of the
tap relays, ``tap_relay``).

States: running/paused from libvirt; off is classified as the QEMU driver does: ``stopped`` after
this driver's stop, ``crashed`` (guest panic, QEMU failed), else ``shutdown`` (guest power-off,
or the domain was destroyed behind our back). Never started: ``creating``.

Re-adoption: VMs outlive Nimbo (libvirt keeps them); ``list()`` looks every VM of the state dir
up by name, checks the uuid, and starts the tap relays of the running ones again.

Crash story: the spec is written before the domain is defined; a crash between the two leaves
a spec without a domain, which ``start()`` defines. ``destroy()`` undefines the domain before it
removes the folder; a crash between leaves a folder that ``destroy()`` removes next time.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from typing import Any, Optional

from backend.driver import (DiskAttachment, DiskError, DriverError, InvalidStateError, NicAttachment,
                            StartError, VMEvent, VMExistsError, VMInfo, VMNotFoundError, VMSpec, VMState,
                            utcnow, validate_id)
from backend.qemu_state import read_text, unlink, write_text
from backend.state_dir import StateDirDriver

from . import containers, domain_xml
from .connection import Connection
from .tap_relay import TapRelay, free_udp_port

log = logging.getLogger(__name__)
POWERDOWN_REPEAT_SECONDS = 3.0


def _ts(epoch: Optional[float]) -> Optional[datetime]:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


class LibvirtDriver(StateDirDriver):
    def __init__(self, state_dir: str, uri: str = "qemu:///system", *, flavour: str = "auto",
                 local: Optional[bool] = None, run_as_root: bool = True) -> None:
        super().__init__(state_dir)
        self.uri = uri
        self.local = _is_local(uri) if local is None else local
        self.flavour = _choose_flavour(uri, self.local) if flavour == "auto" else flavour
        self.run_as_root = run_as_root
        self.conn = Connection(uri)
        lv = self.conn.libvirt
        self.lv = lv
        self.conn.subscribe(lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle)
        self.conn.subscribe(lv.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._relays: dict[str, dict[str, TapRelay]] = {}
        self._starting: set[str] = set()
        log.info("libvirt host %s: %s domains", uri, self.flavour)

    # -- files -----------------------------------------------------------------------------
    def _nic_ports(self, vm_id: str) -> dict[str, list[int]]:
        return json.loads(read_text(self.vm_file(vm_id, "nics.json")) or "{}")

    def _host_options(self, spec: VMSpec) -> domain_xml.HostOptions:
        ports = self._nic_ports(spec.vm_id)
        udp = [domain_xml.UdpNic(n.interface_id, n.mac, *ports[n.interface_id]) for n in spec.nics
               if n.interface_id in ports]
        return domain_xml.HostOptions(
            flavour=self.flavour, console_path=self.vm_file(spec.vm_id, "console.log"),
            run_as_root=self.run_as_root and self.local, udp_nics=udp, user_network=not spec.nics)

    def domain_xml(self, spec: VMSpec) -> str:
        if self.flavour == "lxc":
            return domain_xml.to_string(containers.build_container(spec, self.vm_file(spec.vm_id, "rootfs")))
        return domain_xml.to_string(domain_xml.build_domain(spec, self._host_options(spec)))

    def _prepare_rootfs(self, spec: VMSpec) -> None:
        """A container's root filesystem, unpacked once from the image's initramfs (a crash halfway
        leaves ``rootfs.tmp``, removed and redone at the next start)."""
        rootfs = self.vm_file(spec.vm_id, "rootfs")
        if os.path.isdir(rootfs):
            return
        if not spec.initrd or not os.path.exists(spec.initrd):
            raise StartError(f"{spec.vm_id}: the image has no initramfs userland a container can boot from")
        tmp = rootfs + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            containers.unpack_newc(spec.initrd, tmp)
        except (OSError, ValueError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StartError(f"{spec.vm_id}: {exc}") from None
        os.rename(tmp, rootfs)

    # -- libvirt helpers -------------------------------------------------------------------
    def _lookup(self, conn: Any, vm_id: str) -> Any:
        try:
            return conn.lookupByName(vm_id)
        except self.lv.libvirtError as exc:
            if exc.get_error_code() == self.lv.VIR_ERR_NO_DOMAIN:
                return None
            raise

    async def _call(self, fn) -> Any:
        try:
            return await self.conn.call(fn)
        except self.lv.libvirtError as exc:
            raise DriverError(f"{self.uri}: {exc.get_error_message()}") from None

    def _probe_sync(self, conn: Any, vm_id: str) -> VMInfo:
        """State from libvirt and the VM's files (runs in a worker thread)."""
        if not os.path.exists(self.vm_file(vm_id, "spec.json")):
            return VMInfo(vm_id, VMState.MISSING)
        started = read_text(self.vm_file(vm_id, "started"))
        started_at = _ts(float(started)) if started else None
        if vm_id in self._starting:
            return VMInfo(vm_id, VMState.CREATING, None, started_at)
        dom = self._lookup(conn, vm_id)
        lv = self.lv
        if dom is not None:
            state, reason = dom.state()
            if state in (lv.VIR_DOMAIN_RUNNING, lv.VIR_DOMAIN_BLOCKED):
                return VMInfo(vm_id, VMState.RUNNING, _pid(dom), started_at)
            if state in (lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PMSUSPENDED):
                creating = state == lv.VIR_DOMAIN_PAUSED and reason == lv.VIR_DOMAIN_PAUSED_STARTING_UP
                return VMInfo(vm_id, VMState.CREATING if creating else VMState.PAUSED, _pid(dom), started_at)
            if state == lv.VIR_DOMAIN_SHUTDOWN:   # the guest is shutting down: still running
                return VMInfo(vm_id, VMState.RUNNING, _pid(dom), started_at)
            off_reason = reason if state == lv.VIR_DOMAIN_SHUTOFF else lv.VIR_DOMAIN_SHUTOFF_CRASHED
        else:
            off_reason = None
        if started is None:
            return VMInfo(vm_id, VMState.CREATING)
        exit_info = json.loads(read_text(self.vm_file(vm_id, "exit.json")) or "null")
        if exit_info is None:   # first look since it went off while nobody watched
            exit_info = {"at": self._unobserved_exit_time(vm_id), "detail": off_reason}
            write_text(self.vm_file(vm_id, "exit.json"), json.dumps(exit_info))
        state, why = self._classify(vm_id, exit_info.get("detail"), dom is None)
        return VMInfo(vm_id, state, None, started_at, _ts(exit_info.get("at")), why,
                      None if state == VMState.STOPPED else (1 if state == VMState.CRASHED else 0))

    def _unobserved_exit_time(self, vm_id: str) -> float:
        try:
            return os.stat(self.vm_file(vm_id, "console.log")).st_mtime
        except FileNotFoundError:
            return utcnow().timestamp()

    def _classify(self, vm_id: str, detail: Optional[int], undefined: bool) -> tuple[VMState, str]:
        """detail: a VIR_DOMAIN_SHUTOFF_* reason (== VIR_DOMAIN_EVENT_STOPPED_* codes differ; the
        event handler stores the shutoff reason, see ``_STOPPED_TO_SHUTOFF``)."""
        lv = self.lv
        stop = read_text(self.vm_file(vm_id, "stop-requested"))
        if detail in (lv.VIR_DOMAIN_SHUTOFF_CRASHED,):
            return VMState.CRASHED, "guest kernel panicked"
        if detail == lv.VIR_DOMAIN_SHUTOFF_FAILED:
            return VMState.CRASHED, "hypervisor failed"
        if stop is not None:
            return VMState.STOPPED, f"stopped by host ({stop.strip() or 'requested'})"
        if undefined:
            return VMState.SHUTDOWN, "domain no longer defined on the host"
        if detail == lv.VIR_DOMAIN_SHUTOFF_SHUTDOWN:
            return VMState.SHUTDOWN, "guest powered off"
        if detail == lv.VIR_DOMAIN_SHUTOFF_DESTROYED:
            return VMState.SHUTDOWN, "hypervisor terminated"
        return VMState.SHUTDOWN, "hypervisor exited"

    # -- events (libvirt's event thread -> the asyncio loop) -------------------------------
    def _on_lifecycle(self, dom: Any, event: int, detail: int) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        name = dom.name()
        loop.call_soon_threadsafe(self._handle_lifecycle, name, event, detail, utcnow())

    def _on_reboot(self, dom: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            name = dom.name()
            loop.call_soon_threadsafe(self._emit_if_ours, VMEvent(name, "reset", VMState.RUNNING, utcnow()))

    def _emit_if_ours(self, event: VMEvent) -> None:
        try:
            if os.path.exists(self.vm_file(event.vm_id, "spec.json")):
                self._emit(event)
        except ValueError:
            pass

    def _handle_lifecycle(self, vm_id: str, event: int, detail: int, at: datetime) -> None:
        lv = self.lv
        try:
            if not os.path.exists(self.vm_file(vm_id, "spec.json")) or vm_id in self._starting:
                return
        except ValueError:   # not one of our names
            return
        if event == lv.VIR_DOMAIN_EVENT_STOPPED:
            shutoff = _STOPPED_TO_SHUTOFF.get(detail, lv.VIR_DOMAIN_SHUTOFF_UNKNOWN)
            if read_text(self.vm_file(vm_id, "exit.json")) is None:
                write_text(self.vm_file(vm_id, "exit.json"), json.dumps({"at": at.timestamp(), "detail": shutoff}))
            self._stop_relays(vm_id)
            state, why = self._classify(vm_id, shutoff, False)
            self._emit(VMEvent(vm_id, state.value, state, at, why))
        elif event == lv.VIR_DOMAIN_EVENT_CRASHED:
            self._emit(VMEvent(vm_id, "crashed", VMState.CRASHED, at, "guest kernel panicked"))
        elif event == lv.VIR_DOMAIN_EVENT_SUSPENDED:
            self._emit(VMEvent(vm_id, "paused", VMState.PAUSED, at))
        elif event == lv.VIR_DOMAIN_EVENT_RESUMED:
            self._emit(VMEvent(vm_id, "resumed", VMState.RUNNING, at))

    # -- tap relays ------------------------------------------------------------------------
    def _start_relays(self, spec: VMSpec) -> None:
        if not spec.nics:
            return
        ports = self._nic_ports(spec.vm_id)
        relays = self._relays.setdefault(spec.vm_id, {})
        for nic in spec.nics:
            if nic.interface_id in relays or nic.interface_id not in ports:
                continue
            qemu_port, relay_port = ports[nic.interface_id]
            relay = TapRelay(nic.tap, nic.netns, relay_port, qemu_port)
            relay.start()
            relays[nic.interface_id] = relay

    def _stop_relays(self, vm_id: str, interface_id: Optional[str] = None) -> None:
        relays = self._relays.get(vm_id, {})
        for iid in [interface_id] if interface_id else list(relays):
            relay = relays.pop(iid, None)
            if relay is not None:
                relay.close()
        if not relays:
            self._relays.pop(vm_id, None)

    def _assign_ports(self, spec: VMSpec) -> None:
        ports = self._nic_ports(spec.vm_id)
        wanted = {n.interface_id for n in spec.nics}
        ports = {k: v for k, v in ports.items() if k in wanted}
        for nic in spec.nics:
            if nic.interface_id not in ports:
                ports[nic.interface_id] = [free_udp_port(), free_udp_port()]
        write_text(self.vm_file(spec.vm_id, "nics.json"), json.dumps(ports))

    # -- lifecycle -------------------------------------------------------------------------
    async def create(self, spec: VMSpec) -> VMInfo:
        self._loop = asyncio.get_running_loop()
        spec.validate()
        _check_nics(spec)
        self.domain_xml(spec)   # validates what the XML needs
        async with self._lock(spec.vm_id):
            if os.path.exists(self.vm_file(spec.vm_id, "spec.json")):
                raise VMExistsError(spec.vm_id)
            os.makedirs(self.vm_dir(spec.vm_id), exist_ok=True)
            self._save_spec(spec)
        return await self.state(spec.vm_id)

    async def update(self, spec: VMSpec) -> VMInfo:
        spec.validate()
        _check_nics(spec)
        async with self._lock(spec.vm_id):
            info = await self.state(spec.vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(spec.vm_id)
            if info.state.is_active:
                raise InvalidStateError(f"{spec.vm_id} is {info.state.value}")
            self._save_spec(spec)
        return info

    async def start(self, vm_id: str) -> VMInfo:
        self._loop = asyncio.get_running_loop()
        async with self._lock(vm_id):
            info = await self.state(vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(vm_id)
            if info.state.is_active:
                return info
            spec = self._load_spec(vm_id)
            if self.local:
                for f in [spec.root_disk, spec.kernel, spec.initrd] + [d.path for d in spec.disks]:
                    if f and not os.path.exists(f):
                        raise StartError(f"{vm_id}: file not found: {f}")
            if self.flavour == "lxc":   # no VPC interfaces in a container yet: loopback only
                spec = VMSpec.from_dict({**spec.to_dict(), "nics": []})
                await asyncio.to_thread(self._prepare_rootfs, spec)
            if spec.nics and not self.local:
                raise StartError(f"{vm_id}: Nimbo's VPC taps are on this machine, not on {self.uri}")
            self._assign_ports(spec)
            xml = self.domain_xml(spec)
            unlink(*(self.vm_file(vm_id, n) for n in ("exit.json", "stop-requested")))
            self._starting.add(vm_id)
            try:
                self._stop_relays(vm_id)
                self._start_relays(spec)
                write_text(self.vm_file(vm_id, "started"), f"{utcnow().timestamp():.6f}")
                await self.conn.call(lambda c: c.defineXML(xml).create())
            except (self.lv.libvirtError, DriverError, OSError) as exc:
                self._stop_relays(vm_id)
                unlink(self.vm_file(vm_id, "started"))
                msg = exc.get_error_message() if isinstance(exc, self.lv.libvirtError) else str(exc)
                raise StartError(f"{vm_id}: {msg}") from None
            finally:
                self._starting.discard(vm_id)
            info = await self.state(vm_id)
            self._emit(VMEvent(vm_id, "started", info.state, info.started_at or utcnow()))
            return info

    async def stop(self, vm_id: str, force: bool = False, timeout: float = 60.0) -> VMInfo:
        async with self._lock(vm_id):
            info = await self.state(vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(vm_id)
            if not info.state.is_active and info.state != VMState.CREATING:
                return info
            how = "forced"
            lv = self.lv
            if not force:
                write_text(self.vm_file(vm_id, "stop-requested"), "graceful")
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while True:   # a guest still booting loses the first press: press again
                    try:
                        await self.conn.call(lambda c: _power_button(lv, self._lookup(c, vm_id)))
                    except (lv.libvirtError, AttributeError):
                        pass
                    remaining = deadline - loop.time()
                    if await self._wait_off(vm_id, max(0.0, min(POWERDOWN_REPEAT_SECONDS, remaining))):
                        self._stop_relays(vm_id)
                        return await self.state(vm_id)
                    if remaining <= POWERDOWN_REPEAT_SECONDS:
                        break
                how = f"forced after {timeout:g}s"
            write_text(self.vm_file(vm_id, "stop-requested"), how)
            await self._destroy_domain(vm_id)
            await self._wait_off(vm_id, 5.0)
            self._stop_relays(vm_id)
            return await self.state(vm_id)

    async def _destroy_domain(self, vm_id: str) -> None:
        def work(conn: Any) -> None:
            dom = self._lookup(conn, vm_id)
            if dom is not None and dom.isActive():
                dom.destroy()
        try:
            await self.conn.call(work)
        except self.lv.libvirtError as exc:
            if exc.get_error_code() != self.lv.VIR_ERR_OPERATION_INVALID:   # already off
                raise DriverError(f"{vm_id}: {exc.get_error_message()}") from None

    async def _wait_off(self, vm_id: str, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            active = await self._call(lambda c: bool((d := self._lookup(c, vm_id)) and d.isActive()))
            if not active:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.1)

    async def reboot(self, vm_id: str) -> VMInfo:
        async with self._lock(vm_id):
            info = await self.state(vm_id)
            if info.state == VMState.MISSING:
                raise VMNotFoundError(vm_id)
            if not info.state.is_active:
                raise InvalidStateError(f"{vm_id} is {info.state.value}")
            await self._call(lambda c: self._lookup(c, vm_id).reset(0))
            return await self.state(vm_id)

    async def destroy(self, vm_id: str) -> None:
        async with self._lock(vm_id):
            if not os.path.isdir(self.vm_dir(vm_id)):
                raise VMNotFoundError(vm_id)
            await self._destroy_domain(vm_id)
            self._stop_relays(vm_id)

            def undefine(conn: Any) -> None:
                dom = self._lookup(conn, vm_id)
                if dom is not None:
                    dom.undefine()
            await self._call(undefine)
            shutil.rmtree(self.vm_dir(vm_id), ignore_errors=True)
        self._forget(vm_id)

    # -- inspection ------------------------------------------------------------------------
    async def state(self, vm_id: str) -> VMInfo:
        self.vm_dir(vm_id)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return await self._call(lambda c: self._probe_sync(c, vm_id))

    async def list(self) -> list[VMInfo]:
        self._loop = asyncio.get_running_loop()
        out = []
        for name in self.vm_ids():
            info = await self.state(name)
            if info.state.is_active:
                spec = self._load_spec(name)
                if not await self._same_domain(spec):
                    log.warning("%s on %s has another uuid than Nimbo's VM: not adopted", name, self.uri)
                    continue
                try:
                    self._start_relays(spec)   # re-adoption: the guest's network again
                except OSError as exc:
                    log.warning("%s: tap relay: %s", name, exc)
            out.append(info)
        return out

    async def _same_domain(self, spec: VMSpec) -> bool:
        want = domain_xml.domain_uuid(spec)
        got = await self._call(lambda c: (d := self._lookup(c, spec.vm_id)) and d.UUIDString())
        return got == want

    async def console_output(self, vm_id: str, max_bytes: int = 64 * 1024) -> bytes:
        if not os.path.exists(self.vm_file(vm_id, "spec.json")):
            raise VMNotFoundError(vm_id)
        name = os.path.join("rootfs", containers.CONSOLE_FILE) if self.flavour == "lxc" else "console.log"
        try:
            with open(self.vm_file(vm_id, name), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read()
        except FileNotFoundError:   # a remote host keeps the file on its own disk
            return b""

    async def usage(self, vm_id: str) -> dict[str, Any]:
        spec = self._load_spec(vm_id)
        out: dict[str, Any] = {"cpu_seconds": None, "rss_bytes": None, "net_rx_bytes": None,
                               "net_tx_bytes": None, "disks": {}, "sampled_at": utcnow()}

        def work(conn: Any) -> None:
            dom = self._lookup(conn, vm_id)
            if dom is None or not dom.isActive():
                return
            out["cpu_seconds"] = dom.getCPUStats(True)[0].get("cpu_time", 0) / 1e9
            out["rss_bytes"] = dom.memoryStats().get("rss", 0) * 1024 or None
            targets = _disk_targets(dom.XMLDesc(0))
            for disk_id, target in targets.items():
                rd_req, rd_bytes, wr_req, wr_bytes, _ = dom.blockStats(target)
                out["disks"][disk_id] = {"read_bytes": rd_bytes, "write_bytes": wr_bytes,
                                         "read_ops": rd_req, "write_ops": wr_req}
        try:
            await self.conn.call(work)
        except self.lv.libvirtError:
            pass
        if spec.root_disk_serial and spec.root_disk_serial in out["disks"]:
            out["disks"]["root"] = out["disks"].pop(spec.root_disk_serial)
        return out

    # -- disks -----------------------------------------------------------------------------
    async def attach_disk(self, vm_id: str, disk_id: str, path: str, *, format: str = "qcow2",
                          read_only: bool = False) -> None:
        validate_id(disk_id, "disk_id")
        if self.flavour == "lxc":
            raise DiskError(f"{vm_id} is a container: it has no block devices to attach {disk_id} to")
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if any(d.disk_id == disk_id for d in spec.disks):
                raise DiskError(f"{disk_id} is already attached to {vm_id}")
            if self.local and not os.path.exists(path):
                raise DiskError(f"{path}: not found")
            disk = DiskAttachment(disk_id, os.path.abspath(path), format, read_only)
            flavour = domain_xml.FLAVOURS[self.flavour]

            def work(conn: Any) -> None:
                dom = self._lookup(conn, vm_id)
                if dom is None or not dom.isActive():
                    return
                used = set(_disk_targets(dom.XMLDesc(0)).values()) | _all_targets(dom.XMLDesc(0))
                target = next(t for t in (domain_xml.disk_target(i, flavour) for i in range(1, 200))
                              if t not in used)
                el = domain_xml.disk_element(disk, target, flavour)
                ET.SubElement(el, "alias", {"name": domain_xml.disk_alias(disk_id)})
                dom.attachDeviceFlags(ET.tostring(el, encoding="unicode"), self.lv.VIR_DOMAIN_AFFECT_LIVE)
            try:
                await self.conn.call(work)
            except self.lv.libvirtError as exc:
                raise DiskError(f"{disk_id}: {exc.get_error_message()}") from None
            spec.disks.append(disk)
            self._save_spec(spec)

    async def detach_disk(self, vm_id: str, disk_id: str, timeout: float = 10.0) -> None:
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if not any(d.disk_id == disk_id for d in spec.disks):
                raise DiskError(f"{disk_id} is not attached to {vm_id}")
            alias = domain_xml.disk_alias(disk_id)
            await self._detach_device(vm_id, "disk", alias, timeout, DiskError)
            spec.disks = [d for d in spec.disks if d.disk_id != disk_id]
            self._save_spec(spec)

    async def _detach_device(self, vm_id: str, kind: str, alias: str, timeout: float, error: type) -> None:
        """Unplug the live device whose alias is ``alias`` and wait until the guest let it go."""
        def find(conn: Any) -> Optional[str]:
            dom = self._lookup(conn, vm_id)
            if dom is None or not dom.isActive():
                return None
            for el in ET.fromstring(dom.XMLDesc(0)).find("devices").findall(kind):
                a = el.find("alias")
                if a is not None and a.get("name") == alias:
                    return ET.tostring(el, encoding="unicode")
            return None
        xml = await self._call(find)
        if xml is None:
            return
        try:
            await self.conn.call(lambda c: self._lookup(c, vm_id).detachDeviceFlags(
                xml, self.lv.VIR_DOMAIN_AFFECT_LIVE))
        except self.lv.libvirtError as exc:
            raise error(f"{vm_id}: {exc.get_error_message()}") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self._call(find) is not None:
            if loop.time() >= deadline:
                raise error(f"{vm_id}: the guest did not release the device in {timeout:g}s")
            await asyncio.sleep(0.1)

    # -- network interfaces ----------------------------------------------------------------
    async def attach_nic(self, vm_id: str, nic: NicAttachment) -> None:
        if self.flavour == "lxc" and (await self.state(vm_id)).state.is_active:
            raise InvalidStateError(f"{vm_id} is a container: its interfaces are not hot-plugged")
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if any(n.interface_id == nic.interface_id for n in spec.nics):
                raise InvalidStateError(f"{nic.interface_id} is already attached to {vm_id}")
            candidate = VMSpec.from_dict({**spec.to_dict(), "nics": []})
            candidate.nics = spec.nics + [nic]
            _check_nics(candidate)
            info = await self.state(vm_id)
            if info.state.is_active:
                if not spec.nics:
                    raise InvalidStateError(f"{vm_id} runs on user-mode networking: stop it to attach "
                                            f"{nic.interface_id}")
                self._assign_ports(candidate)
                qemu_port, relay_port = self._nic_ports(vm_id)[nic.interface_id]
                el = domain_xml.udp_nic_element(domain_xml.UdpNic(nic.interface_id, nic.mac, qemu_port,
                                                                  relay_port), len(candidate.nics) - 1)
                try:
                    self._start_relays(candidate)
                    await self.conn.call(lambda c: self._lookup(c, vm_id).attachDeviceFlags(
                        ET.tostring(el, encoding="unicode"), self.lv.VIR_DOMAIN_AFFECT_LIVE))
                except (self.lv.libvirtError, OSError) as exc:
                    self._stop_relays(vm_id, nic.interface_id)
                    msg = exc.get_error_message() if isinstance(exc, self.lv.libvirtError) else str(exc)
                    raise InvalidStateError(f"{nic.interface_id}: {msg}") from None
            spec.nics = candidate.nics
            self._save_spec(spec)

    async def detach_nic(self, vm_id: str, interface_id: str, timeout: float = 10.0) -> None:
        async with self._lock(vm_id):
            spec = self._load_spec(vm_id)
            if not any(n.interface_id == interface_id for n in spec.nics):
                raise InvalidStateError(f"{interface_id} is not attached to {vm_id}")
            await self._detach_device(vm_id, "interface", domain_xml.nic_alias(interface_id), timeout,
                                      InvalidStateError)
            self._stop_relays(vm_id, interface_id)
            spec.nics = [n for n in spec.nics if n.interface_id != interface_id]
            self._save_spec(spec)

    async def close(self) -> None:
        for vm_id in list(self._relays):
            self._stop_relays(vm_id)
        await asyncio.to_thread(self.conn.close)


def _check_nics(spec: VMSpec) -> None:
    if spec.nics:
        from backend.qemu_cmdline import nics_namespace, tap_options   # noqa: PLC0415
        tap_options(spec.nics)
        nics_namespace(spec.nics)


def _power_button(lv: Any, dom: Any) -> None:
    """The ACPI power button; hosts that cannot choose the method get libvirt's default."""
    try:
        dom.shutdownFlags(lv.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    except lv.libvirtError as exc:
        if exc.get_error_code() not in (lv.VIR_ERR_INVALID_ARG, lv.VIR_ERR_NO_SUPPORT, lv.VIR_ERR_ARGUMENT_UNSUPPORTED):
            raise
        dom.shutdown()


def _pid(dom: Any) -> Optional[int]:
    return None   # libvirt does not expose the QEMU pid through its public API


def _disk_targets(xml: str) -> dict[str, str]:
    """{serial: target dev} of a domain's disks."""
    out = {}
    for el in ET.fromstring(xml).find("devices").findall("disk"):
        serial, target = el.findtext("serial"), el.find("target")
        if serial and target is not None:
            out[serial] = target.get("dev")
    return out


def _all_targets(xml: str) -> set[str]:
    return {t.get("dev") for t in ET.fromstring(xml).iter("target") if t.get("dev")}


def _is_local(uri: str) -> bool:
    from urllib.parse import urlsplit   # noqa: PLC0415
    parts = urlsplit(uri)
    return not parts.hostname and "+" not in parts.scheme or parts.hostname in ("localhost", "127.0.0.1")


def _choose_flavour(uri: str, local: bool) -> str:
    scheme = uri.split(":", 1)[0].split("+", 1)[0]
    if scheme == "lxc":
        return "lxc"
    if scheme in ("qemu", "test"):
        if local:
            from backend.qemu_cmdline import detect_accel   # noqa: PLC0415
            return "kvm" if detect_accel() == "kvm" else "qemu"
        return "kvm"   # a remote host: assume hardware virtualisation (override with flavour=)
    return {"xen": "xen", "esx": "vmware", "vpx": "vmware", "vbox": "vbox", "hyperv": "hyperv"}.get(scheme, "qemu")


_STOPPED_TO_SHUTOFF: dict[int, int] = {}


def _init_codes() -> None:
    try:
        import libvirt as lv   # noqa: PLC0415
    except ImportError:
        return
    _STOPPED_TO_SHUTOFF.update({
        lv.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: lv.VIR_DOMAIN_SHUTOFF_SHUTDOWN,
        lv.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: lv.VIR_DOMAIN_SHUTOFF_DESTROYED,
        lv.VIR_DOMAIN_EVENT_STOPPED_CRASHED: lv.VIR_DOMAIN_SHUTOFF_CRASHED,
        lv.VIR_DOMAIN_EVENT_STOPPED_FAILED: lv.VIR_DOMAIN_SHUTOFF_FAILED,
        lv.VIR_DOMAIN_EVENT_STOPPED_SAVED: lv.VIR_DOMAIN_SHUTOFF_SAVED,
        lv.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: lv.VIR_DOMAIN_SHUTOFF_MIGRATED,
        lv.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: lv.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT,
    })


_init_codes()
