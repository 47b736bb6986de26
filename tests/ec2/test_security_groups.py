"""Security groups and their rules on the fake driver: the flat and IpPermissions forms,
duplicates, limits, revokes (by permission and by rule id), DescribeSecurityGroupRules,
ModifySecurityGroupRules, rule descriptions, deletion rules, and what the data path gets."""
from __future__ import annotations

import pytest

from ec2_api import errors
from ec2_api.security_group_rules import (authorize_security_group_egress, authorize_security_group_ingress,
                                          describe_security_group_rules, modify_security_group_rules,
                                          revoke_security_group_egress, revoke_security_group_ingress,
                                          update_security_group_rule_descriptions_ingress)
from ec2_api.security_groups import create_security_group, delete_security_group, describe_security_groups
from ec2_api.vpcs import create_vpc
from tests.ec2.helpers import wire
from tests.ec2.network_env import ALICE, net  # noqa: F401 (fixture)

SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


async def test_create_security_group_defaults_and_name_rules(net):
    ctx = net.ctx()
    out = wire("CreateSecurityGroup", await create_security_group(ctx, {
        "GroupName": "web", "Description": "web servers",
        "TagSpecifications": [{"ResourceType": "security-group", "Tags": [{"Key": "tier", "Value": "front"}]}]}))
    group_id = out["GroupId"]
    assert out["SecurityGroupArn"].endswith(f":{ALICE}:security-group/{group_id}")
    group = wire("DescribeSecurityGroups", await describe_security_groups(ctx, {"GroupIds": [group_id]}))[
        "SecurityGroups"][0]
    assert group["IpPermissions"] == []   # default deny in
    assert group["IpPermissionsEgress"] == [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                                             "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}]
    assert group["Tags"] == [{"Key": "tier", "Value": "front"}]
    for params, error in (({"GroupName": "web", "Description": "again"}, "InvalidGroup.Duplicate"),
                          ({"GroupName": "default", "Description": "x"}, "InvalidGroup.Reserved"),
                          ({"GroupName": "sg-abc", "Description": "x"}, "InvalidParameterValue"),
                          ({"GroupName": "x"}, "MissingParameter"),
                          ({"GroupName": "x", "Description": "d", "VpcId": "vpc-0123456789abcdef0"},
                           "InvalidVpcID.NotFound")):
        with pytest.raises(errors.EC2Error) as exc:
            await create_security_group(ctx, params)
        assert exc.value.code == error, params
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    other = await create_security_group(ctx, {"GroupName": "web", "Description": "same name, other VPC",
                                              "VpcId": vpc_id})
    assert other["GroupId"] != group_id
    with pytest.raises(errors.DryRunOperation):
        await create_security_group(ctx, {"GroupName": "dry", "Description": "d", "DryRun": True})


async def test_authorize_both_forms_duplicates_and_limit(net):
    ctx = net.ctx()
    group_id = (await create_security_group(ctx, {"GroupName": "web", "Description": "d"}))["GroupId"]
    out = wire("AuthorizeSecurityGroupIngress", await authorize_security_group_ingress(
        ctx, {"GroupId": group_id, "IpPermissions": [SSH]}))
    assert out["Return"] is True and out["SecurityGroupRules"][0]["CidrIpv4"] == "0.0.0.0/0"
    assert out["SecurityGroupRules"][0]["SecurityGroupRuleId"].startswith("sgr-")
    # the old flat form, by group name (default VPC)
    await authorize_security_group_ingress(ctx, {"GroupName": "web", "IpProtocol": "tcp", "FromPort": 80,
                                                 "ToPort": 80, "CidrIp": "10.0.0.0/8"})
    with pytest.raises(errors.EC2Error) as exc:
        await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [SSH]})
    assert exc.value.code == "InvalidPermission.Duplicate"
    # several peers and an ICMP rule in one call; a group reference
    await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "192.168.0.0/16"}],
         "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "v6 stored"}]},
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "UserIdGroupPairs": [{"GroupId": group_id}]}]})
    group = (await describe_security_groups(ctx, {"GroupIds": [group_id]}))["SecurityGroups"][0]
    by_protocol = {(p["IpProtocol"], p.get("FromPort")): p for p in group["IpPermissions"]}
    assert by_protocol[("icmp", 8)]["Ipv6Ranges"] == [{"CidrIpv6": "::/0", "Description": "v6 stored"}]
    assert by_protocol[("udp", 53)]["UserIdGroupPairs"] == [{"GroupId": group_id, "UserId": ALICE}]
    found = await describe_security_groups(ctx, {"Filters": [{"Name": "ip-permission.from-port", "Values": ["80"]}]})
    assert [g["GroupId"] for g in found["SecurityGroups"]] == [group_id]
    for permission, error in (({"IpProtocol": "tcp", "FromPort": 10, "ToPort": 5, "IpRanges": [{"CidrIp": "1.0.0.0/8"}]},
                               "InvalidParameterValue"),
                              ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "1.0.0.0/33"}]},
                               "InvalidParameterValue"),
                              ({"IpProtocol": "banana", "IpRanges": [{"CidrIp": "1.0.0.0/8"}]}, "InvalidParameterValue"),
                              ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2,
                                "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0"}]}, "InvalidGroup.NotFound"),
                              ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2,
                                "PrefixListIds": [{"PrefixListId": "pl-12345678"}]}, "InvalidPrefixListID.NotFound")):
        with pytest.raises(errors.EC2Error) as exc:
            await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [permission]})
        assert exc.value.code == error, permission
    rules = [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "10.1.0.0/16"}]}
             for port in range(1000, 1060)]
    with pytest.raises(errors.EC2Error) as exc:
        await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": rules})
    assert exc.value.code == "RulesPerSecurityGroupLimitExceeded"
    count = len((await describe_security_group_rules(ctx, {"Filters": [
        {"Name": "group-id", "Values": [group_id]}]}))["SecurityGroupRules"])
    assert count == 6   # nothing of the refused call was added (5 ingress + the default egress)


