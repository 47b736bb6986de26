"""Network interfaces and the network side of instances on the fake driver: ENIs made, attached,
detached, re-addressed and deleted; RunInstances with SubnetId, PrivateIpAddress, security groups
and NetworkInterfaces; what DescribeInstances shows; ModifyInstanceAttribute groupSet and
sourceDestCheck; interfaces that go with their instance."""
from __future__ import annotations

import pytest

from ec2_api import errors
from ec2_api.instance_actions import (describe_instance_attribute, modify_instance_attribute, stop_instances,
                                      terminate_instances)
from ec2_api.instances import describe_instances, run_instances
from ec2_api.network_interfaces import (assign_private_ip_addresses, attach_network_interface,
                                        create_network_interface, delete_network_interface,
                                        describe_network_interface_attribute, describe_network_interfaces,
                                        detach_network_interface, modify_network_interface_attribute,
                                        unassign_private_ip_addresses)
from ec2_api.security_groups import create_security_group
from ec2_api.subnets import create_subnet, describe_subnets
from ec2_api.vpcs import create_vpc
from tests.ec2.helpers import wire
from tests.ec2.network_env import image, net  # noqa: F401 (fixtures)


async def _vpc(ctx, cidr="10.0.0.0/16", subnet="10.0.1.0/24"):
    vpc_id = (await create_vpc(ctx, {"CidrBlock": cidr}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": subnet,
                                           "AvailabilityZone": "us-east-1a"}))["Subnet"]["SubnetId"]
    return vpc_id, subnet_id


async def test_network_interface_lifecycle(net):
    ctx = net.ctx()
    vpc_id, subnet_id = await _vpc(ctx)
    web = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    out = wire("CreateNetworkInterface", await create_network_interface(ctx, {
        "SubnetId": subnet_id, "Description": "spare", "Groups": [web], "SecondaryPrivateIpAddressCount": 1,
        "TagSpecifications": [{"ResourceType": "network-interface", "Tags": [{"Key": "k", "Value": "v"}]}]}))
    eni = out["NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    assert eni["PrivateIpAddress"] == "10.0.1.4"   # the first four addresses are AWS's
    assert [a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]] == ["10.0.1.4", "10.0.1.5"]
    assert eni["Status"] == "available" and eni["Groups"] == [{"GroupId": web, "GroupName": "web"}]
    assert eni["PrivateDnsName"] == "ip-10-0-1-4.ec2.internal" and eni["TagSet"] == [{"Key": "k", "Value": "v"}]
    subnet = (await describe_subnets(ctx, {"SubnetIds": [subnet_id]}))["Subnets"][0]
    assert subnet["AvailableIpAddressCount"] == 249
    for params, error in (({"SubnetId": subnet_id, "PrivateIpAddress": "10.0.1.4"}, "InvalidIPAddress.InUse"),
                          ({"SubnetId": subnet_id, "PrivateIpAddress": "10.0.2.9"}, "InvalidParameterValue"),
                          ({"SubnetId": subnet_id, "PrivateIpAddress": "10.0.1.2"}, "InvalidParameterValue"),
                          ({"SubnetId": subnet_id, "Groups": ["sg-0123456789abcdef0"]}, "InvalidGroup.NotFound")):
        with pytest.raises(errors.EC2Error) as exc:
            await create_network_interface(ctx, params)
        assert exc.value.code == error, params
    assigned = wire("AssignPrivateIpAddresses", await assign_private_ip_addresses(ctx, {
        "NetworkInterfaceId": eni_id, "PrivateIpAddresses": ["10.0.1.100"]}))
    assert assigned["AssignedPrivateIpAddresses"] == [{"PrivateIpAddress": "10.0.1.100"}]
    await unassign_private_ip_addresses(ctx, {"NetworkInterfaceId": eni_id, "PrivateIpAddresses": ["10.0.1.5"]})
    with pytest.raises(errors.InvalidParameterValue):
        await unassign_private_ip_addresses(ctx, {"NetworkInterfaceId": eni_id, "PrivateIpAddresses": ["10.0.1.4"]})
    await modify_network_interface_attribute(ctx, {"NetworkInterfaceId": eni_id,
                                                   "SourceDestCheck": {"Value": False}})
    attr = wire("DescribeNetworkInterfaceAttribute", await describe_network_interface_attribute(
        ctx, {"NetworkInterfaceId": eni_id, "Attribute": "sourceDestCheck"}))
    assert attr["SourceDestCheck"] == {"Value": False}
    with pytest.raises(errors.EC2Error) as exc:
        await modify_network_interface_attribute(ctx, {"NetworkInterfaceId": eni_id, "Groups": [
            web] * 1 + [(await create_security_group(ctx, {"GroupName": f"g{i}", "Description": "d",
                                                           "VpcId": vpc_id}))["GroupId"] for i in range(5)]})
    assert exc.value.code == "SecurityGroupsPerInterfaceLimitExceeded"
    found = wire("DescribeNetworkInterfaces", await describe_network_interfaces(ctx, {"Filters": [
        {"Name": "addresses.private-ip-address", "Values": ["10.0.1.100"]}]}))
    assert [n["NetworkInterfaceId"] for n in found["NetworkInterfaces"]] == [eni_id]
    await delete_network_interface(ctx, {"NetworkInterfaceId": eni_id})
    with pytest.raises(errors.EC2Error) as exc:
        await describe_network_interfaces(ctx, {"NetworkInterfaceIds": [eni_id]})
    assert exc.value.code == "InvalidNetworkInterfaceID.NotFound"


