"""nftables rulesets of one VPC router namespace (pure text generation, unit tested without root).

Three tables per VPC namespace, each replaced atomically by one ``nft -f`` transaction (``table X
{}`` + ``delete table X`` + the new table), so a security group change reaches running guests in
one step, and a partial ruleset is never visible:

``bridge nimbo`` (the guest ports; bridge-family ``ct`` does not exist here, so it only marks)
  prerouting, per tap: anti-spoofing (the interface's MAC always; with ``source_dest_check`` its
  private IPv4 addresses for IP and ARP, 0.0.0.0 allowed for DHCP), no IPv6, no DHCP server
  answers from guests, the ``o_*`` counter (bytes from the guest), then ``meta mark`` = the
  port's index (low 12 bits). forward, per destination tap: ``meta mark |= index << 12``.
  postrouting, per tap: the ``i_*`` counter (bytes delivered to the guest).

``inet nimbo`` (stateful security groups: br_netfilter hands bridged IPv4 to the inet hooks,
  where conntrack works but only the bridge's name is visible, hence the marks)
  forward: established/related accepted; a new flow from a guest passes its egress chain
  (``eg_N``: allow = ``return``, else drop); to the uplink it must pass the internet gate (a
  public address and an igw route for the destination); to a guest it passes the ingress chain
  (``in_N``: allow = accept, else drop), found by the destination port's mark (bridged) or the
  destination address (routed); anything else is dropped.
  output: the namespace's own traffic to guests (``nimbo net exec``) obeys the ingress rules too;
  the metadata relay's packets get the interface's hop limit as IP TTL.
  input: guests may use DHCP, DNS, ping the router and (when ``metadata_enabled``) the metadata
  relay at 169.254.169.254:80; the uplink may not reach the router's services.
  postrouting: the internet (``xo_``/``xi_``) and other-AZ (``zo_``/``zi_``) counters.

``ip nimbo_nat``: 1:1 NAT of public addresses on the uplink (DNAT in, SNAT out).

Counters are named objects; their values are read before a replacement and re-declared with them
(``counter NAME { packets P bytes B }``), so a ruleset change does not reset the usage meter
(bytes in the few milliseconds between the read and the commit may be lost).
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from .model import ALL_PROTOCOLS, Interface, SecurityRule, Subnet

UPLINK = "up"                      # the VPC namespace's veth to Nimbo's edge namespace
IMDS_ADDRESS = "169.254.169.254"
BRIDGE_TABLE = ("bridge", "nimbo")
FILTER_TABLE = ("inet", "nimbo")
NAT_TABLE = ("ip", "nimbo_nat")
MAX_PORTS = 0xFFF                  # 12 bits of the packet mark per direction
COUNTER_KINDS = ("o", "i", "xo", "xi", "zo", "zi")
_PROTO_NUMBERS = {"-1": ALL_PROTOCOLS, "6": "tcp", "17": "udp", "1": "icmp"}


@dataclass(frozen=True)
class Port:
    """An attached interface inside a VPC namespace: its tap and its mark index (1..4095)."""
    interface: Interface
    subnet: Subnet
    tap: str
    index: int


@dataclass
class VpcRules:
    """Everything the rulesets of one VPC namespace depend on."""
    ports: list[Port]
    subnets: list[Subnet]
    # subnet id -> availability zone (learned from its interfaces; "" unknown)
    subnet_az: dict[str, str] = field(default_factory=dict)
    vpc_cidrs: tuple[str, ...] = ()


def interface_routes(rules: VpcRules) -> list[tuple[Subnet, str, Port]]:
    """(subnet, destination, target port) of the routes to an attached network interface."""
    by_id = {p.interface.interface_id: p for p in rules.ports}
    out = []
    for subnet in rules.subnets:
        for route in subnet.routes:
            if route.target in by_id:
                out.append((subnet, _cidr(route.destination), by_id[route.target]))
    return out


def counter_name(kind: str, interface_id: str) -> str:
    return f"{kind}_{interface_id.replace('-', '_')}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '') + '"'


def _set(items) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _cidr(value: str) -> str:
    net = ipaddress.ip_network(value, strict=False)
    if net.version != 4:
        raise ValueError(f"only IPv4 CIDRs are supported: {value}")
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def normalize_protocol(protocol: str) -> str:
    p = str(protocol).strip().lower()
    return _PROTO_NUMBERS.get(p, p)


def rule_match(rule: SecurityRule) -> str:
    """The nft match of one security group rule (the peer address is the remote side)."""
    peer = "daddr" if rule.direction == "egress" else "saddr"
    parts = []
    cidr = _cidr(rule.cidr)
    if cidr != "0.0.0.0/0":
        parts.append(f"ip {peer} {cidr}")
    proto = normalize_protocol(rule.protocol)
    if proto in ("tcp", "udp"):
        lo, hi = int(rule.from_port), int(rule.to_port)
        if lo == -1 and hi == -1 or (lo, hi) == (0, 65535):
            parts.append(f"meta l4proto {proto}")
        else:
            if not (0 <= lo <= hi <= 65535):
                raise ValueError(f"bad port range {lo}-{hi}")
            parts.append(f"{proto} dport {lo}" if lo == hi else f"{proto} dport {lo}-{hi}")
    elif proto == "icmp":
        icmp_type, code = int(rule.from_port), int(rule.to_port)
        parts.append("ip protocol icmp")
        if icmp_type != -1:
            if not 0 <= icmp_type <= 255:
                raise ValueError(f"bad ICMP type {icmp_type}")
            parts.append(f"icmp type {icmp_type}")
            if code != -1:
                if not 0 <= code <= 255:
                    raise ValueError(f"bad ICMP code {code}")
                parts.append(f"icmp code {code}")
    elif proto != ALL_PROTOCOLS:
        number = int(proto)
        if not 0 <= number <= 255:
            raise ValueError(f"bad protocol {rule.protocol!r}")
        parts.append(f"ip protocol {number}")
    return " ".join(parts)


def _counter_decl(name: str, values: dict[str, tuple[int, int]]) -> str:
    packets, nbytes = values.get(name, (0, 0))
    return f"\tcounter {name} {{ packets {int(packets)} bytes {int(nbytes)} }}"


def _header(family: str, table: str) -> list[str]:
    # create-if-missing, then delete, then define: one atomic replacement in one transaction
    return [f"table {family} {table} {{}}", f"delete table {family} {table}", f"table {family} {table} {{"]


def _vmap(selector: str, entries: list[tuple[str, str]]) -> list[str]:
    if not entries:
        return []
    return [f"\t\t{selector} vmap {{ " + ", ".join(f"{k} : {v}" for k, v in entries) + " }"]


def bridge_ruleset(rules: VpcRules, counters: dict[str, tuple[int, int]]) -> str:
    ports = rules.ports
    out = _header(*BRIDGE_TABLE)
    for p in ports:
        for kind in ("o", "i"):
            out.append(_counter_decl(counter_name(kind, p.interface.interface_id), counters))
    out += ["\tchain c_pre {", "\t\ttype filter hook prerouting priority -200; policy accept;"]
    out += _vmap("iifname", [(_q(p.tap), f"jump from_{p.index}") for p in ports])
    out += ["\t}"]
    for p in ports:
        iface = p.interface
        ips = [str(ipaddress.ip_address(ip)) for ip in iface.private_ips]
        out += [f"\tchain from_{p.index} {{",
                f"\t\tether saddr != {iface.mac.lower()} drop",
                "\t\tether type ip6 drop",
                f"\t\tether type arp arp saddr ether != {iface.mac.lower()} drop"]
        if iface.source_dest_check:
            out += [f"\t\tether type arp arp saddr ip != {_set(ips + ['0.0.0.0'])} drop",
                    f"\t\tether type ip ip saddr != {_set(ips + ['0.0.0.0'])} drop"]
        out += ["\t\tudp sport 67 drop",
                f"\t\tcounter name {counter_name('o', iface.interface_id)}",
                f"\t\tmeta mark set {p.index:#x}",
                "\t}"]
    out += ["\tchain c_forward {", "\t\ttype filter hook forward priority -200; policy accept;"]
    out += _vmap("oifname", [(_q(p.tap), f"jump to_{p.index}") for p in ports])
    out += ["\t}"]
    for p in ports:
        out += [f"\tchain to_{p.index} {{", f"\t\tmeta mark set meta mark or {p.index << 12:#x}", "\t}"]
    out += ["\tchain c_post {", "\t\ttype filter hook postrouting priority 200; policy accept;"]
    out += _vmap("oifname", [(_q(p.tap), f"jump cnt_{p.index}") for p in ports])
    out += ["\t}"]
    for p in ports:
        out += [f"\tchain cnt_{p.index} {{",
                f"\t\tcounter name {counter_name('i', p.interface.interface_id)}", "\t}"]
    out.append("}")
    return "\n".join(out) + "\n"


def _igw_destinations(subnet: Subnet) -> list[str]:
    return [_cidr(r.destination) for r in subnet.routes if r.target == "igw"]


def public_pairs(rules: VpcRules) -> list[tuple[str, str]]:
    """(public, private) pairs that are live: the interface's subnet routes to an igw."""
    pairs = []
    for p in rules.ports:
        if _igw_destinations(p.subnet):
            for public, private in p.interface.public_ips:
                pairs.append((str(ipaddress.ip_address(public)), str(ipaddress.ip_address(private))))
    return pairs


