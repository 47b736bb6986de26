"""Parameter Store handlers as SSM answers them: versions, selectors, labels, paths, filters,
pagination, errors, public image parameters; each output checked against botocore's shape and
through the gateway's JSON encoder and botocore's parser."""
from __future__ import annotations

import datetime as dt
import os
from types import SimpleNamespace

import botocore.session
import pytest
from botocore.parsers import create_parser

from ec2_api.images import insert_image
from gateway.protocols.json_protocol import encode_json
from ssm_api import errors
from ssm_api.operations import OPERATIONS, open_state
from storage.db import Database
from storage.ec2_schema import SCHEMA as EC2_SCHEMA

ALICE, BOB = "222222222222", "333333333333"
_MODEL = botocore.session.get_session().get_service_model("ssm")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def app(tmp_path):
    db = await Database.open(os.path.join(tmp_path, "nimbo.db"))
    await db.migrate(EC2_SCHEMA)
    application = SimpleNamespace(db=db, clock=Clock(), config=SimpleNamespace(data_dir=str(tmp_path)))
    await open_state(application)
    yield application
    await db.close()


async def call(app, operation: str, account: str = ALICE, region: str = "us-east-1", **params) -> dict:
    ctx = SimpleNamespace(app=app, account=SimpleNamespace(account_id=account), region=region, now=app.clock)
    out = await OPERATIONS[operation](ctx, params)
    op = _MODEL.operation_model(operation)
    body = encode_json(op, out)
    parsed = create_parser("json").parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


async def fails(app, operation: str, code: str, **params) -> str:
    with pytest.raises(errors.SSMError) as caught:
        await call(app, operation, **params)
    assert caught.value.code == code, caught.value.message
    return caught.value.message


async def test_put_get_versions_and_selectors(app):
    assert await call(app, "PutParameter", Name="/app/db/host", Value="one", Type="String",
                      Description="the db") == {"Version": 1, "Tier": "Standard"}
    await fails(app, "PutParameter", "ParameterAlreadyExists", Name="/app/db/host", Value="two", Type="String")
    assert (await call(app, "PutParameter", Name="/app/db/host", Value="two", Overwrite=True))["Version"] == 2
    got = (await call(app, "GetParameter", Name="/app/db/host"))["Parameter"]
    assert got["Value"] == "two" and got["Version"] == 2 and got["Type"] == "String" and "Selector" not in got
    assert got["ARN"] == f"arn:aws:ssm:us-east-1:{ALICE}:parameter/app/db/host"
    first = (await call(app, "GetParameter", Name="/app/db/host:1"))["Parameter"]
    assert first["Value"] == "one" and first["Selector"] == ":1"
    by_arn = await call(app, "GetParameter", Name=f"arn:aws:ssm:us-east-1:{ALICE}:parameter/app/db/host")
    assert by_arn["Parameter"]["Value"] == "two"
    await fails(app, "GetParameter", "ParameterVersionNotFound", Name="/app/db/host:9")
    await fails(app, "GetParameter", "ParameterNotFound", Name="/nothing")
    labelled = await call(app, "LabelParameterVersion", Name="/app/db/host", ParameterVersion=1,
                          Labels=["stable", "9bad", "awsy"])
    assert labelled == {"InvalidLabels": ["9bad", "awsy"], "ParameterVersion": 1}
    assert (await call(app, "GetParameter", Name="/app/db/host:stable"))["Parameter"]["Value"] == "one"
    history = (await call(app, "GetParameterHistory", Name="/app/db/host"))["Parameters"]
    assert [(h["Version"], h["Value"], h["Labels"]) for h in history] == [(1, "one", ["stable"]), (2, "two", [])]
    assert history[1]["Description"] == "the db"      # an overwrite keeps what it does not change
    many = await call(app, "GetParameters", Names=["/app/db/host", "/nothing", "/app/db/host:1"])
    assert [p["Value"] for p in many["Parameters"]] == ["two", "one"] and many["InvalidParameters"] == ["/nothing"]


