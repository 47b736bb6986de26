"""The libvirt driver and the cluster driver against libvirt's test driver (``test:///``: an
in-process hypervisor with real libvirt semantics, no VMs): define/start/stop/destroy, the
classification of stops, events, re-adoption by a new driver (a Nimbo restart) by name and uuid,
and two hosts behind one ClusterDriver. The real-QEMU behaviour is in tests/vm/test_libvirt_vm.py."""
from __future__ import annotations

import asyncio

import pytest

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install libvirt-python)")

from backend.driver import InvalidStateError, VMSpec, VMState, VMNotFoundError   # noqa: E402
from backend.libvirt.cluster import ClusterDriver   # noqa: E402
from backend.libvirt.driver import LibvirtDriver   # noqa: E402


def spec(vm_id: str, **kw) -> VMSpec:
    return VMSpec(vm_id=vm_id, root_disk="/nonexistent/root.qcow2", memory_mib=128,
                  smbios_uuid=kw.pop("uuid", None), **kw)


@pytest.fixture
def node_uri():
    """test:///default: one hypervisor state shared by every connection of this process, so a
    second driver (a restarted Nimbo) and the test itself see the same domains. (A test:///FILE
    URI makes a private state per connection.)"""
    return "test:///default"


async def wait_for(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_lifecycle_events_and_classification(tmp_path, node_uri):
    driver = LibvirtDriver(str(tmp_path / "vms"), node_uri, local=False, flavour="qemu")
    events = []
    driver.add_listener(lambda e: events.append((e.vm_id, e.kind, e.state)))
    info = await driver.create(spec("i-0000000000000001a"))
    assert info.state == VMState.CREATING
    assert (await driver.state("i-unknown")).state == VMState.MISSING
    info = await driver.start("i-0000000000000001a")
    assert info.state == VMState.RUNNING and info.started_at is not None
    conn = libvirt.open(node_uri)   # the host sees a defined, running domain named by the vm id
    assert conn.lookupByName("i-0000000000000001a").isActive()
    info = await driver.stop("i-0000000000000001a", timeout=5)
    assert info.state == VMState.STOPPED and info.exit_reason == "stopped by host (graceful)"
    await wait_for(lambda: ("i-0000000000000001a", "stopped", VMState.STOPPED) in events)
    assert ("i-0000000000000001a", "started", VMState.RUNNING) in events
    # the domain is destroyed behind Nimbo's back: a shutdown, not Nimbo's stop
    await driver.start("i-0000000000000001a")
    conn.lookupByName("i-0000000000000001a").destroy()
    await wait_for(lambda: events[-1][1] == "shutdown")
    info = await driver.state("i-0000000000000001a")
    assert info.state == VMState.SHUTDOWN and info.exit_reason == "hypervisor terminated"
    with pytest.raises(InvalidStateError):
        await driver.reboot("i-0000000000000001a")
    await driver.destroy("i-0000000000000001a")
    assert (await driver.state("i-0000000000000001a")).state == VMState.MISSING
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("i-0000000000000001a")
    await driver.close()


async def test_a_new_driver_readopts_running_domains_by_name_and_uuid(tmp_path, node_uri):
    first = LibvirtDriver(str(tmp_path / "vms"), node_uri, local=False, flavour="qemu")
    await first.create(spec("i-0000000000000002a", uuid="ec2a1b2c-0000-4000-8000-00000000002a"))
    await first.start("i-0000000000000002a")
    daemon = libvirt.open(node_uri)   # test:///default lives while a connection does: the "daemon"
    await first.close()   # Nimbo stops; the domain keeps running
    second = LibvirtDriver(str(tmp_path / "vms"), node_uri, local=False, flavour="qemu")
    (info,) = await second.list()
    assert info.vm_id == "i-0000000000000002a" and info.state == VMState.RUNNING
    assert libvirt.open(node_uri).lookupByName("i-0000000000000002a").UUIDString() == \
        "ec2a1b2c-0000-4000-8000-00000000002a"
    events = []
    second.add_listener(lambda e: events.append(e.kind))
    await second.stop("i-0000000000000002a", force=True)
    assert (await second.state("i-0000000000000002a")).state == VMState.STOPPED
    await wait_for(lambda: "stopped" in events)
    await second.close()
    daemon.close()


async def test_a_foreign_domain_with_our_name_is_not_adopted(tmp_path, node_uri):
    driver = LibvirtDriver(str(tmp_path / "vms"), node_uri, local=False, flavour="qemu")
    await driver.create(spec("i-0000000000000003a", uuid="ec2a1b2c-0000-4000-8000-00000000003a"))
    await driver.start("i-0000000000000003a")
    conn = libvirt.open(node_uri)
    dom = conn.lookupByName("i-0000000000000003a")
    dom.destroy()
    dom.undefine()
    conn.defineXML("<domain type='test'><name>i-0000000000000003a</name><memory>131072</memory>"
                   "<uuid>11111111-2222-3333-4444-555555555555</uuid><os><type>hvm</type></os></domain>").create()
    assert [i.vm_id for i in await driver.list()] == []   # running, but not ours: not adopted
    await driver.close()


async def test_cluster_routes_each_vm_to_its_host(tmp_path, node_uri):
    other = tmp_path / "other.xml"
    other.write_text("<node/>")
    hosts = {"h-0000000000000000a": node_uri, "h-0000000000000000b": f"test://{other}"}
    cluster = ClusterDriver(str(tmp_path / "libvirt"), hosts,
                            factory=lambda folder, uri: LibvirtDriver(folder, uri, local=False, flavour="qemu"))
    events = []
    cluster.add_listener(lambda e: events.append((e.vm_id, e.kind)))
    await cluster.create(spec("i-000000000000000a1", host_id="h-0000000000000000a"))
    await cluster.create(spec("i-000000000000000b1", host_id="h-0000000000000000b"))
    await cluster.start("i-000000000000000a1")
    await cluster.start("i-000000000000000b1")
    assert cluster.host_of("i-000000000000000a1") == "h-0000000000000000a"
    assert cluster.host_of("i-000000000000000b1") == "h-0000000000000000b"
    # each host's own libvirt connection holds its VM only (test:///FILE is a private hypervisor)
    names_a = cluster.hosts["h-0000000000000000a"].conn.sync(lambda c: [d.name() for d in c.listAllDomains()])
    names_b = cluster.hosts["h-0000000000000000b"].conn.sync(lambda c: [d.name() for d in c.listAllDomains()])
    assert "i-000000000000000a1" in names_a and "i-000000000000000b1" not in names_a
    assert names_b == ["i-000000000000000b1"]
    assert sorted(i.vm_id for i in await cluster.list()) == ["i-000000000000000a1", "i-000000000000000b1"]
    await cluster.stop("i-000000000000000b1", force=True)
    await wait_for(lambda: ("i-000000000000000b1", "stopped") in events)
    assert (await cluster.state("i-000000000000000a1")).state == VMState.RUNNING
    with pytest.raises(VMNotFoundError):
        await cluster.start("i-nowhere")
    with pytest.raises(VMNotFoundError):
        await cluster.create(spec("i-000000000000000c1", host_id="h-0000000000000000c"))
    await cluster.close()


async def test_a_container_gets_its_root_filesystem_from_the_images_initramfs(tmp_path, node_uri):
    """The lxc flavour on the test driver: the rootfs is unpacked from the image's newc initramfs,
    the container domain is defined, volumes are refused. (libvirt_lxc itself cannot start in this
    nested machine: see the README's container notes.)"""
    from backend.libvirt import containers   # noqa: PLC0415
    from backend.driver import DiskError   # noqa: PLC0415
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(_cpio({"bin/busybox": b"\x7fELF-busybox", "etc/hostname": b"tiny\n"}, {"bin/sh": "busybox"}))
    driver = LibvirtDriver(str(tmp_path / "vms"), node_uri, local=False, flavour="lxc")
    await driver.create(spec("i-00000000000000c01", initrd=str(initrd), kernel="/k"))
    info = await driver.start("i-00000000000000c01")
    assert info.state == VMState.RUNNING
    rootfs = tmp_path / "vms" / "i-00000000000000c01" / "rootfs"
    assert (rootfs / "bin" / "busybox").read_bytes() == b"\x7fELF-busybox"
    assert (rootfs / "bin" / "sh").is_symlink()
    xml = libvirt.open(node_uri).lookupByName("i-00000000000000c01").XMLDesc(0)
    assert "<init>/bin/sh</init>" in xml and str(rootfs) in xml
    (rootfs / containers.CONSOLE_FILE).write_text("nimbo-container: userspace up\n")
    assert b"userspace up" in await driver.console_output("i-00000000000000c01")
    with pytest.raises(DiskError, match="container"):
        await driver.attach_disk("i-00000000000000c01", "vol0abc", str(initrd))
    await driver.destroy("i-00000000000000c01")
    await driver.close()


def test_unpacking_refuses_paths_that_leave_the_root(tmp_path):
    from backend.libvirt.containers import unpack_newc   # noqa: PLC0415
    bad = tmp_path / "bad.cpio"
    bad.write_bytes(_cpio({"../../escape": b"x"}, {}))
    with pytest.raises(ValueError, match="leaves the root"):
        unpack_newc(str(bad), str(tmp_path / "root"))
    assert not (tmp_path / "escape").exists()


def _cpio(files: dict[str, bytes], links: dict[str, str]) -> bytes:
    """A newc archive (the format of the tiny image's initramfs)."""
    out = b""
    entries = [(name, 0o100755, data) for name, data in files.items()] + \
        [(name, 0o120777, target.encode()) for name, target in links.items()] + [("TRAILER!!!", 0, b"")]
    for ino, (name, mode, data) in enumerate(entries, 1):
        raw = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += header + raw + b"\0" * (-(len(header) + len(raw)) % 4) + data + b"\0" * (-len(data) % 4)
    return out
