"""EC2 networking end to end: the API, the namespace data path and real guests, as a user sees them.

One ``nimbo serve`` as root with the QEMU backend and ``network = "namespace"`` over a data
directory in /tmp, driven by boto3 and aws-cli; three tiny guests (TCG here) boot side by side.

- CreateVpc, CreateSubnet, CreateInternetGateway + AttachInternetGateway + CreateRoute 0.0.0.0/0,
  a security group allowing tcp/22 from anywhere (aws-cli), CreateKeyPair;
- A and B in that subnet (one RunInstances), C in a second VPC with the same CIDR at A's very
  private address; ``nimbo net exec --vpc VPC -- ssh -i k.pem root@PRIVATE_IP hostname`` answers
  with each instance's DHCP host name (``ip-10-0-1-x``): RunInstances-to-ssh is printed;
- A reaches B on 22 (dropbear's banner) and not on 8080 where B listens, until the group allows
  8080 from its own members (a group reference); C reaches neither A's nor B's address, nor A's
  Elastic IP (its VPC has no internet gateway);
- the metadata service answers inside A over the relay: an IMDSv2 token, then A's instance id
  with it; a wrong token is refused (401);
- an Elastic IP associated to A reaches A from the edge (``nimbo net exec -- ssh root@EIP``);
  the bytes A sends to the internet land in the usage ledger as DataTransfer-Out-Bytes of its
  interface, and in the rated bill (a billing pass with a clock one hour later);
- a second interface attached to the running B is hot-plugged (ssh to its address, in a second
  subnet, shows both of B's addresses) and detached again;
- revoking tcp/22 makes the next connection (private or public) fail within a second;
- terminating everything and deleting the VPC resources leaves no VPC namespace, tap, dnsmasq or
  nft table; ``nimbo net destroy`` then removes the edge namespace.

Traffic goes only to addresses inside Nimbo's own namespaces.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import REPO, NimboServer
from tests.vm.test_real_vm import TINY_IMAGE_CACHE, VMCloud, _missing_tools

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = float(os.environ.get("NIMBO_VM_BOOT_TIMEOUT", "240"))
WAIT = {"Delay": 0.5, "MaxAttempts": int(BOOT_TIMEOUT * 2)}
INSTANCE_TYPE = "t2.nano"
CIDR = "10.0.0.0/16"
SUBNET_CIDR = "10.0.1.0/24"
SENT_BYTES = 4 << 20          # what A sends to "the internet" (the edge) for the meter


# -- the cloud ---------------------------------------------------------------------------------------
class NetCloud(VMCloud):
    def __init__(self, data_dir: str, config_path: str) -> None:
        super().__init__(data_dir)
        self.server = NimboServer(data_dir, extra_args=["--backend", "qemu", "--config", config_path])
        self.key_path = os.path.join(data_dir, "k.pem")

    def net_exec(self, command: list[str], vpc: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "gateway.cli", "net", "exec", "--data-dir", self.data_dir,
                *(["--vpc", vpc] if vpc else []), "--", *command]
        return subprocess.run(argv, cwd=REPO, capture_output=True, timeout=timeout)

    def ssh(self, host: str, command: str, vpc: str | None = None, connect_timeout: int = 3,
            user: str = "root") -> subprocess.CompletedProcess:
        out = self.net_exec(ssh_argv(self.key_path, user, host, command, connect_timeout), vpc,
                            timeout=connect_timeout + 60)
        return subprocess.CompletedProcess(out.args, out.returncode, out.stdout.decode(errors="replace"),
                                           out.stderr.decode(errors="replace"))

    def aws(self, *args: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self._env or self.server.credentials())
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        out = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", self.server.endpoint,
                              "--region", "us-east-1", "--output", "json", *args], env=env, text=True,
                             capture_output=True, timeout=120)
        assert out.returncode == 0, f"aws {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}


def ssh_argv(key: str, user: str, host: str, command: str, connect_timeout: int = 3) -> list[str]:
    return ["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={connect_timeout}",
            f"{user}@{host}", command]


def until_ssh(cloud: NetCloud, host: str, vpc: str | None, started: float, want: str,
              timeout: float = BOOT_TIMEOUT, user: str = "root") -> float:
    """Seconds from ``started`` until ``ssh host hostname`` answers ``want``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cloud.ssh(host, "hostname", vpc, connect_timeout=2, user=user)
        if last.returncode == 0:
            assert last.stdout.strip() == want, last
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"no ssh to {user}@{host} ({vpc or 'edge'}) after {timeout:.0f}s: {last}\n"
                         f"{cloud.server.log()}")


