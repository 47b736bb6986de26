"""DescribeInstances' bytes do not change when its rendering is made cheaper: the XML of a varied
fleet (tags, several network interfaces with secondary addresses and public addresses on primary
and secondary ones, in VPCs with and without DNS hostnames, an extra volume, security groups,
running, stopped and terminated instances, several reservations) is

* the same with ``ec2_api.common.from_us``'s memo of datetimes as without it (the uncached
  conversion is the one main had), on a cold and on a warm memo, through both MaxResults pages;
* the same as the rendering before issue 12's rework (``render_instance`` then ``decorate``,
  kept in tests/ec2/instance_description_oracle.py), for every page and every way of asking
  (pages, instance ids, a filter on the rendered description), and for RunInstances' answer."""
from __future__ import annotations

import datetime as dt

import botocore.session
import pytest

from ec2_api import common, instance_query
from ec2_api.filters import InvalidNextToken, _encode_token as token_after
from ec2_api.addresses import allocate_address, associate_address
from ec2_api.instance_actions import stop_instances, terminate_instances
from ec2_api.instances import describe_instances, run_instances, visible_instances
from ec2_api.tag_store import tags_of
from ec2_api.internet_gateways import attach_internet_gateway, create_internet_gateway
from ec2_api.network_interfaces import create_network_interface
from ec2_api.security_groups import create_security_group
from ec2_api.subnets import create_subnet
from ec2_api.volume_attachments import attach_volume
from ec2_api.volumes import create_volume
from ec2_api.vpcs import create_vpc
from gateway.protocols.query import encode_query_response
from tests.ec2 import instance_description_oracle as oracle
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
    default = [i["InstanceId"] for i in (await run_instances(ctx, {
        "ImageId": image_id, "MinCount": 2, "MaxCount": 2}))["Instances"]]    # default VPC, no tags
    await env.settle()
    volume = (await create_volume(ctx, {"AvailabilityZone": "us-east-1a", "Size": 1}))["VolumeId"]
    await env.settle()
    await attach_volume(ctx, {"VolumeId": volume, "InstanceId": plain[0], "Device": "/dev/sdf"})
    # public addresses: on a secondary address of the primary interface and on a one-interface
    # instance's primary (a VPC without DNS hostnames), on a default-VPC instance (with them)
    multi_eni = next(n for n in (await describe_instances(ctx, {"InstanceIds": [multi]}))["Reservations"][0][
        "Instances"][0]["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    secondary = next(a["PrivateIpAddress"] for a in multi_eni["PrivateIpAddresses"] if not a["Primary"])
    for target in ({"NetworkInterfaceId": multi_eni["NetworkInterfaceId"], "PrivateIpAddress": secondary},
                   {"InstanceId": plain[3]}, {"InstanceId": default[0]}):
        allocation = (await allocate_address(ctx, {"Domain": "vpc"}))["AllocationId"]
        await associate_address(ctx, {"AllocationId": allocation, **target})
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
    assert len(before) == 2     # 7 instances (one terminated, still shown), pages of 5
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


async def _oracle_body(env, out: dict) -> bytes:
    """``out`` with each instance replaced by the oracle's description of it, encoded."""
    ctx = env.ctx()
    wanted = [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]
    rows = {r["instance_id"]: r for r in await visible_instances(ctx, wanted)}
    tags = await tags_of(env.db, ctx.account.account_id, wanted)
    reservations = []
    for reservation in out["Reservations"]:
        instances = [oracle.render_instance(rows[i["InstanceId"]], tags[i["InstanceId"]])
                     for i in reservation["Instances"]]
        await oracle.decorate(env.db, instances)
        reservations.append({**reservation, "Instances": instances})
    return encode_query_response(_OP, {**out, "Reservations": reservations}, "req-1", "ec2")


async def test_describe_instances_bytes_equal_the_rendering_before_the_rework(net, image):
    await _fleet(net, image)
    asked = [{"MaxResults": 5}, {}, {"Filters": [{"Name": "network-interface.addresses.primary", "Values": ["false"]}]},
             {"Filters": [{"Name": "ip-address", "Values": ["198.18.*"]}]},
             {"Filters": [{"Name": "tag:Env", "Values": ["dev", "prod"]}]}]
    seen = set()
    for params in asked:
        token = None
        while True:
            out = await describe_instances(net.ctx(), {**params, **({"NextToken": token} if token else {})})
            body = encode_query_response(_OP, out, "req-1", "ec2")
            assert body == await _oracle_body(net, out), params
            ids = [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]
            seen.update(ids)
            if ids:
                by_id = await describe_instances(net.ctx(), {"InstanceIds": ids})
                assert encode_query_response(_OP, by_id, "req-1", "ec2") == await _oracle_body(net, by_id)
            token = out.get("NextToken")
            if not token:
                break
    assert len(seen) == 7
    text = (await _oracle_body(net, await describe_instances(net.ctx(), {}))).decode()
    # what the comparison covered: public addresses shown with and without a public DNS name,
    # on a primary and on a secondary address, and a second interface
    assert text.count("<ipAddress>") >= 2 and "<dnsName/>" in text and "<dnsName>ec2-198-18-" in text
    assert "<deviceIndex>1</deviceIndex>" in text and "<primary>false</primary>" in text


async def test_run_instances_answer_equals_the_rendering_before_the_rework(net, image, monkeypatch):
    await _fleet(net, image)
    ctx = net.ctx()
    monkeypatch.setattr(net.state, "boot", lambda instance_id: None)   # rows stay as RunInstances left them
    out = await run_instances(ctx, {"ImageId": image, "MinCount": 3, "MaxCount": 3,
                                    "TagSpecifications": [{"ResourceType": "instance",
                                                           "Tags": [{"Key": "Env", "Value": "x & y"}]}]})
    op = botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances")
    rows = {r["instance_id"]: r for r in await visible_instances(ctx, [i["InstanceId"] for i in out["Instances"]])}
    tags = await tags_of(net.db, ctx.account.account_id, list(rows))
    instances = [oracle.render_instance(rows[i["InstanceId"]], tags[i["InstanceId"]]) for i in out["Instances"]]
    await oracle.decorate(net.db, instances)
    assert encode_query_response(op, out, "r", "ec2") == encode_query_response(op, {**out, "Instances": instances},
                                                                               "r", "ec2")