async def test_run_instances_in_a_subnet_with_groups_and_interfaces(net, image):
    ctx = net.ctx()
    vpc_id, subnet_id = await _vpc(ctx)
    web = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    spare = (await create_network_interface(ctx, {"SubnetId": subnet_id}))["NetworkInterface"]["NetworkInterfaceId"]
    out = wire("RunInstances", await run_instances(ctx, {
        "ImageId": image, "MinCount": 1, "MaxCount": 1, "NetworkInterfaces": [
            {"DeviceIndex": 0, "SubnetId": subnet_id, "PrivateIpAddress": "10.0.1.50", "Groups": [web],
             "SecondaryPrivateIpAddressCount": 1},
            {"DeviceIndex": 1, "NetworkInterfaceId": spare}]}))
    instance = out["Instances"][0]
    assert instance["PrivateIpAddress"] == "10.0.1.50" and instance["SubnetId"] == subnet_id
    assert instance["VpcId"] == vpc_id and instance["SecurityGroups"] == [{"GroupId": web, "GroupName": "web"}]
    nics = instance["NetworkInterfaces"]
    assert [n["Attachment"]["DeviceIndex"] for n in nics] == [0, 1] and nics[1]["NetworkInterfaceId"] == spare
    assert len(nics[0]["PrivateIpAddresses"]) == 2 and nics[0]["Attachment"]["DeleteOnTermination"] is True
    assert nics[1]["Attachment"]["DeleteOnTermination"] is False
    await net.settle()
    # the VM boots on the data path's taps, in device order
    spec = await net.spec(instance["InstanceId"])
    assert [n.interface_id for n in spec.nics] == [nics[0]["NetworkInterfaceId"], spare]
    assert spec.nics[0].mac == nics[0]["MacAddress"]
    for params, error in (({"SubnetId": subnet_id, "NetworkInterfaces": [{"DeviceIndex": 0}]},
                           "InvalidParameterCombination"),
                          ({"SubnetId": subnet_id, "PrivateIpAddress": "10.0.1.50"}, "InvalidIPAddress.InUse"),
                          ({"SubnetId": subnet_id, "SecurityGroups": ["web"]}, "InvalidParameterCombination"),
                          ({"NetworkInterfaces": [{"DeviceIndex": 0, "NetworkInterfaceId": spare}]},
                           "InvalidNetworkInterface.InUse")):
        with pytest.raises(errors.EC2Error) as exc:
            await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, **params})
        assert exc.value.code == error, params
    with pytest.raises(errors.EC2Error) as exc:
        await detach_network_interface(ctx, {"AttachmentId": nics[0]["Attachment"]["AttachmentId"]})
    assert exc.value.code == "OperationNotPermitted"
    found = await describe_instances(ctx, {"Filters": [{"Name": "network-interface.group-id", "Values": [web]}]})
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [instance["InstanceId"]]
    # terminating deletes the primary interface and detaches (keeps) the other
    await terminate_instances(ctx, {"InstanceIds": [instance["InstanceId"]]})
    await net.applied()
    left = (await describe_network_interfaces(ctx, {"Filters": [{"Name": "vpc-id", "Values": [vpc_id]}]}))
    assert [(n["NetworkInterfaceId"], n["Status"]) for n in left["NetworkInterfaces"]] == [(spare, "available")]