def namespaces_of(name: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(name)]


def dnsmasqs_of(name: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "dnsmasq"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if name in line]


def ledger_bytes(data_dir: str, usage_type: str, resource: str) -> int:
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'nimbo.db')}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT COALESCE(SUM(amount), 0) FROM usage_counts WHERE usage_type = ? AND resource_id = ?",
                         (usage_type, resource)).fetchone()
        return int(row[0])
    finally:
        db.close()


@pytest.fixture(scope="module")
def net_cloud():
    from backend.network import namespace   # noqa: PLC0415
    missing = _missing_tools() + [t for t in ("ssh", "ip", "nft", "dnsmasq") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    ok, why = namespace.available()
    if not ok:
        pytest.skip(f"the namespace data path cannot run here: {why}")
    from backend.tiny_image import build_tiny_image   # noqa: PLC0415
    if not build_tiny_image(TINY_IMAGE_CACHE).get("ssh"):
        pytest.skip("the tiny image has no ssh server (dropbear-bin is not installed)")
    data_dir = tempfile.mkdtemp(prefix="nimbo-net-", dir="/tmp")   # short: unix socket paths
    os.symlink(os.path.abspath(TINY_IMAGE_CACHE), os.path.join(data_dir, "tiny-image"))
    config = os.path.join(data_dir, "nimbo.toml")
    with open(config, "w") as fh:   # the counters are sampled every second
        fh.write('network = "namespace"\nec2_housekeeping_seconds = 1\nmeter_flush_seconds = 1\n')
    cloud = NetCloud(data_dir, config)
    cloud.image_id = cloud.server.nimbo("image", "build-tiny", "--data-dir", data_dir, "--if-missing").stdout.strip()
    cloud.server.start()
    try:
        yield cloud
    finally:
        try:
            if cloud.server.process is not None:
                from tests.vm.test_real_vm import _clean_up   # noqa: PLC0415
                _clean_up(cloud)
        finally:
            for pid in cloud.vm_pids():
                os.kill(pid, signal.SIGKILL)
            namespace.net_destroy(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)


def instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_vpc_security_groups_elastic_ip_metadata_and_metering_on_real_guests(net_cloud):
    cloud = net_cloud
    ec2 = cloud.client()

    # -- the network, as a user builds it --------------------------------------------------
    vpc = ec2.create_vpc(CidrBlock=CIDR)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main_rt = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                 {"Name": "association.main", "Values": ["true"]}]
                                        )["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    sg = cloud.aws("ec2", "create-security-group", "--group-name", "ssh", "--description", "ssh from anywhere",
                   "--vpc-id", vpc)["GroupId"]
    cloud.aws("ec2", "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22",
              "--cidr", "0.0.0.0/0")
    key = ec2.create_key_pair(KeyName="e2e-key")
    with open(os.open(cloud.key_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(key["KeyMaterial"])

    other_vpc = cloud.aws("ec2", "create-vpc", "--cidr-block", CIDR)["Vpc"]["VpcId"]
    other_subnet = ec2.create_subnet(VpcId=other_vpc, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
    other_sg = ec2.create_security_group(GroupName="ssh", Description="ssh", VpcId=other_vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=other_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    # -- three guests, side by side ------------------------------------------------------------
    started = time.monotonic()
    out = ec2.run_instances(ImageId=cloud.image_id, MinCount=2, MaxCount=2, InstanceType=INSTANCE_TYPE,
                            KeyName="e2e-key", SubnetId=subnet, SecurityGroupIds=[sg])
    a, b = sorted(out["Instances"], key=lambda i: i["AmiLaunchIndex"])
    a_id, b_id, a_ip, b_ip = a["InstanceId"], b["InstanceId"], a["PrivateIpAddress"], b["PrivateIpAddress"]
    c = ec2.run_instances(ImageId=cloud.image_id, MinCount=1, MaxCount=1, InstanceType=INSTANCE_TYPE,
                          KeyName="e2e-key", SubnetId=other_subnet, SecurityGroupIds=[other_sg],
                          PrivateIpAddress=a_ip)["Instances"][0]
    c_started = time.monotonic()
    c_id = c["InstanceId"]
    assert c["PrivateIpAddress"] == a_ip   # overlapping VPCs: the same address twice
    host = {i["InstanceId"]: i["PrivateDnsName"].split(".")[0] for i in (a, b, c)}
    assert host[a_id] == "ip-" + a_ip.replace(".", "-")

    to_ssh = {a_id: until_ssh(cloud, a_ip, vpc, started, host[a_id])}
    to_ssh[b_id] = until_ssh(cloud, b_ip, vpc, started, host[b_id])
    to_ssh[c_id] = until_ssh(cloud, a_ip, other_vpc, c_started, host[c_id])   # C answers at A's address
    print("\nboot-to-ssh through the API (RunInstances -> ssh hostname answers, 3 TCG guests side by side): "
          + ", ".join(f"{k} {v:.1f}s" for k, v in to_ssh.items()))
    enis = []
    for iid in (a_id, b_id, c_id):
        described = instance(ec2, iid)
        enis.append(described["NetworkInterfaces"][0]["NetworkInterfaceId"])
        assert described["State"]["Name"] == "running"
        assert described["NetworkInterfaces"][0]["PrivateIpAddress"] == described["PrivateIpAddress"]

    # -- security groups between guests ------------------------------------------------------------
    banner = cloud.ssh(a_ip, f"echo | nc -w 3 {b_ip} 22 | head -c 8", vpc)
    assert banner.stdout.startswith("SSH-2.0"), banner
    listen = cloud.ssh(b_ip, "setsid nc -ll -p 8080 -e /bin/echo open8080 </dev/null >/dev/null 2>&1 & echo ok", vpc)
    assert listen.stdout.strip() == "ok", listen
    probe = f"nc -w 2 {b_ip} 8080 </dev/null; true"
    assert "open8080" not in cloud.ssh(a_ip, probe, vpc).stdout   # the group does not allow 8080
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": sg}]}])
    time.sleep(1.0)
    assert "open8080" in cloud.ssh(a_ip, probe, vpc).stdout       # members of the group may now

    # -- the metadata service inside A, over the relay -----------------------------------------------
    imds = ("T=$(printf 'PUT /latest/api/token HTTP/1.0\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n'"
            " | nc -w 5 169.254.169.254 80 | tail -n 1); echo \"token=${#T}\"; "
            "printf \"GET /latest/meta-data/instance-id HTTP/1.0\\r\\nX-aws-ec2-metadata-token: $T\\r\\n\\r\\n\""
            " | nc -w 5 169.254.169.254 80; echo; "
            "printf 'GET /latest/meta-data/instance-id HTTP/1.0\\r\\nX-aws-ec2-metadata-token: wrong\\r\\n\\r\\n'"
            " | nc -w 5 169.254.169.254 80 | head -n 1")
    answer = cloud.ssh(a_ip, imds, vpc).stdout.replace("\r", "")
    lines = answer.strip().splitlines()
    assert lines[0] != "token=0" and lines[1].split()[1] == "200", answer
    assert lines[-2] == a_id, answer
    assert lines[-1].split()[1] == "401", answer

    # -- an Elastic IP from the edge; bytes to the internet are metered ---------------------------------
    alloc = ec2.allocate_address(Domain="vpc")
    eip = alloc["PublicIp"]
    ec2.associate_address(AllocationId=alloc["AllocationId"], InstanceId=a_id)
    until_ssh(cloud, eip, None, time.monotonic(), host[a_id], timeout=10)
    assert instance(ec2, a_id)["PublicIpAddress"] == eip
    # C's VPC has no internet gateway: neither A's or B's address nor A's public one from there
    reach = cloud.ssh(a_ip, f"for h in {b_ip} {eip}; do echo | nc -w 2 $h 22 | head -c 7; echo \" $h\"; done",
                      other_vpc)
    assert reach.returncode == 0 and "SSH" not in reach.stdout, reach

    a_eni = instance(ec2, a_id)["NetworkInterfaces"][0]["NetworkInterfaceId"]
    before = ledger_bytes(cloud.data_dir, "DataTransfer-Out-Bytes", a_eni)
    sent = cloud.net_exec(ssh_argv(cloud.key_path, "root", eip, f"dd if=/dev/zero bs=4096 count={SENT_BYTES // 4096}"
                                   " 2>/dev/null"))
    assert sent.returncode == 0 and len(sent.stdout) == SENT_BYTES, sent.stderr
    deadline = time.monotonic() + 15
    while ledger_bytes(cloud.data_dir, "DataTransfer-Out-Bytes", a_eni) - before < SENT_BYTES:
        assert time.monotonic() < deadline, "A's data transfer out did not reach the usage ledger"
        time.sleep(0.5)
    metered = ledger_bytes(cloud.data_dir, "DataTransfer-Out-Bytes", a_eni)
    print(f"DataTransfer-Out-Bytes of {a_eni}: {metered} (sent {SENT_BYTES} bytes of payload)")
    assert metered < SENT_BYTES * 1.5

    # -- a second interface hot-plugged into the running B, and out again --------------------------------
    # (in a second subnet: with two interfaces in one subnet, the tiny guest would answer for the
    # second one through the first, which anti-spoofing drops, as a guest without policy routing
    # does on AWS)
    subnet2 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24",
                                AvailabilityZone=a["Placement"]["AvailabilityZone"])["Subnet"]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet2, Groups=[sg])["NetworkInterface"]
    eni_ip = eni["PrivateIpAddress"]
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=b_id,
                                              DeviceIndex=1)["AttachmentId"]
    deadline = time.monotonic() + 30
    while True:   # the guest's eth1 appears and takes its address by DHCP
        addrs = cloud.ssh(eni_ip, "ip -o -4 addr show", vpc, connect_timeout=2)
        if addrs.returncode == 0:
            break
        assert time.monotonic() < deadline, (f"no ssh to B's hot-plugged interface {eni_ip}: {addrs}\n{cloud.server.log()}\n"
                                                  f"{ec2.get_console_output(InstanceId=b_id).get('Output', '')[-2000:]}")
        time.sleep(1)
    assert f"inet {b_ip}/" in addrs.stdout and f"inet {eni_ip}/" in addrs.stdout, addrs.stdout
    print(f"hot-plugged interface answered in {time.monotonic() - deadline + 30:.1f}s")
    ec2.detach_network_interface(AttachmentId=attachment)
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]]
                                           )["NetworkInterfaces"][0]["Status"] == "available"
    gone = cloud.ssh(b_ip, "ip -o -4 addr show", vpc)
    assert gone.returncode == 0 and eni_ip not in gone.stdout, gone
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    ec2.delete_subnet(SubnetId=subnet2)

    # -- revoking the rule stops the next connection within a second ------------------------------------
    cloud.aws("ec2", "revoke-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22",
              "--cidr", "0.0.0.0/0")
    revoked = time.monotonic()
    time.sleep(max(0.0, revoked + 1.0 - time.monotonic()))
    for address, where in ((a_ip, vpc), (eip, None), (b_ip, vpc)):
        refused = cloud.ssh(address, "hostname", where, connect_timeout=3)
        assert refused.returncode != 0 and host[a_id] not in refused.stdout, (address, refused)

    # -- tear it all down: nothing left behind -------------------------------------------------------------
    ec2.disassociate_address(AssociationId=ec2.describe_addresses(PublicIps=[eip])["Addresses"][0]["AssociationId"])
    ec2.release_address(AllocationId=alloc["AllocationId"])
    ec2.terminate_instances(InstanceIds=[a_id, b_id, c_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[a_id, b_id, c_id], WaiterConfig=WAIT)
    for group in (sg, other_sg):
        ec2.delete_security_group(GroupId=group)
    ec2.delete_route(RouteTableId=main_rt, DestinationCidrBlock="0.0.0.0/0")
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_subnet(SubnetId=other_subnet)
    ec2.delete_vpc(VpcId=vpc)
    cloud.aws("ec2", "delete-vpc", "--vpc-id", other_vpc)
    ec2.delete_key_pair(KeyName="e2e-key")
    with pytest.raises(ClientError) as caught:
        ec2.describe_vpcs(VpcIds=[vpc])
    assert caught.value.response["Error"]["Code"] == "InvalidVpcID.NotFound"

    from backend.network.namespace import namespace_name, tap_name   # noqa: PLC0415
    edge = namespace_name(cloud.data_dir)
    deadline = time.monotonic() + 10
    while namespaces_of(edge + "-") or dnsmasqs_of(edge) or dnsmasqs_of(cloud.data_dir):
        assert time.monotonic() < deadline, (namespaces_of(edge), dnsmasqs_of(edge))
        time.sleep(0.2)
    assert namespaces_of(edge) == [edge]   # the edge stays while Nimbo runs
    edge_links = subprocess.run(["ip", "-n", edge, "-o", "link"], capture_output=True, text=True, check=True).stdout
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    for eni in enis:
        assert tap_name(eni) not in edge_links + host_links
        assert not ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": [eni]}]
                                                   )["NetworkInterfaces"]   # deleted with its instance
    assert " t" not in edge_links.replace("lo:", "")   # no tap and no VPC uplink in the edge
    tables = subprocess.run(["ip", "netns", "exec", edge, "nft", "list", "tables"], capture_output=True, text=True,
                            check=True).stdout
    assert tables.strip() == "", tables
    assert cloud.vm_pids() == []

    # -- the rated bill: a billing pass one hour on -----------------------------------------------------------
    assert cloud.server.stop() == 0
    items = asyncio.run(_rated_items(cloud.data_dir))
    transfer = [i for i in items if i["usageType"].endswith("DataTransfer-Out-Bytes")
                and "EC2" in i["service"] + i["productCode"]]
    print(f"rated: {transfer}")
    assert transfer and float(transfer[0]["amount"]) >= SENT_BYTES / 2**30 * 0.99, items   # GB
    assert namespace_name(cloud.data_dir) in namespaces_of(edge)   # kept over a stop; destroy removes it
    from backend.network.namespace import net_destroy   # noqa: PLC0415
    net_destroy(cloud.data_dir)
    assert namespaces_of(edge) == []


async def _rated_items(data_dir: str) -> list[dict]:
    from billing.report import billing_report   # noqa: PLC0415
    from gateway.config import Config   # noqa: PLC0415
    from storage.db import Database   # noqa: PLC0415
    now = dt.datetime.now(dt.timezone.utc)
    db = await Database.open(os.path.join(data_dir, "nimbo.db"))
    try:
        text = await billing_report(db, Config(data_dir=data_dir), now.strftime("%Y-%m"), None, "json",
                                    now=now + dt.timedelta(hours=1))
    finally:
        await db.close()
    return json.loads(text)["items"]
