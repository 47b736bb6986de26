"""DescribeInstances' bytes do not change when its rendering is made cheaper: the XML of a varied
fleet (tags, several network interfaces with secondary addresses and a public address, an extra
volume, security groups, running, stopped and terminated instances, several reservations) is the
same with ``ec2_api.common.from_us``'s memo of datetimes as without it (the uncached conversion is
the one main had), on a cold and on a warm memo, and through both MaxResults pages."""
from __future__ import annotations

import datetime as dt

import botocore.session
import pytest

from ec2_api import common, instance_query
from ec2_api.filters import InvalidNextToken, _encode_token as token_after
from ec2_api.addresses import allocate_address, associate_address
from ec2_api.instance_actions import stop_instances, terminate_instances
from ec2_api.instances import describe_instances, run_instances
from ec2_api.internet_gateways import attach_internet_gateway, create_internet_gateway
from ec2_api.network_interfaces import create_network_interface
from ec2_api.security_groups import create_security_group
from ec2_api.subnets import create_subnet
from ec2_api.volume_attachments import attach_volume
from ec2_api.volumes import create_volume
from ec2_api.vpcs import create_vpc
from gateway.protocols.query import encode_query_response
from tests.ec2.network_env import image, net  # noqa: F401 (fixtures)

_OP = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")


class _NoMemo(dict):
    """A memo that never remembers: every from_us call converts afresh, as before the memo."""

    def __setitem__(self, key, value) -> None:
        pass


async def _fleet(env, image_id: str) -> None:
    ctx = env.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24",
                                           "AvailabilityZone": "us-east-1a"}))["Subnet"]["SubnetId"]
    web = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    db = (await create_security_group(ctx, {"GroupName": "db &", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    spare = (await create_network_interface(ctx, {"SubnetId": subnet_id}))["NetworkInterface"]["NetworkInterfaceId"]
    multi = (await run_instances(ctx, {
        "ImageId": image_id, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.small",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [
            {"Key": "Name", "Value": "multi & <nic>"}, {"Key": "Env", "Value": "prod"}]}],
        "NetworkInterfaces": [
            {"DeviceIndex": 0, "SubnetId": subnet_id, "PrivateIpAddress": "10.0.1.50", "Groups": [web, db],
             "SecondaryPrivateIpAddressCount": 2},
            {"DeviceIndex": 1, "NetworkInterfaceId": spare}]}))["Instances"][0]["InstanceId"]
    igw = (await create_internet_gateway(ctx, {}))["InternetGateway"]["InternetGatewayId"]
    await attach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc_id})
    allocation = (await allocate_address(ctx, {"Domain": "vpc"}))["AllocationId"]
    await associate_address(ctx, {"AllocationId": allocation, "NetworkInterfaceId": spare})
    plain = [i["InstanceId"] for i in (await run_instances(ctx, {
        "ImageId": image_id, "MinCount": 4, "MaxCount": 4, "SubnetId": subnet_id, "SecurityGroupIds": [web],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Env", "Value": "dev"}]}]}
    ))["Instances"]]
    await run_instances(ctx, {"ImageId": image_id, "MinCount": 2, "MaxCount": 2})    # default VPC, no tags
    await env.settle()
    volume = (await create_volume(ctx, {"AvailabilityZone": "us-east-1a", "Size": 1}))["VolumeId"]
    await env.settle()
    await attach_volume(ctx, {"VolumeId": volume, "InstanceId": plain[0], "Device": "/dev/sdf"})
    await stop_instances(ctx, {"InstanceIds": [plain[1]]})
    await terminate_instances(ctx, {"InstanceIds": [plain[2]]})
    await env.settle()


async def _pages(env) -> list[bytes]:
    bodies, token = [], None
    while True:
        params = {"MaxResults": 5, **({"NextToken": token} if token else {})}
        out = await describe_instances(env.ctx(), params)
        bodies.append(encode_query_response(_OP, out, "req-1", "ec2"))
        token = out.get("NextToken")
        if not token:
            return bodies


async def test_describe_instances_bytes_equal_the_uncached_rendering(net, image, monkeypatch):
    await _fleet(net, image)
    with monkeypatch.context() as patch:
        patch.setattr(common, "_FROM_US", _NoMemo())
        before = await _pages(net)
    common._FROM_US.clear()
    cold = await _pages(net)
    warm = await _pages(net)
    assert len(before) == 2     # 8 instances (one terminated, still shown), pages of 5
    text = b"".join(before).decode()
    for needed in ("<instanceState><code>80</code><name>stopped</name>", "<name>terminated</name>",
                   "<deviceName>/dev/sdf</deviceName>", "multi &amp; &lt;nic&gt;", "db &amp;",
                   "<deviceIndex>1</deviceIndex>", "<publicIp>", "<launchTime>", "<attachTime>"):
        assert needed in text, needed
    assert cold == before
    assert warm == before


def test_from_us_memo_equals_the_plain_conversion():
    common._FROM_US.clear()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    for value in (0, 1, 999_999, 1_764_000_000_123_456, 1_764_000_000_123_456, 253_402_300_799_999_999, -1):
        for _ in range(2):    # a miss, then a hit
            got = common.from_us(value)
            assert got == epoch + dt.timedelta(microseconds=value) and got.tzinfo is not None
    assert common.from_us(None) is None


async def test_unfiltered_pages_are_read_in_sql_and_equal_the_whole_answer(env, tiny_image, monkeypatch):
    """Without filters, a MaxResults page loads its rows and one more (to know a next page exists),
    not the account's; the pages joined are the unpaged answer, in id order, terminated included,
    and the last page has no NextToken."""
    ids = [i["InstanceId"] for i in (await run_instances(env.ctx(), {
        "ImageId": tiny_image, "MinCount": 12, "MaxCount": 12}))["Instances"]]
    await env.settle()
    await terminate_instances(env.ctx(), {"InstanceIds": [ids[3]]})
    await env.settle()
    whole = [i["InstanceId"] for r in (await describe_instances(env.ctx(), {}))["Reservations"]
             for i in r["Instances"]]
    assert sorted(whole) == sorted(ids)
    loaded = []
    real = instance_query.candidate_rows

    async def spy(*args, **kwargs):
        rows = await real(*args, **kwargs)
        loaded.append(len(rows))
        return rows
    monkeypatch.setattr(instance_query, "candidate_rows", spy)
    paged, token, tokens = [], None, 0
    while True:
        out = await describe_instances(env.ctx(), {"MaxResults": 5, **({"NextToken": token} if token else {})})
        paged += [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]
        token = out.get("NextToken")
        if not token:
            break
        tokens += 1
    assert paged == sorted(ids) and tokens == 2
    assert loaded == [6, 6, 2]
    out = await describe_instances(env.ctx(), {"NextToken": token_after(sorted(ids)[9])})   # 1,000 a page
    assert [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]] == sorted(ids)[10:]
    assert out.get("NextToken") is None
    with pytest.raises(InvalidNextToken):
        await describe_instances(env.ctx(), {"MaxResults": 5, "NextToken": "not-a-token"})
