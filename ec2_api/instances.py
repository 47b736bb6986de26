"""RunInstances, DescribeInstances and DescribeInstanceStatus.

RunInstances validates the request, reserves capacity and addresses, writes the instance rows in
state ``pending`` (with their usage events) in one transaction and answers at once; the VMs start in
the background (``ec2_api.lifecycle``). A ClientToken makes the call idempotent.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import sqlite3
from typing import Any

from ec2_api import (block_device_mappings, ids, images, instance_store, instance_types, key_pairs,
                     launch_templates, tag_store, vpc)
from ec2_api.account_attributes import max_instances
from ec2_api.common import account_of, check_max_results, from_us, now_us
from ec2_api.errors import (IdempotentParameterMismatch, InstanceLimitExceeded, InsufficientInstanceCapacity,
                            InvalidAMIIDUnavailable, InvalidKeyPairNotFound, InvalidParameterCombination,
                            InvalidParameterValue, MissingParameter, check_dry_run,
                            ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.imds import hostname_of
from ec2_api.instance_store import STATE_CODES, data_of, state_dict
from ec2_api import compute_hosts
from ec2_api.lifecycle import capacity_in_use, host_capacity
from ec2_api.regions import zone_id
from ec2_api import instance_network  # noqa: E402 (the launch's interfaces and public addresses)
from ec2_api import instance_query

InvalidBlockDeviceMapping = ec2_error("InvalidBlockDeviceMapping")
InvalidIPAddressInUse = ec2_error("InvalidIPAddress.InUse")
MAX_USER_DATA = 16 * 1024
GIB = 1024 ** 3
METADATA_DEFAULTS = {"HttpTokens": "optional", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled",
                     "HttpProtocolIpv6": "disabled", "InstanceMetadataTags": "disabled"}
STATUS_INITIALIZING_US = 5 * 1_000_000


# -- validation -----------------------------------------------------------------------------------

def metadata_options(requested: dict | None, base: dict | None = None) -> dict:
    options = dict(base or METADATA_DEFAULTS)
    for name, allowed in (("HttpTokens", ("optional", "required")), ("HttpEndpoint", ("enabled", "disabled")),
                          ("HttpProtocolIpv6", ("enabled", "disabled")),
                          ("InstanceMetadataTags", ("enabled", "disabled"))):
        value = (requested or {}).get(name)
        if value is not None:
            if value not in allowed:
                raise InvalidParameterValue(f"Value ({value}) for parameter {name} is invalid.")
            options[name] = value
    hop = (requested or {}).get("HttpPutResponseHopLimit")
    if hop is not None:
        if not 1 <= hop <= 64:
            raise InvalidParameterValue("The HttpPutResponseHopLimit must be between 1 and 64")
        options["HttpPutResponseHopLimit"] = hop
    return options


def decode_user_data(value: str | None) -> str | None:
    """The base64 text the client sent, checked (EC2 stores and serves the decoded bytes)."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameterValue("Invalid BASE64 encoding of user data.") from exc
    if len(raw) > MAX_USER_DATA:
        raise InvalidParameterValue(f"User data is limited to {MAX_USER_DATA} bytes")
    return base64.b64encode(raw).decode()


