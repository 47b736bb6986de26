"""The data path as root: network namespaces of Nimbo's own, bridges, taps, dnsmasq and nftables.

Layout (every name carries Nimbo's prefix ``nimbo-<8 hex of the data dir's path>``)::

    host (never touched, unless the documented single-host extra below is enabled)
    nimbo-1a2b3c4d                 the edge namespace: "outside" the VPCs; public addresses are
      v<13 hex> ---- veth ---+     routed from here to their VPC; ``nimbo net exec`` runs here
                             |
    nimbo-1a2b3c4d-vpc-0123..  one router namespace per VPC
      up (169.254.x.y/30, default route to the edge)
      b<subnet> bridge per subnet, the subnet's .1 on it; t<eni> tap per attached interface
      lo: 169.254.169.254 (the metadata relay) and the VPC resolver (base + 2, dnsmasq)

Why a namespace per VPC and not VRF: this host's kernel has no VRF (``ip link add X type vrf``
answers "Unknown device type", checked 2026-12-04 on 6.18), so separate routing tables for
overlapping VPC CIDRs come from separate network namespaces. It also makes isolation structural:
nothing connects two VPCs except the edge, which only routes public addresses.

Packets: guests in a subnet share its bridge; between subnets of a VPC the namespace routes;
out of a VPC only through the uplink, and only from addresses with a public address in a subnet
whose route table sends the destination to an internet gateway (``nftables``); 1:1 NAT of the
public addresses happens on the uplink. With nothing enabled on the host, "the internet" is the
edge namespace: ``nimbo net exec -- ssh root@PUBLIC_IP`` reaches an instance through its public
address, and ``nimbo net exec --vpc vpc-... -- ssh root@PRIVATE_IP`` through the VPC's router.

Single-host extra (off by default, never enabled by the tests): ``host_access=True`` adds a veth
pair host <-> edge (``nimbo<8 hex>`` on the host, 169.254.255.249/30) and one host route per
public pool CIDR into the edge, so ``ssh admin@PUBLIC_IP`` works from the host's shell (guests
cannot open connections towards the host through it: the edge drops them). On a
multi-homed server the pool is a real routed range instead: route it to the host, and the host to
the edge's veth. Outbound NAT of the pool to the real network is left to the operator (one
masquerade rule on the host for 169.254.255.250), as it changes the host's firewall.

Crash story: the desired state is written to ``<data_dir>/network/state.json`` before the kernel
is changed; ``open()`` re-applies it, which re-creates what a host reboot lost, restarts dead
dnsmasqs and removes whatever the state does not name (taps, bridges, VPC namespaces, routes,
dnsmasqs with our prefix): a crash between creating a tap and recording it leaves nothing behind.
Runtime files (dnsmasq configs, pid files, leases) live in ``/run/<namespace>/`` and die with the
namespaces at a reboot. ``destroy()`` removes the namespaces, the helpers and those files (a QEMU
still running in a VPC namespace keeps that namespace alive, nameless, until it exits: stop the
instances first).
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import time
from typing import Iterable, Optional, Sequence

from backend.driver import NicAttachment

from . import dhcp, nftables
from .imds_relay import IMDS_ADDRESS, MetadataRelay, Source, VpcDirectory
from .model import (DataPath, Interface, InterfaceCounters, NetworkState, Route, SecurityRule,
                    Subnet, Vpc)

log = logging.getLogger(__name__)

PREFIX = "nimbo-"
NETNS_DIR = "/run/netns"
TRANSIT = ipaddress.ip_network("169.254.0.0/17")    # /30 per VPC: edge .1, VPC router .2
HOST_LINK = ("169.254.255.249", "169.254.255.250")   # host side, edge side (host_access)
REQUIRED_TOOLS = ("ip", "nft", "dnsmasq")
EDGE_HOST_RULES = """table inet nimbo_edge {}
delete table inet nimbo_edge
table inet nimbo_edge {
\tchain c_forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related accept
\t\toifname "host" drop
\t}
}
"""
ROUTE_PREF = 1000          # ip rules and tables of the routes to network interfaces
MAX_ROUTE_TABLES = 400


class DataPathError(Exception):
    pass


# -- names ---------------------------------------------------------------------------------
def namespace_name(data_dir: str) -> str:
    """Nimbo's edge namespace for a data directory: ``nimbo-`` + 8 hex of its real path."""
    digest = hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()
    return PREFIX + digest[:8]


