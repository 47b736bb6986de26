"""VPCs, subnets, internet gateways, route tables, DHCP options and network ACLs on the fake
driver: AWS's behaviour per action (what a new VPC comes with, CIDR rules, dependencies, filters,
pagination, DryRun, tags) and each output checked against botocore's shape."""
from __future__ import annotations

import pytest

from ec2_api import errors
from ec2_api.dhcp_options import associate_dhcp_options, create_dhcp_options, delete_dhcp_options, describe_dhcp_options
from ec2_api.internet_gateways import (attach_internet_gateway, create_internet_gateway, delete_internet_gateway,
                                       describe_internet_gateways, detach_internet_gateway)
from ec2_api.network_acls import describe_network_acls
from ec2_api.route_tables import (associate_route_table, create_route, create_route_table, delete_route,
                                  delete_route_table, describe_route_tables, disassociate_route_table, replace_route,
                                  replace_route_table_association)
from ec2_api.security_groups import describe_security_groups
from ec2_api.subnets import create_subnet, delete_subnet, describe_subnets, modify_subnet_attribute
from ec2_api.vpcs import (associate_vpc_cidr_block, create_vpc, delete_vpc, describe_vpc_attribute, describe_vpcs,
                          disassociate_vpc_cidr_block, modify_vpc_attribute)
from tests.ec2.helpers import wire
from tests.ec2.network_env import ALICE, net  # noqa: F401 (fixture)


def code(exc_info) -> str:
    return exc_info.value.code


async def test_create_vpc_comes_with_main_route_table_default_group_acl_and_dhcp_options(net):
    ctx = net.ctx()
    out = wire("CreateVpc", await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16", "TagSpecifications": [
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "main"}]}]}))
    vpc = out["Vpc"]
    vpc_id = vpc["VpcId"]
    assert vpc["CidrBlock"] == "10.0.0.0/16" and vpc["IsDefault"] is False and vpc["Tags"] == [
        {"Key": "Name", "Value": "main"}]
    default = (await describe_vpcs(ctx, {"Filters": [{"Name": "is-default", "Values": ["true"]}]}))["Vpcs"][0]
    assert vpc["DhcpOptionsId"] == default["DhcpOptionsId"]   # the region's default DHCP options
    tables = wire("DescribeRouteTables", await describe_route_tables(ctx, {"Filters": [
        {"Name": "vpc-id", "Values": [vpc_id]}]}))["RouteTables"]
    assert len(tables) == 1 and tables[0]["Associations"][0]["Main"] is True
    assert tables[0]["Routes"] == [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local",
                                    "Origin": "CreateRouteTable", "State": "active"}]
    groups = wire("DescribeSecurityGroups", await describe_security_groups(ctx, {"Filters": [
        {"Name": "vpc-id", "Values": [vpc_id]}]}))["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == ["default"]
    group = groups[0]
    assert group["IpPermissions"] == [{"IpProtocol": "-1", "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
                                       "UserIdGroupPairs": [{"GroupId": group["GroupId"], "UserId": ALICE}]}]
    assert group["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    acls = wire("DescribeNetworkAcls", await describe_network_acls(ctx, {"Filters": [
        {"Name": "vpc-id", "Values": [vpc_id]}]}))["NetworkAcls"]
    assert len(acls) == 1 and acls[0]["IsDefault"] is True
    assert {(e["RuleNumber"], e["RuleAction"], e["Egress"]) for e in acls[0]["Entries"]} == {
        (100, "allow", True), (100, "allow", False), (32767, "deny", True), (32767, "deny", False)}
    # the default VPC has an internet gateway attached and a default route to it
    gateways = (await describe_internet_gateways(ctx, {"Filters": [
        {"Name": "attachment.vpc-id", "Values": [default["VpcId"]]}]}))["InternetGateways"]
    assert len(gateways) == 1 and gateways[0]["Attachments"] == [{"State": "available", "VpcId": default["VpcId"]}]
    main = (await describe_route_tables(ctx, {"Filters": [{"Name": "vpc-id", "Values": [default["VpcId"]]}]}))
    routes = main["RouteTables"][0]["Routes"]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": gateways[0]["InternetGatewayId"],
            "Origin": "CreateRoute", "State": "active"} in routes


