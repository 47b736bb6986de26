"""EC2 end to end: boto3 and aws-cli (v1, ``python -m awscli``) against a live ``nimbo serve
--backend fake`` with the tiny image registered by ``nimbo image build-tiny`` before the server
starts, as ``make run`` does it. Two accounts: the admin (who owns the public tiny AMI) and a
tenant made with ``nimbo admin create-account``.

The fake driver starts and stops VMs at once, so waiters return after a poll or two; the real
QEMU path is tests/vm/test_real_vm.py. Every test terminates what it launched (an account may
hold 20 instances that are not terminated, as in EC2).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, WaiterError
from botocore.handlers import decode_console_output
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.conftest import NimboServer

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_IMAGE_CACHE = os.environ.get("NIMBO_TINY_IMAGE_CACHE",
                                  os.path.join(os.path.dirname(HERE), "backend", ".cache", "tiny-image"))
FAST = {"Delay": 0.5, "MaxAttempts": 40}
TENANT = "tenant-ec2-e2e"
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64,
               "stopped": 80}


# -- the server ------------------------------------------------------------------------------------

class Cloud:
    """The live server, the tiny AMI's id, and clients per account (credentials read once)."""

    def __init__(self, server: NimboServer, image_id: str, image_source: str) -> None:
        self.server = server
        self.image_id = image_id
        self.image_source = image_source   # "tiny image cache" or "stub artifacts"
        self._creds: dict[str | None, dict[str, str]] = {}

    def creds(self, account: str | None = None) -> dict[str, str]:
        if account not in self._creds:
            self._creds[account] = self.server.credentials(account)
        return self._creds[account]

    def client(self, account: str | None = None, **config):
        env = self.creds(account)
        return boto3.client("ec2", endpoint_url=self.server.endpoint, region_name="us-east-1",
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                            config=botocore.config.Config(retries={"max_attempts": 1}, **config))

    def account_id(self, account: str | None = None) -> str:
        env = self.creds(account)
        sts = boto3.client("sts", endpoint_url=self.server.endpoint, region_name="us-east-1",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        return sts.get_caller_identity()["Account"]

    def aws(self, *args: str, account: str | None = None) -> subprocess.CompletedProcess:
        """aws-cli v1 in a clean environment (no config files, this account's keys)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.creds(account))
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        return subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", self.server.endpoint,
                               "--output", "json", *args], env=env, text=True, capture_output=True,
                              timeout=180)

    def aws_json(self, *args: str, account: str | None = None):
        out = self.aws(*args, account=account)
        assert out.returncode == 0, f"aws {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}


def _register_with_build_tiny(server: NimboServer) -> str | None:
    """``nimbo image build-tiny`` over a data directory whose tiny-image folder is the shared cache
    (built once per run, like tests/backend's); None when the image cannot be built here."""
    try:
        from backend.tiny_image import build_tiny_image   # noqa: PLC0415
        build_tiny_image(TINY_IMAGE_CACHE)
    except Exception:  # noqa: BLE001 (no apt, no qemu-img: fall back to stub artifacts)
        return None
    os.symlink(os.path.abspath(TINY_IMAGE_CACHE), os.path.join(server.data_dir, "tiny-image"))
    out = server.nimbo("image", "build-tiny", "--data-dir", server.data_dir, "--if-missing")
    image_id = out.stdout.strip()
    assert re.fullmatch(r"ami-[0-9a-f]{17}", image_id), out
    return image_id


def _register_stub(server: NimboServer) -> str:
    """The tiny image registered from small stand-in files (the fake driver never reads them)."""
    from ec2_api.images import register_tiny_image   # noqa: PLC0415
    from gateway.config import Config   # noqa: PLC0415
    from storage.db import Database   # noqa: PLC0415
    art = os.path.join(server.data_dir, "stub-artifacts")
    os.makedirs(art)
    with open(os.path.join(art, "disk.img"), "wb") as fh:
        fh.truncate(4 * 1024 * 1024)

    async def register() -> str:
        db = await Database.open(os.path.join(server.data_dir, "nimbo.db"))
        try:
            return await register_tiny_image(db, Config(data_dir=server.data_dir),
                                             {"disk": os.path.join(art, "disk.img")})
        finally:
            await db.close()
    return asyncio.run(register())


@pytest.fixture(scope="module")
def cloud():
    data_dir = tempfile.mkdtemp(prefix="nimbo-e2e-ec2-", dir="/tmp")   # short: IMDS socket paths
    server = NimboServer(data_dir, extra_args=["--backend", "fake"])
    image_id = _register_with_build_tiny(server)
    server.start()
    try:
        source = "tiny image cache"
        if image_id is None:
            image_id, source = _register_stub(server), "stub artifacts"
        server.nimbo("admin", "--data-dir", data_dir, "create-account", TENANT)
        yield Cloud(server, image_id, source)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def launched(cloud):
    """Instance ids a test launched, per account; terminated after the test whatever happened."""
    ids: dict[str | None, list[str]] = {}
    yield ids
    for account, instance_ids in ids.items():
        if instance_ids:
            ec2 = cloud.client(account)
            for instance_id in instance_ids:
                try:
                    ec2.modify_instance_attribute(InstanceId=instance_id,
                                                  DisableApiTermination={"Value": False})
                except ClientError:
                    pass
            ec2.terminate_instances(InstanceIds=instance_ids)
            ec2.get_waiter("instance_terminated").wait(InstanceIds=instance_ids, WaiterConfig=FAST)


def run(cloud, launched, account: str | None = None, **params) -> dict:
    params.setdefault("ImageId", cloud.image_id)
    params.setdefault("MinCount", 1)
    params.setdefault("MaxCount", params["MinCount"])
    params.setdefault("InstanceType", "t3.nano")
    out = cloud.client(account).run_instances(**params)
    launched.setdefault(account, []).extend(i["InstanceId"] for i in out["Instances"])
    return out


def error_of(call, *args, **kwargs) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def instances_of(response: dict) -> list[dict]:
    return [i for r in response["Reservations"] for i in r["Instances"]]


def describe_one(ec2, instance_id: str) -> dict:
    (instance,) = instances_of(ec2.describe_instances(InstanceIds=[instance_id]))
    return instance


def ids_matching(ec2, *filters: tuple[str, list[str]]) -> list[str]:
    out = ec2.describe_instances(Filters=[{"Name": n, "Values": v} for n, v in filters])
    return sorted(i["InstanceId"] for i in instances_of(out))


# -- images ---------------------------------------------------------------------------------------

def test_tiny_image_is_public_to_every_account(cloud):
    admin_id, tenant_id = cloud.account_id(), cloud.account_id(TENANT)
    assert admin_id != tenant_id
    for account in (None, TENANT):
        ec2 = cloud.client(account)
        (image,) = ec2.describe_images(ImageIds=[cloud.image_id])["Images"]
        assert image["OwnerId"] == admin_id
        assert image["ImageOwnerAlias"] == "nimbo"
        assert image["Public"] is True
        assert image["State"] == "available"
        assert image["ImageType"] == "machine"
        assert image["Architecture"] == "x86_64"
        assert image["VirtualizationType"] == "hvm"
        assert image["RootDeviceType"] == "ebs"
        assert re.fullmatch(r"nimbo-tiny-\d{8}(-\d+)?", image["Name"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", image["CreationDate"])
        (root,) = image["BlockDeviceMappings"]
        assert root["DeviceName"] == image["RootDeviceName"]
        assert root["Ebs"]["VolumeSize"] == 1 and root["Ebs"]["SnapshotId"].startswith("snap-")
        by_alias = ec2.describe_images(Owners=["nimbo"])["Images"]
        assert cloud.image_id in [i["ImageId"] for i in by_alias]
        public = ec2.describe_images(Filters=[{"Name": "is-public", "Values": ["true"]},
                                              {"Name": "name", "Values": ["nimbo-tiny-*"]}])["Images"]
        assert cloud.image_id in [i["ImageId"] for i in public]
    # the tenant owns no image, and may not read the launch permissions of the admin's
    tenant = cloud.client(TENANT)
    assert tenant.describe_images(Owners=["self"])["Images"] == []
    code, status, message = error_of(tenant.describe_image_attribute, ImageId=cloud.image_id,
                                     Attribute="launchPermission")
    assert code == "AuthFailure" and cloud.image_id in message
    # aws-cli sees the same image for the tenant
    images = cloud.aws_json("ec2", "describe-images", "--owners", "nimbo", account=TENANT)["Images"]
    assert [i["ImageId"] for i in images if i["ImageId"] == cloud.image_id] == [cloud.image_id]
    # the admin's launch permission: public
    attr = cloud.client().describe_image_attribute(ImageId=cloud.image_id, Attribute="launchPermission")
    assert attr["LaunchPermissions"] == [{"Group": "all"}]


# -- key pairs ------------------------------------------------------------------------------------

def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def test_key_pairs_create_import_describe_delete(cloud, tmp_path):
    ec2 = cloud.client()
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    # aws-cli create-key-pair: an RSA PEM key whose fingerprint is the SHA-1 of its PKCS#8 DER
    created = cloud.aws_json("ec2", "create-key-pair", "--key-name", name)
    assert created["KeyName"] == name
    assert created["KeyPairId"].startswith("key-")
    material = created["KeyMaterial"]
    assert material.startswith("-----BEGIN RSA PRIVATE KEY-----")
    private = serialization.load_pem_private_key(material.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    assert created["KeyFingerprint"] == _colon_hex(hashlib.sha1(pkcs8).digest())

    # ImportKeyPair (RSA): the MD5 of the DER public key; (ed25519): base64 SHA-256
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    openssh = rsa_public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    imported = ec2.import_key_pair(KeyName=name + "-imported", PublicKeyMaterial=openssh + b" me@laptop",
                                   TagSpecifications=[{"ResourceType": "key-pair",
                                                       "Tags": [{"Key": "Owner", "Value": "me"}]}])
    spki = rsa_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert imported["KeyFingerprint"] == _colon_hex(hashlib.md5(spki).digest())
    assert imported["Tags"] == [{"Key": "Owner", "Value": "me"}]
    ed_public = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_line = ed_public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key_file = tmp_path / "id_ed25519.pub"
    key_file.write_bytes(ed_line + b"\n")
    ed_imported = cloud.aws_json("ec2", "import-key-pair", "--key-name", name + "-ed",
                                 "--public-key-material", f"fileb://{key_file}")
    blob = base64.b64decode(ed_line.split()[1])
    assert ed_imported["KeyFingerprint"] == base64.b64encode(hashlib.sha256(blob).digest()).decode()

    # DescribeKeyPairs: names, types, filters, public keys
    pairs = ec2.describe_key_pairs(KeyNames=[name, name + "-imported", name + "-ed"],
                                   IncludePublicKey=True)["KeyPairs"]
    by_name = {p["KeyName"]: p for p in pairs}
    assert {n: p["KeyType"] for n, p in by_name.items()} == {
        name: "rsa", name + "-imported": "rsa", name + "-ed": "ed25519"}
    assert by_name[name]["KeyFingerprint"] == created["KeyFingerprint"]
    assert by_name[name + "-imported"]["PublicKey"].startswith("ssh-rsa AAAA")
    assert by_name[name + "-imported"]["Tags"] == [{"Key": "Owner", "Value": "me"}]
    assert by_name[name + "-ed"]["PublicKey"].startswith("ssh-ed25519 AAAA")
    ed_only = ec2.describe_key_pairs(Filters=[{"Name": "key-type", "Values": ["ed25519"]},
                                              {"Name": "key-name", "Values": [name + "*"]}])["KeyPairs"]
    assert [p["KeyName"] for p in ed_only] == [name + "-ed"]
    tagged = ec2.describe_key_pairs(Filters=[{"Name": "tag:Owner", "Values": ["me"]}])["KeyPairs"]
    assert name + "-imported" in [p["KeyName"] for p in tagged]

    # errors: a duplicate name, an unknown name, a malformed id
    code, status, message = error_of(ec2.create_key_pair, KeyName=name)
    assert (code, status, message) == ("InvalidKeyPair.Duplicate", 400, f"The keypair '{name}' already exists.")
    code, _, message = error_of(ec2.describe_key_pairs, KeyNames=[name + "-nope"])
    assert (code, message) == ("InvalidKeyPair.NotFound", f"The key pair '{name}-nope' does not exist")
    assert error_of(ec2.delete_key_pair, KeyPairId="key-xyz")[0] == "InvalidKeyPair.Malformed"

    # key pairs belong to the account: the tenant sees none of these and may reuse the name
    tenant = cloud.client(TENANT)
    assert error_of(tenant.describe_key_pairs, KeyNames=[name])[0] == "InvalidKeyPair.NotFound"
    theirs = tenant.create_key_pair(KeyName=name, KeyType="ed25519")
    assert theirs["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert theirs["KeyPairId"] != created["KeyPairId"]
    tenant.delete_key_pair(KeyName=name)

    # DeleteKeyPair by name (aws-cli) and by id; deleting a missing name still succeeds, as in EC2
    deleted = cloud.aws_json("ec2", "delete-key-pair", "--key-name", name)
    assert deleted.get("Return", True) is True
    assert ec2.delete_key_pair(KeyPairId=imported["KeyPairId"])["Return"] is True
    assert ec2.delete_key_pair(KeyName=name)["Return"] is True
    ec2.delete_key_pair(KeyName=name + "-ed")
    left = [p["KeyName"] for p in ec2.describe_key_pairs()["KeyPairs"]]
    assert not [n for n in left if n.startswith(name)]
    assert error_of(ec2.describe_key_pairs, KeyPairIds=[imported["KeyPairId"]])[0] == "InvalidKeyPair.NotFound"


# -- RunInstances ---------------------------------------------------------------------------------

def test_run_instances_tags_user_data_client_token(cloud, launched, tmp_path):
    ec2 = cloud.client()
    admin_id = cloud.account_id()
    key = f"e2e-run-{uuid.uuid4().hex[:6]}"
    ec2.create_key_pair(KeyName=key, KeyType="ed25519")
    token = uuid.uuid4().hex
    user_data = "#!/bin/sh\necho hello from user data\n"
    params = dict(ImageId=cloud.image_id, MinCount=2, MaxCount=2, InstanceType="t3.nano", KeyName=key,
                  UserData=user_data, ClientToken=token,
                  Placement={"AvailabilityZone": "us-east-1b"},
                  TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"},
                                                                           {"Key": "Env", "Value": "e2e"}]},
                                     {"ResourceType": "volume", "Tags": [{"Key": "Disk", "Value": "root"}]}])
    out = run(cloud, launched, **params)
    assert re.fullmatch(r"r-[0-9a-f]{17}", out["ReservationId"])
    assert out["OwnerId"] == admin_id
    assert len(out["Instances"]) == 2
    ids = [i["InstanceId"] for i in out["Instances"]]
    assert sorted(i["AmiLaunchIndex"] for i in out["Instances"]) == [0, 1]
    for instance in out["Instances"]:
        assert re.fullmatch(r"i-[0-9a-f]{17}", instance["InstanceId"])
        assert instance["State"] == {"Code": 0, "Name": "pending"}
        assert instance["InstanceType"] == "t3.nano"
        assert instance["KeyName"] == key
        assert instance["ImageId"] == cloud.image_id
        assert instance["ClientToken"] == token
        assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
        assert sorted((t["Key"], t["Value"]) for t in instance["Tags"]) == [("Env", "e2e"), ("Name", "web")]

    # the same call with the same token: the same reservation, nothing new launched
    again = ec2.run_instances(**params)
    assert again["ReservationId"] == out["ReservationId"]
    assert sorted(i["InstanceId"] for i in again["Instances"]) == sorted(ids)
    assert ids_matching(ec2, ("client-token", [token])) == sorted(ids)
    # the same token with other parameters
    code, status, _ = error_of(ec2.run_instances, **{**params, "MaxCount": 3})
    assert (code, status) == ("IdempotentParameterMismatch", 400)

    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig=FAST)
    for instance_id in ids:
        attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        assert base64.b64decode(attr["UserData"]["Value"]).decode() == user_data
    instance = describe_one(ec2, ids[0])
    assert instance["State"] == {"Code": 16, "Name": "running"}
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]},
                                           {"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    assert instance["SubnetId"] == subnet["SubnetId"] and subnet["CidrBlock"] == "172.31.16.0/20"
    ip = instance["PrivateIpAddress"]
    assert ip.startswith("172.31.") and 16 <= int(ip.split(".")[2]) < 32
    assert instance["PrivateDnsName"] == f"ip-{ip.replace('.', '-')}.ec2.internal"
    assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["default"]
    root_volume = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume_tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [root_volume]}])["Tags"]
    assert volume_tags == [{"Key": "Disk", "ResourceId": root_volume, "ResourceType": "volume", "Value": "root"}]

    # aws-cli: --user-data file:// is base64-encoded by the client; `aws ec2 wait instance-running`
    script = tmp_path / "boot.sh"
    script.write_text("#!/bin/sh\necho from the cli\n")
    cli = cloud.aws_json("ec2", "run-instances", "--image-id", cloud.image_id, "--count", "1",
                         "--instance-type", "t3.micro", "--user-data", f"file://{script}",
                         "--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli}]")
    cli_id = cli["Instances"][0]["InstanceId"]
    launched.setdefault(None, []).append(cli_id)
    assert cli["Instances"][0]["State"]["Name"] == "pending"
    waited = cloud.aws("ec2", "wait", "instance-running", "--instance-ids", cli_id)
    assert waited.returncode == 0, waited.stderr
    described = cloud.aws_json("ec2", "describe-instances", "--instance-ids", cli_id)
    (cli_instance,) = instances_of(described)
    assert cli_instance["State"] == {"Code": 16, "Name": "running"}
    assert cli_instance["InstanceType"] == "t3.micro"
    assert cli_instance["Tags"] == [{"Key": "Name", "Value": "cli"}]
    attr = ec2.describe_instance_attribute(InstanceId=cli_id, Attribute="userData")
    assert base64.b64decode(attr["UserData"]["Value"]) == b"#!/bin/sh\necho from the cli\n"
    ec2.delete_key_pair(KeyName=key)


