"""Tags over every resource type, the default VPC / subnets / security group, and the instance type
catalogue."""
from __future__ import annotations

import pytest

from ec2_api import errors
from ec2_api.account_attributes import default_vpc_id
from ec2_api.instance_types import describe_instance_type_offerings, describe_instance_types
from ec2_api.instances import run_instances
from ec2_api.key_pairs import create_key_pair
from ec2_api.tags import create_tags, delete_tags, describe_tags
from ec2_api.vpc import describe_security_groups, describe_subnets, describe_vpcs
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire


async def test_default_network(env):
    out = wire("DescribeVpcs", await describe_vpcs(env.ctx(), {}))
    (vpc,) = out["Vpcs"]
    assert vpc["VpcId"] == default_vpc_id(ALICE, "us-east-1") and vpc["IsDefault"] is True
    assert vpc["CidrBlock"] == "172.31.0.0/16" and vpc["OwnerId"] == ALICE
    subnets = wire("DescribeSubnets", await describe_subnets(env.ctx(), {}))["Subnets"]
    by_zone = {s["AvailabilityZone"]: s for s in subnets}
    assert {z: s["CidrBlock"] for z, s in by_zone.items()} == {
        "us-east-1a": "172.31.0.0/20", "us-east-1b": "172.31.16.0/20", "us-east-1c": "172.31.32.0/20"}
    assert all(s["DefaultForAz"] and s["AvailableIpAddressCount"] == 4091 for s in subnets)
    assert by_zone["us-east-1b"]["AvailabilityZoneId"] == "use1-az2"
    out = await describe_subnets(env.ctx(), {"Filters": [{"Name": "default-for-az", "Values": ["true"]},
                                                         {"Name": "availability-zone", "Values": ["us-east-1c"]}]})
    assert [s["CidrBlock"] for s in out["Subnets"]] == ["172.31.32.0/20"]
    groups = wire("DescribeSecurityGroups", await describe_security_groups(env.ctx(), {}))["SecurityGroups"]
    (group,) = groups
    assert group["GroupName"] == "default" and group["VpcId"] == vpc["VpcId"]
    by_name = await describe_security_groups(env.ctx(), {"GroupNames": ["default"]})
    assert by_name["SecurityGroups"][0]["GroupId"] == group["GroupId"]
    with pytest.raises(errors.InvalidGroupNotFound):
        await describe_security_groups(env.ctx(), {"GroupNames": ["web"]})
    with pytest.raises(errors.InvalidVpcIDNotFound):
        await describe_vpcs(env.ctx(), {"VpcIds": [default_vpc_id(BOB, "us-east-1")]})
    bob = (await describe_vpcs(env.ctx(BOB), {}))["Vpcs"]
    assert bob[0]["VpcId"] != vpc["VpcId"]
    eu = (await describe_subnets(env.ctx(ALICE, "eu-west-1"), {}))["Subnets"]
    assert [s["AvailabilityZone"] for s in eu] == ["eu-west-1a"]


