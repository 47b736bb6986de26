"""The description of an instance as DescribeInstances wrote it before its rendering was made
cheaper (issue 12): ``render_instance`` then ``decorate``, kept verbatim as the oracle of
tests/ec2/test_describe_instances_output_pinned.py (the faster path must write the same bytes)."""
from __future__ import annotations

from typing import Any

from ec2_api import block_device_mappings, tag_store
from ec2_api.common import from_us
from ec2_api.imds import hostname_of
from ec2_api.instance_store import data_of, state_dict
from ec2_api.instances import METADATA_DEFAULTS
from ec2_api.network_interfaces import interface_details, public_dns


def render_instance(row: Any, tags: dict[str, str]) -> dict:
    data = data_of(row)
    state = row["state"]
    live = state != "terminated"
    ip = row["private_ip"] if live else None
    dns = hostname_of(ip, row["region"]) if ip else ""
    groups = data.get("security_groups") or []
    launch = from_us(row["launch_time_us"])
    item: dict[str, Any] = {
        "AmiLaunchIndex": row["launch_index"], "ImageId": row["image_id"], "InstanceId": row["instance_id"],
        "InstanceType": row["instance_type"], "KeyName": row["key_name"], "LaunchTime": launch,
        "Monitoring": {"State": "enabled" if data.get("monitoring") else "disabled"},
        "Placement": {"AvailabilityZone": row["availability_zone"], "GroupName": "", "Tenancy": "default",
                      "AvailabilityZoneId": data.get("availability_zone_id"),
                      **({"HostId": data["host_id"]} if data.get("host_id") else {})},
        "PrivateDnsName": dns, "PrivateIpAddress": ip, "ProductCodes": [], "PublicDnsName": "",
        "State": state_dict(state), "StateTransitionReason": row["transition_reason"] or "",
        "Architecture": data.get("architecture", "x86_64"),
        "BlockDeviceMappings": block_device_mappings.render(row, data),
        "ClientToken": row["client_token"] or "", "EbsOptimized": bool(data.get("ebs_optimized")),
        "EnaSupport": True, "Hypervisor": "xen",
        "RootDeviceName": data.get("root_device_name", "/dev/xvda"), "RootDeviceType": "ebs",
        "SecurityGroups": groups if live else [],
        "VirtualizationType": "hvm", "Tags": tag_store.tag_list(tags) or None,
        "CpuOptions": {"CoreCount": data.get("cores", 1), "ThreadsPerCore": data.get("threads_per_core", 1)},
        "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
        "HibernationOptions": {"Configured": False},
        "MetadataOptions": {"State": "applied", **(data.get("metadata_options") or METADATA_DEFAULTS)},
        "EnclaveOptions": {"Enabled": False}, "BootMode": "legacy-bios", "CurrentInstanceBootMode": "legacy-bios",
        "PlatformDetails": "Linux/UNIX", "UsageOperation": "RunInstances", "UsageOperationUpdateTime": launch,
        "PrivateDnsNameOptions": {"HostnameType": "ip-name", "EnableResourceNameDnsARecord": False,
                                  "EnableResourceNameDnsAAAARecord": False},
        "MaintenanceOptions": {"AutoRecovery": "default"},
        "KernelId": data.get("kernel_id"), "RamdiskId": data.get("ramdisk_id"),
    }
    if live:
        item.update({
            "SubnetId": row["subnet_id"], "VpcId": row["vpc_id"], "SourceDestCheck": True,
            "NetworkInterfaces": [{
                "Attachment": {"AttachTime": from_us(row["pending_time_us"]),
                               "AttachmentId": data.get("eni_attachment_id"), "DeleteOnTermination": True,
                               "DeviceIndex": 0, "Status": "attached", "NetworkCardIndex": 0},
                "Description": "", "Groups": groups, "Ipv6Addresses": [], "MacAddress": row["mac"],
                "NetworkInterfaceId": data.get("eni_id"), "OwnerId": row["account_id"],
                "PrivateDnsName": dns, "PrivateIpAddress": ip,
                "PrivateIpAddresses": [{"Primary": True, "PrivateDnsName": dns, "PrivateIpAddress": ip}],
                "SourceDestCheck": True, "Status": "in-use", "SubnetId": row["subnet_id"],
                "VpcId": row["vpc_id"], "InterfaceType": "interface"}],
        })
    if row["state_reason_code"]:
        item["StateReason"] = {"Code": row["state_reason_code"], "Message": row["state_reason_message"]}
    return item