def params_hash(params: dict) -> str:
    relevant = {k: v for k, v in params.items() if k not in ("ClientToken", "DryRun")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


# -- RunInstances -----------------------------------------------------------------------------------

async def run_instances(ctx: Any, params: dict) -> dict:
    db, config = ctx.app.db, ctx.app.config
    account = account_of(ctx)
    params, template_tags = await launch_templates.launch_parameters(ctx, params)
    image_id = params.get("ImageId")
    if not image_id:
        raise MissingParameter("The request must contain the parameter ImageId")
    min_count, max_count = params.get("MinCount"), params.get("MaxCount")
    if min_count is None or max_count is None:
        raise MissingParameter("The request must contain the parameters MinCount and MaxCount")
    if min_count < 1 or max_count < 1:
        raise InvalidParameterValue("The MinCount and MaxCount must be at least 1")
    if min_count > max_count:
        raise InvalidParameterValue("MinCount must be less than or equal to MaxCount")
    token = params.get("ClientToken")
    if token is not None and (len(token) > 64 or not token.isascii()):
        raise InvalidParameterValue("The client token must be at most 64 ASCII characters")
    if token:
        replay = await _replay(ctx, token, params)
        if replay is not None:
            return replay
    image = await images.image_for_launch(ctx, image_id)
    if image["image_type"] != "machine":
        raise InvalidParameterValue(f"The image '{image_id}' is a {image['image_type']} image, not a machine image")
    if image["state"] != "available":
        raise InvalidAMIIDUnavailable(f"The image '{image_id}' is not available (state: {image['state']})")
    itype = instance_types.lookup(config, params.get("InstanceType"))
    key = None
    if params.get("KeyName"):
        key = await key_pairs.public_key_of(db, account, ctx.region, params["KeyName"])
        if key is None:
            raise InvalidKeyPairNotFound(f"The key pair '{params['KeyName']}' does not exist")
    user_data = decode_user_data(params.get("UserData"))
    options = metadata_options(params.get("MetadataOptions"))
    behaviour = params.get("InstanceInitiatedShutdownBehavior") or "stop"
    if behaviour not in ("stop", "terminate"):
        raise InvalidParameterValue(f"Value ({behaviour}) for parameter instanceInitiatedShutdownBehavior is invalid.")
    root, extra_volumes = await block_device_mappings.plan_launch(ctx, params, image)
    tags = tag_store.tag_specifications(params, {"instance", "volume", "network-interface"})
    if template_tags:
        tags["instance"] = {**tags.get("instance", {}), **template_tags}
    boot = await _boot(ctx, params, image)
    params = await compute_hosts.zone_of_named_host(db, params)   # HostId alone: the host's zone
    launch = await instance_network.plan(ctx, params)
    network, subnet, address, groups = launch.network, launch.subnet, launch.address, launch.groups
    check_dry_run(params)
    at = now_us(ctx)
    reservation_id = ids.new_id("r")
    rows = []
    async with db.transaction() as tx:
        if token and await tx.fetchone("SELECT 1 FROM ec2_client_tokens WHERE account_id = ? AND region = ?"
                                       " AND client_token = ?", (account, ctx.region, token)):
            raise IdempotentParameterMismatch()
        count = await _how_many(tx, config, account, ctx.region, itype, min_count, max_count)
        if address is not None:
            if await tx.fetchone("SELECT 1 FROM ec2_instances WHERE subnet_id = ? AND private_ip = ?",
                                 (subnet["subnet_id"], address)) and launch.existing_primary is None:
                raise InvalidIPAddressInUse(f"Address {address} is in use.")
            addresses = [address]
        else:
            addresses = await vpc.allocate_addresses(tx, subnet, count)
        zones = list(config.regions[ctx.region])
        for index in range(count):
            instance_id = ids.new_id("i")
            volume_id = ids.new_id("vol")
            host_id = await compute_hosts.choose_host(tx, config, itype.vcpus, itype.memory_mib,
                                                      subnet["availability_zone"], params)
            data = {
                "vcpus": itype.vcpus, "memory_mib": itype.memory_mib, "cores": itype.core_count,
                "threads_per_core": itype.threads, "architecture": image["architecture"],
                "root_device_name": image["root_device_name"], "boot": boot,
                "kernel_id": params.get("KernelId") or image["kernel_id"],
                "ramdisk_id": params.get("RamdiskId") or image["ramdisk_id"],
                "root_volume": {**{k: root[k] for k in ("device_name", "size_gib", "volume_type",
                                                        "delete_on_termination")}, "attach_us": at},
                "security_groups": groups,
                "eni_id": ids.new_id("eni"), "eni_attachment_id": ids.new_id("eni-attach"),
                "subnet_cidr": subnet["cidr_block"], "vpc_cidr": network.vpc["cidr_block"],
                "availability_zone_id": zone_id(ctx.region, zones.index(subnet["availability_zone"])),
                "metadata_options": options, "public_key": key["public_key"] if key else None,
                "smbios_uuid": _smbios_uuid(), "ebs_optimized": bool(params.get("EbsOptimized")),
                "monitoring": bool((params.get("Monitoring") or {}).get("Enabled")), "host_id": host_id,
            }
            try:
                await tx.execute(
                    "INSERT INTO ec2_instances (instance_id, account_id, region, reservation_id, launch_index,"
                    " image_id, instance_type, key_name, state, state_seq, state_changed_us, transition_reason,"
                    " state_reason_code, state_reason_message, launch_time_us, pending_time_us,"
                    " availability_zone, vpc_id, subnet_id, private_ip, mac, root_volume_id, root_disk,"
                    " user_data, client_token, shutdown_behavior, disable_api_termination, disable_api_stop,"
                    " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?, ?, ?, ?, ?, ?)",
                    (instance_id, account, ctx.region, reservation_id, index, image_id, itype.name,
                     params.get("KeyName"), at, *instance_store.PENDING_REASON, at, at,
                     subnet["availability_zone"], network.vpc["vpc_id"], subnet["subnet_id"], addresses[index],
                     _mac(), volume_id, _volume_path(config, volume_id), user_data, token, behaviour,
                     int(bool(params.get("DisableApiTermination"))), int(bool(params.get("DisableApiStop"))),
                     json.dumps(data, sort_keys=True)))
            except sqlite3.IntegrityError as exc:
                raise InvalidIPAddressInUse(f"Address {addresses[index]} is in use.") from exc
            for resource_type, resource_id in (("instance", instance_id), ("volume", volume_id)):
                if tags.get(resource_type):
                    await tag_store.write_tags(tx, account, ctx.region, resource_id, resource_type,
                                               tags[resource_type])
            row = await tx.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance_id,))
            await instance_network.record(tx, ctx, launch, row, tags)
            row = await tx.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance_id,))
            await instance_store.record_state_event(tx, row, "pending", 0, at)
            await instance_store.record_volume_event(tx, row, "in-use", at)
            row = await block_device_mappings.insert_launch_volumes(tx, row, image, root, extra_volumes,
                                                                    tags.get("volume") or {}, at)
            rows.append(row)
        if token:
            await tx.execute(
                "INSERT INTO ec2_client_tokens (account_id, region, client_token, reservation_id, params_hash,"
                " created_us) VALUES (?, ?, ?, ?, ?, ?)",
                (account, ctx.region, token, reservation_id, params_hash(params), at))
    for row in rows:
        ctx.state.boot(row["instance_id"])
    return await reservation_output(ctx, rows)


