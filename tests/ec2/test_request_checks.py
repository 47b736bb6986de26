"""Checks every EC2 action gets from the shared mechanism (``ec2_api.invoke``), through the real
gateway and boto3 (issue 9 item 16): DryRun on every implemented action, malformed ids told from
missing ones as EC2 does, DescribeTags' MaxResults above 1,000, DescribeImageAttribute without
empty elements."""
from __future__ import annotations

import botocore
import botocore.session
import pytest
from botocore.exceptions import ClientError

from ec2_api import operations
from ec2_api.invoke import checks_dry_run_itself
from tests.ec2.test_through_gateway import call, live  # noqa: F401 (the live-server fixture)

MODEL = botocore.session.get_session().get_service_model("ec2")


def _code(caught) -> tuple[str, int]:
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


async def test_dry_run_of_actions_without_their_own_check_answers_412(live):
    """DescribeRegions & co. never looked at DryRun: EC2 answers DryRunOperation for every action."""
    ec2, _, _ = live
    for method in (ec2.describe_regions, ec2.describe_availability_zones, ec2.describe_account_attributes):
        with pytest.raises(ClientError) as caught:
            await call(method, DryRun=True)
        assert _code(caught) == ("DryRunOperation", 412)
        assert caught.value.response["Error"]["Message"] == "Request would have succeeded, but DryRun flag is set."
        await call(method, DryRun=False)     # and a real call still works


def _fill(shape, name: str, image_id: str):
    """A plausible value for a required member: well-formed ids (the live image for ImageId)."""
    if shape.type_name == "string":
        if name in ("ImageId", "SourceImageId"):
            return image_id
        if shape.enum:
            return shape.enum[0]
        from ec2_api.ids import ID_MEMBERS
        kind = ID_MEMBERS.get(name)
        return f"{kind.prefixes[0]}-0123456789abcdef0" if kind else "x" * max(3, shape.metadata.get("min", 1))
    if shape.type_name in ("integer", "long"):
        return 1
    if shape.type_name == "boolean":
        return True
    if shape.type_name == "list":
        return [_fill(shape.member, name, image_id)]
    if shape.type_name == "structure":
        return {m: _fill(shape.members[m], m, image_id) for m in shape.required_members}
    if shape.type_name == "blob":
        return b"x"
    return "x"


async def test_dry_run_never_succeeds_on_any_implemented_action(live):
    """Every implemented action that has a DryRun parameter answers DryRun=true with an error
    (DryRunOperation, or the error of a missing resource its handler finds first), never a
    success, and changes nothing. A few actions have no DryRun in EC2's API (ModifyVpcAttribute,
    AssociateVpcCidrBlock, AssignPrivateIpAddresses ...): botocore cannot send it for them."""
    ec2, image_id, context = live
    before = await context.db.fetchall("SELECT COUNT(*) AS n FROM ec2_instances")
    answered, without = {}, set()
    for action in operations.OPERATIONS:
        shape = MODEL.operation_model(action).input_shape
        if "DryRun" not in shape.members:
            without.add(action)
            continue
        params = {m: _fill(shape.members[m], m, image_id) for m in shape.required_members}
        if action == "RunInstances":
            params["ImageId"] = image_id
        method = getattr(ec2, botocore.xform_name(action))
        with pytest.raises(ClientError) as caught:
            await call(method, DryRun=True, **params)
        answered[action] = _code(caught)
        assert answered[action][1] in (400, 412), (action, answered[action])
    assert answered["DescribeRegions"] == ("DryRunOperation", 412)
    assert answered["RunInstances"] == ("DryRunOperation", 412)
    assert answered["DescribeImages"] == ("DryRunOperation", 412)
    assert without == {"ModifyVpcAttribute", "AssociateVpcCidrBlock", "DisassociateVpcCidrBlock",
                       "ModifySubnetAttribute", "AssignPrivateIpAddresses", "UnassignPrivateIpAddresses"}
    after = await context.db.fetchall("SELECT COUNT(*) AS n FROM ec2_instances")
    assert after[0]["n"] == before[0]["n"]


