"""The access log names what was asked (issue 9 item 23): the operation even when Nimbo does not
support it, and the query's sub-resource (``?versioning``), never a signature or a key."""
from __future__ import annotations

import asyncio
import logging

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.gateway.test_hot_path import _request, _start


@pytest.fixture
async def loud(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="nimbo.access")
    running = await _start(tmp_path, access_log=True)
    yield running
    await running.server.close()


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nimbo.access"]


async def test_unsupported_s3_operation_and_sub_resource_are_logged(loud, caplog):
    await _request("PUT", loud.presign("create_bucket", Bucket="logged"))
    status, _, _ = await _request("GET", loud.presign("get_bucket_analytics_configuration",
                                                      Bucket="logged", Id="a1"))
    assert status == 501
    await _request("GET", loud.presign("get_bucket_versioning", Bucket="logged"))
    lines = _lines(caplog)
    analytics = [line for line in lines if "analytics" in line]
    assert len(analytics) == 1
    assert " GET /logged?analytics&id s3 GetBucketAnalyticsConfiguration -> 501 " in analytics[0]
    assert any(" GET /logged?versioning s3 GetBucketVersioning -> " in line for line in lines), lines
    assert not any("Signature" in line or "Credential" in line or "a1" in line for line in lines)


async def test_unsupported_ec2_action_is_logged_by_name(loud, caplog):
    ec2 = boto3.client("ec2", endpoint_url=loud.endpoint, region_name="us-east-1",
                       aws_access_key_id=loud.s3._request_signer._credentials.access_key,
                       aws_secret_access_key=loud.s3._request_signer._credentials.secret_key,
                       config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(ec2.describe_spot_price_history)
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperation"
    (line,) = [line for line in _lines(caplog) if " ec2 " in line]
    assert " POST / ec2 DescribeSpotPriceHistory -> 400 " in line
