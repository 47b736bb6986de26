"""DescribeInstances loads only the rows its filters can keep (ec2_api.instance_query), and answers
exactly what the filter engine alone answers: for exact and wildcard tag filters, tag-key, row
columns, several values (ORed), several filters (ANDed), terminated instances (shown for an hour)
and tags of another account (never matching)."""
from __future__ import annotations

import pytest

from ec2_api import instance_query
from ec2_api.instance_actions import terminate_instances
from ec2_api.instances import describe_instances, run_instances
from ec2_api.tags import create_tags
from tests.ec2.conftest import ALICE, BOB


def _ids(out: dict) -> list[str]:
    return [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]


async def _launch(env, image, count, account=ALICE, tags=None):
    params = {"ImageId": image, "MinCount": count, "MaxCount": count, "InstanceType": "t3.micro"}
    if tags:
        params["TagSpecifications"] = [{"ResourceType": "instance",
                                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    out = await run_instances(env.ctx(account), params)
    return [i["InstanceId"] for i in out["Instances"]]


FILTER_CASES = [
    [("tag:Env", ["prod"])],
    [("tag:Env", ["prod", "dev"])],
    [("tag:Env", ["pr*"])],
    [("tag:Env", ["?ev"])],
    [("tag:Role", ["canary"])],
    [("tag:Role", ["canary"]), ("tag:Env", ["dev"])],
    [("tag:Env", ["PROD"])],                          # case-sensitive, as EC2
    [("tag:Nope", ["x"])],
    [("tag-key", ["Role"])],
    [("tag-key", ["Ro*"])],
    [("tag-value", ["canary"])],
    [("instance-state-name", ["terminated"])],
    [("instance-state-name", ["running", "pending"]), ("tag:Env", ["prod"])],
    [("instance-type", ["t3.micro"])],
    [("instance-type", ["t3.*"])],
    [("availability-zone", ["us-east-1a"])],
    [("key-name", ["none"])],
    [("owner-id", [BOB])],
    [("client-token", [""])],
]


@pytest.mark.parametrize("case", range(len(FILTER_CASES)))
async def test_narrowed_answer_equals_the_filter_engine_alone(env, tiny_image, monkeypatch, case):
    prod = await _launch(env, tiny_image, 4, tags={"Env": "prod"})
    dev = await _launch(env, tiny_image, 3, tags={"Env": "dev"})
    await _launch(env, tiny_image, 2)
    await _launch(env, tiny_image, 2, account=BOB, tags={"Env": "prod", "Role": "canary"})
    await create_tags(env.ctx(), {"Resources": [prod[1], dev[0]], "Tags": [{"Key": "Role", "Value": "canary"}]})
    await terminate_instances(env.ctx(), {"InstanceIds": [prod[0]]})
    await env.settle()
    params = {"Filters": [{"Name": n, "Values": v} for n, v in FILTER_CASES[case]]}
    narrowed = _ids(await describe_instances(env.ctx(), dict(params)))
    monkeypatch.setattr(instance_query, "narrowing", lambda account_id, filters: ([], []))
    engine_alone = _ids(await describe_instances(env.ctx(), dict(params)))
    assert sorted(narrowed) == sorted(engine_alone)


async def test_a_tag_filter_loads_only_the_tagged_rows(env, tiny_image):
    await _launch(env, tiny_image, 6, tags={"Env": "dev"})
    canary = await _launch(env, tiny_image, 1, tags={"Role": "canary"})
    rows = await instance_query.candidate_rows(env.db, ALICE, "us-east-1",
                                               [{"Name": "tag:Role", "Values": ["canary"]}], 0)
    assert [r["instance_id"] for r in rows] == canary
    # another account's identical tag is not a match
    assert await instance_query.candidate_rows(env.db, BOB, "us-east-1",
                                               [{"Name": "tag:Role", "Values": ["canary"]}], 0) == []


async def test_terminated_instances_vanish_after_an_hour_in_the_narrowed_query(env, tiny_image):
    (gone,) = await _launch(env, tiny_image, 1)
    await terminate_instances(env.ctx(), {"InstanceIds": [gone]})
    await env.settle()
    assert gone in _ids(await describe_instances(env.ctx(), {}))
    env.clock.advance(3601)
    assert gone not in _ids(await describe_instances(env.ctx(), {}))
