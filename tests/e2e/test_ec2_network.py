"""EC2 networking end to end: boto3 and aws-cli against a live ``nimbo serve --backend fake`` whose
config asks for the fake data path (``network = "fake"``), as a root Nimbo runs with its
namespace data path: a VPC built the way a new user (or Terraform) builds one, an instance in it
with a security group and a public address, an Elastic IP, and a full tear-down that leaves
nothing behind. A second server without a data path (user-mode networking) refuses public
addresses with a clear error. The packets themselves are the data path's (tests/vm)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer

FAST = {"Delay": 0.5, "MaxAttempts": 40}


def _register_stub(data_dir: str) -> str:
    from ec2_api.images import register_tiny_image   # noqa: PLC0415
    from gateway.config import Config   # noqa: PLC0415
    from storage.db import Database   # noqa: PLC0415
    art = os.path.join(data_dir, "stub-artifacts")
    os.makedirs(art)
    with open(os.path.join(art, "disk.img"), "wb") as fh:
        fh.truncate(4 * 1024 * 1024)

    async def register() -> str:
        db = await Database.open(os.path.join(data_dir, "nimbo.db"))
        try:
            return await register_tiny_image(db, Config(data_dir=data_dir), {"disk": os.path.join(art, "disk.img")})
        finally:
            await db.close()
    return asyncio.run(register())


class Net:
    def __init__(self, server: NimboServer, image_id: str) -> None:
        self.server, self.image_id = server, image_id
        self.env = server.credentials()

    def ec2(self, account: str | None = None):
        env = self.env if account is None else self.server.credentials(account)
        return boto3.client("ec2", endpoint_url=self.server.endpoint, region_name="us-east-1",
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    def aws(self, *args: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.env)
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        out = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", self.server.endpoint,
                              "--region", "us-east-1", "--output", "json", *args], env=env, text=True,
                             capture_output=True, timeout=180)
        assert out.returncode == 0, f"aws {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}


def _server(network: str | None):
    data_dir = tempfile.mkdtemp(prefix="nimbo-e2e-net-", dir="/tmp")
    args = ["--backend", "fake"]
    if network:
        config = os.path.join(data_dir, "nimbo.toml")
        with open(config, "w") as fh:
            fh.write(f'network = "{network}"\npublic_ip_pool = "198.18.7.0/28"\n')
        args += ["--config", config]
    server = NimboServer(data_dir, extra_args=args)
    image_id = None
    server.start()
    server.stop()      # the first start made the database; register the stub image offline
    image_id = _register_stub(data_dir)
    server.start()
    return server, image_id, data_dir


@pytest.fixture(scope="module")
def net():
    server, image_id, data_dir = _server("fake")
    try:
        yield Net(server, image_id)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_a_vpc_from_scratch_to_an_instance_with_a_public_address_and_back(net):
    ec2 = net.ec2()
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "e2e"}]}])["Vpc"]
    vpc_id = vpc["VpcId"]
    ec2.get_waiter("vpc_available").wait(VpcIds=[vpc_id], WaiterConfig=FAST)
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1a")[
        "Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    igw_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    assert ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)["Return"]
    association = ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)["AssociationId"]
    group_id = ec2.create_security_group(GroupName="ssh", Description="ssh from anywhere", VpcId=vpc_id)["GroupId"]
    out = ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0",
                                                                          "Description": "ssh"}]}])
    assert out["Return"] is True and out["SecurityGroupRules"][0]["FromPort"] == 22
    with pytest.raises(ClientError) as exc:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpProtocol="tcp", FromPort=22, ToPort=22,
                                             CidrIp="0.0.0.0/0")
    assert _code(exc.value) == "InvalidPermission.Duplicate"
    with pytest.raises(ClientError) as exc:
        ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.21.0.0/24")
    assert _code(exc.value) == "InvalidSubnet.Range"
    with pytest.raises(ClientError) as exc:
        ec2.delete_vpc(VpcId=vpc_id, DryRun=True)
    assert _code(exc.value) == "DryRunOperation"
    run = ec2.run_instances(ImageId=net.image_id, MinCount=1, MaxCount=1, SubnetId=subnet_id,
                            SecurityGroupIds=[group_id], PrivateIpAddress="10.20.1.10")
    instance_id = run["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    for _ in range(40):   # the public address comes with the running state (auto-assigned)
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        if instance.get("PublicIpAddress"):
            break

        time.sleep(0.1)
    assert instance["PrivateIpAddress"] == "10.20.1.10" and instance["PrivateDnsName"] == "ip-10-20-1-10.ec2.internal"
    assert instance["PublicIpAddress"].startswith("198.18.7.")
    assert instance["SecurityGroups"] == [{"GroupId": group_id, "GroupName": "ssh"}]
    eni_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    allocation = ec2.allocate_address(Domain="vpc")
    association_id = ec2.associate_address(AllocationId=allocation["AllocationId"],
                                           InstanceId=instance_id)["AssociationId"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["PublicIpAddress"] == allocation["PublicIp"]   # the Elastic IP replaced the auto one
    address = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
    assert (address["InstanceId"], address["NetworkInterfaceId"]) == (instance_id, eni_id)
    found = ec2.describe_network_interfaces(Filters=[{"Name": "association.public-ip",
                                                      "Values": [allocation["PublicIp"]]}])
    assert [n["NetworkInterfaceId"] for n in found["NetworkInterfaces"]] == [eni_id]
    pages = ec2.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 5})
    assert group_id in {g["GroupId"] for page in pages for g in page["SecurityGroups"]}
    revoked = ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert revoked["Return"] is True
    with pytest.raises(ClientError) as exc:
        ec2.delete_security_group(GroupId=group_id)
    assert _code(exc.value) == "DependencyViolation"
    # tear it all down, as the README's walk-through does
    ec2.disassociate_address(AssociationId=association_id)
    ec2.release_address(AllocationId=allocation["AllocationId"])
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    for _ in range(40):
        if not ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"]:
            break

        time.sleep(0.1)
    assert ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"] == []
    ec2.delete_security_group(GroupId=group_id)
    ec2.disassociate_route_table(AssociationId=association)
    ec2.delete_route_table(RouteTableId=table_id)
    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw_id)
    ec2.delete_subnet(SubnetId=subnet_id)
    ec2.delete_vpc(VpcId=vpc_id)
    with pytest.raises(ClientError) as exc:
        ec2.describe_vpcs(VpcIds=[vpc_id])
    assert _code(exc.value) == "InvalidVpcID.NotFound"
    assert ec2.describe_addresses()["Addresses"] == []


def test_aws_cli_security_groups_and_addresses(net):
    vpc_id = net.aws("ec2", "describe-vpcs", "--filters", "Name=is-default,Values=true")["Vpcs"][0]["VpcId"]
    group_id = net.aws("ec2", "create-security-group", "--group-name", "cli-web", "--description", "web",
                       "--vpc-id", vpc_id)["GroupId"]
    out = net.aws("ec2", "authorize-security-group-ingress", "--group-id", group_id, "--protocol", "tcp",
                  "--port", "80", "--cidr", "0.0.0.0/0")
    assert out["Return"] is True
    groups = net.aws("ec2", "describe-security-groups", "--group-ids", group_id)["SecurityGroups"]
    assert groups[0]["IpPermissions"][0]["FromPort"] == 80
    rules = net.aws("ec2", "describe-security-group-rules", "--filters", f"Name=group-id,Values={group_id}")
    assert len(rules["SecurityGroupRules"]) == 2
    allocation = net.aws("ec2", "allocate-address")
    assert allocation["PublicIp"].startswith("198.18.7.")
    listed = net.aws("ec2", "describe-addresses")["Addresses"]
    assert [a["AllocationId"] for a in listed] == [allocation["AllocationId"]]
    net.aws("ec2", "release-address", "--allocation-id", allocation["AllocationId"])
    net.aws("ec2", "delete-security-group", "--group-id", group_id)
    assert net.aws("ec2", "describe-addresses")["Addresses"] == []


def test_user_mode_networking_says_public_addresses_need_the_data_path():
    server, image_id, data_dir = _server(None)
    try:
        ec2 = Net(server, image_id).ec2()
        with pytest.raises(ClientError) as exc:
            ec2.allocate_address(Domain="vpc")
        assert _code(exc.value) == "UnsupportedOperation"
        assert "data path" in exc.value.response["Error"]["Message"]
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]   # the API itself works
        assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["CidrBlock"] == "10.0.0.0/16"
        ec2.delete_vpc(VpcId=vpc_id)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
