"""The EC2 networking actions by their botocore operation names (merged into
``ec2_api.operations.OPERATIONS``)."""
from __future__ import annotations

from ec2_api import (addresses, dhcp_options, internet_gateways, network_acls, network_interfaces, route_tables,
                     security_group_rules, security_groups, subnets, vpcs)

OPERATIONS = {
    # VPCs
    "CreateVpc": vpcs.create_vpc,
    "DeleteVpc": vpcs.delete_vpc,
    "DescribeVpcs": vpcs.describe_vpcs,
    "DescribeVpcAttribute": vpcs.describe_vpc_attribute,
    "ModifyVpcAttribute": vpcs.modify_vpc_attribute,
    "AssociateVpcCidrBlock": vpcs.associate_vpc_cidr_block,
    "DisassociateVpcCidrBlock": vpcs.disassociate_vpc_cidr_block,
    # subnets
    "CreateSubnet": subnets.create_subnet,
    "DeleteSubnet": subnets.delete_subnet,
    "DescribeSubnets": subnets.describe_subnets,
    "ModifySubnetAttribute": subnets.modify_subnet_attribute,
    # internet gateways
    "CreateInternetGateway": internet_gateways.create_internet_gateway,
    "DeleteInternetGateway": internet_gateways.delete_internet_gateway,
    "DescribeInternetGateways": internet_gateways.describe_internet_gateways,
    "AttachInternetGateway": internet_gateways.attach_internet_gateway,
    "DetachInternetGateway": internet_gateways.detach_internet_gateway,
    # route tables
    "CreateRouteTable": route_tables.create_route_table,
    "DeleteRouteTable": route_tables.delete_route_table,
    "DescribeRouteTables": route_tables.describe_route_tables,
    "CreateRoute": route_tables.create_route,
    "ReplaceRoute": route_tables.replace_route,
    "DeleteRoute": route_tables.delete_route,
    "AssociateRouteTable": route_tables.associate_route_table,
    "DisassociateRouteTable": route_tables.disassociate_route_table,
    "ReplaceRouteTableAssociation": route_tables.replace_route_table_association,
    # DHCP options
    "CreateDhcpOptions": dhcp_options.create_dhcp_options,
    "DeleteDhcpOptions": dhcp_options.delete_dhcp_options,
    "DescribeDhcpOptions": dhcp_options.describe_dhcp_options,
    "AssociateDhcpOptions": dhcp_options.associate_dhcp_options,
    # security groups
    "CreateSecurityGroup": security_groups.create_security_group,
    "DeleteSecurityGroup": security_groups.delete_security_group,
    "DescribeSecurityGroups": security_groups.describe_security_groups,
    "AuthorizeSecurityGroupIngress": security_group_rules.authorize_security_group_ingress,
    "AuthorizeSecurityGroupEgress": security_group_rules.authorize_security_group_egress,
    "RevokeSecurityGroupIngress": security_group_rules.revoke_security_group_ingress,
    "RevokeSecurityGroupEgress": security_group_rules.revoke_security_group_egress,
    "DescribeSecurityGroupRules": security_group_rules.describe_security_group_rules,
    "ModifySecurityGroupRules": security_group_rules.modify_security_group_rules,
    "UpdateSecurityGroupRuleDescriptionsIngress": security_group_rules.update_security_group_rule_descriptions_ingress,
    "UpdateSecurityGroupRuleDescriptionsEgress": security_group_rules.update_security_group_rule_descriptions_egress,
    # network interfaces
    "CreateNetworkInterface": network_interfaces.create_network_interface,
    "DeleteNetworkInterface": network_interfaces.delete_network_interface,
    "DescribeNetworkInterfaces": network_interfaces.describe_network_interfaces,
    "AttachNetworkInterface": network_interfaces.attach_network_interface,
    "DetachNetworkInterface": network_interfaces.detach_network_interface,
    "DescribeNetworkInterfaceAttribute": network_interfaces.describe_network_interface_attribute,
    "ModifyNetworkInterfaceAttribute": network_interfaces.modify_network_interface_attribute,
    "AssignPrivateIpAddresses": network_interfaces.assign_private_ip_addresses,
    "UnassignPrivateIpAddresses": network_interfaces.unassign_private_ip_addresses,
    # addresses
    "AllocateAddress": addresses.allocate_address,
    "ReleaseAddress": addresses.release_address,
    "AssociateAddress": addresses.associate_address,
    "DisassociateAddress": addresses.disassociate_address,
    "DescribeAddresses": addresses.describe_addresses,
    "DescribeAddressesAttribute": addresses.describe_addresses_attribute,
    "ModifyAddressAttribute": addresses.modify_address_attribute,
    # network ACLs
    "DescribeNetworkAcls": network_acls.describe_network_acls,
}


def _register_taggables() -> None:
    from ec2_api.errors import ec2_error  # noqa: PLC0415
    from ec2_api.tags import Taggable, register_taggable  # noqa: PLC0415
    for prefix, resource_type, table, column, code, wording in (
            ("igw", "internet-gateway", "net_internet_gateways", "internet_gateway_id",
             "InvalidInternetGatewayID.NotFound", "internetGateway ID"),
            ("rtb", "route-table", "net_route_tables", "route_table_id", "InvalidRouteTableID.NotFound",
             "routeTable ID"),
            ("dopt", "dhcp-options", "net_dhcp_options", "dhcp_options_id", "InvalidDhcpOptionID.NotFound",
             "dhcpOption ID"),
            ("acl", "network-acl", "net_network_acls", "network_acl_id", "InvalidNetworkAclID.NotFound",
             "networkAcl ID"),
            ("eni", "network-interface", "net_interfaces", "network_interface_id",
             "InvalidNetworkInterfaceID.NotFound", "networkInterface ID"),
            ("eipalloc", "elastic-ip", "net_addresses", "allocation_id", "InvalidAllocationID.NotFound",
             "allocation ID"),
            ("sgr", "security-group-rule", "net_security_group_rules", "rule_id",
             "InvalidSecurityGroupRuleId.NotFound", "security group rule ID")):
        register_taggable(prefix, Taggable(resource_type, table, column, ec2_error(code), wording))


_register_taggables()