async def test_tags_on_every_resource_type(env, tiny_image):
    out = await run_instances(env.ctx(), {"ImageId": tiny_image, "MinCount": 1, "MaxCount": 1})
    instance_id = out["Instances"][0]["InstanceId"]
    key_id = (await create_key_pair(env.ctx(), {"KeyName": "k"}))["KeyPairId"]
    vpc_id = default_vpc_id(ALICE, "us-east-1")
    subnet_id = out["Instances"][0]["SubnetId"]
    group_id = out["Instances"][0]["SecurityGroups"][0]["GroupId"]
    volume_id = out["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    resources = [instance_id, key_id, vpc_id, subnet_id, group_id, volume_id]
    await create_tags(env.ctx(), {"Resources": resources, "Tags": [{"Key": "env", "Value": "prod"}]})
    await create_tags(env.ctx(), {"Resources": [instance_id], "Tags": [{"Key": "Name", "Value": "web"},
                                                                       {"Key": "empty"}]})
    out = wire("DescribeTags", await describe_tags(env.ctx(), {}))
    kinds = {(t["ResourceId"], t["Key"]): t["ResourceType"] for t in out["Tags"]}
    assert kinds[(instance_id, "env")] == "instance" and kinds[(key_id, "env")] == "key-pair"
    assert kinds[(vpc_id, "env")] == "vpc" and kinds[(subnet_id, "env")] == "subnet"
    assert kinds[(group_id, "env")] == "security-group" and kinds[(volume_id, "env")] == "volume"
    out = await describe_tags(env.ctx(), {"Filters": [{"Name": "resource-type", "Values": ["instance"]}]})
    assert sorted((t["Key"], t["Value"]) for t in out["Tags"]) == [("Name", "web"), ("empty", ""), ("env", "prod")]
    out = await describe_tags(env.ctx(), {"Filters": [{"Name": "key", "Values": ["env"]},
                                                      {"Name": "resource-id", "Values": [vpc_id, key_id]}]})
    assert sorted(t["ResourceId"] for t in out["Tags"]) == sorted([vpc_id, key_id])
    # pagination walks every tag once
    seen, token = [], None
    while True:
        page = await describe_tags(env.ctx(), {"MaxResults": 5, **({"NextToken": token} if token else {})})
        seen += [(t["ResourceId"], t["Key"]) for t in page["Tags"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 8
    # delete by key+value (only when the value matches), by key, then everything
    await delete_tags(env.ctx(), {"Resources": [instance_id], "Tags": [{"Key": "Name", "Value": "other"}]})
    await delete_tags(env.ctx(), {"Resources": [instance_id], "Tags": [{"Key": "empty"}]})
    out = await describe_tags(env.ctx(), {"Filters": [{"Name": "resource-id", "Values": [instance_id]}]})
    assert sorted(t["Key"] for t in out["Tags"]) == ["Name", "env"]
    await delete_tags(env.ctx(), {"Resources": [instance_id]})
    out = await describe_tags(env.ctx(), {"Filters": [{"Name": "resource-id", "Values": [instance_id]}]})
    assert out["Tags"] == []
    # another account's resources are not found, nor are unknown ids
    with pytest.raises(errors.InvalidInstanceIDNotFound):
        await create_tags(env.ctx(BOB), {"Resources": [instance_id], "Tags": [{"Key": "a", "Value": "b"}]})
    with pytest.raises(errors.InvalidVpcIDNotFound):
        await create_tags(env.ctx(BOB), {"Resources": [vpc_id], "Tags": [{"Key": "a", "Value": "b"}]})
    with pytest.raises(errors.EC2Error) as caught:
        await create_tags(env.ctx(), {"Resources": ["xyz-123"], "Tags": [{"Key": "a", "Value": "b"}]})
    assert caught.value.code == "InvalidID"
    with pytest.raises(errors.InvalidParameterValue):
        await create_tags(env.ctx(), {"Resources": [vpc_id], "Tags": [{"Key": "aws:x", "Value": "b"}]})
    with pytest.raises(errors.TagLimitExceeded):
        await create_tags(env.ctx(), {"Resources": [vpc_id], "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(50)]})
    assert (await describe_tags(env.ctx(BOB), {}))["Tags"] == []
    with pytest.raises(errors.DryRunOperation):
        await create_tags(env.ctx(), {"Resources": [vpc_id], "Tags": [{"Key": "a", "Value": "b"}], "DryRun": True})


async def test_instance_types(env):
    out = wire("DescribeInstanceTypes", await describe_instance_types(env.ctx(), {"InstanceTypes": ["t3.nano", "m5.large"]}))
    by_name = {t["InstanceType"]: t for t in out["InstanceTypes"]}
    assert by_name["t3.nano"]["VCpuInfo"]["DefaultVCpus"] == 2 and by_name["t3.nano"]["MemoryInfo"]["SizeInMiB"] == 512
    assert by_name["m5.large"]["MemoryInfo"]["SizeInMiB"] == 8192
    out = await describe_instance_types(env.ctx(), {"Filters": [{"Name": "vcpu-info.default-vcpus", "Values": ["8"]},
                                                                {"Name": "instance-type", "Values": ["c5.*"]}]})
    assert [t["InstanceType"] for t in out["InstanceTypes"]] == ["c5.2xlarge"]
    out = await describe_instance_types(env.ctx(), {"Filters": [{"Name": "free-tier-eligible", "Values": ["true"]}]})
    assert sorted(t["InstanceType"] for t in out["InstanceTypes"]) == ["t2.micro", "t3.micro"]
    with pytest.raises(errors.EC2Error) as caught:
        await describe_instance_types(env.ctx(), {"InstanceTypes": ["x1.nope"]})
    assert caught.value.code == "InvalidInstanceType"
    names, token = [], None
    while True:
        page = await describe_instance_types(env.ctx(), {"MaxResults": 5, **({"NextToken": token} if token else {})})
        names += [t["InstanceType"] for t in page["InstanceTypes"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(names) == len(set(names)) >= 25
    out = wire("DescribeInstanceTypeOfferings", await describe_instance_type_offerings(env.ctx(), {
        "LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": ["t3.micro"]}]}))
    assert sorted(o["Location"] for o in out["InstanceTypeOfferings"]) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    out = await describe_instance_type_offerings(env.ctx(), {})
    assert {o["Location"] for o in out["InstanceTypeOfferings"]} == {"us-east-1"}


async def test_instance_type_catalogue_file(env, tmp_path):
    from ec2_api import instance_types
    path = tmp_path / "types.toml"
    path.write_text('include_builtin = false\n[types."n1.tiny"]\nvcpus = 1\nmemory_mib = 256\n')
    env.config.instance_types = str(path)
    try:
        out = await describe_instance_types(env.ctx(), {})
        assert [t["InstanceType"] for t in out["InstanceTypes"]] == ["n1.tiny"]
        assert instance_types.lookup(env.config, "n1.tiny").memory_mib == 256
    finally:
        env.config.instance_types = None