def test_describe_instances_filters_and_pagination(cloud, launched):
    ec2 = cloud.client()
    suite = uuid.uuid4().hex
    mine = ("tag:Suite", [suite])

    def spec(role: str) -> list[dict]:
        return [{"ResourceType": "instance", "Tags": [{"Key": "Role", "Value": role},
                                                      {"Key": "Suite", "Value": suite}]}]
    web = [i["InstanceId"] for i in run(cloud, launched, MinCount=4, InstanceType="t3.nano",
                                        TagSpecifications=spec("web"))["Instances"]]
    db = [i["InstanceId"] for i in run(cloud, launched, MinCount=2, InstanceType="t3.micro",
                                       TagSpecifications=spec("db"))["Instances"]]
    everything = sorted(web + db)
    ec2.get_waiter("instance_running").wait(InstanceIds=everything, WaiterConfig=FAST)
    ec2.stop_instances(InstanceIds=[web[0]])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[web[0]], WaiterConfig=FAST)

    assert ids_matching(ec2, mine) == everything
    assert ids_matching(ec2, mine, ("tag:Role", ["web"])) == sorted(web)
    assert ids_matching(ec2, mine, ("tag:Role", ["web", "db"])) == everything     # values: OR
    assert ids_matching(ec2, mine, ("tag:Role", ["w*"])) == sorted(web)           # wildcards
    assert ids_matching(ec2, mine, ("tag:Role", ["?b"])) == sorted(db)
    assert ids_matching(ec2, mine, ("tag-key", ["Role"])) == everything
    assert ids_matching(ec2, mine, ("instance-type", ["t3.micro"])) == sorted(db)
    assert ids_matching(ec2, mine, ("instance-state-name", ["stopped"])) == [web[0]]
    assert ids_matching(ec2, mine, ("instance-state-code", ["16"])) == sorted(web[1:] + db)
    assert ids_matching(ec2, mine, ("instance-state-name", ["running"]),            # filters: AND
                        ("tag:Role", ["web"]), ("instance-type", ["t3.nano"])) == sorted(web[1:])
    assert ids_matching(ec2, mine, ("tag:Role", ["nobody"])) == []
    code, _, message = error_of(ec2.describe_instances, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert (code, message) == ("InvalidParameterValue", "The filter 'no-such-filter' is invalid")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Suite", "Values": [suite]}])["Reservations"]
    assert sorted(len(r["Instances"]) for r in reservations) == [2, 4]   # grouped by reservation

    # pagination: pages of 5 cover the 6 instances once each
    first = ec2.describe_instances(Filters=[{"Name": "tag:Suite", "Values": [suite]}], MaxResults=5)
    assert len(instances_of(first)) == 5 and first.get("NextToken")
    second = ec2.describe_instances(Filters=[{"Name": "tag:Suite", "Values": [suite]}], MaxResults=5,
                                    NextToken=first["NextToken"])
    assert len(instances_of(second)) == 1 and not second.get("NextToken")
    paged = [i["InstanceId"] for page in (first, second) for i in instances_of(page)]
    assert sorted(paged) == everything
    pages = list(ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:Suite", "Values": [suite]}], PaginationConfig={"PageSize": 5}))
    assert [len(instances_of(p)) for p in pages] == [5, 1]
    code, _, message = error_of(ec2.describe_instances, MaxResults=4)
    assert code == "InvalidParameterValue" and "maxResults" in message
    assert error_of(ec2.describe_instances, InstanceIds=[web[0]], MaxResults=5)[0] == "InvalidParameterCombination"
    # InstanceIds and filters together
    assert ids_matching(ec2, mine, ("instance-id", [web[1], db[0]])) == sorted([web[1], db[0]])
    # filters on what only the rendered instance knows (network), alone and with a row's own
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    assert ids_matching(ec2, mine, ("vpc-id", [vpc_id])) == everything
    assert ids_matching(ec2, mine, ("vpc-id", [vpc_id]), ("instance-type", ["t3.micro"])) == sorted(db)
    assert ids_matching(ec2, mine, ("private-ip-address", ["172.31.*"]), ("tag:Role", ["db"])) == sorted(db)
    by_network = [ec2.describe_instances(Filters=[{"Name": "tag:Suite", "Values": [suite]},
                                                  {"Name": "network-interface.vpc-id", "Values": [vpc_id]}],
                                         MaxResults=5)]
    by_network.append(ec2.describe_instances(Filters=[{"Name": "tag:Suite", "Values": [suite]},
                                                      {"Name": "network-interface.vpc-id", "Values": [vpc_id]}],
                                             MaxResults=5, NextToken=by_network[0]["NextToken"]))
    assert [len(instances_of(p)) for p in by_network] == [5, 1] and not by_network[1].get("NextToken")
    assert sorted(i["InstanceId"] for p in by_network for i in instances_of(p)) == everything

    # aws-cli: filters and its own paging (--page-size) give every instance
    cli = cloud.aws_json("ec2", "describe-instances", "--page-size", "5", "--filters",
                         f"Name=tag:Suite,Values={suite}", "Name=instance-state-name,Values=running")
    assert sorted(i["InstanceId"] for i in instances_of(cli)) == sorted(web[1:] + db)
    cli = cloud.aws_json("ec2", "describe-instances", "--filters", f"Name=tag:Suite,Values={suite}",
                         "--query", "Reservations[].Instances[?InstanceType=='t3.micro'][].InstanceId")
    assert sorted(cli) == sorted(db)


# -- the instance life cycle ----------------------------------------------------------------------

def test_state_changes_codes_attributes_console_and_dry_run(cloud, launched):
    ec2 = cloud.client()
    (instance_id,) = [i["InstanceId"] for i in run(cloud, launched)["Instances"]]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    ec2.get_waiter("instance_exists").wait(InstanceIds=[instance_id], WaiterConfig=FAST)

    def change(response_key: str, response: dict) -> tuple[tuple[int, str], tuple[int, str]]:
        (item,) = response[response_key]
        assert item["InstanceId"] == instance_id
        return ((item["PreviousState"]["Code"], item["PreviousState"]["Name"]),
                (item["CurrentState"]["Code"], item["CurrentState"]["Name"]))

    # DryRun: checked, refused with DryRunOperation (412), nothing changes
    for call, kwargs in ((ec2.stop_instances, {"InstanceIds": [instance_id]}),
                         (ec2.terminate_instances, {"InstanceIds": [instance_id]}),
                         (ec2.reboot_instances, {"InstanceIds": [instance_id]}),
                         (ec2.describe_instances, {}),
                         (ec2.run_instances, {"ImageId": cloud.image_id, "MinCount": 1, "MaxCount": 1})):
        code, status, message = error_of(call, DryRun=True, **kwargs)
        assert (code, status, message) == ("DryRunOperation", 412,
                                           "Request would have succeeded, but DryRun flag is set.")
    cli = cloud.aws("ec2", "stop-instances", "--instance-ids", instance_id, "--dry-run")
    assert cli.returncode != 0 and "DryRunOperation" in cli.stderr
    assert describe_one(ec2, instance_id)["State"]["Name"] == "running"

    # the instance type may change only while stopped
    code, _, message = error_of(ec2.modify_instance_attribute, InstanceId=instance_id,
                                InstanceType={"Value": "t3.micro"})
    assert code == "IncorrectInstanceState" and instance_id in message

    # reboot: accepted while running, the VM is reset
    assert ec2.reboot_instances(InstanceIds=[instance_id])["ResponseMetadata"]["HTTPStatusCode"] == 200

    # stop: running(16) -> stopping(64) -> stopped(80), with EC2's reasons
    assert change("StoppingInstances", ec2.stop_instances(InstanceIds=[instance_id])) == (
        (16, "running"), (64, "stopping"))
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    stopped = describe_one(ec2, instance_id)
    assert stopped["State"] == {"Code": 80, "Name": "stopped"}
    assert stopped["StateReason"] == {"Code": "Client.UserInitiatedShutdown",
                                      "Message": "Client.UserInitiatedShutdown: User initiated shutdown"}
    assert re.fullmatch(r"User initiated \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\)", stopped["StateTransitionReason"])
    assert change("StoppingInstances", ec2.stop_instances(InstanceIds=[instance_id])) == (
        (80, "stopped"), (80, "stopped"))
    code, _, _ = error_of(ec2.reboot_instances, InstanceIds=[instance_id])
    assert code == "IncorrectInstanceState"
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.micro"})
    assert describe_one(ec2, instance_id)["InstanceType"] == "t3.micro"
    code, _, message = error_of(ec2.modify_instance_attribute, InstanceId=instance_id,
                                InstanceType={"Value": "t9.mega"})
    assert (code, message) == ("InvalidParameterValue", "Invalid value 't9.mega' for InstanceType.")

    # start: stopped(80) -> pending(0) -> running(16)
    assert change("StartingInstances", ec2.start_instances(InstanceIds=[instance_id])) == (
        (80, "stopped"), (0, "pending"))
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    assert change("StartingInstances", ec2.start_instances(InstanceIds=[instance_id])) == (
        (16, "running"), (16, "running"))
    running = describe_one(ec2, instance_id)
    assert running["State"] == {"Code": 16, "Name": "running"} and running["InstanceType"] == "t3.micro"
    assert running["StateTransitionReason"] == ""

    # GetConsoleOutput: base64 on the wire (boto3 decodes it unless told not to)
    console = ec2.get_console_output(InstanceId=instance_id)
    assert console["InstanceId"] == instance_id and console["Timestamp"]
    text = console["Output"]
    assert "fake: started" in text and "fake: reset" in text and "fake: stopped" in text
    raw_client = cloud.client()
    raw_client.meta.events.unregister("after-call.ec2.GetConsoleOutput", decode_console_output)
    raw = raw_client.get_console_output(InstanceId=instance_id)["Output"]
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", raw) and base64.b64decode(raw).decode() == text
    cli_console = cloud.aws_json("ec2", "get-console-output", "--instance-id", instance_id)
    assert "fake: started" in cli_console["Output"]

    # disableApiTermination: TerminateInstances is refused until it is cleared
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    attr = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    assert attr["DisableApiTermination"] == {"Value": True}
    code, status, message = error_of(ec2.terminate_instances, InstanceIds=[instance_id])
    assert (code, status) == ("OperationNotPermitted", 400) and instance_id in message
    assert describe_one(ec2, instance_id)["State"]["Name"] == "running"
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})

    # terminate: running(16) -> shutting-down(32) -> terminated(48); still visible, then idempotent
    assert change("TerminatingInstances", ec2.terminate_instances(InstanceIds=[instance_id])) == (
        (16, "running"), (32, "shutting-down"))
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    gone = describe_one(ec2, instance_id)
    assert gone["State"] == {"Code": 48, "Name": "terminated"}
    assert "PrivateIpAddress" not in gone and gone["BlockDeviceMappings"] == []
    assert change("TerminatingInstances", ec2.terminate_instances(InstanceIds=[instance_id])) == (
        (48, "terminated"), (48, "terminated"))
    assert error_of(ec2.start_instances, InstanceIds=[instance_id])[0] == "IncorrectInstanceState"
    assert error_of(ec2.stop_instances, InstanceIds=[instance_id])[0] == "IncorrectInstanceState"
    assert error_of(ec2.reboot_instances, InstanceIds=[instance_id])[0] == "IncorrectInstanceState"


