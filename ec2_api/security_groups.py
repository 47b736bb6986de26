"""CreateSecurityGroup, DeleteSecurityGroup and DescribeSecurityGroups.

A new group has one rule: egress to everywhere (AWS's default); the default group of a VPC also
lets in everything from its own members. A group in use by a network interface, or named by
another group's rule, cannot be deleted (DependencyViolation); a VPC's default group cannot be
deleted at all. The rules themselves are ``ec2_api.security_group_rules``.
"""
from __future__ import annotations

import re
from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, arn, now_us
from ec2_api.errors import (InvalidGroupNotFound, InvalidParameterValue, MissingParameter, check_dry_run,
                            ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.network_common import changed, creation_tags, delete_tags, tags_or_none, write_creation_tags
from ec2_api.security_group_rules import ip_permissions
from ec2_api.vpc import InvalidGroupIdMalformed, bump_generation, network_of, owned_vpc

InvalidGroupDuplicate = ec2_error("InvalidGroup.Duplicate")
InvalidGroupReserved = ec2_error("InvalidGroup.Reserved")
CannotDelete = ec2_error("CannotDelete")
DependencyViolation = ec2_error("DependencyViolation")
SecurityGroupLimitExceeded = ec2_error("SecurityGroupLimitExceeded")
MAX_GROUPS = 2500
_NAME_RE = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+$")


async def owned_group(ctx: Any, group_id: Any, group_name: Any = None) -> Any:
    """The caller's group by id, or by name in the default VPC."""
    network = await network_of(ctx)
    db, account = ctx.app.db, account_of(ctx)
    if group_id:
        row = await db.fetchone("SELECT * FROM ec2_security_groups WHERE group_id = ? AND account_id = ? AND"
                                " region = ?", (group_id, account, ctx.region))
        if row is None:
            if not str(group_id).startswith("sg-"):
                raise InvalidGroupIdMalformed(f'Invalid id: "{group_id}" (expecting "sg-...")')
            raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist")
        return row
    if group_name:
        row = await db.fetchone("SELECT * FROM ec2_security_groups WHERE group_name = ? AND vpc_id = ? AND"
                                " account_id = ?", (group_name, network.vpc["vpc_id"], account))
        if row is None:
            raise InvalidGroupNotFound(f"The security group '{group_name}' does not exist in default VPC "
                                       f"'{network.vpc['vpc_id']}'")
        return row
    raise MissingParameter("The request must contain the parameter groupName or groupId")


async def create_security_group(ctx: Any, params: dict) -> dict:
    name, description = params.get("GroupName"), params.get("Description")
    if not name:
        raise MissingParameter("The request must contain the parameter groupName")
    if description is None or description == "":
        raise MissingParameter("The request must contain the parameter groupDescription")
    if len(name) > 255 or not _NAME_RE.match(name):
        raise InvalidParameterValue(f"Value ({name}) for parameter groupName is invalid. Character sets beyond "
                                    f"ASCII are not supported.")
    if len(description) > 255 or not _NAME_RE.match(description):
        raise InvalidParameterValue(f"Value ({description}) for parameter GroupDescription is invalid. Character "
                                    f"sets beyond ASCII are not supported.")
    if name.lower().startswith("sg-"):
        raise InvalidParameterValue("Group names may not be in the format sg-*.")
    if name == "default":
        raise InvalidGroupReserved("The security group 'default' is reserved")
    if params.get("VpcId"):
        vpc = await owned_vpc(ctx, params["VpcId"])
    else:
        vpc = (await network_of(ctx)).vpc
    tags = creation_tags(params, "security-group")
    check_dry_run(params)
    account = account_of(ctx)
    group_id = ids.new_id("sg")
    async with ctx.app.db.transaction() as tx:
        if await tx.fetchone("SELECT 1 FROM ec2_security_groups WHERE vpc_id = ? AND group_name = ?",
                             (vpc["vpc_id"], name)):
            raise InvalidGroupDuplicate(f"The security group '{name}' already exists for VPC '{vpc['vpc_id']}'")
        count = await tx.fetchone("SELECT COUNT(*) AS n FROM ec2_security_groups WHERE account_id = ? AND region = ?",
                                  (account, ctx.region))
        if count["n"] >= MAX_GROUPS:
            raise SecurityGroupLimitExceeded("You have exceeded the number of VPC security groups allowed per region")
        await tx.execute("INSERT INTO ec2_security_groups (group_id, account_id, region, vpc_id, group_name,"
                         " description, created_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (group_id, account, ctx.region, vpc["vpc_id"], name, description, now_us(ctx)))
        await tx.execute("INSERT INTO net_security_group_rules (rule_id, group_id, account_id, region, is_egress,"
                         " ip_protocol, cidr_ipv4) VALUES (?, ?, ?, ?, 1, '-1', '0.0.0.0/0')",
                         (ids.new_id("sgr"), group_id, account, ctx.region))
        await write_creation_tags(tx, ctx, group_id, "security-group", tags)
    return {"GroupId": group_id, "Tags": tags_or_none(tags),
            "SecurityGroupArn": arn(ctx.region, account, f"security-group/{group_id}")}


async def delete_security_group(ctx: Any, params: dict) -> dict:
    row = await owned_group(ctx, params.get("GroupId"), params.get("GroupName"))
    group_id = row["group_id"]
    if row["group_name"] == "default":
        raise CannotDelete(f'the specified group: "{group_id}" name: "default" cannot be deleted by a user')
    check_dry_run(params)
    async with ctx.app.db.transaction() as tx:
        if await tx.fetchone("SELECT 1 FROM net_interface_groups WHERE group_id = ?", (group_id,)):
            raise DependencyViolation(f"resource {group_id} has a dependent object")
        if await tx.fetchone("SELECT 1 FROM net_security_group_rules WHERE ref_group_id = ? AND group_id != ?",
                             (group_id, group_id)):
            raise DependencyViolation(f"resource {group_id} has a dependent object")
        rules = [r["rule_id"] for r in await tx.fetchall(
            "SELECT rule_id FROM net_security_group_rules WHERE group_id = ?", (group_id,))]
        await tx.execute("DELETE FROM net_security_group_rules WHERE group_id = ?", (group_id,))
        await tx.execute("DELETE FROM ec2_security_groups WHERE group_id = ?", (group_id,))
        await delete_tags(tx, [group_id, *rules])
        await bump_generation(tx)
    changed(ctx)
    return {"Return": True, "GroupId": group_id}


def _render(row: Any, rules: list[Any], tags: dict[str, str]) -> dict:
    return {
        "GroupId": row["group_id"], "GroupName": row["group_name"], "Description": row["description"],
        "OwnerId": row["account_id"], "VpcId": row["vpc_id"],
        "SecurityGroupArn": arn(row["region"], row["account_id"], f"security-group/{row['group_id']}"),
        "IpPermissions": ip_permissions([r for r in rules if not r["is_egress"]], {}),
        "IpPermissionsEgress": ip_permissions([r for r in rules if r["is_egress"]], {}),
        "Tags": tags_or_none(tags),
    }


def _perm_values(permissions: list[dict], what: str) -> list:
    out: list = []
    for p in permissions:
        if what == "protocol":
            out.append(p["IpProtocol"])
        elif what == "from-port":
            out.append(p.get("FromPort"))
        elif what == "to-port":
            out.append(p.get("ToPort"))
        elif what == "cidr":
            out += [r["CidrIp"] for r in p["IpRanges"]]
        elif what == "ipv6-cidr":
            out += [r["CidrIpv6"] for r in p["Ipv6Ranges"]]
        elif what == "prefix-list-id":
            out += [r["PrefixListId"] for r in p["PrefixListIds"]]
        elif what == "group-id":
            out += [u["GroupId"] for u in p["UserIdGroupPairs"]]
        elif what == "user-id":
            out += [u.get("UserId") for u in p["UserIdGroupPairs"]]
        elif what == "group-name":
            out += [u.get("GroupName") for u in p["UserIdGroupPairs"]]
    return out


def _filters(names: dict[str, str]) -> dict:
    fields: dict[str, Any] = {
        "group-id": lambda g: g["GroupId"],
        "group-name": lambda g: g["GroupName"],
        "description": lambda g: g["Description"],
        "vpc-id": lambda g: g["VpcId"],
        "owner-id": lambda g: g["OwnerId"],
    }
    for what in ("protocol", "from-port", "to-port", "cidr", "ipv6-cidr", "prefix-list-id", "group-id", "user-id"):
        fields[f"ip-permission.{what}"] = (lambda w: lambda g: _perm_values(g["IpPermissions"], w))(what)
        fields[f"egress.ip-permission.{what}"] = (lambda w: lambda g: _perm_values(g["IpPermissionsEgress"], w))(what)
    fields["ip-permission.group-name"] = lambda g: [names.get(i) for i in _perm_values(g["IpPermissions"], "group-id")]
    fields["egress.ip-permission.group-name"] = lambda g: [names.get(i) for i in
                                                           _perm_values(g["IpPermissionsEgress"], "group-id")]
    return fields


async def describe_security_groups(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    network = await network_of(ctx)
    account, db = account_of(ctx), ctx.app.db
    rows = await db.fetchall("SELECT * FROM ec2_security_groups WHERE account_id = ? AND region = ?",
                             (account, ctx.region))
    known = {row["group_id"] for row in rows}
    for group_id in params.get("GroupIds") or []:
        if not str(group_id).startswith("sg-"):
            raise InvalidGroupIdMalformed(f"Invalid id: \"{group_id}\" (expecting \"sg-...\")")
        if group_id not in known:
            raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist")
    for name in params.get("GroupNames") or []:
        if not any(row["group_name"] == name and row["vpc_id"] == network.vpc["vpc_id"] for row in rows):
            raise InvalidGroupNotFound(
                f"The security group '{name}' does not exist in default VPC '{network.vpc['vpc_id']}'")
    names = {row["group_id"]: row["group_name"] for row in rows}
    if params.get("GroupIds"):
        rows = [row for row in rows if row["group_id"] in params["GroupIds"]]
    if params.get("GroupNames"):
        rows = [row for row in rows if row["group_name"] in params["GroupNames"]
                and row["vpc_id"] == network.vpc["vpc_id"]]
    rules: dict[str, list] = {}
    for rule in await db.fetchall("SELECT * FROM net_security_group_rules WHERE account_id = ? AND region = ?",
                                  (account, ctx.region)):
        rules.setdefault(rule["group_id"], []).append(rule)
    tags = await tag_store.tags_of(db, account, [row["group_id"] for row in rows])
    items = [_render(row, rules.get(row["group_id"], []), tags[row["group_id"]]) for row in rows]
    items = apply_filters(items, params.get("Filters"), _filters(names), tags=lambda g: tags[g["GroupId"]])
    page, token = paginate(items, lambda g: g["GroupId"], params.get("MaxResults"), params.get("NextToken"))
    return {"SecurityGroups": page, "NextToken": token}
