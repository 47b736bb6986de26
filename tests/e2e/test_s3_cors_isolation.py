"""Tenant isolation for the CORS operations: another account's keys get AccessDenied for
Put/Get/DeleteBucketCors on a bucket they do not own and change nothing; an unsigned request gets
no configuration either; each tenant's configuration is its own."""
from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

RULES = [{"AllowedOrigins": ["https://mine.example"], "AllowedMethods": ["GET"]}]


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def tenant_s3(server, tenant):
    return server.client("s3", account=tenant)


def code_of(call, **params) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_another_tenant_cannot_read_change_or_delete_cors(s3, tenant_s3):
    mine = f"cors-iso-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=mine)
    s3.put_bucket_cors(Bucket=mine, CORSConfiguration={"CORSRules": RULES})
    theirs_rules = [{"AllowedOrigins": ["*"], "AllowedMethods": ["PUT", "DELETE"]}]
    assert code_of(tenant_s3.get_bucket_cors, Bucket=mine) == ("AccessDenied", 403)
    assert code_of(tenant_s3.put_bucket_cors, Bucket=mine,
                   CORSConfiguration={"CORSRules": theirs_rules}) == ("AccessDenied", 403)
    assert code_of(tenant_s3.delete_bucket_cors, Bucket=mine) == ("AccessDenied", 403)
    assert s3.get_bucket_cors(Bucket=mine)["CORSRules"] == RULES      # untouched
    # the owner naming another expected owner is refused as well
    assert code_of(s3.get_bucket_cors, Bucket=mine, ExpectedBucketOwner="999999999999") == (
        "AccessDenied", 403)
    # the tenant's own bucket has its own configuration
    theirs = f"cors-iso-t-{uuid.uuid4().hex[:8]}"
    tenant_s3.create_bucket(Bucket=theirs)
    tenant_s3.put_bucket_cors(Bucket=theirs, CORSConfiguration={"CORSRules": theirs_rules})
    assert tenant_s3.get_bucket_cors(Bucket=theirs)["CORSRules"] == theirs_rules
    assert code_of(s3.get_bucket_cors, Bucket=theirs) == ("AccessDenied", 403)
    assert code_of(s3.delete_bucket_cors, Bucket=theirs) == ("AccessDenied", 403)
    assert s3.get_bucket_cors(Bucket=mine)["CORSRules"] == RULES


def test_anonymous_cannot_read_cors(server, s3):
    mine = f"cors-anon-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=mine)
    s3.put_bucket_cors(Bucket=mine, CORSConfiguration={"CORSRules": RULES})
    for method in ("GET", "DELETE"):
        request = urllib.request.Request(f"{server.endpoint}/{mine}?cors", method=method)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 403 and b"<Code>AccessDenied</Code>" in caught.value.read()
    assert s3.get_bucket_cors(Bucket=mine)["CORSRules"] == RULES