async def test_vpc_cidr_rules_limits_and_dry_run(net):
    ctx = net.ctx()
    for bad, error in (("10.0.0.0/8", "InvalidVpc.Range"), ("10.0.0.0/29", "InvalidVpc.Range"),
                       ("10.0.0.0/33", "InvalidParameterValue"), ("banana", "InvalidParameterValue"),
                       ("10.0.0.1/16", "InvalidParameterValue")):
        with pytest.raises(errors.EC2Error) as exc:
            await create_vpc(ctx, {"CidrBlock": bad})
        assert code(exc) == error, bad
    with pytest.raises(errors.DryRunOperation):
        await create_vpc(ctx, {"CidrBlock": "10.1.0.0/16", "DryRun": True})
    assert len((await describe_vpcs(ctx, {}))["Vpcs"]) == 1
    for index in range(5):
        await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"})   # overlapping VPCs are separate networks
    with pytest.raises(errors.EC2Error) as exc:
        await create_vpc(ctx, {"CidrBlock": "10.9.0.0/16"})
    assert code(exc) == "VpcLimitExceeded"
    page = await describe_vpcs(ctx, {"MaxResults": 5})
    rest = await describe_vpcs(ctx, {"MaxResults": 5, "NextToken": page["NextToken"]})
    assert len(page["Vpcs"]) == 5 and len(rest["Vpcs"]) == 1 and rest["NextToken"] is None


async def test_vpc_attributes_and_cidr_blocks(net):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    out = wire("DescribeVpcAttribute", await describe_vpc_attribute(ctx, {"VpcId": vpc_id,
                                                                          "Attribute": "enableDnsHostnames"}))
    assert out["EnableDnsHostnames"] == {"Value": False}
    await modify_vpc_attribute(ctx, {"VpcId": vpc_id, "EnableDnsHostnames": {"Value": True}})
    assert (await describe_vpc_attribute(ctx, {"VpcId": vpc_id, "Attribute": "enableDnsHostnames"}))[
        "EnableDnsHostnames"] == {"Value": True}
    with pytest.raises(errors.InvalidParameterCombination):
        await modify_vpc_attribute(ctx, {"VpcId": vpc_id, "EnableDnsHostnames": {"Value": True},
                                         "EnableDnsSupport": {"Value": True}})
    with pytest.raises(errors.InvalidParameterValue):
        await describe_vpc_attribute(ctx, {"VpcId": vpc_id, "Attribute": "colour"})
    out = wire("AssociateVpcCidrBlock", await associate_vpc_cidr_block(ctx, {"VpcId": vpc_id,
                                                                             "CidrBlock": "10.1.0.0/16"}))
    association = out["CidrBlockAssociation"]["AssociationId"]
    with pytest.raises(errors.EC2Error) as exc:
        await associate_vpc_cidr_block(ctx, {"VpcId": vpc_id, "CidrBlock": "10.1.128.0/17"})
    assert code(exc) == "CidrConflict"
    vpc = (await describe_vpcs(ctx, {"VpcIds": [vpc_id]}))["Vpcs"][0]
    assert [a["CidrBlock"] for a in vpc["CidrBlockAssociationSet"]] == ["10.0.0.0/16", "10.1.0.0/16"]
    found = await describe_vpcs(ctx, {"Filters": [{"Name": "cidr-block-association.cidr-block",
                                                   "Values": ["10.1.0.0/16"]}]})
    assert [v["VpcId"] for v in found["Vpcs"]] == [vpc_id]
    # a subnet in the secondary block, which then cannot be disassociated
    subnet = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.1.2.0/24"}))["Subnet"]
    with pytest.raises(errors.EC2Error) as exc:
        await disassociate_vpc_cidr_block(ctx, {"AssociationId": association})
    assert code(exc) == "DependencyViolation"
    await delete_subnet(ctx, {"SubnetId": subnet["SubnetId"]})
    wire("DisassociateVpcCidrBlock", await disassociate_vpc_cidr_block(ctx, {"AssociationId": association}))
    with pytest.raises(errors.EC2Error) as exc:
        await disassociate_vpc_cidr_block(ctx, {"AssociationId": vpc["CidrBlockAssociationSet"][0]["AssociationId"]})
    assert code(exc) == "OperationNotPermitted"


