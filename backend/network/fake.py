"""A data path that touches no kernel: it records the states it was asked to apply, names a tap
for each attached interface, hands out ``NicAttachment``s and serves counters a test sets. For
the API's tests, and for ``nimbo serve --backend fake`` servers that want a data path
(``network = "fake"`` in the config). It checks what the real one would refuse (an interface in an
unknown subnet, an address twice in a VPC, a MAC twice among attached interfaces), so a state
that passes here is one the real data path can apply."""
from __future__ import annotations

import ipaddress
import re

from backend.driver import NicAttachment

from .model import DataPath, InterfaceCounters, NetworkState

NETNS = "nimbo-fake"


def check(state: NetworkState) -> None:
    vpcs = {v.vpc_id for v in state.vpcs}
    if len(vpcs) != len(state.vpcs):
        raise ValueError("duplicate VPC ids")
    subnets = {}
    for subnet in state.subnets:
        if subnet.vpc_id not in vpcs:
            raise ValueError(f"{subnet.subnet_id}: unknown VPC {subnet.vpc_id}")
        if ipaddress.ip_address(subnet.router) not in ipaddress.ip_network(subnet.cidr):
            raise ValueError(f"{subnet.subnet_id}: router {subnet.router} outside {subnet.cidr}")
        subnets[subnet.subnet_id] = subnet
    seen: dict[str, set[str]] = {}
    macs: set[str] = set()
    for iface in state.interfaces:
        if iface.subnet_id not in subnets:
            raise ValueError(f"{iface.interface_id}: unknown subnet {iface.subnet_id}")
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", iface.mac.lower()):
            raise ValueError(f"{iface.interface_id}: bad MAC {iface.mac!r}")
        addresses = seen.setdefault(subnets[iface.subnet_id].vpc_id, set())
        for address in iface.private_ips:
            if address in addresses:
                raise ValueError(f"{iface.interface_id}: address {address} used twice")
            addresses.add(address)
        if iface.instance_id:
            if iface.mac.lower() in macs:
                raise ValueError(f"{iface.interface_id}: MAC used twice")
            macs.add(iface.mac.lower())


def tap_name(interface_id: str) -> str:
    return "t" + interface_id.split("-", 1)[-1][:13]


class FakeDataPath(DataPath):
    def __init__(self, imds_socket: str | None = None) -> None:
        self.imds_socket = imds_socket
        self.applied: list[NetworkState] = []
        self.state = NetworkState()
        self.opened = 0
        self.closed = 0
        self.set_counters: dict[str, InterfaceCounters] = {}

    async def open(self) -> None:
        self.opened += 1

    async def apply(self, state: NetworkState) -> None:
        check(state)
        self.applied.append(state)
        self.state = state

    def nic(self, interface_id: str) -> NicAttachment:
        for iface in self.state.interfaces:
            if iface.interface_id == interface_id and iface.instance_id:
                return NicAttachment(interface_id, iface.mac.lower(), tap_name(interface_id), NETNS)
        raise KeyError(f"{interface_id} is not attached in the applied network state")

    async def counters(self) -> dict[str, InterfaceCounters]:
        attached = {i.interface_id for i in self.state.interfaces if i.instance_id}
        return {k: v for k, v in self.set_counters.items() if k in attached}

    async def close(self) -> None:
        self.closed += 1

    async def destroy(self) -> None:
        self.state = NetworkState()