async def _boot(ctx: Any, params: dict, image: Any) -> dict:
    """Where the VM boots from: the image's disk, plus a kernel/initrd for direct kernel boot."""
    data = images.data_of(image)
    boot = {"base_disk": image["disk_path"], "base_format": image["disk_format"] or "qcow2",
            **{k: v for k, v in (data.get("boot") or {}).items() if k in ("kernel", "initrd", "cmdline")}}
    for field, kind, key in (("KernelId", "kernel", "kernel"), ("RamdiskId", "ramdisk", "initrd")):
        image_ref = params.get(field) or (image["kernel_id"] if kind == "kernel" else image["ramdisk_id"])
        if image_ref and not boot.get(key):
            ref = await images.image_for_launch(ctx, image_ref)
            if ref["image_type"] != kind or ref["state"] != "available":
                raise InvalidParameterValue(f"The image '{image_ref}' is not an available {kind} image")
            boot[key] = ref["disk_path"]
    if boot.get("kernel") and not boot.get("cmdline"):
        boot["cmdline"] = images.DEFAULT_CMDLINE
    return boot


async def _how_many(tx: Any, config: Any, account: str, region: str, itype: Any, min_count: int,
                    max_count: int) -> int:
    """As many instances as fit, between MinCount and MaxCount (EC2 launches the most it can)."""
    row = await tx.fetchone("SELECT COUNT(*) AS n FROM ec2_instances WHERE account_id = ? AND region = ?"
                            " AND state != 'terminated'", (account, region))
    limit = max_instances(config)
    allowed = limit - row["n"]
    if allowed < min_count:
        raise InstanceLimitExceeded(
            f"You have requested more instances ({row['n'] + min_count}) than your current instance limit "
            f"of {limit} allows for the specified instance type.")
    fit = await compute_hosts.cluster_fit(tx, itype.vcpus, itype.memory_mib)   # None: no libvirt hosts
    if fit is None:
        host_vcpus, host_memory = host_capacity(config)
        used_vcpus, used_memory = await capacity_in_use(tx)
        fit = min((host_vcpus - used_vcpus) // itype.vcpus, (host_memory - used_memory) // itype.memory_mib)
    if fit < min_count:
        raise InsufficientInstanceCapacity(
            f"We currently do not have sufficient {itype.name} capacity on this Nimbo host. "
            f"Our system will be working on provisioning additional capacity.")
    return min(max_count, allowed, fit)


async def _replay(ctx: Any, token: str, params: dict) -> dict | None:
    """The original answer to a RunInstances repeated with the same ClientToken."""
    row = await ctx.app.db.fetchone(
        "SELECT * FROM ec2_client_tokens WHERE account_id = ? AND region = ? AND client_token = ?",
        (account_of(ctx), ctx.region, token))
    if row is None:
        return None
    if row["params_hash"] != params_hash(params):
        raise IdempotentParameterMismatch()
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_instances WHERE reservation_id = ? ORDER BY launch_index", (row["reservation_id"],))
    if not rows:
        raise IdempotentParameterMismatch()
    check_dry_run(params)
    return await reservation_output(ctx, rows)


def _mac() -> str:
    return "0e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def _smbios_uuid() -> str:
    digits = "ec2" + secrets.token_hex(15)[:29]
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:32]}"