async def test_attach_detach_and_instance_attributes(net, image):
    ctx = net.ctx()
    vpc_id, subnet_id = await _vpc(ctx)
    web = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    instance = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1,
                                          "SubnetId": subnet_id}))["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["SecurityGroups"][0]["GroupName"] == "default"   # the VPC's default group
    await net.settle()
    await modify_instance_attribute(ctx, {"InstanceId": instance_id, "Groups": [web]})
    attr = await describe_instance_attribute(ctx, {"InstanceId": instance_id, "Attribute": "groupSet"})
    assert attr["Groups"] == [{"GroupId": web, "GroupName": "web"}]
    await modify_instance_attribute(ctx, {"InstanceId": instance_id, "SourceDestCheck": {"Value": False}})
    described = (await describe_instances(ctx, {"InstanceIds": [instance_id]}))["Reservations"][0]["Instances"][0]
    assert described["SourceDestCheck"] is False and described["SecurityGroups"] == attr["Groups"]
    assert described["NetworkInterfaces"][0]["Groups"] == attr["Groups"]
    eni_id = (await create_network_interface(ctx, {"SubnetId": subnet_id}))["NetworkInterface"]["NetworkInterfaceId"]
    out = wire("AttachNetworkInterface", await attach_network_interface(
        ctx, {"NetworkInterfaceId": eni_id, "InstanceId": instance_id, "DeviceIndex": 1}))
    with pytest.raises(errors.EC2Error) as exc:
        await attach_network_interface(ctx, {"NetworkInterfaceId": eni_id, "InstanceId": instance_id,
                                             "DeviceIndex": 2})
    assert exc.value.code == "InvalidNetworkInterface.InUse"
    with pytest.raises(errors.EC2Error) as exc:
        await delete_network_interface(ctx, {"NetworkInterfaceId": eni_id})
    assert exc.value.code == "InvalidNetworkInterface.InUse"
    with pytest.raises(errors.InvalidParameterValue):   # two interfaces now: name one
        await modify_instance_attribute(ctx, {"InstanceId": instance_id, "Groups": [web]})
    await detach_network_interface(ctx, {"AttachmentId": out["AttachmentId"]})
    with pytest.raises(errors.EC2Error) as exc:
        await detach_network_interface(ctx, {"AttachmentId": out["AttachmentId"]})
    assert exc.value.code == "InvalidAttachmentID.NotFound"
    other_vpc, other_subnet = await _vpc(ctx, "10.1.0.0/16", "10.1.1.0/24")
    foreign = (await create_network_interface(ctx, {"SubnetId": other_subnet}))["NetworkInterface"]
    with pytest.raises(errors.InvalidParameterCombination):
        await attach_network_interface(ctx, {"NetworkInterfaceId": foreign["NetworkInterfaceId"],
                                             "InstanceId": instance_id, "DeviceIndex": 1})
    await stop_instances(ctx, {"InstanceIds": [instance_id]})
    await net.settle()
    described = (await describe_instances(ctx, {"InstanceIds": [instance_id]}))["Reservations"][0]["Instances"][0]
    assert described["NetworkInterfaces"][0]["PrivateIpAddress"] == described["PrivateIpAddress"]


async def test_launch_addresses_and_public_address_choices(net, image):
    ctx = net.ctx()
    vpc_id, subnet_id = await _vpc(ctx)
    spare = (await create_network_interface(ctx, {"SubnetId": subnet_id}))["NetworkInterface"]
    with pytest.raises(errors.EC2Error) as exc:   # an address held by an interface, not by an instance
        await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet_id,
                                  "PrivateIpAddress": spare["PrivateIpAddress"]})
    assert exc.value.code == "InvalidIPAddress.InUse"
    assert (await net.db.fetchone("SELECT COUNT(*) AS n FROM ec2_instances"))["n"] == 0   # nothing half-made
    out = await run_instances(ctx, {"ImageId": image, "MinCount": 3, "MaxCount": 3, "SubnetId": subnet_id})
    assert [i["PrivateIpAddress"] for i in out["Instances"]] == ["10.0.1.5", "10.0.1.6", "10.0.1.7"]
    chosen = await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "NetworkInterfaces": [
        {"DeviceIndex": 0, "SubnetId": subnet_id, "AssociatePublicIpAddress": True}]})
    instance_id = chosen["Instances"][0]["InstanceId"]
    await net.applied()
    described = (await describe_instances(ctx, {"InstanceIds": [instance_id]}))["Reservations"][0]["Instances"][0]
    assert described["PublicIpAddress"].startswith("198.18.0.")   # asked for, in a subnet that maps none
    assert described["PublicDnsName"] == ""                        # the VPC has DNS hostnames off
    others = await describe_instances(ctx, {"InstanceIds": [i["InstanceId"] for i in out["Instances"]]})
    assert not any(i.get("PublicIpAddress") for r in others["Reservations"] for i in r["Instances"])
    with pytest.raises(errors.EC2Error) as exc:
        groups = [(await create_security_group(ctx, {"GroupName": f"g{i}", "Description": "d", "VpcId": vpc_id}))[
            "GroupId"] for i in range(6)]
        await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet_id,
                                  "SecurityGroupIds": groups})
    assert exc.value.code == "SecurityGroupsPerInterfaceLimitExceeded"
