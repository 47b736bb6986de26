"""The hypervisor driver interface: a few async verbs over the driver's own dataclasses.

A driver only knows virtual machines. EC2 semantics (instance states, reservations, instance
types) live in ``ec2_api``; this module knows nothing of HTTP or AWS wire formats.

States a driver reports (``VMState``):

- ``creating``: defined by ``create()`` but never started, or QEMU is being launched.
- ``running``:  the hypervisor process is alive and the guest CPUs run.
- ``paused``:   the process is alive but the guest is stopped (QMP ``stop``, an I/O error ...).
- ``shutdown``: the guest powered itself off, or the process went away without being asked to
                (killed, host reboot). ``VMInfo.stopped_at`` says when.
- ``stopped``:  the process exited because this driver was asked to ``stop()`` it.
- ``crashed``:  the guest kernel panicked or the hypervisor process failed.
- ``missing``:  the driver has no VM of that id.

A VM in any of shutdown/stopped/crashed can be started again.
"""
from __future__ import annotations

import abc
import asyncio
import enum
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Union

__all__ = [
    "VMState", "HostForward", "UserNetOptions", "DiskAttachment", "NicAttachment", "VMSpec", "VMInfo", "VMEvent",
    "Driver", "DriverError", "VMNotFoundError", "VMExistsError", "InvalidStateError",
    "StartError", "DiskError", "utcnow", "validate_id",
]

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def validate_id(value: str, what: str = "vm_id") -> str:
    """Ids become folder names, QEMU node names and device ids: keep them plain."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 of [A-Za-z0-9._-]")
    return value


class DriverError(Exception):
    """Base of every error a driver raises."""


class VMNotFoundError(DriverError):
    pass


class VMExistsError(DriverError):
    pass


class InvalidStateError(DriverError):
    pass


class StartError(DriverError):
    """The hypervisor refused to start the VM; the message carries its own words."""


class DiskError(DriverError):
    pass


class VMState(str, enum.Enum):
    CREATING = "creating"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    STOPPED = "stopped"
    CRASHED = "crashed"
    MISSING = "missing"

    @property
    def is_active(self) -> bool:
        """True while a hypervisor process exists for the VM."""
        return self in (VMState.RUNNING, VMState.PAUSED)


@dataclass
class HostForward:
    """A host port forwarded into the guest (user-mode networking ``hostfwd``)."""
    host_port: int
    guest_port: int
    protocol: str = "tcp"
    host_addr: str = "127.0.0.1"


@dataclass
class UserNetOptions:
    """User-mode (slirp) networking.

    ``net`` must contain 169.254.169.254 so that the metadata address can be forwarded; the
    gateway is ``net``'s .2, DNS its .3 and the guest gets .15 by DHCP unless overridden.
    ``restrict=False`` (default) lets the guest open outbound connections through the host's
    NAT, like an EC2 instance with internet access. Note that slirp maps the gateway address
    to the host's loopback, so a guest can reach services listening on the host's 127.0.0.1;
    set ``restrict=True`` to isolate the guest (only the metadata service and ``host_forwards``
    then work).
    """
    net: str = "169.254.169.0/24"
    restrict: bool = False
    host: Optional[str] = None
    dns: Optional[str] = None
    dhcpstart: Optional[str] = None
    hostname: Optional[str] = None
    host_forwards: list[HostForward] = field(default_factory=list)


@dataclass
class DiskAttachment:
    """A data volume; ``disk_id`` becomes the virtio serial the guest sees (max 20 bytes are
    visible to the guest, so pass e.g. ``vol0123456789abcdef0`` like Nitro does)."""
    disk_id: str
    path: str
    format: str = "qcow2"
    read_only: bool = False


@dataclass
class NicAttachment:
    """A network interface on a tap device: QEMU opens ``tap`` inside the network namespace
    ``netns`` (None: the caller's) and gives the guest ``mac``."""
    interface_id: str
    mac: str
    tap: str
    netns: Optional[str] = None


@dataclass
class VMSpec:
    vm_id: str
    root_disk: str
    vcpus: int = 1
    memory_mib: int = 256
    root_disk_format: str = "qcow2"
    root_disk_serial: Optional[str] = None   # e.g. the root volume id (<= 20 bytes visible)
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    cmdline: Optional[str] = None
    smbios_uuid: Optional[str] = None
    mac: Optional[str] = None
    imds_socket: Optional[str] = None
    user_net: UserNetOptions = field(default_factory=UserNetOptions)
    disks: list[DiskAttachment] = field(default_factory=list)
    # tap networking (backend.network): when set, these replace user_net; the first is eth0
    nics: list[NicAttachment] = field(default_factory=list)
    # the compute host chosen by placement (libvirt clusters; None: the one host there is)
    host_id: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VMSpec":
        data = dict(data)
        net = dict(data.pop("user_net", None) or {})
        net["host_forwards"] = [HostForward(**f) for f in net.get("host_forwards", [])]
        disks = [DiskAttachment(**d) for d in data.pop("disks", None) or []]
        nics = [NicAttachment(**n) for n in data.pop("nics", None) or []]
        return cls(user_net=UserNetOptions(**net), disks=disks, nics=nics, **data)

    def validate(self) -> None:
        validate_id(self.vm_id)
        if not 1 <= int(self.vcpus) <= 255:
            raise ValueError("vcpus must be 1..255")
        if int(self.memory_mib) < 32:
            raise ValueError("memory_mib must be at least 32")
        if not self.root_disk:
            raise ValueError("root_disk is required")
        if self.initrd and not self.kernel:
            raise ValueError("initrd needs a kernel")
        seen = set()
        for disk in self.disks:
            validate_id(disk.disk_id, "disk_id")
            if disk.disk_id in seen or disk.disk_id == "root":
                raise ValueError(f"duplicate disk_id {disk.disk_id!r}")
            seen.add(disk.disk_id)


@dataclass
class VMInfo:
    vm_id: str
    state: VMState
    pid: Optional[int] = None
    started_at: Optional[datetime] = None
    stopped_at: Optional[datetime] = None
    exit_reason: Optional[str] = None
    exit_code: Optional[int] = None


@dataclass
class VMEvent:
    """Something happened to a VM without (or besides) being asked through a verb.

    ``kind`` is one of: started, stopped, shutdown, crashed, reset, paused, resumed.
    """
    vm_id: str
    kind: str
    state: VMState
    at: datetime
    reason: Optional[str] = None


Listener = Callable[[VMEvent], Union[None, Awaitable[None]]]


class Driver(abc.ABC):
    """The verbs every hypervisor driver implements, plus event delivery.

    Events reach both ``watch()`` iterators and callbacks registered with ``add_listener``.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._watch_queues: set[asyncio.Queue] = set()

    # -- lifecycle -----------------------------------------------------------------------
    @abc.abstractmethod
    async def create(self, spec: VMSpec) -> VMInfo:
        """Prepare the VM's files; does not start it."""

    @abc.abstractmethod
    async def update(self, spec: VMSpec) -> VMInfo:
        """Replace the spec of a VM that is not running (e.g. a new instance type)."""

    @abc.abstractmethod
    async def start(self, vm_id: str) -> VMInfo:
        """Start the VM; a no-op when it already runs. Raises StartError."""

    @abc.abstractmethod
    async def stop(self, vm_id: str, force: bool = False, timeout: float = 60.0) -> VMInfo:
        """Graceful: ACPI power button, wait ``timeout`` s, then force. Force: quit/kill."""

    @abc.abstractmethod
    async def reboot(self, vm_id: str) -> VMInfo:
        """Reset the running VM."""

    @abc.abstractmethod
    async def destroy(self, vm_id: str) -> None:
        """Force-stop the VM and remove the driver's own files (never the disks)."""

    # -- inspection ----------------------------------------------------------------------
    @abc.abstractmethod
    async def state(self, vm_id: str) -> VMInfo:
        """Current state; ``VMState.MISSING`` for an unknown id."""

    @abc.abstractmethod
    async def list(self) -> list[VMInfo]:
        """Every VM in the driver's state dir; live ones are re-adopted (watched)."""

    @abc.abstractmethod
    async def spec(self, vm_id: str) -> VMSpec:
        """The stored spec, including attached disks."""

    @abc.abstractmethod
    async def console_output(self, vm_id: str, max_bytes: int = 64 * 1024) -> bytes:
        """The latest serial console output (the last ``max_bytes``)."""

    @abc.abstractmethod
    async def usage(self, vm_id: str) -> dict[str, Any]:
        """Counters: cpu_seconds, rss_bytes, net_rx_bytes/net_tx_bytes (None when unknown),
        disks {disk_id: {read_bytes, write_bytes, read_ops, write_ops}}, sampled_at."""

    # -- disks ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def attach_disk(self, vm_id: str, disk_id: str, path: str, *, format: str = "qcow2",
                          read_only: bool = False) -> None:
        """Attach a volume (hot-plugged when running, remembered for the next start)."""

    @abc.abstractmethod
    async def detach_disk(self, vm_id: str, disk_id: str, timeout: float = 10.0) -> None:
        """Detach a volume; while running the guest must release it within ``timeout``."""

    # -- network interfaces (tap networking) ----------------------------------------------
    async def attach_nic(self, vm_id: str, nic: NicAttachment) -> None:
        """Attach a network interface (hot-plugged when running, remembered for the next start).
        Raises InvalidStateError when a running VM cannot take it (another namespace)."""
        raise NotImplementedError(f"{type(self).__name__} cannot attach network interfaces")

    async def detach_nic(self, vm_id: str, interface_id: str, timeout: float = 10.0) -> None:
        """Detach a network interface; while running the guest must release it within ``timeout``."""
        raise NotImplementedError(f"{type(self).__name__} cannot detach network interfaces")
    # -- disk snapshots and growth (EBS) -------------------------------------------------
    # The disk id "root" names the root disk. These verbs act on a running VM and return False
    # when its hypervisor process is not running (the caller then works on the files itself,
    # with qemu-img, which needs no VM).
    async def snapshot_disks(self, vm_id: str, names: dict[str, str]) -> bool:
        """Take an internal qcow2 snapshot ``names[disk_id]`` of each disk, atomically across
        the disks (one point in time for all of them, crash-consistent)."""
        return False

    async def delete_disk_snapshots(self, vm_id: str, names: dict[str, str]) -> bool:
        """Delete internal snapshots that ``snapshot_disks`` took."""
        return False

    async def resize_disk(self, vm_id: str, disk_id: str, size_bytes: int) -> bool:
        """Grow an attached disk online; the guest sees the new capacity."""
        return False

    async def close(self) -> None:
        """Stop watching; VMs keep running."""

    # -- events --------------------------------------------------------------------------
    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Register ``callback(event)`` (plain or async); returns a function that removes it."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)
        return remove

    async def watch(self) -> AsyncIterator[VMEvent]:
        """Iterate over events from now on, forever (break out to stop)."""
        queue: asyncio.Queue = asyncio.Queue()
        self._watch_queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watch_queues.discard(queue)

    def _emit(self, event: VMEvent) -> None:
        for queue in list(self._watch_queues):
            queue.put_nowait(event)
        for callback in list(self._listeners):
            try:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(_log_task_error)
            except Exception:  # a listener's bug must not break the driver
                import logging
                logging.getLogger(__name__).exception("VM event listener failed")


def _log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging
        logging.getLogger(__name__).error("VM event listener failed", exc_info=task.exception())