def ifname(prefix: str, ident: str) -> str:
    """A device name (<= 15 bytes) derived from an AWS id: readable when the hex fits, else hashed."""
    tail = ident.split("-", 1)[-1].lower()
    if re.fullmatch(r"[0-9a-f]+", tail) and len(prefix) + len(tail) <= 15:
        return prefix + tail
    return prefix + hashlib.sha1(ident.encode()).hexdigest()[:15 - len(prefix)]


def tap_name(interface_id: str) -> str:
    return ifname("t", interface_id)


def bridge_name(subnet_id: str) -> str:
    return ifname("b", subnet_id)


def veth_name(vpc_id: str) -> str:
    return "v" + hashlib.sha1(vpc_id.encode()).hexdigest()[:13]


def transit_addresses(index: int) -> tuple[str, str]:
    base = TRANSIT.network_address + 4 * index
    if base + 3 > TRANSIT.broadcast_address:
        raise DataPathError("no transit addresses left for another VPC")
    return str(base + 1), str(base + 2)


def available() -> tuple[bool, str]:
    """Whether this process can run the namespace data path (root and the tools)."""
    if os.geteuid() != 0:
        return False, "not root: instances use user-mode networking (no inbound access, no public addresses)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return False, f"missing {', '.join(missing)} (apt-get install nftables dnsmasq-base iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return False, "/dev/net/tun is missing"
    return True, "tap networking in network namespaces"


# -- state file ----------------------------------------------------------------------------
def state_to_json(state: NetworkState) -> str:
    return json.dumps(dataclasses.asdict(state), indent=1, sort_keys=True)


def state_from_json(text: str) -> NetworkState:
    raw = json.loads(text)
    vpcs = tuple(Vpc(v["vpc_id"], tuple(v["cidrs"])) for v in raw.get("vpcs", []))
    subnets = tuple(Subnet(**{**s, "domain_name_servers": tuple(s.get("domain_name_servers", ())),
                              "routes": tuple(Route(**r) for r in s.get("routes", ()))})
                    for s in raw.get("subnets", []))
    interfaces = tuple(Interface(**{**i, "private_ips": tuple(i["private_ips"]),
                                    "rules": tuple(SecurityRule(**r) for r in i.get("rules", ())),
                                    "public_ips": tuple(tuple(p) for p in i.get("public_ips", ()))})
                       for i in raw.get("interfaces", []))
    return NetworkState(vpcs, subnets, interfaces)


def validate(state: NetworkState) -> None:
    vpcs = {v.vpc_id: v for v in state.vpcs}
    if len(vpcs) != len(state.vpcs):
        raise ValueError("duplicate VPC ids")
    subnets = {}
    for s in state.subnets:
        if s.vpc_id not in vpcs:
            raise ValueError(f"{s.subnet_id}: unknown VPC {s.vpc_id}")
        net = ipaddress.ip_network(s.cidr)
        if ipaddress.ip_address(s.router) not in net:
            raise ValueError(f"{s.subnet_id}: router {s.router} outside {s.cidr}")
        subnets[s.subnet_id] = s
    macs, taps = set(), set()
    addresses: dict[str, set] = {}
    ports: dict[str, int] = {}
    for i in state.interfaces:
        if i.subnet_id not in subnets:
            raise ValueError(f"{i.interface_id}: unknown subnet {i.subnet_id}")
        for rule in i.rules:          # before anything is recorded or changed
            if rule.direction not in ("ingress", "egress"):
                raise ValueError(f"{i.interface_id}: bad rule direction {rule.direction!r}")
            nftables.rule_match(rule)
        for public, private in i.public_ips:
            ipaddress.IPv4Address(public)
            if private not in i.private_ips:
                raise ValueError(f"{i.interface_id}: {public} maps to {private}, not one of its addresses")
        if i.instance_id:
            vpc_id = subnets[i.subnet_id].vpc_id
            ports[vpc_id] = ports.get(vpc_id, 0) + 1
            if ports[vpc_id] > nftables.MAX_PORTS:
                raise ValueError(f"{vpc_id}: more than {nftables.MAX_PORTS} attached interfaces")
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", i.mac.lower()):
            raise ValueError(f"{i.interface_id}: bad MAC {i.mac!r}")
        vpc = subnets[i.subnet_id].vpc_id
        seen = addresses.setdefault(vpc, set())
        for ip in i.private_ips:
            ipaddress.IPv4Address(ip)
            if ip in seen:
                raise ValueError(f"{i.interface_id}: address {ip} used twice in {vpc}")
            seen.add(ip)
        if i.instance_id:
            if i.mac.lower() in macs or tap_name(i.interface_id) in taps:
                raise ValueError(f"{i.interface_id}: MAC or tap name used twice")
            macs.add(i.mac.lower())
            taps.add(tap_name(i.interface_id))


# -- commands ------------------------------------------------------------------------------
async def run(*argv: str, input: Optional[str] = None, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(input.encode() if input is not None else None)
    if check and proc.returncode != 0:
        raise DataPathError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()[-2000:]}")
    return out.decode(errors="replace")


def list_namespaces() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


async def links(netns: str) -> list[dict]:
    out = await run("ip", "-n", netns, "-d", "-j", "link", "show")
    return json.loads(out or "[]")


def _kind(link: dict) -> str:
    return (link.get("linkinfo") or {}).get("info_kind", "")


async def sysctl(netns: str, *settings: str) -> None:
    await run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", *settings)


# -- the data path -------------------------------------------------------------------------
class NamespaceDataPath(DataPath):
    """``DataPath`` on network namespaces; needs root (see ``available()``).

    ``data_dir``: Nimbo's data directory (names the namespaces; the desired state is kept in
    ``<data_dir>/network/state.json``). ``imds_socket``: the unix socket of Nimbo's metadata
    server that the relay forwards to. ``public_pool``: the public CIDRs (only used by the
    single-host extra, which routes them from the host into the edge). ``host_access``: that
    extra, off by default.
    """

    def __init__(self, data_dir: str, imds_socket: str, *, public_pool: Sequence[str] = (),
                 host_access: bool = False, run_root: str = "/run") -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.name = namespace_name(self.data_dir)
        self.run_dir = os.path.join(run_root, self.name)
        self.state_path = os.path.join(self.data_dir, "network", "state.json")
        self.public_pool = [str(ipaddress.ip_network(c)) for c in public_pool]
        self.host_access = host_access
        self.relay = MetadataRelay(imds_socket)
        self._lock = asyncio.Lock()
        self._state = NetworkState()
        self._opened = False
        # VPC namespace -> fingerprint of the inputs it was last configured from: a later apply
        # re-configures only the VPCs whose part of the state changed (open() redoes all)
        self._applied: dict[str, str] = {}

    # -- names -----------------------------------------------------------------------------
    def vpc_namespace(self, vpc_id: str) -> str:
        return f"{self.name}-{re.sub(r'[^A-Za-z0-9_.-]', '', vpc_id)}"

    def _vpc_run_dir(self, vpc_id: str) -> str:
        return os.path.join(self.run_dir, re.sub(r"[^A-Za-z0-9_.-]", "", vpc_id))

    def exec_argv(self, command: Sequence[str], vpc_id: Optional[str] = None) -> list[str]:
        """argv that runs ``command`` in the edge namespace, or in a VPC's router namespace."""
        return ["ip", "netns", "exec", self.vpc_namespace(vpc_id) if vpc_id else self.name, *command]

    # -- DataPath --------------------------------------------------------------------------
    async def open(self) -> None:
        ok, why = available()
        if not ok:
            raise DataPathError(why)
        await _ensure_br_netfilter()
        async with self._lock:
            state = NetworkState()
            try:
                with open(self.state_path) as f:
                    state = state_from_json(f.read())
            except FileNotFoundError:
                pass
            except (ValueError, KeyError, TypeError) as exc:
                log.error("network state %s unreadable (%s): starting empty", self.state_path, exc)
            self._applied.clear()
            await self._apply(state)
            self._opened = True

    async def apply(self, state: NetworkState) -> None:
        validate(state)
        async with self._lock:
            await self._apply(state)

    def nic(self, interface_id: str) -> NicAttachment:
        for iface in self._state.interfaces:
            if iface.interface_id == interface_id and iface.instance_id:
                subnet = self._subnet(iface.subnet_id)
                return NicAttachment(interface_id, iface.mac.lower(), tap_name(interface_id),
                                     self.vpc_namespace(subnet.vpc_id))
        raise KeyError(f"{interface_id} is not attached in the applied network state")

    async def counters(self) -> dict[str, InterfaceCounters]:
        out: dict[str, InterfaceCounters] = {}
        for vpc in self._state.vpcs:
            ns = self.vpc_namespace(vpc.vpc_id)
            if not os.path.exists(os.path.join(NETNS_DIR, ns)):
                continue
            values = nftables.parse_counters(await run("ip", "netns", "exec", ns, "nft", "-j",
                                                       "list", "counters", check=False))
            for iface in self._attached(vpc.vpc_id):
                iid = iface.interface_id
                b = {k: values.get(nftables.counter_name(k, iid), (0, 0))[1] for k in nftables.COUNTER_KINDS}
                out[iid] = InterfaceCounters(iid, bytes_in=b["i"], bytes_out=b["o"],
                                             bytes_in_internet=b["xi"], bytes_out_internet=b["xo"],
                                             bytes_in_other_az=b["zi"], bytes_out_other_az=b["zo"])
        return out

    async def close(self) -> None:
        await self.relay.close()

    async def destroy(self) -> None:
        async with self._lock:
            self._applied.clear()
            await self.relay.close()
            for ns in list_namespaces():
                if ns.startswith(self.name + "-"):
                    await self._remove_vpc_namespace(ns)
            for entry in _listdir(self.run_dir):   # dnsmasqs of namespaces already gone
                await _stop_dnsmasq(os.path.join(self.run_dir, entry))
            await self._remove_host_access()
            if os.path.exists(os.path.join(NETNS_DIR, self.name)):
                await run("ip", "netns", "del", self.name, check=False)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            try:
                os.unlink(self.state_path)
            except FileNotFoundError:
                pass
            self._state = NetworkState()

    # -- helpers ---------------------------------------------------------------------------
    def _subnet(self, subnet_id: str) -> Subnet:
        return next(s for s in self._state.subnets if s.subnet_id == subnet_id)

    def _attached(self, vpc_id: str, state: Optional[NetworkState] = None) -> list[Interface]:
        state = state or self._state
        subnets = {s.subnet_id for s in state.subnets if s.vpc_id == vpc_id}
        return sorted((i for i in state.interfaces if i.instance_id and i.subnet_id in subnets),
                      key=lambda i: i.interface_id)

    def _write_state(self, state: NetworkState) -> None:
        os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(state_to_json(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    async def _apply(self, state: NetworkState) -> None:
        started = time.monotonic()
        self._write_state(state)
        os.makedirs(self.run_dir, mode=0o755, exist_ok=True)
        await self._ensure_edge()
        wanted = {self.vpc_namespace(v.vpc_id): v for v in state.vpcs}
        # VPC namespaces the state no longer has (or a crash left): helpers first, then the netns
        for ns in list_namespaces():
            if ns.startswith(self.name + "-") and ns not in wanted:
                await self.relay.stop_serving(ns)
                await self._remove_vpc_namespace(ns)
        for entry in _listdir(self.run_dir):
            if self.vpc_namespace(entry) not in wanted:
                await _stop_dnsmasq(os.path.join(self.run_dir, entry))
                shutil.rmtree(os.path.join(self.run_dir, entry), ignore_errors=True)
        edge_links = {l["ifname"]: l for l in await links(self.name)}
        used = _transit_indexes(json.loads(await run("ip", "-n", self.name, "-j", "addr", "show") or "[]"))
        keep_veths = {veth_name(v.vpc_id) for v in state.vpcs}
        for name, link in edge_links.items():
            if _kind(link) == "veth" and re.fullmatch(r"v[0-9a-f]{13}", name) and name not in keep_veths:
                await run("ip", "-n", self.name, "link", "del", name, check=False)
        routes: dict[str, tuple[str, str]] = {}   # public /32 -> (via, dev)
        self._applied = {k: v for k, v in self._applied.items() if k in wanted}
        for vpc in state.vpcs:
            ns = self.vpc_namespace(vpc.vpc_id)
            fingerprint = _fingerprint(vpc, state)
            veth = veth_name(vpc.vpc_id)
            if self._applied.get(ns) == fingerprint and veth in used and veth in edge_links \
                    and ns in self.relay.serving() and os.path.exists(os.path.join(NETNS_DIR, ns)) \
                    and await self._links_intact(vpc, state, ns):
                via, dev = transit_addresses(used[veth])[1], veth   # unchanged since the last apply
            else:
                self._applied.pop(ns, None)
                via, dev = await self._apply_vpc(vpc, state, used)
                self._applied[ns] = fingerprint
            for public, _ in nftables.public_pairs(self._rules(vpc, state)):
                routes[public] = (via, dev)
        await self._apply_edge_routes(routes, keep_veths)
        self._state = state
        log.debug("network state applied in %.3fs", time.monotonic() - started)

    async def _links_intact(self, vpc: Vpc, state: NetworkState, ns: str) -> bool:
        """The VPC's devices are as the last apply left them (one ``ip link`` call)."""
        present = {l["ifname"]: l for l in await links(ns)}
        bridges = {bridge_name(s.subnet_id) for s in state.subnets if s.vpc_id == vpc.vpc_id}
        taps = {tap_name(i.interface_id): bridge_name(i.subnet_id) for i in self._attached(vpc.vpc_id, state)}
        ours = {n for n, l in present.items() if _kind(l) in ("tun", "bridge")}
        return ("up" in present and bridges <= set(present) and ours <= bridges | set(taps)
                and all(present.get(t, {}).get("master") == b for t, b in taps.items()))

    async def _ensure_edge(self) -> None:
        if not os.path.exists(os.path.join(NETNS_DIR, self.name)):
            await run("ip", "netns", "add", self.name)
        await run("ip", "-n", self.name, "link", "set", "lo", "up")
        await sysctl(self.name, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.disable_ipv6=1",
                     "net.ipv6.conf.default.disable_ipv6=1")
        if self.host_access:
            await self._ensure_host_access()

    async def _ensure_host_access(self) -> None:
        host_if = "nimbo" + self.name[len(PREFIX):]
        if not os.path.exists(f"/sys/class/net/{host_if}"):
            await run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "host", "netns", self.name)
        await run("ip", "addr", "replace", f"{HOST_LINK[0]}/30", "dev", host_if)
        await run("ip", "link", "set", host_if, "up")
        await run("ip", "-n", self.name, "addr", "replace", f"{HOST_LINK[1]}/30", "dev", "host")
        await run("ip", "-n", self.name, "link", "set", "host", "up")
        await run("ip", "-n", self.name, "route", "replace", "default", "via", HOST_LINK[0])
        for cidr in self.public_pool:
            await run("ip", "route", "replace", cidr, "via", HOST_LINK[1], "dev", host_if)
        # the host may open connections to the guests' public addresses, not the other way round
        await run("ip", "netns", "exec", self.name, "nft", "-f", "-", input=EDGE_HOST_RULES)

    async def _remove_host_access(self) -> None:
        host_if = "nimbo" + self.name[len(PREFIX):]
        if os.path.exists(f"/sys/class/net/{host_if}"):
            await run("ip", "link", "del", host_if, check=False)   # its host routes go with it

    async def _remove_vpc_namespace(self, ns: str) -> None:
        vpc_dir = os.path.join(self.run_dir, ns[len(self.name) + 1:])
        await _stop_dnsmasq(vpc_dir)
        # any other dnsmasq of ours still in there (a run dir lost in a crash)
        for pid in await _netns_pids(ns):
            if _cmdline(pid)[:1] and os.path.basename(_cmdline(pid)[0]) == "dnsmasq" \
                    and any(self.run_dir in a for a in _cmdline(pid)):
                _kill(pid)
        await run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(vpc_dir, ignore_errors=True)

    def _rules(self, vpc: Vpc, state: NetworkState) -> nftables.VpcRules:
        subnets = [s for s in state.subnets if s.vpc_id == vpc.vpc_id]
        by_id = {s.subnet_id: s for s in subnets}
        ports = [nftables.Port(i, by_id[i.subnet_id], tap_name(i.interface_id), n)
                 for n, i in enumerate(self._attached(vpc.vpc_id, state), start=1)]
        subnet_az: dict[str, str] = {}
        for iface in state.interfaces:
            if iface.subnet_id in by_id and iface.availability_zone:
                subnet_az.setdefault(iface.subnet_id, iface.availability_zone)
        return nftables.VpcRules(ports, subnets, subnet_az, tuple(vpc.cidrs))

    async def _apply_vpc(self, vpc: Vpc, state: NetworkState, used: dict[str, int]) -> tuple[str, str]:
        ns = self.vpc_namespace(vpc.vpc_id)
        created = not os.path.exists(os.path.join(NETNS_DIR, ns))
        if created:
            await run("ip", "netns", "add", ns)
        try:
            return await self._configure_vpc(vpc, state, used, ns)
        except BaseException:
            if created:   # undo a half-made namespace; the next apply retries
                await self._remove_vpc_namespace(ns)
            raise

    async def _configure_vpc(self, vpc: Vpc, state: NetworkState, used: dict[str, int],
                             ns: str) -> tuple[str, str]:
        resolver = dhcp.resolver_address(vpc)
        await sysctl(ns, "net.ipv4.ip_forward=1", "net.ipv4.tcp_fwmark_accept=1",
                     "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                     "net.bridge.bridge-nf-call-iptables=1", "net.ipv6.conf.all.disable_ipv6=1",
                     "net.ipv6.conf.default.disable_ipv6=1")
        batch = ["link set dev lo up", f"addr replace {IMDS_ADDRESS}/32 dev lo",
                 f"addr replace {resolver}/32 dev lo"]
        # the uplink veth to the edge
        veth = veth_name(vpc.vpc_id)
        index = used.get(veth)
        present = {l["ifname"]: l for l in await links(ns)}
        if index is None or "up" not in present:
            if "up" in present:
                await run("ip", "-n", ns, "link", "del", "up", check=False)
            await run("ip", "-n", self.name, "link", "del", veth, check=False)
            index = min(set(range(len(used) + 1)) - set(used.values()))
            await run("ip", "-n", self.name, "link", "add", veth, "type", "veth", "peer", "name", "up",
                      "netns", ns)
            used[veth] = index
            present = {l["ifname"]: l for l in await links(ns)}
        edge_ip, vpc_ip = transit_addresses(index)
        await run("ip", "-n", self.name, "addr", "replace", f"{edge_ip}/30", "dev", veth)
        await run("ip", "-n", self.name, "link", "set", veth, "up")
        batch += [f"addr replace {vpc_ip}/30 dev up", "link set dev up up",
                  f"route replace default via {edge_ip} dev up"]
        batch += [f"route replace blackhole {ipaddress.ip_network(c, strict=False)}" for c in vpc.cidrs]
        # bridges and taps
        subnets = [s for s in state.subnets if s.vpc_id == vpc.vpc_id]
        bridges = {bridge_name(s.subnet_id): s for s in subnets}
        attached = self._attached(vpc.vpc_id, state)
        taps = {tap_name(i.interface_id): i for i in attached}
        for name, link in present.items():   # remove what the state no longer has first
            kind = _kind(link)
            if (kind == "tun" and name not in taps) or (kind == "bridge" and name not in bridges):
                await run("ip", "-n", ns, "link", "del", name, check=False)
        for name, subnet in bridges.items():
            net = ipaddress.ip_network(subnet.cidr, strict=False)
            if name not in present:
                await run("ip", "-n", ns, "link", "add", name, "type", "bridge", "forward_delay", "0")
            batch += [f"addr replace {subnet.router}/{net.prefixlen} dev {name}", f"link set dev {name} up"]
        for name, iface in taps.items():
            if name not in present:
                await run("ip", "-n", ns, "tuntap", "add", "dev", name, "mode", "tap")
            batch += [f"link set dev {name} master {bridge_name(iface.subnet_id)}", f"link set dev {name} up"]
        await run("ip", "-n", ns, "-batch", "-", input="\n".join(batch) + "\n")
        rules = self._rules(vpc, state)
        await self._apply_interface_routes(ns, rules)
        # nftables: one atomic transaction, counters carried over
        old = nftables.parse_counters(await run("ip", "netns", "exec", ns, "nft", "-j", "list",
                                                "counters", check=False))
        await run("ip", "netns", "exec", ns, "nft", "-f", "-", input=nftables.vpc_ruleset(rules, old))
        # DHCP and DNS
        await self._apply_dnsmasq(vpc, state, ns, [dhcp.SubnetPort(s, bridge_name(s.subnet_id)) for s in subnets])
        # metadata relay
        directory = VpcDirectory()
        for port in rules.ports:
            src = Source(port.interface.interface_id, port.interface.metadata_enabled,
                         port.interface.metadata_hop_limit)
            directory.by_mark[port.index] = src
            for ip in port.interface.private_ips:
                directory.by_ip[str(ipaddress.ip_address(ip))] = src
        self.relay.directories[ns] = directory
        try:
            await self.relay.serve(ns)
        except OSError as exc:
            log.error("metadata relay in %s: %s", ns, exc)
        return vpc_ip, veth

    async def _apply_interface_routes(self, ns: str, rules: nftables.VpcRules) -> None:
        """Routes to a network interface (NAT instances): per source subnet, policy routing
        (``ip rule iif <bridge>``): first the main table without its default route (the VPC's
        own addresses stay local), then the subnet's table. A route to an interface that is not
        attached is a blackhole, as AWS shows it."""
        current = json.loads(await run("ip", "-n", ns, "-j", "rule", "show") or "[]")
        for r in current:
            if ROUTE_PREF <= int(r.get("priority", 0)) < ROUTE_PREF + 2 * MAX_ROUTE_TABLES:
                await run("ip", "-n", ns, "rule", "del", "pref", str(r["priority"]), check=False)
        attached = {p.interface.interface_id: p for p in rules.ports}
        for k, subnet in enumerate(rules.subnets[:MAX_ROUTE_TABLES]):
            routes = [r for r in subnet.routes if r.target.startswith("eni-")]
            table = str(ROUTE_PREF + k)
            await run("ip", "-n", ns, "route", "flush", "table", table, check=False)
            if not routes:
                continue
            for r in routes:
                dest = str(ipaddress.ip_network(r.destination, strict=False))
                port = attached.get(r.target)
                if port is None:
                    await run("ip", "-n", ns, "route", "replace", "blackhole", dest, "table", table)
                else:
                    gw = str(ipaddress.ip_address(port.interface.private_ips[0]))
                    await run("ip", "-n", ns, "route", "replace", dest, "via", gw,
                              "dev", bridge_name(port.subnet.subnet_id), "table", table)
            bridge = bridge_name(subnet.subnet_id)
            pref = ROUTE_PREF + 2 * k
            await run("ip", "-n", ns, "rule", "add", "pref", str(pref), "iif", bridge, "lookup", "main",
                      "suppress_prefixlength", "0")
            await run("ip", "-n", ns, "rule", "add", "pref", str(pref + 1), "iif", bridge, "lookup", table)

    async def _apply_dnsmasq(self, vpc: Vpc, state: NetworkState, ns: str,
                             subnets: list[dhcp.SubnetPort]) -> None:
        vpc_dir = self._vpc_run_dir(vpc.vpc_id)
        os.makedirs(vpc_dir, mode=0o755, exist_ok=True)
        ids = {s.subnet.subnet_id for s in subnets}
        interfaces = [i for i in state.interfaces if i.subnet_id in ids]
        domains = {s.subnet.subnet_id: s.subnet.domain_name for s in subnets}
        files = {dhcp.CONF: dhcp.config(vpc, subnets, vpc_dir),
                 dhcp.HOSTS: dhcp.dhcp_hosts(interfaces),
                 dhcp.NAMES: dhcp.host_names(interfaces, domains)}
        changed = {name for name, text in files.items() if _read(os.path.join(vpc_dir, name)) != text}
        for name in changed:
            _write(os.path.join(vpc_dir, name), text=files[name])
        pid = dhcp.running_pid(vpc_dir)
        # a lease whose reservation went away (while running, or before a start) is pruned
        stale = (pid is None or dhcp.HOSTS in changed) and bool(dhcp.stale_leases(vpc_dir, files[dhcp.HOSTS]))
        if pid is not None and (dhcp.CONF in changed or stale):
            await _stop_dnsmasq(vpc_dir)
            pid = None
        if pid is None:
            if stale:
                dhcp.prune_leases(vpc_dir, files[dhcp.HOSTS])
            await run(*dhcp.command(ns, vpc_dir))
        elif changed:
            dhcp.reload(vpc_dir)

    async def _apply_edge_routes(self, routes: dict[str, tuple[str, str]], veths: set[str]) -> None:
        """One /32 per public address towards its VPC; only the differences, in one batch."""
        current = json.loads(await run("ip", "-n", self.name, "-j", "route", "show") or "[]")
        have = {r.get("dst", ""): (r.get("gateway"), r.get("dev", "")) for r in current
                if re.fullmatch(r"v[0-9a-f]{13}", r.get("dev", "")) and r.get("gateway")}
        batch = [f"route del {dst} dev {dev}" for dst, (_, dev) in have.items() if dst not in routes]
        batch += [f"route replace {public}/32 via {via} dev {dev}" for public, (via, dev) in routes.items()
                  if have.get(public) != (via, dev)]
        if batch:
            await run("ip", "-n", self.name, "-batch", "-", input="\n".join(batch) + "\n")


# -- small helpers -------------------------------------------------------------------------
def _fingerprint(vpc: Vpc, state: NetworkState) -> str:
    subnets = [s for s in state.subnets if s.vpc_id == vpc.vpc_id]
    ids = {s.subnet_id for s in subnets}
    part = {"vpc": dataclasses.asdict(vpc), "subnets": [dataclasses.asdict(s) for s in subnets],
            "interfaces": [dataclasses.asdict(i) for i in state.interfaces if i.subnet_id in ids]}
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()


def _transit_indexes(addrs: Iterable[dict]) -> dict[str, int]:
    out = {}
    for link in addrs:
        name = link.get("ifname", "")
        if not re.fullmatch(r"v[0-9a-f]{13}", name):
            continue
        for a in link.get("addr_info", []):
            if a.get("family") == "inet" and ipaddress.ip_address(a["local"]) in TRANSIT:
                out[name] = (int(ipaddress.ip_address(a["local"])) - int(TRANSIT.network_address)) // 4
    return out


def _listdir(path: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e)))
    except FileNotFoundError:
        return []


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _kill(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


async def _ensure_br_netfilter() -> None:
    """Security groups see bridged packets through br_netfilter (built in on some kernels, a
    module on Debian's). Loading it makes bridged IPv4 pass the host's own inet hooks too."""
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        return
    log.warning("loading br_netfilter: security groups filter bridged traffic through it")
    await run("modprobe", "br_netfilter", check=False)
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        raise DataPathError("br_netfilter is unavailable (modprobe br_netfilter): security groups "
                            "cannot be enforced on bridged traffic")


async def _netns_pids(ns: str) -> list[int]:
    out = await run("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


async def _stop_dnsmasq(vpc_dir: str, timeout: float = 3.0) -> None:
    pid = dhcp.running_pid(vpc_dir)
    if pid is None:
        return
    _kill(pid)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if _alive(pid):
        _kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (daemons are reaped by init, or not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# -- operator commands (``nimbo net ...``) -------------------------------------------------------
def net_exec(data_dir: str, command: Sequence[str], vpc_id: Optional[str] = None) -> int:
    """Run ``command`` inside the edge namespace (public addresses) or a VPC's router namespace
    (its private addresses); returns its exit status."""
    import subprocess
    if not command:
        raise ValueError("no command given (nimbo net exec -- COMMAND ...)")
    path = NamespaceDataPath(data_dir, "")
    ns = path.vpc_namespace(vpc_id) if vpc_id else path.name
    if not os.path.exists(os.path.join(NETNS_DIR, ns)):
        raise LookupError(f"no network namespace {ns} for {path.data_dir}"
                          + (f" (is {vpc_id} a VPC with subnets?)" if vpc_id else
                             " (Nimbo makes it when it runs as root with tap networking)"))
    return subprocess.run(path.exec_argv(list(command), vpc_id)).returncode


def net_destroy(data_dir: str) -> None:
    """Remove every namespace, helper process and runtime file of a data directory's data path."""
    asyncio.run(NamespaceDataPath(data_dir, "").destroy())
