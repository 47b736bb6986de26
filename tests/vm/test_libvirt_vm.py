"""A real VM through the EC2 API on the libvirt backend: ``nimbo serve --backend libvirt`` against
the system libvirtd (``qemu:///system``; started here when it does not run, as on a fresh CI
machine: ``virtlogd -d; libvirtd -d``), the tiny image, boto3.

One test: launch (the user data reads the instance id from the metadata service through the
VPC tap, reached over the loopback UDP relay), console output, a second host registered while
the server runs (libvirt's embedded QEMU driver, ``qemu:///embed``, in another zone) that the
next launch in that zone is placed on, graceful stop, start, a Nimbo restart that re-adopts the
running domain, terminate (the domain is undefined). Host networking
is not touched: the guest's NIC is a loopback UDP socket relayed to a tap in Nimbo's namespace.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests.conftest import NimboServer
from tests.vm.test_real_vm import (MARKER_SCRIPT, TINY_IMAGE_CACHE, WAIT, console, console_until, state_of,
                                   wait_state)

pytestmark = pytest.mark.vm
libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'nimbo[libvirt]')")
URI = "qemu:///system"
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)   # errors arrive as exceptions


def _daemon_answers() -> bool:
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError:
        return False
    conn.close()
    return True


@pytest.fixture(scope="module")
def libvirtd():
    """The system libvirtd: used when it runs, else started (and stopped again afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("the libvirt VM test runs as root (qemu:///system)")
    missing = [t for t in ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing for the libvirt VM test: {', '.join(missing)} (the Makefile's APT_LIBVIRT)")
    started = []
    if not _daemon_answers():
        # a libvirtd started here must not bring up host networks (virbr0 and its firewall rules)
        autostart = [name for folder in ("/etc/libvirt/qemu/networks/autostart", "/etc/libvirt/network/autostart")
                     if os.path.isdir(folder) for name in os.listdir(folder)]
        if autostart:
            pytest.skip(f"libvirtd would autostart host networks {autostart}: not started by the tests")
        for daemon in ("virtlogd", "libvirtd"):
            if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode != 0:
                subprocess.run([daemon, "-d"], check=True)
                started.append(daemon)
        deadline = time.monotonic() + 20
        while not _daemon_answers():
            assert time.monotonic() < deadline, "libvirtd did not answer on qemu:///system in 20 s"
            time.sleep(0.2)
    yield URI
    for daemon in reversed(started):   # only what this fixture started, by its pidfile
        pidfile = f"/run/{daemon}.pid"
        try:
            with open(pidfile) as fh:
                os.kill(int(fh.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="module")
def cloud(libvirtd):
    from backend.tiny_image import build_tiny_image   # noqa: PLC0415
    build_tiny_image(TINY_IMAGE_CACHE)
    data_dir = tempfile.mkdtemp(prefix="nimbo-lv-", dir="/tmp")
    os.symlink(os.path.abspath(TINY_IMAGE_CACHE), os.path.join(data_dir, "tiny-image"))
    server = NimboServer(data_dir, extra_args=["--backend", "libvirt"])
    image_id = server.nimbo("image", "build-tiny", "--data-dir", data_dir, "--if-missing").stdout.strip()
    server.start()
    state = {"server": server, "data_dir": data_dir, "image_id": image_id}
    try:
        yield state
    finally:
        state["server"].stop()
        conn = libvirt.open(libvirtd)
        for dom in conn.listAllDomains():   # anything of this data directory that is left
            if os.path.isdir(os.path.join(data_dir, "libvirt")) and any(
                    os.path.isdir(os.path.join(data_dir, "libvirt", h, dom.name()))
                    for h in os.listdir(os.path.join(data_dir, "libvirt"))):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        conn.close()
        from backend.network.namespace import net_destroy   # noqa: PLC0415
        net_destroy(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def client(server):
    import boto3   # noqa: PLC0415
    env = server.credentials()
    return boto3.client("ec2", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def domain(uri: str, name: str):
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(name)
        return bool(dom.isActive()), dom.UUIDString(), dom.ID()
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def test_launch_console_stop_start_readopt_terminate(cloud, libvirtd):
    ec2 = client(cloud["server"])
    started = time.monotonic()
    out = ec2.run_instances(ImageId=cloud["image_id"], MinCount=1, MaxCount=1, InstanceType="t2.nano",
                            UserData=MARKER_SCRIPT)
    instance = out["Instances"][0]
    instance_id = instance["InstanceId"]
    host_id = instance["Placement"]["HostId"]
    assert host_id.startswith("h-")
    hosts = cloud["server"].nimbo("host", "list", "--data-dir", cloud["data_dir"]).stdout
    assert f"{host_id}\tlocal\t-\t{URI}\t1/" in hosts   # the backend registered its URI as host "local"

    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    active, uuid, dom_id = domain(libvirtd, instance_id)
    assert active and uuid.startswith("ec2")   # a libvirt domain named by the instance, uuid = SMBIOS uuid
    # the metadata service answered the guest through the tap in Nimbo's namespace
    text = console_until(ec2, instance_id, f"NIMBO-MARKER-{instance_id}\n")
    print(f"\nlibvirt: RunInstances -> user-data marker {time.monotonic() - started:.1f}s")
    assert "nimbo-init: userspace up" in text

    # a second host: libvirt's embedded QEMU driver (qemu:///embed, its own state under the data
    # directory, run inside Nimbo's process), registered while the server runs, in another zone
    embed_uri = f"qemu:///embed?root={cloud['data_dir']}/second-host"
    added = cloud["server"].nimbo("host", "add", "second", embed_uri, "--zone", "us-east-1b",
                                  "--data-dir", cloud["data_dir"]).stdout.split()
    second = ec2.run_instances(ImageId=cloud["image_id"], MinCount=1, MaxCount=1, InstanceType="t2.nano",
                               Placement={"AvailabilityZone": "us-east-1b"})["Instances"][0]
    assert second["Placement"]["HostId"] == added[0] != host_id
    ec2.get_waiter("instance_running").wait(InstanceIds=[second["InstanceId"]], WaiterConfig=WAIT)
    console_until(ec2, second["InstanceId"], "nimbo-init: userspace up")
    assert domain(libvirtd, second["InstanceId"]) is None   # not a domain of the system daemon
    ec2.terminate_instances(InstanceIds=[second["InstanceId"]])
    wait_state(ec2, second["InstanceId"], "terminated")

    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    assert state_of(ec2, instance_id)["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert "nimbo-init: power off" in console(ec2, instance_id)   # ACPI: graceful, not destroyed
    assert domain(libvirtd, instance_id)[0] is False              # defined, shut off

    ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    console_until(ec2, instance_id, f"NIMBO-MARKER-{instance_id}\n", count=2)
    _, _, running_id = domain(libvirtd, instance_id)

    # Nimbo restarts: the domain keeps running and is adopted again (same libvirt domain id)
    server = cloud["server"]
    assert server.stop(signal.SIGTERM) == 0
    os.unlink(os.path.join(cloud["data_dir"], "endpoint"))
    cloud["server"] = server = NimboServer(cloud["data_dir"], port=server.port, extra_args=["--backend", "libvirt"])
    server.start(timeout=60)
    ec2 = client(server)
    assert domain(libvirtd, instance_id) == (True, uuid, running_id)
    assert state_of(ec2, instance_id)["State"]["Name"] == "running"
    assert f"NIMBO-MARKER-{instance_id}" in console(ec2, instance_id)

    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    assert domain(libvirtd, instance_id) is None   # destroyed and undefined
