"""The desired network state at scale: a security group whose rule names the group itself (as
every default group's does) resolves to one /32 rule per member, so the interfaces of the same
groups share one union of their groups' rules, made once (merging it again for each member was
quadratic in the members: ~100 M rule hashes per sync at 10,000 instances), and an interface in
several groups gets their rules in order, each once."""
from __future__ import annotations

from backend.network.model import SecurityRule
from ec2_api.instances import run_instances
from ec2_api.security_group_rules import authorize_security_group_ingress
from ec2_api.security_groups import create_security_group
from ec2_api.subnets import create_subnet
from ec2_api.vpcs import create_vpc
from tests.ec2.network_env import image, net  # noqa: F401 (fixtures)


async def test_members_of_the_same_groups_share_one_union_of_rules(net, image):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24",
                                           "AvailabilityZone": "us-east-1a"}))["Subnet"]["SubnetId"]
    cluster = (await create_security_group(ctx, {"GroupName": "cluster", "Description": "d",
                                                 "VpcId": vpc_id}))["GroupId"]
    ssh = (await create_security_group(ctx, {"GroupName": "ssh", "Description": "d",
                                             "VpcId": vpc_id}))["GroupId"]
    await authorize_security_group_ingress(ctx, {"GroupId": cluster, "IpPermissions": [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": cluster}]}]})
    await authorize_security_group_ingress(ctx, {"GroupId": ssh, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    members = (await run_instances(ctx, {"ImageId": image, "MinCount": 3, "MaxCount": 3, "SubnetId": subnet_id,
                                         "SecurityGroupIds": [cluster]}))["Instances"]
    bastion = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet_id,
                                         "SecurityGroupIds": [cluster, ssh]}))["Instances"][0]
    state = await net.applied()
    by_instance = {i.instance_id: i for i in state.interfaces}
    ips = sorted(i["PrivateIpAddress"] for i in members + [bastion])
    first = by_instance[members[0]["InstanceId"]]
    assert [r for r in first.rules if r.direction == "ingress"] == [
        SecurityRule("ingress", "all", -1, -1, f"{ip}/32") for ip in ips]
    for member in members[1:]:
        assert by_instance[member["InstanceId"]].rules is first.rules   # one union, shared
    both = by_instance[bastion["InstanceId"]].rules
    assert both[:len(first.rules)] == first.rules       # the groups' rules in order ...
    assert SecurityRule("ingress", "tcp", 22, 22, "0.0.0.0/0") in both
    assert len(both) == len(set(both))                  # ... each once (both groups allow all egress)
    assert both.count(SecurityRule("egress", "all", -1, -1, "0.0.0.0/0")) == 1
