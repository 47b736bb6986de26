"""ec2 and query protocols: round trips through botocore's own serializer and
parser, for every operation of EC2 and STS (and a sample of IAM)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlencode

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from multidict import MultiDict

from gateway.protocols import errors
from gateway.protocols.models import operation, service_model
from gateway.protocols.query import decode_query, encode_query_error, encode_query_response
from proto_samples import Gen, prune

UTC = dt.timezone.utc


def _form(op, params, protocol):
    request = create_serializer(protocol).serialize_to_request(params, op)
    return parse_qsl(urlencode(request['body']), keep_blank_values=True)


def _request_roundtrip(service, protocol, names, seed):
    failures = []
    for i, name in enumerate(names):
        op = operation(service, name)
        params = Gen(seed + i).value(op.input_shape) if op.input_shape else {}
        try:
            decoded = decode_query(op, _form(op, params, protocol), protocol, strict=True)
            assert decoded == prune(params)
        except Exception as exc:  # collect, report all at once
            failures.append(f'{name}: {exc!r}'[:400])
    return failures


def _response_roundtrip(service, protocol, names, seed):
    failures = []
    parser = create_parser(protocol)
    for i, name in enumerate(names):
        op = operation(service, name)
        output = Gen(seed + i).value(op.output_shape) if op.output_shape else {}
        try:
            body = encode_query_response(op, output, f'req-{i}', protocol)
            parsed = parser.parse({'body': body, 'headers': {}, 'status_code': 200}, op.output_shape)
            metadata = parsed.pop('ResponseMetadata')
            assert metadata['RequestId'] == f'req-{i}'
            assert parsed == output
        except Exception as exc:
            failures.append(f'{name}: {exc!r}'[:400])
    return failures


EC2_OPS = service_model('ec2').operation_names
STS_OPS = service_model('sts').operation_names


def test_ec2_covers_every_operation():
    assert len(EC2_OPS) > 700


@pytest.mark.parametrize('seed', [1, 2])
def test_ec2_requests_roundtrip(seed):
    assert _request_roundtrip('ec2', 'ec2', EC2_OPS, seed * 10_000) == []


@pytest.mark.parametrize('seed', [1, 2])
def test_ec2_responses_roundtrip(seed):
    assert _response_roundtrip('ec2', 'ec2', EC2_OPS, seed * 10_000) == []


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_sts_roundtrip(seed):
    assert _request_roundtrip('sts', 'query', STS_OPS, seed) == []
    assert _response_roundtrip('sts', 'query', STS_OPS, seed) == []


@pytest.mark.parametrize('service', ['iam', 'sns', 'ses', 'cloudformation'])
def test_other_query_services_sample_roundtrip(service):
    # Same protocol, more shapes: maps (SNS MessageAttributes), renamed
    # list members (CloudFormation), blobs (SES raw messages).
    names = service_model(service).operation_names[::3]
    assert _request_roundtrip(service, 'query', names, 7) == []
    assert _response_roundtrip(service, 'query', names, 7) == []


# --- hand-picked shapes ------------------------------------------------------

def test_ec2_run_instances_wire_names():
    op = operation('ec2', 'RunInstances')
    form = [
        ('Action', 'RunInstances'), ('Version', '2016-11-15'),
        ('ImageId', 'ami-1'), ('MinCount', '1'), ('MaxCount', '2'),
        ('SecurityGroupId.1', 'sg-1'), ('SecurityGroupId.2', 'sg-2'),
        ('BlockDeviceMapping.1.DeviceName', '/dev/sda1'),
        ('BlockDeviceMapping.1.Ebs.VolumeSize', '20'),
        ('BlockDeviceMapping.1.Ebs.DeleteOnTermination', 'true'),
        ('TagSpecification.1.ResourceType', 'instance'),
        ('TagSpecification.1.Tag.1.Key', 'Name'),
        ('TagSpecification.1.Tag.1.Value', 'web & <db>'),
        ('UserData', 'IyEvYmluL3NoCg=='),
        ('X-Amz-Signature', 'ignored'),
    ]
    decoded = decode_query(op, form, 'ec2')
    assert decoded == {
        'ImageId': 'ami-1', 'MinCount': 1, 'MaxCount': 2,
        'SecurityGroupIds': ['sg-1', 'sg-2'],
        'BlockDeviceMappings': [{'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 20, 'DeleteOnTermination': True}}],
        'TagSpecifications': [{'ResourceType': 'instance', 'Tags': [{'Key': 'Name', 'Value': 'web & <db>'}]}],
        'UserData': 'IyEvYmluL3NoCg==',
    }


def test_list_indexes_sorted_numerically_and_gaps_allowed():
    op = operation('ec2', 'DescribeInstances')
    form = {'InstanceId.10': 'i-10', 'InstanceId.2': 'i-2', 'InstanceId.1': 'i-1'}
    assert decode_query(op, form, 'ec2') == {'InstanceIds': ['i-1', 'i-2', 'i-10']}


def test_duplicate_key_first_value_wins():
    op = operation('ec2', 'DescribeInstances')
    multi = MultiDict([('MaxResults', '5'), ('MaxResults', '50')])
    assert decode_query(op, multi, 'ec2') == {'MaxResults': 5}
    assert decode_query(op, {'MaxResults': ['6', '60']}, 'ec2') == {'MaxResults': 6}
    assert decode_query(op, [('MaxResults', '7'), ('MaxResults', '70')], 'ec2') == {'MaxResults': 7}


def test_unknown_parameters_ignored_unless_strict():
    op = operation('ec2', 'DescribeInstances')
    form = {'Action': 'DescribeInstances', 'Bogus': 'x', 'MaxResults': '5'}
    assert decode_query(op, form, 'ec2') == {'MaxResults': 5}
    with pytest.raises(errors.UnknownParameter) as info:
        decode_query(op, form, 'ec2', strict=True)
    assert 'Bogus' in info.value.message


def test_query_empty_list_and_timestamps():
    op = operation('sts', 'AssumeRole')
    form = {'RoleArn': 'arn:aws:iam::123456789012:role/r', 'RoleSessionName': 's',
            'PolicyArns': '', 'DurationSeconds': '900'}
    assert decode_query(op, form, 'query') == {
        'RoleArn': 'arn:aws:iam::123456789012:role/r', 'RoleSessionName': 's',
        'PolicyArns': [], 'DurationSeconds': 900,
    }


def test_sts_response_shape_and_namespace():
    op = operation('sts', 'GetCallerIdentity')
    body = encode_query_response(op, {'UserId': 'AID', 'Account': '123456789012', 'Arn': 'arn:aws:iam::1:user/a'}, 'rid', 'query')
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">')
    assert '<GetCallerIdentityResult><UserId>AID</UserId>' in text
    assert text.endswith('<ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></GetCallerIdentityResponse>')


def test_assume_role_response_parses():
    op = operation('sts', 'AssumeRole')
    expiration = dt.datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    output = {
        'Credentials': {'AccessKeyId': 'ASIA', 'SecretAccessKey': 's', 'SessionToken': 't', 'Expiration': expiration},
        'AssumedRoleUser': {'AssumedRoleId': 'AROA:s', 'Arn': 'arn:aws:sts::1:assumed-role/r/s'},
        'PackedPolicySize': 6,
    }
    body = encode_query_response(op, output, 'rid', 'query')
    assert b'<Expiration>2026-11-26T10:00:00.000Z</Expiration>' in body
    parsed = create_parser('query').parse({'body': body, 'headers': {}, 'status_code': 200}, op.output_shape)
    assert parsed['ResponseMetadata']['RequestId'] == 'rid'
    parsed.pop('ResponseMetadata')
    assert parsed == output


def test_ec2_response_escapes_and_booleans():
    op = operation('ec2', 'DescribeKeyPairs')
    output = {'KeyPairs': [{'KeyName': 'a<b>&"c"\r\n', 'KeyPairId': 'key-1', 'Tags': []}]}
    body = encode_query_response(op, output, 'r', 'ec2')
    assert b'<keyName>a&lt;b&gt;&amp;"c"&#xD;\n</keyName>' in body
    assert b'<tagSet/>' in body
    parsed = create_parser('ec2').parse({'body': body, 'headers': {}, 'status_code': 200}, op.output_shape)
    assert parsed['KeyPairs'] == output['KeyPairs']
    op = operation('ec2', 'DeleteKeyPair')
    body = encode_query_response(op, {'Return': True}, 'r', 'ec2')
    assert b'<return>true</return>' in body


# --- errors ------------------------------------------------------------------

def test_ec2_error_body_parses():
    body = encode_query_error('InvalidInstanceID.NotFound', "The instance ID 'i-1' does not exist", 'rid-9', 400, 'ec2')
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>')
    op = operation('ec2', 'DescribeInstances')
    parsed = create_parser('ec2').parse({'body': body, 'headers': {}, 'status_code': 400}, op.output_shape)
    assert parsed['Error']['Code'] == 'InvalidInstanceID.NotFound'
    assert parsed['Error']['Message'] == "The instance ID 'i-1' does not exist"
    assert parsed['ResponseMetadata']['RequestId'] == 'rid-9'


@pytest.mark.parametrize('status,kind', [(400, 'Sender'), (503, 'Receiver')])
def test_query_error_body_parses(status, kind):
    body = encode_query_error('AccessDenied', 'no <way> & no how', 'rid-1', status, 'query',
                              xml_namespace='https://sts.amazonaws.com/doc/2011-06-15/')
    op = operation('sts', 'GetCallerIdentity')
    parsed = create_parser('query').parse({'body': body, 'headers': {}, 'status_code': status}, op.output_shape)
    assert parsed['Error'] == {'Type': kind, 'Code': 'AccessDenied', 'Message': 'no <way> & no how'}
    assert parsed['ResponseMetadata']['RequestId'] == 'rid-1'


# --- bad input ---------------------------------------------------------------

def test_ec2_missing_required_parameter():
    op = operation('ec2', 'RunInstances')
    with pytest.raises(errors.MissingParameter) as info:
        decode_query(op, {'ImageId': 'ami-1', 'MinCount': '1'}, 'ec2')
    assert info.value.code == 'MissingParameter' and info.value.status == 400
    assert 'MaxCount' in info.value.message


def test_ec2_missing_nested_required_names_wire_path():
    op = operation('ec2', 'CreateTags')
    with pytest.raises(errors.MissingParameter) as info:
        decode_query(op, {'ResourceId.1': 'i-1'}, 'ec2')
    assert 'Tag' in info.value.message


@pytest.mark.parametrize('field,value', [
    ('MaxCount', 'abc'), ('MaxCount', '1.5'), ('MaxCount', '99999999999'),
    ('DisableApiTermination', 'yes'), ('UserData', 'x'),
])
def test_ec2_bad_types_are_invalid_parameter_value(field, value):
    op = operation('ec2', 'RunInstances')
    form = {'ImageId': 'ami-1', 'MinCount': '1', 'MaxCount': '1', field: value}
    if field == 'UserData':  # a string member in the model: any text is fine
        assert decode_query(op, form, 'ec2')['UserData'] == 'x'
        return
    with pytest.raises(errors.InvalidParameterValue) as info:
        decode_query(op, form, 'ec2')
    assert info.value.code == 'InvalidParameterValue' and info.value.status == 400
    assert field in info.value.message


def test_ec2_bad_timestamp_and_blob():
    op = operation('ec2', 'DescribeSpotPriceHistory')
    with pytest.raises(errors.InvalidParameterValue):
        decode_query(op, {'StartTime': 'yesterday'}, 'ec2')
    op = operation('ec2', 'ImportKeyPair')
    with pytest.raises(errors.InvalidParameterValue):
        decode_query(op, {'KeyName': 'k', 'PublicKeyMaterial': '***'}, 'ec2')


def test_query_missing_and_bad_values_are_validation_errors():
    op = operation('sts', 'AssumeRole')
    with pytest.raises(errors.ValidationError) as info:
        decode_query(op, {'RoleSessionName': 's'}, 'query')
    assert info.value.code == 'ValidationError' and "'RoleArn'" in info.value.message
    with pytest.raises(errors.ValidationError):
        decode_query(op, {'RoleArn': 'a' * 20, 'RoleSessionName': 's', 'DurationSeconds': 'abc'}, 'query')


def test_query_error_explicit_sender_fault():
    body = encode_query_error('Throttling', 'slow down', 'r', 400, 'query', sender_fault=False)
    assert b'<Type>Receiver</Type>' in body and b'<ErrorResponse>' in body


@pytest.mark.parametrize('action', ['RebootInstances', 'CreateTags', 'DeleteTags', 'ModifyInstanceAttribute',
                                    'ModifyImageAttribute'])
def test_ec2_void_actions_answer_return_true(action):
    """Issue 9 item 15: EC2 answers an action without an output shape with ``<return>true</return>``
    (libcloud's reboot_node() and euca2ools read it); botocore still parses it to an empty result."""
    op = operation('ec2', action)
    assert op.output_shape is None
    body = encode_query_response(op, {}, 'rid-1', 'ec2')
    assert body.endswith(f'<requestId>rid-1</requestId><return>true</return></{action}Response>'.encode())
    parsed = create_parser('ec2').parse({'body': body, 'headers': {}, 'status_code': 200}, op.output_shape)
    assert parsed['ResponseMetadata']['RequestId'] == 'rid-1'


def test_query_void_actions_have_no_return_element():
    """The query protocol (STS, IAM) writes no ``<return>`` for an action without output."""
    body = encode_query_response(operation('iam', 'DeleteUser'), {}, 'rid-2', 'query')
    assert b'<return>' not in body