async def test_subnets_inside_their_vpc_without_overlap(net):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    out = wire("CreateSubnet", await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24",
                                                         "AvailabilityZone": "us-east-1b"}))
    subnet = out["Subnet"]
    assert subnet["AvailableIpAddressCount"] == 251 and subnet["AvailabilityZone"] == "us-east-1b"
    assert subnet["MapPublicIpOnLaunch"] is False and subnet["DefaultForAz"] is False
    for cidr, error in (("10.1.0.0/24", "InvalidSubnet.Range"), ("10.0.0.0/29", "InvalidSubnet.Range"),
                        ("10.0.1.128/25", "InvalidSubnet.Conflict"), ("10.0.0.0/16", "InvalidSubnet.Conflict")):
        with pytest.raises(errors.EC2Error) as exc:
            await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": cidr})
        assert code(exc) == error, cidr
    with pytest.raises(errors.InvalidParameterValue):
        await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.2.0/24", "AvailabilityZone": "mars-1a"})
    smallest = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.3.0/28",
                                          "AvailabilityZoneId": "use1-az3"}))["Subnet"]
    assert smallest["AvailableIpAddressCount"] == 11 and smallest["AvailabilityZone"] == "us-east-1c"
    await modify_subnet_attribute(ctx, {"SubnetId": subnet["SubnetId"], "MapPublicIpOnLaunch": {"Value": True}})
    found = wire("DescribeSubnets", await describe_subnets(ctx, {"Filters": [
        {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "map-public-ip-on-launch", "Values": ["true"]}]}))
    assert [s["SubnetId"] for s in found["Subnets"]] == [subnet["SubnetId"]]
    with pytest.raises(errors.EC2Error) as exc:
        await delete_vpc(ctx, {"VpcId": vpc_id})
    assert code(exc) == "DependencyViolation"
    with pytest.raises(errors.InvalidSubnetIDNotFound):
        await describe_subnets(ctx, {"SubnetIds": ["subnet-0123456789abcdef0"]})


async def test_internet_gateway_attach_detach_and_routes(net):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    igw = wire("CreateInternetGateway", await create_internet_gateway(ctx, {}))["InternetGateway"]
    igw_id = igw["InternetGatewayId"]
    assert igw["Attachments"] == []
    table_id = (await create_route_table(ctx, {"VpcId": vpc_id}))["RouteTable"]["RouteTableId"]
    with pytest.raises(errors.InvalidParameterValue):   # the gateway is not this VPC's yet
        await create_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw_id})
    assert wire("AttachInternetGateway", await attach_internet_gateway(
        ctx, {"InternetGatewayId": igw_id, "VpcId": vpc_id})) == {}
    with pytest.raises(errors.EC2Error) as exc:
        await attach_internet_gateway(ctx, {"InternetGatewayId": igw_id, "VpcId": vpc_id})
    assert code(exc) == "Resource.AlreadyAssociated"
    assert (await create_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0",
                                     "GatewayId": igw_id})) == {"Return": True}
    with pytest.raises(errors.EC2Error) as exc:
        await create_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw_id})
    assert code(exc) == "RouteAlreadyExists"
    with pytest.raises(errors.InvalidParameterValue):   # local traffic never goes to the gateway
        await create_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "10.0.5.0/24", "GatewayId": igw_id})
    with pytest.raises(errors.EC2Error) as exc:
        await delete_internet_gateway(ctx, {"InternetGatewayId": igw_id})
    assert code(exc) == "DependencyViolation"
    await detach_internet_gateway(ctx, {"InternetGatewayId": igw_id, "VpcId": vpc_id})
    with pytest.raises(errors.EC2Error) as exc:
        await detach_internet_gateway(ctx, {"InternetGatewayId": igw_id, "VpcId": vpc_id})
    assert code(exc) == "Gateway.NotAttached"
    table = (await describe_route_tables(ctx, {"RouteTableIds": [table_id]}))["RouteTables"][0]
    assert [r["State"] for r in table["Routes"] if r.get("GatewayId") == igw_id] == ["blackhole"]
    found = await describe_route_tables(ctx, {"Filters": [{"Name": "route.state", "Values": ["blackhole"]}]})
    assert [t["RouteTableId"] for t in found["RouteTables"]] == [table_id]
    await delete_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0"})
    with pytest.raises(errors.EC2Error) as exc:
        await delete_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0"})
    assert code(exc) == "InvalidRoute.NotFound"
    with pytest.raises(errors.InvalidParameterValue):
        await delete_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "10.0.0.0/16"})
    await delete_internet_gateway(ctx, {"InternetGatewayId": igw_id})
    with pytest.raises(errors.EC2Error) as exc:
        await describe_internet_gateways(ctx, {"InternetGatewayIds": [igw_id]})
    assert code(exc) == "InvalidInternetGatewayID.NotFound"


