"""Real VMs through the EC2 API: ``nimbo serve`` with the QEMU driver and the tiny image (TCG on
hosts without hardware virtualisation), driven by boto3.

Two tests, six boots (three of them side by side): one instance goes through user data that
reads its own id from the metadata service, a graceful stop, a start, a restart of Nimbo that
must re-adopt the running QEMU (same pid) and keep serving its console and metadata, a reboot,
and termination; two guests that power themselves off follow their shutdown behaviour, and a
guest stopped while it still boots stops gracefully (the power button is pressed again).

The tiny image is built once per run into the shared cache (``NIMBO_TINY_IMAGE_CACHE``, default
``tests/backend/.cache/tiny-image``) and registered with ``nimbo image build-tiny``.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer

pytestmark = pytest.mark.vm

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_IMAGE_CACHE = os.environ.get("NIMBO_TINY_IMAGE_CACHE",
                                  os.path.join(os.path.dirname(HERE), "backend", ".cache", "tiny-image"))
BOOT_TIMEOUT = float(os.environ.get("NIMBO_VM_BOOT_TIMEOUT", "120"))
WAIT = {"Delay": 0.5, "MaxAttempts": int(BOOT_TIMEOUT * 2)}
INSTANCE_TYPE = "t2.nano"   # 1 vCPU, 512 MiB: the lightest guest under TCG
# busybox sh in the guest: ask the metadata service (HTTP/1.0 through nc, as /init does) for the
# instance's own id and print it after a marker.
MARKER_SCRIPT = """#!/bin/sh
id=$(printf 'GET /latest/meta-data/instance-id HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\n\\r\\n' \\
     | nc -w 5 169.254.169.254 80 | tail -n 1)
echo "NIMBO-MARKER-$id"
"""
POWEROFF_SCRIPT = "#!/bin/sh\necho NIMBO-POWEROFF\npoweroff\n"


def _missing_tools() -> list[str]:
    tools = ["qemu-system-x86_64", "qemu-img", "socat", "apt-get", "dpkg-deb"]
    return [t for t in tools if shutil.which(t) is None]


class VMCloud:
    """A ``nimbo serve --backend qemu`` over a data directory that outlives its restarts."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.server = NimboServer(data_dir, extra_args=["--backend", "qemu"])
        self.image_id = ""
        self._env: dict[str, str] | None = None

    def client(self):
        import boto3   # noqa: PLC0415
        import botocore.config   # noqa: PLC0415
        if self._env is None:
            self._env = self.server.credentials()
        return boto3.client("ec2", endpoint_url=self.server.endpoint, region_name="us-east-1",
                            aws_access_key_id=self._env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self._env["AWS_SECRET_ACCESS_KEY"],
                            config=botocore.config.Config(retries={"max_attempts": 2}))

    def restart(self) -> float:
        """SIGTERM the server (its VMs keep running), start a new one on the same port and data."""
        code = self.server.stop(signal.SIGTERM)
        assert code == 0, f"nimbo exited with {code}: {self.server.log()}"
        os.unlink(os.path.join(self.data_dir, "endpoint"))
        started = time.monotonic()
        self.server = NimboServer(self.data_dir, port=self.server.port, extra_args=["--backend", "qemu"])
        self.server.start(timeout=60)
        return time.monotonic() - started

    def qemu_pid(self, instance_id: str) -> int | None:
        try:
            with open(os.path.join(self.data_dir, "vms", instance_id, "qemu.pid")) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def vm_pids(self) -> list[int]:
        folder = os.path.join(self.data_dir, "vms")
        pids = [self.qemu_pid(name) for name in (os.listdir(folder) if os.path.isdir(folder) else [])]
        return [p for p in pids if p and is_qemu(p)]


