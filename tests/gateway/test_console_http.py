"""The web console's HTTP side against a live server (fake hypervisor): sign-in checked like a
signature, the session cookie's attributes, CSRF refusals, sign-out, tenant isolation (a tenant's
session never sees another's instances or buckets; the admin sees every account), the `/console`
vs bucket-named-"console" rule, and that the console's numbers are the APIs' to the last decimal."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
from decimal import Decimal

import pytest
import requests

from tests.conftest import NimboServer

TENANT_A = "console-a"
TENANT_B = "console-b"
COSTS = "console-costs"


def register_stub_image(data_dir: str) -> str:
    """A public image from a small stand-in disk (the fake driver never reads it)."""
    from ec2_api.images import register_tiny_image  # noqa: PLC0415
    from gateway.config import Config  # noqa: PLC0415
    from storage.db import Database  # noqa: PLC0415
    art = os.path.join(data_dir, "stub-artifacts")
    os.makedirs(art, exist_ok=True)
    with open(os.path.join(art, "disk.img"), "wb") as fh:
        fh.truncate(4 * 1024 * 1024)

    async def register() -> str:
        db = await Database.open(os.path.join(data_dir, "nimbo.db"))
        try:
            return await register_tiny_image(db, Config(data_dir=data_dir), {"disk": os.path.join(art, "disk.img")})
        finally:
            await db.close()
    return asyncio.run(register())


def start_console_server(prefix: str) -> tuple[NimboServer, str]:
    data_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")   # short: the IMDS socket paths
    config = os.path.join(data_dir, "nimbo.toml")
    with open(config, "w") as fh:
        fh.write("meter_flush_seconds = 0.2\n")
    server = NimboServer(data_dir, extra_args=["--backend", "fake", "--config", config]).start()
    image_id = register_stub_image(data_dir)
    for name in (TENANT_A, TENANT_B):
        server.nimbo("admin", "--data-dir", data_dir, "create-account", name)
    return server, image_id


@pytest.fixture(scope="module")
def live():
    server, image_id = start_console_server("nimbo-console-")
    try:
        yield server, image_id
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


class Browser:
    """What the console's page does, over HTTP: a cookie jar and the CSRF header."""

    def __init__(self, server: NimboServer, account: str | None = None) -> None:
        self.base = server.endpoint
        self.http = requests.Session()
        self.creds = server.credentials(account)
        self.csrf = ""

    def sign_in(self, secret: str | None = None) -> requests.Response:
        response = self.http.post(f"{self.base}/console/api/sign-in", json={
            "accessKeyId": self.creds["AWS_ACCESS_KEY_ID"],
            "secretAccessKey": secret or self.creds["AWS_SECRET_ACCESS_KEY"]})
        if response.ok:
            self.csrf = self.http.get(f"{self.base}/console/api/session").json()["CsrfToken"]
        return response

    def headers(self, **extra) -> dict:
        return {"X-CSRF-Token": self.csrf, **extra}

    def call(self, service: str, operation: str, params: dict | None = None, **headers) -> tuple[int, dict]:
        response = self.http.post(f"{self.base}/console/api/call", headers=self.headers(**headers),
                                  json={"service": service, "operation": operation, "params": params or {}})
        return response.status_code, response.json()

    def ok(self, service: str, operation: str, params: dict | None = None, **headers) -> dict:
        status, body = self.call(service, operation, params, **headers)
        assert status == 200, body
        return body


def signed_in(server: NimboServer, account: str | None = None) -> Browser:
    browser = Browser(server, account)
    assert browser.sign_in().status_code == 200
    return browser


def instance_ids(body: dict) -> set[str]:
    return {i["InstanceId"] for r in body["Reservations"] for i in r["Instances"]}


