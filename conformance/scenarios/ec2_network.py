"""EC2 networking scenarios: VPCs (attributes, CIDR blocks), subnets, internet gateways, route
tables and routes, DHCP options, security groups and their rules, network interfaces, public
addresses and network ACLs. Every resource a scenario makes is deleted when it ends.

Public addresses need a data path on Nimbo: on an endpoint that runs instances with user-mode
networking, AllocateAddress answers UnsupportedOperation, and the address scenario checks that
answer instead (nothing is allocated).
"""
from __future__ import annotations

import time

from botocore.exceptions import ClientError

from conformance import scenario
from conformance.scenarios.ec2_instances import launch, wait

SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
DNS = {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "10.0.0.2/32"}]}


def quietly(func, **params) -> None:
    try:
        func(**params)
    except ClientError:
        pass


def new_vpc(ctx, cidr: str = "10.42.0.0/16") -> str:
    vpc_id = ctx.call("ec2", "CreateVpc", CidrBlock=cidr)["Vpc"]["VpcId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_vpc, VpcId=vpc_id)
    return vpc_id


def new_subnet(ctx, vpc_id: str, cidr: str = "10.42.1.0/24") -> str:
    zone = ctx.call("ec2", "DescribeAvailabilityZones")["AvailabilityZones"][0]["ZoneName"]
    subnet_id = ctx.call("ec2", "CreateSubnet", VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)[
        "Subnet"]["SubnetId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_subnet, SubnetId=subnet_id)
    return subnet_id


@scenario("ec2", ["CreateVpc", "DescribeVpcs", "DescribeVpcAttribute", "ModifyVpcAttribute",
                  "AssociateVpcCidrBlock", "DisassociateVpcCidrBlock", "DeleteVpc"], client="boto3")
def vpc_life(ctx):
    """A VPC with a tag, its DNS attributes, a secondary CIDR block, then deleted."""
    name = ctx.name("vpc")
    vpc = ctx.call("ec2", "CreateVpc", CidrBlock="10.42.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}])["Vpc"]
    vpc_id = vpc["VpcId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_vpc, VpcId=vpc_id)
    ctx.check_equal(vpc["CidrBlock"], "10.42.0.0/16", "CidrBlock")
    ctx.check_equal(vpc.get("IsDefault"), False, "IsDefault")
    found = ctx.call("ec2", "DescribeVpcs", Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
    ctx.check_equal([v["VpcId"] for v in found], [vpc_id], "DescribeVpcs tag filter")
    ctx.call("ec2", "ModifyVpcAttribute", VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    attr = ctx.call("ec2", "DescribeVpcAttribute", VpcId=vpc_id, Attribute="enableDnsHostnames")
    ctx.check_equal(attr["EnableDnsHostnames"], {"Value": True}, "EnableDnsHostnames")
    out = ctx.call("ec2", "AssociateVpcCidrBlock", VpcId=vpc_id, CidrBlock="10.43.0.0/16")
    association = out["CidrBlockAssociation"]["AssociationId"]
    blocks = ctx.call("ec2", "DescribeVpcs", VpcIds=[vpc_id])["Vpcs"][0]["CidrBlockAssociationSet"]
    ctx.check("10.43.0.0/16" in [b["CidrBlock"] for b in blocks], "secondary CIDR block not listed")
    ctx.call("ec2", "DisassociateVpcCidrBlock", AssociationId=association)
    ctx.call("ec2", "DeleteVpc", VpcId=vpc_id)
    with ctx.expect_error("InvalidVpcID.NotFound", 400):
        ctx.call("ec2", "DescribeVpcs", VpcIds=[vpc_id])


@scenario("ec2", "CreateVpc", client="boto3", variant="CIDR out of range")
def vpc_bad_cidr(ctx):
    """A VPC block larger than /16: InvalidVpc.Range."""
    with ctx.expect_error("InvalidVpc.Range", 400):
        ctx.call("ec2", "CreateVpc", CidrBlock="10.0.0.0/8")


@scenario("ec2", ["CreateSubnet", "DescribeSubnets", "ModifySubnetAttribute", "DeleteSubnet"], client="boto3")
def subnet_life(ctx):
    """A subnet inside its VPC: 5 addresses reserved, MapPublicIpOnLaunch switched on; an
    overlapping one is InvalidSubnet.Conflict."""
    vpc_id = new_vpc(ctx)
    subnet_id = new_subnet(ctx, vpc_id)
    subnet = ctx.call("ec2", "DescribeSubnets", SubnetIds=[subnet_id])["Subnets"][0]
    ctx.check_equal(subnet["AvailableIpAddressCount"], 251, "AvailableIpAddressCount of a /24")
    ctx.check_equal(subnet["VpcId"], vpc_id, "VpcId")
    ctx.call("ec2", "ModifySubnetAttribute", SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    found = ctx.call("ec2", "DescribeSubnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                        {"Name": "map-public-ip-on-launch", "Values": ["true"]}])
    ctx.check_equal([s["SubnetId"] for s in found["Subnets"]], [subnet_id], "map-public-ip-on-launch filter")
    with ctx.expect_error("InvalidSubnet.Conflict", 400):
        ctx.call("ec2", "CreateSubnet", VpcId=vpc_id, CidrBlock="10.42.1.128/25")
    ctx.call("ec2", "DeleteSubnet", SubnetId=subnet_id)


@scenario("ec2", ["CreateInternetGateway", "AttachInternetGateway", "DescribeInternetGateways",
                  "CreateRouteTable", "CreateRoute", "ReplaceRoute", "AssociateRouteTable",
                  "ReplaceRouteTableAssociation", "DescribeRouteTables", "DisassociateRouteTable",
                  "DeleteRoute", "DeleteRouteTable", "DetachInternetGateway", "DeleteInternetGateway"],
          client="boto3")
def gateway_and_routes(ctx):
    """An internet gateway, a route table with a default route to it, associated with a subnet."""
    vpc_id = new_vpc(ctx)
    subnet_id = new_subnet(ctx, vpc_id)
    ec2 = ctx.client("ec2", validate=False)
    igw_id = ctx.call("ec2", "CreateInternetGateway")["InternetGateway"]["InternetGatewayId"]
    ctx.defer(quietly, ec2.delete_internet_gateway, InternetGatewayId=igw_id)
    ctx.call("ec2", "AttachInternetGateway", InternetGatewayId=igw_id, VpcId=vpc_id)
    ctx.defer(quietly, ec2.detach_internet_gateway, InternetGatewayId=igw_id, VpcId=vpc_id)
    attached = ctx.call("ec2", "DescribeInternetGateways", InternetGatewayIds=[igw_id])["InternetGateways"][0]
    ctx.check_equal([a["VpcId"] for a in attached["Attachments"]], [vpc_id], "Attachments")
    table_id = ctx.call("ec2", "CreateRouteTable", VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ctx.defer(quietly, ec2.delete_route_table, RouteTableId=table_id)
    ctx.check_equal(ctx.call("ec2", "CreateRoute", RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0",
                             GatewayId=igw_id).get("Return"), True, "CreateRoute Return")
    with ctx.expect_error("RouteAlreadyExists", 400):
        ctx.call("ec2", "CreateRoute", RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    ctx.call("ec2", "ReplaceRoute", RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
    association = ctx.call("ec2", "AssociateRouteTable", RouteTableId=table_id, SubnetId=subnet_id)["AssociationId"]
    table = ctx.call("ec2", "DescribeRouteTables", RouteTableIds=[table_id])["RouteTables"][0]
    ctx.check_equal([r.get("GatewayId") for r in table["Routes"]], ["local", igw_id], "routes")
    ctx.check_equal([a.get("SubnetId") for a in table["Associations"]], [subnet_id], "associations")
    main = ctx.call("ec2", "DescribeRouteTables", Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    ctx.check_equal(len(main), 1, "one main route table")
    new_association = ctx.call("ec2", "ReplaceRouteTableAssociation", AssociationId=association,
                               RouteTableId=main[0]["RouteTableId"])["NewAssociationId"]
    ctx.call("ec2", "DisassociateRouteTable", AssociationId=new_association)
    ctx.call("ec2", "DeleteRoute", RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0")
    ctx.call("ec2", "DeleteRouteTable", RouteTableId=table_id)
    ctx.call("ec2", "DetachInternetGateway", InternetGatewayId=igw_id, VpcId=vpc_id)
    ctx.call("ec2", "DeleteInternetGateway", InternetGatewayId=igw_id)


@scenario("ec2", ["CreateDhcpOptions", "DescribeDhcpOptions", "AssociateDhcpOptions", "DeleteDhcpOptions"],
          client="boto3")
def dhcp_options_life(ctx):
    """A DHCP options set associated with a VPC, then the default again, then deleted."""
    vpc_id = new_vpc(ctx)
    options = ctx.call("ec2", "CreateDhcpOptions", DhcpConfigurations=[
        {"Key": "domain-name", "Values": ["corp.example"]},
        {"Key": "domain-name-servers", "Values": ["AmazonProvidedDNS"]}])["DhcpOptions"]
    dopt_id = options["DhcpOptionsId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_dhcp_options, DhcpOptionsId=dopt_id)
    ctx.call("ec2", "AssociateDhcpOptions", DhcpOptionsId=dopt_id, VpcId=vpc_id)
    ctx.check_equal(ctx.call("ec2", "DescribeVpcs", VpcIds=[vpc_id])["Vpcs"][0]["DhcpOptionsId"], dopt_id,
                    "DhcpOptionsId")
    listed = ctx.call("ec2", "DescribeDhcpOptions", DhcpOptionsIds=[dopt_id])["DhcpOptions"][0]
    keys = {c["Key"]: [v["Value"] for v in c["Values"]] for c in listed["DhcpConfigurations"]}
    ctx.check_equal(keys.get("domain-name"), ["corp.example"], "domain-name")
    ctx.call("ec2", "AssociateDhcpOptions", DhcpOptionsId="default", VpcId=vpc_id)
    ctx.call("ec2", "DeleteDhcpOptions", DhcpOptionsId=dopt_id)


@scenario("ec2", ["CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
                  "DescribeSecurityGroups", "DescribeSecurityGroupRules", "RevokeSecurityGroupIngress",
                  "RevokeSecurityGroupEgress", "DeleteSecurityGroup"], client="boto3")
def security_group_rules(ctx):
    """A group's rules: authorized, listed as rules and as IpPermissions, revoked by id and by
    permission; a duplicate is InvalidPermission.Duplicate, a missing rule (non-default VPC)
    InvalidPermission.NotFound."""
    vpc_id = new_vpc(ctx)
    group_id = ctx.call("ec2", "CreateSecurityGroup", GroupName=ctx.name("sg"), Description="conformance",
                        VpcId=vpc_id)["GroupId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_security_group, GroupId=group_id)
    out = ctx.call("ec2", "AuthorizeSecurityGroupIngress", GroupId=group_id, IpPermissions=[SSH])
    ctx.check_equal(out.get("Return"), True, "Authorize Return")
    rule_id = out["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    with ctx.expect_error("InvalidPermission.Duplicate", 400):
        ctx.call("ec2", "AuthorizeSecurityGroupIngress", GroupId=group_id, IpPermissions=[SSH])
    ctx.call("ec2", "AuthorizeSecurityGroupEgress", GroupId=group_id, IpPermissions=[DNS])
    rules = ctx.call("ec2", "DescribeSecurityGroupRules", Filters=[
        {"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]
    ctx.check_equal(len(rules), 3, "rules (ssh, dns and the default egress)")
    group = ctx.call("ec2", "DescribeSecurityGroups", GroupIds=[group_id])["SecurityGroups"][0]
    ctx.check_equal([(p["IpProtocol"], p.get("FromPort")) for p in group["IpPermissions"]], [("tcp", 22)],
                    "IpPermissions")
    ctx.call("ec2", "RevokeSecurityGroupIngress", GroupId=group_id, SecurityGroupRuleIds=[rule_id])
    ctx.call("ec2", "RevokeSecurityGroupEgress", GroupId=group_id, IpPermissions=[DNS])
    with ctx.expect_error("InvalidPermission.NotFound", 400):
        ctx.call("ec2", "RevokeSecurityGroupIngress", GroupId=group_id, IpPermissions=[SSH])
    ctx.call("ec2", "DeleteSecurityGroup", GroupId=group_id)


@scenario("ec2", ["ModifySecurityGroupRules", "UpdateSecurityGroupRuleDescriptionsIngress",
                  "UpdateSecurityGroupRuleDescriptionsEgress"], client="boto3")
def security_group_rule_changes(ctx):
    """A rule changed in place (ModifySecurityGroupRules) and both directions' descriptions set."""
    vpc_id = new_vpc(ctx)
    ec2 = ctx.client("ec2", validate=False)
    group_id = ec2.create_security_group(GroupName=ctx.name("sg"), Description="conformance", VpcId=vpc_id)["GroupId"]
    ctx.defer(quietly, ec2.delete_security_group, GroupId=group_id)
    rule_id = ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[SSH])[
        "SecurityGroupRules"][0]["SecurityGroupRuleId"]
    egress_id = ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=[DNS])[
        "SecurityGroupRules"][0]["SecurityGroupRuleId"]
    ctx.call("ec2", "ModifySecurityGroupRules", GroupId=group_id, SecurityGroupRules=[
        {"SecurityGroupRuleId": rule_id, "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 2222,
                                                               "ToPort": 2222, "CidrIpv4": "10.0.0.0/8"}}])
    ctx.call("ec2", "UpdateSecurityGroupRuleDescriptionsIngress", GroupId=group_id, SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": rule_id, "Description": "alt ssh"}])
    ctx.call("ec2", "UpdateSecurityGroupRuleDescriptionsEgress", GroupId=group_id, SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": egress_id, "Description": "dns"}])
    rules = {r["SecurityGroupRuleId"]: r for r in ec2.describe_security_group_rules(Filters=[
        {"Name": "group-id", "Values": [group_id]}])["SecurityGroupRules"]}
    ctx.check_equal((rules[rule_id].get("FromPort"), rules[rule_id].get("Description")), (2222, "alt ssh"),
                    "the modified ingress rule")
    ctx.check_equal(rules[egress_id].get("Description"), "dns", "the egress rule's description")


@scenario("ec2", ["CreateNetworkInterface", "DescribeNetworkInterfaces", "AssignPrivateIpAddresses",
                  "UnassignPrivateIpAddresses", "ModifyNetworkInterfaceAttribute",
                  "DescribeNetworkInterfaceAttribute", "AttachNetworkInterface", "DetachNetworkInterface",
                  "DeleteNetworkInterface"], client="boto3")
def network_interface_life(ctx):
    """An interface with a secondary address, attached to an instance as device 1, detached, deleted."""
    vpc_id = new_vpc(ctx)
    subnet_id = new_subnet(ctx, vpc_id)
    eni = ctx.call("ec2", "CreateNetworkInterface", SubnetId=subnet_id, Description="conformance")[
        "NetworkInterface"]
    eni_id = eni["NetworkInterfaceId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_network_interface, NetworkInterfaceId=eni_id)
    ctx.check_equal(eni.get("Status"), "available", "Status")
    assigned = ctx.call("ec2", "AssignPrivateIpAddresses", NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=1)
    address = assigned["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
    ctx.call("ec2", "UnassignPrivateIpAddresses", NetworkInterfaceId=eni_id, PrivateIpAddresses=[address])
    ctx.call("ec2", "ModifyNetworkInterfaceAttribute", NetworkInterfaceId=eni_id, SourceDestCheck={"Value": False})
    attr = ctx.call("ec2", "DescribeNetworkInterfaceAttribute", NetworkInterfaceId=eni_id,
                    Attribute="sourceDestCheck")
    ctx.check_equal(attr["SourceDestCheck"], {"Value": False}, "SourceDestCheck")
    instance_id = launch(ctx, SubnetId=subnet_id)["Instances"][0]["InstanceId"]
    wait(ctx, "instance_running", [instance_id])
    attachment = ctx.call("ec2", "AttachNetworkInterface", NetworkInterfaceId=eni_id, InstanceId=instance_id,
                          DeviceIndex=1)["AttachmentId"]
    listed = ctx.call("ec2", "DescribeNetworkInterfaces", Filters=[
        {"Name": "attachment.instance-id", "Values": [instance_id]}])["NetworkInterfaces"]
    ctx.check(eni_id in [n["NetworkInterfaceId"] for n in listed], "the attached interface is not listed")
    ctx.call("ec2", "DetachNetworkInterface", AttachmentId=attachment)
    ctx.call("ec2", "DeleteNetworkInterface", NetworkInterfaceId=eni_id)
    # the instance's own interface goes with it: then the subnet and the VPC can be deleted
    ctx.call("ec2", "TerminateInstances", InstanceIds=[instance_id])
    wait(ctx, "instance_terminated", [instance_id])
    deadline = time.monotonic() + 20
    while ctx.call("ec2", "DescribeNetworkInterfaces", Filters=[
            {"Name": "subnet-id", "Values": [subnet_id]}])["NetworkInterfaces"]:
        ctx.check(time.monotonic() < deadline, "the terminated instance's interface is still there after 20 s")
        time.sleep(0.2)


def _allocated(ctx) -> str | None:
    """An Elastic IP released when the scenario ends; None (checked) where the endpoint has no
    public addresses (UnsupportedOperation)."""
    ec2 = ctx.client("ec2", validate=False)
    try:
        out = ec2.allocate_address(Domain="vpc")
    except ClientError as exc:
        ctx.check_equal(exc.response["Error"]["Code"], "UnsupportedOperation", "AllocateAddress refusal")
        ctx.check_equal(ctx.call("ec2", "DescribeAddresses")["Addresses"], [], "nothing allocated")
        return None
    ctx.validate("ec2", "AllocateAddress", {k: v for k, v in out.items() if k != "ResponseMetadata"})
    ctx.defer(quietly, ec2.release_address, AllocationId=out["AllocationId"])
    return out["AllocationId"]


@scenario("ec2", ["AllocateAddress", "DescribeAddresses", "ReleaseAddress"], client="boto3")
def address_life(ctx):
    """An Elastic IP allocated, described, released; an endpoint without public addresses
    answers UnsupportedOperation and allocates nothing."""
    allocation_id = _allocated(ctx)
    if allocation_id is None:
        return
    listed = ctx.call("ec2", "DescribeAddresses", AllocationIds=[allocation_id])["Addresses"]
    ctx.check_equal([a["AllocationId"] for a in listed], [allocation_id], "DescribeAddresses")
    ctx.call("ec2", "ReleaseAddress", AllocationId=allocation_id)
    with ctx.expect_error("InvalidAllocationID.NotFound", 400):
        ctx.call("ec2", "DescribeAddresses", AllocationIds=[allocation_id])


@scenario("ec2", ["DescribeAddressesAttribute", "ModifyAddressAttribute"], client="boto3")
def address_reverse_dns(ctx):
    """An Elastic IP's reverse DNS record: described, then a new one requested (PENDING)."""
    allocation_id = _allocated(ctx)
    if allocation_id is None:
        return
    records = ctx.call("ec2", "DescribeAddressesAttribute", AllocationIds=[allocation_id],
                       Attribute="domain-name")["Addresses"]
    ctx.check_equal([a["AllocationId"] for a in records], [allocation_id], "DescribeAddressesAttribute")
    out = ctx.call("ec2", "ModifyAddressAttribute", AllocationId=allocation_id, DomainName="www.example.com")
    ctx.check_equal((out["Address"].get("PtrRecordUpdate") or {}).get("Value"), "www.example.com.",
                    "PtrRecordUpdate.Value")


@scenario("ec2", "DeleteNetworkInterface", client="boto3", variant="attached")
def delete_attached_interface(ctx):
    """An instance's own interface cannot be deleted: InvalidNetworkInterface.InUse."""
    vpc_id = new_vpc(ctx)
    subnet_id = new_subnet(ctx, vpc_id)
    instance = launch(ctx, SubnetId=subnet_id)["Instances"][0]
    eni_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with ctx.expect_error("InvalidNetworkInterface.InUse", 400):
        ctx.call("ec2", "DeleteNetworkInterface", NetworkInterfaceId=eni_id)
    ctx.call("ec2", "TerminateInstances", InstanceIds=[instance["InstanceId"]])
    wait(ctx, "instance_terminated", [instance["InstanceId"]])
    deadline = time.monotonic() + 20
    while ctx.call("ec2", "DescribeNetworkInterfaces", Filters=[
            {"Name": "subnet-id", "Values": [subnet_id]}])["NetworkInterfaces"]:
        ctx.check(time.monotonic() < deadline, "the terminated instance's interface is still there after 20 s")
        time.sleep(0.2)


@scenario("ec2", "DescribeNetworkAcls", client="boto3")
def default_network_acl(ctx):
    """A new VPC's default network ACL allows everything both ways (rule 100) before the final deny."""
    vpc_id = new_vpc(ctx)
    acls = ctx.call("ec2", "DescribeNetworkAcls", Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                           {"Name": "default", "Values": ["true"]}])["NetworkAcls"]
    ctx.check_equal(len(acls), 1, "one default network ACL")
    allow = [e for e in acls[0]["Entries"] if e["RuleNumber"] == 100]
    ctx.check_equal(sorted((e["Egress"], e["RuleAction"]) for e in allow), [(False, "allow"), (True, "allow")],
                    "rule 100 entries")


@scenario("ec2", ["CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "DescribeSecurityGroups",
                  "DeleteSecurityGroup"], client="awscli")
def security_group_cli(ctx):
    """`aws ec2 create-security-group`, `authorize-security-group-ingress --protocol --port --cidr`,
    `describe-security-groups`, `delete-security-group`."""
    group_id = ctx.aws("ec2", "create-security-group", "--group-name", ctx.name("cli"), "--description", "cli")[
        "GroupId"]
    ctx.defer(quietly, ctx.client("ec2", validate=False).delete_security_group, GroupId=group_id)
    ctx.aws("ec2", "authorize-security-group-ingress", "--group-id", group_id, "--protocol", "tcp", "--port", "22",
            "--cidr", "0.0.0.0/0")
    group = ctx.aws("ec2", "describe-security-groups", "--group-ids", group_id)["SecurityGroups"][0]
    ctx.check_equal([p.get("FromPort") for p in group["IpPermissions"]], [22], "IpPermissions")
    ctx.aws("ec2", "delete-security-group", "--group-id", group_id)
