"""The foundation through real clients against a live server: identity, first EC2 reads, S3's
bucket list, every service's own authentication errors, and bad input that must never be a 500."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import botocore.config
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import NimboServer


def aws_cli(server: NimboServer, *args: str, account: str | None = None, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.credentials(account))
    env.update(env_extra or {})
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    return subprocess.run([sys.executable, "-m", "awscli", *args, "--output", "json"], env=env,
                          text=True, capture_output=True, timeout=120)


def signed(server: NimboServer, service: str, body: str, secret: str | None = None,
           region: str = "us-east-1", method: str = "POST", headers=None) -> tuple[int, str, dict]:
    creds = server.credentials()
    request = AWSRequest(method=method, url=server.endpoint + "/", data=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                                  **(headers or {})})
    SigV4Auth(Credentials(creds["AWS_ACCESS_KEY_ID"], secret or creds["AWS_SECRET_ACCESS_KEY"]),
              service, region).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def error_code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def admin_account_id(server: NimboServer) -> str:
    out = server.nimbo("admin", "--data-dir", server.data_dir, "list-accounts").stdout
    return next(line.split("\t")[0] for line in out.splitlines() if "\tadmin\t" in line)


def test_sts_get_caller_identity_boto3_and_cli(server):
    account_id = admin_account_id(server)
    identity = server.client("sts").get_caller_identity()
    assert identity["Account"] == account_id
    assert identity["Arn"] == f"arn:aws:iam::{account_id}:root"
    assert re.fullmatch(r"[0-9a-f-]{36}", identity["ResponseMetadata"]["RequestId"])
    cli = aws_cli(server, "sts", "get-caller-identity")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Account"] == account_id


def test_tenant_sees_its_own_identity(server, tenant):
    tenant_identity = server.client("sts", account=tenant).get_caller_identity()
    assert tenant_identity["Account"] != admin_account_id(server)
    out = server.nimbo("admin", "--data-dir", server.data_dir, "list-accounts").stdout
    assert f"{tenant_identity['Account']}\t{tenant}\ttenant" in out


def test_describe_regions_and_zones(server):
    ec2 = server.client("ec2")
    regions = ec2.describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == ["us-east-1"]
    assert regions[0]["OptInStatus"] == "opt-in-not-required"
    filtered = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["eu-*"]}])
    assert filtered["Regions"] == []
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert [z["ZoneId"] for z in zones] == ["use1-az1", "use1-az2", "use1-az3"]
    with pytest.raises(ClientError) as err:
        ec2.describe_availability_zones(ZoneNames=["us-east-1z"])
    assert error_code(err.value) == ("InvalidParameterValue", 400)
    with pytest.raises(ClientError) as err:
        ec2.describe_regions(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(err.value) == ("InvalidParameterValue", 400)


def test_describe_account_attributes(server):
    attrs = server.client("ec2").describe_account_attributes(AttributeNames=["default-vpc", "max-instances"])
    values = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
              for a in attrs["AccountAttributes"]}
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", values["default-vpc"][0])
    assert values["max-instances"] == ["20"]


def test_aws_cli_describe_regions(server):
    cli = aws_cli(server, "ec2", "describe-regions")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Regions"][0]["RegionName"] == "us-east-1"


def test_wrong_secret_gets_each_services_error(server):
    creds = server.credentials()
    def client(service):
        return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key="wrong" + creds["AWS_SECRET_ACCESS_KEY"][5:],
                            config=botocore.config.Config(retries={"max_attempts": 1}))
    cases = [("s3", lambda c: c.list_buckets(), ("SignatureDoesNotMatch", 403)),
             ("ec2", lambda c: c.describe_regions(), ("AuthFailure", 401)),
             ("sts", lambda c: c.get_caller_identity(), ("SignatureDoesNotMatch", 403))]
    for service, call, expected in cases:
        with pytest.raises(ClientError) as err:
            call(client(service))
        assert error_code(err.value) == expected, service
        assert err.value.response["ResponseMetadata"]["RequestId"]


def test_unknown_key_gets_each_services_error(server):
    def client(service):
        return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                            aws_access_key_id="AKIANOSUCHKEY0000000", aws_secret_access_key="x" * 40,
                            config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as err:
        client("s3").list_buckets()
    assert error_code(err.value) == ("InvalidAccessKeyId", 403)
    with pytest.raises(ClientError) as err:
        client("ec2").describe_regions()
    assert error_code(err.value) == ("AuthFailure", 401)
    with pytest.raises(ClientError) as err:
        client("sts").get_caller_identity()
    assert error_code(err.value) == ("InvalidClientTokenId", 403)


def test_region_not_served_names_the_expected_region(server):
    with pytest.raises(ClientError) as err:
        server.client("s3", region="eu-west-1").list_buckets()
    assert error_code(err.value) == ("AuthorizationHeaderMalformed", 400)
    assert err.value.response["Error"].get("Region") == "us-east-1"
    with pytest.raises(ClientError) as err:
        server.client("ec2", region="eu-west-1").describe_regions()
    assert error_code(err.value)[1] in (400, 401)


def test_unknown_and_unimplemented_actions(server):
    status, body, headers = signed(server, "ec2", "Action=FlyToTheMoon&Version=2016-11-15")
    assert status == 400 and "<Code>InvalidAction</Code>" in body and "<RequestID>" in body
    status, body, _ = signed(server, "ec2", "Action=DescribeSpotFleetRequests&Version=2016-11-15")
    assert status == 400 and "<Code>UnsupportedOperation</Code>" in body
    assert "DescribeSpotFleetRequests" in body


def test_bad_parameters_are_4xx_never_500(server):
    cases = [
        "Action=DescribeRegions&Version=2016-11-15&DryRun=maybe",
        "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id&Filter.1.Value.1=i-1&MaxResults=-5",
        "Action=DescribeAvailabilityZones&Version=2016-11-15&AllAvailabilityZones=maybe",
        "Action=DescribeInstances&Version=2016-11-15&MaxResults=abc",
        "Action=DescribeRegions&Version=2016-11-15&%%%=%%%",
        "Version=2016-11-15",
    ]
    for body in cases:
        status, text, _ = signed(server, "ec2", body)
        assert 400 <= status < 500, (body, status, text)
        assert "<Errors><Error><Code>" in text and "Traceback" not in text, text
    status, text, _ = signed(server, "sts", "Action=GetCallerIdentity&Version=2011-06-15")
    assert status == 200 and "<GetCallerIdentityResult>" in text


def test_unsigned_ec2_is_refused(server):
    req = urllib.request.Request(server.endpoint + "/?Action=DescribeRegions&Version=2016-11-15")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    body = err.value.read().decode()
    assert err.value.code == 401 and "<Code>MissingAuthenticationToken</Code>" in body


def test_oversized_body_is_refused_and_server_stays_up(server):
    status, text, _ = signed(server, "ec2", "Action=DescribeRegions&Version=2016-11-15&Pad=" + "x" * (17 * 1024 * 1024))
    assert 400 <= status < 500
    assert server.client("ec2").describe_regions()["Regions"]


def test_s3_list_buckets_empty_with_owner(server, tenant):
    s3 = server.client("s3", account=tenant)
    listing = s3.list_buckets()
    assert listing["Buckets"] == []
    assert re.fullmatch(r"[0-9a-f]{64}", listing["Owner"]["ID"])
    assert listing["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert listing["ResponseMetadata"]["HTTPHeaders"]["x-amz-id-2"]


def test_credentials_command_makes_a_shell_talk_to_nimbo(server):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    script = (f'eval "$({sys.executable} -m gateway.cli credentials --data-dir {server.data_dir})"; '
              f'export AWS_ENDPOINT_URL={server.endpoint}; '
              f'{sys.executable} -m awscli sts get-caller-identity --output text --query Account')
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    out = subprocess.run(["bash", "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)) + "/..",
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == admin_account_id(server)


def test_disabled_and_deleted_keys_stop_working(server):
    out = server.nimbo("admin", "--data-dir", server.data_dir, "create-account", "shortlived").stdout
    account_id = out.split("\t")[0]
    key_id, secret = server.nimbo("admin", "--data-dir", server.data_dir, "create-key",
                                  account_id).stdout.strip().split("\t")
    sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id=key_id, aws_secret_access_key=secret)
    assert sts.get_caller_identity()["Account"] == account_id
    server.nimbo("admin", "--data-dir", server.data_dir, "disable-key", key_id)
    import time
    time.sleep(1.2)  # the key cache lives one second
    with pytest.raises(ClientError) as err:
        sts.get_caller_identity()
    assert error_code(err.value) == ("InvalidClientTokenId", 403)
    listed = server.nimbo("admin", "--data-dir", server.data_dir, "list-keys", account_id).stdout
    assert f"{key_id}\t{account_id}\tInactive" in listed
    server.nimbo("admin", "--data-dir", server.data_dir, "delete-key", key_id)
    assert key_id not in server.nimbo("admin", "--data-dir", server.data_dir, "list-keys").stdout


def test_imported_key_works(server):
    server.nimbo("admin", "--data-dir", server.data_dir, "create-account", "migrated",
                 "--account-id", "210987654321")
    server.nimbo("admin", "--data-dir", server.data_dir, "create-key", "migrated",
                 "--access-key-id", "AKIAIMPORTEDKEY00001", "--secret-access-key",
                 "imported/secret/key/0123456789abcdefghij")
    sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id="AKIAIMPORTEDKEY00001",
                       aws_secret_access_key="imported/secret/key/0123456789abcdefghij")
    assert sts.get_caller_identity()["Account"] == "210987654321"


def test_secrets_never_logged_and_store_is_private(server):
    creds = server.credentials()
    server.client("sts").get_caller_identity()
    assert creds["AWS_SECRET_ACCESS_KEY"] not in server.log()
    mode = os.stat(os.path.join(server.data_dir, "nimbo.db")).st_mode & 0o777
    assert mode == 0o600


def test_sigterm_shuts_down_cleanly(fresh_server):
    fresh_server.start()
    assert fresh_server.client("sts").get_caller_identity()["Account"]
    assert fresh_server.stop(signal.SIGTERM) == 0
    assert "shutting down" in fresh_server.log()


def test_two_regions_each_with_own_zones(tmp_path):
    srv = NimboServer(str(tmp_path / "d"), extra_args=["--region", "us-east-1,eu-west-1"]).start()
    try:
        ec2 = srv.client("ec2", region="eu-west-1")
        assert [r["RegionName"] for r in ec2.describe_regions()["Regions"]] == ["us-east-1", "eu-west-1"]
        zones = ec2.describe_availability_zones()["AvailabilityZones"]
        assert {z["RegionName"] for z in zones} == {"eu-west-1"}
        assert zones[0]["ZoneId"] == "euw1-az1"
    finally:
        srv.stop()
