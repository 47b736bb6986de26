"""Every EC2 action Nimbo implements, by its botocore operation name, and the service's state.

``open_state(app)`` (called by the gateway at start-up) migrates the EC2 tables, starts the
instance lifecycle (driver events, reconciliation of VMs that ran or stopped while Nimbo was down,
housekeeping) and returns it; handlers reach it as ``ctx.state``. ``close_state`` stops it; VMs
keep running.
"""
from __future__ import annotations

from typing import Any

from ec2_api import (account_attributes, ebs_store, ebs_sweep, image_import, image_snapshots, images,
                     import_tasks, instance_actions, instance_types, instances, key_pairs, launch_templates,
                     regions, snapshot_imports, snapshots, tags, volume_attachments, volumes, vpc)
from ec2_api.lifecycle import Lifecycle
from storage import parameters, usage
from storage.ec2_schema import SCHEMA
from ec2_api import network_operations, network_sync  # noqa: E402 (VPCs, security groups, addresses ...)
from ec2_api import instance_query  # the DescribeInstances narrowing index
from ec2_api import compute_hosts  # libvirt compute hosts and placement

OPERATIONS = {
    **network_operations.OPERATIONS,   # VPCs, subnets, gateways, routes, groups, interfaces, addresses
    "DescribeRegions": regions.describe_regions,
    "DescribeAvailabilityZones": regions.describe_availability_zones,
    "DescribeAccountAttributes": account_attributes.describe_account_attributes,
    # instances
    "RunInstances": instances.run_instances,
    "DescribeInstances": instances.describe_instances,
    "DescribeInstanceStatus": instances.describe_instance_status,
    "StartInstances": instance_actions.start_instances,
    "StopInstances": instance_actions.stop_instances,
    "RebootInstances": instance_actions.reboot_instances,
    "TerminateInstances": instance_actions.terminate_instances,
    "GetConsoleOutput": instance_actions.get_console_output,
    "DescribeInstanceAttribute": instance_actions.describe_instance_attribute,
    "ModifyInstanceAttribute": instance_actions.modify_instance_attribute,
    "ModifyInstanceMetadataOptions": instance_actions.modify_instance_metadata_options,
    "DescribeInstanceTypes": instance_types.describe_instance_types,
    "DescribeInstanceTypeOfferings": instance_types.describe_instance_type_offerings,
    # images
    "DescribeImages": images.describe_images,
    "RegisterImage": image_snapshots.register_image,   # from snapshots, else image_import's
    "DeregisterImage": images.deregister_image,
    "DescribeImageAttribute": images.describe_image_attribute,
    "ModifyImageAttribute": images.modify_image_attribute,
    "CreateImage": image_snapshots.create_image,
    "ImportImage": import_tasks.import_image,
    "DescribeImportImageTasks": import_tasks.describe_import_image_tasks,
    "CancelImportTask": import_tasks.cancel_import_task,
    "ImportSnapshot": snapshot_imports.import_snapshot,
    "DescribeImportSnapshotTasks": snapshot_imports.describe_import_snapshot_tasks,
    # launch templates
    "CreateLaunchTemplate": launch_templates.create_launch_template,
    "CreateLaunchTemplateVersion": launch_templates.create_launch_template_version,
    "DescribeLaunchTemplates": launch_templates.describe_launch_templates,
    "DescribeLaunchTemplateVersions": launch_templates.describe_launch_template_versions,
    "ModifyLaunchTemplate": launch_templates.modify_launch_template,
    "DeleteLaunchTemplate": launch_templates.delete_launch_template,
    "DeleteLaunchTemplateVersions": launch_templates.delete_launch_template_versions,
    "GetLaunchTemplateData": launch_templates.get_launch_template_data,
    # key pairs
    "CreateKeyPair": key_pairs.create_key_pair,
    "ImportKeyPair": key_pairs.import_key_pair,
    "DescribeKeyPairs": key_pairs.describe_key_pairs,
    "DeleteKeyPair": key_pairs.delete_key_pair,
    # tags and the default network
    "CreateTags": tags.create_tags,
    "DeleteTags": tags.delete_tags,
    "DescribeTags": tags.describe_tags,
    "DescribeVpcs": vpc.describe_vpcs,
    "DescribeSubnets": vpc.describe_subnets,
    "DescribeSecurityGroups": vpc.describe_security_groups,
    # EBS volumes and snapshots
    "CreateVolume": volumes.create_volume,
    "DeleteVolume": volumes.delete_volume,
    "DescribeVolumes": volumes.describe_volumes,
    "ModifyVolume": volumes.modify_volume,
    "DescribeVolumesModifications": volumes.describe_volumes_modifications,
    "DescribeVolumeStatus": volumes.describe_volume_status,
    "DescribeVolumeAttribute": volumes.describe_volume_attribute,
    "ModifyVolumeAttribute": volumes.modify_volume_attribute,
    "EnableVolumeIO": volumes.enable_volume_io,
    "AttachVolume": volume_attachments.attach_volume,
    "DetachVolume": volume_attachments.detach_volume,
    "CreateSnapshot": snapshots.create_snapshot,
    "CreateSnapshots": snapshots.create_snapshots,
    "CopySnapshot": snapshots.copy_snapshot,
    "DeleteSnapshot": snapshots.delete_snapshot,
    "DescribeSnapshots": snapshots.describe_snapshots,
    "DescribeSnapshotAttribute": snapshots.describe_snapshot_attribute,
    "ModifySnapshotAttribute": snapshots.modify_snapshot_attribute,
    "ResetSnapshotAttribute": snapshots.reset_snapshot_attribute,
}


async def open_state(app: Any, *, housekeeping: bool = True) -> Lifecycle:
    """The EC2 service's state for the server's life (``ctx.state``)."""
    await app.db.migrate(usage.SCHEMA)
    await app.db.migrate(SCHEMA)
    await app.db.migrate(ebs_store.SCHEMA)
    for schema in (launch_templates.SCHEMA, parameters.SCHEMA, instance_query.SCHEMA, compute_hosts.SCHEMA):
        await app.db.migrate(schema)
    await import_tasks.recover(app.db, app.config)
    lifecycle = Lifecycle(app.db, app.config, app.backend, app.clock)
    await network_sync.open_network(app, lifecycle, background=housekeeping)   # lifecycle.network
    await ebs_sweep.sweep(lifecycle)
    await lifecycle.open(housekeeping=housekeeping)
    return lifecycle


async def close_state(state: Lifecycle) -> None:
    await state.close()
    await network_sync.close_network(state)