def test_waiters_through_aws_cli_and_boto3(cloud, launched):
    ec2 = cloud.client()
    ids = [i["InstanceId"] for i in run(cloud, launched, MinCount=2)["Instances"]]
    for waiter in ("instance-exists", "instance-running"):
        out = cloud.aws("ec2", "wait", waiter, "--instance-ids", *ids)
        assert out.returncode == 0, f"{waiter}: {out.stderr}"
    # (aws-cli's instance-status-ok polls every 15 s; boto3's with a short delay)
    ec2.get_waiter("instance_status_ok").wait(InstanceIds=ids, WaiterConfig=FAST)
    status = ec2.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
    assert sorted(s["InstanceId"] for s in status) == sorted(ids)
    assert {s["InstanceStatus"]["Status"] for s in status} == {"ok"}
    assert {s["InstanceState"]["Name"] for s in status} == {"running"}
    ec2.stop_instances(InstanceIds=ids)
    out = cloud.aws("ec2", "wait", "instance-stopped", "--instance-ids", *ids)
    assert out.returncode == 0, out.stderr
    assert ec2.describe_instance_status(InstanceIds=ids)["InstanceStatuses"] == []
    every = ec2.describe_instance_status(InstanceIds=ids, IncludeAllInstances=True)["InstanceStatuses"]
    assert {s["InstanceState"]["Name"] for s in every} == {"stopped"}
    # a waiter for a state the instances are not in gives up
    with pytest.raises(WaiterError) as caught:
        ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 0.2, "MaxAttempts": 3})
    assert "Max attempts exceeded" in str(caught.value)
    ec2.terminate_instances(InstanceIds=ids)
    out = cloud.aws("ec2", "wait", "instance-terminated", "--instance-ids", *ids)
    assert out.returncode == 0, out.stderr
    # instance-running fails at once on a terminated instance (a failure acceptor)
    with pytest.raises(WaiterError) as caught:
        ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 0.2, "MaxAttempts": 3})
    assert "terminal failure state" in str(caught.value)


