"""An instance's block device mappings: RunInstances' BlockDeviceMappings (root size and type,
extra EBS volumes new or from snapshots, DeleteOnTermination, NoDevice), what DescribeInstances
and DescribeInstanceAttribute show, and ModifyInstanceAttribute's DeleteOnTermination changes.

The image's own mappings (``images.block_device_mappings``) are the starting point; the launch's
mappings override them by device name, as EC2 merges them. Every volume of a launch is a volume
row (``ebs_store``) written in the RunInstances transaction; the files are made when the VM is
first prepared (``volume_attachments.disks_for_start`` and the lifecycle's root overlay).
"""
from __future__ import annotations

from typing import Any, Iterator

from ec2_api import ebs_store, ids, images, instance_store, tag_store
from ec2_api.common import account_of, from_us
from ec2_api.errors import EC2Error, InvalidParameterValue, MissingParameter, check_dry_run, ec2_error

InvalidBlockDeviceMapping = ec2_error("InvalidBlockDeviceMapping")


def _ebs_spec(ebs: dict, base: dict | None, snapshot: Any | None, device: str) -> dict:
    from ec2_api.volumes import check_volume_spec  # noqa: PLC0415
    base = base or {}
    volume_type = ebs.get("VolumeType") or base.get("VolumeType") or "gp2"
    minimum = snapshot["volume_size"] if snapshot is not None else base.get("VolumeSize")
    size = next((v for v in (ebs.get("VolumeSize"), base.get("VolumeSize"), minimum) if v is not None), None)
    if size is None:
        raise InvalidBlockDeviceMapping(f"The block device mapping for '{device}' needs a SnapshotId or a VolumeSize")
    if minimum is not None and size < minimum:
        source = snapshot["snapshot_id"] if snapshot is not None else base.get("SnapshotId")
        raise InvalidBlockDeviceMapping(f"Volume of size {size}GB is smaller than snapshot '{source}', "
                                        f"expect size >= {minimum}GB")
    iops_given = ebs.get("Iops") is not None
    iops = ebs.get("Iops") if iops_given else (base.get("Iops") if volume_type == base.get("VolumeType") else None)
    throughput = ebs.get("Throughput") if ebs.get("Throughput") is not None else \
        (base.get("Throughput") if volume_type == base.get("VolumeType") else None)
    try:
        iops, throughput = check_volume_spec(volume_type, int(size), iops, throughput, iops_given=iops_given,
                                             throughput_given=ebs.get("Throughput") is not None)
    except EC2Error as exc:   # EC2 words a bad mapping as InvalidBlockDeviceMapping
        raise InvalidBlockDeviceMapping(getattr(exc, "message", str(exc))) from None
    dot = ebs.get("DeleteOnTermination")
    encrypted = bool(ebs.get("Encrypted")) or bool(base.get("Encrypted")) or bool(snapshot and snapshot["encrypted"])
    if ebs.get("KmsKeyId") and not encrypted:
        raise ebs_store.InvalidParameterDependency("The parameter KmsKeyId requires the parameter Encrypted "
                                                   "to be set.")
    return {"device_name": device, "size_gib": int(size), "volume_type": volume_type, "iops": iops,
            "throughput": throughput, "encrypted": encrypted, "kms_key_id": ebs.get("KmsKeyId"),
            "delete_on_termination": bool(base.get("DeleteOnTermination", True) if dot is None else dot),
            "snapshot_id": snapshot["snapshot_id"] if snapshot is not None else None,
            "base_path": snapshot["path"] if snapshot is not None else None,
            "base_format": ebs_store.data_of(snapshot).get("format", "qcow2") if snapshot is not None else None}


def device_mappings(params: dict) -> Iterator[tuple[str, dict]]:
    """(device name, mapping) of each of the request's BlockDeviceMappings, in order; each checked
    (a DeviceName, named once) as it is reached."""
    seen: set[str] = set()
    for mapping in params.get("BlockDeviceMappings") or []:
        device = mapping.get("DeviceName")
        if not device:
            raise MissingParameter("The request must contain the parameter BlockDeviceMapping.DeviceName")
        if device in seen:
            raise InvalidBlockDeviceMapping(f"The device '{device}' is used in more than one block-device mapping")
        seen.add(device)
        yield device, mapping


