"""The namespace data path as root, without VMs: veth "guests" stand in for QEMU's taps.

What the kernel must show after ``apply``: namespaces, bridges, taps, dnsmasq, nftables counters;
a smaller or empty state leaves nothing behind; ``open()`` sweeps what a crash left; security
groups (stateful, revocation within a second), anti-spoofing, VPC isolation with overlapping
CIDRs, 1:1 NAT from Nimbo's namespace, the metadata relay naming the right interface, counters.
Skipped cleanly when not root or when ip/nft/dnsmasq are missing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from backend.network import dhcp
from backend.network.model import NetworkState, Route, SecurityRule
from backend.network.namespace import NamespaceDataPath, list_namespaces
from tests.backend.imds_stub import IMDSStub
from tests.conftest import REPO
from tests.backend.netns_helpers import (EGRESS_ALL, PING, SSH, FakeGuests, connect, iface, need_root,
                                         sh, subnet, two_vpcs)


# counts the packets arriving from the metadata address by their TTL (inside a fake guest)
TTL_PROBE = """table ip probe {
\tcounter ttl3 { }
\tcounter other { }
\tchain c_in {
\t\ttype filter hook input priority 0; policy accept;
\t\tip saddr 169.254.169.254 ip ttl 3 counter name ttl3
\t\tip saddr 169.254.169.254 ip ttl != 3 counter name other
\t}
}
"""


@pytest.fixture
async def dp():
    need_root()
    work = tempfile.mkdtemp(prefix="nimbo-net-", dir="/tmp")
    path = NamespaceDataPath(os.path.join(work, "data"), os.path.join(work, "imds.sock"))
    path.work = work
    try:
        yield path
    finally:
        await path.destroy()
        leftovers = [ns for ns in list_namespaces() if ns.startswith(path.name)]
        shutil.rmtree(work, ignore_errors=True)
        assert leftovers == [], f"namespaces left behind: {leftovers}"


def links(ns: str) -> dict[str, str]:
    """ifname -> kind inside a namespace."""
    out = json.loads(sh("ip", "-n", ns, "-d", "-j", "link", "show").stdout)
    return {l["ifname"]: (l.get("linkinfo") or {}).get("info_kind", "") for l in out}


def dnsmasq_pids(dp: NamespaceDataPath) -> dict[str, int]:
    out = {}
    for entry in os.listdir(dp.run_dir) if os.path.isdir(dp.run_dir) else []:
        pid = dhcp.running_pid(os.path.join(dp.run_dir, entry))
        if pid:
            out[entry] = pid
    return out


async def test_apply_is_idempotent_and_a_smaller_state_leaves_nothing_behind(dp):
    await dp.open()
    state = two_vpcs()
    await dp.apply(state)
    a, b = dp.vpc_namespace("vpc-0aaa"), dp.vpc_namespace("vpc-0bbb")
    assert {dp.name, a, b} <= set(list_namespaces())
    la = links(a)
    assert la["b0a1"] == "bridge" and la["t0a01"] == "tun" and la["t0a02"] == "tun" and la["up"] == "veth"
    assert links(b)["t0b01"] == "tun"
    assert sh("ip", "-n", a, "-br", "addr", "show", "b0a1").stdout.split()[2] == "10.0.1.1/24"
    pids = dnsmasq_pids(dp)
    assert set(pids) == {"vpc-0aaa", "vpc-0bbb"}
    with open(os.path.join(dp.run_dir, "vpc-0aaa", dhcp.HOSTS)) as f:
        assert f.read() == "02:00:00:00:0a:01,10.0.1.5,ip-10-0-1-5\n02:00:00:00:0a:02,10.0.1.6,ip-10-0-1-6\n"
    counters = sh("ip", "netns", "exec", a, "nft", "list", "counters").stdout
    for name in ("o_eni_0a01", "i_eni_0a01", "xo_eni_0a01", "xi_eni_0a01", "o_eni_0a02"):
        assert f"counter {name} " in counters
    assert "198.51.100.5 via 169.254.0." in sh("ip", "-n", dp.name, "route").stdout
    assert dp.nic("eni-0a01").tap == "t0a01" and dp.nic("eni-0a01").netns == a
    assert set(await dp.counters()) == {"eni-0a01", "eni-0a02", "eni-0b01"}

    await dp.apply(state)    # idempotent: the same dnsmasqs keep running
    assert dnsmasq_pids(dp) == pids

    # smaller: a2 detached, VPC B gone, a1 loses its public address
    smaller = NetworkState(state.vpcs[:1], state.subnets[:1],
                           (dataclasses.replace(state.interfaces[0], public_ips=()),
                            dataclasses.replace(state.interfaces[1], instance_id=None)))
    await dp.apply(smaller)
    assert b not in list_namespaces() and set(dnsmasq_pids(dp)) == {"vpc-0aaa"}
    assert "t0a02" not in links(a) and "t0a01" in links(a)
    assert "198.51.100.5" not in sh("ip", "-n", dp.name, "route").stdout
    assert "o_eni_0a02" not in sh("ip", "netns", "exec", a, "nft", "list", "counters").stdout
    with pytest.raises(KeyError):
        dp.nic("eni-0a02")
    # a detached interface keeps its DHCP reservation
    with open(os.path.join(dp.run_dir, "vpc-0aaa", dhcp.HOSTS)) as f:
        assert "02:00:00:00:0a:02,10.0.1.6" in f.read()

    await dp.apply(NetworkState())
    assert [ns for ns in list_namespaces() if ns.startswith(dp.name)] == [dp.name]
    assert dnsmasq_pids(dp) == {} and os.listdir(dp.run_dir) == []
    assert [l for l in links(dp.name) if l != "lo"] == []
    assert sh("ip", "-n", dp.name, "route").stdout.strip() == ""


def dhcp_lease(ns: str) -> str:
    """The address a DHCP client in ``ns`` obtains on eth0 ('' when none is offered)."""
    sh("ip", "-n", ns, "addr", "flush", "dev", "eth0")
    out = sh("ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "4", "-T", "1",
             "-s", "/bin/true", check=False)
    found = [w for line in (out.stdout + out.stderr).splitlines() if "lease of" in line
             for w in line.split()[line.split().index("of") + 1:][:1]]
    return found[0] if found else ""


async def test_an_address_passed_to_a_new_mac_is_offered_to_it_within_the_old_lease(dp):
    """An instance terminates and a new one gets its private address (as EC2 reuses addresses):
    the new MAC gets the address by DHCP at once, not after the old lease (1 h) expires."""
    if shutil.which("busybox") is None:
        pytest.skip("busybox (udhcpc) is needed")
    await dp.open()
    vpc = two_vpcs().vpcs[:1]
    sub = (subnet("subnet-0a1", "vpc-0aaa"),)
    old = iface("eni-0a01", "subnet-0a1", "10.0.1.5", "02:00:00:00:0a:01")
    successor = iface("eni-0a03", "subnet-0a1", "10.0.1.5", "02:00:00:00:0a:03")
    neighbour = iface("eni-0a02", "subnet-0a1", "10.0.1.6", "02:00:00:00:0a:02")
    guests = FakeGuests(dp)
    try:
        first = NetworkState(vpc, sub, (old, neighbour))
        await dp.apply(first)
        guests.add(old, "vpc-0aaa", "10.0.1.1")
        guests.add(neighbour, "vpc-0aaa", "10.0.1.1")
        await dp.apply(first)
        assert dhcp_lease(guests.names["eni-0a01"]) == "10.0.1.5"
        assert dhcp_lease(guests.names["eni-0a02"]) == "10.0.1.6"
        leases = os.path.join(dp.run_dir, "vpc-0aaa", "leases")
        with open(leases) as f:
            assert "02:00:00:00:0a:01 10.0.1.5" in f.read()

        second = NetworkState(vpc, sub, (successor, neighbour))
        await dp.apply(second)
        guests.add(successor, "vpc-0aaa", "10.0.1.1")
        await dp.apply(second)
        assert dhcp_lease(guests.names["eni-0a03"]) == "10.0.1.5"
        with open(leases) as f:
            text = f.read()
        assert "02:00:00:00:0a:01" not in text and "02:00:00:00:0a:02 10.0.1.6" in text  # the neighbour keeps its lease
    finally:
        guests.close()


async def test_open_re_adopts_and_sweeps_what_a_crash_left(dp):
    await dp.open()
    await dp.apply(two_vpcs())
    a = dp.vpc_namespace("vpc-0aaa")
    tap_index = json.loads(sh("ip", "-n", a, "-j", "link", "show", "t0a01").stdout)[0]["ifindex"]
    pids = dnsmasq_pids(dp)
    await dp.close()
    # a crash: a tap made but never recorded, a VPC namespace of a VPC that was never recorded
    sh("ip", "-n", a, "tuntap", "add", "dev", "t0dead", "mode", "tap")
    sh("ip", "netns", "add", dp.vpc_namespace("vpc-0dead"))
    again = NamespaceDataPath(dp.data_dir, dp.relay.socket_path)
    await again.open()
    try:
        assert "t0dead" not in links(a)
        assert dp.vpc_namespace("vpc-0dead") not in list_namespaces()
        # what the state names was kept as it was (same tap, same dnsmasq)
        assert json.loads(sh("ip", "-n", a, "-j", "link", "show", "t0a01").stdout)[0]["ifindex"] == tap_index
        assert dnsmasq_pids(again) == pids
        assert again.nic("eni-0a01").tap == "t0a01"
    finally:
        await again.close()


async def test_security_groups_isolation_nat_metadata_and_counters(dp):
    await dp.open()
    state = two_vpcs()
    await dp.apply(state)
    guests = FakeGuests(dp)
    sock = dp.relay.socket_path
    try:
        a1 = guests.add(state.interfaces[0], "vpc-0aaa", "10.0.1.1")
        a2 = guests.add(state.interfaces[1], "vpc-0aaa", "10.0.1.1")
        b1 = guests.add(state.interfaces[2], "vpc-0bbb", "10.0.1.1")
        await dp.apply(state)   # the data path bridges and filters the guests' ports
        guests.serve("eni-0a01", 22, 8080)
        guests.serve("eni-0a02", 22)
        guests.serve("eni-0b01", 22)

        # same subnet: allowed port yes, other port no (default deny ingress)
        assert await connect(a2, "10.0.1.5", 22) == "hello 22"
        assert await connect(a2, "10.0.1.5", 8080) == ""
        # another VPC with the same CIDR reaches neither the private nor the public address
        assert await connect(b1, "10.0.1.6", 22) == ""
        assert await connect(b1, "198.51.100.5", 22) == ""
        # the public address reaches a1 from Nimbo's namespace (1:1 NAT); a2 has none
        assert await connect(dp.name, "198.51.100.5", 22) == "hello 22"
        assert await connect(dp.name, "198.51.100.5", 8080) == ""
        # the VPC's router namespace (nimbo net exec --vpc) obeys the groups too
        a = dp.vpc_namespace("vpc-0aaa")
        assert await connect(a, "10.0.1.5", 22) == "hello 22"
        assert await connect(a, "10.0.1.6", 8080) == ""

        # anti-spoofing: a2 sending from a1's address gets nowhere, with source/dest check off it does
        sh("ip", "-n", a2, "addr", "add", "10.0.1.77/24", "dev", "eth0")
        sh("ip", "-n", a2, "route", "replace", "10.0.1.5/32", "dev", "eth0", "src", "10.0.1.77")
        assert await connect(a2, "10.0.1.5", 22) == ""
        nocheck = dataclasses.replace(state, interfaces=(state.interfaces[0],
                                      dataclasses.replace(state.interfaces[1], source_dest_check=False),
                                      state.interfaces[2]))
        await dp.apply(nocheck)
        assert await connect(a2, "10.0.1.5", 22) == "hello 22"
        sh("ip", "-n", a2, "route", "del", "10.0.1.5/32")
        await dp.apply(state)

        # revoking the rule: the next connection fails within a second
        revoked = two_vpcs(a1_rules=(PING, EGRESS_ALL))
        t0 = time.monotonic()
        await dp.apply(revoked)
        assert await connect(a2, "10.0.1.5", 22, timeout=0.5) == ""
        assert time.monotonic() - t0 < 1.5
        # a rule from a CIDR: only a2's address may reach port 8080
        await dp.apply(two_vpcs(a1_rules=(SecurityRule("ingress", "tcp", 8000, 8100, "10.0.1.6/32"),)))
        assert await connect(a2, "10.0.1.5", 8080) == "hello 8080"
        assert await connect(dp.name, "198.51.100.5", 8080) == ""
        await dp.apply(state)

        # the metadata relay names the interface, even where two VPCs use the same address
        async with IMDSStub(sock, {"instance-id": "i-x"}, require_token=False) as imds:
            request = "GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n"
            assert (await connect(a1, "169.254.169.254", 80, payload=request)).endswith("i-x")
            assert (await connect(b1, "169.254.169.254", 80, payload=request)).endswith("i-x")
            assert imds.interfaces == ["eni-0a01", "eni-0b01"]
            # metadata off for a1: refused before reaching Nimbo
            await dp.apply(two_vpcs(metadata_enabled=False))
            assert await connect(a1, "169.254.169.254", 80, payload=request) == ""
            assert imds.interfaces == ["eni-0a01", "eni-0b01"]
            await dp.apply(state)

            # the relay's answers leave with the interface's hop limit as IP TTL
            await dp.apply(two_vpcs(metadata_hop_limit=3))
            sh("ip", "netns", "exec", a1, "nft", "-f", "-", input=TTL_PROBE)
            assert (await connect(a1, "169.254.169.254", 80, payload=request)).endswith("i-x")
            ttl = sh("ip", "netns", "exec", a1, "nft", "list", "counters").stdout
            assert "ttl3 {\n\t\tpackets 0" not in ttl and "other {\n\t\tpackets 0 " in ttl, ttl
            await dp.apply(state)

        # ICMP by type: a1 allows echo requests, a2 has no ICMP rule
        assert sh("ip", "netns", "exec", a2, "busybox", "ping", "-c", "1", "-W", "1", "10.0.1.5", check=False).returncode == 0
        assert sh("ip", "netns", "exec", a1, "busybox", "ping", "-c", "1", "-W", "1", "10.0.1.6", check=False).returncode != 0
        # the VPC resolver (base + 2) answers the private host names
        dns = sh("ip", "netns", "exec", a2, "busybox", "nslookup", "ip-10-0-1-5.ec2.internal", "10.0.0.2", check=False)
        assert "10.0.1.5" in dns.stdout.split("ip-10-0-1-5.ec2.internal", 1)[-1], dns.stdout + dns.stderr

        counters = await dp.counters()
        a1c = counters["eni-0a01"]
        assert a1c.bytes_in > 0 and a1c.bytes_out > 0
        assert a1c.bytes_in_internet > 0 and a1c.bytes_out_internet > 0   # through the public address
        assert counters["eni-0a02"].bytes_in_internet == 0
        # counters survive a ruleset replacement
        before = a1c.bytes_in
        await dp.apply(two_vpcs(a1_rules=(SSH,)))
        assert (await dp.counters())["eni-0a01"].bytes_in >= before
    finally:
        guests.close()


async def test_nimbo_net_exec_and_destroy(dp):
    await dp.open()
    await dp.apply(two_vpcs())
    await dp.close()

    def nimbo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway.cli", "net", *args], cwd=REPO, text=True,
                              capture_output=True, timeout=60)

    edge = nimbo("exec", "--data-dir", dp.data_dir, "--", "ip", "route")
    assert edge.returncode == 0 and "198.51.100.5 via 169.254.0.2" in edge.stdout, edge.stderr
    vpc = nimbo("exec", "--data-dir", dp.data_dir, "--vpc", "vpc-0bbb", "--", "ip", "-br", "addr", "show", "b0b1")
    assert vpc.stdout.split()[2] == "10.0.1.1/24"
    assert nimbo("exec", "--data-dir", dp.data_dir, "--", "sh", "-c", "exit 3").returncode == 3
    unknown = nimbo("exec", "--data-dir", dp.data_dir, "--vpc", "vpc-0ccc", "--", "true")
    assert unknown.returncode == 2 and "no network namespace" in unknown.stderr
    assert nimbo("destroy", "--data-dir", dp.data_dir).returncode == 0
    assert [ns for ns in list_namespaces() if ns.startswith(dp.name)] == []
    assert not os.path.exists(dp.run_dir) and not os.path.exists(dp.state_path)
    assert nimbo("exec", "--data-dir", dp.data_dir, "--", "true").returncode == 2


async def test_route_to_a_nat_instance(dp):
    """A private subnet (another zone) whose default route targets a1 (source/dest check off,
    masquerading): its guest reaches "the internet" (a server in Nimbo's edge namespace) only
    through a1; traffic between the zones shows in the other-AZ counters."""
    await dp.open()
    base = two_vpcs(a1_rules=(SSH, SecurityRule("ingress", cidr="10.0.2.0/24"), EGRESS_ALL),
                    source_dest_check=False)
    private = subnet("subnet-0a2", "vpc-0aaa", "10.0.2.0/24")
    p1 = iface("eni-0a21", "subnet-0a2", "10.0.2.5", "02:00:00:00:0a:21", az="us-east-1b")
    routed = dataclasses.replace(private, routes=(Route("0.0.0.0/0", "eni-0a01"),))
    state = dataclasses.replace(base, subnets=base.subnets + (routed,), interfaces=base.interfaces + (p1,))
    await dp.apply(state)
    guests = FakeGuests(dp)
    try:
        nat = guests.add(state.interfaces[0], "vpc-0aaa", "10.0.1.1")
        guest = guests.add(p1, "vpc-0aaa", "10.0.2.1")
        await dp.apply(state)
        sh("ip", "netns", "exec", nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", nat, "nft", "-f", "-", input=MASQUERADE)
        edge_ip = "203.0.113.10"     # "the internet": an address on the edge namespace's loopback
        sh("ip", "-n", dp.name, "addr", "add", f"{edge_ip}/32", "dev", "lo")
        guests.serve("", 9000, netns=dp.name)
        assert await connect(guest, edge_ip, 9000) == "hello 9000"
        # the VPC's own addresses stay local: p1 reaches a2 directly, not through a1
        guests.serve("eni-0a02", 22, netns=guests.add(state.interfaces[1], "vpc-0aaa", "10.0.1.1"))
        await dp.apply(state)
        assert await connect(guest, "10.0.1.6", 22) == "hello 22"
        # ... and that traffic crossed availability zones (us-east-1b -> us-east-1a)
        counters = await dp.counters()
        assert counters["eni-0a21"].bytes_out_other_az > 0 and counters["eni-0a21"].bytes_in_other_az > 0
        assert counters["eni-0a02"].bytes_in_other_az > 0
        assert counters["eni-0a21"].bytes_out_internet == 0     # its internet went through a1
        assert counters["eni-0a01"].bytes_out_internet > 0
        # without the route the private subnet has no way out
        await dp.apply(dataclasses.replace(state, subnets=base.subnets + (private,)))
        assert await connect(guest, edge_ip, 9000) == ""
        # a route to an interface that is not attached is a blackhole
        detached = dataclasses.replace(state.interfaces[0], instance_id=None)
        await dp.apply(dataclasses.replace(state, interfaces=(detached,) + state.interfaces[1:]))
        assert "blackhole default" in sh("ip", "-n", dp.vpc_namespace("vpc-0aaa"), "route", "show", "table", "all").stdout
    finally:
        guests.close()


MASQUERADE = """table ip nat {
\tchain post {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eth0" ip saddr 10.0.2.0/24 masquerade
\t}
}
"""


def test_single_host_extra_in_a_throwaway_host_namespace():
    """``host_access`` changes the host's interfaces and routes, so it runs here inside a network
    namespace standing in for the host: the pool is routed into the edge, a public address
    answers from the "host", and destroy() takes the veth and the route away again."""
    need_root()
    work = tempfile.mkdtemp(prefix="nimbo-net-", dir="/tmp")
    host = f"nimbo-th-{os.getpid()}"
    sh("ip", "netns", "add", host)
    try:
        sh("ip", "-n", host, "link", "set", "lo", "up")
        out = subprocess.run(["ip", "netns", "exec", host, sys.executable, "-m", "tests.backend.netns_host_access", work],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["route"].startswith("198.51.100.0/24 via 169.254.255.250 dev nimbo")
        assert result["reached"] == "hello 22"
        assert result["private"] == ""          # private addresses stay inside their VPC
        assert result["host_self"] == "hello 9001" and result["guest_to_host"] == ""
        assert result["links_after"] == ["lo"] and result["route_after"] == ""
    finally:
        sh("ip", "netns", "del", host, check=False)
        shutil.rmtree(work, ignore_errors=True)