def filter_ruleset(rules: VpcRules, counters: dict[str, tuple[int, int]]) -> str:
    ports = rules.ports
    out = _header(*FILTER_TABLE)
    for p in ports:
        for kind in ("xo", "xi", "zo", "zi"):
            out.append(_counter_decl(counter_name(kind, p.interface.interface_id), counters))
    by_ip = [(str(ipaddress.ip_address(ip)), f"jump in_{p.index}")
             for p in ports for ip in p.interface.private_ips]
    pairs = public_pairs(rules)
    public_privates = {private for _, private in pairs}

    out += ["\tchain c_forward {", "\t\ttype filter hook forward priority filter; policy accept;",
            "\t\tct state established,related accept", "\t\tct state invalid drop"]
    out += _vmap("meta mark and 0xfff", [(f"{p.index:#x}", f"jump eg_{p.index}") for p in ports])
    # the internet gate: only addresses with a public address, in subnets routing to an igw
    for subnet in rules.subnets:
        dests = _igw_destinations(subnet)
        privates = [ip for p in ports if p.subnet.subnet_id == subnet.subnet_id
                    for ip in p.interface.private_ips if str(ipaddress.ip_address(ip)) in public_privates]
        if dests and privates:
            out.append(f"\t\toifname {_q(UPLINK)} ip saddr {_set(privates)} ip daddr {_set(dests)} accept")
    out.append(f"\t\toifname {_q(UPLINK)} drop")
    if public_privates:
        out.append(f"\t\tiifname {_q(UPLINK)} ip daddr != {_set(sorted(public_privates))} drop")
    else:
        out.append(f"\t\tiifname {_q(UPLINK)} drop")
    out += _vmap("meta mark and 0xfff000", [(f"{p.index << 12:#x}", f"jump in_{p.index}") for p in ports])
    out += _vmap("ip daddr", by_ip)
    # routed to a network interface (a NAT instance): that interface's ingress rules decide
    local = _set([_cidr(c) for c in rules.vpc_cidrs]) if rules.vpc_cidrs else ""
    for subnet, destination, port in interface_routes(rules):
        out.append(f"\t\tip saddr {_cidr(subnet.cidr)} ip daddr {destination} "
                   + (f"ip daddr != {local} " if local else "") + f"jump in_{port.index}")
    out += ["\t\tdrop", "\t}"]

    out += ["\tchain c_output {", "\t\ttype filter hook output priority filter; policy accept;"]
    # the metadata relay's packets (the SYN-ACK too: tcp_fwmark_accept marks them with the
    # guest's port) leave with the interface's hop limit as TTL
    for p in ports:
        if p.interface.metadata_enabled:
            hop = max(1, min(64, int(p.interface.metadata_hop_limit)))
            out.append(f"\t\tip saddr {IMDS_ADDRESS} tcp sport 80 meta mark and 0xfff == {p.index:#x} ip ttl set {hop}")
    out += ["\t\tct state established,related accept",
            "\t\tudp sport { 53, 67 } accept",
            f"\t\toifname {_q(UPLINK)} accept"]
    out += _vmap("ip daddr", by_ip)
    out += ["\t}"]

    metadata = [(f"{p.index:#x}", "accept") for p in ports if p.interface.metadata_enabled]
    out += ["\tchain c_input {", "\t\ttype filter hook input priority filter; policy accept;",
            '\t\tiifname "lo" accept', "\t\tct state established,related accept",
            f"\t\tiifname {_q(UPLINK)} drop"]
    if metadata:
        out.append(f"\t\tip daddr {IMDS_ADDRESS} tcp dport 80 meta mark and 0xfff vmap {{ "
                   + ", ".join(f"{k} : {v}" for k, v in metadata) + " }")
    out += [f"\t\tip daddr {IMDS_ADDRESS} drop",
            "\t\tudp dport { 53, 67 } accept", "\t\ttcp dport 53 accept",
            "\t\ticmp type echo-request accept",
            "\t\tdrop", "\t}"]

    for p in ports:
        out.append(f"\tchain eg_{p.index} {{")
        for rule in p.interface.rules:
            if rule.direction == "egress":
                out.append(f"\t\t{rule_match(rule)} return".replace("\t\t ", "\t\t"))
        out += ["\t\tdrop", "\t}", f"\tchain in_{p.index} {{"]
        for rule in p.interface.rules:
            if rule.direction == "ingress":
                out.append(f"\t\t{rule_match(rule)} accept".replace("\t\t ", "\t\t"))
        out += ["\t\tdrop", "\t}"]

    # metering after filtering: what crossed the uplink (internet) or reached another AZ
    out += ["\tchain c_meter {", "\t\ttype filter hook postrouting priority 100; policy accept;"]
    for p in ports:
        iid = p.interface.interface_id
        ips = _set([str(ipaddress.ip_address(ip)) for ip in p.interface.private_ips])
        out.append(f"\t\toifname {_q(UPLINK)} meta mark and 0xfff == {p.index:#x} counter name {counter_name('xo', iid)}")
        out.append(f"\t\tiifname {_q(UPLINK)} ip daddr {ips} counter name {counter_name('xi', iid)}")
        zone = p.interface.availability_zone
        others = [_cidr(s.cidr) for s in rules.subnets
                  if zone and rules.subnet_az.get(s.subnet_id, zone) != zone]
        if others:
            out.append(f"\t\toifname != {_q(UPLINK)} meta mark and 0xfff == {p.index:#x} ip daddr {_set(others)} "
                       f"counter name {counter_name('zo', iid)}")
            out.append(f"\t\tiifname != {_q(UPLINK)} ip saddr {_set(others)} ip daddr {ips} "
                       f"counter name {counter_name('zi', iid)}")
    out += ["\t}", "}"]
    return "\n".join(out) + "\n"