async def plan_launch(ctx: Any, params: dict, image: Any) -> tuple[dict, list[dict]]:
    """(root volume, extra volumes) of a launch: the image's mappings merged with the request's."""
    from ec2_api import image_snapshots  # noqa: PLC0415
    db, account = ctx.app.db, account_of(ctx)
    root_device = image["root_device_name"]
    image_ebs = {m["DeviceName"]: m.get("Ebs") for m in images.block_device_mappings(image)}
    merged: dict[str, tuple[dict | None, dict]] = {d: (e, {}) for d, e in image_ebs.items() if e is not None}
    for device, mapping in device_mappings(params):
        if mapping.get("NoDevice") is not None:
            if device == root_device:
                raise InvalidBlockDeviceMapping("The root device cannot be suppressed with NoDevice")
            merged.pop(device, None)
            continue
        if mapping.get("VirtualName"):   # instance store: Nimbo's instance types have none
            merged.pop(device, None)
            continue
        if device != root_device and not ebs_store.valid_device(device):
            raise InvalidBlockDeviceMapping(f"Invalid device name {device}")
        merged[device] = (image_ebs.get(device), mapping.get("Ebs") or {})
    root: dict | None = None
    extras: list[dict] = []
    for device, (base, requested) in merged.items():
        if device == root_device:
            if requested.get("SnapshotId") and requested["SnapshotId"] != image["snapshot_id"]:
                raise InvalidBlockDeviceMapping("The snapshot of the root device cannot be replaced at launch")
            base = dict(base or {})
            base["VolumeSize"] = max(int(base.get("VolumeSize") or 0), images.root_size_gib(image))
            base.pop("SnapshotId", None)
            root = _ebs_spec({k: v for k, v in requested.items() if k != "SnapshotId"}, base, None, device)
            root["snapshot_id"] = image["snapshot_id"]
            continue
        snapshot = None
        snapshot_id = requested.get("SnapshotId") or (base or {}).get("SnapshotId")
        if snapshot_id:
            await image_snapshots.ensure_image_snapshots(db, ctx.app.config)
            snapshot = await ebs_store.usable_snapshot(db, account, ctx.region, snapshot_id)
            if snapshot["state"] != "completed":
                raise InvalidBlockDeviceMapping(f"Snapshot '{snapshot['snapshot_id']}' is not completed")
        extras.append(_ebs_spec(requested, base, snapshot, device))
    if root is None:
        root = _ebs_spec({}, {"VolumeSize": images.root_size_gib(image)}, None, root_device)
        root["snapshot_id"] = image["snapshot_id"]
    if root["size_gib"] > 16384:
        raise InvalidParameterValue("Volume size must be at most 16384 GiB")
    return root, extras


async def insert_launch_volumes(tx: Any, instance: Any, image: Any, root: dict, extras: list[dict],
                                volume_tags: dict[str, str], at: int) -> Any:
    """The volume rows of a new instance (its root volume's usage event is the instance's own);
    returns the instance row as it is now."""
    common = {"account_id": instance["account_id"], "region": instance["region"],
              "zone": instance["availability_zone"], "multi_attach": False, "state": "in-use", "created_us": at,
              "instance_id": instance["instance_id"], "attach_state": "attached"}
    await ebs_store.insert_volume(
        tx, volume_id=instance["root_volume_id"], size_gib=root["size_gib"], volume_type=root["volume_type"],
        iops=root["iops"], throughput=root["throughput"], encrypted=root["encrypted"], kms_key_id=root["kms_key_id"],
        snapshot_id=image["snapshot_id"], path=instance["root_disk"], base_path=image["disk_path"],
        base_format=image["disk_format"] or "qcow2", device=root["device_name"],
        delete_on_termination=root["delete_on_termination"], is_root=True, record=False, **common)
    devices = []
    for extra in extras:
        volume_id = ids.new_id("vol")
        row = await ebs_store.insert_volume(
            tx, volume_id=volume_id, size_gib=extra["size_gib"], volume_type=extra["volume_type"],
            iops=extra["iops"], throughput=extra["throughput"], encrypted=extra["encrypted"],
            kms_key_id=extra["kms_key_id"], snapshot_id=extra["snapshot_id"],
            path=ebs_store.volume_file_for(instance["root_disk"], volume_id), base_path=extra["base_path"],
            base_format=extra["base_format"], device=extra["device_name"],
            delete_on_termination=extra["delete_on_termination"], **common)
        devices.append({"device_name": row["device"], "volume_id": volume_id, "attach_us": at,
                        "delete_on_termination": extra["delete_on_termination"], "status": "attached"})
        if volume_tags:
            await tag_store.write_tags(tx, instance["account_id"], instance["region"], volume_id, "volume",
                                       volume_tags)
    if devices:
        await instance_store.update_data(tx, instance["instance_id"], block_devices=devices)
    return await tx.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance["instance_id"],))