async def test_revoke_by_permission_and_rule_id(net):
    ctx = net.ctx()
    group_id = (await create_security_group(ctx, {"GroupName": "web", "Description": "d"}))["GroupId"]
    out = await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [
        SSH, {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    https_id = out["SecurityGroupRules"][1]["SecurityGroupRuleId"]
    revoked = wire("RevokeSecurityGroupIngress", await revoke_security_group_ingress(
        ctx, {"GroupId": group_id, "IpPermissions": [SSH, {"IpProtocol": "udp", "FromPort": 1, "ToPort": 1,
                                                           "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}))
    assert revoked["Return"] is True and len(revoked["RevokedSecurityGroupRules"]) == 1
    assert revoked["UnknownIpPermissions"][0]["IpProtocol"] == "udp"
    # in the default VPC a rule that is not there is no error: it is listed as unknown
    again = await revoke_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [SSH]})
    assert again["RevokedSecurityGroupRules"] == [] and again["UnknownIpPermissions"][0]["FromPort"] == 22
    # in another VPC it is InvalidPermission.NotFound, and nothing is revoked
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    other = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    await authorize_security_group_ingress(ctx, {"GroupId": other, "IpPermissions": [SSH]})
    with pytest.raises(errors.EC2Error) as exc:
        await revoke_security_group_ingress(ctx, {"GroupId": other, "IpPermissions": [
            SSH, {"IpProtocol": "udp", "FromPort": 1, "ToPort": 1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    assert exc.value.code == "InvalidPermission.NotFound"
    kept = (await describe_security_groups(ctx, {"GroupIds": [other]}))["SecurityGroups"][0]["IpPermissions"]
    assert [p["FromPort"] for p in kept] == [22]
    await revoke_security_group_ingress(ctx, {"GroupId": group_id, "SecurityGroupRuleIds": [https_id]})
    with pytest.raises(errors.EC2Error) as exc:
        await revoke_security_group_ingress(ctx, {"GroupId": group_id, "SecurityGroupRuleIds": [https_id]})
    assert exc.value.code == "InvalidSecurityGroupRuleId.NotFound"
    await revoke_security_group_egress(ctx, {"GroupId": group_id, "IpPermissions": [
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    await authorize_security_group_egress(ctx, {"GroupId": group_id, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    group = (await describe_security_groups(ctx, {"GroupIds": [group_id]}))["SecurityGroups"][0]
    assert group["IpPermissions"] == [] and [p["FromPort"] for p in group["IpPermissionsEgress"]] == [443]


async def test_describe_and_modify_rules_and_descriptions(net):
    ctx = net.ctx()
    group_id = (await create_security_group(ctx, {"GroupName": "web", "Description": "d"}))["GroupId"]
    out = await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [SSH]})
    rule_id = out["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    rules = wire("DescribeSecurityGroupRules", await describe_security_group_rules(ctx, {"SecurityGroupRuleIds": [
        rule_id]}))["SecurityGroupRules"]
    assert rules[0]["FromPort"] == 22 and rules[0]["IsEgress"] is False and rules[0]["GroupOwnerId"] == ALICE
    assert wire("ModifySecurityGroupRules", await modify_security_group_rules(ctx, {
        "GroupId": group_id, "SecurityGroupRules": [{"SecurityGroupRuleId": rule_id, "SecurityGroupRule": {
            "IpProtocol": "tcp", "FromPort": 2222, "ToPort": 2222, "CidrIpv4": "10.0.0.0/8",
            "Description": "ssh alt"}}]})) == {"Return": True}
    rule = (await describe_security_group_rules(ctx, {"SecurityGroupRuleIds": [rule_id]}))["SecurityGroupRules"][0]
    assert (rule["FromPort"], rule["CidrIpv4"], rule["Description"]) == (2222, "10.0.0.0/8", "ssh alt")
    await update_security_group_rule_descriptions_ingress(ctx, {"GroupId": group_id, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 2222, "ToPort": 2222,
         "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "admins"}]}]})
    rule = (await describe_security_group_rules(ctx, {"SecurityGroupRuleIds": [rule_id]}))["SecurityGroupRules"][0]
    assert rule["Description"] == "admins"
    with pytest.raises(errors.EC2Error) as exc:
        await update_security_group_rule_descriptions_ingress(ctx, {"GroupId": group_id, "IpPermissions": [SSH]})
    assert exc.value.code == "InvalidPermission.NotFound"
    await authorize_security_group_ingress(ctx, {"GroupId": group_id, "IpPermissions": [SSH, {
        "IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    page = await describe_security_group_rules(ctx, {"MaxResults": 5})   # 6 rules: 2 of the default group
    rest = await describe_security_group_rules(ctx, {"MaxResults": 5, "NextToken": page["NextToken"]})
    assert len(page["SecurityGroupRules"]) == 5 and len(rest["SecurityGroupRules"]) == 1


async def test_delete_security_group_dependencies(net):
    ctx = net.ctx()
    web = (await create_security_group(ctx, {"GroupName": "web", "Description": "d"}))["GroupId"]
    db = (await create_security_group(ctx, {"GroupName": "db", "Description": "d"}))["GroupId"]
    await authorize_security_group_ingress(ctx, {"GroupId": db, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web}]}]})
    with pytest.raises(errors.EC2Error) as exc:
        await delete_security_group(ctx, {"GroupId": web})
    assert exc.value.code == "DependencyViolation"
    default = (await describe_security_groups(ctx, {"GroupNames": ["default"]}))["SecurityGroups"][0]["GroupId"]
    with pytest.raises(errors.EC2Error) as exc:
        await delete_security_group(ctx, {"GroupId": default})
    assert exc.value.code == "CannotDelete"
    assert wire("DeleteSecurityGroup", await delete_security_group(ctx, {"GroupName": "db"})) == {
        "Return": True, "GroupId": db}
    await delete_security_group(ctx, {"GroupId": web})
    with pytest.raises(errors.InvalidGroupNotFound):
        await describe_security_groups(ctx, {"GroupIds": [web]})