def _volume_path(config: Any, volume_id: str) -> str:
    from ec2_api.disks import volume_path  # noqa: PLC0415
    return volume_path(config, volume_id)


# -- rendering --------------------------------------------------------------------------------------

_STATES = {state: {"Code": code, "Name": state} for state, code in STATE_CODES.items()}

# What a description shows of an instance's ``data`` JSON (parsing all of it was ~8 ms of a
# 1,000-instance page): remembered per instance id together with the text it was parsed from, and
# used only while the row holds that same text (compared in full), so a changed ``data`` is seen on
# the next read, in every worker process, whoever changed it: nothing to invalidate. Bounded (~2.7
# KB an entry; a full memo starts afresh). What it holds is only read, never handed out to change.
_SHOWN = ("architecture", "availability_zone_id", "host_id", "monitoring", "security_groups", "root_device_name",
          "ebs_optimized", "cores", "threads_per_core", "metadata_options", "kernel_id", "ramdisk_id",
          "eni_attachment_id", "eni_id", "root_volume", "block_devices")
_SHOWN_DATA: dict[str, tuple[str, dict]] = {}
_SHOWN_DATA_MAX = 2048


def shown_data(row: Any) -> dict:
    """The ``_SHOWN`` parts of the row's ``data`` (as ``data_of`` parses them); not to be changed."""
    text = row["data"]
    found = _SHOWN_DATA.get(row["instance_id"])
    if found is not None and found[0] == text:
        return found[1]
    data = json.loads(text or "{}")
    shown = {key: data[key] for key in _SHOWN if key in data}
    if len(_SHOWN_DATA) >= _SHOWN_DATA_MAX:
        _SHOWN_DATA.clear()
    _SHOWN_DATA[row["instance_id"]] = (text, shown)
    return shown