def is_qemu(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"qemu-system" in fh.read()
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while is_qemu(pid):
        assert time.monotonic() < deadline, f"qemu {pid} still runs"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def vm_cloud():
    missing = _missing_tools()
    if missing:
        pytest.skip(f"missing tools for VM tests: {', '.join(missing)}")
    from backend.tiny_image import build_tiny_image   # noqa: PLC0415
    build_tiny_image(TINY_IMAGE_CACHE)
    data_dir = tempfile.mkdtemp(prefix="nimbo-vm-", dir="/tmp")   # short: unix socket paths
    os.symlink(os.path.abspath(TINY_IMAGE_CACHE), os.path.join(data_dir, "tiny-image"))
    cloud = VMCloud(data_dir)
    out = cloud.server.nimbo("image", "build-tiny", "--data-dir", data_dir, "--if-missing")
    cloud.image_id = out.stdout.strip()
    cloud.server.start()
    try:
        yield cloud
    finally:
        _clean_up(cloud)


def _clean_up(cloud: VMCloud) -> None:
    """Terminate what is left through the API; then end any QEMU of this data directory by pid."""
    try:
        if cloud.server.process is not None and cloud.server.process.poll() is None:
            ec2 = cloud.client()
            out = ec2.describe_instances(Filters=[{"Name": "instance-state-name",
                                                   "Values": ["pending", "running", "stopping", "stopped"]}])
            ids = [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]
            if ids:
                ec2.terminate_instances(InstanceIds=ids)
                ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=WAIT)
    finally:
        cloud.server.stop()
        for pid in cloud.vm_pids():
            os.kill(pid, signal.SIGKILL)
        if os.geteuid() == 0:   # the edge namespace a root Nimbo keeps over its restarts
            from backend.network.namespace import net_destroy   # noqa: PLC0415
            net_destroy(cloud.data_dir)
        shutil.rmtree(cloud.data_dir, ignore_errors=True)


def console(ec2, instance_id: str) -> str:
    return (ec2.get_console_output(InstanceId=instance_id).get("Output") or "").replace("\r\n", "\n")


def console_until(ec2, instance_id: str, needle: str, count: int = 1, timeout: float = BOOT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = console(ec2, instance_id)
        if text.count(needle) >= count:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} x{count} on the console of {instance_id} after "
                                 f"{timeout:.0f}s:\n{text[-3000:]}")
        time.sleep(0.5)


def state_of(ec2, instance_id: str) -> dict:
    out = ec2.describe_instances(InstanceIds=[instance_id])
    return out["Reservations"][0]["Instances"][0]


