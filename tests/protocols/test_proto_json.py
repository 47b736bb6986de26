"""json protocol (Cost Explorer, CUR; DynamoDB for timestamps, blobs, maps):
round trips through botocore's serializer and parser."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from gateway.protocols import errors
from gateway.protocols.json_protocol import (
    JSON_CONTENT_TYPE,
    content_type,
    decode_json,
    encode_json,
    encode_json_error,
    json_content_type,
    target_operation,
)
from gateway.protocols.models import operation, service_model
from proto_samples import Gen

UTC = dt.timezone.utc
SERVICES = {
    'ce': service_model('ce').operation_names,
    'cur': service_model('cur').operation_names,
    'dynamodb': service_model('dynamodb').operation_names,
}


@pytest.mark.parametrize('service', sorted(SERVICES))
@pytest.mark.parametrize('seed', [1, 2, 3])
def test_requests_roundtrip(service, seed):
    failures = []
    for i, name in enumerate(SERVICES[service]):
        op = operation(service, name)
        params = Gen(seed * 1000 + i).value(op.input_shape, ms=False) if op.input_shape else {}
        try:
            request = create_serializer('json').serialize_to_request(params, op)
            assert target_operation(op.service_model, request['headers']['X-Amz-Target']) == name
            assert request['headers']['Content-Type'] == json_content_type(op)
            assert decode_json(op, request['body']) == params
        except Exception as exc:
            failures.append(f'{name}: {exc!r}'[:400])
    assert failures == []


@pytest.mark.parametrize('service', sorted(SERVICES))
@pytest.mark.parametrize('seed', [1, 2, 3])
def test_responses_roundtrip(service, seed):
    failures = []
    parser = create_parser('json')
    for i, name in enumerate(SERVICES[service]):
        op = operation(service, name)
        output = Gen(seed * 1000 + i).value(op.output_shape) if op.output_shape else {}
        try:
            body = encode_json(op, output)
            parsed = parser.parse({'body': body, 'headers': {'x-amzn-requestid': 'rid'}, 'status_code': 200},
                                  op.output_shape)
            assert parsed.pop('ResponseMetadata')['RequestId'] == 'rid'
            assert parsed == output
        except Exception as exc:
            failures.append(f'{name}: {exc!r}'[:400])
    assert failures == []


def test_get_cost_and_usage():
    op = operation('ce', 'GetCostAndUsage')
    params = {
        'TimePeriod': {'Start': '2026-11-01', 'End': '2026-12-01'}, 'Granularity': 'DAILY',
        'Metrics': ['UnblendedCost'], 'GroupBy': [{'Type': 'DIMENSION', 'Key': 'SERVICE'}],
        'Filter': {'Dimensions': {'Key': 'REGION', 'Values': ['us-east-1']}},
    }
    body = create_serializer('json').serialize_to_request(params, op)['body']
    assert decode_json(op, body) == params
    output = {'ResultsByTime': [{
        'TimePeriod': {'Start': '2026-11-01', 'End': '2026-11-02'},
        'Total': {'UnblendedCost': {'Amount': '1.25', 'Unit': 'USD'}},
        'Groups': [{'Keys': ['Amazon Elastic Compute Cloud - Compute'],
                    'Metrics': {'UnblendedCost': {'Amount': '1.25', 'Unit': 'USD'}}}],
        'Estimated': False,
    }], 'DimensionValueAttributes': []}
    encoded = encode_json(op, output)
    parsed = create_parser('json').parse({'body': encoded, 'headers': {}, 'status_code': 200}, op.output_shape)
    parsed.pop('ResponseMetadata')
    assert parsed == output


def test_cur_put_report_definition():
    op = operation('cur', 'PutReportDefinition')
    params = {'ReportDefinition': {
        'ReportName': 'daily', 'TimeUnit': 'DAILY', 'Format': 'textORcsv', 'Compression': 'GZIP',
        'AdditionalSchemaElements': ['RESOURCES'], 'S3Bucket': 'bills', 'S3Prefix': 'cur',
        'S3Region': 'us-east-1', 'RefreshClosedReports': True, 'ReportVersioning': 'OVERWRITE_REPORT',
    }}
    body = create_serializer('json').serialize_to_request(params, op)['body']
    assert decode_json(op, body) == params


def test_timestamps_are_epoch_numbers():
    op = operation('dynamodb', 'DescribeTable')
    created = dt.datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=UTC)
    body = encode_json(op, {'Table': {'TableName': 't', 'CreationDateTime': created}})
    assert json.loads(body)['Table']['CreationDateTime'] == 1795687200.25
    body = encode_json(op, {'Table': {'TableName': 't', 'CreationDateTime': created.replace(microsecond=0)}})
    assert json.loads(body)['Table']['CreationDateTime'] == 1795687200


def test_error_body_parses():
    body = encode_json_error('DataUnavailableException', 'no "data" yet')
    assert json.loads(body) == {'__type': 'DataUnavailableException', 'message': 'no "data" yet'}
    parsed = create_parser('json').parse(
        {'body': body, 'headers': {'x-amzn-requestid': 'rid'}, 'status_code': 400},
        operation('ce', 'GetCostAndUsage').output_shape)
    assert parsed['Error'] == {'Code': 'DataUnavailableException', 'Message': 'no "data" yet'}
    assert parsed['ResponseMetadata']['RequestId'] == 'rid'


def test_content_type():
    assert JSON_CONTENT_TYPE == 'application/x-amz-json-1.1'
    assert json_content_type(operation('ce', 'GetCostAndUsage')) == 'application/x-amz-json-1.1'
    assert json_content_type(service_model('dynamodb')) == 'application/x-amz-json-1.0'
    assert content_type(service_model('ce')) == 'application/x-amz-json-1.1'
    assert target_operation(service_model('ce'), 'AWSInsightsIndexService.GetCostAndUsage') == 'GetCostAndUsage'
    assert target_operation(service_model('ce'), 'Other.GetCostAndUsage') is None
    assert target_operation(service_model('ce'), 'AWSInsightsIndexService.Nope') is None


def test_empty_body_is_empty_input():
    assert decode_json(operation('cur', 'DescribeReportDefinitions'), b'') == {}


@pytest.mark.parametrize('body', [b'{', b'not json', b'[1, 2]', b'"str"', b'\xff\xfe', b'[' * 100000])
def test_bad_json_is_serialization_exception(body):
    with pytest.raises(errors.SerializationException) as info:
        decode_json(operation('ce', 'GetCostAndUsage'), body)
    assert info.value.code == 'SerializationException' and info.value.status == 400


@pytest.mark.parametrize('document', [
    {'TimePeriod': {'Start': 1, 'End': '2026-12-01'}, 'Granularity': 'DAILY', 'Metrics': ['x']},
    {'TimePeriod': 'x', 'Granularity': 'DAILY', 'Metrics': ['x']},
    {'TimePeriod': {'Start': 'a', 'End': 'b'}, 'Granularity': 'DAILY', 'Metrics': 'x'},
    {'TimePeriod': {'Start': 'a', 'End': 'b'}, 'Metrics': ['x'], 'Granularity': True},
])
def test_wrong_types_are_serialization_exception(document):
    with pytest.raises(errors.SerializationException):
        decode_json(operation('ce', 'GetCostAndUsage'), json.dumps(document).encode())


@pytest.mark.parametrize('value', ['abc', 1.5, True, 2**40])
def test_bad_integer(value):
    op = operation('ce', 'GetCostCategories')
    document = {'TimePeriod': {'Start': 'a', 'End': 'b'}, 'MaxResults': value}
    with pytest.raises(errors.SerializationException):
        decode_json(op, json.dumps(document).encode())


def test_missing_required_is_validation_exception():
    with pytest.raises(errors.ValidationException) as info:
        decode_json(operation('ce', 'GetCostAndUsage'), b'{"Granularity": "DAILY", "Metrics": ["x"]}')
    assert info.value.code == 'ValidationException' and 'TimePeriod' in info.value.message
    with pytest.raises(errors.ValidationException) as info:
        decode_json(operation('ce', 'GetCostAndUsage'),
                    b'{"TimePeriod": {"Start": "a"}, "Granularity": "DAILY", "Metrics": ["x"]}')
    assert 'TimePeriod.End' in info.value.message


def test_null_is_absent_and_unknown_members_ignored():
    op = operation('ce', 'GetCostAndUsage')
    body = b'{"TimePeriod": {"Start": "a", "End": "b"}, "Granularity": "DAILY", "Metrics": ["x"], "Filter": null, "Bogus": 1}'
    assert decode_json(op, body) == {'TimePeriod': {'Start': 'a', 'End': 'b'}, 'Granularity': 'DAILY', 'Metrics': ['x']}
