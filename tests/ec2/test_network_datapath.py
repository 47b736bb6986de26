"""The API on the real namespace data path (root, no VMs): what the EC2 calls say is what the
packets do. Instances run on the fake driver; "guests" are network namespaces of the test's own
whose veth ends carry the taps' names (``tests/backend/netns_helpers``), so all traffic stays in
namespaces Nimbo or the test made. Skipped where the namespace data path is unavailable (not root,
tools missing, or a build without ``backend.network.namespace``)."""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from types import SimpleNamespace

import pytest

from backend.fake import FakeDriver
from ec2_api import imds_relay, operations
from ec2_api.addresses import allocate_address, associate_address
from ec2_api.images import register_tiny_image
from ec2_api.instance_actions import modify_instance_metadata_options, terminate_instances
from ec2_api.instances import run_instances
from ec2_api.internet_gateways import attach_internet_gateway, create_internet_gateway
from ec2_api.route_tables import create_route, describe_route_tables
from ec2_api.security_group_rules import authorize_security_group_ingress, revoke_security_group_ingress
from ec2_api.security_groups import create_security_group
from ec2_api.subnets import create_subnet
from ec2_api.vpcs import create_vpc
from storage import accounts as account_rows
from storage.db import Database
from tests.ec2.helpers import Clock, make_ctx

namespace = pytest.importorskip("backend.network.namespace")
helpers = pytest.importorskip("tests.backend.netns_helpers")
SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
REQUEST = "GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n"


@pytest.fixture
async def cloud():
    ok, why = namespace.available()
    if not ok:
        pytest.skip(f"the namespace data path is unavailable: {why}")
    data_dir = tempfile.mkdtemp(prefix="nimbo-netapi-", dir="/tmp")
    config = SimpleNamespace(data_dir=data_dir, endpoint_url="http://127.0.0.1:1", instance_types=None,
                             regions={"us-east-1": ["us-east-1a", "us-east-1b"]}, host_vcpus=64,
                             host_memory_mib=65536, public_ip_pool="198.18.5.0/29")
    data_path = namespace.NamespaceDataPath(data_dir, imds_relay.socket_path(config), public_pool=["198.18.5.0/29"])
    db = await Database.open(os.path.join(data_dir, "nimbo.db"))
    await account_rows.migrate(db)
    store = account_rows.AccountStore(db)
    await store.create_account("100000000001", "admin", "c" * 64, is_admin=True)
    await store.create_account("222222222222", "alice", "a" * 64)
    clock = Clock()
    app = SimpleNamespace(config=config, db=db, backend=FakeDriver({}, clock=clock), clock=clock, network=data_path)
    state = await operations.open_state(app, housekeeping=False)
    disk = os.path.join(data_dir, "disk.img")
    with open(disk, "wb") as fh:
        fh.truncate(1 << 20)
    image = await register_tiny_image(db, config, {"disk": disk}, now=clock())
    guests = helpers.FakeGuests(data_path)
    try:
        yield SimpleNamespace(ctx=make_ctx(app, state, "222222222222"), state=state, data_path=data_path,
                              image=image, guests=guests, db=db)
    finally:
        guests.close()
        await operations.close_state(state)
        await data_path.destroy()
        await db.close()
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_security_groups_addresses_and_metadata_on_the_namespace_data_path(cloud):
    ctx, data_path = cloud.ctx, cloud.data_path
    vpc = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet = (await create_subnet(ctx, {"VpcId": vpc, "CidrBlock": "10.0.1.0/24"}))["Subnet"]["SubnetId"]
    sg = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc}))["GroupId"]
    await authorize_security_group_ingress(ctx, {"GroupId": sg, "IpPermissions": [
        SSH, {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": sg}]}]})
    igw = (await create_internet_gateway(ctx, {}))["InternetGateway"]["InternetGatewayId"]
    await attach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc})
    table = (await describe_route_tables(ctx, {"Filters": [{"Name": "vpc-id", "Values": [vpc]}]}))["RouteTables"][0]
    await create_route(ctx, {"RouteTableId": table["RouteTableId"], "DestinationCidrBlock": "0.0.0.0/0",
                             "GatewayId": igw})
    out = await run_instances(ctx, {"ImageId": cloud.image, "MinCount": 2, "MaxCount": 2, "SubnetId": subnet,
                                    "SecurityGroupIds": [sg]})
    ids = [i["InstanceId"] for i in out["Instances"]]
    await cloud.state.wait_idle()
    address = await allocate_address(ctx, {})
    await associate_address(ctx, {"AllocationId": address["AllocationId"], "InstanceId": ids[0]})
    applied = await cloud.state.network.settle()
    by_instance = {i.instance_id: i for i in applied.interfaces}
    # the VMs would boot on these taps
    for instance_id in ids:
        nic = data_path.nic(by_instance[instance_id].interface_id)
        assert nic.netns == data_path.vpc_namespace(vpc) and nic.mac == by_instance[instance_id].mac
    first = cloud.guests.add(by_instance[ids[0]], vpc, "10.0.1.1")
    cloud.guests.add(by_instance[ids[1]], vpc, "10.0.1.1")
    await data_path.apply(applied)   # bridge the stand-in guests' ports as QEMU's taps would be
    second = by_instance[ids[1]]
    cloud.guests.serve(second.interface_id, 22, 80, 8080)
    cloud.guests.serve(by_instance[ids[0]].interface_id, 22)
    target = second.private_ips[0]
    assert await helpers.connect(first, target, 22) == "hello 22"      # 0.0.0.0/0
    assert await helpers.connect(first, target, 80) == "hello 80"      # a member of the referenced group
    assert await helpers.connect(first, target, 8080) == ""            # no rule: default deny
    answer = await helpers.connect(first, "169.254.169.254", 80, payload=REQUEST)
    assert answer.endswith(ids[0])                                      # Nimbo's IMDS, through the relay
    assert await helpers.connect(data_path.name, address["PublicIp"], 22) == "hello 22"   # the Elastic IP
    start = time.monotonic()
    await revoke_security_group_ingress(ctx, {"GroupId": sg, "IpPermissions": [SSH]})
    # applied by the network runner unasked (no settle() here); the deadline only bounds the wait
    # (how fast it applies is a figure for bench/, not a test: a loaded machine once took > 1.5 s)
    while await helpers.connect(first, target, 22, timeout=0.3):
        assert time.monotonic() - start < 10, "the revoked rule was never applied"
    await modify_instance_metadata_options(ctx, {"InstanceId": ids[0], "HttpEndpoint": "disabled"})
    await asyncio.sleep(0.3)
    await cloud.state.network.settle()
    assert await helpers.connect(first, "169.254.169.254", 80, payload=REQUEST) == ""
    await terminate_instances(ctx, {"InstanceIds": ids})
    await cloud.state.wait_idle()
    assert (await cloud.state.network.settle()).interfaces == ()
    assert not os.path.exists(f"/run/netns/{data_path.vpc_namespace(vpc)}")   # nothing left of the VPC


if __name__ == "__main__":   # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
