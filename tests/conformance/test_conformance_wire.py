"""Raw-response checks: request ids, XML structure, lexical forms, error bodies."""
from __future__ import annotations

import botocore.session
import pytest

from conformance import wire
from conformance.shapes import ERROR, WARNING


@pytest.fixture(scope="module")
def op():
    session = botocore.session.get_session()
    models = {name: session.get_service_model(name) for name in ("s3", "ec2", "sts")}
    return lambda service, name: models[service].operation_model(name)


EC2_NS = 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
REGIONS = (f'<DescribeRegionsResponse {EC2_NS}><requestId>r-1</requestId><regionInfo>'
           '<item><regionName>us-east-1</regionName><regionEndpoint>ec2.local</regionEndpoint>'
           '<optInStatus>opt-in-not-required</optInStatus></item></regionInfo>'
           '</DescribeRegionsResponse>')
VOLUMES = (f'<DescribeVolumesResponse {EC2_NS}><requestId>r</requestId><volumeSet><item>'
           '<volumeId>vol-1</volumeId><size>8</size><encrypted>{enc}</encrypted>'
           '<createTime>{created}</createTime></item></volumeSet></DescribeVolumesResponse>')
BUCKETS = ('<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Buckets>'
           '<Bucket><Name>b</Name><CreationDate>{created}</CreationDate></Bucket></Buckets>'
           '<Owner><ID>o</ID></Owner>{extra}</ListAllMyBucketsResult>')
S3_ID = {"x-amz-request-id": "R1", "x-amz-id-2": "h"}


def summary(problems):
    return [(p.path, p.check, p.severity) for p in problems]


def test_a_conformant_ec2_response_passes(op):
    assert wire.check_response(op("ec2", "DescribeRegions"), 200, {}, REGIONS.encode()) == []


def test_ec2_request_id_from_body_or_header(op):
    body = REGIONS.replace("<requestId>r-1</requestId>", "").encode()
    assert summary(wire.check_response(op("ec2", "DescribeRegions"), 200, {}, body)) == [
        ("DescribeRegions", wire.REQUEST_ID, ERROR)]
    assert wire.check_response(op("ec2", "DescribeRegions"), 200,
                               {"x-amzn-RequestId": "r"}, body) == []


def test_ec2_list_items_must_be_item_elements(op):
    body = REGIONS.replace("<item>", "<member>").replace("</item>", "</member>").encode()
    problems = wire.check_response(op("ec2", "DescribeRegions"), 200, {}, body)
    assert summary(problems) == [("DescribeRegions.Regions[0]", wire.WIRE_ELEMENT, ERROR)]
    assert "expected <item>" in problems[0].message


def test_ec2_booleans_and_timestamps_are_lexically_checked(op):
    good = VOLUMES.format(enc="false", created="2024-05-01T12:00:00.000Z").encode()
    assert wire.check_response(op("ec2", "DescribeVolumes"), 200, {}, good) == []
    bad = VOLUMES.format(enc="False", created="2024-05-01 12:00:00").encode()
    problems = wire.check_response(op("ec2", "DescribeVolumes"), 200, {}, bad)
    assert [str(p) for p in problems] == [
        "DescribeVolumes.Volumes[0].Encrypted: boolean must be 'true' or 'false', got 'False'",
        "DescribeVolumes.Volumes[0].CreateTime: expected an iso8601 timestamp like "
        "'2024-05-01T12:00:00.000Z', got '2024-05-01 12:00:00'",
    ]


def test_unknown_elements_are_warnings_and_misnamed_roots_too(op):
    body = REGIONS.replace("<regionName>", "<RegionName>").replace("</regionName>",
                                                                   "</RegionName>")
    body = body.replace("DescribeRegionsResponse", "DescribeRegionResponse")
    problems = wire.check_response(op("ec2", "DescribeRegions"), 200, {}, body.encode())
    assert summary(problems) == [
        ("DescribeRegions", wire.WIRE_ELEMENT, WARNING),
        ("DescribeRegions.Regions[0].<RegionName>", wire.WIRE_UNKNOWN, WARNING)]


def test_s3_needs_x_amz_request_id(op):
    body = BUCKETS.format(created="2024-05-01T12:00:00.000Z", extra="").encode()
    assert wire.check_response(op("s3", "ListBuckets"), 200, S3_ID, body) == []
    problems = wire.check_response(op("s3", "ListBuckets"), 200, {"x-amzn-RequestId": "r"}, body)
    assert [str(p) for p in problems] == [
        "ListBuckets: missing x-amz-request-id header (it sent x-amzn-RequestId instead)"]