def wait_state(ec2, instance_id: str, wanted: str, timeout: float = BOOT_TIMEOUT) -> dict:
    """Poll until the instance is in ``wanted`` (boto3's waiters give up on pending when waiting
    for terminated or stopped: fine for an API-initiated change, not for a guest's own)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        instance = state_of(ec2, instance_id)
        if not seen or seen[-1] != instance["State"]["Name"]:
            seen.append(instance["State"]["Name"])
        if instance["State"]["Name"] == wanted:
            return {**instance, "_seen": seen}
        assert time.monotonic() < deadline, f"{instance_id} went through {seen}, not {wanted}"
        time.sleep(0.5)


def test_user_data_stop_start_restart_reboot_terminate(vm_cloud):
    ec2 = vm_cloud.client()
    started = time.monotonic()
    out = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType=INSTANCE_TYPE,
                            UserData=MARKER_SCRIPT,
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "vm"}]}])
    instance_id = out["Instances"][0]["InstanceId"]
    marker = f"NIMBO-MARKER-{instance_id}\n"

    # first boot: running, then the user data prints the id it read from the metadata service
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    to_running = time.monotonic() - started
    text = console_until(ec2, instance_id, marker)
    to_marker = time.monotonic() - started
    assert f"nimbo-init: instance-id {instance_id}" in text
    assert "nimbo-init: user-data exit 0" in console_until(ec2, instance_id, "nimbo-init: user-data exit 0")
    print(f"\nRunInstances -> running {to_running:.1f}s, -> user-data marker {to_marker:.1f}s")
    first_pid = vm_cloud.qemu_pid(instance_id)
    assert first_pid and is_qemu(first_pid)

    # graceful stop: the guest gets the ACPI power button and powers off; QEMU exits
    stop = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert (stop["PreviousState"]["Name"], stop["CurrentState"]["Name"]) == ("running", "stopping")
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    wait_gone(first_pid)
    stopped = state_of(ec2, instance_id)
    assert stopped["State"] == {"Code": 80, "Name": "stopped"}
    assert stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert "nimbo-init: power off" in console(ec2, instance_id)   # graceful, not forced

    # start again: a new QEMU, the same root disk, user data runs again
    start = ec2.start_instances(InstanceIds=[instance_id])["StartingInstances"][0]
    assert (start["PreviousState"]["Name"], start["CurrentState"]["Name"]) == ("stopped", "pending")
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    console_until(ec2, instance_id, marker, count=2)
    pid = vm_cloud.qemu_pid(instance_id)
    assert pid and pid != first_pid and is_qemu(pid)

    # Nimbo restarts; the VM keeps running and the new process re-adopts it
    vm_cloud_restart = vm_cloud.restart()
    print(f"nimbo restart with a running VM: {vm_cloud_restart:.1f}s")
    assert is_qemu(pid)
    ec2 = vm_cloud.client()
    adopted = state_of(ec2, instance_id)
    assert adopted["State"] == {"Code": 16, "Name": "running"}
    assert vm_cloud.qemu_pid(instance_id) == pid
    assert console(ec2, instance_id).count(marker) == 2

    # a reboot through the re-adopted QMP socket: same QEMU, the guest boots again and reads its
    # id from the metadata service the new Nimbo process serves
    ec2.reboot_instances(InstanceIds=[instance_id])
    console_until(ec2, instance_id, marker, count=3)
    assert vm_cloud.qemu_pid(instance_id) == pid and is_qemu(pid)
    assert state_of(ec2, instance_id)["State"]["Name"] == "running"

    # terminate: the QEMU process goes, the root disk with it
    root_volume = adopted["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume_file = os.path.join(vm_cloud.data_dir, "volumes", f"{root_volume}.qcow2")
    assert os.path.exists(volume_file)
    term = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]
    assert (term["PreviousState"]["Name"], term["CurrentState"]["Name"]) == ("running", "shutting-down")
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    wait_gone(pid)
    assert state_of(ec2, instance_id)["State"] == {"Code": 48, "Name": "terminated"}
    assert not os.path.exists(volume_file)
    with pytest.raises(ClientError) as caught:
        ec2.start_instances(InstanceIds=[instance_id])
    assert caught.value.response["Error"]["Code"] == "IncorrectInstanceState"


def test_guest_poweroff_follows_shutdown_behaviour_and_early_stop(vm_cloud):
    """Two guests power themselves off (shutdown behaviour terminate, stop); a third is stopped
    while it still boots, before its init handles the ACPI power button: the stop presses the
    button again until the guest takes it, so it stops gracefully long before the 60 s after
    which a stop is forced."""
    ec2 = vm_cloud.client()
    ids = {}
    for behaviour in ("terminate", "stop"):
        out = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType=INSTANCE_TYPE,
                                UserData=POWEROFF_SCRIPT, InstanceInitiatedShutdownBehavior=behaviour)
        ids[behaviour] = out["Instances"][0]["InstanceId"]
        attr = ec2.describe_instance_attribute(InstanceId=ids[behaviour],
                                               Attribute="instanceInitiatedShutdownBehavior")
        assert attr["InstanceInitiatedShutdownBehavior"] == {"Value": behaviour}
    early = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1,
                              InstanceType=INSTANCE_TYPE)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[early], WaiterConfig=WAIT)
    booting = "nimbo-init: ready" not in console(ec2, early)   # (a fast KVM guest may be up already)
    stop_asked = time.monotonic()
    ec2.stop_instances(InstanceIds=[early])
    wait_state(ec2, early, "stopped", timeout=60)
    stop_took = time.monotonic() - stop_asked
    print(f"\nstop of a {'booting' if booting else 'booted'} guest: {stop_took:.1f}s")
    assert stop_took < 45, f"the stop of a booting guest took {stop_took:.0f}s (forced at 60 s?)"
    assert "nimbo-init: power off" in console(ec2, early)   # the guest took the button
    ec2.terminate_instances(InstanceIds=[early])

    wait_state(ec2, ids["terminate"], "terminated")
    wait_state(ec2, ids["stop"], "stopped")
    for behaviour, instance_id in ids.items():
        instance = state_of(ec2, instance_id)
        assert instance["StateReason"] == {
            "Code": "Client.InstanceInitiatedShutdown",
            "Message": "Client.InstanceInitiatedShutdown: Instance initiated shutdown"}
        assert re.fullmatch(r"Client\.InstanceInitiatedShutdown: Instance initiated shutdown "
                            r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\)", instance["StateTransitionReason"])
        pid = vm_cloud.qemu_pid(instance_id)
        assert pid is None or not is_qemu(pid)
    text = console(ec2, ids["stop"])
    assert "NIMBO-POWEROFF" in text and "nimbo-init: power off" in text
    ec2.terminate_instances(InstanceIds=[ids["stop"]])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[ids["stop"]], WaiterConfig=WAIT)
    assert vm_cloud.vm_pids() == []
