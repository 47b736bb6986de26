"""Tenants are isolated: another account's networking resources are invisible and untouchable
through every networking action (EC2 answers as if they did not exist), and Describe calls list
only the caller's own."""
from __future__ import annotations

import pytest

from ec2_api import errors, network_operations
from ec2_api.addresses import allocate_address
from ec2_api.instances import run_instances
from ec2_api.internet_gateways import attach_internet_gateway, create_internet_gateway
from ec2_api.network_interfaces import create_network_interface
from ec2_api.route_tables import create_route_table
from ec2_api.security_group_rules import authorize_security_group_ingress
from ec2_api.security_groups import create_security_group
from ec2_api.subnets import create_subnet
from ec2_api.tags import create_tags
from ec2_api.dhcp_options import create_dhcp_options
from ec2_api.vpcs import associate_vpc_cidr_block, create_vpc
from tests.ec2.network_env import BOB, image, net  # noqa: F401 (fixtures)

OPS = network_operations.OPERATIONS


async def _alice(net, image):
    ctx = net.ctx()
    vpc = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    cidr = (await associate_vpc_cidr_block(ctx, {"VpcId": vpc, "CidrBlock": "10.1.0.0/16"}))[
        "CidrBlockAssociation"]["AssociationId"]
    subnet = (await create_subnet(ctx, {"VpcId": vpc, "CidrBlock": "10.0.1.0/24",
                                        "AvailabilityZone": "us-east-1a"}))["Subnet"]["SubnetId"]
    group = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc}))["GroupId"]
    rule = (await authorize_security_group_ingress(ctx, {"GroupId": group, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}))[
        "SecurityGroupRules"][0]["SecurityGroupRuleId"]
    igw = (await create_internet_gateway(ctx, {}))["InternetGateway"]["InternetGatewayId"]
    await attach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc})
    table = (await create_route_table(ctx, {"VpcId": vpc}))["RouteTable"]["RouteTableId"]
    dopt = (await create_dhcp_options(ctx, {"DhcpConfigurations": [{"Key": "domain-name", "Values": ["a.b"]}]}))[
        "DhcpOptions"]["DhcpOptionsId"]
    eni = (await create_network_interface(ctx, {"SubnetId": subnet}))["NetworkInterface"]["NetworkInterfaceId"]
    address = await allocate_address(ctx, {})
    instance = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1,
                                          "SubnetId": subnet}))["Instances"][0]
    await net.settle()
    return dict(vpc=vpc, cidr=cidr, subnet=subnet, group=group, rule=rule, igw=igw, table=table, dopt=dopt, eni=eni,
                allocation=address["AllocationId"], public_ip=address["PublicIp"], instance=instance["InstanceId"],
                attachment=instance["NetworkInterfaces"][0]["Attachment"]["AttachmentId"])