def test_sign_in_sets_a_strict_httponly_cookie_and_keeps_no_secret(live):
    server, _ = live
    browser = Browser(server, TENANT_A)
    wrong = browser.sign_in(secret="x" * 40)
    assert wrong.status_code == 403 and wrong.json()["Error"]["Code"] == "SignInFailed"
    assert "Set-Cookie" not in wrong.headers
    unknown = requests.post(f"{server.endpoint}/console/api/sign-in",
                            json={"accessKeyId": "AKIANOSUCHKEY0000000", "secretAccessKey": "y" * 40})
    assert unknown.status_code == 403 and unknown.json() == wrong.json()   # no key-exists oracle
    response = browser.sign_in()
    assert response.status_code == 200
    cookie = response.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"):
        assert attribute in cookie
    secret = browser.creds["AWS_SECRET_ACCESS_KEY"]
    session = browser.http.get(f"{server.endpoint}/console/api/session")
    assert session.json()["Name"] == TENANT_A and session.json()["IsAdmin"] is False
    assert secret not in cookie and secret not in session.text and secret not in response.text
    token = browser.http.cookies.get("nimbo_console")
    with sqlite3.connect(os.path.join(server.data_dir, "nimbo.db")) as db:
        rows = db.execute("SELECT * FROM console_sessions").fetchall()
    assert rows and not any(secret in str(row) or token in str(row) for row in rows)


def test_no_session_no_api(live):
    server, _ = live
    anonymous = requests.Session()
    assert anonymous.get(f"{server.endpoint}/console/api/session").status_code == 401
    response = anonymous.post(f"{server.endpoint}/console/api/call",
                              json={"service": "ec2", "operation": "DescribeInstances", "params": {}})
    assert response.status_code == 401 and response.json()["Error"]["Code"] == "NotSignedIn"
    forged = requests.get(f"{server.endpoint}/console/api/session", cookies={"nimbo_console": "forged"})
    assert forged.status_code == 401


def test_every_change_needs_the_csrf_token_from_this_origin(live):
    server, _ = live
    browser = signed_in(server, TENANT_A)
    url = f"{server.endpoint}/console/api/call"
    body = {"service": "s3", "operation": "CreateBucket", "params": {"Bucket": "csrf-victim"}}
    for headers in ({}, {"X-CSRF-Token": "wrong"},
                    {"X-CSRF-Token": browser.csrf, "Origin": "http://evil.example"},
                    {"X-CSRF-Token": browser.csrf, "Sec-Fetch-Site": "cross-site"}):
        response = browser.http.post(url, json=body, headers=headers)
        assert response.status_code == 403 and response.json()["Error"]["Code"] == "InvalidCsrfToken", headers
    assert "csrf-victim" not in [b["Name"] for b in browser.ok("s3", "ListBuckets")["Buckets"]]
    upload = browser.http.put(f"{server.endpoint}/console/api/object?bucket=csrf-victim&key=k", data=b"x")
    assert upload.status_code == 403
    # sign-in from another site's page is refused too (login CSRF)
    foreign = requests.post(f"{server.endpoint}/console/api/sign-in", headers={"Origin": "http://evil.example"},
                            json={"accessKeyId": browser.creds["AWS_ACCESS_KEY_ID"],
                                  "secretAccessKey": browser.creds["AWS_SECRET_ACCESS_KEY"]})
    assert foreign.status_code == 403 and "Set-Cookie" not in foreign.headers
    # with the token, from the same origin: done
    same = browser.http.post(url, json=body, headers={"X-CSRF-Token": browser.csrf, "Origin": server.endpoint})
    assert same.status_code == 200
    browser.ok("s3", "DeleteBucket", {"Bucket": "csrf-victim"})