async def test_write_validation(app):
    await fails(app, "PutParameter", "ValidationException", Name="/aws/mine", Value="v", Type="String")
    await fails(app, "PutParameter", "ValidationException", Name="ssm-thing", Value="v", Type="String")
    await fails(app, "PutParameter", "ValidationException", Name="a/b", Value="v", Type="String")
    await fails(app, "PutParameter", "ValidationException", Name="/has space", Value="v", Type="String")
    await fails(app, "PutParameter", "ValidationException", Name="/new", Value="v")        # no Type for a new one
    await fails(app, "PutParameter", "ValidationException", Name="/big", Value="x" * 4097, Type="String")
    assert (await call(app, "PutParameter", Name="/big", Value="x" * 4097, Type="String", Tier="Advanced"))["Tier"] \
        == "Advanced"
    await fails(app, "PutParameter", "HierarchyLevelLimitExceededException", Name="/" + "/".join("a" * 16),
                Value="v", Type="String")
    await fails(app, "PutParameter", "ValidationException", Name="/plain", Value="v", Type="String", KeyId="alias/x")
    await fails(app, "PutParameter", "ParameterPatternMismatchException", Name="/port", Value="http",
                Type="String", AllowedPattern=r"^\d+$")
    await fails(app, "PutParameter", "ValidationException", Name="/img", Value="not-an-ami", Type="String",
                DataType="aws:ec2:image")
    assert (await call(app, "PutParameter", Name="/list", Value="a,b,c", Type="StringList"))["Version"] == 1
    assert (await call(app, "GetParameter", Name="/list"))["Parameter"]["Type"] == "StringList"


async def test_paths_filters_pagination(app):
    for name in ("/app/a", "/app/b", "/app/deep/c", "/other/x", "plain"):
        await call(app, "PutParameter", Name=name, Value="v", Type="String" if name != "/app/b" else "StringList")
    one_level = await call(app, "GetParametersByPath", Path="/app")
    assert [p["Name"] for p in one_level["Parameters"]] == ["/app/a", "/app/b"]
    everything = await call(app, "GetParametersByPath", Path="/app/", Recursive=True)
    assert [p["Name"] for p in everything["Parameters"]] == ["/app/a", "/app/b", "/app/deep/c"]
    typed = await call(app, "GetParametersByPath", Path="/app", Recursive=True,
                       ParameterFilters=[{"Key": "Type", "Values": ["StringList"]}])
    assert [p["Name"] for p in typed["Parameters"]] == ["/app/b"]
    await fails(app, "GetParametersByPath", "InvalidFilterKey", Path="/app",
                ParameterFilters=[{"Key": "Name", "Values": ["x"]}])
    await fails(app, "GetParametersByPath", "ValidationException", Path="app")
    first = await call(app, "GetParametersByPath", Path="/", Recursive=True, MaxResults=2)
    second = await call(app, "GetParametersByPath", Path="/", Recursive=True, MaxResults=2, NextToken=first["NextToken"])
    assert len(first["Parameters"]) == 2 and len(second["Parameters"]) == 2
    assert {p["Name"] for p in first["Parameters"] + second["Parameters"]} == {"/app/a", "/app/b", "/app/deep/c", "/other/x"}
    await fails(app, "GetParametersByPath", "InvalidNextToken", Path="/", NextToken="garbage!")
    described = await call(app, "DescribeParameters", ParameterFilters=[{"Key": "Name", "Option": "BeginsWith",
                                                                          "Values": ["/app"]}])
    assert [p["Name"] for p in described["Parameters"]] == ["/app/a", "/app/b", "/app/deep/c"]
    assert described["Parameters"][0]["LastModifiedUser"] == f"arn:aws:iam::{ALICE}:root"
    in_path = await call(app, "DescribeParameters", ParameterFilters=[{"Key": "Path", "Option": "OneLevel",
                                                                       "Values": ["/app"]}])
    assert [p["Name"] for p in in_path["Parameters"]] == ["/app/a", "/app/b"]
    old_style = await call(app, "DescribeParameters", Filters=[{"Key": "Name", "Values": ["plain"]}])
    assert [p["Name"] for p in old_style["Parameters"]] == ["plain"]
    await fails(app, "DescribeParameters", "InvalidFilterOption",
                ParameterFilters=[{"Key": "Path", "Option": "Equals", "Values": ["/app"]}])
    deleted = await call(app, "DeleteParameters", Names=["/app/a", "/missing"])
    assert deleted == {"DeletedParameters": ["/app/a"], "InvalidParameters": ["/missing"]}
    assert await call(app, "DeleteParameter", Name="/app/b") == {}
    await fails(app, "DeleteParameter", "ParameterNotFound", Name="/app/b")


