"""The EC2 tables: instances, client tokens, images, key pairs, tags, the default network and
image import tasks. Owned by ``ec2_api``; times are integer microseconds since the epoch.

Instance rows keep the columns that EC2 semantics need (state machine, placement, addresses);
the rest of what DescribeInstances shows lives in ``data`` (JSON). ``state_seq`` counts the
state changes of an instance and makes the usage events' dedupe keys.
"""
from __future__ import annotations

from storage.db import Schema

SCHEMA = Schema(
    "ec2",
    [
        """
        CREATE TABLE ec2_instances (
            instance_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            reservation_id TEXT NOT NULL,
            launch_index INTEGER NOT NULL DEFAULT 0,
            image_id TEXT NOT NULL,
            instance_type TEXT NOT NULL,
            key_name TEXT,
            state TEXT NOT NULL,
            state_seq INTEGER NOT NULL DEFAULT 0,
            state_changed_us INTEGER NOT NULL,
            transition_reason TEXT NOT NULL DEFAULT '',
            state_reason_code TEXT,
            state_reason_message TEXT,
            launch_time_us INTEGER NOT NULL,
            pending_time_us INTEGER NOT NULL,
            availability_zone TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            subnet_id TEXT NOT NULL,
            private_ip TEXT,
            mac TEXT NOT NULL,
            root_volume_id TEXT NOT NULL,
            root_disk TEXT NOT NULL,
            user_data TEXT,
            client_token TEXT,
            shutdown_behavior TEXT NOT NULL DEFAULT 'stop',
            disable_api_termination INTEGER NOT NULL DEFAULT 0,
            disable_api_stop INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ec2_instances_by_owner ON ec2_instances(account_id, region);
        CREATE INDEX ec2_instances_by_state ON ec2_instances(state);
        CREATE UNIQUE INDEX ec2_instances_by_ip ON ec2_instances(subnet_id, private_ip);
        CREATE TABLE ec2_client_tokens (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            client_token TEXT NOT NULL,
            reservation_id TEXT NOT NULL,
            params_hash TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            PRIMARY KEY (account_id, region, client_token)
        );
        CREATE TABLE ec2_images (
            image_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT,
            state TEXT NOT NULL,
            state_reason TEXT,
            image_type TEXT NOT NULL DEFAULT 'machine',
            architecture TEXT NOT NULL DEFAULT 'x86_64',
            root_device_name TEXT NOT NULL DEFAULT '/dev/xvda',
            disk_path TEXT,
            disk_format TEXT,
            size_bytes INTEGER NOT NULL DEFAULT 0,
            kernel_id TEXT,
            ramdisk_id TEXT,
            snapshot_id TEXT,
            is_public INTEGER NOT NULL DEFAULT 0,
            launch_users TEXT NOT NULL DEFAULT '[]',
            owner_alias TEXT,
            created_us INTEGER NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            UNIQUE (account_id, region, name)
        );
        CREATE INDEX ec2_images_by_region ON ec2_images(region);
        CREATE TABLE ec2_key_pairs (
            key_pair_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            key_name TEXT NOT NULL,
            key_type TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            public_key TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            UNIQUE (account_id, region, key_name)
        );
        CREATE TABLE ec2_tags (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (account_id, resource_id, key)
        );
        CREATE INDEX ec2_tags_by_region ON ec2_tags(account_id, region);
        CREATE TABLE ec2_vpcs (
            vpc_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            cidr_block TEXT NOT NULL,
            is_default INTEGER NOT NULL DEFAULT 0,
            dhcp_options_id TEXT NOT NULL,
            cidr_association_id TEXT NOT NULL,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX ec2_vpcs_by_owner ON ec2_vpcs(account_id, region);
        CREATE TABLE ec2_subnets (
            subnet_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            availability_zone TEXT NOT NULL,
            cidr_block TEXT NOT NULL,
            default_for_az INTEGER NOT NULL DEFAULT 0,
            created_us INTEGER NOT NULL
        );
        CREATE INDEX ec2_subnets_by_owner ON ec2_subnets(account_id, region);
        CREATE TABLE ec2_security_groups (
            group_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            vpc_id TEXT NOT NULL,
            group_name TEXT NOT NULL,
            description TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            UNIQUE (vpc_id, group_name)
        );
        CREATE INDEX ec2_security_groups_by_owner ON ec2_security_groups(account_id, region);
        CREATE TABLE ec2_import_tasks (
            task_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            status TEXT NOT NULL,
            status_message TEXT,
            progress TEXT,
            image_id TEXT,
            description TEXT,
            created_us INTEGER NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ec2_import_tasks_by_owner ON ec2_import_tasks(account_id, region)
        """
    ],
)
