"""The registry, the runner and the matrix, with scenarios that need no endpoint."""
from __future__ import annotations

import json

import pytest

from conformance import cli
from conformance.context import RunState, Target
from conformance.registry import REGISTRY, Scenario, load_scenarios, scenario, select
from conformance.runner import FAIL, NOT_RUN, PASS, SKIP, as_json, build_matrix, render, run_all
from conformance.shapes import WARNING, Problem


def state() -> RunState:
    return RunState(Target("http://127.0.0.1:9", "AKIDEXAMPLE", "secret"), aws_command=None)


def make(func, service="s3", ops=("ListBuckets",), client="boto3", variant=""):
    return Scenario(service, tuple(ops), client, func, func.__name__, variant)


def passes(ctx):
    ctx.validate("s3", "ListBuckets", {"Buckets": [], "Owner": {"ID": "x"}})


def wrong_type(ctx):
    ctx.validate("s3", "ListBuckets", {"Buckets": [{"Name": "b", "CreationDate": "yesterday"}]})


def wrong_type_from_cli(ctx):
    ctx.validate("sts", "GetCallerIdentity", {"Account": 123456789012}, client="awscli")


def raises(ctx):
    ctx.check(1 + 1 == 3, "arithmetic is broken")


def crashes(ctx):
    {}["missing"]


def skips(ctx):
    ctx.aws("sts", "get-caller-identity")  # no aws-cli in this RunState: Skip


def warns(ctx):
    ctx.validate("ec2", "DescribeAvailabilityZones",
                 {"AvailabilityZones": [{"ZoneName": "z", "State": "sleepy"}]})


def test_the_scenarios_load_and_have_unique_ids():
    scenarios = load_scenarios()
    assert len({(s.id, s.client) for s in scenarios}) == len(scenarios)
    ids = {s.id for s in scenarios}
    for wanted in ("sts.get_caller_identity", "ec2.describe_regions", "ec2.unknown_action",
                   "s3.list_buckets", "s3.multipart_transfer_manager", "s3.sync_odd_names",
                   "s3.presign_cli", "s3.wrong_secret", "s3.unknown_key"):
        assert wanted in ids
    assert {s.client for s in scenarios} == {"boto3", "awscli", "raw", "awscli2", "rclone", "s3cmd",
                                             "pyarrow", "s3fs", "curl"}


def test_select_by_service_row_id_and_client():
    scenarios = load_scenarios()
    assert {s.service for s in select(scenarios, ["s3", "sts"])} == {"s3", "sts"}
    rows = select(scenarios, ["ec2:DescribeAccountAttributes"])
    assert {s.id for s in rows} == {"ec2.describe_account_attributes",
                                    "ec2.describe_account_attributes_cli"}
    assert [s.id for s in select(scenarios, ["s3.list_buckets"], ["boto3"])] == ["s3.list_buckets"]
    assert all(s.client == "awscli" for s in select(scenarios, None, ["awscli"]))


def test_registering_twice_is_refused():
    before = len(REGISTRY)

    def dup(ctx):
        pass

    try:
        scenario("zz", "Op")(dup)
        with pytest.raises(ValueError):
            scenario("zz", "Other")(dup)
    finally:
        del REGISTRY[before:]


def test_a_wrong_type_fails_the_scenario_with_the_path():
    results = run_all(state(), [make(passes), make(wrong_type, client="awscli"),
                                make(wrong_type_from_cli, "sts", ("GetCallerIdentity",), "awscli")])
    assert [r.status for r in results] == [PASS, FAIL, FAIL]
    assert results[1].reason == ("ListBuckets.Buckets[0].CreationDate: expected timestamp, "
                                 "got str 'yesterday'")
    assert results[2].reason.startswith("GetCallerIdentity.Account: expected string, got int")
    rows, clients, cells = build_matrix(results)
    assert cells["s3:ListBuckets"] == {"boto3": PASS, "awscli": FAIL}
    assert cells["sts:GetCallerIdentity"] == {"boto3": NOT_RUN, "awscli": FAIL}
    assert rows == ["sts:GetCallerIdentity", "s3:ListBuckets"]


def test_exceptions_skips_and_warnings():
    results = run_all(state(), [make(raises), make(crashes, ops=("GetObject",)),
                                make(skips, "sts", ("GetCallerIdentity",), "awscli"),
                                make(warns, "ec2", ("DescribeAvailabilityZones",))], jobs=3)
    assert [r.status for r in results] == [FAIL, FAIL, SKIP, PASS]
    assert results[0].reason == "arithmetic is broken"
    assert results[1].reason == "KeyError: 'missing'"
    assert results[2].reason == "aws-cli is not installed"
    assert [w.severity for w in results[3].warnings] == [WARNING]
    _, _, cells = build_matrix(results)
    assert cells["sts:GetCallerIdentity"]["awscli"] == NOT_RUN
    text = render(results, "http://x", "us-east-1")
    assert "s3.raises [boto3]: arithmetic is broken" in text
    assert "shape.enum: 'sleepy' is not one of the model's values" in text
    assert "4 scenarios: 1 passed, 2 failed, 1 skipped" in text


def test_one_failing_scenario_makes_its_rows_fail_and_variants_have_rows_of_their_own():
    results = run_all(state(), [make(passes), make(wrong_type), make(passes, variant="odd")])
    rows, _, cells = build_matrix(results)
    assert rows == ["s3:ListBuckets", "s3:ListBuckets (odd)"]
    assert cells["s3:ListBuckets"]["boto3"] == FAIL
    assert cells["s3:ListBuckets (odd)"]["boto3"] == PASS


def test_lenient_turns_errors_of_a_check_into_warnings():
    def no_request_id(ctx):
        ctx.recorder.add([Problem("ListBuckets", "missing x-amz-request-id header",
                                  check="request-id")])

    strict, = run_all(state(), [make(no_request_id)])
    lenient, = run_all(state(), [make(no_request_id)], lenient=["request-id"])
    assert (strict.status, lenient.status) == (FAIL, PASS)
    assert lenient.warnings[0].check == "request-id"


def test_json_output_carries_matrix_and_problems():
    results = run_all(state(), [make(passes), make(wrong_type, client="awscli")])
    data = json.loads(json.dumps(as_json(results, "http://x", "us-east-1")))
    assert data["matrix"] == {"s3:ListBuckets": {"boto3": PASS, "awscli": FAIL}}
    assert data["summary"] == {"pass": 1, "fail": 1, "skip": 0}
    failed = data["scenarios"][1]
    assert failed["errors"][0]["path"] == "ListBuckets.Buckets[0].CreationDate"
    assert failed["errors"][0]["check"] == "shape.type"


def test_cli_without_an_endpoint_is_a_setup_error(monkeypatch, capsys):
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["--only", "sts", "-q"]) == 2
    assert "no endpoint" in capsys.readouterr().err
    assert cli.main(["--only", "nothing-matches"]) == 2
