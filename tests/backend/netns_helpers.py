"""Helpers of the data path tests: hand-built network states and "guests" made of namespaces.

A fake guest is a network namespace of the test's own (``nimbo-tg-...``) whose ``eth0`` is one
end of a veth pair; the other end carries the interface's tap name inside the VPC namespace, so
the data path bridges and filters it exactly like a QEMU tap. All traffic stays inside these
namespaces.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

import pytest

from backend.network.model import (Interface, NetworkState, Route, SecurityRule, Subnet, Vpc)
from backend.network.namespace import NamespaceDataPath, available, tap_name

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "netns_tcp_server.py")

SSH = SecurityRule("ingress", "tcp", 22, 22)
PING = SecurityRule("ingress", "icmp", 8, -1)
EGRESS_ALL = SecurityRule("egress")


def need_root() -> None:
    ok, why = available()
    if not ok:
        pytest.skip(f"the namespace data path is unavailable: {why}")


def subnet(sid: str, vpc: str, cidr: str = "10.0.1.0/24", igw: bool = False) -> Subnet:
    base = cidr.rsplit(".", 1)[0]
    return Subnet(sid, vpc, cidr, f"{base}.1", "10.0.0.2", "ec2.internal",
                  routes=(Route("0.0.0.0/0", "igw"),) if igw else ())


def iface(eni: str, sid: str, ip: str, mac: str, rules=(SSH, PING, EGRESS_ALL), public=None,
          instance: str | None = "i-x", az: str = "us-east-1a", **kw) -> Interface:
    return Interface(eni, sid, mac, (ip,), instance, hostname="ip-" + ip.replace(".", "-"),
                     rules=tuple(rules), public_ips=((public, ip),) if public else (),
                     availability_zone=az, **kw)


def two_vpcs(a1_rules=(SSH, PING, EGRESS_ALL), **a1_kw) -> NetworkState:
    """VPC A (10.0.0.0/16, subnet with an igw route) with a1 (public 198.51.100.5) and a2;
    VPC B with the same CIDR and b1 at a1's private address."""
    return NetworkState(
        (Vpc("vpc-0aaa", ("10.0.0.0/16",)), Vpc("vpc-0bbb", ("10.0.0.0/16",))),
        (subnet("subnet-0a1", "vpc-0aaa", igw=True), subnet("subnet-0b1", "vpc-0bbb")),
        (iface("eni-0a01", "subnet-0a1", "10.0.1.5", "02:00:00:00:0a:01", a1_rules,
               public="198.51.100.5", **a1_kw),
         iface("eni-0a02", "subnet-0a1", "10.0.1.6", "02:00:00:00:0a:02", (SSH, EGRESS_ALL)),
         iface("eni-0b01", "subnet-0b1", "10.0.1.5", "02:00:00:00:0b:01")))


def sh(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30, input=input)


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


class FakeGuests:
    """Namespaces standing in for guests; removed by ``close()``."""

    def __init__(self, dp: NamespaceDataPath) -> None:
        self.dp = dp
        self.names: dict[str, str] = {}      # interface id -> guest namespace
        self.servers: list[subprocess.Popen] = []

    def add(self, i: Interface, vpc_id: str, router: str) -> str:
        ns = f"nimbo-tg-{i.interface_id[-6:]}-{os.getpid()}"
        vpc_ns = self.dp.vpc_namespace(vpc_id)
        tap = tap_name(i.interface_id)
        sh("ip", "-n", vpc_ns, "link", "del", tap, check=False)      # the real tap the data path made
        sh("ip", "netns", "add", ns)
        self.names[i.interface_id] = ns
        sh("ip", "-n", ns, "link", "add", "eth0", "address", i.mac, "type", "veth", "peer", "name", tap,
           "netns", vpc_ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{i.private_ips[0]}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", router)
        return ns

    def serve(self, interface_id: str, *ports: int, netns: str | None = None) -> None:
        """A TCP server in the guest (or in ``netns``) answering ``hello <port>`` on each port."""
        proc = subprocess.Popen(["ip", "netns", "exec", netns or self.names[interface_id], sys.executable,
                                 SERVER, *map(str, ports)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "listening"
        self.servers.append(proc)

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for ns in self.names.values():
            sh("ip", "netns", "del", ns, check=False)


async def connect(ns: str, host: str, port: int, timeout: float = 1.0, payload: str = "") -> str:
    """``hello <port>`` when a TCP connection from namespace ``ns`` gets through, else ''."""
    code = ("import socket,sys\n"
            "try:\n"
            f" s=socket.create_connection(({host!r},{port}),timeout={timeout})\n"
            f" s.sendall({payload.encode()!r}); s.settimeout({timeout * 2})\n"
            " data=b''\n"
            " while True:\n"
            "  chunk=s.recv(65536)\n"
            "  if not chunk: break\n"
            "  data+=chunk\n"
            "  if not " + repr(bool(payload)) + ": break\n"
            " sys.stdout.write(data.decode(errors='replace'))\n"
            "except OSError: pass\n")
    proc = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, sys.executable, "-c", code,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout * 4 + 5)
    return out.decode().strip()


def tools_missing() -> list[str]:
    return [t for t in ("ip", "nft", "dnsmasq") if shutil.which(t) is None]
