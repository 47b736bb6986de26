"""The shape validator against hand-made shapes and dicts, and against botocore's real models."""
from __future__ import annotations

import datetime
import io

import botocore.session
import pytest
from botocore.model import ShapeResolver
from botocore.response import StreamingBody

from conformance.shapes import (AWSCLI, ERROR, SHAPE_ENUM, SHAPE_EXTRA, SHAPE_REQUIRED,
                                SHAPE_TYPE, SHAPE_UNION, WARNING, validate_output)

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)

SHAPES = {
    "Out": {"type": "structure", "required": ["Name"], "members": {
        "Name": {"shape": "Str"}, "Count": {"shape": "Int"}, "Size": {"shape": "Long"},
        "Ratio": {"shape": "Dbl"}, "Flag": {"shape": "Bool"}, "When": {"shape": "Time"},
        "Data": {"shape": "Blob"}, "Colour": {"shape": "Colour"}, "Items": {"shape": "ItemList"},
        "Tags": {"shape": "TagMap"}, "Choice": {"shape": "Choice"}}},
    "Item": {"type": "structure", "required": ["Id"], "members": {
        "Id": {"shape": "Str"}, "Created": {"shape": "Time"}, "Count": {"shape": "Int"}}},
    "ItemList": {"type": "list", "member": {"shape": "Item"}},
    "TagMap": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Int"}},
    "Choice": {"type": "structure", "union": True, "members": {
        "A": {"shape": "Str"}, "B": {"shape": "Int"}}},
    "Colour": {"type": "string", "enum": ["red", "green"]},
    "Str": {"type": "string"}, "Int": {"type": "integer"}, "Long": {"type": "long"},
    "Dbl": {"type": "double"}, "Bool": {"type": "boolean"}, "Time": {"type": "timestamp"},
    "Blob": {"type": "blob"},
}


@pytest.fixture(scope="module")
def out_shape():
    return ShapeResolver(SHAPES).get_shape_by_name("Out")


@pytest.fixture(scope="module")
def models():
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in ("s3", "ec2", "sts")}


def valid() -> dict:
    return {"Name": "n", "Count": 3, "Size": 2 ** 40, "Ratio": 0.5, "Flag": False, "When": NOW,
            "Data": b"\x00\x01", "Colour": "red",
            "Items": [{"Id": "a", "Created": NOW, "Count": 0}, {"Id": "b"}],
            "Tags": {"x": 1}, "Choice": {"A": "only"},
            "ResponseMetadata": {"RequestId": "r", "HTTPStatusCode": 200}}


def test_a_valid_dict_has_no_problems(out_shape):
    assert validate_output(out_shape, valid(), "Op") == []


def test_a_missing_required_member_is_an_error(out_shape):
    value = valid()
    del value["Name"]
    del value["Items"][1]["Id"]
    problems = validate_output(out_shape, value, "Op")
    assert [(p.path, p.check, p.severity) for p in problems] == [
        ("Op.Name", SHAPE_REQUIRED, ERROR), ("Op.Items[1].Id", SHAPE_REQUIRED, ERROR)]


@pytest.mark.parametrize("member,bad,expected", [
    ("Count", "3", "expected integer, got str '3'"),
    ("Count", True, "expected integer, got bool True"),
    ("Size", 1.5, "expected integer, got float 1.5"),
    ("Ratio", "0.5", "expected number, got str '0.5'"),
    ("Flag", "false", "expected boolean, got str 'false'"),
    ("Flag", 0, "expected boolean, got int 0"),
    ("When", "2024-05-01T12:00:00Z", "expected timestamp, got str '2024-05-01T12:00:00Z'"),
    ("Data", "AAE=", "expected blob (bytes), got str"),
    ("Name", 7, "expected string, got int 7"),
    ("Items", {"Id": "a"}, "expected list, got dict {'Id': 'a'}"),
    ("Tags", [("x", 1)], "expected map, got list [('x', 1)]"),
])
def test_a_wrong_type_is_an_error_at_its_path(out_shape, member, bad, expected):
    value = valid()
    value[member] = bad
    problems = validate_output(out_shape, value, "Op")
    assert [(str(p), p.check, p.severity) for p in problems] == [
        (f"Op.{member}: {expected}", SHAPE_TYPE, ERROR)]


def test_a_naive_datetime_is_an_error(out_shape):
    value = valid()
    value["When"] = NOW.replace(tzinfo=None)
    assert [str(p) for p in validate_output(out_shape, value, "Op")] == [
        "Op.When: timestamp without a time zone"]


def test_an_extra_key_is_an_error_but_response_metadata_is_not(out_shape):
    value = valid()
    value["Surprise"] = 1
    value["Items"][0]["extra"] = "x"
    problems = validate_output(out_shape, value, "Op")
    assert [(p.path, p.check) for p in problems] == [
        ("Op.Surprise", SHAPE_EXTRA), ("Op.Items[0].extra", SHAPE_EXTRA)]