def test_sign_out_and_a_disabled_key_end_the_session(live):
    server, _ = live
    browser = signed_in(server, TENANT_B)
    cookie = browser.http.cookies.get("nimbo_console")
    out = browser.http.post(f"{server.endpoint}/console/api/sign-out", headers=browser.headers())
    assert out.status_code == 200 and "Max-Age=0" in out.headers["Set-Cookie"]
    replay = requests.get(f"{server.endpoint}/console/api/session", cookies={"nimbo_console": cookie})
    assert replay.status_code == 401
    # a second key of B's, disabled from the admin's console: B's session on it ends
    admin = signed_in(server)
    accounts = admin.http.get(f"{server.endpoint}/console/api/accounts").json()["Accounts"]
    b_id = next(a["AccountId"] for a in accounts if a["Name"] == TENANT_B)
    made = admin.http.post(f"{server.endpoint}/console/api/keys", headers=admin.headers(), json={"account": b_id})
    key = made.json()["AccessKey"]
    assert key["AccountId"] == b_id and len(key["SecretAccessKey"]) == 40
    listed = admin.http.get(f"{server.endpoint}/console/api/keys", params={"account": b_id}).text
    assert key["SecretAccessKey"] not in listed and key["AccessKeyId"] in listed
    second = Browser(server, TENANT_B)
    second.creds = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    assert second.sign_in().status_code == 200
    assert admin.http.post(f"{server.endpoint}/console/api/key-status", headers=admin.headers(),
                           json={"accessKeyId": key["AccessKeyId"], "status": "Inactive"}).status_code == 200
    time.sleep(1.1)   # the accounts' key cache lives a second
    assert second.http.get(f"{server.endpoint}/console/api/session").status_code == 401
    assert second.sign_in().status_code == 403
    # a tenant manages only its own keys
    tenant = signed_in(server, TENANT_A)
    foreign = tenant.http.post(f"{server.endpoint}/console/api/key-delete", headers=tenant.headers(),
                               json={"accessKeyId": key["AccessKeyId"]})
    assert foreign.status_code == 404
    assert tenant.http.post(f"{server.endpoint}/console/api/accounts", headers=tenant.headers(),
                            json={"name": "sneaky"}).status_code == 403


