"""DescribeNetworkAcls: each VPC's default network ACL, associated with every subnet of the VPC,
allowing all traffic both ways (rule 100) before the final deny (rule 32767), as AWS shows it.
Custom network ACLs are not offered yet, so the data path never filters on them."""
from __future__ import annotations

import hashlib
from typing import Any

from ec2_api import tag_store
from ec2_api.common import account_of
from ec2_api.errors import check_dry_run, ec2_error
from ec2_api.filters import apply_filters, paginate
from ec2_api.network_common import select_wanted, tags_or_none
from ec2_api.vpc import network_of

InvalidNetworkAclIDNotFound = ec2_error("InvalidNetworkAclID.NotFound")


def association_id(subnet_id: str) -> str:
    return "aclassoc-" + hashlib.sha256(subnet_id.encode()).hexdigest()[:17]


def _entries() -> list[dict]:
    entries = []
    for egress in (True, False):
        entries.append({"CidrBlock": "0.0.0.0/0", "Egress": egress, "Protocol": "-1", "RuleAction": "allow",
                        "RuleNumber": 100})
        entries.append({"CidrBlock": "0.0.0.0/0", "Egress": egress, "Protocol": "-1", "RuleAction": "deny",
                        "RuleNumber": 32767})
    return entries


async def describe_network_acls(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    await network_of(ctx)
    account, db = account_of(ctx), ctx.app.db
    rows = await db.fetchall("SELECT * FROM net_network_acls WHERE account_id = ? AND region = ?",
                             (account, ctx.region))
    rows = select_wanted(rows, "network_acl_id", params.get("NetworkAclIds"), InvalidNetworkAclIDNotFound,
                         "networkAcl")
    subnets = await db.fetchall("SELECT subnet_id, vpc_id FROM ec2_subnets WHERE account_id = ? AND region = ?",
                                (account, ctx.region))
    tags = await tag_store.tags_of(db, account, [r["network_acl_id"] for r in rows])
    items = [{
        "NetworkAclId": r["network_acl_id"], "VpcId": r["vpc_id"], "OwnerId": r["account_id"],
        "IsDefault": bool(r["is_default"]), "Entries": _entries(),
        "Associations": [{"NetworkAclAssociationId": association_id(s["subnet_id"]),
                          "NetworkAclId": r["network_acl_id"], "SubnetId": s["subnet_id"]}
                         for s in sorted(subnets, key=lambda s: s["subnet_id"]) if s["vpc_id"] == r["vpc_id"]],
        "Tags": tags_or_none(tags[r["network_acl_id"]]),
    } for r in rows]
    items = apply_filters(items, params.get("Filters"), {
        "network-acl-id": lambda a: a["NetworkAclId"],
        "vpc-id": lambda a: a["VpcId"],
        "owner-id": lambda a: a["OwnerId"],
        "default": lambda a: a["IsDefault"],
        "association.association-id": lambda a: [x["NetworkAclAssociationId"] for x in a["Associations"]],
        "association.network-acl-id": lambda a: [x["NetworkAclId"] for x in a["Associations"]],
        "association.subnet-id": lambda a: [x["SubnetId"] for x in a["Associations"]],
        "entry.cidr": lambda a: [e["CidrBlock"] for e in a["Entries"]],
        "entry.egress": lambda a: [e["Egress"] for e in a["Entries"]],
        "entry.protocol": lambda a: [e["Protocol"] for e in a["Entries"]],
        "entry.rule-action": lambda a: [e["RuleAction"] for e in a["Entries"]],
        "entry.rule-number": lambda a: [e["RuleNumber"] for e in a["Entries"]],
        "entry.icmp.code": lambda a: None,
        "entry.icmp.type": lambda a: None,
        "entry.port-range.from": lambda a: None,
        "entry.port-range.to": lambda a: None,
        "entry.ipv6-cidr": lambda a: None,
    }, tags=lambda a: tags[a["NetworkAclId"]])
    page, token = paginate(items, lambda a: a["NetworkAclId"], params.get("MaxResults"), params.get("NextToken"))
    return {"NetworkAcls": page, "NextToken": token}