# -- errors and isolation -------------------------------------------------------------------------

def test_bad_ids_unknown_resources_and_tenant_isolation(cloud, launched):
    ec2, tenant = cloud.client(), cloud.client(TENANT)
    before = ids_matching(ec2, ("instance-state-name", ["pending", "running", "stopping", "stopped"]))

    # malformed and unknown instance ids
    for call in (ec2.describe_instances, ec2.stop_instances, ec2.start_instances, ec2.terminate_instances):
        code, status, message = error_of(call, InstanceIds=["i-xyz"])
        assert (code, status) == ("InvalidInstanceID.Malformed", 400) and "i-xyz" in message
    code, status, message = error_of(ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"])
    assert (code, status, message) == ("InvalidInstanceID.NotFound", 400,
                                       "The instance ID 'i-0123456789abcdef0' does not exist")
    assert error_of(ec2.get_console_output, InstanceId="i-0123456789abcdef0")[0] == "InvalidInstanceID.NotFound"

    # launches that name what does not exist
    code, _, message = error_of(ec2.run_instances, ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1)
    assert code == "InvalidAMIID.NotFound" and "ami-0123456789abcdef0" in message
    assert error_of(ec2.run_instances, ImageId="ami-xyz", MinCount=1, MaxCount=1)[0] == "InvalidAMIID.Malformed"
    code, status, message = error_of(ec2.run_instances, ImageId=cloud.image_id, MinCount=1, MaxCount=1,
                                     InstanceType="t9.mega")
    assert (code, status, message) == ("InvalidParameterValue", 400, "Invalid value 't9.mega' for InstanceType.")
    code, _, message = error_of(ec2.run_instances, ImageId=cloud.image_id, MinCount=1, MaxCount=1,
                                KeyName="no-such-key")
    assert (code, message) == ("InvalidKeyPair.NotFound", "The key pair 'no-such-key' does not exist")
    code, _, message = error_of(ec2.run_instances, ImageId=cloud.image_id, MinCount=25, MaxCount=25)
    assert code == "InstanceLimitExceeded" and "20" in message
    assert error_of(ec2.run_instances, ImageId=cloud.image_id, MinCount=2, MaxCount=1)[0] == "InvalidParameterValue"
    cli = cloud.aws("ec2", "run-instances", "--image-id", "ami-0123456789abcdef0", "--count", "1")
    assert cli.returncode != 0 and "InvalidAMIID.NotFound" in cli.stderr
    after = ids_matching(ec2, ("instance-state-name", ["pending", "running", "stopping", "stopped"]))
    assert after == before   # no failed launch left an instance behind

    # the tenant launches from the admin's public AMI; its instance is invisible to the admin
    theirs = run(cloud, launched, account=TENANT,
                 TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Owner", "Value": "tenant"}]}])
    (their_id,) = [i["InstanceId"] for i in theirs["Instances"]]
    assert theirs["OwnerId"] == cloud.account_id(TENANT)
    tenant.get_waiter("instance_running").wait(InstanceIds=[their_id], WaiterConfig=FAST)
    for call, kwargs in ((ec2.describe_instances, {"InstanceIds": [their_id]}),
                         (ec2.stop_instances, {"InstanceIds": [their_id]}),
                         (ec2.terminate_instances, {"InstanceIds": [their_id]}),
                         (ec2.reboot_instances, {"InstanceIds": [their_id]}),
                         (ec2.get_console_output, {"InstanceId": their_id}),
                         (ec2.describe_instance_attribute, {"InstanceId": their_id, "Attribute": "userData"}),
                         (ec2.modify_instance_attribute, {"InstanceId": their_id,
                                                          "DisableApiTermination": {"Value": True}}),
                         (ec2.create_tags, {"Resources": [their_id], "Tags": [{"Key": "x", "Value": "y"}]})):
        code, _, message = error_of(call, **kwargs)
        assert code == "InvalidInstanceID.NotFound", (call, code)
        assert message == f"The instance ID '{their_id}' does not exist"
    assert their_id not in ids_matching(ec2, ("tag:Owner", ["tenant"]))
    assert their_id not in [t["ResourceId"] for t in ec2.describe_tags()["Tags"]]
    cli = cloud.aws("ec2", "terminate-instances", "--instance-ids", their_id)
    assert cli.returncode != 0 and "InvalidInstanceID.NotFound" in cli.stderr
    # untouched on the tenant's side
    mine = describe_one(tenant, their_id)
    assert mine["State"]["Name"] == "running"
    assert mine["Tags"] == [{"Key": "Owner", "Value": "tenant"}]
    assert ids_matching(tenant, ("tag:Owner", ["tenant"])) == [their_id]
    assert all(i not in ids_matching(tenant) for i in after)


# -- tags -----------------------------------------------------------------------------------------

def test_create_describe_delete_tags(cloud, launched):
    ec2 = cloud.client()
    (instance,) = run(cloud, launched)["Instances"]
    instance_id = instance["InstanceId"]
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    ec2.create_tags(Resources=[instance_id, volume_id], Tags=[{"Key": "Name", "Value": "tagged"},
                                                              {"Key": "Env", "Value": "test"}])
    out = cloud.aws("ec2", "create-tags", "--resources", instance_id, "--tags", "Key=Team,Value=core")
    assert out.returncode == 0, out.stderr

    def tags_of(resource_id: str) -> dict[str, str]:
        found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return {t["Key"]: t["Value"] for t in found}
    assert tags_of(instance_id) == {"Name": "tagged", "Env": "test", "Team": "core"}
    assert tags_of(volume_id) == {"Name": "tagged", "Env": "test"}
    rows = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]},
                                      {"Name": "key", "Values": ["Name"]}])["Tags"]
    assert rows == [{"Key": "Name", "ResourceId": instance_id, "ResourceType": "instance", "Value": "tagged"}]
    by_type = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["volume"]},
                                         {"Name": "resource-id", "Values": [volume_id]}])["Tags"]
    assert {t["ResourceType"] for t in by_type} == {"volume"}
    cli = cloud.aws_json("ec2", "describe-tags", "--filters", f"Name=resource-id,Values={instance_id}",
                         "Name=value,Values=core")
    assert cli["Tags"] == [{"Key": "Team", "ResourceId": instance_id, "ResourceType": "instance", "Value": "core"}]
    assert describe_one(ec2, instance_id)["Tags"] and ids_matching(ec2, ("tag:Team", ["core"])) == [instance_id]
    # overwrite a value
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Env", "Value": "prod"}])
    assert tags_of(instance_id)["Env"] == "prod"

    # DeleteTags: a value that does not match deletes nothing; a key alone deletes whatever value
    ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": "Name", "Value": "other"}])
    assert "Name" in tags_of(instance_id)
    ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": "Name", "Value": "tagged"}])
    ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": "Env"}])
    assert tags_of(instance_id) == {"Team": "core"}
    out = cloud.aws("ec2", "delete-tags", "--resources", instance_id, "--tags", "Key=Team")
    assert out.returncode == 0, out.stderr
    assert tags_of(instance_id) == {}
    assert "Tags" not in describe_one(ec2, instance_id) or describe_one(ec2, instance_id)["Tags"] == []
    assert tags_of(volume_id) == {"Name": "tagged", "Env": "test"}

    # errors
    code, _, message = error_of(ec2.create_tags, Resources=["i-0123456789abcdef0"], Tags=[{"Key": "a", "Value": "b"}])
    assert code == "InvalidInstanceID.NotFound" and "i-0123456789abcdef0" in message
    code, _, message = error_of(ec2.create_tags, Resources=["not-an-id"], Tags=[{"Key": "a", "Value": "b"}])
    assert (code, message) == ("InvalidID", "The ID 'not-an-id' is not valid")
    code, _, message = error_of(ec2.create_tags, Resources=[instance_id], Tags=[{"Key": "aws:x", "Value": "b"}])
    assert code == "InvalidParameterValue" and "aws:" in message