async def test_a_new_action_without_a_dry_run_check_is_never_called_on_a_dry_run(tmp_path):
    """An action added later that forgets DryRun still answers it, and its handler never runs."""
    import boto3
    import botocore.config
    from aiohttp.test_utils import TestServer
    from backend.fake import FakeDriver
    from gateway.app import APP_CONTEXT, create_app
    from gateway.config import Config
    from gateway.services import Service
    calls = []

    async def describe_regions(ctx, params):
        calls.append(params)
        return {"Regions": []}
    assert not checks_dry_run_itself(describe_regions)
    ops = dict(operations.OPERATIONS, DescribeRegions=describe_regions)
    app = create_app(Config(data_dir=str(tmp_path / "data"), backend="fake"), backend=FakeDriver(),
                     services={"ec2": Service("ec2", "ec2", "ec2", ops, operations.open_state,
                                              operations.close_state)})
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        (key,) = await app[APP_CONTEXT].accounts.store.list_keys()
        ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                           aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                           config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as caught:
            await call(ec2.describe_regions, DryRun=True)
        assert _code(caught) == ("DryRunOperation", 412)
        assert calls == []
        await call(ec2.describe_regions)
        assert len(calls) == 1
    finally:
        await server.close()


@pytest.mark.parametrize("method,params,code", [
    ("describe_instances", {"InstanceIds": ["i-xyz"]}, "InvalidInstanceID.Malformed"),
    ("describe_instances", {"InstanceIds": ["i-12345678"]}, "InvalidInstanceID.NotFound"),
    ("describe_images", {"ImageIds": ["ami-x"]}, "InvalidAMIID.Malformed"),
    ("describe_images", {"ImageIds": ["ami-12345678"]}, "InvalidAMIID.NotFound"),
    ("describe_vpcs", {"VpcIds": ["vpc-x"]}, "InvalidVpcID.Malformed"),
    ("describe_vpcs", {"VpcIds": ["vpc-12345678"]}, "InvalidVpcID.NotFound"),
    ("describe_subnets", {"SubnetIds": ["subnet-zz"]}, "InvalidSubnetID.Malformed"),
    ("describe_subnets", {"SubnetIds": ["subnet-0123456789abcdef0"]}, "InvalidSubnetID.NotFound"),
    ("describe_security_groups", {"GroupIds": ["sg-x"]}, "InvalidGroupId.Malformed"),
    ("describe_security_groups", {"GroupIds": ["sg-12345678"]}, "InvalidGroup.NotFound"),
    ("describe_key_pairs", {"KeyPairIds": ["key-x"]}, "InvalidKeyPair.Malformed"),
    ("describe_key_pairs", {"KeyPairIds": ["key-0123456789abcdef0"]}, "InvalidKeyPair.NotFound"),
    ("run_instances", {"ImageId": "IMAGE", "MinCount": 1, "MaxCount": 1, "SubnetId": "subnet-x"},
     "InvalidSubnetID.Malformed"),
    ("run_instances", {"ImageId": "IMAGE", "MinCount": 1, "MaxCount": 1, "SecurityGroupIds": ["sg-x"]},
     "InvalidGroupId.Malformed"),
    ("reboot_instances", {"InstanceIds": ["i-xyz"], "DryRun": True}, "InvalidInstanceID.Malformed"),
])
async def test_malformed_ids_are_told_from_missing_ones(live, method, params, code):
    ec2, image_id, _ = live
    params = {k: (image_id if v == "IMAGE" else v) for k, v in params.items()}
    with pytest.raises(ClientError) as caught:
        await call(getattr(ec2, method), **params)
    assert _code(caught) == (code, 400)
    if code.endswith(".Malformed"):
        bad = [v for v in params.values() if isinstance(v, (str, list)) and "x" in str(v)]
        assert caught.value.response["Error"]["Message"].startswith("Invalid id: "), bad


async def test_describe_tags_max_results_above_1000_returns_at_most_1000(live):
    """AWS: 'This value can be between 5 and 1000; if MaxResults is given a value larger than 1000,
    only 1000 results are returned.' Below 5 stays an error."""
    ec2, _, _ = live
    vpc_id = (await call(ec2.describe_vpcs))["Vpcs"][0]["VpcId"]
    await call(ec2.create_tags, Resources=[vpc_id], Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(3)])
    out = await call(ec2.describe_tags, MaxResults=5000)
    assert len(out["Tags"]) == 3 and "NextToken" not in out
    with pytest.raises(ClientError) as caught:
        await call(ec2.describe_tags, MaxResults=4)
    assert _code(caught) == ("InvalidParameterValue", 400)


async def test_describe_image_attribute_kernel_has_no_empty_element(live):
    ec2, image_id, _ = live
    bodies = []
    ec2.meta.events.register("after-call.ec2.DescribeImageAttribute",
                             lambda http_response, **_: bodies.append(http_response.content))
    for attribute, member, element in (("kernel", "KernelId", b"<kernel"), ("ramdisk", "RamdiskId", b"<ramdisk")):
        out = await call(ec2.describe_image_attribute, ImageId=image_id, Attribute=attribute)
        assert member not in out and out["ImageId"] == image_id
        assert element not in bodies[-1]
