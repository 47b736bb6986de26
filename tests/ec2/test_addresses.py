"""Public addresses on the fake driver: Elastic IPs (allocate, associate, reassociate,
disassociate, release, attributes), auto-assigned public addresses of MapPublicIpOnLaunch subnets
(given while running, released at stop, as AWS does), and the clear refusal when Nimbo runs with
user-mode networking (no data path)."""
from __future__ import annotations

import pytest

from ec2_api import errors
from ec2_api.addresses import (allocate_address, associate_address, describe_addresses,
                               describe_addresses_attribute, disassociate_address, modify_address_attribute,
                               release_address)
from ec2_api.instance_actions import start_instances, stop_instances, terminate_instances
from ec2_api.instances import describe_instances, run_instances
from ec2_api.internet_gateways import attach_internet_gateway, create_internet_gateway, detach_internet_gateway
from ec2_api.subnets import create_subnet
from ec2_api.vpcs import create_vpc
from tests.ec2.helpers import wire
from tests.ec2.network_env import image, net, usermode  # noqa: F401 (fixtures)


async def _instance(net, ctx, image, **params):
    out = await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, **params})
    await net.settle()
    return out["Instances"][0]["InstanceId"]


async def _described(ctx, instance_id):
    return (await describe_instances(ctx, {"InstanceIds": [instance_id]}))["Reservations"][0]["Instances"][0]