async def test_route_table_associations_and_the_main_table(net):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24"}))["Subnet"]["SubnetId"]
    main = (await describe_route_tables(ctx, {"Filters": [{"Name": "vpc-id", "Values": [vpc_id]},
                                                          {"Name": "association.main", "Values": ["true"]}]}))
    main_id = main["RouteTables"][0]["RouteTableId"]
    main_association = main["RouteTables"][0]["Associations"][0]["RouteTableAssociationId"]
    table_id = (await create_route_table(ctx, {"VpcId": vpc_id}))["RouteTable"]["RouteTableId"]
    out = wire("AssociateRouteTable", await associate_route_table(ctx, {"RouteTableId": table_id,
                                                                        "SubnetId": subnet_id}))
    association = out["AssociationId"]
    assert out["AssociationState"] == {"State": "associated"}
    with pytest.raises(errors.EC2Error) as exc:
        await associate_route_table(ctx, {"RouteTableId": main_id, "SubnetId": subnet_id})
    assert code(exc) == "Resource.AlreadyAssociated"
    with pytest.raises(errors.EC2Error) as exc:
        await delete_route_table(ctx, {"RouteTableId": table_id})
    assert code(exc) == "DependencyViolation"
    with pytest.raises(errors.EC2Error) as exc:
        await disassociate_route_table(ctx, {"AssociationId": main_association})
    assert code(exc) == "InvalidParameterValue"
    # the main association moves to another table
    out = wire("ReplaceRouteTableAssociation", await replace_route_table_association(
        ctx, {"AssociationId": main_association, "RouteTableId": table_id}))
    table = (await describe_route_tables(ctx, {"RouteTableIds": [table_id]}))["RouteTables"][0]
    assert {a["Main"] for a in table["Associations"]} == {True, False}
    assert (await describe_route_tables(ctx, {"RouteTableIds": [main_id]}))["RouteTables"][0]["Associations"] == []
    await disassociate_route_table(ctx, {"AssociationId": association})
    with pytest.raises(errors.EC2Error) as exc:
        await disassociate_route_table(ctx, {"AssociationId": association})
    assert code(exc) == "InvalidAssociationID.NotFound"
    await delete_route_table(ctx, {"RouteTableId": main_id})   # no longer the main table
    with pytest.raises(errors.EC2Error) as exc:
        await replace_route(ctx, {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0",
                                  "GatewayId": "igw-0123456789abcdef0"})
    assert code(exc) == "InvalidRoute.NotFound"


async def test_dhcp_options(net):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    out = wire("CreateDhcpOptions", await create_dhcp_options(ctx, {"DhcpConfigurations": [
        {"Key": "domain-name", "Values": ["corp.example"]},
        {"Key": "domain-name-servers", "Values": ["AmazonProvidedDNS", "10.0.0.53"]}]}))
    dopt_id = out["DhcpOptions"]["DhcpOptionsId"]
    assert {"Key": "domain-name", "Values": [{"Value": "corp.example"}]} in out["DhcpOptions"]["DhcpConfigurations"]
    for bad in ([{"Key": "colour", "Values": ["red"]}], [{"Key": "domain-name-servers", "Values": ["nope"]}]):
        with pytest.raises(errors.InvalidParameterValue):
            await create_dhcp_options(ctx, {"DhcpConfigurations": bad})
    await associate_dhcp_options(ctx, {"DhcpOptionsId": dopt_id, "VpcId": vpc_id})
    assert (await describe_vpcs(ctx, {"VpcIds": [vpc_id]}))["Vpcs"][0]["DhcpOptionsId"] == dopt_id
    with pytest.raises(errors.EC2Error) as exc:
        await delete_dhcp_options(ctx, {"DhcpOptionsId": dopt_id})
    assert code(exc) == "DependencyViolation"
    found = await describe_dhcp_options(ctx, {"Filters": [{"Name": "value", "Values": ["corp.example"]}]})
    assert [d["DhcpOptionsId"] for d in found["DhcpOptions"]] == [dopt_id]
    await associate_dhcp_options(ctx, {"DhcpOptionsId": "default", "VpcId": vpc_id})
    assert (await describe_vpcs(ctx, {"VpcIds": [vpc_id]}))["Vpcs"][0]["DhcpOptionsId"] == "default"
    await delete_dhcp_options(ctx, {"DhcpOptionsId": dopt_id})
    with pytest.raises(errors.EC2Error) as exc:
        await describe_dhcp_options(ctx, {"DhcpOptionsIds": [dopt_id]})
    assert code(exc) == "InvalidDhcpOptionID.NotFound"


async def test_delete_vpc_removes_what_it_came_with(net):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    default = (await describe_vpcs(ctx, {"Filters": [{"Name": "is-default", "Values": ["true"]}]}))["Vpcs"][0]
    with pytest.raises(errors.OperationNotPermitted):
        await delete_vpc(ctx, {"VpcId": default["VpcId"]})
    assert await delete_vpc(ctx, {"VpcId": vpc_id}) == {}
    with pytest.raises(errors.InvalidVpcIDNotFound):
        await describe_vpcs(ctx, {"VpcIds": [vpc_id]})
    for table in ("net_route_tables", "net_network_acls", "ec2_security_groups", "net_vpc_settings"):
        assert await net.db.fetchone(f"SELECT 1 FROM {table} WHERE vpc_id = ?", (vpc_id,)) is None, table