def nat_ruleset(rules: VpcRules) -> str:
    pairs = public_pairs(rules)
    out = _header(*NAT_TABLE)
    out += ["\tchain c_pre {", "\t\ttype nat hook prerouting priority dstnat; policy accept;"]
    if pairs:
        out.append(f"\t\tiifname {_q(UPLINK)} dnat to ip daddr map {{ "
                   + ", ".join(f"{pub} : {priv}" for pub, priv in pairs) + " }")
    out += ["\t}", "\tchain c_post {", "\t\ttype nat hook postrouting priority srcnat; policy accept;"]
    snat = dict((priv, pub) for pub, priv in reversed(pairs))   # the first public per private
    if snat:
        out.append(f"\t\toifname {_q(UPLINK)} snat to ip saddr map {{ "
                   + ", ".join(f"{priv} : {pub}" for priv, pub in snat.items()) + " }")
    out += ["\t}", "}"]
    return "\n".join(out) + "\n"


def vpc_ruleset(rules: VpcRules, counters: dict[str, tuple[int, int]]) -> str:
    """The whole ruleset of a VPC namespace as one nft transaction."""
    if len(rules.ports) > MAX_PORTS:
        raise ValueError(f"at most {MAX_PORTS} attached interfaces per VPC")
    return bridge_ruleset(rules, counters) + filter_ruleset(rules, counters) + nat_ruleset(rules)


def parse_counters(nft_json: str) -> dict[str, tuple[int, int]]:
    """``nft -j list counters`` -> {name: (packets, bytes)} of Nimbo's tables."""
    if not nft_json.strip():
        return {}
    values: dict[str, tuple[int, int]] = {}
    for item in json.loads(nft_json).get("nftables", []):
        c = item.get("counter")
        if c and (c.get("family"), c.get("table")) in (BRIDGE_TABLE, FILTER_TABLE):
            values[c["name"]] = (int(c.get("packets", 0)), int(c.get("bytes", 0)))
    return values


def remove_tables() -> str:
    out = []
    for family, table in (BRIDGE_TABLE, FILTER_TABLE, NAT_TABLE):
        out += [f"table {family} {table} {{}}", f"delete table {family} {table}"]
    return "\n".join(out) + "\n"