# -- the default network --------------------------------------------------------------------------

def test_default_vpc_subnets_and_security_group(cloud):
    vpc_ids = {}
    for account in (None, TENANT):
        ec2 = cloud.client(account)
        owner = cloud.account_id(account)
        (vpc,) = ec2.describe_vpcs()["Vpcs"]
        assert vpc["IsDefault"] is True and vpc["State"] == "available"
        assert vpc["CidrBlock"] == "172.31.0.0/16" and vpc["OwnerId"] == owner
        assert re.fullmatch(r"vpc-[0-9a-f]{17}", vpc["VpcId"])
        vpc_ids[account] = vpc["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        layout = sorted((s["AvailabilityZone"], s["CidrBlock"]) for s in subnets)
        assert layout == [("us-east-1a", "172.31.0.0/20"), ("us-east-1b", "172.31.16.0/20"),
                          ("us-east-1c", "172.31.32.0/20")]
        for subnet in subnets:
            assert subnet["DefaultForAz"] is True and subnet["MapPublicIpOnLaunch"] is True
            assert subnet["State"] == "available" and subnet["OwnerId"] == owner
            assert 0 < subnet["AvailableIpAddressCount"] <= 4091
            assert subnet["SubnetArn"] == f"arn:aws:ec2:us-east-1:{owner}:subnet/{subnet['SubnetId']}"
        (group,) = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
        assert group["VpcId"] == vpc["VpcId"] and group["OwnerId"] == owner
        assert group["Description"] == "default VPC security group"
        assert group["IpPermissionsEgress"][0]["IpProtocol"] == "-1"
        assert group["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
        assert group["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == group["GroupId"]
        attributes = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
                      for a in ec2.describe_account_attributes()["AccountAttributes"]}
        assert attributes["default-vpc"] == [vpc["VpcId"]]
        assert attributes["max-instances"] == ["20"]
    assert vpc_ids[None] != vpc_ids[TENANT]
    # aws-cli, the filter spelled as EC2 spells it
    cli = cloud.aws_json("ec2", "describe-vpcs", "--filters", "Name=is-default,Values=true", account=TENANT)
    assert [v["VpcId"] for v in cli["Vpcs"]] == [vpc_ids[TENANT]]
    cli = cloud.aws_json("ec2", "describe-subnets", "--filters", "Name=default-for-az,Values=true",
                         "Name=availability-zone,Values=us-east-1c")
    assert [s["CidrBlock"] for s in cli["Subnets"]] == ["172.31.32.0/20"]
    cli = cloud.aws_json("ec2", "describe-security-groups", "--group-names", "default")
    assert cli["SecurityGroups"][0]["GroupName"] == "default"
    # another account's VPC is not found
    code, _, _ = error_of(cloud.client().describe_vpcs, VpcIds=[vpc_ids[TENANT]])
    assert code == "InvalidVpcID.NotFound"