def render(row: Any, data: dict) -> list[dict]:
    """DescribeInstances' BlockDeviceMappings: the root volume, then the others by attach time."""
    if row["state"] == "terminated":
        return []
    root = data.get("root_volume") or {}
    out = [{"DeviceName": root.get("device_name", "/dev/xvda"),
            "Ebs": {"AttachTime": from_us(root.get("attach_us", row["pending_time_us"])),
                    "DeleteOnTermination": root.get("delete_on_termination", True), "Status": "attached",
                    "VolumeId": row["root_volume_id"]}}]
    for device in sorted(data.get("block_devices") or [], key=lambda d: (d.get("attach_us") or 0, d["device_name"])):
        out.append({"DeviceName": device["device_name"],
                    "Ebs": {"AttachTime": from_us(device.get("attach_us")),
                            "DeleteOnTermination": bool(device.get("delete_on_termination")),
                            "Status": device.get("status") or "attached", "VolumeId": device["volume_id"]}})
    return out


async def modify_instance_mappings(ctx: Any, instance: Any, mappings: Any, params: dict) -> dict:
    """ModifyInstanceAttribute blockDeviceMapping: DeleteOnTermination of attached volumes."""
    db = ctx.app.db
    volumes = {v["device"]: v for v in await ebs_store.volumes_of_instance(db, instance["instance_id"])}
    data = instance_store.data_of(instance)
    root_device = (data.get("root_volume") or {}).get("device_name") or data.get("root_device_name")
    changes: dict[str, bool] = {}
    for mapping in mappings if isinstance(mappings, list) else []:
        device = mapping.get("DeviceName")
        if device not in volumes and device != root_device:
            raise InvalidParameterValue(f"The device '{device}' is not attached to instance "
                                        f"'{instance['instance_id']}'")
        ebs = mapping.get("Ebs") or {}
        if ebs.get("VolumeId") and device in volumes and ebs["VolumeId"] != volumes[device]["volume_id"]:
            raise InvalidParameterValue(f"The volume '{ebs['VolumeId']}' is not attached at '{device}'")
        if ebs.get("DeleteOnTermination") is not None:
            changes[device] = bool(ebs["DeleteOnTermination"])
    check_dry_run(params)
    async with db.transaction() as tx:
        fresh = await tx.fetchone("SELECT data FROM ec2_instances WHERE instance_id = ?", (instance["instance_id"],))
        data = instance_store.data_of(fresh)
        root = dict(data.get("root_volume") or {})
        devices = list(data.get("block_devices") or [])
        for device, value in changes.items():
            if device == root_device:
                root["delete_on_termination"] = value
            for entry in devices:
                if entry["device_name"] == device:
                    entry["delete_on_termination"] = value
            if device in volumes:
                await tx.execute("UPDATE ec2_volumes SET delete_on_termination = ? WHERE volume_id = ?",
                                 (int(value), volumes[device]["volume_id"]))
        await instance_store.update_data(tx, instance["instance_id"], root_volume=root, block_devices=devices)
    return {}


__all__ = ["plan_launch", "insert_launch_volumes", "render", "modify_instance_mappings"]
