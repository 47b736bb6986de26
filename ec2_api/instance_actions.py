"""StartInstances, StopInstances, RebootInstances, TerminateInstances, GetConsoleOutput,
Describe/ModifyInstanceAttribute and ModifyInstanceMetadataOptions.

A request is checked for every instance it names before anything changes (EC2 fails the whole
call); the state change is recorded at once and the driver's work is handed to the lifecycle.
"""
from __future__ import annotations

import base64
from typing import Any

from ec2_api import instance_network, instance_store, instance_types, network_common, vpc
from ec2_api.common import account_of, gmt, now_us
from ec2_api.errors import (IncorrectInstanceState, InsufficientInstanceCapacity, InvalidParameterCombination,
                            InvalidParameterValue, MissingParameter, OperationNotPermitted,
                            UnsupportedOperation, check_dry_run)
from ec2_api.instance_store import USER_SHUTDOWN, change_state, data_of, state_dict
from ec2_api.instances import decode_user_data, metadata_options
from ec2_api.lifecycle import capacity_in_use, host_capacity


async def _owned(ctx: Any, params: dict) -> list[Any]:
    wanted = params.get("InstanceIds") or []
    if not wanted:
        raise MissingParameter("The request must contain the parameter InstanceId")
    return await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, wanted, now_us(ctx))


def _change(instance_id: str, previous: str, current: str) -> dict:
    return {"InstanceId": instance_id, "PreviousState": state_dict(previous), "CurrentState": state_dict(current)}


async def start_instances(ctx: Any, params: dict) -> dict:
    rows = await _owned(ctx, params)
    for row in rows:
        if row["state"] in ("stopping", "shutting-down", "terminated"):
            raise IncorrectInstanceState(
                f"The instance '{row['instance_id']}' is not in a state from which it can be started.")
    check_dry_run(params)
    at = now_us(ctx)
    results, started = [], []
    async with ctx.app.db.transaction() as tx:
        to_start = [row for row in rows if row["state"] == "stopped"]
        need_vcpus = sum(int(data_of(r)["vcpus"]) for r in to_start)
        need_memory = sum(int(data_of(r)["memory_mib"]) for r in to_start)
        host_vcpus, host_memory = host_capacity(ctx.app.config)
        used_vcpus, used_memory = await capacity_in_use(tx)
        if used_vcpus + need_vcpus > host_vcpus or used_memory + need_memory > host_memory:
            raise InsufficientInstanceCapacity(
                "We currently do not have sufficient capacity on this Nimbo host to start the instances.")
        for row in rows:
            change = None
            if row["state"] == "stopped":
                change = await change_state(ctx.app.db, row["instance_id"], "pending", at, from_states=("stopped",),
                                            reason=instance_store.PENDING_REASON, transition_reason="",
                                            updates={"launch_time_us": at}, tx=tx)
            if change is not None:
                started.append(row["instance_id"])
                results.append(_change(row["instance_id"], change.previous, change.current))
            else:
                results.append(_change(row["instance_id"], row["state"], row["state"]))
    for instance_id in started:
        ctx.state.boot(instance_id)
    return {"StartingInstances": results}


async def stop_instances(ctx: Any, params: dict) -> dict:
    rows = await _owned(ctx, params)
    if params.get("Hibernate"):
        raise UnsupportedOperation("Nimbo instances do not support hibernation.")
    for row in rows:
        if row["disable_api_stop"]:
            raise OperationNotPermitted(
                f"The instance '{row['instance_id']}' may not be stopped. Modify its 'disableApiStop' "
                f"instance attribute and try again.")
        if row["state"] in ("pending", "shutting-down", "terminated"):
            raise IncorrectInstanceState(
                f"The instance '{row['instance_id']}' is not in a state from which it can be stopped.")
    check_dry_run(params)
    force = bool(params.get("Force"))
    at = now_us(ctx)
    results, stopping = [], []
    for row in rows:
        change = await change_state(ctx.app.db, row["instance_id"], "stopping", at, from_states=("running",),
                                    reason=USER_SHUTDOWN, transition_reason=f"User initiated ({gmt(at)})")
        if change is not None:
            stopping.append(row["instance_id"])
            results.append(_change(row["instance_id"], change.previous, change.current))
        else:
            results.append(_change(row["instance_id"], row["state"], row["state"]))
            if row["state"] == "stopping" and force:
                stopping.append(row["instance_id"])
    for instance_id in stopping:
        ctx.state.stop(instance_id, force=force)
    return {"StoppingInstances": results}


async def reboot_instances(ctx: Any, params: dict) -> dict:
    rows = await _owned(ctx, params)
    for row in rows:
        if row["state"] in ("shutting-down", "terminated", "stopped", "stopping"):
            raise IncorrectInstanceState(f"The instance '{row['instance_id']}' is not in a state from which "
                                         f"it can be rebooted.")
    check_dry_run(params)
    for row in rows:
        if row["state"] == "running":
            ctx.state.reboot(row["instance_id"])
    return {}


