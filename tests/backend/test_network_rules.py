"""The data path's generated text, without root: nftables rulesets, dnsmasq files, device names,
the state file, and QEMU's tap options. Where root and nft are at hand, every generated ruleset
is also checked by ``nft -c`` inside a throwaway network namespace (``unshare -n``)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest

from backend.driver import InvalidStateError, NicAttachment, VMSpec
from backend.fake import FakeDriver
from backend.network import dhcp, nftables
from backend.network.model import NetworkState, Route, SecurityRule, Vpc
from backend.network.namespace import (bridge_name, namespace_name, state_from_json, state_to_json,
                                       tap_name, transit_addresses, validate)
from backend.qemu_cmdline import VMPaths, build_command, nic_hotplug_args, nic_ids
from tests.backend.netns_helpers import iface, subnet, two_vpcs


def rules_of(state: NetworkState, vpc_id: str = "vpc-0aaa") -> nftables.VpcRules:
    subnets = [s for s in state.subnets if s.vpc_id == vpc_id]
    by_id = {s.subnet_id: s for s in subnets}
    attached = sorted((i for i in state.interfaces if i.instance_id and i.subnet_id in by_id),
                      key=lambda i: i.interface_id)
    ports = [nftables.Port(i, by_id[i.subnet_id], tap_name(i.interface_id), n)
             for n, i in enumerate(attached, start=1)]
    azs = {i.subnet_id: i.availability_zone for i in state.interfaces if i.subnet_id in by_id}
    return nftables.VpcRules(ports, subnets, azs)


def nft_check(text: str) -> None:
    """Syntax and semantics by the kernel's own parser, in a namespace that dies at once."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        return
    proc = subprocess.run(["unshare", "-n", "nft", "-c", "-f", "-"], input=text, text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr + text


@pytest.mark.parametrize("rule,match", [
    (SecurityRule("ingress", "tcp", 22, 22), "tcp dport 22"),
    (SecurityRule("ingress", "tcp", 8000, 8100, "10.0.0.0/8"), "ip saddr 10.0.0.0/8 tcp dport 8000-8100"),
    (SecurityRule("egress", "udp", 53, 53, "10.0.0.2/32"), "ip daddr 10.0.0.2 udp dport 53"),
    (SecurityRule("ingress", "tcp", -1, -1), "meta l4proto tcp"),
    (SecurityRule("ingress", "6", 0, 65535), "meta l4proto tcp"),
    (SecurityRule("ingress", "17", 123, 123), "udp dport 123"),
    (SecurityRule("ingress", "icmp", 8, -1), "ip protocol icmp icmp type 8"),
    (SecurityRule("ingress", "icmp", 3, 4), "ip protocol icmp icmp type 3 icmp code 4"),
    (SecurityRule("ingress", "icmp", -1, -1), "ip protocol icmp"),
    (SecurityRule("ingress", "1", -1, -1, "192.168.0.0/16"), "ip saddr 192.168.0.0/16 ip protocol icmp"),
    (SecurityRule("ingress", "50"), "ip protocol 50"),
    (SecurityRule("egress"), ""),
    (SecurityRule("egress", "-1", cidr="172.16.0.0/12"), "ip daddr 172.16.0.0/12"),
])
def test_security_group_rule_matches(rule, match):
    assert nftables.rule_match(rule) == match


@pytest.mark.parametrize("rule", [SecurityRule("ingress", "tcp", 30, 20), SecurityRule("ingress", "icmp", 300, -1),
                                  SecurityRule("ingress", "999"), SecurityRule("ingress", cidr="::/0")])
def test_bad_rules_are_refused(rule):
    with pytest.raises(ValueError):
        nftables.rule_match(rule)


def test_ruleset_anti_spoofing_groups_nat_and_metadata():
    state = two_vpcs()
    text = nftables.vpc_ruleset(rules_of(state), {"o_eni_0a01": (3, 300)})
    nft_check(text)
    # counters carried over from the previous ruleset, others start at zero
    assert "counter o_eni_0a01 { packets 3 bytes 300 }" in text
    assert "counter i_eni_0a02 { packets 0 bytes 0 }" in text
    # anti-spoofing: MAC always, addresses with source/dest check
    assert "ether saddr != 02:00:00:00:0a:01 drop" in text
    assert "ether type ip ip saddr != { 10.0.1.5, 0.0.0.0 } drop" in text
    assert "arp saddr ip != { 10.0.1.5, 0.0.0.0 } drop" in text
    # groups: ingress ends in drop, allows accept; egress allows return
    in1 = text[text.index("chain in_1 {"):]
    assert in1.splitlines()[1:5] == ["\t\ttcp dport 22 accept", "\t\tip protocol icmp icmp type 8 accept",
                                     "\t\tdrop", "\t}"]
    assert "chain eg_1 {\n\t\treturn\n\t\tdrop" in text
    assert "chain eg_2 {\n\t\treturn\n\t\tdrop" in text
    # internet: only a1 (public address, igw route) may leave; inbound only to it
    assert 'oifname "up" ip saddr 10.0.1.5 ip daddr 0.0.0.0/0 accept' in text
    assert 'iifname "up" ip daddr != 10.0.1.5 drop' in text
    assert 'dnat to ip daddr map { 198.51.100.5 : 10.0.1.5 }' in text
    assert 'snat to ip saddr map { 10.0.1.5 : 198.51.100.5 }' in text
    # metadata for both ports
    assert "meta mark and 0xfff vmap { 0x1 : accept, 0x2 : accept }" in text

    nocheck = dataclasses.replace(state.interfaces[0], source_dest_check=False, metadata_enabled=False)
    text = nftables.vpc_ruleset(rules_of(dataclasses.replace(state, interfaces=(nocheck,) + state.interfaces[1:])), {})
    nft_check(text)
    assert "ether saddr != 02:00:00:00:0a:01 drop" in text
    assert "ip saddr != { 10.0.1.5, 0.0.0.0 }" not in text
    assert "meta mark and 0xfff vmap { 0x2 : accept }" in text


def test_no_igw_route_means_no_internet_and_no_nat():
    state = two_vpcs()
    private = dataclasses.replace(state, subnets=(dataclasses.replace(state.subnets[0], routes=()),) + state.subnets[1:])
    text = nftables.vpc_ruleset(rules_of(private), {})
    nft_check(text)
    assert "dnat" not in text and "snat" not in text
    assert 'oifname "up" drop' in text and 'iifname "up" drop' in text
    assert nftables.public_pairs(rules_of(private)) == []


def test_other_availability_zone_counters():
    state = NetworkState((Vpc("vpc-0aaa", ("10.0.0.0/16",)),),
                         (subnet("subnet-0a1", "vpc-0aaa"), subnet("subnet-0a2", "vpc-0aaa", "10.0.2.0/24")),
                         (iface("eni-0a01", "subnet-0a1", "10.0.1.5", "02:00:00:00:0a:01", az="us-east-1a"),
                          iface("eni-0a02", "subnet-0a2", "10.0.2.5", "02:00:00:00:0a:02", az="us-east-1b")))
    text = nftables.vpc_ruleset(rules_of(state), {})
    nft_check(text)
    assert "ip daddr 10.0.2.0/24 counter name zo_eni_0a01" in text
    assert "ip saddr 10.0.2.0/24 ip daddr 10.0.1.5 counter name zi_eni_0a01" in text
    assert "ip daddr 10.0.1.0/24 counter name zo_eni_0a02" in text


def test_parse_counters():
    raw = ('{"nftables": [{"metainfo": {}}, {"counter": {"family": "bridge", "name": "o_eni_1", "table": "nimbo",'
           ' "packets": 5, "bytes": 100}}, {"counter": {"family": "inet", "name": "xo_eni_1", "table": "nimbo",'
           ' "packets": 1, "bytes": 60}}, {"counter": {"family": "inet", "name": "other", "table": "theirs",'
           ' "packets": 1, "bytes": 1}}]}')
    assert nftables.parse_counters(raw) == {"o_eni_1": (5, 100), "xo_eni_1": (1, 60)}
    assert nftables.parse_counters("") == {}


def test_dnsmasq_files():
    state = two_vpcs()
    sp = [dhcp.SubnetPort(state.subnets[0], "b0a1")]
    conf = dhcp.config(state.vpcs[0], sp, "/run/x/vpc-0aaa")
    assert "dhcp-range=set:ssubnet0a1,10.0.1.0,static,255.255.255.0,1h" in conf
    assert "dhcp-option=tag:ssubnet0a1,option:router,10.0.1.1" in conf
    assert "dhcp-option=tag:ssubnet0a1,option:dns-server,10.0.0.2" in conf
    assert "dhcp-option=tag:ssubnet0a1,option:domain-name,ec2.internal" in conf
    assert "interface=b0a1" in conf and "listen-address=10.0.0.2" in conf and "no-resolv" in conf
    custom = dataclasses.replace(state.subnets[0], domain_name_servers=("10.0.0.2", "10.9.9.9"), domain_name="corp.example")
    conf = dhcp.config(state.vpcs[0], [dhcp.SubnetPort(custom, "b0a1")], "/run/x")
    assert "option:dns-server,10.0.0.2,10.9.9.9" in conf and "option:domain-name,corp.example" in conf
    a = list(state.interfaces[:2])
    assert dhcp.dhcp_hosts(a) == "02:00:00:00:0a:01,10.0.1.5,ip-10-0-1-5\n02:00:00:00:0a:02,10.0.1.6,ip-10-0-1-6\n"
    assert dhcp.host_names(a, {"subnet-0a1": "ec2.internal"}).splitlines()[0] == "10.0.1.5 ip-10-0-1-5.ec2.internal ip-10-0-1-5"
    named = dataclasses.replace(a[0], hostname="ip-10-0-1-5.us-west-2.compute.internal")
    assert dhcp.dhcp_hosts([named]) == "02:00:00:00:0a:01,10.0.1.5,ip-10-0-1-5\n"
    assert dhcp.resolver_address(Vpc("vpc-1", ("172.31.0.0/16", "10.1.0.0/16"))) == "172.31.0.2"


def test_device_names_and_addresses():
    assert tap_name("eni-0a01") == "t0a01"
    long_tap = tap_name("eni-0123456789abcdef0")
    assert len(long_tap) == 15 and long_tap.startswith("t") and long_tap != tap_name("eni-0123456789abcdef1")
    assert len(bridge_name("subnet-0123456789abcdef0")) == 15
    assert namespace_name("/tmp/a") == namespace_name("/tmp/a/") != namespace_name("/tmp/b")
    assert namespace_name("/tmp/a").startswith("nimbo-") and len(namespace_name("/tmp/a")) == 14
    assert transit_addresses(0) == ("169.254.0.1", "169.254.0.2")
    assert transit_addresses(65) == ("169.254.1.5", "169.254.1.6")


def test_state_file_round_trip_and_validation():
    state = two_vpcs()
    assert state_from_json(state_to_json(state)) == state
    with pytest.raises(ValueError, match="unknown subnet"):
        validate(dataclasses.replace(state, subnets=state.subnets[1:]))
    with pytest.raises(ValueError, match="used twice"):
        dup = dataclasses.replace(state.interfaces[1], private_ips=("10.0.1.5",))
        validate(dataclasses.replace(state, interfaces=(state.interfaces[0], dup)))
    with pytest.raises(ValueError, match="outside"):
        validate(dataclasses.replace(state, subnets=(dataclasses.replace(state.subnets[0], router="10.9.0.1"),)
                                     + state.subnets[1:]))
    with pytest.raises(ValueError, match="port range"):   # refused before the state file is written
        bad = dataclasses.replace(state.interfaces[0], rules=(SecurityRule("ingress", "tcp", 9, 1),))
        validate(dataclasses.replace(state, interfaces=(bad,) + state.interfaces[1:]))
    with pytest.raises(ValueError, match="not one of its addresses"):
        bad = dataclasses.replace(state.interfaces[0], public_ips=(("198.51.100.9", "10.0.1.99"),))
        validate(dataclasses.replace(state, interfaces=(bad,) + state.interfaces[1:]))
    validate(state)   # the same address in two VPCs is fine


def test_qemu_command_line_with_taps():
    nics = [NicAttachment("eni-0a01", "02:00:00:00:0A:01", "t0a01", "nimbo-1234abcd-vpc-0aaa"),
            NicAttachment("eni-0a02", "02:00:00:00:0a:02", "t0a02", "nimbo-1234abcd-vpc-0aaa")]
    spec = VMSpec(vm_id="i-0abc", root_disk="/d/root.qcow2", nics=nics, imds_socket="/run/imds.sock")
    argv = build_command(spec, VMPaths("/s/i-0abc"))
    assert argv[:4] == ["ip", "netns", "exec", "nimbo-1234abcd-vpc-0aaa"] and argv[4] == "qemu-system-x86_64"
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    (nd0, dev0), (nd1, dev1) = nic_ids("eni-0a01"), nic_ids("eni-0a02")
    assert netdevs == [f"tap,id={nd0},ifname=t0a01,script=no,downscript=no",
                       f"tap,id={nd1},ifname=t0a02,script=no,downscript=no"]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert f"virtio-net-pci,netdev={nd0},id={dev0},mac=02:00:00:00:0a:01,addr=0x10" in devices
    assert f"virtio-net-pci,netdev={nd1},id={dev1},mac=02:00:00:00:0a:02,addr=0x11" in devices
    assert nic_hotplug_args(nics[1]) == (
        {"type": "tap", "id": nd1, "ifname": "t0a02", "script": "no", "downscript": "no"},
        {"driver": "virtio-net-pci", "id": dev1, "netdev": nd1, "mac": "02:00:00:00:0a:02"})
    assert not any("guestfwd" in a or a.startswith("user,") for a in argv)
    with pytest.raises(ValueError, match="one namespace"):
        build_command(dataclasses.replace(spec, nics=[nics[0], dataclasses.replace(nics[1], netns="other")]),
                      VMPaths("/s/i-0abc"))
    with pytest.raises(ValueError, match="tap name"):
        build_command(dataclasses.replace(spec, nics=[dataclasses.replace(nics[0], tap="x" * 16)]), VMPaths("/s/x"))
    # no nics: user-mode networking as before
    plain = build_command(VMSpec(vm_id="i-0abc", root_disk="/d/root.qcow2"), VMPaths("/s/i-0abc"))
    assert plain[0] == "qemu-system-x86_64" and any(a.startswith("user,") for a in plain)


async def test_fake_driver_accepts_nics():
    driver = FakeDriver()
    nic = NicAttachment("eni-0a01", "02:00:00:00:0a:01", "t0a01", "nimbo-1234abcd-vpc-0aaa")
    await driver.create(VMSpec(vm_id="i-1", root_disk="/d/r", nics=[nic]))
    await driver.start("i-1")
    assert (await driver.spec("i-1")).nics == [nic]
    assert b"eth0 eni-0a01 mac 02:00:00:00:0a:01 tap t0a01" in await driver.console_output("i-1")
    with pytest.raises(ValueError):
        await driver.create(VMSpec(vm_id="i-2", root_disk="/d/r", nics=[nic, nic]))
    # hot-plug in the same namespace; a VM on user-mode networking cannot take a tap while it runs
    second = NicAttachment("eni-0a02", "02:00:00:00:0a:02", "t0a02", nic.netns)
    await driver.attach_nic("i-1", second)
    assert [n.interface_id for n in (await driver.spec("i-1")).nics] == ["eni-0a01", "eni-0a02"]
    with pytest.raises(InvalidStateError):
        await driver.attach_nic("i-1", dataclasses.replace(second, interface_id="eni-0a03", tap="t0a03",
                                                           mac="02:00:00:00:0a:03", netns="elsewhere"))
    await driver.detach_nic("i-1", "eni-0a01")
    assert [n.interface_id for n in (await driver.spec("i-1")).nics] == ["eni-0a02"]
    with pytest.raises(InvalidStateError):
        await driver.detach_nic("i-1", "eni-0a01")
    await driver.create(VMSpec(vm_id="i-3", root_disk="/d/r"))
    await driver.start("i-3")
    with pytest.raises(InvalidStateError):
        await driver.attach_nic("i-3", nic)
    await driver.stop("i-3")
    await driver.attach_nic("i-3", nic)   # stopped: remembered for the next start


def test_route_targets_other_than_igw_do_not_open_the_internet():
    state = two_vpcs()
    eni_route = dataclasses.replace(state.subnets[0], routes=(Route("0.0.0.0/0", "eni-0a02"),))
    rules = rules_of(dataclasses.replace(state, subnets=(eni_route,) + state.subnets[1:]))
    assert nftables.public_pairs(rules) == []
    text = nftables.vpc_ruleset(rules, {})
    assert "ip daddr 0.0.0.0/0 accept" not in text