def render_instance(row: Any, tags: dict[str, str], network: dict | None = None) -> dict:
    """An instance of DescribeInstances (and RunInstances) from its row and tags. ``network``:
    what its interfaces say (``instance_network.interfaces_of``); without it, a live instance's
    network part is what its row records (``instance_network.decorate`` replaces it)."""
    r = row if type(row) is dict else dict(zip(row.keys(), row))
    data = shown_data(r)
    get = data.get
    state = r["state"]
    live = state != "terminated"
    ip = r["private_ip"] if live else None
    region = r["region"]
    dns = hostname_of(ip, region) if ip else ""
    launch = from_us(r["launch_time_us"])
    placement = {"AvailabilityZone": r["availability_zone"], "GroupName": "", "Tenancy": "default",
                 "AvailabilityZoneId": get("availability_zone_id")}
    host_id = get("host_id")
    if host_id:
        placement["HostId"] = host_id
    options = get("metadata_options") or METADATA_DEFAULTS
    item: dict[str, Any] = {
        "AmiLaunchIndex": r["launch_index"], "ImageId": r["image_id"], "InstanceId": r["instance_id"],
        "InstanceType": r["instance_type"], "KeyName": r["key_name"], "LaunchTime": launch,
        "Monitoring": {"State": "enabled" if get("monitoring") else "disabled"},
        "Placement": placement,
        "PrivateDnsName": dns, "PrivateIpAddress": ip, "ProductCodes": [], "PublicDnsName": "",
        "State": dict(_STATES[state]), "StateTransitionReason": r["transition_reason"] or "",
        "Architecture": get("architecture", "x86_64"),
        "BlockDeviceMappings": block_device_mappings.render(r, data),
        "ClientToken": r["client_token"] or "", "EbsOptimized": bool(get("ebs_optimized")),
        "EnaSupport": True, "Hypervisor": "xen",
        "RootDeviceName": get("root_device_name", "/dev/xvda"), "RootDeviceType": "ebs",
        "SecurityGroups": [],
        "VirtualizationType": "hvm", "Tags": [{"Key": k, "Value": tags[k]} for k in sorted(tags)] or None,
        "CpuOptions": {"CoreCount": get("cores", 1), "ThreadsPerCore": get("threads_per_core", 1)},
        "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
        "HibernationOptions": {"Configured": False},
        "MetadataOptions": {"State": "applied", **options},
        "EnclaveOptions": {"Enabled": False}, "BootMode": "legacy-bios", "CurrentInstanceBootMode": "legacy-bios",
        "PlatformDetails": "Linux/UNIX", "UsageOperation": "RunInstances", "UsageOperationUpdateTime": launch,
        "PrivateDnsNameOptions": {"HostnameType": "ip-name", "EnableResourceNameDnsARecord": False,
                                  "EnableResourceNameDnsAAAARecord": False},
        "MaintenanceOptions": {"AutoRecovery": "default"},
        "KernelId": get("kernel_id"), "RamdiskId": get("ramdisk_id"),
    }
    if live:
        item["SubnetId"] = r["subnet_id"]
        item["VpcId"] = r["vpc_id"]
        if network is not None:
            item.update(network)
        else:     # copies: what the memo holds is not handed out
            groups = [dict(group) for group in get("security_groups") or []]
            item["SecurityGroups"] = groups
            item["SourceDestCheck"] = True
            item["NetworkInterfaces"] = [{
                "Attachment": {"AttachTime": from_us(r["pending_time_us"]),
                               "AttachmentId": get("eni_attachment_id"), "DeleteOnTermination": True,
                               "DeviceIndex": 0, "Status": "attached", "NetworkCardIndex": 0},
                "Description": "", "Groups": groups, "Ipv6Addresses": [], "MacAddress": r["mac"],
                "NetworkInterfaceId": get("eni_id"), "OwnerId": r["account_id"],
                "PrivateDnsName": dns, "PrivateIpAddress": ip,
                "PrivateIpAddresses": [{"Primary": True, "PrivateDnsName": dns, "PrivateIpAddress": ip}],
                "SourceDestCheck": True, "Status": "in-use", "SubnetId": r["subnet_id"],
                "VpcId": r["vpc_id"], "InterfaceType": "interface"}]
    if r["state_reason_code"]:
        item["StateReason"] = {"Code": r["state_reason_code"], "Message": r["state_reason_message"]}
    return item


async def reservation_output(ctx: Any, rows: list[Any]) -> dict:
    """RunInstances' answer: one reservation."""
    tags = await tag_store.tags_of(ctx.app.db, rows[0]["account_id"], [r["instance_id"] for r in rows])
    first = rows[0]
    instances = [render_instance(r, tags[r["instance_id"]]) for r in rows]
    await instance_network.decorate(ctx.app.db, instances)
    return {"ReservationId": first["reservation_id"], "OwnerId": first["account_id"], "Groups": [],
            "Instances": instances}


# -- DescribeInstances ------------------------------------------------------------------------------

