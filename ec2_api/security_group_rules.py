"""Security group rules: Authorize/RevokeSecurityGroupIngress/Egress, DescribeSecurityGroupRules,
ModifySecurityGroupRules and UpdateSecurityGroupRuleDescriptionsIngress/Egress.

A rule is one row (``sgr-`` id, as DescribeSecurityGroupRules shows them): a direction, a protocol
(``-1`` all, ``tcp``, ``udp``, ``icmp``, ``icmpv6`` or an IP protocol number), a port range (tcp/udp)
or ICMP type and code, and one peer: an IPv4 CIDR, an IPv6 CIDR (stored and shown; the data path is
IPv4), a prefix list, or another security group of the account (its members' addresses). The
IpPermissions of the requests (and the old flat CidrIp/IpProtocol/FromPort/ToPort/
SourceSecurityGroupName parameters) are split into such rules, and DescribeSecurityGroups groups
them back into IpPermissions.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from ec2_api import ids, tag_store
from ec2_api.common import account_of, arn
from ec2_api.errors import (InvalidGroupNotFound, InvalidParameterValue, MissingParameter, check_dry_run,
                            ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.network_common import changed, creation_tags, select_wanted, tags_or_none, write_creation_tags
from ec2_api.vpc import bump_generation, network_of

InvalidPermissionDuplicate = ec2_error("InvalidPermission.Duplicate")
InvalidPermissionNotFound = ec2_error("InvalidPermission.NotFound")
InvalidPermissionMalformed = ec2_error("InvalidPermission.Malformed")
RulesPerSecurityGroupLimitExceeded = ec2_error(
    "RulesPerSecurityGroupLimitExceeded", 400, "The maximum number of rules per security group has been reached.")
InvalidSecurityGroupRuleIdNotFound = ec2_error("InvalidSecurityGroupRuleId.NotFound")
InvalidPrefixListIDNotFound = ec2_error("InvalidPrefixListID.NotFound")
MAX_RULES = 60       # per direction, as AWS's default quota
PROTOCOL_NAMES = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
                  "icmpv6": "icmpv6", "58": "icmpv6", "-1": "-1", "all": "-1"}
PEERS = ("cidr_ipv4", "cidr_ipv6", "prefix_list_id", "ref_group_id")


# -- parsing -----------------------------------------------------------------------------------------

def protocol_of(value: Any) -> str:
    text = str(value if value is not None else "").strip().lower()
    if text in PROTOCOL_NAMES:
        return PROTOCOL_NAMES[text]
    if text.isdigit() and 0 <= int(text) <= 255:
        return text
    raise InvalidParameterValue(f"Invalid value '{value}' for IP protocol. Unknown protocol.")


def ports_of(protocol: str, from_port: Any, to_port: Any) -> tuple[int | None, int | None]:
    if protocol in ("tcp", "udp"):
        if from_port is None or to_port is None:
            raise InvalidParameterValue(f"Invalid value for portRange. Must specify both from and to ports with "
                                        f"TCP/UDP.")
        from_port, to_port = int(from_port), int(to_port)
        if (from_port, to_port) == (-1, -1):
            return 0, 65535
        if not (0 <= from_port <= 65535 and 0 <= to_port <= 65535) or from_port > to_port:
            raise InvalidParameterValue(f"Invalid port range {from_port}-{to_port}.")
        return from_port, to_port
    if protocol in ("icmp", "icmpv6"):
        icmp_type = -1 if from_port is None else int(from_port)
        code = -1 if to_port is None else int(to_port)
        if not -1 <= icmp_type <= 255 or not -1 <= code <= 255:
            raise InvalidParameterValue(f"Invalid value '{from_port}/{to_port}' for ICMP type/code.")
        if icmp_type == -1 and code != -1:
            raise InvalidParameterValue("Invalid ICMP code: a code needs a type.")
        return icmp_type, code
    return None, None


def _cidr(value: Any, version: int) -> str:
    try:
        network = ipaddress.ip_network(str(value), strict=False)
    except ValueError as exc:
        raise InvalidParameterValue(f"CIDR block {value} is malformed") from exc
    if network.version != version or "/" not in str(value):
        raise InvalidParameterValue(f"CIDR block {value} is malformed")
    return str(value)


async def _group_ref(ctx: Any, group: Any, pair: dict) -> dict:
    """A UserIdGroupPair's group: one of the caller's groups in the same VPC."""
    db, account = ctx.app.db, account_of(ctx)
    user = pair.get("UserId")
    if user and user != account:
        raise InvalidGroupNotFound(f"You have specified a security group of another account ({user}); "
                                   f"Nimbo's groups refer to groups of their own account only.")
    if pair.get("GroupId"):
        row = await db.fetchone("SELECT * FROM ec2_security_groups WHERE group_id = ? AND account_id = ? AND"
                                " region = ?", (pair["GroupId"], account, ctx.region))
        if row is None:
            raise InvalidGroupNotFound(f"The security group '{pair['GroupId']}' does not exist")
    elif pair.get("GroupName"):
        row = await db.fetchone("SELECT * FROM ec2_security_groups WHERE group_name = ? AND vpc_id = ? AND"
                                " account_id = ?", (pair["GroupName"], group["vpc_id"], account))
        if row is None:
            raise InvalidGroupNotFound(f"The security group '{pair['GroupName']}' does not exist in VPC "
                                       f"'{group['vpc_id']}'")
    else:
        raise MissingParameter("The request must contain the parameter groupId or groupName of the source group")
    if row["vpc_id"] != group["vpc_id"]:
        raise InvalidParameterValue("You have specified two resources that belong to different networks.")
    return {"ref_group_id": row["group_id"], "ref_user_id": account}


async def rules_of_request(ctx: Any, group: Any, params: dict, *, descriptions: bool = True) -> list[dict]:
    """The rules an Authorize/Revoke/UpdateDescriptions request names (IpPermissions or the flat form)."""
    permissions = list(params.get("IpPermissions") or [])
    flat = any(params.get(k) is not None for k in ("CidrIp", "IpProtocol", "FromPort", "ToPort",
                                                   "SourceSecurityGroupName", "SourceSecurityGroupOwnerId"))
    if flat:
        if permissions:
            raise InvalidParameterValue("The parameter 'ipPermissions' cannot be used with the flat parameters")
        permission: dict[str, Any] = {"IpProtocol": params.get("IpProtocol") or "-1",
                                      "FromPort": params.get("FromPort"), "ToPort": params.get("ToPort")}
        if params.get("CidrIp"):
            permission["IpRanges"] = [{"CidrIp": params["CidrIp"]}]
        if params.get("SourceSecurityGroupName"):
            permission["UserIdGroupPairs"] = [{"GroupName": params["SourceSecurityGroupName"],
                                               "UserId": params.get("SourceSecurityGroupOwnerId")}]
            if params.get("IpProtocol") is None:
                permission.update(IpProtocol="-1")
        if not permission.get("IpRanges") and not permission.get("UserIdGroupPairs"):
            raise MissingParameter("The request must contain the parameter cidrIp or sourceSecurityGroupName")
        permissions = [permission]
    if not permissions:
        raise MissingParameter("The request must contain the parameter ipPermissions")
    rules: list[dict] = []
    for permission in permissions:
        if permission.get("IpProtocol") is None:
            raise MissingParameter("The request must contain the parameter ipProtocol")
        protocol = protocol_of(permission["IpProtocol"])
        from_port, to_port = ports_of(protocol, permission.get("FromPort"), permission.get("ToPort"))
        base = {"ip_protocol": protocol, "from_port": from_port, "to_port": to_port}
        peers: list[dict] = []
        for item in permission.get("IpRanges") or []:
            peers.append({"cidr_ipv4": _cidr(item.get("CidrIp"), 4), "description": item.get("Description")})
        for item in permission.get("Ipv6Ranges") or []:
            peers.append({"cidr_ipv6": _cidr(item.get("CidrIpv6"), 6), "description": item.get("Description")})
        for item in permission.get("PrefixListIds") or []:
            raise InvalidPrefixListIDNotFound(f"The prefix list '{item.get('PrefixListId')}' does not exist "
                                              f"(Nimbo has no managed prefix lists yet)")
        for item in permission.get("UserIdGroupPairs") or []:
            peers.append({**await _group_ref(ctx, group, item), "description": item.get("Description")})
        if not peers:
            raise MissingParameter("The request must contain at least one of ipRanges, ipv6Ranges, prefixListIds "
                                   "or groups in each permission")
        for peer in peers:
            if not descriptions:
                peer.pop("description", None)
            if peer.get("description") is not None and len(peer["description"]) > 255:
                raise InvalidParameterValue("Rule descriptions are at most 255 characters")
            rules.append({**base, **peer})
    return rules


def same_rule(a: Any, b: Any) -> bool:
    keys = ("ip_protocol", "from_port", "to_port") + PEERS
    return all((a[k] if k in _keys(a) else None) == (b[k] if k in _keys(b) else None) for k in keys)


def _keys(row: Any) -> Any:
    return row.keys() if hasattr(row, "keys") else row


def _normal_cidr(value: str | None) -> str | None:
    return str(ipaddress.ip_network(value, strict=False)) if value else None


def describe_rule(rule: Any) -> str:
    peer = rule["cidr_ipv4"] or rule["cidr_ipv6"] or rule["prefix_list_id"] or rule["ref_group_id"]
    return (f"peer: {peer}, {str(rule['ip_protocol']).upper() if rule['ip_protocol'] != '-1' else 'ALL'}, "
            f"from port: {rule['from_port']}, to port: {rule['to_port']}, ALLOW")


# -- rendering ---------------------------------------------------------------------------------------

def rule_item(row: Any, region: str, tags: dict[str, str] | None = None) -> dict:
    item: dict[str, Any] = {
        "SecurityGroupRuleId": row["rule_id"], "GroupId": row["group_id"], "GroupOwnerId": row["account_id"],
        "IsEgress": bool(row["is_egress"]), "IpProtocol": row["ip_protocol"],
        "FromPort": row["from_port"] if row["from_port"] is not None else -1,
        "ToPort": row["to_port"] if row["to_port"] is not None else -1,
        "SecurityGroupRuleArn": arn(region, row["account_id"], f"security-group-rule/{row['rule_id']}"),
        "Tags": tags_or_none(tags or {}) or [],
    }
    for column, member in (("cidr_ipv4", "CidrIpv4"), ("cidr_ipv6", "CidrIpv6"), ("prefix_list_id", "PrefixListId")):
        if row[column]:
            item[member] = row[column]
    if row["ref_group_id"]:
        item["ReferencedGroupInfo"] = {"GroupId": row["ref_group_id"], "UserId": row["ref_user_id"]}
    if row["description"] is not None:
        item["Description"] = row["description"]
    return item


def ip_permissions(rows: list[Any], names: dict[str, str]) -> list[dict]:
    """Rules grouped into IpPermissions as DescribeSecurityGroups shows them."""
    grouped: dict[tuple, dict] = {}
    for row in sorted(rows, key=lambda r: (r["seq"], r["rule_id"])):
        key = (row["ip_protocol"], row["from_port"], row["to_port"])
        permission = grouped.get(key)
        if permission is None:
            permission = {"IpProtocol": row["ip_protocol"], "IpRanges": [], "Ipv6Ranges": [],
                          "PrefixListIds": [], "UserIdGroupPairs": []}
            if row["from_port"] is not None:
                permission["FromPort"], permission["ToPort"] = row["from_port"], row["to_port"]
            grouped[key] = permission
        description = {"Description": row["description"]} if row["description"] is not None else {}
        if row["cidr_ipv4"]:
            permission["IpRanges"].append({"CidrIp": row["cidr_ipv4"], **description})
        elif row["cidr_ipv6"]:
            permission["Ipv6Ranges"].append({"CidrIpv6": row["cidr_ipv6"], **description})
        elif row["prefix_list_id"]:
            permission["PrefixListIds"].append({"PrefixListId": row["prefix_list_id"], **description})
        elif row["ref_group_id"]:
            permission["UserIdGroupPairs"].append({"GroupId": row["ref_group_id"], "UserId": row["ref_user_id"],
                                                   **description})
    return list(grouped.values())


def permission_of(rule: dict) -> dict:
    permission: dict[str, Any] = {"IpProtocol": rule["ip_protocol"]}
    if rule.get("from_port") is not None:
        permission["FromPort"], permission["ToPort"] = rule["from_port"], rule["to_port"]
    if rule.get("cidr_ipv4"):
        permission["IpRanges"] = [{"CidrIp": rule["cidr_ipv4"]}]
    if rule.get("cidr_ipv6"):
        permission["Ipv6Ranges"] = [{"CidrIpv6": rule["cidr_ipv6"]}]
    if rule.get("ref_group_id"):
        permission["UserIdGroupPairs"] = [{"GroupId": rule["ref_group_id"], "UserId": rule["ref_user_id"]}]
    return permission


# -- the actions --------------------------------------------------------------------------------------

async def _group(ctx: Any, params: dict) -> Any:
    from ec2_api.security_groups import owned_group  # noqa: PLC0415
    return await owned_group(ctx, params.get("GroupId"), params.get("GroupName"))


async def _authorize(ctx: Any, params: dict, egress: bool) -> dict:
    group = await _group(ctx, params)
    if egress and params.get("GroupName") and not params.get("GroupId"):
        raise MissingParameter("The request must contain the parameter groupId")
    rules = await rules_of_request(ctx, group, params)
    tags = creation_tags(params, "security-group-rule")
    check_dry_run(params)
    db = ctx.app.db
    made = []
    async with db.transaction() as tx:
        existing = await tx.fetchall("SELECT * FROM net_security_group_rules WHERE group_id = ? AND is_egress = ?",
                                     (group["group_id"], int(egress)))
        for index, rule in enumerate(rules):
            if any(same_rule(rule, other) for other in list(existing) + rules[:index]):
                raise InvalidPermissionDuplicate(f'the specified rule "{describe_rule(_full(rule))}" already exists')
        if len(existing) + len(rules) > MAX_RULES:
            raise RulesPerSecurityGroupLimitExceeded()
        seq = max([r["seq"] for r in existing] + [0]) + 1
        for rule in rules:
            rule_id = ids.new_id("sgr")
            full = _full(rule)
            await tx.execute(
                "INSERT INTO net_security_group_rules (rule_id, group_id, account_id, region, is_egress, ip_protocol,"
                " from_port, to_port, cidr_ipv4, cidr_ipv6, prefix_list_id, ref_group_id, ref_user_id, description,"
                " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rule_id, group["group_id"], group["account_id"], group["region"], int(egress), full["ip_protocol"],
                 full["from_port"], full["to_port"], full["cidr_ipv4"], full["cidr_ipv6"], full["prefix_list_id"],
                 full["ref_group_id"], full["ref_user_id"], full["description"], seq))
            await write_creation_tags(tx, ctx, rule_id, "security-group-rule", tags)
            made.append(await tx.fetchone("SELECT * FROM net_security_group_rules WHERE rule_id = ?", (rule_id,)))
        await bump_generation(tx)
    changed(ctx)
    return {"Return": True, "SecurityGroupRules": [rule_item(r, ctx.region, tags) for r in made]}


def _full(rule: dict) -> dict:
    return {"ip_protocol": rule["ip_protocol"], "from_port": rule.get("from_port"), "to_port": rule.get("to_port"),
            **{k: rule.get(k) for k in PEERS}, "ref_user_id": rule.get("ref_user_id"),
            "description": rule.get("description")}


async def authorize_security_group_ingress(ctx: Any, params: dict) -> dict:
    return await _authorize(ctx, params, egress=False)


async def authorize_security_group_egress(ctx: Any, params: dict) -> dict:
    return await _authorize(ctx, params, egress=True)


async def _revoke(ctx: Any, params: dict, egress: bool) -> dict:
    group = await _group(ctx, params)
    db = ctx.app.db
    existing = await db.fetchall("SELECT * FROM net_security_group_rules WHERE group_id = ? AND is_egress = ?",
                                 (group["group_id"], int(egress)))
    chosen: list[Any] = []
    unknown: list[dict] = []
    rule_ids = params.get("SecurityGroupRuleIds") or []
    if rule_ids:
        by_id = {r["rule_id"]: r for r in existing}
        for rule_id in rule_ids:
            if rule_id not in by_id:
                raise InvalidSecurityGroupRuleIdNotFound(
                    f"The security group rule ID '{rule_id}' does not exist in this security group")
            chosen.append(by_id[rule_id])
    if params.get("IpPermissions") or any(params.get(k) is not None for k in ("CidrIp", "IpProtocol",
                                                                              "SourceSecurityGroupName")):
        for rule in await rules_of_request(ctx, group, params, descriptions=False):
            match = next((r for r in existing if same_rule(rule, r)), None)
            if match is None:
                unknown.append(permission_of(rule))
            elif match not in chosen:
                chosen.append(match)
    if not rule_ids and not chosen and not unknown:
        raise MissingParameter("The request must contain the parameter ipPermissions or securityGroupRuleIds")
    # AWS: in a non-default VPC a rule that does not match is an error and nothing is revoked; in
    # the default VPC the others are revoked and the unmatched ones listed as unknown.
    vpc = await db.fetchone("SELECT is_default FROM ec2_vpcs WHERE vpc_id = ?", (group["vpc_id"],))
    if unknown and not (vpc and vpc["is_default"]):
        raise InvalidPermissionNotFound("The specified rule does not exist in this security group.")
    check_dry_run(params)
    if chosen:
        async with db.transaction() as tx:
            for row in chosen:
                await tx.execute("DELETE FROM net_security_group_rules WHERE rule_id = ?", (row["rule_id"],))
                await tx.execute("DELETE FROM ec2_tags WHERE resource_id = ?", (row["rule_id"],))
            await bump_generation(tx)
        changed(ctx)
    out: dict[str, Any] = {"Return": True, "RevokedSecurityGroupRules": [{
        "SecurityGroupRuleId": r["rule_id"], "GroupId": r["group_id"], "IsEgress": bool(r["is_egress"]),
        "IpProtocol": r["ip_protocol"],
        "FromPort": r["from_port"] if r["from_port"] is not None else -1,
        "ToPort": r["to_port"] if r["to_port"] is not None else -1,
        **({"CidrIpv4": r["cidr_ipv4"]} if r["cidr_ipv4"] else {}),
        **({"CidrIpv6": r["cidr_ipv6"]} if r["cidr_ipv6"] else {}),
        **({"ReferencedSecurityGroupId": r["ref_group_id"]} if r["ref_group_id"] else {}),
        **({"Description": r["description"]} if r["description"] is not None else {})} for r in chosen]}
    if unknown:
        out["UnknownIpPermissions"] = unknown
    return out


async def revoke_security_group_ingress(ctx: Any, params: dict) -> dict:
    return await _revoke(ctx, params, egress=False)


async def revoke_security_group_egress(ctx: Any, params: dict) -> dict:
    return await _revoke(ctx, params, egress=True)


async def describe_security_group_rules(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    await network_of(ctx)
    account, db = account_of(ctx), ctx.app.db
    rows = await db.fetchall("SELECT * FROM net_security_group_rules WHERE account_id = ? AND region = ?",
                             (account, ctx.region))
    rows = select_wanted(rows, "rule_id", params.get("SecurityGroupRuleIds"), InvalidSecurityGroupRuleIdNotFound,
                         "security group rule")
    tags = await tag_store.tags_of(db, account, [r["rule_id"] for r in rows])
    items = [rule_item(r, ctx.region, tags[r["rule_id"]]) for r in rows]
    items = apply_filters(items, params.get("Filters"), {
        "group-id": lambda r: r["GroupId"],
        "security-group-rule-id": lambda r: r["SecurityGroupRuleId"],
    }, tags=lambda r: tags[r["SecurityGroupRuleId"]])
    page, token = paginate(items, lambda r: r["SecurityGroupRuleId"], params.get("MaxResults"),
                           params.get("NextToken"))
    return {"SecurityGroupRules": page, "NextToken": token}


async def modify_security_group_rules(ctx: Any, params: dict) -> dict:
    group = await _group(ctx, {"GroupId": params.get("GroupId")})
    updates = params.get("SecurityGroupRules") or []
    if not updates:
        raise MissingParameter("The request must contain the parameter SecurityGroupRules")
    db = ctx.app.db
    rows = {r["rule_id"]: r for r in await db.fetchall(
        "SELECT * FROM net_security_group_rules WHERE group_id = ?", (group["group_id"],))}
    changes: list[tuple[str, dict]] = []
    for update in updates:
        rule_id = update.get("SecurityGroupRuleId")
        if rule_id not in rows:
            raise InvalidSecurityGroupRuleIdNotFound(
                f"The security group rule ID '{rule_id}' does not exist in this security group")
        request = update.get("SecurityGroupRule") or {}
        if request.get("IpProtocol") is None:
            raise MissingParameter("The request must contain the parameter SecurityGroupRule.IpProtocol")
        permission: dict[str, Any] = {"IpProtocol": request["IpProtocol"], "FromPort": request.get("FromPort"),
                                      "ToPort": request.get("ToPort")}
        if request.get("CidrIpv4"):
            permission["IpRanges"] = [{"CidrIp": request["CidrIpv4"], "Description": request.get("Description")}]
        elif request.get("CidrIpv6"):
            permission["Ipv6Ranges"] = [{"CidrIpv6": request["CidrIpv6"], "Description": request.get("Description")}]
        elif request.get("PrefixListId"):
            permission["PrefixListIds"] = [{"PrefixListId": request["PrefixListId"]}]
        elif request.get("ReferencedGroupId"):
            permission["UserIdGroupPairs"] = [{"GroupId": request["ReferencedGroupId"],
                                               "Description": request.get("Description")}]
        (rule,) = await rules_of_request(ctx, group, {"IpPermissions": [permission]})
        changes.append((rule_id, _full(rule)))
    check_dry_run(params)
    async with db.transaction() as tx:
        for rule_id, rule in changes:
            others = await tx.fetchall("SELECT * FROM net_security_group_rules WHERE group_id = ? AND is_egress = ?"
                                       " AND rule_id != ?", (group["group_id"], rows[rule_id]["is_egress"], rule_id))
            if any(same_rule(rule, other) for other in others):
                raise InvalidPermissionDuplicate(f'the specified rule "{describe_rule(rule)}" already exists')
            await tx.execute(
                "UPDATE net_security_group_rules SET ip_protocol = ?, from_port = ?, to_port = ?, cidr_ipv4 = ?,"
                " cidr_ipv6 = ?, prefix_list_id = ?, ref_group_id = ?, ref_user_id = ?, description = ?"
                " WHERE rule_id = ?", (rule["ip_protocol"], rule["from_port"], rule["to_port"], rule["cidr_ipv4"],
                                       rule["cidr_ipv6"], rule["prefix_list_id"], rule["ref_group_id"],
                                       rule["ref_user_id"], rule["description"], rule_id))
        await bump_generation(tx)
    changed(ctx)
    return {"Return": True}


async def _update_descriptions(ctx: Any, params: dict, egress: bool) -> dict:
    group = await _group(ctx, params)
    db = ctx.app.db
    existing = await db.fetchall("SELECT * FROM net_security_group_rules WHERE group_id = ? AND is_egress = ?",
                                 (group["group_id"], int(egress)))
    changes: list[tuple[str, str | None]] = []
    for item in params.get("SecurityGroupRuleDescriptions") or []:
        match = next((r for r in existing if r["rule_id"] == item.get("SecurityGroupRuleId")), None)
        if match is None:
            raise InvalidSecurityGroupRuleIdNotFound(
                f"The security group rule ID '{item.get('SecurityGroupRuleId')}' does not exist")
        changes.append((match["rule_id"], item.get("Description")))
    if params.get("IpPermissions"):
        for rule in await rules_of_request(ctx, group, {"IpPermissions": params["IpPermissions"]}):
            match = next((r for r in existing if same_rule(rule, r)), None)
            if match is None:
                raise InvalidPermissionNotFound("The specified rule does not exist in this security group.")
            changes.append((match["rule_id"], rule.get("description")))
    if not changes:
        raise MissingParameter("The request must contain the parameter IpPermissions or SecurityGroupRuleDescriptions")
    check_dry_run(params)
    async with db.transaction() as tx:
        for rule_id, description in changes:
            await tx.execute("UPDATE net_security_group_rules SET description = ? WHERE rule_id = ?",
                             (description, rule_id))
    return {"Return": True}


async def update_security_group_rule_descriptions_ingress(ctx: Any, params: dict) -> dict:
    return await _update_descriptions(ctx, params, egress=False)


async def update_security_group_rule_descriptions_egress(ctx: Any, params: dict) -> dict:
    return await _update_descriptions(ctx, params, egress=True)


def normal_cidr(value: str | None) -> str | None:
    return _normal_cidr(value)
