"""Real guests on the namespace data path: the tiny image under QEMU (TCG here), driven through
the backend directly (no EC2 API), reached only inside Nimbo's namespaces.

One test, four boots: a1 and a2 share a subnet of VPC A, b1 sits in VPC B at a1's very address.
ssh with a generated key; a2 reaches a1 on the allowed port and not on another; b1 reaches
neither a1's nor a2's address nor a1's public one; a1's public address reaches it from Nimbo's
namespace; revoking the rule stops the next connection within a second; a second interface is
hot-plugged into a running guest (DHCP on eth1, ssh to it) and unplugged; the metadata relay tells
Nimbo which interface asks (each guest learns its own instance id); a file written on a1's root
volume survives a stop/start; a restart of Nimbo (new data path and driver objects) re-adopts
the guests with their connectivity. Prints boot-to-ssh times.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from backend import images
from backend.driver import VMSpec
from backend.network.namespace import NamespaceDataPath, list_namespaces
from backend.qemu import QemuDriver
from tests.backend.imds_stub import IMDSStub
from tests.backend.netns_helpers import EGRESS_ALL, PING, SSH, connect, iface, need_root, subnet, two_vpcs

pytestmark = pytest.mark.vm
BOOT_TIMEOUT = float(os.environ.get("NIMBO_VM_BOOT_TIMEOUT", "120"))
GUESTS = {"i-0a1": "eni-0a01", "i-0a2": "eni-0a02", "i-0b1": "eni-0b01"}


@pytest.fixture
async def net():
    need_root()
    for tool in ("ssh", "ssh-keygen", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    work = tempfile.mkdtemp(prefix="nimbo-nvm-", dir="/tmp")
    dp = NamespaceDataPath(os.path.join(work, "data"), os.path.join(work, "imds.sock"))
    driver = QemuDriver(os.path.join(work, "vms"))
    # RSA: what CreateKeyPair makes by default
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", os.path.join(work, "k")], check=True)
    try:
        yield work, dp, driver
    finally:
        for info in await driver.list():
            if info.state.is_active:
                await driver.stop(info.vm_id, force=True)
        await driver.close()
        await dp.destroy()
        assert not [ns for ns in list_namespaces() if ns.startswith(dp.name)]
        shutil.rmtree(work, ignore_errors=True)


async def ssh(work: str, netns: str, host: str, command: str, timeout: float = 5) -> subprocess.CompletedProcess:
    argv = ["ip", "netns", "exec", netns, "ssh", "-i", os.path.join(work, "k"), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", f"ConnectTimeout={int(timeout)}", f"root@{host}", command]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout + 30)
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


async def console_until(driver: QemuDriver, vm_id: str, needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = (await driver.console_output(vm_id, 1 << 20)).decode(errors="replace")
        if needle in out:
            return out
        assert time.monotonic() < deadline, f"no {needle!r} on the console of {vm_id}:\n{out[-2000:]}"
        await asyncio.sleep(0.2)


async def until_ssh(work: str, netns: str, host: str, started: float) -> float:
    """Seconds from ``started`` to the first successful ssh login."""
    while True:
        result = await ssh(work, netns, host, "true", timeout=3)
        if result.returncode == 0:
            return time.monotonic() - started
        assert time.monotonic() - started < BOOT_TIMEOUT, f"no ssh to {host} in {netns}: {result.stderr}"
        await asyncio.sleep(0.5)


async def test_guests_ssh_groups_isolation_public_address_metadata_and_root_volume(net, tiny_image):
    work, dp, driver = net
    state = two_vpcs()
    with open(os.path.join(work, "k.pub")) as f:
        key = f.read().strip()
    per_eni = {eni: {"instance-id": vm, "public-keys/0/openssh-key": key} for vm, eni in GUESTS.items()}
    async with IMDSStub(dp.relay.socket_path, {}, by_interface=per_eni, require_token=False) as imds:
        await dp.open()
        await dp.apply(state)
        for vm, eni in GUESTS.items():
            root = os.path.join(work, f"{vm}.qcow2")
            await images.create_overlay(tiny_image["disk"], root)
            await driver.create(VMSpec(vm_id=vm, root_disk=root, kernel=tiny_image["kernel"],
                                       initrd=tiny_image["initrd"], cmdline=tiny_image["cmdline"],
                                       nics=[dp.nic(eni)]))
        a, b = dp.vpc_namespace("vpc-0aaa"), dp.vpc_namespace("vpc-0bbb")
        started = time.monotonic()
        await asyncio.gather(*(driver.start(vm) for vm in GUESTS))
        times = await asyncio.gather(until_ssh(work, a, "10.0.1.5", started), until_ssh(work, a, "10.0.1.6", started),
                                     until_ssh(work, b, "10.0.1.5", started))
        print(f"\nboot to ssh under {driver.accel}, 3 guests at once: " + ", ".join(f"{t:.1f}s" for t in times))

        # each guest has its address by DHCP, its host name, and learnt its own instance id
        for netns, ip, vm, mac in ((a, "10.0.1.5", "i-0a1", "02:00:00:00:0a:01"), (a, "10.0.1.6", "i-0a2", "02:00:00:00:0a:02"),
                                   (b, "10.0.1.5", "i-0b1", "02:00:00:00:0b:01")):
            out = (await ssh(work, netns, ip, "hostname; cat /sys/class/net/eth0/address")).stdout.split()
            assert out == ["ip-" + ip.replace(".", "-"), mac]
            console = (await driver.console_output(vm)).decode(errors="replace")
            assert f"nimbo-init: instance-id {vm}" in console
            assert f"nimbo-init: network eth0 {ip} gateway 10.0.1.1" in console
        assert set(imds.interfaces) == set(GUESTS.values())

        # a listener on 8080 in a1 (no group allows it); a2 reaches 22 but not 8080
        await ssh(work, a, "10.0.1.5", "setsid nc -ll -p 8080 -e /bin/echo open8080 </dev/null >/dev/null 2>&1 &")
        assert "open8080" in (await ssh(work, a, "10.0.1.5", "nc -w 2 127.0.0.1 8080 </dev/null")).stdout
        probe = "nc -w 2 {} {} </dev/null; true"
        assert "SSH-2.0-dropbear" in (await ssh(work, a, "10.0.1.6", probe.format("10.0.1.5", 22))).stdout
        assert (await ssh(work, a, "10.0.1.6", probe.format("10.0.1.5", 8080))).stdout == ""
        # the other VPC: neither a2's address nor a1's public one (b1's own 10.0.1.5 is b1)
        assert (await ssh(work, b, "10.0.1.5", probe.format("10.0.1.6", 22))).stdout == ""
        assert (await ssh(work, b, "10.0.1.5", probe.format("198.51.100.5", 22))).stdout == ""
        # a1's public address from Nimbo's namespace
        public = await ssh(work, dp.name, "198.51.100.5", "cat /sys/class/net/eth0/address")
        assert public.stdout.strip() == "02:00:00:00:0a:01", public.stderr
        counters = await dp.counters()
        assert counters["eni-0a01"].bytes_in_internet > 0 and counters["eni-0a01"].bytes_out_internet > 0

        # revoke ssh on a1: the next connection fails within a second
        t0 = time.monotonic()
        await dp.apply(two_vpcs(a1_rules=(PING, EGRESS_ALL)))
        assert await connect(a, "10.0.1.5", 22, timeout=0.5) == ""
        revoke_seconds = time.monotonic() - t0
        assert revoke_seconds < 1.5
        assert (await connect(a, "10.0.1.6", 22)).startswith("SSH-2.0-dropbear")   # a2 untouched
        await dp.apply(state)
        assert (await connect(a, "10.0.1.5", 22)).startswith("SSH-2.0-dropbear")

        # a Nimbo restart: a new data path and driver re-adopt; guests, relay and groups keep working
        pids = {i.vm_id: i.pid for i in await driver.list()}
        await dp.close()
        await driver.close()
        dp = NamespaceDataPath(dp.data_dir, dp.relay.socket_path)
        await dp.open()
        driver = QemuDriver(driver.state_dir)
        assert {i.vm_id: i.pid for i in await driver.list()} == pids
        ask = "printf 'GET /latest/meta-data/instance-id HTTP/1.0\\r\\n\\r\\n' | nc -w 3 169.254.169.254 80 | tail -n 1"
        assert (await ssh(work, a, "10.0.1.6", ask)).stdout.strip() == "i-0a2"
        assert imds.interfaces[-1] == "eni-0a02"
        assert (await ssh(work, a, "10.0.1.6", probe.format("10.0.1.5", 8080))).stdout == ""

        # a second interface hot-plugged into the running a2 (another subnet): DHCP on eth1, ssh to it
        second_subnet = subnet("subnet-0a3", "vpc-0aaa", "10.0.3.0/24")
        second = iface("eni-0a31", "subnet-0a3", "10.0.3.5", "02:00:00:00:0a:31", rules=(SSH, EGRESS_ALL),
                       instance="i-0a2", device_index=1)
        plugged = dataclasses.replace(state, subnets=state.subnets + (second_subnet,),
                                      interfaces=state.interfaces + (second,))
        await dp.apply(plugged)
        await driver.attach_nic("i-0a2", dp.nic("eni-0a31"))
        await console_until(driver, "i-0a2", "nimbo-init: network eth1 10.0.3.5 gateway 10.0.3.1")
        assert (await ssh(work, a, "10.0.3.5", "cat /sys/class/net/eth1/address")).stdout.strip() == "02:00:00:00:0a:31"
        await driver.detach_nic("i-0a2", "eni-0a31")
        await dp.apply(state)
        assert [n.interface_id for n in (await driver.spec("i-0a2")).nics] == ["eni-0a02"]
        assert (await ssh(work, a, "10.0.1.6", "ls /sys/class/net")).stdout.split() == ["eth0", "lo"]

        # the root volume keeps what was written across a stop/start
        assert (await ssh(work, a, "10.0.1.5", "echo kept-$((6*7)) >/root/note; sync")).returncode == 0
        await driver.stop("i-0a1", timeout=30)
        restarted = time.monotonic()
        await driver.start("i-0a1")
        again = await until_ssh(work, a, "10.0.1.5", restarted)
        assert (await ssh(work, a, "10.0.1.5", "cat /root/note")).stdout.strip() == "kept-42"
        console = (await driver.console_output("i-0a1")).decode(errors="replace")
        assert console.count("root volume vda formatted") == 1 and console.count("root volume vda mounted") == 2
        print(f"revocation effective in {revoke_seconds:.2f}s; restart to ssh {again:.1f}s")
        await driver.close()
        await dp.close()