def test_bad_items_in_a_nested_list_are_reported_each(out_shape):
    value = valid()
    value["Items"] = [{"Id": "ok"}, "not-a-struct", {"Id": 5, "Created": "yesterday"}, None]
    problems = validate_output(out_shape, value, "Op")
    assert [str(p) for p in problems] == [
        "Op.Items[1]: expected structure, got str 'not-a-struct'",
        "Op.Items[2].Id: expected string, got int 5",
        "Op.Items[2].Created: expected timestamp, got str 'yesterday'",
        "Op.Items[3]: null list element",
    ]


def test_map_keys_and_values_are_checked(out_shape):
    value = valid()
    value["Tags"] = {"x": "one"}
    assert [str(p) for p in validate_output(out_shape, value, "Op")] == [
        "Op.Tags['x']: expected integer, got str 'one'"]


def test_an_unknown_enum_value_is_a_warning(out_shape):
    value = valid()
    value["Colour"] = "mauve"
    problems = validate_output(out_shape, value, "Op")
    assert [(p.path, p.check, p.severity) for p in problems] == [
        ("Op.Colour", SHAPE_ENUM, WARNING)]


def test_a_union_must_have_exactly_one_member(out_shape):
    value = valid()
    value["Choice"] = {"A": "x", "B": 1}
    assert [p.check for p in validate_output(out_shape, value, "Op")] == [SHAPE_UNION]


def test_awscli_flavour_takes_wire_strings_base64_and_nulls(out_shape):
    value = valid()
    value.pop("ResponseMetadata")
    value.update(When="2024-05-01T12:00:00.000Z", Data="AAE=", Count=None,
                 Items=[{"Id": "a", "Created": "2024-05-01T12:00:00Z"}])
    assert validate_output(out_shape, value, "Op", AWSCLI, protocol="rest-xml") == []
    value["When"] = "Wed, 01 May 2024 12:00:00 GMT"  # RFC 822 in an XML body: not how AWS writes
    value["Data"] = "not base64!"
    problems = validate_output(out_shape, value, "Op", AWSCLI, protocol="rest-xml")
    assert [p.path for p in problems] == ["Op.When", "Op.Data"]
    assert "expected an iso8601 timestamp" in problems[0].message


def test_awscli_header_timestamps_are_rfc822(models):
    shape = models["s3"].operation_model("HeadObject").output_shape
    good = {"LastModified": "Wed, 01 May 2024 12:00:00 GMT", "ContentLength": 3, "ETag": '"x"',
            "Metadata": {"a": "b"}}
    assert validate_output(shape, good, "HeadObject", AWSCLI, "rest-xml") == []
    bad = dict(good, LastModified="2024-05-01T12:00:00Z")
    assert [str(p) for p in validate_output(shape, bad, "HeadObject", AWSCLI, "rest-xml")] == [
        "HeadObject.LastModified: expected an rfc822 timestamp like "
        "'Wed, 01 May 2024 12:00:00 GMT', got '2024-05-01T12:00:00Z'"]


def test_real_models_list_buckets(models):
    shape = models["s3"].operation_model("ListBuckets").output_shape
    good = {"Buckets": [{"Name": "b", "CreationDate": NOW}], "Owner": {"ID": "i"},
            "ResponseMetadata": {}}
    assert validate_output(shape, good, "ListBuckets") == []
    bad = {"Buckets": [{"Name": "b", "CreationDate": "2024-05-01"}]}
    assert [str(p) for p in validate_output(shape, bad, "ListBuckets")] == [
        "ListBuckets.Buckets[0].CreationDate: expected timestamp, got str '2024-05-01'"]


def test_real_models_required_members(models):
    shape = models["sts"].operation_model("AssumeRole").output_shape
    value = {"Credentials": {"AccessKeyId": "A", "SecretAccessKey": "s", "Expiration": NOW}}
    assert [str(p) for p in validate_output(shape, value, "AssumeRole")] == [
        "AssumeRole.Credentials.SessionToken: required member of Credentials is missing"]


def test_streaming_bodies_and_synthetic_members(models):
    shape = models["s3"].operation_model("GetObject").output_shape
    body = StreamingBody(io.BytesIO(b"abc"), 3)
    value = {"Body": body, "ContentLength": 3, "ExpiresString": "soon", "ResponseMetadata": {}}
    assert validate_output(shape, value, "GetObject", synthetic={"ExpiresString"}) == []
    assert [p.path for p in validate_output(shape, value, "GetObject")] == [
        "GetObject.ExpiresString"]
    assert [p.path for p in validate_output(shape, {"Body": "text"}, "GetObject")] == [
        "GetObject.Body"]


def test_an_operation_without_output_takes_nothing_but_metadata():
    assert validate_output(None, {"ResponseMetadata": {}}, "Op") == []
    assert [p.path for p in validate_output(None, {"Stray": 1}, "Op")] == ["Op.Stray"]


def test_ec2_enum_warning_on_a_real_shape(models):
    shape = models["ec2"].operation_model("DescribeAvailabilityZones").output_shape
    value = {"AvailabilityZones": [{"ZoneName": "us-east-1a", "State": "sleepy"}]}
    problems = validate_output(shape, value, "DescribeAvailabilityZones")
    assert [(p.path, p.severity) for p in problems] == [
        ("DescribeAvailabilityZones.AvailabilityZones[0].State", WARNING)]