_INSTANCE_FILTERS = {
    "instance-id": lambda i: i["InstanceId"],
    "instance-state-name": lambda i: i["State"]["Name"],
    "instance-state-code": lambda i: i["State"]["Code"],
    "image-id": lambda i: i["ImageId"],
    "instance-type": lambda i: i["InstanceType"],
    "key-name": lambda i: i["KeyName"],
    "availability-zone": lambda i: i["Placement"]["AvailabilityZone"],
    "placement-availability-zone": lambda i: i["Placement"]["AvailabilityZone"],
    "private-ip-address": lambda i: i.get("PrivateIpAddress"),
    "private-dns-name": lambda i: i.get("PrivateDnsName") or None,
    "reservation-id": lambda i: i["_reservation"],
    "owner-id": lambda i: i["_owner"],
    "vpc-id": lambda i: i.get("VpcId"),
    "subnet-id": lambda i: i.get("SubnetId"),
    "launch-time": lambda i: i["LaunchTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "architecture": lambda i: i["Architecture"],
    "client-token": lambda i: i["ClientToken"] or None,
    "launch-index": lambda i: i["AmiLaunchIndex"],
    "hypervisor": lambda i: i["Hypervisor"],
    "root-device-name": lambda i: i["RootDeviceName"],
    "root-device-type": lambda i: i["RootDeviceType"],
    "virtualization-type": lambda i: i["VirtualizationType"],
    "state-reason-code": lambda i: (i.get("StateReason") or {}).get("Code"),
    "state-reason-message": lambda i: (i.get("StateReason") or {}).get("Message"),
    "monitoring-state": lambda i: i["Monitoring"]["State"],
    "tenancy": lambda i: i["Placement"]["Tenancy"],
    "host-id": lambda i: i["Placement"].get("HostId"),
    "instance.group-id": lambda i: [g["GroupId"] for g in i["SecurityGroups"]],
    "instance.group-name": lambda i: [g["GroupName"] for g in i["SecurityGroups"]],
    "group-id": lambda i: [g["GroupId"] for g in i["SecurityGroups"]],
    "group-name": lambda i: [g["GroupName"] for g in i["SecurityGroups"]],
    "block-device-mapping.volume-id": lambda i: [b["Ebs"]["VolumeId"] for b in i["BlockDeviceMappings"]],
    "block-device-mapping.device-name": lambda i: [b["DeviceName"] for b in i["BlockDeviceMappings"]],
    "network-interface.network-interface-id": lambda i: [n["NetworkInterfaceId"] for n in i.get("NetworkInterfaces", [])],
    "network-interface.mac-address": lambda i: [n["MacAddress"] for n in i.get("NetworkInterfaces", [])],
    "network-interface.private-ip-address": lambda i: [n["PrivateIpAddress"] for n in i.get("NetworkInterfaces", [])],
    "network-interface.subnet-id": lambda i: [n["SubnetId"] for n in i.get("NetworkInterfaces", [])],
    "network-interface.vpc-id": lambda i: [n["VpcId"] for n in i.get("NetworkInterfaces", [])],
    "metadata-options.http-tokens": lambda i: i["MetadataOptions"]["HttpTokens"],
    "metadata-options.http-endpoint": lambda i: i["MetadataOptions"]["HttpEndpoint"],
    "metadata-options.instance-metadata-tags": lambda i: i["MetadataOptions"]["InstanceMetadataTags"],
    "platform-details": lambda i: i["PlatformDetails"],
    **instance_network.INSTANCE_FILTERS,
}


# The filters a row answers as its rendering would (same values), by name; tag:KEY, tag-key and
# tag-value too.
_ROW_FILTERS = {
    "instance-id": lambda r: r["instance_id"],
    "instance-state-name": lambda r: r["state"],
    "instance-state-code": lambda r: STATE_CODES[r["state"]],
    "instance-type": lambda r: r["instance_type"],
    "image-id": lambda r: r["image_id"],
    "key-name": lambda r: r["key_name"],
    "availability-zone": lambda r: r["availability_zone"],
    "placement-availability-zone": lambda r: r["availability_zone"],
    "reservation-id": lambda r: r["reservation_id"],
    "owner-id": lambda r: r["account_id"],
    "client-token": lambda r: r["client_token"] or None,
}


def _row_filterable(name: Any) -> bool:
    return isinstance(name, str) and (name in _ROW_FILTERS or name.startswith("tag:")
                                      or name in ("tag-key", "tag-value"))


async def visible_instances(ctx: Any, instance_ids: list[str]) -> list[Any]:
    at = now_us(ctx)
    if instance_ids:
        return await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, instance_ids, at)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_instances WHERE account_id = ? AND region = ? ORDER BY instance_id",
        (account_of(ctx), ctx.region))
    return [row for row in rows if instance_store.visible(row, at)]


