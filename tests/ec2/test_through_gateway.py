"""The EC2 handlers behind the real gateway (in-process aiohttp server, stand-in driver), driven by
boto3 with its waiters: the wire shapes, base64 user data, blobs and error codes as a client sees them."""
from __future__ import annotations

import asyncio
import base64
import os

import boto3
import botocore.config
import pytest
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError

from backend.fake import FakeDriver

from ec2_api import operations
from ec2_api.images import register_tiny_image
from gateway.app import APP_CONTEXT, create_app
from gateway.config import Config
from gateway.services import Service

FAST = {"Delay": 1, "MaxAttempts": 20}


@pytest.fixture
async def live(tmp_path):
    config = Config(data_dir=str(tmp_path / "data"), backend="fake")
    services = {"ec2": Service("ec2", "ec2", "ec2", operations.OPERATIONS, operations.open_state,
                               operations.close_state)}
    app = create_app(config, backend=FakeDriver(), services=services)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    context = app[APP_CONTEXT]
    (key,) = await context.accounts.store.list_keys()
    art = tmp_path / "art"
    art.mkdir()
    (art / "disk").write_bytes(b"\0" * 1024 * 1024)
    image_id = await register_tiny_image(context.db, config, {"disk": str(art / "disk")})
    client = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                          aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                          config=botocore.config.Config(retries={"max_attempts": 1}))
    yield client, image_id, context
    await server.close()


def call(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


async def test_instance_life_through_boto3(live):
    ec2, image_id, context = live
    key = await call(ec2.create_key_pair, KeyName="k1", KeyType="ed25519")
    assert key["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    out = await call(ec2.run_instances, ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t3.nano",
                     KeyName="k1", UserData="#!/bin/sh\necho hello\n",
                     TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}])
    ids = [i["InstanceId"] for i in out["Instances"]]
    assert all(i["State"]["Name"] == "pending" for i in out["Instances"])
    await call(ec2.get_waiter("instance_running").wait, InstanceIds=ids, WaiterConfig=FAST)
    attr = await call(ec2.describe_instance_attribute, InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(attr["UserData"]["Value"]) == b"#!/bin/sh\necho hello\n"
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:Name", "Values": ["web"]}], PaginationConfig={"PageSize": 5})
    found = await call(lambda: [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]])
    assert sorted(found) == sorted(ids)
    console = await call(ec2.get_console_output, InstanceId=ids[0])
    assert "fake: started" in console["Output"]
    await call(ec2.stop_instances, InstanceIds=[ids[0]])
    await call(ec2.get_waiter("instance_stopped").wait, InstanceIds=[ids[0]], WaiterConfig=FAST)
    await call(ec2.modify_instance_attribute, InstanceId=ids[0], UserData={"Value": b"new data"})
    await call(ec2.modify_instance_attribute, InstanceId=ids[0], InstanceType={"Value": "t3.small"})
    attr = await call(ec2.describe_instance_attribute, InstanceId=ids[0], Attribute="userData")
    assert base64.b64decode(attr["UserData"]["Value"]) == b"new data"
    await call(ec2.start_instances, InstanceIds=[ids[0]])
    await call(ec2.get_waiter("instance_running").wait, InstanceIds=[ids[0]], WaiterConfig=FAST)
    status = await call(ec2.describe_instance_status, InstanceIds=ids)
    assert len(status["InstanceStatuses"]) == 2
    image = await call(ec2.create_image, InstanceId=ids[1], Name="from-web")
    await call(ec2.get_waiter("image_available").wait, ImageIds=[image["ImageId"]], WaiterConfig=FAST)
    await call(ec2.terminate_instances, InstanceIds=ids)
    await call(ec2.get_waiter("instance_terminated").wait, InstanceIds=ids, WaiterConfig=FAST)
    with pytest.raises(ClientError) as caught:
        await call(ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"])
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    with pytest.raises(ClientError) as caught:
        await call(ec2.describe_instances, InstanceIds=["i-bad"])
    assert caught.value.response["Error"]["Code"] == "InvalidInstanceID.Malformed"
    with pytest.raises(ClientError) as caught:
        await call(ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1, DryRun=True)
    assert caught.value.response["Error"]["Code"] == "DryRunOperation"
    usage = await context.db.fetchall("SELECT COUNT(*) AS n FROM usage_events WHERE kind = 'instance_state'")
    assert usage[0]["n"] >= 12


async def test_reads_through_boto3(live, tmp_path):
    ec2, image_id, _ = live
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    public = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJIy2bg74YnzNGCcBzhOIEF90kVJLwyL2uJzM2t8gLqC me"
    imported = await call(ec2.import_key_pair, KeyName="laptop", PublicKeyMaterial=public)
    assert imported["KeyFingerprint"].endswith("=")
    pairs = await call(ec2.describe_key_pairs, IncludePublicKey=True)
    assert pairs["KeyPairs"][0]["PublicKey"].startswith("ssh-ed25519 AAAAC3")
    images = await call(ec2.describe_images, Owners=["nimbo"])
    assert [i["ImageId"] for i in images["Images"]] == [image_id]
    await call(ec2.get_waiter("image_exists").wait, ImageIds=[image_id], WaiterConfig=FAST)
    vpcs = await call(ec2.describe_vpcs, Filters=[{"Name": "is-default", "Values": ["true"]}])
    assert vpcs["Vpcs"][0]["CidrBlock"] == "172.31.0.0/16"
    subnets = await call(ec2.describe_subnets)
    assert len(subnets["Subnets"]) == 3
    groups = await call(ec2.describe_security_groups, GroupNames=["default"])
    assert groups["SecurityGroups"][0]["IpPermissionsEgress"][0]["IpRanges"][0]["CidrIp"] == "0.0.0.0/0"
    types = await call(ec2.describe_instance_types, InstanceTypes=["t3.nano"])
    assert types["InstanceTypes"][0]["MemoryInfo"]["SizeInMiB"] == 512
    offerings = await call(ec2.describe_instance_type_offerings, LocationType="availability-zone")
    assert offerings["InstanceTypeOfferings"]
    await call(ec2.create_tags, Resources=[vpcs["Vpcs"][0]["VpcId"]], Tags=[{"Key": "a", "Value": "b"}])
    tags = await call(ec2.describe_tags)
    assert tags["Tags"] == [{"Key": "a", "ResourceId": vpcs["Vpcs"][0]["VpcId"], "ResourceType": "vpc", "Value": "b"}]
    attr = await call(ec2.describe_image_attribute, ImageId=image_id, Attribute="description")
    assert attr["ImageId"] == image_id or attr is None
    assert os.path.isdir(tmp_path / "data" / "images")
