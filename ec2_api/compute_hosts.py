"""Compute hosts (libvirt URIs) and the placement of instances on them.

Table ``compute_hosts`` (Schema "compute_hosts"): one row per host the operator registered with
``nimbo host add NAME URI [--zone AZ]`` (the libvirt backend registers ``config.libvirt_uri`` as
host ``local`` when it starts with none). Its capacity is read from the host once, when it is
added (libvirt ``getInfo``: CPUs x 8 vCPUs, 80 % of the RAM; ``--vcpus``/``--memory-mib``
override). Its use is summed from the instances placed on it (``data.host_id``) that have, or
are getting, a VM, inside the RunInstances transaction, so two launches never both take the
last room on a host.

With no host registered (the QEMU backend, tests with the fake driver) ``choose_host`` returns
None and nothing changes: the single machine's capacity check in ``instances`` applies alone.

Crash story: a host row is one INSERT; a placement is part of the instance's row (its ``data``)
written in RunInstances' transaction: nothing to sweep.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any, Optional

from backend.libvirt import placement
from ec2_api.errors import (InsufficientInstanceCapacity, InvalidParameterCombination, InvalidParameterValue,
                            ec2_error)
from ec2_api.instance_store import ACTIVE_STATES
from storage.db import Schema

InvalidHostIDNotFound = ec2_error("InvalidHostID.NotFound")
InvalidHostIDMalformed = ec2_error("InvalidHostId.Malformed")

SCHEMA = Schema("compute_hosts", [
    "CREATE TABLE compute_hosts (host_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, uri TEXT NOT NULL,"
    " zone TEXT, vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'available',"
    " added_us INTEGER NOT NULL)",
])


def new_host_id() -> str:
    return "h-" + secrets.token_hex(9)[:17]


async def list_hosts(db: Any) -> list[dict]:
    rows = await db.fetchall("SELECT * FROM compute_hosts ORDER BY added_us, host_id")
    return [dict(row) for row in rows]


async def add_host(db: Any, name: str, uri: str, *, zone: Optional[str] = None, vcpus: Optional[int] = None,
                   memory_mib: Optional[int] = None, probe: bool = True) -> dict:
    """Register a host; its capacity comes from libvirt unless both numbers are given."""
    if not name or len(name) > 64:
        raise ValueError("a host name is 1-64 characters")
    if await db.fetchone("SELECT 1 FROM compute_hosts WHERE name = ?", (name,)):
        raise ValueError(f"a host named {name!r} exists already")
    if vcpus is None or memory_mib is None:
        if not probe:
            raise ValueError("give --vcpus and --memory-mib, or let Nimbo ask the host")
        cpus, memory_kib = await asyncio.to_thread(host_resources, uri)
        probed_vcpus, probed_memory = placement.capacity_of(cpus, memory_kib)
        vcpus = probed_vcpus if vcpus is None else vcpus
        memory_mib = probed_memory if memory_mib is None else memory_mib
    row = {"host_id": new_host_id(), "name": name, "uri": uri, "zone": zone, "vcpus": int(vcpus),
           "memory_mib": int(memory_mib), "state": "available", "added_us": int(time.time() * 1e6)}
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO compute_hosts (host_id, name, uri, zone, vcpus, memory_mib, state, added_us)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(row.values()))   # positional: PostgreSQL too
    return row


async def remove_host(db: Any, name_or_id: str) -> None:
    row = await db.fetchone("SELECT host_id FROM compute_hosts WHERE host_id = ? OR name = ?", (name_or_id, name_or_id))
    if row is None:
        raise LookupError(f"no host {name_or_id!r}")
    loads = await host_loads(db)
    if any(h.host_id == row["host_id"] and h.used_vcpus for h in loads):
        raise ValueError(f"host {name_or_id} still has instances: stop or terminate them first")
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM compute_hosts WHERE host_id = ?", (row["host_id"],))


def host_resources(uri: str) -> tuple[int, int]:
    """(CPUs, KiB of RAM) of a libvirt host (blocking)."""
    from backend.libvirt.connection import ensure_event_loop, import_libvirt   # noqa: PLC0415
    libvirt = import_libvirt()
    ensure_event_loop(libvirt)   # qemu:///embed needs one
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise ValueError(f"cannot connect to {uri}: {exc.get_error_message()}") from None
    try:
        _model, memory_mib, cpus = conn.getInfo()[:3]
        return int(cpus), int(memory_mib) * 1024
    finally:
        conn.close()


async def host_loads(conn: Any) -> list[placement.HostLoad]:
    """Every host with the vCPUs and MiB its active instances hold."""
    hosts = await conn.fetchall("SELECT * FROM compute_hosts ORDER BY added_us, host_id")
    loads = {row["host_id"]: placement.HostLoad(row["host_id"], row["zone"], row["vcpus"], row["memory_mib"],
                                                enabled=row["state"] == "available", order=i,
                                                kind=host_kind(row["uri"]))
             for i, row in enumerate(hosts)}
    if not loads:
        return []
    rows = await conn.fetchall(
        f"SELECT data FROM ec2_instances WHERE state IN ({','.join('?' * len(ACTIVE_STATES))})", ACTIVE_STATES)
    for row in rows:
        data = json.loads(row["data"] or "{}")
        load = loads.get(data.get("host_id"))
        if load is not None:
            load.used_vcpus += int(data.get("vcpus") or 0)
            load.used_memory_mib += int(data.get("memory_mib") or 0)
    return list(loads.values())


def host_kind(uri: str) -> str:
    """What a host runs: containers on libvirt-lxc (``lxc://``), VMs elsewhere."""
    return "container" if uri.split(":", 1)[0].split("+", 1)[0] == "lxc" else "vm"


async def zone_of_named_host(db: Any, params: dict) -> dict:
    """RunInstances with Placement.HostId and neither a zone nor a subnet launches in the host's
    zone (as EC2 does on a Dedicated Host): the params with that zone filled in."""
    placement_params = params.get("Placement") or {}
    host_id = placement_params.get("HostId")
    if not host_id or placement_params.get("AvailabilityZone") or params.get("SubnetId") \
            or params.get("NetworkInterfaces"):
        return params
    row = await db.fetchone("SELECT zone FROM compute_hosts WHERE host_id = ?", (host_id,))
    if row is None or not row["zone"]:
        return params
    return {**params, "Placement": {**placement_params, "AvailabilityZone": row["zone"]}}


async def choose_host(tx: Any, config: Any, vcpus: int, memory_mib: int, zone: Optional[str],
                      params: dict) -> Optional[str]:
    """The host for one instance of a RunInstances (None: no hosts are registered). Called once per
    instance inside the launch's transaction, after the instances before it were inserted."""
    wanted = (params.get("Placement") or {}).get("HostId") or None
    kind = "container" if str(params.get("InstanceType") or "").startswith("c-") else "vm"
    hosts = await host_loads(tx)
    if kind == "container" and not any(h.kind == "container" for h in hosts):
        raise InvalidParameterValue(f"The instance type {params['InstanceType']} is a Linux container: it "
                                    "needs a libvirt-lxc compute host (nimbo host add NAME lxc:///)")
    if not hosts:
        if wanted:
            raise InvalidHostIDNotFound(f"The host ID '{wanted}' does not exist")
        return None
    if wanted:
        if not wanted.startswith("h-"):
            raise InvalidHostIDMalformed(f"Invalid id: \"{wanted}\" (expecting \"h-...\")")
        host = next((h for h in hosts if h.host_id == wanted), None)
        if host is None:
            raise InvalidHostIDNotFound(f"The host ID '{wanted}' does not exist")
        if host.zone and zone and host.zone != zone:
            raise InvalidParameterCombination(
                f"The host {wanted} is in {host.zone}, not in the availability zone {zone} of the launch.")
    try:
        return placement.choose(hosts, placement.Request(vcpus, memory_mib, zone, wanted, kind),
                                getattr(config, "placement", "spread")).host_id
    except placement.NoHostFits as exc:
        raise InsufficientInstanceCapacity(
            f"We currently do not have sufficient capacity in the Availability Zone you requested ({exc.reason}).")


async def cluster_fit(tx: Any, vcpus: int, memory_mib: int) -> Optional[int]:
    """How many instances of this size fit on all hosts together (None: no hosts registered)."""
    hosts = await host_loads(tx)
    if not hosts:
        return None
    # counted over hosts of either kind: choose_host then refuses what no host of the right kind takes
    return sum(max(0, min(h.free_vcpus // vcpus, h.free_memory_mib // memory_mib)) for h in hosts if h.enabled)


async def ensure_default_host(db: Any, uri: str) -> None:
    """The libvirt backend's first start: its URI becomes host ``local``."""
    if not await db.fetchone("SELECT 1 FROM compute_hosts LIMIT 1"):
        await add_host(db, "local", uri)


def render_hosts(hosts: list[dict], loads: list[placement.HostLoad]) -> str:
    """``nimbo host list``: one line per host."""
    used = {h.host_id: h for h in loads}
    lines = ["HOST_ID\tNAME\tZONE\tURI\tVCPUS_USED/TOTAL\tMEMORY_MIB_USED/TOTAL\tSTATE"]
    for h in hosts:
        load = used.get(h["host_id"])
        lines.append(f"{h['host_id']}\t{h['name']}\t{h['zone'] or '-'}\t{h['uri']}\t"
                     f"{load.used_vcpus if load else 0}/{h['vcpus']}\t"
                     f"{load.used_memory_mib if load else 0}/{h['memory_mib']}\t{h['state']}")
    return "\n".join(lines)


async def open_cluster(db: Any, config: Any) -> Any:
    """The libvirt backend of a server: a ``ClusterDriver`` over every registered host
    (``config.libvirt_uri`` becomes host ``local`` when none is registered yet)."""
    from backend.libvirt.cluster import ClusterDriver   # noqa: PLC0415 (needs libvirt-python)
    await db.migrate(SCHEMA)
    await ensure_default_host(db, config.libvirt_uri)

    async def hosts() -> dict[str, str]:
        return {h["host_id"]: h["uri"] for h in await list_hosts(db)}
    return ClusterDriver(config.path("libvirt"), await hosts(), refresh=hosts)