async def describe_instances(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    wanted = params.get("InstanceIds") or []
    if wanted and params.get("MaxResults") is not None:
        raise InvalidParameterCombination("The parameter instancesSet cannot be used with the parameter maxResults")
    max_results = check_max_results(params, 5, 1000)
    filters = params.get("Filters") or []
    if wanted:
        rows = await visible_instances(ctx, wanted)
    else:   # only the rows the filters can keep are loaded (instance_query); unfiltered, only the page
        after, limit = instance_query.page_window(max_results, params.get("NextToken")) if not filters else (None, None)
        rows = await instance_query.candidate_rows(ctx.app.db, account_of(ctx), ctx.region, filters, now_us(ctx),
                                                   after=after, limit=limit)
    tags = await tag_store.tags_of(ctx.app.db, account_of(ctx), [r["instance_id"] for r in rows])
    # Filters that the row answers (tags, state, type, ...) go first, so that only the instances
    # that pass them are rendered; with nothing else to filter on, only the page is rendered.
    on_rows = [f for f in filters if _row_filterable(f.get("Name"))]
    on_items = [f for f in filters if not _row_filterable(f.get("Name"))]
    rows = apply_filters(rows, on_rows, _ROW_FILTERS, tags=lambda r: tags[r["instance_id"]])
    if not on_items:
        rows, token = paginate(rows, lambda r: r["instance_id"], max_results, params.get("NextToken"))
    network = await instance_network.interfaces_of(
        ctx.app.db, [row["instance_id"] for row in rows if row["state"] != "terminated"])
    items = []
    keys = rows[0].keys() if rows else []
    for row in rows:
        row = dict(zip(keys, row))
        instance_id = row["instance_id"]
        item = render_instance(row, tags[instance_id], network.get(instance_id))
        item["_reservation"], item["_owner"] = row["reservation_id"], row["account_id"]
        items.append(item)
    if on_items:
        items = apply_filters(items, on_items, _INSTANCE_FILTERS, tags=lambda i: tags[i["InstanceId"]])
        items, token = paginate(items, lambda i: i["InstanceId"], max_results, params.get("NextToken"))
    page = items
    reservations: dict[str, dict] = {}
    for item in page:
        reservation_id, owner = item.pop("_reservation"), item.pop("_owner")
        reservation = reservations.setdefault(reservation_id, {
            "ReservationId": reservation_id, "OwnerId": owner, "Groups": [], "Instances": []})
        reservation["Instances"].append(item)
    return {"Reservations": list(reservations.values()), "NextToken": token}


# -- DescribeInstanceStatus -------------------------------------------------------------------------

def _status(row: Any, at: int) -> dict:
    if row["state"] != "running":
        summary = {"Status": "not-applicable", "Details": []}
        return {"InstanceStatus": summary, "SystemStatus": dict(summary)}
    ready = at - row["state_changed_us"] >= STATUS_INITIALIZING_US
    status = "ok" if ready else "initializing"
    detail = [{"Name": "reachability", "Status": "passed" if ready else "initializing"}]
    return {"InstanceStatus": {"Status": status, "Details": detail},
            "SystemStatus": {"Status": status, "Details": [dict(d) for d in detail]}}


async def describe_instance_status(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    wanted = params.get("InstanceIds") or []
    if wanted and params.get("MaxResults") is not None:
        raise InvalidParameterCombination("The parameter instancesSet cannot be used with the parameter maxResults")
    max_results = check_max_results(params, 5, 1000)
    rows = await visible_instances(ctx, wanted)
    if not params.get("IncludeAllInstances"):
        rows = [row for row in rows if row["state"] == "running"]
    at = now_us(ctx)
    items = []
    for row in rows:
        data = data_of(row)
        items.append({"InstanceId": row["instance_id"], "AvailabilityZone": row["availability_zone"],
                      "AvailabilityZoneId": data.get("availability_zone_id"),
                      "InstanceState": state_dict(row["state"]), "Events": [], **_status(row, at)})
    items = apply_filters(items, params.get("Filters"), {
        "availability-zone": lambda s: s["AvailabilityZone"],
        "instance-state-name": lambda s: s["InstanceState"]["Name"],
        "instance-state-code": lambda s: s["InstanceState"]["Code"],
        "instance-status.status": lambda s: s["InstanceStatus"]["Status"],
        "instance-status.reachability": lambda s: [d["Status"] for d in s["InstanceStatus"]["Details"]],
        "system-status.status": lambda s: s["SystemStatus"]["Status"],
        "system-status.reachability": lambda s: [d["Status"] for d in s["SystemStatus"]["Details"]],
        "event.code": lambda s: None,
    })
    page, token = paginate(items, lambda s: s["InstanceId"], max_results, params.get("NextToken"))
    return {"InstanceStatuses": page, "NextToken": token}


__all__ = ["run_instances", "describe_instances", "describe_instance_status", "render_instance",
           "STATE_CODES", "metadata_options"]
