"""DescribeInstances remembers what it shows of each instance's ``data`` JSON
(``instances.shown_data``) only together with the text it parsed: whatever changes that text
(ModifyInstanceMetadataOptions, AttachVolume ...), in this process or
another worker, shows in the next description, byte for byte what a cold memo describes."""
from __future__ import annotations

import botocore.session

from ec2_api import instances
from ec2_api.instance_actions import modify_instance_metadata_options
from ec2_api.instances import describe_instances, run_instances, shown_data
from ec2_api.instance_store import update_data
from ec2_api.volume_attachments import attach_volume
from ec2_api.volumes import create_volume
from gateway.protocols.query import encode_query_response

_OP = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")


async def _body(env) -> bytes:
    return encode_query_response(_OP, await describe_instances(env.ctx(), {}), "req-1", "ec2")


async def test_a_changed_data_text_shows_in_the_next_description(env, tiny_image):
    ctx = env.ctx()
    first, second = [i["InstanceId"] for i in (await run_instances(ctx, {
        "ImageId": tiny_image, "MinCount": 2, "MaxCount": 2, "InstanceType": "t3.micro"}))["Instances"]]
    await env.settle()
    warm = await _body(env)
    assert "<httpTokens>optional</httpTokens>" in warm.decode() and "/dev/sdf" not in warm.decode()
    await modify_instance_metadata_options(ctx, {"InstanceId": first, "HttpTokens": "required"})
    volume = (await create_volume(ctx, {"AvailabilityZone": "us-east-1a", "Size": 1}))["VolumeId"]
    await env.settle()
    await attach_volume(ctx, {"VolumeId": volume, "InstanceId": second, "Device": "/dev/sdf"})
    await env.settle()
    changed = await _body(env)
    text = changed.decode()
    assert "<httpTokens>required</httpTokens>" in text and "<deviceName>/dev/sdf</deviceName>" in text
    instances._SHOWN_DATA.clear()
    assert await _body(env) == changed      # a cold memo describes the same


async def test_a_change_made_elsewhere_is_seen_by_the_text_not_by_an_event(env, tiny_image):
    """Another worker process changes the row (here: straight in the database, as its transaction
    would): this process's memo entry no longer matches the text and is not used."""
    ctx = env.ctx()
    (instance_id,) = [i["InstanceId"] for i in (await run_instances(ctx, {
        "ImageId": tiny_image, "MinCount": 1, "MaxCount": 1}))["Instances"]]
    await env.settle()
    assert "<hostId>" not in (await _body(env)).decode()
    async with env.db.transaction() as tx:
        await update_data(tx, instance_id, host_id="h-0123456789abcdef0", monitoring=True)
    text = (await _body(env)).decode()
    assert "<hostId>h-0123456789abcdef0</hostId>" in text and "<state>enabled</state>" in text


def test_the_memo_is_keyed_by_the_whole_text_and_bounded(monkeypatch):
    monkeypatch.setattr(instances, "_SHOWN_DATA", {})
    monkeypatch.setattr(instances, "_SHOWN_DATA_MAX", 3)
    row = {"instance_id": "i-1", "data": '{"architecture": "x86_64", "boot": {"kernel": "/k"}}'}
    assert shown_data(row) == {"architecture": "x86_64"}          # only what a description shows
    assert shown_data(row) is shown_data(dict(row))                # the same text: remembered
    changed = {"instance_id": "i-1", "data": '{"architecture": "arm64"}'}
    assert shown_data(changed) == {"architecture": "arm64"}        # another text: parsed again
    for n in range(10):
        shown_data({"instance_id": f"i-{n}", "data": "{}"})
        assert len(instances._SHOWN_DATA) <= 3
