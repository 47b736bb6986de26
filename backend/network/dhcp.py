"""DHCP and DNS of one VPC: a dnsmasq (Debian's dnsmasq-base) inside the VPC's router namespace.

One dnsmasq per VPC rather than per subnet: the VPC's resolver address (the VPC base + 2) is one
per VPC, so one process serves DHCP on every subnet's bridge (a ``dhcp-range`` per subnet, tagged,
with that subnet's router, DNS servers and domain name) and answers DNS for the VPC's private
host names on the resolver address and the routers. Leases are static only (``static`` ranges):
an unknown MAC gets nothing. There is no upstream resolver (``no-resolv``): names outside the VPC
do not resolve unless a later change adds a forwarder.

Files live in the data path's run directory (``<run>/<vpc-id>/``): ``dnsmasq.conf`` (restart on
change), ``dhcp-hosts`` and ``hosts`` (re-read on SIGHUP), ``dnsmasq.pid``, ``leases``.
A lease outlives its reservation in dnsmasq (a SIGHUP does not drop it): when a private address
passes to another MAC (an instance terminated, a new one given its address within the lease
time), dnsmasq would refuse the new MAC ("not using configured address ... leased to ...").
So when a reservation goes away, dnsmasq is restarted on a lease file without the leases that no
reservation names any more (``stale_leases``/``prune_leases``).
Crash story: dnsmasq daemonises and outlives Nimbo; it is found again by its pid file and its
command line (which names its own config path), so a stale pid can never hit another process.
"""
from __future__ import annotations

import ipaddress
import os
import re
import signal
from dataclasses import dataclass

from .model import Interface, Subnet, Vpc

CONF = "dnsmasq.conf"
HOSTS = "dhcp-hosts"
NAMES = "hosts"
PIDFILE = "dnsmasq.pid"
LEASE_TIME = "1h"
_LABEL = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class SubnetPort:
    subnet: Subnet
    bridge: str


def tag(subnet_id: str) -> str:
    return "s" + re.sub(r"[^A-Za-z0-9]", "", subnet_id)[-20:]


def short_hostname(hostname: str) -> str:
    label = _LABEL.sub("-", hostname.split(".", 1)[0].lower()).strip("-")
    return label[:63]


def resolver_address(vpc: Vpc) -> str:
    """AWS's Amazon-provided DNS: the primary CIDR's base + 2."""
    net = ipaddress.ip_network(vpc.cidrs[0], strict=False)
    return str(net.network_address + 2)


def config(vpc: Vpc, subnets: list[SubnetPort], run_dir: str) -> str:
    lines = ["# dnsmasq of a Nimbo VPC router namespace; generated, do not edit",
             f"pid-file={os.path.join(run_dir, PIDFILE)}",
             f"dhcp-leasefile={os.path.join(run_dir, 'leases')}",
             f"dhcp-hostsfile={os.path.join(run_dir, HOSTS)}",
             f"addn-hosts={os.path.join(run_dir, NAMES)}",
             "user=root", "group=root",
             "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "dhcp-authoritative", "quiet-dhcp",
             f"log-facility={os.path.join(run_dir, 'dnsmasq.log')}",
             f"listen-address={resolver_address(vpc)}",
             "except-interface=up"]
    for sp in subnets:
        s = sp.subnet
        net = ipaddress.ip_network(s.cidr, strict=False)
        t = tag(s.subnet_id)
        servers = ",".join(s.domain_name_servers or (s.dns,))
        lines += [f"interface={sp.bridge}",
                  f"dhcp-range=set:{t},{net.network_address},static,{net.netmask},{LEASE_TIME}",
                  f"dhcp-option=tag:{t},option:router,{s.router}",
                  f"dhcp-option=tag:{t},option:dns-server,{servers}"]
        if s.domain_name:
            lines.append(f"dhcp-option=tag:{t},option:domain-name,{s.domain_name}")
    return "\n".join(lines) + "\n"


def dhcp_hosts(interfaces: list[Interface]) -> str:
    """One static reservation per interface: MAC -> primary address (+ host name)."""
    lines = []
    for iface in sorted(interfaces, key=lambda i: i.interface_id):
        if not iface.private_ips:
            continue
        entry = f"{iface.mac.lower()},{ipaddress.ip_address(iface.private_ips[0])}"
        name = short_hostname(iface.hostname) if iface.hostname else ""
        if name:
            entry += f",{name}"
        lines.append(entry)
    return "\n".join(lines) + ("\n" if lines else "")


def host_names(interfaces: list[Interface], domains: dict[str, str]) -> str:
    """The VPC's private DNS names (hosts format): FQDN and short name of each primary address."""
    lines = []
    for iface in sorted(interfaces, key=lambda i: i.interface_id):
        if not iface.private_ips or not iface.hostname:
            continue
        short = short_hostname(iface.hostname)
        fqdn = iface.hostname.lower() if "." in iface.hostname else (
            f"{short}.{domains[iface.subnet_id]}" if domains.get(iface.subnet_id) else short)
        lines.append(f"{ipaddress.ip_address(iface.private_ips[0])} {fqdn}" + (f" {short}" if fqdn != short else ""))
    return "\n".join(lines) + ("\n" if lines else "")


def _reservations(hosts_text: str) -> set[tuple[str, str]]:
    pairs = set()
    for line in hosts_text.splitlines():
        parts = line.split(",")
        if len(parts) >= 2:
            pairs.add((parts[0].lower(), parts[1]))
    return pairs


def _lease_lines(run_dir: str) -> list[str]:
    try:
        with open(os.path.join(run_dir, "leases")) as f:
            return f.read().splitlines()
    except OSError:
        return []


def _lease_is_reserved(line: str, reserved: set[tuple[str, str]]) -> bool:
    """A lease line (``expiry mac ip name client-id``) whose MAC still holds that address."""
    parts = line.split()
    return len(parts) < 3 or (parts[1].lower(), parts[2]) in reserved


def stale_leases(run_dir: str, hosts_text: str) -> list[str]:
    """The leases of ``run_dir`` that no reservation of ``hosts_text`` names."""
    reserved = _reservations(hosts_text)
    return [line for line in _lease_lines(run_dir) if not _lease_is_reserved(line, reserved)]


def prune_leases(run_dir: str, hosts_text: str) -> None:
    """Drop the stale leases from the lease file (while dnsmasq does not run: it owns the file)."""
    reserved = _reservations(hosts_text)
    kept = [line for line in _lease_lines(run_dir) if _lease_is_reserved(line, reserved)]
    path = os.path.join(run_dir, "leases")
    with open(path + ".tmp", "w") as f:
        f.write("".join(line + "\n" for line in kept))
    os.replace(path + ".tmp", path)


def running_pid(run_dir: str) -> int | None:
    """The pid of this VPC's dnsmasq when it runs (pid file + command line naming our config)."""
    try:
        with open(os.path.join(run_dir, PIDFILE)) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    conf = os.path.join(run_dir, CONF).encode()
    if any(arg.endswith(conf) for arg in cmdline) and os.path.basename(cmdline[0]) == b"dnsmasq":
        return pid
    return None


def command(netns: str, run_dir: str) -> list[str]:
    return ["ip", "netns", "exec", netns, "dnsmasq", f"--conf-file={os.path.join(run_dir, CONF)}"]


def stop(run_dir: str) -> bool:
    pid = running_pid(run_dir)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def reload(run_dir: str) -> bool:
    pid = running_pid(run_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True
