"""The desired state of the instance network, as plain immutable data.

``ec2_api`` computes one ``NetworkState`` from its tables (VPCs, subnets, route tables, security
groups resolved to addresses, network interfaces, address associations) and hands it to a
``DataPath``; the data path makes the kernel match it and is idempotent: applying the same state
twice changes nothing, applying a smaller state removes what is gone (bridges, taps, dnsmasq,
nftables rules). Because the whole state is handed over every time, a restart of Nimbo re-adopts
what exists by applying the state again, and a crash between two steps is repaired by the next
apply.

Security groups arrive resolved: a rule that names another group becomes one rule per current
member address (so the data path never needs the API's tables), prefix lists become CIDRs.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

from backend.driver import NicAttachment

ALL_PROTOCOLS = "all"


@dataclass(frozen=True)
class SecurityRule:
    """One allow rule of a security group, resolved to one IPv4 CIDR.

    ``protocol`` is ``all``, ``tcp``, ``udp``, ``icmp`` or an IP protocol number as a string.
    tcp/udp: ``from_port``..``to_port`` inclusive (-1 both: every port).
    icmp: ``from_port`` is the ICMP type and ``to_port`` the code (-1: any).
    """
    direction: str                 # "ingress" | "egress"
    protocol: str = ALL_PROTOCOLS
    from_port: int = -1
    to_port: int = -1
    cidr: str = "0.0.0.0/0"


@dataclass(frozen=True)
class Route:
    """One route of a subnet's route table. ``target`` is ``local`` (inside the VPC), ``igw``
    (an internet gateway attached to the VPC: outside access through Nimbo's NAT) or the id of
    a network interface (eni-...) that forwards for the subnet (a NAT instance)."""
    destination: str               # IPv4 CIDR
    target: str


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidrs: tuple[str, ...]         # primary first; VPCs are separate L2/L3 domains, CIDRs may overlap


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    cidr: str
    router: str                    # the subnet's .1: the guests' default gateway
    dns: str                       # the VPC's resolver address (VPC base + 2)
    domain_name: str               # DHCP option 15 (ec2.internal, REGION.compute.internal, or the DHCP options set's)
    domain_name_servers: tuple[str, ...] = ()   # DHCP option 6; empty: ``dns``
    routes: tuple[Route, ...] = ()               # besides the implicit local route of the VPC's CIDRs


@dataclass(frozen=True)
class Interface:
    """A network interface (ENI). Attached when ``instance_id`` is set; a detached interface
    keeps its addresses (DHCP reservations) but has no tap."""
    interface_id: str              # eni-...
    subnet_id: str
    mac: str                       # 02:xx:xx:xx:xx:xx
    private_ips: tuple[str, ...]   # the primary first
    instance_id: str | None = None
    device_index: int = 0
    hostname: str = ""             # handed out by DHCP with the primary address
    rules: tuple[SecurityRule, ...] = ()   # the union of the interface's security groups' rules
    source_dest_check: bool = True  # True: the guest may only send from its own MAC and addresses
    public_ips: tuple[tuple[str, str], ...] = ()  # (public address, private address): 1:1 NAT
    availability_zone: str = ""    # for metering: traffic between zones is priced apart
    # the instance metadata service at 169.254.169.254:80, relayed to Nimbo (see DataPath.open)
    metadata_enabled: bool = True
    metadata_hop_limit: int = 1    # IP TTL of the relay's answers (IMDSv2 PUT hop limit)


@dataclass(frozen=True)
class NetworkState:
    vpcs: tuple[Vpc, ...] = ()
    subnets: tuple[Subnet, ...] = ()
    interfaces: tuple[Interface, ...] = ()


@dataclass
class InterfaceCounters:
    """Cumulative bytes seen on an interface since its tap was made (the usage ledger detects
    resets). ``*_internet`` are the parts that crossed Nimbo's NAT (outside the VPC);
    ``*_other_az`` the parts to or from another availability zone's subnet."""
    interface_id: str
    bytes_in: int = 0              # to the guest
    bytes_out: int = 0             # from the guest
    bytes_in_internet: int = 0
    bytes_out_internet: int = 0
    bytes_in_other_az: int = 0
    bytes_out_other_az: int = 0


class DataPath(abc.ABC):
    """Makes the kernel match a ``NetworkState``. Implementations: ``namespace`` (root: a network
    namespace of Nimbo's own) and ``fake`` (records what it was asked, for API tests)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or re-adopt what exists (namespace, NAT, IMDS relay); sweep leftovers.

        The IMDS relay accepts the guests' connections to 169.254.169.254:80 inside the data
        path and forwards each to Nimbo's metadata server on the unix socket the data path was
        given, first sending one line ``NIMBO-IMDS <interface-id>\r\n`` naming the interface the
        connection came from (the data path knows it even where VPC CIDRs overlap); then the
        guest's bytes both ways. Connections from unknown sources are closed."""

    @abc.abstractmethod
    async def apply(self, state: NetworkState) -> None:
        """Make the data path match ``state`` (idempotent; removes what ``state`` no longer has)."""

    @abc.abstractmethod
    def nic(self, interface_id: str) -> NicAttachment:
        """How a VM attaches to an interface that the last applied state has attached (its tap,
        in the data path's namespace); the driver puts it in ``VMSpec.nics``."""

    @abc.abstractmethod
    async def counters(self) -> dict[str, InterfaceCounters]:
        """Byte counters per attached interface id."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop Nimbo's helpers; the namespace and the guests' connectivity stay up."""

    async def destroy(self) -> None:
        """Remove everything this data path made (tests, ``nimbo net destroy``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be destroyed")