async def decorate(db: Any, items: list[dict]) -> None:
    """Replace the rendered instances' network part with what the interfaces say."""
    live = [i for i in items if i.get("NetworkInterfaces")]
    if not live:
        return
    marks = ",".join("?" * len(live))
    rows = await db.fetchall(f"SELECT * FROM net_interfaces WHERE instance_id IN ({marks}) ORDER BY device_index",
                             [i["InstanceId"] for i in live])
    if not rows:
        return
    details = await interface_details(db, rows)
    vpc_ids = sorted({r["vpc_id"] for r in rows})    # a page's interfaces share a few VPCs
    hostnames = {r["vpc_id"]: bool(r["enable_dns_hostnames"]) for r in await db.fetchall(
        f"SELECT vpc_id, enable_dns_hostnames FROM net_vpc_settings WHERE vpc_id IN ({','.join('?' * len(vpc_ids))})",
        vpc_ids)}
    by_instance: dict[str, list] = {}
    for row in rows:
        by_instance.setdefault(row["instance_id"], []).append(row)
    for item in live:
        enis = by_instance.get(item["InstanceId"])
        if not enis:
            continue
        region = enis[0]["region"]
        rendered = [_instance_interface(r, details[r["network_interface_id"]], region) for r in enis]
        item["NetworkInterfaces"] = rendered
        primary = rendered[0]
        item["SourceDestCheck"] = primary["SourceDestCheck"]
        item["SecurityGroups"] = primary["Groups"]
        public = (primary.get("Association") or {}).get("PublicIp")
        if public:
            item["PublicIpAddress"] = public
            item["PublicDnsName"] = public_dns(public, region) if hostnames.get(enis[0]["vpc_id"], True) else ""


def _instance_interface(row: Any, details: dict, region: str) -> dict:
    primary = details["addresses"][0]["private_ip"] if details["addresses"] else None

    def association(address: str) -> dict:
        public = details["public"].get(address)
        if public is None:
            return {}
        return {"Association": {"IpOwnerId": "amazon" if public["kind"] == "auto" else public["account_id"],
                                "PublicDnsName": public_dns(public["public_ip"], region),
                                "PublicIp": public["public_ip"]}}
    return {
        "Attachment": {"AttachTime": from_us(row["attach_time_us"]), "AttachmentId": row["attachment_id"],
                       "DeleteOnTermination": bool(row["delete_on_termination"]), "DeviceIndex": row["device_index"],
                       "Status": "attached", "NetworkCardIndex": 0},
        "Description": row["description"], "Groups": details["groups"], "Ipv6Addresses": [],
        "MacAddress": row["mac"], "NetworkInterfaceId": row["network_interface_id"], "OwnerId": row["account_id"],
        "PrivateDnsName": hostname_of(primary, region), "PrivateIpAddress": primary,
        "PrivateIpAddresses": [{"Primary": bool(a["is_primary"]), "PrivateDnsName": hostname_of(a["private_ip"], region),
                                "PrivateIpAddress": a["private_ip"], **association(a["private_ip"])}
                               for a in details["addresses"]],
        "SourceDestCheck": bool(row["source_dest_check"]), "Status": "in-use", "SubnetId": row["subnet_id"],
        "VpcId": row["vpc_id"], "InterfaceType": row["interface_type"], **association(primary),
    }


