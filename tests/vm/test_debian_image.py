"""The Debian cloud image (``nimbo image build-debian``) on a real VM, through boto3.

One slow test: build the image (or reuse the build cached in ``NIMBO_DEBIAN_IMAGE_CACHE``,
default ``.cache/debian-image`` in the repository), register it with ``nimbo image build-debian
--if-missing``, launch it with a key pair, a root volume larger than the image and ``#!`` user
data, and read on GetConsoleOutput that cloud-init found Nimbo's metadata service through the Ec2
datasource (SMBIOS uuid and serial starting with ``ec2``): it set the hostname from
``local-hostname``, installed the key pair's key for ``admin``, grew the root partition and
filesystem (growpart + resize2fs), and ran the user data once (not again after a reboot).
Where the namespace data path is on (root), the instance runs with a security group allowing
tcp/22 and is reached with ``nimbo net exec --vpc VPC -- ssh -i KEY admin@PRIVATE_IP``: its host
name answers and ``sudo -n true`` works; RunInstances-to-ssh is printed.

Skipped when the build cannot run here (not root, mmdebstrap/sfdisk/QEMU missing, Debian's mirror
unreachable) and no cached build exists; a build that fails otherwise fails the test.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from tests.conftest import REPO as SERVER_REPO
from tests.vm.test_network_e2e import ssh_argv
from tests.vm.test_real_vm import VMCloud, _clean_up, console

pytestmark = pytest.mark.vm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("NIMBO_DEBIAN_IMAGE_CACHE", os.path.join(REPO, ".cache", "debian-image"))
BOOT_TIMEOUT = float(os.environ.get("NIMBO_DEBIAN_BOOT_TIMEOUT", "420"))
INSTANCE_TYPE = "t3.micro"      # 2 vCPUs, 1 GiB
ROOT_GIB = 3                    # the image's disk is 2 GiB: cloud-init must grow it
PREFIX = "NIMBO-DEBIAN"
USER_DATA = f"""#!/bin/sh
say() {{ echo "{PREFIX} $*" > /dev/console; }}
say hostname "$(hostname)"
say instance-id "$(cat /var/lib/cloud/data/instance-id)"
say key "$(head -n 1 /home/admin/.ssh/authorized_keys)"
say fingerprint "$(ssh-keygen -lf /home/admin/.ssh/authorized_keys)"
say sudo "$(id -nG admin)"
say root-fs-bytes "$(df -B1 --output=size / | tail -n 1 | tr -d ' ')"
say root-part-bytes "$(lsblk -bdno SIZE "$(findmnt -no SOURCE /)")"
say done
"""


def _can_build() -> str | None:
    from backend.debian_image import missing_tools   # noqa: PLC0415
    if os.geteuid() != 0:
        return "building the Debian image needs root"
    missing = missing_tools()
    return f"missing tools: {', '.join(missing)}" if missing else None


@pytest.fixture(scope="module")
def debian_cloud():
    from backend.debian_image import DebianImageError, build_debian_image, cached_manifest  # noqa: PLC0415
    for tool in ("qemu-system-x86_64", "qemu-img", "socat"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    manifest = cached_manifest(CACHE)
    if manifest is None:
        reason = _can_build()
        if reason:
            pytest.skip(f"no cached Debian image and {reason}")
        try:
            manifest = build_debian_image(CACHE, progress=print)
        except DebianImageError as exc:
            if any(s in str(exc) for s in ("Failed to fetch", "Could not resolve", "Temporary failure",
                                           "Unable to connect", "Could not connect")):
                pytest.skip(f"Debian's mirror is unreachable: {exc}")
            raise
    data_dir = tempfile.mkdtemp(prefix="nimbo-deb-", dir="/tmp")   # short: unix socket paths
    os.symlink(os.path.abspath(CACHE), os.path.join(data_dir, "debian-image"))
    cloud = VMCloud(data_dir)
    started = time.monotonic()
    out = cloud.server.nimbo("image", "build-debian", "--data-dir", data_dir, "--if-missing")
    cloud.image_id = out.stdout.strip()
    print(f"\nregistered {cloud.image_id} in {time.monotonic() - started:.1f}s "
          f"(build took {manifest['build_seconds']}s, qcow2 {manifest['disk_bytes'] / 2**20:.0f} MiB)")
    cloud.server.start()
    try:
        yield cloud
    finally:
        _clean_up(cloud)


def _lines(text: str) -> dict[str, str]:
    found = {}
    for match in re.finditer(rf"^.*?{PREFIX} (\S+) ?(.*?)\s*$", text, re.M):
        found.setdefault(match.group(1), match.group(2))
    return found


def _public_key(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization   # noqa: PLC0415
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def _namespace_data_path() -> bool:
    from backend.network import namespace   # noqa: PLC0415
    return namespace.available()[0]


def _probe_ssh(cloud: VMCloud, vpc: str, address: str, key: str, started: float, result: dict) -> None:
    """Try ``ssh admin@address`` through ``nimbo net exec --vpc`` until it answers (or time is up)."""
    deadline = started + BOOT_TIMEOUT
    while time.monotonic() < deadline and not result.get("stop"):
        argv = [sys.executable, "-m", "gateway.cli", "net", "exec", "--data-dir", cloud.data_dir, "--vpc", vpc,
                "--", *ssh_argv(key, "admin", address, "hostname; sudo -n true && echo sudo-ok", 3)]
        try:
            out = subprocess.run(argv, cwd=SERVER_REPO, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as exc:
            result["last"] = repr(exc)
            continue
        if out.returncode == 0:
            result.update(seconds=time.monotonic() - started, stdout=out.stdout)
            return
        result["last"] = f"{out.returncode}: {out.stdout} {out.stderr}"
        time.sleep(2)


def test_debian_image_runs_cloud_init_from_nimbo_metadata(debian_cloud):
    ec2 = debian_cloud.client()
    image = ec2.describe_images(ImageIds=[debian_cloud.image_id])["Images"][0]
    assert image["Name"].startswith("debian-12-amd64-") and image["Public"] is True
    assert ec2.describe_images(Owners=["nimbo"], Filters=[{"Name": "name", "Values": ["debian-12-amd64-*"]}]
                               )["Images"][0]["ImageId"] == debian_cloud.image_id
    key = ec2.create_key_pair(KeyName="deb-key")
    public_key = _public_key(key["KeyMaterial"])
    key_path = os.path.join(debian_cloud.data_dir, "deb-key.pem")
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(key["KeyMaterial"])
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName="deb-ssh", Description="ssh", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    started = time.monotonic()
    out = ec2.run_instances(ImageId=debian_cloud.image_id, MinCount=1, MaxCount=1, InstanceType=INSTANCE_TYPE,
                            KeyName="deb-key", UserData=USER_DATA, SecurityGroupIds=[sg],
                            BlockDeviceMappings=[{"DeviceName": image["RootDeviceName"],
                                                  "Ebs": {"VolumeSize": ROOT_GIB}}])
    instance_id = out["Instances"][0]["InstanceId"]
    private_dns = out["Instances"][0]["PrivateDnsName"]
    probe: dict = {}
    prober = None
    if _namespace_data_path():
        prober = threading.Thread(target=_probe_ssh, daemon=True, args=(
            debian_cloud, vpc, out["Instances"][0]["PrivateIpAddress"], key_path, started, probe))
        prober.start()

    deadline = time.monotonic() + BOOT_TIMEOUT
    text, done_at = "", None
    while time.monotonic() < deadline:
        text = console(ec2, instance_id)
        if done_at is None and f"{PREFIX} done" in text:
            done_at = time.monotonic() - started
        if "Cloud-init v." in text and " finished at " in text:
            break
        time.sleep(2)
    else:
        raise AssertionError(f"cloud-init did not finish within {BOOT_TIMEOUT:.0f}s:\n{text[-4000:]}")
    finished_at = time.monotonic() - started
    lines = _lines(text)
    assert "done" in lines, f"the user data did not run:\n{text[-4000:]}"
    print(f"\nRunInstances -> user-data done {done_at:.1f}s, -> cloud-init finished {finished_at:.1f}s")
    for stage in re.findall(r"Cloud-init v\. \S+ (?:running '[\w:-]+'|finished) .*?(?:Up|Datasource) [^\n]*", text):
        print("  " + stage)

    # the Ec2 datasource was chosen (by ds-identify, from the SMBIOS uuid/serial) and crawled IMDS
    assert lines["instance-id"] == instance_id
    assert lines["hostname"] == private_dns.split(".")[0]
    # the key pair's public key is admin's, and admin may sudo
    assert lines["key"].split()[:2] == public_key.split()[:2]
    assert "SHA256:" in lines["fingerprint"]
    assert "sudo" in lines["sudo"].split()
    # growpart + resize2fs: the 2 GiB image's partition and filesystem fill the 3 GiB volume
    assert int(lines["root-part-bytes"]) > 2.9 * 2**30
    assert int(lines["root-fs-bytes"]) > 2.7 * 2**30
    assert text.count(f"{PREFIX} done") == 1

    # ssh admin@ADDRESS with the key pair's key, and passwordless sudo, as on Debian's cloud images
    if prober is not None:
        prober.join(max(0.0, started + BOOT_TIMEOUT - time.monotonic()))
        probe["stop"] = True
        assert "seconds" in probe, f"no ssh to admin@{out['Instances'][0]['PrivateIpAddress']}: {probe.get('last')}"
        print(f"RunInstances -> ssh admin@{out['Instances'][0]['PrivateIpAddress']} answers {probe['seconds']:.1f}s")
        assert probe["stdout"].split() == [private_dns.split(".")[0], "sudo-ok"], probe
    else:
        print("(user-mode networking: no ssh check)")

    # user data runs once per instance: not again after a reboot (the ext4 journal commits every
    # 5 s and RebootInstances is a hard reset here, so let cloud-init's semaphores reach the disk)
    time.sleep(6)
    rebooted = time.monotonic()
    ec2.reboot_instances(InstanceIds=[instance_id])
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        text = console(ec2, instance_id)
        if len(re.findall(r"Cloud-init v\. \S+ finished at", text)) >= 2:
            break
        time.sleep(2)
    else:
        raise AssertionError(f"cloud-init did not finish after the reboot:\n{text[-4000:]}")
    print(f"RebootInstances -> cloud-init finished {time.monotonic() - rebooted:.1f}s")
    if os.environ.get("NIMBO_DEBIAN_CONSOLE"):   # for a look at the boot's timeline
        with open(os.environ["NIMBO_DEBIAN_CONSOLE"], "w") as fh:
            fh.write(text)
    assert text.count(f"{PREFIX} done") == 1, text[-4000:]
    assert _lines(text)["instance-id"] == instance_id