async def test_another_account_cannot_see_or_touch_networking_resources(net, image):
    a = await _alice(net, image)
    bob = net.ctx(BOB)
    bob_vpc = (await create_vpc(bob, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    bob_group = (await create_security_group(bob, {"GroupName": "b", "Description": "d", "VpcId": bob_vpc}))["GroupId"]
    bob_table = (await create_route_table(bob, {"VpcId": bob_vpc}))["RouteTable"]["RouteTableId"]
    bob_address = (await allocate_address(bob, {}))["AllocationId"]
    bob_subnet = (await create_subnet(bob, {"VpcId": bob_vpc, "CidrBlock": "10.0.1.0/24"}))["Subnet"]["SubnetId"]
    await create_network_interface(bob, {"SubnetId": bob_subnet})   # the same address as Alice's: other VPC
    ssh = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    attempts = {
        "DeleteVpc": {"VpcId": a["vpc"]},
        "DescribeVpcs": {"VpcIds": [a["vpc"]]},
        "DescribeVpcAttribute": {"VpcId": a["vpc"], "Attribute": "enableDnsSupport"},
        "ModifyVpcAttribute": {"VpcId": a["vpc"], "EnableDnsSupport": {"Value": False}},
        "AssociateVpcCidrBlock": {"VpcId": a["vpc"], "CidrBlock": "10.2.0.0/16"},
        "DisassociateVpcCidrBlock": {"AssociationId": a["cidr"]},
        "CreateSubnet": {"VpcId": a["vpc"], "CidrBlock": "10.0.9.0/24"},
        "DeleteSubnet": {"SubnetId": a["subnet"]},
        "DescribeSubnets": {"SubnetIds": [a["subnet"]]},
        "ModifySubnetAttribute": {"SubnetId": a["subnet"], "MapPublicIpOnLaunch": {"Value": True}},
        "DeleteInternetGateway": {"InternetGatewayId": a["igw"]},
        "DescribeInternetGateways": {"InternetGatewayIds": [a["igw"]]},
        "AttachInternetGateway": {"InternetGatewayId": a["igw"], "VpcId": bob_vpc},
        "DetachInternetGateway": {"InternetGatewayId": a["igw"], "VpcId": a["vpc"]},
        "CreateRouteTable": {"VpcId": a["vpc"]},
        "DeleteRouteTable": {"RouteTableId": a["table"]},
        "DescribeRouteTables": {"RouteTableIds": [a["table"]]},
        "CreateRoute": {"RouteTableId": a["table"], "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": a["igw"]},
        "ReplaceRoute": {"RouteTableId": a["table"], "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": a["igw"]},
        "DeleteRoute": {"RouteTableId": a["table"], "DestinationCidrBlock": "0.0.0.0/0"},
        "AssociateRouteTable": {"RouteTableId": a["table"], "SubnetId": a["subnet"]},
        "DisassociateRouteTable": {"AssociationId": "rtbassoc-0123456789abcdef0"},
        "ReplaceRouteTableAssociation": {"AssociationId": "rtbassoc-0123456789abcdef0", "RouteTableId": a["table"]},
        "DeleteDhcpOptions": {"DhcpOptionsId": a["dopt"]},
        "DescribeDhcpOptions": {"DhcpOptionsIds": [a["dopt"]]},
        "AssociateDhcpOptions": {"DhcpOptionsId": a["dopt"], "VpcId": bob_vpc},
        "CreateSecurityGroup": {"GroupName": "x", "Description": "d", "VpcId": a["vpc"]},
        "DeleteSecurityGroup": {"GroupId": a["group"]},
        "DescribeSecurityGroups": {"GroupIds": [a["group"]]},
        "AuthorizeSecurityGroupIngress": {"GroupId": a["group"], "IpPermissions": ssh},
        "AuthorizeSecurityGroupEgress": {"GroupId": a["group"], "IpPermissions": ssh},
        "RevokeSecurityGroupIngress": {"GroupId": a["group"], "IpPermissions": ssh},
        "RevokeSecurityGroupEgress": {"GroupId": a["group"], "SecurityGroupRuleIds": [a["rule"]]},
        "DescribeSecurityGroupRules": {"SecurityGroupRuleIds": [a["rule"]]},
        "ModifySecurityGroupRules": {"GroupId": a["group"], "SecurityGroupRules": [
            {"SecurityGroupRuleId": a["rule"], "SecurityGroupRule": {"IpProtocol": "-1", "CidrIpv4": "1.0.0.0/8"}}]},
        "UpdateSecurityGroupRuleDescriptionsIngress": {"GroupId": a["group"], "SecurityGroupRuleDescriptions": [
            {"SecurityGroupRuleId": a["rule"], "Description": "x"}]},
        "UpdateSecurityGroupRuleDescriptionsEgress": {"GroupId": a["group"], "SecurityGroupRuleDescriptions": [
            {"SecurityGroupRuleId": a["rule"], "Description": "x"}]},
        "CreateNetworkInterface": {"SubnetId": a["subnet"]},
        "DeleteNetworkInterface": {"NetworkInterfaceId": a["eni"]},
        "DescribeNetworkInterfaces": {"NetworkInterfaceIds": [a["eni"]]},
        "AttachNetworkInterface": {"NetworkInterfaceId": a["eni"], "InstanceId": a["instance"], "DeviceIndex": 1},
        "DetachNetworkInterface": {"AttachmentId": a["attachment"]},
        "DescribeNetworkInterfaceAttribute": {"NetworkInterfaceId": a["eni"], "Attribute": "description"},
        "ModifyNetworkInterfaceAttribute": {"NetworkInterfaceId": a["eni"], "Description": {"Value": "x"}},
        "AssignPrivateIpAddresses": {"NetworkInterfaceId": a["eni"], "SecondaryPrivateIpAddressCount": 1},
        "UnassignPrivateIpAddresses": {"NetworkInterfaceId": a["eni"], "PrivateIpAddresses": ["10.0.1.4"]},
        "ReleaseAddress": {"AllocationId": a["allocation"]},
        "AssociateAddress": {"AllocationId": a["allocation"], "NetworkInterfaceId": a["eni"]},
        "DisassociateAddress": {"PublicIp": a["public_ip"]},
        "DescribeAddresses": {"AllocationIds": [a["allocation"]]},
        "DescribeAddressesAttribute": {"AllocationIds": [a["allocation"]], "Attribute": "domain-name"},
        "ModifyAddressAttribute": {"AllocationId": a["allocation"], "DomainName": "x.example"},
        "DescribeNetworkAcls": {"NetworkAclIds": [(await net.db.fetchone(
            "SELECT network_acl_id FROM net_network_acls WHERE vpc_id = ?", (a["vpc"],)))[0]]},
    }
    assert set(attempts) == set(OPS) - {"CreateVpc", "CreateInternetGateway", "CreateDhcpOptions", "AllocateAddress"}
    for name, params in attempts.items():
        with pytest.raises(errors.EC2Error) as exc:
            await OPS[name](bob, params)
        assert exc.value.code.endswith(".NotFound") or exc.value.code.endswith("NotFound"), (name, exc.value.code)
    # Bob's own resources cannot reach into Alice's either
    for name, params in (
            ("AuthorizeSecurityGroupIngress", {"GroupId": bob_group, "IpPermissions": [
                {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": a["group"]}]}]}),
            ("AuthorizeSecurityGroupIngress", {"GroupId": bob_group, "IpPermissions": [
                {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": a["group"], "UserId": "222222222222"}]}]}),
            ("CreateRoute", {"RouteTableId": bob_table, "DestinationCidrBlock": "0.0.0.0/0",
                             "NetworkInterfaceId": a["eni"]}),
            ("CreateRoute", {"RouteTableId": bob_table, "DestinationCidrBlock": "0.0.0.0/0",
                             "InstanceId": a["instance"]}),
            ("AssociateAddress", {"AllocationId": bob_address, "InstanceId": a["instance"]}),
            ("AssociateAddress", {"AllocationId": bob_address, "NetworkInterfaceId": a["eni"]})):
        with pytest.raises(errors.EC2Error) as exc:
            await OPS[name](bob, params)
        assert "NotFound" in exc.value.code, (name, exc.value.code)
    with pytest.raises(errors.EC2Error) as exc:
        await run_instances(bob, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "SubnetId": a["subnet"]})
    assert exc.value.code == "InvalidSubnetID.NotFound"
    with pytest.raises(errors.EC2Error) as exc:
        await run_instances(bob, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "NetworkInterfaces": [
            {"DeviceIndex": 0, "NetworkInterfaceId": a["eni"]}]})
    assert exc.value.code == "InvalidNetworkInterfaceID.NotFound"
    for resource in (a["igw"], a["table"], a["dopt"], a["eni"], a["allocation"], a["rule"]):
        with pytest.raises(errors.EC2Error) as exc:
            await create_tags(bob, {"Resources": [resource], "Tags": [{"Key": "k", "Value": "v"}]})
        assert "NotFound" in exc.value.code, resource
    # Describe calls list only Bob's own
    for name, key, id_key, alice_id in (
            ("DescribeVpcs", "Vpcs", "VpcId", a["vpc"]), ("DescribeSubnets", "Subnets", "SubnetId", a["subnet"]),
            ("DescribeSecurityGroups", "SecurityGroups", "GroupId", a["group"]),
            ("DescribeSecurityGroupRules", "SecurityGroupRules", "SecurityGroupRuleId", a["rule"]),
            ("DescribeInternetGateways", "InternetGateways", "InternetGatewayId", a["igw"]),
            ("DescribeRouteTables", "RouteTables", "RouteTableId", a["table"]),
            ("DescribeDhcpOptions", "DhcpOptions", "DhcpOptionsId", a["dopt"]),
            ("DescribeNetworkInterfaces", "NetworkInterfaces", "NetworkInterfaceId", a["eni"]),
            ("DescribeAddresses", "Addresses", "AllocationId", a["allocation"]),
            ("DescribeNetworkAcls", "NetworkAcls", "VpcId", a["vpc"])):
        items = (await OPS[name](bob, {}))[key]
        assert items and alice_id not in {i[id_key] for i in items}, name
    # and nothing of Alice's changed
    alice = net.ctx()
    assert (await OPS["DescribeNetworkInterfaces"](alice, {"NetworkInterfaceIds": [a["eni"]]}))[
        "NetworkInterfaces"][0]["Description"] == ""
    assert (await OPS["DescribeAddresses"](alice, {"AllocationIds": [a["allocation"]]}))["Addresses"][0][
        "PublicIp"] == a["public_ip"]