async def terminate_instances(ctx: Any, params: dict) -> dict:
    rows = await _owned(ctx, params)
    for row in rows:
        if row["disable_api_termination"] and row["state"] != "terminated":
            raise OperationNotPermitted(
                f"The instance '{row['instance_id']}' may not be terminated. Modify its "
                f"'disableApiTermination' instance attribute and try again.")
    check_dry_run(params)
    at = now_us(ctx)
    results = []
    for row in rows:
        change = await change_state(ctx.app.db, row["instance_id"], "shutting-down", at,
                                    from_states=("pending", "running", "stopping", "stopped"),
                                    reason=USER_SHUTDOWN, transition_reason=f"User initiated ({gmt(at)})")
        if change is None:
            results.append(_change(row["instance_id"], row["state"], row["state"]))
            continue
        results.append(_change(row["instance_id"], change.previous, change.current))
        if change.previous == "stopping":
            ctx.state.stop(row["instance_id"], force=True)   # do not wait for a graceful stop
        ctx.state.terminate(row["instance_id"])
    return {"TerminatingInstances": results}


async def get_console_output(ctx: Any, params: dict) -> dict:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    (row,) = await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, [instance_id], now_us(ctx))
    check_dry_run(params)
    output = await ctx.state.console_output(instance_id)
    return {"InstanceId": instance_id, "Timestamp": ctx.now(),
            "Output": base64.b64encode(output[-64 * 1024:]).decode() if output else None}


# -- attributes ---------------------------------------------------------------------------------------

_DESCRIBABLE = {"instanceType", "kernel", "ramdisk", "userData", "disableApiTermination",
                "instanceInitiatedShutdownBehavior", "rootDeviceName", "blockDeviceMapping", "productCodes",
                "sourceDestCheck", "groupSet", "ebsOptimized", "sriovNetSupport", "enaSupport",
                "enclaveOptions", "disableApiStop"}


async def describe_instance_attribute(ctx: Any, params: dict) -> dict:
    attribute = params.get("Attribute")
    if attribute not in _DESCRIBABLE:
        raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    (row,) = await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, [instance_id], now_us(ctx))
    check_dry_run(params)
    data = data_of(row)
    out: dict[str, Any] = {"InstanceId": instance_id}
    if attribute == "instanceType":
        out["InstanceType"] = {"Value": row["instance_type"]}
    elif attribute == "kernel":
        out["KernelId"] = {"Value": data["kernel_id"]} if data.get("kernel_id") else {}
    elif attribute == "ramdisk":
        out["RamdiskId"] = {"Value": data["ramdisk_id"]} if data.get("ramdisk_id") else {}
    elif attribute == "userData":
        out["UserData"] = {"Value": row["user_data"]} if row["user_data"] else {}
    elif attribute == "disableApiTermination":
        out["DisableApiTermination"] = {"Value": bool(row["disable_api_termination"])}
    elif attribute == "disableApiStop":
        out["DisableApiStop"] = {"Value": bool(row["disable_api_stop"])}
    elif attribute == "instanceInitiatedShutdownBehavior":
        out["InstanceInitiatedShutdownBehavior"] = {"Value": row["shutdown_behavior"]}
    elif attribute == "rootDeviceName":
        out["RootDeviceName"] = {"Value": data.get("root_device_name", "/dev/xvda")}
    elif attribute == "blockDeviceMapping":
        from ec2_api.instances import render_instance  # noqa: PLC0415
        out["BlockDeviceMappings"] = render_instance(row, {})["BlockDeviceMappings"]
    elif attribute == "productCodes":
        out["ProductCodes"] = []
    elif attribute == "sourceDestCheck":
        out["SourceDestCheck"] = {"Value": data.get("source_dest_check", True)}
    elif attribute == "groupSet":
        out["Groups"] = data.get("security_groups") or []
    elif attribute == "ebsOptimized":
        out["EbsOptimized"] = {"Value": bool(data.get("ebs_optimized"))}
    elif attribute == "sriovNetSupport":
        out["SriovNetSupport"] = {"Value": "simple"}
    elif attribute == "enaSupport":
        out["EnaSupport"] = {"Value": True}
    elif attribute == "enclaveOptions":
        out["EnclaveOptions"] = {"Enabled": False}
    return out


_STOPPED_ONLY = {"instanceType", "userData", "kernel", "ramdisk", "ebsOptimized", "enaSupport", "sriovNetSupport"}
_STRUCT_MEMBERS = {"InstanceType": "instanceType", "UserData": "userData", "DisableApiTermination":
                   "disableApiTermination", "DisableApiStop": "disableApiStop",
                   "InstanceInitiatedShutdownBehavior": "instanceInitiatedShutdownBehavior",
                   "SourceDestCheck": "sourceDestCheck", "EbsOptimized": "ebsOptimized", "EnaSupport": "enaSupport",
                   "SriovNetSupport": "sriovNetSupport", "Kernel": "kernel", "Ramdisk": "ramdisk",
                   "Groups": "groupSet", "BlockDeviceMappings": "blockDeviceMapping"}


