"""The libvirt domain XML: what the QEMU/KVM domain says (virtio, serial console, SMBIOS uuid,
TCG), and every hypervisor's domain validated against libvirt's own RelaxNG schemas
(``virt-xml-validate``). Xen, ESX, VirtualBox and Hyper-V are checked by schema only: no such
host exists here."""
from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from backend.driver import DiskAttachment, VMSpec
from backend.libvirt import containers, domain_xml
from backend.libvirt.domain_xml import HostOptions, UdpNic, build_domain, to_string

UUID = "ec2a1b2c-0000-4000-8000-0000000000aa"


def spec(**kw) -> VMSpec:
    base = dict(vm_id="i-0123456789abcdef0", root_disk="/var/lib/nimbo/vol-1.qcow2", vcpus=2, memory_mib=512,
                kernel="/img/vmlinux", initrd="/img/initrd.cpio", cmdline="console=ttyS0",
                smbios_uuid=UUID, root_disk_serial="vol0123456789abcdef0",
                disks=[DiskAttachment("vol0aaaaaaaaaaaaaaaa", "/var/lib/nimbo/vol-2.qcow2")])
    base.update(kw)
    return VMSpec(**base)


def test_qemu_domain_runs_the_spec_under_tcg_with_virtio_and_a_file_console():
    dom = build_domain(spec(), HostOptions(flavour="qemu", console_path="/d/console.log"))
    assert dom.get("type") == "qemu"      # no usable KVM: TCG
    assert dom.findtext("name") == "i-0123456789abcdef0"
    assert dom.findtext("uuid") == UUID   # the domain uuid is the SMBIOS uuid cloud-init reads
    assert dom.find("memory").text == "512" and dom.find("memory").get("unit") == "MiB"
    assert dom.findtext("vcpu") == "2"
    entries = {e.get("name"): e.text for e in dom.iter("entry")}
    assert entries == {"uuid": UUID, "serial": UUID}
    assert dom.findtext("os/kernel") == "/img/vmlinux" and dom.findtext("os/cmdline") == "console=ttyS0"
    assert dom.find("features/tcg/tb-cache").text == "32"
    disks = dom.findall("devices/disk")
    assert [(d.find("target").get("dev"), d.find("target").get("bus"), d.findtext("serial")) for d in disks] == [
        ("vda", "virtio", "vol0123456789abcdef0"), ("vdb", "virtio", "vol0aaaaaaaaaaaaaaaa")]
    assert disks[1].find("alias").get("name").startswith("ua-")
    serial = dom.find("devices/serial")
    assert serial.get("type") == "file" and serial.find("source").get("path") == "/d/console.log"
    assert serial.find("source").get("append") == "on"
    assert dom.find("devices/panic").get("model") == "isa"
    assert dom.find("devices/interface").get("type") == "user"   # no taps: user-mode networking
    assert dom.find("seclabel/label").text == "+0:+0"


def test_kvm_domain_has_no_tcg_options_and_udp_nics_point_at_the_relay():
    nic = UdpNic("eni-1", "0E:00:00:00:00:01", qemu_port=40001, relay_port=40002)
    dom = build_domain(spec(), HostOptions(flavour="kvm", udp_nics=[nic], user_network=False))
    assert dom.get("type") == "kvm" and dom.find("features/tcg") is None
    (iface,) = dom.findall("devices/interface")
    assert iface.get("type") == "udp" and iface.find("mac").get("address") == "0e:00:00:00:00:01"
    assert iface.find("source").get("port") == "40002"
    assert iface.find("source/local").get("port") == "40001"
    assert iface.find("source").get("address") == "127.0.0.1"
    assert iface.find("model").get("type") == "virtio"


def test_disk_targets_count_like_linux():
    flavour = domain_xml.FLAVOURS["qemu"]
    assert [domain_xml.disk_target(i, flavour) for i in (0, 1, 25, 26, 27)] == ["vda", "vdb", "vdz", "vdaa", "vdab"]


def test_uuid_without_smbios_is_stable_per_vm():
    a = domain_xml.domain_uuid(spec(smbios_uuid=None))
    assert a == domain_xml.domain_uuid(spec(smbios_uuid=None)) != domain_xml.domain_uuid(
        spec(smbios_uuid=None, vm_id="i-other"))


def _validate(tmp_path, xml: str) -> subprocess.CompletedProcess:
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    return subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)


needs_validator = pytest.mark.skipif(
    shutil.which("virt-xml-validate") is None or shutil.which("xmllint") is None,
    reason="virt-xml-validate (libvirt-clients) and xmllint (libxml2-utils) are needed: the Makefile's APT_LIBVIRT")


@needs_validator
@pytest.mark.parametrize("flavour", ["qemu", "kvm", "xen", "vmware", "vbox", "hyperv"])
def test_each_hypervisor_domain_validates_against_libvirts_schema(tmp_path, flavour):
    nics = [UdpNic("eni-1", "0e:00:00:00:00:01", 40001, 40002)] if flavour in ("qemu", "kvm") else []
    s = spec(mac="0e:00:00:00:00:01")
    dom = build_domain(s, HostOptions(flavour=flavour, console_path="/d/console.log", udp_nics=nics))
    assert dom.get("type") == domain_xml.FLAVOURS[flavour].domain_type
    result = _validate(tmp_path, to_string(dom))
    assert result.returncode == 0, result.stderr + result.stdout


@needs_validator
def test_container_domain_validates_against_libvirts_schema(tmp_path):
    dom = containers.build_container(spec(kernel=None, initrd=None, cmdline=None), "/var/lib/nimbo/rootfs/i-1",
                                     console_path=None, bridge=None)
    assert dom.get("type") == "lxc" and dom.findtext("os/type") == "exe"
    result = _validate(tmp_path, to_string(dom))
    assert result.returncode == 0, result.stderr + result.stdout


@needs_validator
def test_the_validator_rejects_a_broken_domain(tmp_path):
    """The schema check can fail: a domain without a name is refused."""
    dom = build_domain(spec(), HostOptions())
    dom.remove(dom.find("name"))
    assert _validate(tmp_path, to_string(dom)).returncode != 0


def test_non_qemu_hypervisors_use_their_own_disk_bus_and_nic():
    for flavour, bus, model in (("xen", "xen", None), ("vmware", "scsi", "vmxnet3"), ("vbox", "sata", "virtio"),
                                ("hyperv", "scsi", None)):
        dom = build_domain(spec(mac="0e:00:00:00:00:01"), HostOptions(flavour=flavour))
        assert {d.find("target").get("bus") for d in dom.findall("devices/disk")} == {bus}
        iface = dom.find("devices/interface")
        assert iface.get("type") == "bridge" and iface.find("source").get("bridge") == "nimbo0"
        assert (iface.find("model").get("type") if iface.find("model") is not None else None) == model
        ET.fromstring(to_string(dom))