async def test_elastic_ip_allocate_associate_release(net, image):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24"}))["Subnet"]["SubnetId"]
    out = wire("AllocateAddress", await allocate_address(ctx, {"Domain": "vpc", "TagSpecifications": [
        {"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "front"}]}]}))
    public_ip, allocation_id = out["PublicIp"], out["AllocationId"]
    assert public_ip == "198.18.0.1" and allocation_id.startswith("eipalloc-") and out["Domain"] == "vpc"
    instance_id = await _instance(net, ctx, image, SubnetId=subnet_id)
    with pytest.raises(errors.EC2Error) as exc:   # no internet gateway on the VPC yet
        await associate_address(ctx, {"AllocationId": allocation_id, "InstanceId": instance_id})
    assert exc.value.code == "Gateway.NotAttached"
    igw = (await create_internet_gateway(ctx, {}))["InternetGateway"]["InternetGatewayId"]
    await attach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc_id})
    association = wire("AssociateAddress", await associate_address(
        ctx, {"AllocationId": allocation_id, "InstanceId": instance_id}))["AssociationId"]
    instance = await _described(ctx, instance_id)
    assert instance["PublicIpAddress"] == public_ip
    assert instance["NetworkInterfaces"][0]["Association"]["PublicIp"] == public_ip
    addresses = wire("DescribeAddresses", await describe_addresses(ctx, {"PublicIps": [public_ip]}))["Addresses"]
    assert addresses[0]["InstanceId"] == instance_id and addresses[0]["AssociationId"] == association
    assert addresses[0]["PrivateIpAddress"] == instance["PrivateIpAddress"]
    assert addresses[0]["Tags"] == [{"Key": "Name", "Value": "front"}]
    state = await net.applied()
    (iface,) = [i for i in state.interfaces if i.instance_id == instance_id]
    assert iface.public_ips == ((public_ip, instance["PrivateIpAddress"]),)
    with pytest.raises(errors.EC2Error) as exc:
        await release_address(ctx, {"AllocationId": allocation_id})
    assert exc.value.code == "InvalidIPAddress.InUse"
    with pytest.raises(errors.EC2Error) as exc:
        await detach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc_id})
    assert exc.value.code == "DependencyViolation"
    second = (await allocate_address(ctx, {}))["AllocationId"]
    with pytest.raises(errors.EC2Error) as exc:
        await associate_address(ctx, {"AllocationId": second, "InstanceId": instance_id})
    assert exc.value.code == "Resource.AlreadyAssociated"
    await associate_address(ctx, {"AllocationId": second, "InstanceId": instance_id, "AllowReassociation": True})
    first = (await describe_addresses(ctx, {"AllocationIds": [allocation_id]}))["Addresses"][0]
    assert "AssociationId" not in first
    found = await describe_addresses(ctx, {"Filters": [{"Name": "instance-id", "Values": [instance_id]}]})
    assert [a["AllocationId"] for a in found["Addresses"]] == [second]
    await disassociate_address(ctx, {"PublicIp": (await describe_addresses(ctx, {"AllocationIds": [second]}))[
        "Addresses"][0]["PublicIp"]})
    with pytest.raises(errors.EC2Error) as exc:
        await disassociate_address(ctx, {"AssociationId": association})
    assert exc.value.code == "InvalidAssociationID.NotFound"
    attrs = wire("DescribeAddressesAttribute", await describe_addresses_attribute(
        ctx, {"AllocationIds": [allocation_id], "Attribute": "domain-name"}))["Addresses"]
    assert attrs[0]["PtrRecord"] == "ec2-198-18-0-1.compute-1.amazonaws.com."
    out = wire("ModifyAddressAttribute", await modify_address_attribute(
        ctx, {"AllocationId": allocation_id, "DomainName": "www.example.com"}))
    assert out["Address"]["PtrRecordUpdate"] == {"Value": "www.example.com.", "Status": "PENDING"}
    await release_address(ctx, {"AllocationId": allocation_id})
    with pytest.raises(errors.EC2Error) as exc:
        await release_address(ctx, {"AllocationId": allocation_id})
    assert exc.value.code == "InvalidAllocationID.NotFound"
    with pytest.raises(errors.EC2Error) as exc:
        await describe_addresses(ctx, {"PublicIps": [public_ip]})
    assert exc.value.code == "InvalidAddress.NotFound"


async def test_address_quota_and_pool(net):
    ctx = net.ctx()
    for _ in range(5):
        await allocate_address(ctx, {})
    with pytest.raises(errors.EC2Error) as exc:
        await allocate_address(ctx, {})
    assert exc.value.code == "AddressLimitExceeded"
    bob = net.ctx("333333333333")
    await allocate_address(bob, {})   # the pool (198.18.0.0/29: 6 hosts) has one left
    with pytest.raises(errors.EC2Error) as exc:
        await allocate_address(net.ctx("100000000001"), {})
    assert exc.value.code == "InsufficientAddressCapacity"
    with pytest.raises(errors.InvalidParameterValue):
        await allocate_address(bob, {"Address": "203.0.113.5"})


async def test_map_public_ip_on_launch_given_while_running(net, image):
    ctx = net.ctx()
    instance_id = await _instance(net, ctx, image)   # a default subnet: MapPublicIpOnLaunch
    await net.applied()
    instance = await _described(ctx, instance_id)
    public_ip = instance["PublicIpAddress"]
    assert public_ip.startswith("198.18.0.") and instance["PublicDnsName"] == \
        f"ec2-{public_ip.replace('.', '-')}.compute-1.amazonaws.com"
    assert instance["NetworkInterfaces"][0]["Association"]["IpOwnerId"] == "amazon"
    assert (await describe_addresses(ctx, {}))["Addresses"] == []   # not an Elastic IP
    await stop_instances(ctx, {"InstanceIds": [instance_id]})
    await net.applied()
    assert "PublicIpAddress" not in await _described(ctx, instance_id)
    await start_instances(ctx, {"InstanceIds": [instance_id]})
    await net.applied()
    assert (await _described(ctx, instance_id)).get("PublicIpAddress", "").startswith("198.18.0.")
    private = await _instance(net, ctx, image, NetworkInterfaces=[{"DeviceIndex": 0,
                                                                   "AssociatePublicIpAddress": False}])
    await net.applied()
    assert "PublicIpAddress" not in await _described(ctx, private)
    await terminate_instances(ctx, {"InstanceIds": [instance_id, private]})
    state = await net.applied()
    assert state.interfaces == ()
    assert await net.db.fetchone("SELECT 1 FROM net_addresses") is None


async def test_user_mode_networking_refuses_public_addresses(usermode, tmp_path):
    ctx = usermode.ctx()
    for call, params in ((allocate_address, {}), (associate_address, {"AllocationId": "eipalloc-0123456789abcdef0",
                                                                      "InstanceId": "i-0123456789abcdef0"})):
        with pytest.raises(errors.UnsupportedOperation) as exc:
            await call(ctx, params)
        assert "data path" in exc.value.message and "root" in exc.value.message
    from ec2_api.images import register_tiny_image
    (tmp_path / "disk.img").write_bytes(b"\0" * 1024 * 1024)
    image_id = await register_tiny_image(usermode.db, usermode.config, {"disk": str(tmp_path / "disk.img")},
                                         now=usermode.clock())
    with pytest.raises(errors.UnsupportedOperation):
        await run_instances(ctx, {"ImageId": image_id, "MinCount": 1, "MaxCount": 1, "NetworkInterfaces": [
            {"DeviceIndex": 0, "AssociatePublicIpAddress": True}]})
    # a default subnet maps public addresses on launch: without a data path the instance stays private
    out = await run_instances(ctx, {"ImageId": image_id, "MinCount": 1, "MaxCount": 1})
    await usermode.settle()
    await usermode.state.network.settle()
    instance = await _described(ctx, out["Instances"][0]["InstanceId"])
    assert "PublicIpAddress" not in instance and instance["State"]["Name"] == "running"
    assert (await usermode.spec(instance["InstanceId"])).nics == []   # QEMU user-mode networking