async def test_parameters_are_per_account_and_region(app):
    await call(app, "PutParameter", Name="/mine", Value="alice", Type="String")
    await fails(app, "GetParameter", "ParameterNotFound", Name="/mine", account=BOB)
    await call(app, "PutParameter", Name="/mine", Value="bob", Type="String", account=BOB)
    assert (await call(app, "GetParameter", Name="/mine", account=BOB))["Parameter"]["Value"] == "bob"
    assert (await call(app, "GetParameter", Name="/mine"))["Parameter"]["Value"] == "alice"
    await fails(app, "GetParameter", "ParameterNotFound", Name="/mine", region="eu-west-1")
    assert (await call(app, "DescribeParameters", account=BOB))["Parameters"][0]["Name"] == "/mine"
    await call(app, "DeleteParameter", Name="/mine", account=BOB)
    assert (await call(app, "GetParameter", Name="/mine"))["Parameter"]["Value"] == "alice"


async def test_public_image_parameters_follow_the_images_table(app):
    await fails(app, "GetParameter", "ParameterNotFound", Name="/aws/service/nimbo/tiny/latest")
    for image_id, name, created in (("ami-00000000000000001", "nimbo-tiny-20260101", 1),
                                    ("ami-00000000000000002", "nimbo-tiny-20260201", 2),
                                    ("ami-00000000000000003", "debian-12-amd64-20260201", 3),
                                    ("ami-00000000000000004", "private-one", 4)):
        await insert_image(app.db, image_id=image_id, account_id="100000000001", region="us-east-1", name=name,
                           state="available", created_us=created, is_public=name != "private-one",
                           owner_alias="nimbo")
    tiny = (await call(app, "GetParameter", Name="/aws/service/nimbo/tiny/latest", account=BOB))["Parameter"]
    assert tiny["Value"] == "ami-00000000000000002" and tiny["DataType"] == "aws:ec2:image" and tiny["Version"] == 2
    assert tiny["ARN"] == "arn:aws:ssm:us-east-1::parameter/aws/service/nimbo/tiny/latest"
    by_arn = await call(app, "GetParameter", Name="arn:aws:ssm:us-east-1::parameter/aws/service/nimbo/tiny/latest")
    assert by_arn["Parameter"]["Value"] == "ami-00000000000000002"
    debian = await call(app, "GetParameter", Name="/aws/service/debian/release/bookworm/latest/amd64")
    assert debian["Parameter"]["Value"] == "ami-00000000000000003"
    listed = await call(app, "GetParametersByPath", Path="/aws/service/nimbo", Recursive=True)
    names = [p["Name"] for p in listed["Parameters"]]
    assert "/aws/service/nimbo/tiny/latest" in names and "/aws/service/nimbo/images/nimbo-tiny-20260101" in names
    assert not any("private-one" in n for n in names)
    await fails(app, "GetParameter", "ParameterNotFound", Name="/aws/service/nimbo/tiny/latest", region="eu-west-1")
    await fails(app, "PutParameter", "ValidationException", Name="/aws/service/nimbo/tiny/latest",
                Value="ami-00000000000000009", Type="String", Overwrite=True)


async def test_parameter_tags(app):
    await call(app, "PutParameter", Name="/tagged", Value="v", Type="String", Tags=[{"Key": "team", "Value": "a"}])
    await call(app, "AddTagsToResource", ResourceType="Parameter", ResourceId="/tagged",
               Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "b"}])
    listed = await call(app, "ListTagsForResource", ResourceType="Parameter", ResourceId="/tagged")
    assert listed["TagList"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "b"}]
    await call(app, "RemoveTagsFromResource", ResourceType="Parameter", ResourceId="/tagged", TagKeys=["team"])
    assert (await call(app, "ListTagsForResource", ResourceType="Parameter",
                       ResourceId="/tagged"))["TagList"] == [{"Key": "env", "Value": "prod"}]
    found = await call(app, "DescribeParameters", ParameterFilters=[{"Key": "tag:env", "Values": ["prod"]}])
    assert [p["Name"] for p in found["Parameters"]] == ["/tagged"]
    await fails(app, "ListTagsForResource", "InvalidResourceId", ResourceType="Parameter", ResourceId="/tagged",
                account=BOB)
    await fails(app, "ListTagsForResource", "InvalidResourceType", ResourceType="Document", ResourceId="/tagged")
    await fails(app, "AddTagsToResource", "InvalidResourceId", ResourceType="Parameter", ResourceId="/none",
                Tags=[{"Key": "a", "Value": "b"}])
    await call(app, "DeleteParameter", Name="/tagged")
    await call(app, "PutParameter", Name="/tagged", Value="v", Type="String")
    assert (await call(app, "ListTagsForResource", ResourceType="Parameter", ResourceId="/tagged"))["TagList"] == []