def test_s3_body_timestamps_duplicates_and_unknown_elements(op):
    body = BUCKETS.format(created="Wed, 01 May 2024 12:00:00 GMT",
                          extra="<Owner><ID>again</ID></Owner><Color>x</Color>").encode()
    problems = wire.check_response(op("s3", "ListBuckets"), 200, S3_ID, body)
    assert summary(problems) == [
        ("ListBuckets.Buckets[0].CreationDate", wire.WIRE_FORMAT, ERROR),
        ("ListBuckets.Owner", wire.WIRE_ELEMENT, ERROR),
        ("ListBuckets.<Color>", wire.WIRE_UNKNOWN, WARNING)]


def test_s3_header_members_are_checked(op):
    headers = dict(S3_ID, **{"Last-Modified": "Wed, 01 May 2024 12:00:00 GMT",
                             "Content-Length": "3", "x-amz-delete-marker": "true"})
    assert wire.check_response(op("s3", "HeadObject"), 200, headers, b"") == []
    headers.update({"Last-Modified": "2024-05-01T12:00:00Z", "Content-Length": "3.0",
                    "x-amz-delete-marker": "TRUE"})
    problems = wire.check_response(op("s3", "HeadObject"), 200, headers, b"")
    assert sorted(p.path for p in problems) == [
        "HeadObject.ContentLength (header content-length)",
        "HeadObject.DeleteMarker (header x-amz-delete-marker)",
        "HeadObject.LastModified (header last-modified)"]


def test_streamed_bodies_are_not_read(op):
    headers = dict(S3_ID, **{"Content-Length": "3"})
    assert wire.check_response(op("s3", "GetObject"), 200, headers, None) == []


def test_query_protocol_needs_its_result_wrapper(op):
    good = (b'<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::1:user/u</Arn>'
            b'<UserId>U</UserId><Account>1</Account></GetCallerIdentityResult><ResponseMetadata>'
            b'<RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>')
    assert wire.check_response(op("sts", "GetCallerIdentity"), 200, {}, good) == []
    bad = good.replace(b"GetCallerIdentityResult>", b"Result>")
    problems = wire.check_response(op("sts", "GetCallerIdentity"), 200, {}, bad)
    assert summary(problems) == [("GetCallerIdentity", wire.WIRE_ELEMENT, ERROR)]


@pytest.mark.parametrize("service,name,body,ok", [
    ("ec2", "DescribeRegions", b"<Response><Errors><Error><Code>AuthFailure</Code><Message>m"
                               b"</Message></Error></Errors><RequestID>r</RequestID></Response>",
     True),
    ("ec2", "DescribeRegions", b"<ErrorResponse><Error><Code>AuthFailure</Code></Error>"
                               b"<RequestId>r</RequestId></ErrorResponse>", False),
    ("sts", "GetCallerIdentity", b"<ErrorResponse><Error><Type>Sender</Type><Code>X</Code>"
                                 b"</Error><RequestId>r</RequestId></ErrorResponse>", True),
    ("s3", "ListBuckets", b"<Error><Code>AccessDenied</Code><Message>no</Message>"
                          b"<RequestId>R1</RequestId></Error>", True),
    ("s3", "ListBuckets", b"<html>oops</html>", False),
    ("s3", "HeadObject", b"", True),
])
def test_error_bodies(op, service, name, body, ok):
    headers = S3_ID if service == "s3" else {}
    problems = wire.check_response(op(service, name), 403, headers, body)
    assert (problems == []) is ok, problems
    if not ok:
        assert {p.check for p in problems} <= {wire.WIRE_ERROR, wire.REQUEST_ID}
        assert wire.WIRE_ERROR in {p.check for p in problems}


def test_error_code_of_each_protocol():
    assert wire.error_code_of("ec2", b"<Response><Errors><Error><Code>InvalidAction</Code>"
                                     b"<Message>m</Message></Error></Errors></Response>") == (
        "InvalidAction", "m")
    assert wire.error_code_of("query", b"<ErrorResponse xmlns='x'><Error><Code>C</Code></Error>"
                                       b"</ErrorResponse>") == ("C", None)
    assert wire.error_code_of("rest-xml", b"<Error><Code>NoSuchKey</Code></Error>") == (
        "NoSuchKey", None)
    assert wire.error_code_of("rest-xml", b"not xml") == (None, None)
