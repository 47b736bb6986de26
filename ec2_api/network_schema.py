"""The tables of EC2 networking beyond the default VPC's first ones (``storage.ec2_schema`` keeps
``ec2_vpcs``, ``ec2_subnets`` and ``ec2_security_groups``): VPC settings and secondary CIDR
blocks, subnet settings, internet gateways, route tables with their routes and associations, DHCP
options sets, security group rules, network ACLs, network interfaces (their addresses and groups)
and public addresses (Elastic IPs and the auto-assigned public addresses of instances).

Crash story: every action writes its rows in one transaction, so a crash leaves the tables as
they were before or after the action, never half-made. The data path's kernel state is derived
from these tables (``ec2_api.network_state``) and re-applied whole at start-up, so nothing the
data path holds needs a row of its own here.
"""
from __future__ import annotations

from storage.db import Schema

SCHEMA = Schema(
    "ec2_network",
    [
        """
        CREATE TABLE net_vpc_settings (
            vpc_id TEXT PRIMARY KEY,
            enable_dns_support INTEGER NOT NULL DEFAULT 1,
            enable_dns_hostnames INTEGER NOT NULL DEFAULT 0,
            enable_network_address_usage_metrics INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE net_vpc_cidrs (
            association_id TEXT PRIMARY KEY,
            vpc_id TEXT NOT NULL,
            account_id TEXT NOT NULL,
            cidr_block TEXT NOT NULL,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_vpc_cidrs_by_vpc ON net_vpc_cidrs(vpc_id);
        CREATE TABLE net_subnet_settings (
            subnet_id TEXT PRIMARY KEY,
            map_public_ip_on_launch INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE net_internet_gateways (
            internet_gateway_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            vpc_id TEXT,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_igw_by_owner ON net_internet_gateways(account_id, region);
        CREATE TABLE net_route_tables (
            route_table_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            main_association_id TEXT,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_rtb_by_owner ON net_route_tables(account_id, region);
        CREATE UNIQUE INDEX net_rtb_main ON net_route_tables(vpc_id) WHERE main_association_id IS NOT NULL;
        CREATE TABLE net_routes (
            route_table_id TEXT NOT NULL,
            destination TEXT NOT NULL,
            gateway_id TEXT,
            network_interface_id TEXT,
            instance_id TEXT,
            origin TEXT NOT NULL DEFAULT 'CreateRoute',
            PRIMARY KEY (route_table_id, destination)
        );
        CREATE TABLE net_route_table_associations (
            association_id TEXT PRIMARY KEY,
            route_table_id TEXT NOT NULL,
            subnet_id TEXT UNIQUE,
            gateway_id TEXT UNIQUE
        );
        CREATE INDEX net_rtb_assoc_by_table ON net_route_table_associations(route_table_id);
        CREATE TABLE net_dhcp_options (
            dhcp_options_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            configurations TEXT NOT NULL DEFAULT '{}',
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_dopt_by_owner ON net_dhcp_options(account_id, region);
        CREATE TABLE net_security_group_rules (
            rule_id TEXT PRIMARY KEY,
            group_id TEXT NOT NULL,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            is_egress INTEGER NOT NULL,
            ip_protocol TEXT NOT NULL,
            from_port INTEGER,
            to_port INTEGER,
            cidr_ipv4 TEXT,
            cidr_ipv6 TEXT,
            prefix_list_id TEXT,
            ref_group_id TEXT,
            ref_user_id TEXT,
            description TEXT,
            seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX net_sg_rules_by_group ON net_security_group_rules(group_id);
        CREATE INDEX net_sg_rules_by_ref ON net_security_group_rules(ref_group_id);
        CREATE TABLE net_network_acls (
            network_acl_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            is_default INTEGER NOT NULL DEFAULT 1,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_acl_by_owner ON net_network_acls(account_id, region);
        CREATE TABLE net_interfaces (
            network_interface_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            subnet_id TEXT NOT NULL,
            availability_zone TEXT NOT NULL,
            mac TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            source_dest_check INTEGER NOT NULL DEFAULT 1,
            interface_type TEXT NOT NULL DEFAULT 'interface',
            instance_id TEXT,
            device_index INTEGER,
            attachment_id TEXT,
            attach_time_us INTEGER,
            delete_on_termination INTEGER NOT NULL DEFAULT 0,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_eni_by_owner ON net_interfaces(account_id, region);
        CREATE INDEX net_eni_by_instance ON net_interfaces(instance_id);
        CREATE UNIQUE INDEX net_eni_device ON net_interfaces(instance_id, device_index)
            WHERE instance_id IS NOT NULL;
        CREATE TABLE net_interface_addresses (
            subnet_id TEXT NOT NULL,
            private_ip TEXT NOT NULL,
            network_interface_id TEXT NOT NULL,
            is_primary INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (subnet_id, private_ip)
        );
        CREATE INDEX net_eni_addresses_by_eni ON net_interface_addresses(network_interface_id);
        CREATE TABLE net_interface_groups (
            network_interface_id TEXT NOT NULL,
            group_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (network_interface_id, group_id)
        );
        CREATE INDEX net_eni_groups_by_group ON net_interface_groups(group_id);
        CREATE TABLE net_addresses (
            public_ip TEXT PRIMARY KEY,
            allocation_id TEXT UNIQUE,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'elastic',
            association_id TEXT UNIQUE,
            network_interface_id TEXT,
            private_ip TEXT,
            ptr_record TEXT,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX net_addresses_by_owner ON net_addresses(account_id, region);
        CREATE INDEX net_addresses_by_eni ON net_addresses(network_interface_id);
        CREATE TABLE net_generation (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            value INTEGER NOT NULL
        );
        INSERT INTO net_generation (id, value) VALUES (1, 0)
        """
    ],
)
