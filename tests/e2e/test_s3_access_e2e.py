"""S3 access control against a live server, as users meet it: aws-cli's ``--acl public-read``
fetched with plain curl, a second account reading through a bucket policy, anonymous boto3
clients, Block Public Access refusing, grants by email, AWS's error codes for bad input, and
tenant isolation of every access-control operation."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import uuid

import boto3
import botocore.config
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.test_foundation import aws_cli


def name(hint: str) -> str:
    return f"{hint}-{uuid.uuid4().hex[:10]}"


def code_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def fails(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def tenant_s3(server, tenant):
    return server.client("s3", account=tenant)


@pytest.fixture(scope="module")
def anon_s3(server):
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        config=botocore.config.Config(signature_version=UNSIGNED,
                                                      retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def reader(server):
    """A third account with an email address (grants by email name it)."""
    account = name("reader")
    email = f"{account}@example.com"
    server.nimbo("admin", "--data-dir", server.data_dir, "create-account", account, "--email", email)
    return account, email


def curl(url: str) -> tuple[int, bytes]:
    done = subprocess.run(["curl", "-sS", "-g", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}",
                           url], capture_output=True, timeout=60, check=True)
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def cli_ok(server, *args):
    done = aws_cli(server, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def account_id(client) -> str:
    return boto3.client("sts", endpoint_url=client.meta.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=client._request_signer._credentials.access_key,
                        aws_secret_access_key=client._request_signer._credentials.secret_key
                        ).get_caller_identity()["Account"]


# --- the walk-through ------------------------------------------------------------------

def test_public_read_with_aws_cli_then_curl_then_blocked(server, tmp_path):
    bucket = name("public")
    cli_ok(server, "s3api", "create-bucket", "--bucket", bucket, "--object-ownership", "ObjectWriter")
    # a new bucket blocks public ACLs, as S3's do: the upload with a public ACL is refused
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello, world\n")
    refused = aws_cli(server, "s3", "cp", str(src), f"s3://{bucket}/hello.txt", "--acl", "public-read")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
    cli_ok(server, "s3api", "delete-public-access-block", "--bucket", bucket)
    cli_ok(server, "s3", "cp", str(src), f"s3://{bucket}/hello.txt", "--acl", "public-read")
    cli_ok(server, "s3", "cp", str(src), f"s3://{bucket}/private.txt")
    status, body = curl(f"{server.endpoint}/{bucket}/hello.txt")
    assert (status, body) == (200, b"hello, world\n")
    status, body = curl(f"{server.endpoint}/{bucket}/private.txt")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    status, body = curl(f"{server.endpoint}/{bucket}/missing.txt")   # no ListBucket: 403
    assert status == 403 and b"AccessDenied" in body
    cli_ok(server, "s3api", "put-public-access-block", "--bucket", bucket,
           "--public-access-block-configuration",
           "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true")
    status, body = curl(f"{server.endpoint}/{bucket}/hello.txt")
    assert status == 403 and b"AccessDenied" in body


def test_second_account_reads_through_a_bucket_policy(s3, tenant_s3, anon_s3):
    bucket = name("shared")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="reports/q1.csv", Body=b"a,b\n")
    s3.put_object(Bucket=bucket, Key="private/x", Body=b"x")
    assert code_of(fails(tenant_s3.get_object, Bucket=bucket, Key="reports/q1.csv")) == \
        ("AccessDenied", 403)
    tenant = account_id(tenant_s3)
    text = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadReports", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{tenant}:root"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/reports/*"},
        {"Sid": "ListReports", "Effect": "Allow", "Principal": {"AWS": tenant},
         "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": "reports/*"}}}]}, indent=2)
    s3.put_bucket_policy(Bucket=bucket, Policy=text)
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == text          # as given
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    assert tenant_s3.get_object(Bucket=bucket, Key="reports/q1.csv")["Body"].read() == b"a,b\n"
    listed = tenant_s3.list_objects_v2(Bucket=bucket, Prefix="reports/")
    assert [c["Key"] for c in listed["Contents"]] == ["reports/q1.csv"]
    assert code_of(fails(tenant_s3.list_objects_v2, Bucket=bucket)) == ("AccessDenied", 403)
    assert code_of(fails(tenant_s3.get_object, Bucket=bucket, Key="private/x"))[1] == 403
    assert code_of(fails(tenant_s3.put_object, Bucket=bucket, Key="reports/q2.csv", Body=b""))[1] == 403
    assert code_of(fails(anon_s3.get_object, Bucket=bucket, Key="reports/q1.csv"))[1] == 403
    # ...and the copy of a granted object into the tenant's own bucket
    theirs = name("tenant-copy")
    tenant_s3.create_bucket(Bucket=theirs)
    tenant_s3.copy_object(Bucket=theirs, Key="q1.csv",
                          CopySource={"Bucket": bucket, "Key": "reports/q1.csv"})
    assert tenant_s3.get_object(Bucket=theirs, Key="q1.csv")["Body"].read() == b"a,b\n"
    s3.delete_bucket_policy(Bucket=bucket)
    assert code_of(fails(tenant_s3.get_object, Bucket=bucket, Key="reports/q1.csv"))[1] == 403


def test_anonymous_access_by_public_policy_and_restrict(s3, anon_s3, tenant_s3):
    bucket = name("website")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"<h1>hi</h1>")
    public = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    assert code_of(fails(s3.put_bucket_policy, Bucket=bucket, Policy=public)) == ("AccessDenied", 403)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    s3.put_bucket_policy(Bucket=bucket, Policy=public)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anon_s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"<h1>hi</h1>"
    assert anon_s3.head_object(Bucket=bucket, Key="index.html")["ContentLength"] == 11
    assert code_of(fails(anon_s3.list_objects_v2, Bucket=bucket))[1] == 403
    assert code_of(fails(anon_s3.put_object, Bucket=bucket, Key="x", Body=b"x"))[1] == 403
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicPolicy": False, "RestrictPublicBuckets": True})
    assert code_of(fails(anon_s3.get_object, Bucket=bucket, Key="index.html"))[1] == 403
    assert code_of(fails(tenant_s3.get_object, Bucket=bucket, Key="index.html"))[1] == 403
    assert s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"<h1>hi</h1>"


def test_grants_by_email_and_canonical_id(server, s3, reader):
    account, email = reader
    reader_s3 = server.client("s3", account=account)
    bucket = name("grants")
    s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerPreferred")
    s3.put_object(Bucket=bucket, Key="k", Body=b"for the reader")
    s3.put_object_acl(Bucket=bucket, Key="k", GrantRead=f'emailAddress="{email}"')
    assert reader_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"for the reader"
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    reader_id = reader_s3.list_buckets()["Owner"]["ID"]
    assert any(g["Grantee"].get("ID") == reader_id and g["Permission"] == "READ" for g in grants)
    # the AccessControlPolicy body: bucket READ for the reader by canonical id
    acl = s3.get_bucket_acl(Bucket=bucket)
    acl["Grants"].append({"Grantee": {"Type": "CanonicalUser", "ID": reader_id}, "Permission": "READ"})
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={"Owner": acl["Owner"],
                                                          "Grants": acl["Grants"]})
    assert [c["Key"] for c in reader_s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    # writes the reader makes are its own (BucketOwnerPreferred without the canned ACL)
    assert code_of(fails(reader_s3.put_object, Bucket=bucket, Key="w", Body=b""))[1] == 403


# --- bad input ---------------------------------------------------------------------------------

def signed_put(server, path: str, body: bytes, headers=None) -> tuple[int, bytes]:
    creds = server.credentials()
    headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
               **(headers or {})}
    request = AWSRequest(method="PUT", url=server.endpoint + path, data=body, headers=headers)
    S3SigV4Auth(Credentials(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"]), "s3",
              "us-east-1").add_auth(request)
    import urllib.request
    prepared = urllib.request.Request(request.url, data=body, method="PUT",
                                      headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_bad_input_gets_aws_codes(server, s3):
    bucket = name("badinput")
    s3.create_bucket(Bucket=bucket, ObjectOwnership="ObjectWriter")
    s3.delete_public_access_block(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    cases = [
        (s3.put_bucket_acl, {"ACL": "public-read", "GrantRead": 'id="abc"'}, ("InvalidRequest", 400)),
        (s3.put_bucket_acl, {"GrantRead": 'emailAddress="nobody@nowhere.example"'},
         ("UnresolvableGrantByEmailAddress", 400)),
        (s3.put_bucket_acl, {"GrantRead": 'id="' + "f" * 64 + '"'}, ("InvalidArgument", 400)),
        (s3.put_object_acl, {"Key": "k", "GrantRead": "garbage"}, ("InvalidArgument", 400)),
        (s3.put_object_acl, {"Key": "k", "AccessControlPolicy": {"Grants": [
            {"Grantee": {"Type": "Group", "URI": "http://example.com/everyone"},
             "Permission": "READ"}], "Owner": {"ID": "x"}}}, ("InvalidArgument", 400)),
        (s3.put_bucket_policy, {"Policy": "{not json"}, ("MalformedPolicy", 400)),
        (s3.put_bucket_policy, {"Policy": json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
            "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})},
         ("MalformedPolicy", 400)),
        (s3.put_bucket_policy, {"Policy": json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/{'k' * 30000}"}]})}, ("MalformedPolicy", 400)),
        (s3.get_bucket_policy, {}, ("NoSuchBucketPolicy", 404)),
    ]
    for call, params, expected in cases:
        assert code_of(fails(call, Bucket=bucket, **params)) == expected, (call, params)
    # XML that is not XML, and a grantee type S3 does not have: 400, never a 500
    status, body = signed_put(server, f"/{bucket}?acl", b"<AccessControlPolicy><Grants><oops")
    assert status == 400 and b"<Code>MalformedACLError</Code>" in body
    status, body = signed_put(server, f"/{bucket}?acl", (
        b'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b'<Owner><ID>x</ID></Owner><AccessControlList>'
        b'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Robot">'
        b'<ID>x</ID></Grantee><Permission>READ</Permission></Grant></AccessControlList>'
        b'</AccessControlPolicy>'))
    assert status == 400 and b"<Code>MalformedACLError</Code>" in body
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1    # nothing was changed


# --- tenant isolation: every access-control operation ------------------------------------------

def test_access_control_operations_are_isolated(s3, tenant_s3, anon_s3):
    bucket = name("isolated")
    s3.create_bucket(Bucket=bucket, ObjectOwnership="ObjectWriter")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    before = (s3.get_bucket_acl(Bucket=bucket), s3.get_public_access_block(Bucket=bucket),
              s3.get_bucket_ownership_controls(Bucket=bucket))
    policy = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
                                        "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    for client in (tenant_s3, anon_s3):
        calls = [
            ("GetBucketAcl", lambda c: c.get_bucket_acl(Bucket=bucket)),
            ("PutBucketAcl", lambda c: c.put_bucket_acl(Bucket=bucket, ACL="public-read")),
            ("GetObjectAcl", lambda c: c.get_object_acl(Bucket=bucket, Key="k")),
            ("PutObjectAcl", lambda c: c.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")),
            ("PutBucketPolicy", lambda c: c.put_bucket_policy(Bucket=bucket, Policy=policy)),
            ("GetBucketPolicy", lambda c: c.get_bucket_policy(Bucket=bucket)),
            ("DeleteBucketPolicy", lambda c: c.delete_bucket_policy(Bucket=bucket)),
            ("GetBucketPolicyStatus", lambda c: c.get_bucket_policy_status(Bucket=bucket)),
            ("GetPublicAccessBlock", lambda c: c.get_public_access_block(Bucket=bucket)),
            ("PutPublicAccessBlock", lambda c: c.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicAcls": False})),
            ("DeletePublicAccessBlock", lambda c: c.delete_public_access_block(Bucket=bucket)),
            ("GetBucketOwnershipControls", lambda c: c.get_bucket_ownership_controls(Bucket=bucket)),
            ("PutBucketOwnershipControls", lambda c: c.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})),
            ("DeleteBucketOwnershipControls",
             lambda c: c.delete_bucket_ownership_controls(Bucket=bucket)),
        ]
        for what, call in calls:
            assert code_of(fails(call, client)) == ("AccessDenied", 403), (what, client)
    after = (s3.get_bucket_acl(Bucket=bucket), s3.get_public_access_block(Bucket=bucket),
             s3.get_bucket_ownership_controls(Bucket=bucket))
    for one, two in zip(before, after):
        one.pop("ResponseMetadata"), two.pop("ResponseMetadata")
    assert before == after
    with pytest.raises(ClientError):
        s3.get_bucket_policy(Bucket=bucket)


# --- crash safety ------------------------------------------------------------------------------

def test_acknowledged_access_settings_survive_kill_9(fresh_server, tmp_path):
    """ACLs (of a bucket and of object versions), a policy, ownership controls and a public
    access block acknowledged before a kill -9 are there after the restart; a deleted bucket's
    settings are not."""
    import os
    import signal
    srv = fresh_server.start()
    s3 = srv.client("s3")
    s3.create_bucket(Bucket="shared-kept", ObjectOwnership="BucketOwnerPreferred")
    s3.delete_public_access_block(Bucket="shared-kept")
    s3.put_object(Bucket="shared-kept", Key="inline", Body=b"small", ACL="public-read")
    big = os.urandom(200_000)
    s3.put_object(Bucket="shared-kept", Key="blob", Body=big)
    s3.put_object_acl(Bucket="shared-kept", Key="blob", ACL="public-read")
    s3.put_bucket_acl(Bucket="shared-kept", ACL="public-read")
    policy = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": "arn:aws:s3:::shared-kept/denied/*"}]})
    s3.put_bucket_policy(Bucket="shared-kept", Policy=policy)
    s3.create_bucket(Bucket="gone-soon")
    s3.put_bucket_policy(Bucket="gone-soon", Policy=json.dumps({"Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::gone-soon/*"}]}))
    s3.delete_bucket(Bucket="gone-soon")
    srv.stop(signal.SIGKILL)
    os.unlink(os.path.join(srv.data_dir, "endpoint"))
    srv.start()
    s3 = srv.client("s3")
    assert curl(f"{srv.endpoint}/shared-kept/inline") == (200, b"small")
    assert curl(f"{srv.endpoint}/shared-kept/blob") == (200, big)
    status, listing = curl(f"{srv.endpoint}/shared-kept")
    assert status == 200 and b"<Key>blob</Key>" in listing          # bucket READ for AllUsers
    assert s3.get_bucket_policy(Bucket="shared-kept")["Policy"] == policy
    rules = s3.get_bucket_ownership_controls(Bucket="shared-kept")["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    assert code_of(fails(s3.get_public_access_block, Bucket="shared-kept")) == \
        ("NoSuchPublicAccessBlockConfiguration", 404)
    s3.create_bucket(Bucket="gone-soon")
    assert code_of(fails(s3.get_bucket_policy, Bucket="gone-soon")) == ("NoSuchBucketPolicy", 404)
