"""The helpers of ``conformance/scenarios/s3_clients.py`` (no server needed): the POST policy
signature against botocore's own signer, multipart ETags, curl's header dumps, and every scenario
skipping (not failing) when its client is missing."""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
import sys

import pytest
from botocore.auth import S3SigV4PostAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conformance.context import RunState, Target
from conformance.registry import load_scenarios, select
from conformance.runner import SKIP, run_all
from conformance.scenarios import _client_tools, s3_clients, s3_curl

CLIENTS = ["awscli2", "rclone", "s3cmd", "pyarrow", "s3fs", "curl"]


def test_the_post_policy_signature_is_the_one_botocore_computes():
    request = AWSRequest(method="POST", url="http://127.0.0.1:1/bucket")
    request.context["s3-presign-post-fields"] = {}
    request.context["s3-presign-post-policy"] = {
        "expiration": "2030-01-01T00:00:00.000Z",
        "conditions": [{"bucket": "bucket"}, ["starts-with", "$key", "up/"]]}
    S3SigV4PostAuth(Credentials("AKIDEXAMPLE", "se/cret+key"), "s3", "eu-west-1").add_auth(request)
    fields = request.context["s3-presign-post-fields"]
    assert s3_curl.post_policy_signature("se/cret+key", fields["x-amz-date"][:8], "eu-west-1",
                                            fields["policy"]) == fields["x-amz-signature"]


def test_post_policy_fields_cover_every_field_and_sign_the_policy():
    now = datetime.datetime(2026, 5, 1, 12, 30, 5, tzinfo=datetime.timezone.utc)
    fields = s3_curl.post_policy_fields(
        "AKID", "SECRET", "us-east-1", "bkt", "up/a b.txt", "up/",
        now + datetime.timedelta(minutes=5), now, 1024,
        {"Content-Type": "text/plain", "success_action_status": "201", "x-amz-meta-a": "b"},
        session_token="TOKEN")
    assert fields["x-amz-credential"] == "AKID/20260501/us-east-1/s3/aws4_request"
    assert fields["x-amz-date"] == "20260501T123005Z"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert fields["x-amz-security-token"] == "TOKEN"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert policy["expiration"] == "2026-05-01T12:35:05.000Z"
    conditions = policy["conditions"]
    assert {"bucket": "bkt"} in conditions
    assert ["starts-with", "$key", "up/"] in conditions
    assert ["content-length-range", 1, 1024] in conditions
    named = {name for c in conditions if isinstance(c, dict) for name in c}
    # S3: every form field but policy, x-amz-signature and file needs a condition
    assert set(fields) - {"key", "policy", "x-amz-signature"} <= named
    assert fields["x-amz-signature"] == s3_curl.post_policy_signature(
        "SECRET", "20260501", "us-east-1", fields["policy"])
    assert list(fields)[-2:] == ["policy", "x-amz-signature"]


def test_multipart_etag(tmp_path):
    data = bytes(range(256)) * 100  # 25,600 bytes: parts of 10,000 -> 3
    path = tmp_path / "f"
    path.write_bytes(data)
    parts = [data[:10000], data[10000:20000], data[20000:]]
    inner = b"".join(hashlib.md5(p).digest() for p in parts)
    assert s3_clients.multipart_etag(str(path), 10000) == f'"{hashlib.md5(inner).hexdigest()}-3"'


def test_curl_header_dump_keeps_the_final_response():
    dump = ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nETag: \"abc\"\r\n"
            "x-amz-request-id: R1\r\nContent-Length: 0\r\n\r\n")
    status, headers = _client_tools._parse_header_file(dump)
    assert status == "HTTP/1.1 200 OK"
    assert dict(headers) == {"ETag": '"abc"', "x-amz-request-id": "R1", "Content-Length": "0"}


def test_the_scenarios_are_registered_in_their_columns():
    chosen = select(load_scenarios(), ["s3"], CLIENTS)
    assert {s.client for s in chosen} == set(CLIENTS)
    rows = {row for s in chosen for row in s.rows}
    assert {"s3:PostObject", "s3:PostObject (too large)", "s3:PostObject (policy expired)",
            "s3:UploadPart (sigv2)", "s3:GetObject (presigned, sigv2)"} <= rows


def test_every_scenario_skips_when_its_client_is_missing(monkeypatch):
    monkeypatch.setattr(s3_clients.shutil, "which", lambda name: None)
    monkeypatch.setattr(s3_clients, "awscli2_command", lambda: None)
    monkeypatch.setitem(sys.modules, "s3fs", None)          # import s3fs -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.fs", None)
    # nothing listens there: a scenario that got past its skip would fail, not skip
    state = RunState(Target("http://127.0.0.1:9", "AKID", "SECRET"))
    results = run_all(state, select(load_scenarios(), ["s3"], CLIENTS))
    assert results and {(r.scenario.id, r.status) for r in results} == {
        (r.scenario.id, SKIP) for r in results}


BAD_BUCKETS = (b'<?xml version="1.0"?><ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/'
               b'2006-03-01/"><Buckets><Bucket><Name>b1</Name><CreationDate>2024-05-01 12:00:00'
               b'</CreationDate></Bucket></Buckets><Owner><ID>o</ID></Owner>'
               b'</ListAllMyBucketsResult>')


@pytest.mark.skipif(s3_clients.awscli2_command() is None, reason="aws-cli v2 is not installed")
def test_aws_cli_v2_json_is_validated_against_the_shapes():
    import http.server  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from conformance.registry import Scenario  # noqa: PLC0415

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(BAD_BUCKETS)))
            self.send_header("x-amz-request-id", "REQ1")
            self.end_headers()
            self.wfile.write(BAD_BUCKETS)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        state = RunState(Target(f"http://127.0.0.1:{server.server_address[1]}", "AKID", "S"))
        check = Scenario("s3", ("ListBuckets",), "awscli2",
                         lambda ctx: s3_clients.aws2(ctx, "s3api", "list-buckets"), "lb2")
        [result] = run_all(state, [check])
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "FAIL"
    assert result.reason.startswith("ListBuckets (aws-cli v2).Buckets[0].CreationDate: expected "
                                    "an iso8601 timestamp")
    assert [(c.client, c.operation, c.exit_code) for c in result.calls] == [
        ("awscli2", "ListBuckets", 0)]