def test_tenants_see_only_their_own_and_the_admin_sees_all(live):
    server, image_id = live
    a, b, admin = signed_in(server, TENANT_A), signed_in(server, TENANT_B), signed_in(server)
    launched = a.ok("ec2", "RunInstances", {"ImageId": image_id, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1})
    instance = launched["Instances"][0]["InstanceId"]
    a.ok("s3", "CreateBucket", {"Bucket": "console-a-only"})
    put = a.http.put(f"{server.endpoint}/console/api/object", params={"bucket": "console-a-only", "key": "secret.txt"},
                     data=b"for A's eyes", headers=a.headers())
    assert put.status_code == 200, put.text

    assert instance in instance_ids(a.ok("ec2", "DescribeInstances"))
    assert instance not in instance_ids(b.ok("ec2", "DescribeInstances"))
    status, error = b.call("ec2", "DescribeInstances", {"InstanceIds": [instance]})
    assert status == 400 and error["Error"]["Code"] == "InvalidInstanceID.NotFound"
    status, error = b.call("ec2", "TerminateInstances", {"InstanceIds": [instance]})
    assert status == 400 and error["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert "console-a-only" not in [x["Name"] for x in b.ok("s3", "ListBuckets")["Buckets"]]
    stolen = b.http.get(f"{server.endpoint}/console/api/object", params={"bucket": "console-a-only", "key": "secret.txt"})
    assert stolen.status_code == 403 and stolen.json()["Error"]["Code"] == "AccessDenied"
    status, error = b.call("s3", "ListObjectsV2", {"Bucket": "console-a-only"})
    assert status == 403 and error["Error"]["Code"] == "AccessDenied"
    # a tenant cannot act as another account
    a_id = a.http.get(f"{server.endpoint}/console/api/session").json()["AccountId"]
    status, error = b.call("ec2", "DescribeInstances", **{"X-Nimbo-Account": a_id})
    assert status == 403 and error["Error"]["Code"] == "AccessDenied"
    presign = b.http.post(f"{server.endpoint}/console/api/presign", headers=b.headers(),
                          json={"bucket": "console-a-only", "key": "secret.txt", "expires": 60})
    assert presign.status_code == 403

    # the admin: every account listed, and any account's resources through "act as"
    names = {x["Name"] for x in admin.http.get(f"{server.endpoint}/console/api/accounts").json()["Accounts"]}
    assert {TENANT_A, TENANT_B, "admin"} <= names
    assert instance in instance_ids(admin.ok("ec2", "DescribeInstances", **{"X-Nimbo-Account": a_id}))
    assert instance not in instance_ids(admin.ok("ec2", "DescribeInstances"))
    overview = {x["Name"]: x for x in admin.http.get(f"{server.endpoint}/console/api/overview").json()["Accounts"]}
    assert overview[TENANT_A]["Instances"] >= 1 and overview[TENANT_A]["Buckets"] >= 1
    assert overview[TENANT_B]["Instances"] == 0 and overview[TENANT_B]["Buckets"] == 0
    assert b.http.get(f"{server.endpoint}/console/api/overview").status_code == 403
    got = admin.http.get(f"{server.endpoint}/console/api/object",
                         params={"bucket": "console-a-only", "key": "secret.txt", "as": a_id})
    assert got.status_code == 200 and got.content == b"for A's eyes"

    # what the console shows is what the API says (boto3, A's own key)
    ec2 = server.client("ec2", TENANT_A)
    api_view = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    console_view = {i["InstanceId"]: i["State"]["Name"] for r in a.ok("ec2", "DescribeInstances")["Reservations"]
                    for i in r["Instances"]}
    assert console_view == api_view


def test_bad_input_gets_the_services_errors_not_500(live):
    server, _ = live
    a = signed_in(server, TENANT_A)
    for service, operation, params, code in (
            ("ec2", "RunInstances", {"MinCount": "one"}, "ValidationError"),
            ("ec2", "DescribeInstances", {"InstanceIds": ["bogus"]}, "InvalidInstanceID.Malformed"),
            ("s3", "GetBucketVersioning", {"Bucket": "no-such-bucket-here"}, "NoSuchBucket"),
            ("s3", "PutObject", {"Bucket": "x", "Key": "y"}, "UnknownOperation"),
            ("iam", "ListUsers", {}, "UnknownService"),
            ("ec2", "NoSuchAction", {}, "UnknownOperation")):
        status, body = a.call(service, operation, params)
        assert 400 <= status < 500 and body["Error"]["Code"] == code, (operation, body)
    garbage = a.http.post(f"{server.endpoint}/console/api/call", data=b"{not json", headers=a.headers())
    assert garbage.status_code == 400 and garbage.json()["Error"]["Code"] == "MalformedJSON"


def test_console_path_vs_a_bucket_named_console(live):
    """The rule: unsigned /console/... is the console; a signed request is S3's, bucket "console"
    included; an unsigned browser GET / goes to the console, any other unsigned GET / stays S3's."""
    server, _ = live
    page = requests.get(f"{server.endpoint}/console/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    s3 = server.client("s3", TENANT_A)
    s3.create_bucket(Bucket="console")
    s3.put_object(Bucket="console", Key="static/index.html", Body=b"my own bucket")
    assert s3.get_object(Bucket="console", Key="static/index.html")["Body"].read() == b"my own bucket"
    assert "console" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.delete_object(Bucket="console", Key="static/index.html")
    s3.delete_bucket(Bucket="console")
    browser_root = requests.get(f"{server.endpoint}/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert browser_root.status_code == 302 and browser_root.headers["Location"] == "/console/"
    anonymous_root = requests.get(f"{server.endpoint}/", headers={"Accept": "*/*"})
    assert anonymous_root.status_code == 403 and b"<Code>AccessDenied</Code>" in anonymous_root.content


def test_costs_agree_to_the_last_decimal_across_console_report_cost_explorer_and_focus(live):
    """Usage that has ended (so the open hour's estimate stays put): the console's Cost Explorer
    total, its CSV and FOCUS downloads, `nimbo billing report` (json and focus) and boto3's
    Cost Explorer give the same Decimal."""
    server, image_id = live
    server.nimbo("admin", "--data-dir", server.data_dir, "create-account", COSTS)   # nothing else running
    a = signed_in(server, COSTS)
    a.ok("s3", "CreateBucket", {"Bucket": "console-costs"})
    for n in range(3):
        put = a.http.put(f"{server.endpoint}/console/api/object", params={"bucket": "console-costs", "key": f"k{n}"},
                         data=b"z" * 1000, headers=a.headers())
        assert put.status_code == 200
        assert a.http.get(f"{server.endpoint}/console/api/object", params={"bucket": "console-costs", "key": f"k{n}"}).ok
        a.ok("s3", "DeleteObject", {"Bucket": "console-costs", "Key": f"k{n}"})
    a.ok("s3", "DeleteBucket", {"Bucket": "console-costs"})
    run = a.ok("ec2", "RunInstances", {"ImageId": image_id, "InstanceType": "t3.micro", "MinCount": 1, "MaxCount": 1})
    instance = run["Instances"][0]["InstanceId"]
    time.sleep(1.0)
    a.ok("ec2", "TerminateInstances", {"InstanceIds": [instance]})
    for _ in range(2):     # all of it, the meter flushed (0.2 s here) and rated; once more if an hour closed between
        time.sleep(0.6)
        totals = _totals(server, a)
        if len(set(totals.values())) == 1:
            break
    assert len(set(totals.values())) == 1, totals
    assert Decimal(totals["console Cost Explorer"]) > 0
    print(totals)


def _totals(server: NimboServer, a: Browser) -> dict[str, str]:
    import datetime as dt  # noqa: PLC0415
    today = dt.datetime.now(dt.timezone.utc).date()
    start = today.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    period = start.strftime("%Y-%m")
    params = {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()}, "Granularity": "MONTHLY",
              "Metrics": ["UnblendedCost"]}
    console_ce = a.ok("ce", "GetCostAndUsage", params)["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]
    boto_ce = server.client("ce", COSTS).get_cost_and_usage(**params)["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]
    rows = list(csv.reader(io.StringIO(a.http.get(f"{server.endpoint}/console/api/costs.csv", params={"period": period}).text)))
    focus_text = a.http.get(f"{server.endpoint}/console/api/focus.csv", params={"period": period}).text
    focus_sum = sum((Decimal(r["BilledCost"]) for r in csv.DictReader(io.StringIO(focus_text))), Decimal(0))
    report = json.loads(server.nimbo("billing", "report", "--data-dir", server.data_dir, "--period", period,
                                     "--account", COSTS, "--format", "json").stdout)
    cli_focus = server.nimbo("billing", "report", "--data-dir", server.data_dir, "--period", period,
                             "--account", COSTS, "--format", "focus").stdout
    cli_focus_sum = sum((Decimal(r["BilledCost"]) for r in csv.DictReader(io.StringIO(cli_focus))), Decimal(0))
    return {"console Cost Explorer": str(Decimal(console_ce)), "boto3 Cost Explorer": str(Decimal(boto_ce)),
            "console CSV": str(Decimal(rows[-1][-1])), "console FOCUS": str(focus_sum),
            "nimbo billing report": str(Decimal(report["total"])), "nimbo billing report --format focus": str(cli_focus_sum)}


def test_an_expired_session_is_refused_and_sign_out_needs_the_token(live):
    server, _ = live
    browser = signed_in(server, TENANT_B)
    refused = browser.http.post(f"{server.endpoint}/console/api/sign-out")      # no CSRF token
    assert refused.status_code == 403
    assert browser.http.get(f"{server.endpoint}/console/api/session").status_code == 200   # still signed in
    with sqlite3.connect(os.path.join(server.data_dir, "nimbo.db")) as db:
        db.execute("UPDATE console_sessions SET expires_at = ?", (time.time() - 1,))
    expired = browser.http.get(f"{server.endpoint}/console/api/session")
    assert expired.status_code == 401 and expired.json()["Error"]["Code"] == "NotSignedIn"


def test_focus_exports_through_the_console_are_the_accounts_own(live):
    server, _ = live
    a, b = signed_in(server, TENANT_A), signed_in(server, TENANT_B)
    spec = {"Name": "console-focus", "DataQuery": {"QueryStatement": "SELECT * FROM FOCUS_1_2_AWS"},
            "DestinationConfigurations": {"S3Destination": {
                "S3Bucket": "console-a-reports", "S3Prefix": "focus", "S3Region": "us-east-1",
                "S3OutputConfigurations": {"OutputType": "CUSTOM", "Format": "TEXT_OR_CSV", "Compression": "GZIP",
                                           "Overwrite": "OVERWRITE_REPORT"}}},
            "RefreshCadence": {"Frequency": "SYNCHRONOUS"}}
    arn = a.ok("bcm-data-exports", "CreateExport", {"Export": spec})["ExportArn"]
    assert [e["ExportArn"] for e in a.ok("bcm-data-exports", "ListExports")["Exports"]] == [arn]
    assert b.ok("bcm-data-exports", "ListExports")["Exports"] == []
    status, error = b.call("bcm-data-exports", "DeleteExport", {"ExportArn": arn})
    assert status == 400 and error["Error"]["Code"] == "ResourceNotFoundException"
    # the same export as boto3 sees it with A's key
    assert server.client("bcm-data-exports", TENANT_A).get_export(ExportArn=arn)["Export"]["Name"] == "console-focus"
    a.ok("bcm-data-exports", "DeleteExport", {"ExportArn": arn})


def test_repeated_failed_sign_ins_are_slowed_down(live):
    """Guessing secrets: after MAX_FAILURES failures from one address for one key id, even the
    right secret waits (429); other keys are not affected."""
    from gateway.console.sessions import MAX_FAILURES  # noqa: PLC0415
    server, _ = live
    server.nimbo("admin", "--data-dir", server.data_dir, "create-account", "console-guessed")
    victim = Browser(server, "console-guessed")
    for _ in range(MAX_FAILURES):
        assert victim.sign_in(secret="wrong-secret-guess-0000").status_code == 403
    blocked = victim.sign_in()
    assert blocked.status_code == 429 and blocked.json()["Error"]["Code"] == "TooManySignInAttempts"
    assert "Set-Cookie" not in blocked.headers
    assert signed_in(server, TENANT_A).csrf     # another key signs in as before


def test_the_screens_operations_with_the_parameters_the_page_sends(live):
    """The requests the EC2 screens make (as their JavaScript shapes them) do what the API does."""
    import base64  # noqa: PLC0415

    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415
    server, _ = live
    a = signed_in(server, TENANT_A)
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    a.ok("ec2", "ImportKeyPair", {"KeyName": "imported", "PublicKeyMaterial": base64.b64encode(public).decode()})
    pairs = {k["KeyName"]: k for k in a.ok("ec2", "DescribeKeyPairs")["KeyPairs"]}
    assert pairs["imported"]["KeyType"] == "ed25519"
    status, error = a.call("ec2", "ImportKeyPair", {"KeyName": "bad", "PublicKeyMaterial": "%%%not base64"})
    assert status == 400 and error["Error"]["Code"] == "ValidationError"
    created = a.ok("ec2", "CreateKeyPair", {"KeyName": "made-here", "KeyType": "ed25519"})
    assert "PRIVATE KEY" in created["KeyMaterial"]
    a.ok("ec2", "DeleteKeyPair", {"KeyName": "made-here"})

    zone = a.ok("ec2", "DescribeAvailabilityZones")["AvailabilityZones"][0]["ZoneName"]
    volume = a.ok("ec2", "CreateVolume", {"Size": 1, "AvailabilityZone": zone, "VolumeType": "gp3"})["VolumeId"]
    status, error = a.call("ec2", "CreateSnapshot", {"VolumeId": volume})
    if status != 200:       # while it is created, as the API says (the screen offers no button then)
        assert error["Error"]["Code"] == "IncorrectState"
    deadline = time.monotonic() + 20
    while a.ok("ec2", "DescribeVolumes", {"VolumeIds": [volume]})["Volumes"][0]["State"] != "available":
        assert time.monotonic() < deadline, "the volume did not become available"
        time.sleep(0.2)
    snapshot = a.ok("ec2", "CreateSnapshot", {"VolumeId": volume})["SnapshotId"]
    owned = a.ok("ec2", "DescribeSnapshots", {"OwnerIds": ["self"]})["Snapshots"]
    assert snapshot in [s["SnapshotId"] for s in owned]

    group = a.ok("ec2", "CreateSecurityGroup", {"GroupName": "web", "Description": "web servers"})["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    a.ok("ec2", "AuthorizeSecurityGroupIngress", {"GroupId": group, "IpPermissions": [rule]})
    described = a.ok("ec2", "DescribeSecurityGroups", {"GroupIds": [group]})["SecurityGroups"][0]
    assert [(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in described["IpPermissions"]] == [(22, "10.0.0.0/8")]
    a.ok("ec2", "RevokeSecurityGroupIngress", {"GroupId": group, "IpPermissions": described["IpPermissions"]})
    assert a.ok("ec2", "DescribeSecurityGroups", {"GroupIds": [group]})["SecurityGroups"][0]["IpPermissions"] == []
    a.ok("ec2", "DeleteSecurityGroup", {"GroupId": group})


def test_every_worker_serves_the_console_screens(live):
    """With several workers (the default: one per core) the console's EC2 and cost calls reach
    the leader wherever the browser's connection landed: each fresh connection here may land on
    any worker, and every one sees the same instances and costs."""
    server, _ = live
    seen = []
    for _ in range(8):      # 8 fresh connections: the kernel spreads them over the workers
        browser = signed_in(server, TENANT_A)
        seen.append(instance_ids(browser.ok("ec2", "DescribeInstances")))
        status, body = browser.call("ce", "GetCostAndUsage", {
            "TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"]})
        assert status == 200, body
        browser.http.close()
    assert all(ids == seen[0] for ids in seen)


def test_over_tls_every_worker_gives_a_secure_cookie(tmp_path):
    """Over TLS the session cookie is ``Secure`` whichever worker took the connection: sign-in is
    relayed to the leader over its unix socket, which learns the client's scheme from the worker
    (and the client's address, for the sign-in limit), never from the client's own headers."""
    import urllib3  # noqa: PLC0415

    from tests.e2e.test_s3_durability import self_signed  # noqa: PLC0415
    cert, key = self_signed(tmp_path)
    data_dir = tempfile.mkdtemp(prefix="nimbo-console-tls-", dir="/tmp")
    server = NimboServer(data_dir, extra_args=["--backend", "fake", "--workers", "2", "--tls-cert", cert,
                                               "--tls-key", key]).start()
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    try:
        for _ in range(10):     # fresh connections: the kernel spreads them over both workers
            browser = Browser(server)
            browser.base = browser.base.replace("http://", "https://")
            browser.http.verify, browser.http.trust_env = False, False   # a CA bundle in the environment would win
            response = browser.sign_in()
            assert response.status_code == 200, response.text
            cookie = response.headers["Set-Cookie"]
            assert "; Secure" in cookie and "HttpOnly" in cookie, cookie
            # a client claiming to have come through a worker is not believed over TCP
            spoofed = browser.http.post(f"{browser.base}/console/api/sign-out",
                                        headers=browser.headers(**{"X-Nimbo-Forwarded-Proto": "http"}))
            assert "; Secure" in spoofed.headers.get("Set-Cookie", "; Secure"), spoofed.headers
            browser.http.close()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
