"""Which compute host an instance goes to: a small scheduler, explainable in one paragraph.

Every host has a capacity (vCPUs and MiB it offers to guests, recorded when it was added: the
host's CPUs x ``VCPU_OVERCOMMIT`` and ``MEMORY_SHARE`` of its RAM, or the operator's numbers)
and a use (the vCPUs and MiB of the instances Nimbo placed there that have, or are getting, a
VM). A host fits a request when it is enabled, runs the request's kind (VMs, or containers on
libvirt-lxc hosts), is in the requested availability zone (a host without a zone serves every
zone of the region), is the requested host (``Placement.HostId``) when one is named, and has the
request's vCPUs and memory free. Among the hosts that fit:

- ``spread`` (default) takes the host with the largest share of its memory free, then of its
  vCPUs: instances spread evenly, a host's failure hits few of them.
- ``pack`` takes the host with the least memory free that still fits: hosts fill one after the
  other and empty hosts stay free for large instances (or can be switched off).

Ties go to the host added first. Pure functions: no database, no libvirt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

VCPU_OVERCOMMIT = 8      # vCPUs offered per host CPU (as the single-host default)
MEMORY_SHARE = 0.8       # share of the host's RAM offered to guests
STRATEGIES = ("spread", "pack")


@dataclass
class HostLoad:
    host_id: str
    zone: Optional[str]
    vcpus: int              # capacity
    memory_mib: int
    used_vcpus: int = 0
    used_memory_mib: int = 0
    enabled: bool = True
    order: int = 0          # when it was added (ties)
    kind: str = "vm"        # "vm" (QEMU/KVM ... hosts) or "container" (libvirt-lxc hosts)

    @property
    def free_vcpus(self) -> int:
        return self.vcpus - self.used_vcpus

    @property
    def free_memory_mib(self) -> int:
        return self.memory_mib - self.used_memory_mib


@dataclass
class Request:
    vcpus: int
    memory_mib: int
    zone: Optional[str] = None
    host_id: Optional[str] = None
    kind: str = "vm"


class NoHostFits(Exception):
    """No host fits; ``reason`` says why in one sentence (for the operator's log and the error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def capacity_of(cpus: int, memory_kib: int) -> tuple[int, int]:
    """(vCPUs, MiB) a host with ``cpus`` CPUs and ``memory_kib`` of RAM offers."""
    return int(cpus) * VCPU_OVERCOMMIT, int(memory_kib // 1024 * MEMORY_SHARE)


def fits(host: HostLoad, request: Request) -> bool:
    return (host.enabled and host.kind == request.kind
            and (host.zone is None or request.zone is None or host.zone == request.zone)
            and (request.host_id is None or host.host_id == request.host_id)
            and host.free_vcpus >= request.vcpus and host.free_memory_mib >= request.memory_mib)


def choose(hosts: Iterable[HostLoad], request: Request, strategy: str = "spread") -> HostLoad:
    """The host for ``request``; raises NoHostFits with the reason."""
    if strategy not in STRATEGIES:
        raise ValueError(f"placement strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    hosts = list(hosts)
    if request.host_id is not None and not any(h.host_id == request.host_id for h in hosts):
        raise NoHostFits(f"host {request.host_id} does not exist")
    candidates = [h for h in hosts if fits(h, request)]
    if not candidates:
        where = f"host {request.host_id}" if request.host_id else \
            f"zone {request.zone}" if request.zone else "any host"
        what = " (a container)" if request.kind == "container" else ""
        return _raise(f"no capacity for {request.vcpus} vCPUs and {request.memory_mib} MiB{what} on {where}")
    if strategy == "spread":
        key = (lambda h: (-h.free_memory_mib / max(h.memory_mib, 1), -h.free_vcpus / max(h.vcpus, 1), h.order))
    else:
        key = (lambda h: (h.free_memory_mib, h.free_vcpus, h.order))
    return min(candidates, key=key)


def place_many(hosts: list[HostLoad], requests: list[Request], strategy: str = "spread") -> list[str]:
    """Host ids for several requests in turn, each counting the ones placed before it."""
    out = []
    for request in requests:
        host = choose(hosts, request, strategy)
        host.used_vcpus += request.vcpus
        host.used_memory_mib += request.memory_mib
        out.append(host.host_id)
    return out


def _raise(reason: str) -> HostLoad:
    raise NoHostFits(reason)