def _requested_change(params: dict) -> tuple[str, Any]:
    """(attribute, value) of a ModifyInstanceAttribute; exactly one attribute per call."""
    found = [(name, params[member]) for member, name in _STRUCT_MEMBERS.items() if params.get(member) is not None]
    if params.get("Attribute"):
        attribute = params["Attribute"]
        if attribute not in _DESCRIBABLE:
            raise InvalidParameterValue(f"Value ({attribute}) for parameter attribute is invalid. Unknown attribute.")
        if params.get("Value") is not None:
            found.append((attribute, {"Value": params["Value"]}))
    if not found:
        raise MissingParameter("The request must contain an attribute to modify")
    if len(found) > 1:
        raise InvalidParameterCombination("Only one attribute can be modified at a time")
    return found[0]


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise InvalidParameterValue(f"Invalid boolean value: {value}")
        return value.lower() == "true"
    return bool(value)


async def modify_instance_attribute(ctx: Any, params: dict) -> dict:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    (row,) = await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, [instance_id], now_us(ctx))
    attribute, value = _requested_change(params)
    if attribute in ("groupSet", "sourceDestCheck") and row["state"] != "terminated":
        return await instance_network.modify_instance_network_attribute(ctx, row, attribute, value, params)
    if attribute in _STOPPED_ONLY and row["state"] != "stopped":
        raise IncorrectInstanceState(f"The instance '{instance_id}' is not in the 'stopped' state.")
    if row["state"] == "terminated":
        raise IncorrectInstanceState(f"The instance '{instance_id}' is terminated.")
    columns: dict[str, Any] = {}
    data_changes: dict[str, Any] = {}
    inner = value.get("Value") if isinstance(value, dict) else None
    if attribute == "instanceType":
        itype = instance_types.lookup(ctx.app.config, inner)
        columns["instance_type"] = itype.name
        data_changes.update(vcpus=itype.vcpus, memory_mib=itype.memory_mib, cores=itype.core_count,
                            threads_per_core=itype.threads)
    elif attribute == "userData":
        if isinstance(inner, (bytes, bytearray)):
            raw = bytes(inner)
            columns["user_data"] = base64.b64encode(raw).decode() if raw else None
        else:
            columns["user_data"] = decode_user_data(inner)
        if columns["user_data"] and len(base64.b64decode(columns["user_data"])) > 16 * 1024:
            raise InvalidParameterValue("User data is limited to 16384 bytes")
    elif attribute == "disableApiTermination":
        columns["disable_api_termination"] = int(_bool(inner))
    elif attribute == "disableApiStop":
        columns["disable_api_stop"] = int(_bool(inner))
    elif attribute == "instanceInitiatedShutdownBehavior":
        if inner not in ("stop", "terminate"):
            raise InvalidParameterValue(f"Value ({inner}) for parameter instanceInitiatedShutdownBehavior is invalid.")
        columns["shutdown_behavior"] = inner
    elif attribute == "sourceDestCheck":
        data_changes["source_dest_check"] = _bool(inner)
    elif attribute == "ebsOptimized":
        data_changes["ebs_optimized"] = _bool(inner)
    elif attribute == "groupSet":
        group_ids = value if isinstance(value, list) else [inner]
        network = await vpc.network_of(ctx)
        data_changes["security_groups"] = await vpc.resolve_security_groups(ctx, network, group_ids, [])
    elif attribute == "blockDeviceMapping":
        from ec2_api.block_device_mappings import modify_instance_mappings  # noqa: PLC0415
        return await modify_instance_mappings(ctx, row, value, params)
    else:
        raise UnsupportedOperation(f"Nimbo cannot modify the instance attribute '{attribute}'.")
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        if columns:
            assignments = ", ".join(f"{k} = ?" for k in columns)
            await tx.execute(f"UPDATE ec2_instances SET {assignments} WHERE instance_id = ?",
                             (*columns.values(), instance_id))
        if data_changes:
            await instance_store.update_data(tx, instance_id, **data_changes)
    return {}


async def modify_instance_metadata_options(ctx: Any, params: dict) -> dict:
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    (row,) = await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, [instance_id], now_us(ctx))
    if row["state"] in ("shutting-down", "terminated"):
        raise IncorrectInstanceState(f"The instance '{instance_id}' is not in a valid state for this operation.")
    options = metadata_options(params, data_of(row).get("metadata_options"))
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        await instance_store.update_data(tx, instance_id, metadata_options=options)
        await vpc.bump_generation(tx)   # the data path's metadata relay follows HttpEndpoint/hop limit
    network_common.changed(ctx)
    return {"InstanceId": instance_id, "InstanceMetadataOptions": {"State": "pending", **options}}


__all__ = ["start_instances", "stop_instances", "reboot_instances", "terminate_instances", "get_console_output",
           "describe_instance_attribute", "modify_instance_attribute", "modify_instance_metadata_options"]
