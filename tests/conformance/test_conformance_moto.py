"""The suite against live servers: moto's (a peer that mostly conforms) and a deliberately broken
one (whose deviations must show as FAIL with the right path)."""
from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from conformance.context import RunState, Target
from conformance.registry import Scenario, load_scenarios, select
from conformance.runner import FAIL, PASS, run_all

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What moto 5.2.1 gets, and why: it checks no signatures (every auth scenario fails: the call
# succeeds), ignores DescribeRegions' region-name filter, answers an unknown EC2 action with an HTML
# 500, and serves a presigned URL whose key was changed after signing. EC2 instances and key pairs
# (conformance/scenarios/ec2_instances.py): its key fingerprints are not AWS's (created RSA: not
# the SHA-1 of the PKCS#8 key; ed25519: not base64 SHA-256), it launches with any image, key name
# or instance type, answers NotFound for malformed ids, ignores ClientToken, counts MaxResults in
# reservations, says "stopping" for a stopped instance asked to stop, lets the instance type change
# while running, tags instances that do not exist, and fails an unknown filter with a 500.
EXPECTED_AGAINST_MOTO = {
    "sts:GetCallerIdentity": {"boto3": PASS, "awscli": PASS},
    "sts:GetCallerIdentity (unknown key)": {"boto3": FAIL},
    "sts:GetCallerIdentity (wrong secret)": {"boto3": FAIL},
    "ec2:DescribeAccountAttributes": {"boto3": PASS},
    "ec2:DescribeAvailabilityZones": {"boto3": PASS},
    "ec2:DescribeRegions": {"boto3": FAIL},
    "ec2:DescribeRegions (unknown key)": {"boto3": FAIL},
    "ec2:DescribeRegions (wrong secret)": {"boto3": FAIL},
    "ec2:NoSuchAction (unknown action)": {"raw": FAIL},
    "ec2:CreateKeyPair": {"boto3": FAIL},
    "ec2:CreateKeyPair (duplicate name)": {"boto3": PASS},
    "ec2:DeleteKeyPair": {"boto3": FAIL},
    "ec2:DescribeKeyPairs": {"boto3": FAIL},
    "ec2:DescribeKeyPairs (unknown name)": {"boto3": PASS},
    "ec2:ImportKeyPair": {"boto3": FAIL},
    "ec2:DescribeImages": {"boto3": PASS},
    "ec2:DescribeImages (malformed id)": {"boto3": FAIL},
    "ec2:DescribeImages (unknown id)": {"boto3": PASS},
    "ec2:RunInstances": {"boto3": PASS},
    "ec2:RunInstances (ClientToken)": {"boto3": FAIL},
    "ec2:RunInstances (DryRun)": {"boto3": PASS},
    "ec2:RunInstances (unknown image)": {"boto3": FAIL},
    "ec2:RunInstances (unknown instance type)": {"boto3": FAIL},
    "ec2:RunInstances (unknown key pair)": {"boto3": FAIL},
    "ec2:DescribeInstances": {"boto3": PASS},
    "ec2:DescribeInstances (filters)": {"boto3": FAIL},
    "ec2:DescribeInstances (malformed id)": {"boto3": FAIL},
    "ec2:DescribeInstances (pagination)": {"boto3": FAIL},
    "ec2:DescribeInstances (unknown id)": {"boto3": PASS},
    "ec2:StartInstances": {"boto3": FAIL},
    "ec2:StopInstances": {"boto3": FAIL},
    "ec2:RebootInstances": {"boto3": PASS},
    "ec2:GetConsoleOutput": {"boto3": PASS},
    "ec2:TerminateInstances": {"boto3": PASS},
    "ec2:DescribeInstanceAttribute": {"boto3": FAIL},
    "ec2:ModifyInstanceAttribute": {"boto3": FAIL},
    "ec2:CreateTags": {"boto3": FAIL},
    "ec2:DeleteTags": {"boto3": FAIL},
    "ec2:DescribeTags": {"boto3": FAIL},
    "ec2:DescribeSecurityGroups": {"boto3": PASS},
    "ec2:DescribeSubnets": {"boto3": PASS},
    "ec2:DescribeVpcs": {"boto3": PASS},
    # EBS (conformance/scenarios/ec2_storage.py): moto gives gp3 volumes no Throughput, answers
    # ModifyVolumeAttribute/EnableVolumeIO and Reset/ModifySnapshotAttribute with non-XML bodies,
    # attaches across zones and attaches an attached volume again, says InvalidParameterDependency
    # for io1 without Iops, and registers an image from a snapshot under a new snapshot id.
    "ec2:AttachVolume": {"boto3": FAIL},
    "ec2:AttachVolume (zone mismatch)": {"boto3": FAIL},
    "ec2:CopySnapshot": {"boto3": FAIL},
    "ec2:CreateSnapshot": {"boto3": PASS},
    "ec2:CreateSnapshots": {"boto3": PASS},
    "ec2:CreateVolume": {"boto3": FAIL},
    "ec2:CreateVolume (bad input)": {"boto3": FAIL},
    "ec2:DeleteSnapshot": {"boto3": PASS},
    "ec2:DeleteSnapshot (unknown id)": {"boto3": PASS},
    "ec2:DeleteVolume": {"boto3": FAIL},
    "ec2:DeleteVolume (unknown id)": {"boto3": PASS},
    "ec2:DescribeSnapshotAttribute": {"boto3": FAIL},
    "ec2:DescribeSnapshots": {"boto3": PASS},
    "ec2:DescribeVolumeAttribute": {"boto3": FAIL},
    "ec2:DescribeVolumeStatus": {"boto3": FAIL},
    "ec2:DescribeVolumes": {"boto3": FAIL},
    "ec2:DescribeVolumesModifications": {"boto3": FAIL},
    "ec2:DetachVolume": {"boto3": FAIL},
    "ec2:EnableVolumeIO": {"boto3": FAIL},
    "ec2:ModifySnapshotAttribute": {"boto3": FAIL},
    "ec2:ModifyVolume": {"boto3": FAIL},
    "ec2:ModifyVolumeAttribute": {"boto3": FAIL},
    "ec2:RegisterImage (from a snapshot)": {"boto3": FAIL},
    "ec2:ResetSnapshotAttribute": {"boto3": FAIL},
    # bring your own image and launch templates (conformance/scenarios/ec2_images_templates.py):
    # moto has no ImportImage or ImportSnapshot tasks, and answers some launch template calls with unparsable XML
    "ec2:ImportImage": {"boto3": FAIL},
    "ec2:ImportImage (not the declared format)": {"boto3": FAIL},
    "ec2:DescribeImportImageTasks": {"boto3": FAIL},
    "ec2:DescribeImportImageTasks (unknown task)": {"boto3": FAIL},
    "ec2:CancelImportTask (unknown task)": {"boto3": FAIL},
    "ec2:ImportSnapshot": {"boto3": FAIL},
    "ec2:ImportSnapshot (not the declared format)": {"boto3": FAIL},
    "ec2:DescribeImportSnapshotTasks": {"boto3": FAIL},
    "ec2:DescribeImportSnapshotTasks (unknown snapshot task)": {"boto3": FAIL},
    "ec2:CancelImportTask (unknown snapshot task)": {"boto3": FAIL},
    "ec2:CreateLaunchTemplate": {"boto3": FAIL},
    "ec2:CreateLaunchTemplate (errors)": {"boto3": PASS},
    "ec2:CreateLaunchTemplate (launch template)": {"boto3": PASS},
    "ec2:CreateLaunchTemplateVersion": {"boto3": FAIL},
    "ec2:DeleteLaunchTemplate": {"boto3": FAIL},
    "ec2:DeleteLaunchTemplateVersions": {"boto3": FAIL},
    "ec2:DescribeLaunchTemplateVersions": {"boto3": FAIL},
    "ec2:DescribeLaunchTemplateVersions (errors)": {"boto3": PASS},
    "ec2:DescribeLaunchTemplates": {"boto3": FAIL},
    "ec2:DescribeLaunchTemplates (errors)": {"boto3": PASS},
    "ec2:ModifyLaunchTemplate": {"boto3": FAIL},
    "ec2:RunInstances (launch template)": {"boto3": PASS},
    "s3:AbortMultipartUpload": {"boto3": PASS},
    "s3:CompleteMultipartUpload": {"boto3": PASS},
    "s3:CreateBucket": {"boto3": PASS},
    "s3:CreateMultipartUpload": {"boto3": PASS},
    "s3:DeleteBucket": {"boto3": PASS},
    "s3:DeleteBucket (not empty)": {"boto3": PASS},
    "s3:DeleteObject": {"boto3": PASS},
    "s3:DeleteObjects": {"boto3": PASS},
    "s3:GetObject": {"boto3": PASS},
    "s3:GetObject (no such key)": {"boto3": PASS},
    "s3:GetObject (presigned)": {"boto3": PASS, "awscli": PASS},
    "s3:GetObject (presigned, sigv2)": {"boto3": PASS},
    "s3:GetObject (presigned, tampered)": {"boto3": FAIL},
    "s3:GetObject (range)": {"boto3": PASS},
    "s3:GetObject (sync)": {"awscli": PASS},
    "s3:HeadBucket": {"boto3": PASS},
    "s3:HeadObject": {"boto3": PASS},
    "s3:ListBuckets": {"boto3": PASS, "awscli": PASS},
    "s3:ListBuckets (unknown key)": {"boto3": FAIL},
    "s3:ListBuckets (wrong secret)": {"boto3": FAIL},
    "s3:ListObjectsV2": {"boto3": PASS},
    "s3:ListObjectsV2 (no such bucket)": {"boto3": PASS},
    "s3:ListObjectsV2 (sync)": {"awscli": PASS},
    "s3:PutObject": {"boto3": PASS},
    "s3:PutObject (presigned)": {"boto3": PASS},
    "s3:PutObject (presigned, sigv2)": {"boto3": PASS},
    "s3:PutObject (sync)": {"awscli": PASS},
    "s3:UploadPart": {"boto3": PASS},
    # versions, tags, object lock, lifecycle (conformance/scenarios/s3_versioning.py): moto
    # omits the delete-marker headers, the null version id, InvalidTag, x-amz-expiration ...
    "s3:DeleteBucketLifecycle": {"boto3": FAIL},
    "s3:DeleteBucketTagging": {"boto3": PASS},
    "s3:DeleteObjectTagging": {"boto3": FAIL},
    "s3:GetBucketLifecycleConfiguration": {"boto3": FAIL},
    "s3:GetBucketTagging": {"boto3": PASS},
    "s3:GetBucketVersioning": {"boto3": FAIL},
    "s3:GetObject (bad version id)": {"boto3": FAIL},
    "s3:GetObjectLegalHold": {"boto3": FAIL},
    "s3:GetObjectLockConfiguration": {"boto3": FAIL},
    "s3:GetObjectRetention": {"boto3": FAIL},
    "s3:GetObjectTagging": {"boto3": FAIL},
    "s3:ListObjectVersions": {"boto3": FAIL},
    "s3:ListObjectVersions (unversioned bucket)": {"boto3": PASS},
    "s3:PutBucketLifecycleConfiguration": {"boto3": FAIL},
    "s3:PutBucketTagging": {"boto3": PASS},
    "s3:PutBucketVersioning": {"boto3": FAIL},
    "s3:PutBucketVersioning (suspended)": {"boto3": FAIL},
    "s3:PutObjectLegalHold": {"boto3": FAIL},
    "s3:PutObjectLockConfiguration": {"boto3": FAIL},
    "s3:PutObjectLockConfiguration (invalid)": {"boto3": FAIL},
    "s3:PutObjectRetention": {"boto3": FAIL},
    "s3:PutObjectTagging": {"boto3": FAIL},
}
# EC2 networking (conformance/scenarios/ec2_network.py): moto keeps no rule descriptions set by
# UpdateSecurityGroupRuleDescriptions*, deletes an attached interface, keeps a terminated instance's
# interface, and answers DescribeAddressesAttribute with a body that is not XML.
EXPECTED_AGAINST_MOTO.update({
    f"ec2:{op}": {"boto3": PASS} for op in (
        "AllocateAddress", "AssociateDhcpOptions", "AssociateRouteTable", "AssociateVpcCidrBlock",
        "AttachInternetGateway", "AuthorizeSecurityGroupEgress", "AuthorizeSecurityGroupIngress",
        "CreateDhcpOptions", "CreateInternetGateway", "CreateRoute", "CreateRouteTable", "CreateSecurityGroup",
        "CreateSubnet", "CreateVpc", "CreateVpc (CIDR out of range)", "DeleteDhcpOptions",
        "DeleteInternetGateway", "DeleteRoute", "DeleteRouteTable", "DeleteSecurityGroup", "DeleteSubnet",
        "DeleteVpc", "DescribeAddresses", "DescribeDhcpOptions", "DescribeInternetGateways",
        "DescribeNetworkAcls", "DescribeRouteTables", "DescribeSecurityGroupRules", "DescribeVpcAttribute",
        "DetachInternetGateway", "DisassociateRouteTable", "DisassociateVpcCidrBlock", "ModifySubnetAttribute",
        "ModifyVpcAttribute", "ReleaseAddress", "ReplaceRoute", "ReplaceRouteTableAssociation",
        "RevokeSecurityGroupEgress", "RevokeSecurityGroupIngress")})
EXPECTED_AGAINST_MOTO.update({
    f"ec2:{op}": {"boto3": FAIL} for op in (
        "AssignPrivateIpAddresses", "AttachNetworkInterface", "CreateNetworkInterface", "DeleteNetworkInterface",
        "DeleteNetworkInterface (attached)", "DescribeAddressesAttribute", "DescribeNetworkInterfaceAttribute",
        "DescribeNetworkInterfaces", "DetachNetworkInterface", "ModifyAddressAttribute",
        "ModifyNetworkInterfaceAttribute", "ModifySecurityGroupRules", "UnassignPrivateIpAddresses",
        "UpdateSecurityGroupRuleDescriptionsEgress", "UpdateSecurityGroupRuleDescriptionsIngress")})
# moto predates S3's default encryption (2023): no x-amz-server-side-encryption on new objects, no
# SSE-C answer headers, ServerSideEncryptionConfigurationNotFoundError for a bucket without a
# configuration (conformance/scenarios/s3_encryption.py).
EXPECTED_AGAINST_MOTO.update({
    f"s3:{row}": {"boto3": FAIL} for row in (
        "PutObject (SSE-S3 by default)", "HeadObject (SSE-S3 by default)", "PutObject (SSE-C)",
        "GetObject (SSE-C)", "PutBucketEncryption", "GetBucketEncryption",
        "DeleteBucketEncryption")})
# S3 CORS (conformance/scenarios/s3_cors.py): moto accepts an unsupported method, and answers a
# preflight with the last rule's headers and an actual request without Vary.
EXPECTED_AGAINST_MOTO.update({
    "s3:PutBucketCors": {"boto3": PASS}, "s3:GetBucketCors": {"boto3": PASS},
    "s3:DeleteBucketCors": {"boto3": PASS}, "s3:PutBucketCors (invalid)": {"boto3": FAIL},
    "s3:OPTIONS (CORS preflight)": {"raw": FAIL}, "s3:GetObject (CORS Origin)": {"raw": FAIL}})

# S3 access control (conformance/scenarios/s3_access.py): moto predates S3's 2023 defaults (no
# ownership controls nor public access block on a new bucket, so no BlockPublicPolicy refusal)
# and stores any policy text unchecked.
EXPECTED_AGAINST_MOTO.update({
    f"s3:{row}": {"boto3": FAIL} for row in (
        "GetBucketOwnershipControls (new bucket)", "GetPublicAccessBlock (new bucket)",
        "PutBucketPolicy", "GetBucketPolicy", "GetBucketPolicyStatus", "DeleteBucketPolicy",
        "PutBucketPolicy (malformed)")})
EXPECTED_AGAINST_MOTO.update({
    f"s3:{row}": {"boto3": PASS} for row in (
        "PutObjectAcl (public-read)", "GetObjectAcl (public-read)",
        "PutBucketAcl (canned ACL with grant headers)", "GetBucketAcl (canned ACL with grant headers)")})

# aws-cli costs ~1.3 s of CPU a call on this machine: the test leaves out the scenarios that call it
# most (they run with `python -m conformance`; the ones kept cover JSON, errors and high-level s3).
HEAVY_AWSCLI = ["ec2.describe_regions_cli", "ec2.describe_availability_zones_cli",
                "ec2.describe_account_attributes_cli", "ec2.wrong_secret_cli", "ec2.key_pairs_cli",
                "ec2.instances_cli", "ec2.security_group_cli", "ec2.volumes_cli", "s3.s3api_objects",
                "s3.cp_roundtrip", "s3.cp_multipart", "s3.ls_recursive", "s3.rm_recursive",
                "ec2.import_image_cli", "ec2.launch_template_cli", "ec2.run_instances_resolve_ssm"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto did not start")


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def suite(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "conformance", "--endpoint", endpoint,
                           "--access-key", "testing", "--secret-key", "testing",
                           "--region", "us-east-1", "-q", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_whole_suite_against_moto(moto_endpoint, tmp_path):
    """The scenarios (but HEAVY_AWSCLI), through the command line, lenient only about S3's
    request-id header (moto sends x-amzn-RequestId instead of x-amz-request-id)."""
    out = tmp_path / "results.json"
    done = suite(moto_endpoint, "--only", "sts,ec2,s3", "--clients", "boto3,awscli,raw",
                 "--skip", ",".join(HEAVY_AWSCLI),
                 "--lenient", "request-id", "--jobs", "4", "--json", str(out))
    assert done.returncode == 1, done.stderr  # moto does not check signatures: some must fail
    results = json.loads(out.read_text())
    matrix = {row: {c: v for c, v in cells.items() if v != "-"}
              for row, cells in results["matrix"].items()}
    assert matrix == EXPECTED_AGAINST_MOTO, done.stdout
    by_id = {(s["id"], s["client"]): s for s in results["scenarios"]}
    assert by_id[("ec2.describe_regions_filter", "boto3")]["reason"].startswith(
        "regions returned: expected ['us-east-1']")
    assert by_id[("s3.wrong_secret", "boto3")]["reason"] == (
        "expected error SignatureDoesNotMatch (HTTP 403), but the call succeeded")
    unknown_action = by_id[("ec2.unknown_action", "raw")]
    assert unknown_action["errors"][0]["check"] == "wire.error"
    # moto answers an unknown EC2 action without an error code: HTTP 500 up to 5.2.5, 404 since
    # 5.2.6. Either way the suite must name what it got instead of InvalidAction (HTTP 400).
    got = re.search(r"expected error InvalidAction \(HTTP 400\), got None \(HTTP (\d{3})\)",
                    unknown_action["exception"])
    assert got and got.group(1) != "400", unknown_action["exception"]
    # the lenient check was still seen, as a warning, on S3 responses
    warned = by_id[("s3.put_get_object", "boto3")]["warnings"]
    assert {w["check"] for w in warned} == {"request-id"}
    assert {"CreateBucket", "PutObject", "GetObject"} <= {w["path"] for w in warned}
    # every boto3 call of the transfer manager went through the checks
    calls = [c["operation"] for c in by_id[("s3.multipart_transfer_manager", "boto3")]["calls"]]
    assert calls.count("UploadPart") == 3 and "CompleteMultipartUpload" in calls
    # the matrix and the failures are printed
    assert "s3:UploadPart" in done.stdout and "Failures:" in done.stdout


def test_without_lenience_moto_s3_fails_on_the_request_id(moto_endpoint):
    state = RunState(Target(moto_endpoint, "testing", "testing"))
    chosen = select(load_scenarios(), ["s3.list_buckets", "sts.get_caller_identity"], ["boto3"])
    s3, sts = sorted(run_all(state, chosen), key=lambda r: r.scenario.service)
    assert s3.status == FAIL
    assert s3.reason == "ListBuckets: missing x-amz-request-id header (it sent x-amzn-RequestId " \
                        "instead)"
    assert sts.status == PASS


# --- a broken server -----------------------------------------------------------------------------
BROKEN_BUCKETS = (b'<?xml version="1.0"?><ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/'
                  b'doc/2006-03-01/"><Buckets><Bucket><Name>b1</Name><CreationDate>2024-05-01 '
                  b'12:00:00</CreationDate></Bucket></Buckets><Owner><ID>o</ID></Owner>'
                  b'</ListAllMyBucketsResult>')
BROKEN_REGIONS = (b'<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                  b'<requestId>r</requestId><regionInfo><member><regionName>us-east-1</regionName>'
                  b'<regionEndpoint>e</regionEndpoint></member></regionInfo>'
                  b'</DescribeRegionsResponse>')


class BrokenHandler(http.server.BaseHTTPRequestHandler):
    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", "REQ1")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # S3 ListBuckets
        self._answer(BROKEN_BUCKETS)

    def do_POST(self):  # EC2 DescribeRegions
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(BROKEN_REGIONS)

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BrokenHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_broken_server_is_reported_as_fail_with_the_path(broken_endpoint):
    state = RunState(Target(broken_endpoint, "AKIDEXAMPLE", "secret"))

    def list_buckets_cli(ctx):
        ctx.aws("s3api", "list-buckets")

    chosen = select(load_scenarios(), ["s3.list_buckets", "ec2.describe_regions"], ["boto3"])
    chosen.append(Scenario("s3", ("ListBuckets",), "awscli", list_buckets_cli, "list_buckets_cli"))
    results = {(r.scenario.id, r.scenario.client): r for r in run_all(state, chosen, jobs=3)}
    s3 = results[("s3.list_buckets", "boto3")]
    assert s3.status == FAIL
    assert s3.failures == [
        "ListBuckets.Buckets[0].CreationDate: expected an iso8601 timestamp like "
        "'2024-05-01T12:00:00.000Z', got '2024-05-01 12:00:00'",  # the wire
        "ListBuckets.Buckets[0].CreationDate: timestamp without a time zone"]  # what boto3 made
    cli = results[("s3.list_buckets_cli", "awscli")]
    assert cli.status == FAIL
    assert cli.reason.startswith("ListBuckets (aws-cli).Buckets[0].CreationDate: expected an "
                                 "iso8601 timestamp")
    ec2 = results[("ec2.describe_regions", "boto3")]
    assert ec2.status == FAIL  # botocore parsed it fine; the wire check did not
    assert ec2.reason == "DescribeRegions.Regions[0]: list item is <member>, expected <item>"
