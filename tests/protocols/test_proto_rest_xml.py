"""rest-xml (S3): round trips through botocore's serializer and parser for
every S3 operation, plus the documented hand-written exceptions."""

from __future__ import annotations

import datetime as dt
import re
import types
from urllib.parse import parse_qsl, unquote, urlencode

import pytest
from botocore.awsrequest import HeadersDict
from botocore.handlers import parse_get_bucket_location
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from multidict import CIMultiDict, MultiDict

from gateway.protocols import errors
from gateway.protocols.models import operation, service_model
from gateway.protocols.rest_xml import decode_rest_xml, encode_rest_xml, encode_rest_xml_error, has_streaming_payload
from proto_samples import TOKEN_CHARS, Gen

UTC = dt.timezone.utc
S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/'
S3_OPS = service_model('s3').operation_names
# The deprecated notification shapes name two members 'Event' (a scalar and
# a flattened list): ambiguous on the wire for botocore as for anyone.
AMBIGUOUS = {'GetBucketNotification', 'PutBucketNotification'}


def _place(member) -> str:
    location = member.serialization.get('location')
    return {'header': 'header', 'querystring': 'query-string', 'uri': 'query-string'}.get(location, 'body')


def rest_input(gen: Gen, shape) -> dict:
    """Sample input with values fit for where each member travels."""
    params = {}
    for name, member in shape.members.items():
        location = member.serialization.get('location')
        if member.serialization.get('streaming'):
            params[name] = b'hello \x00 world'
            continue
        if name not in shape.required_members and gen.rng.random() < 0.4:
            continue
        if member.serialization.get('hostLabel'):
            params[name] = ''.join(gen.rng.choice(TOKEN_CHARS) for _ in range(8))
        elif location == 'headers':
            params[name] = {'color': 'blue', 'x-y': 'a b'}
        else:
            params[name] = gen.value(member, 1, _place(member), ms=True)
    return params


def rest_output(gen: Gen, shape) -> dict:
    output = {}
    for name, member in shape.members.items():
        location = member.serialization.get('location')
        if member.serialization.get('streaming'):
            output[name] = b'object bytes'
            continue
        if gen.rng.random() < 0.3:
            continue
        if location == 'headers':
            output[name] = {'color': 'blue', 'mixed-key': 'Value 1'}
        else:
            output[name] = gen.value(member, 1, _place(member), ms=True)
    return output


def _uri_regex(template: str) -> re.Pattern:
    path = template.split('?', 1)[0]
    pattern = ''
    for literal, label in re.findall(r'([^{]*)(?:\{([^}]*)\})?', path):
        pattern += re.escape(literal)
        if label:
            greedy = label.endswith('+')
            pattern += f'(?P<{label.rstrip("+")}>{".+" if greedy else "[^/]+"})'
    return re.compile(pattern)


def to_wire(op, params):
    """botocore's request, split as the gateway will see it."""
    request = create_serializer('rest-xml').serialize_to_request(params, op)
    path, _, static_query = request['url_path'].partition('?')
    match = _uri_regex(op.http['requestUri']).fullmatch(path)
    assert match, (path, op.http['requestUri'])
    uri_params = {k: unquote(v) for k, v in match.groupdict().items()}
    query = MultiDict(parse_qsl(static_query, keep_blank_values=True))
    query.extend(parse_qsl(urlencode(request['query_string'], doseq=True), keep_blank_values=True))
    headers = CIMultiDict(request['headers'])
    return uri_params, query, headers, request['body']


def decode_from_botocore(op, params):
    uri_params, query, headers, body = to_wire(op, params)
    payload = op.input_shape.serialization.get('payload')
    streaming = payload and op.input_shape.members[payload].serialization.get('streaming')
    stream = body if streaming else None
    return decode_rest_xml(op, uri_params=uri_params, query=query, headers=headers,
                           body=None if streaming else body, stream=stream)


def parse_with_botocore(op, response):
    headers = HeadersDict()
    for name, value in response.headers:
        headers[name] = value
    parsed = create_parser('rest-xml').parse(
        {'body': response.body, 'headers': headers, 'status_code': response.status}, op.output_shape)
    parsed.pop('ResponseMetadata')
    return parsed


def test_s3_requests_roundtrip_every_operation():
    failures = []
    for seed in (1, 2, 3):
        for i, name in enumerate(S3_OPS):
            op = operation('s3', name)
            if op.input_shape is None or name in AMBIGUOUS:
                continue
            params = rest_input(Gen(seed * 1000 + i), op.input_shape)
            try:
                assert decode_from_botocore(op, params) == params
            except Exception as exc:
                failures.append(f'{name}: {exc!r}'[:500])
    assert failures == []


def _has_event_stream(shape) -> bool:
    return any(m.serialization.get('eventstream') for m in shape.members.values())


def test_s3_responses_roundtrip_every_operation():
    failures = []
    for seed in (1, 2, 3):
        for i, name in enumerate(S3_OPS):
            op = operation('s3', name)
            shape = op.output_shape
            if shape is None or name in AMBIGUOUS or name == 'GetBucketLocation' or _has_event_stream(shape):
                continue
            payload = shape.serialization.get('payload')
            if payload and shape.members[payload].serialization.get('eventstream'):
                continue
            output = rest_output(Gen(seed * 1000 + i), shape)
            try:
                parsed = parse_with_botocore(op, encode_rest_xml(op, output))
                for member_name, member in shape.members.items():
                    if member.serialization.get('location') == 'headers' and member_name not in output:
                        assert parsed.pop(member_name) == {}
                if payload and shape.members[payload].serialization.get('streaming'):
                    assert parsed.pop(payload) == output.pop(payload).decode()
                elif payload and payload not in output:
                    # botocore reads an empty body as an empty payload.
                    assert parsed.pop(payload) in ({}, '')
                assert parsed == output
            except Exception as exc:
                failures.append(f'{name}: {exc!r}'[:500])
    assert failures == []


# --- hand-picked operations ----------------------------------------------------

def test_put_object_headers_metadata_and_stream():
    op = operation('s3', 'PutObject')
    stream = object()
    headers = CIMultiDict({
        'Content-Type': 'text/plain', 'Content-Length': '11', 'X-Amz-Meta-Color': 'blue',
        'x-amz-meta-empty': '', 'x-amz-server-side-encryption-bucket-key-enabled': 'TRUE',
        'Expires': 'Wed, 26 Nov 2026 10:00:00 GMT', 'x-amz-tagging': 'a=b&c=d',
        'x-amz-object-lock-retain-until-date': '2026-11-26T10:00:00Z',
    })
    decoded = decode_rest_xml(op, uri_params={'Bucket': 'b', 'Key': 'a/b c'}, query=MultiDict(),
                              headers=headers, body=None, stream=stream)
    assert decoded['Body'] is stream
    assert decoded['Bucket'] == 'b' and decoded['Key'] == 'a/b c'
    assert decoded['ContentLength'] == 11
    assert decoded['Metadata'] == {'color': 'blue', 'empty': ''}
    assert decoded['BucketKeyEnabled'] is True
    assert decoded['Expires'] == dt.datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert decoded['ObjectLockRetainUntilDate'] == dt.datetime(2026, 11, 26, 10, tzinfo=UTC)


def test_get_object_output_headers_and_streaming_body():
    op = operation('s3', 'GetObject')
    body = object()
    output = {
        'Body': body, 'ContentLength': 10, 'ContentRange': 'bytes 0-9/100', 'ETag': '"abc"',
        'LastModified': dt.datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC), 'Metadata': {'color': 'blue'},
        'ContentType': 'text/plain', 'DeleteMarker': False, 'TagCount': 2, 'AcceptRanges': 'bytes',
    }
    response = encode_rest_xml(op, output, status=206)
    assert response.status == 206
    assert response.body is body
    headers = dict(response.headers)
    assert headers['Last-Modified'] == 'Thu, 26 Nov 2026 10:00:00 GMT'
    assert headers['ETag'] == '"abc"' and headers['Content-Range'] == 'bytes 0-9/100'
    assert headers['x-amz-meta-color'] == 'blue' and headers['x-amz-delete-marker'] == 'false'
    assert headers['Content-Type'] == 'text/plain' and headers['Content-Length'] == '10'
    assert sum(1 for name, _ in response.headers if name.lower() == 'content-type') == 1


def test_list_objects_v2_body():
    op = operation('s3', 'ListObjectsV2')
    modified = dt.datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    output = {
        'IsTruncated': False, 'Name': 'b', 'Prefix': '', 'MaxKeys': 1000, 'KeyCount': 2,
        'Contents': [
            {'Key': 'a&b', 'LastModified': modified, 'ETag': '"e1"', 'Size': 3, 'StorageClass': 'STANDARD'},
            {'Key': 'c<d>', 'LastModified': modified, 'ETag': '"e2"', 'Size': 0, 'StorageClass': 'STANDARD'},
        ],
        'CommonPrefixes': [{'Prefix': 'dir/'}],
    }
    response = encode_rest_xml(op, output)
    assert response.status == 200
    assert ('Content-Type', 'application/xml') in response.headers
    text = response.body.decode()
    assert text.startswith(f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{S3_NS}">')
    assert '<Contents><Key>a&amp;b</Key><LastModified>2026-11-26T10:00:00.000Z</LastModified>' in text
    assert '<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>' in text
    assert parse_with_botocore(op, response) == output


def test_list_buckets_body():
    op = operation('s3', 'ListBuckets')
    output = {'Buckets': [{'Name': 'a', 'CreationDate': dt.datetime(2026, 1, 2, tzinfo=UTC)}],
              'Owner': {'ID': 'id', 'DisplayName': 'me'}}
    response = encode_rest_xml(op, output)
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns=')
    assert b'<Buckets><Bucket><Name>a</Name>' in response.body
    assert parse_with_botocore(op, response) == output


def test_complete_multipart_upload_input_xml():
    op = operation('s3', 'CompleteMultipartUpload')
    params = {'Bucket': 'b', 'Key': 'k', 'UploadId': 'u1',
              'MultipartUpload': {'Parts': [{'ETag': '"1"', 'PartNumber': 1}, {'ETag': '"2"', 'PartNumber': 2}]}}
    assert decode_from_botocore(op, params) == params
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="%s">\n'
            b'  <Part>\n    <PartNumber> 1 </PartNumber>\n    <ETag>"x"</ETag>\n  </Part>\n'
            b'</CompleteMultipartUpload>' % S3_NS.encode())
    decoded = decode_rest_xml(op, uri_params={'Bucket': 'b', 'Key': 'k'}, query=MultiDict(uploadId='u'),
                              headers=CIMultiDict(), body=body)
    assert decoded['MultipartUpload'] == {'Parts': [{'PartNumber': 1, 'ETag': '"x"'}]}


def test_delete_objects_input_and_output():
    op = operation('s3', 'DeleteObjects')
    params = {'Bucket': 'b', 'Delete': {'Objects': [{'Key': 'a'}, {'Key': 'b/c', 'VersionId': 'v'}], 'Quiet': True}}
    assert decode_from_botocore(op, params) == params
    output = {'Deleted': [{'Key': 'a'}], 'Errors': [{'Key': 'b/c', 'Code': 'AccessDenied', 'Message': 'no'}]}
    response = encode_rest_xml(op, output)
    assert b'<DeleteResult xmlns=' in response.body and b'<Error><Key>b/c</Key>' in response.body
    assert parse_with_botocore(op, response) == output


def test_copy_object_payload_root_and_list_parts():
    op = operation('s3', 'CopyObject')
    modified = dt.datetime(2026, 11, 26, 10, tzinfo=UTC)
    output = {'CopyObjectResult': {'ETag': '"e"', 'LastModified': modified}, 'VersionId': 'v1'}
    response = encode_rest_xml(op, output)
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult xmlns=')
    assert ('x-amz-version-id', 'v1') in response.headers
    assert parse_with_botocore(op, response) == output
    op = operation('s3', 'ListParts')
    output = {'Bucket': 'b', 'Key': 'k', 'UploadId': 'u', 'IsTruncated': False, 'MaxParts': 1000,
              'Parts': [{'PartNumber': 1, 'ETag': '"1"', 'Size': 5, 'LastModified': modified}]}
    response = encode_rest_xml(op, output)
    assert b'<ListPartsResult xmlns=' in response.body and b'<Part><PartNumber>1</PartNumber>' in response.body
    assert parse_with_botocore(op, response) == output


def test_get_bucket_location_root_carries_value():
    op = operation('s3', 'GetBucketLocation')
    for value, expected in (('eu-west-1', 'eu-west-1'), (None, None)):
        response = encode_rest_xml(op, {'LocationConstraint': value})
        parsed = {}
        parse_get_bucket_location(parsed, types.SimpleNamespace(raw=object(), content=response.body))
        assert parsed['LocationConstraint'] == expected


def test_acl_grantee_xsi_type_attribute():
    op = operation('s3', 'GetObjectAcl')
    output = {'Owner': {'ID': 'o'}, 'Grants': [{'Grantee': {'Type': 'CanonicalUser', 'ID': 'o'}, 'Permission': 'FULL_CONTROL'}]}
    response = encode_rest_xml(op, output)
    assert b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"' in response.body
    assert parse_with_botocore(op, response) == output
    op = operation('s3', 'PutObjectAcl')
    params = {'Bucket': 'b', 'Key': 'k', 'AccessControlPolicy': output}
    assert decode_from_botocore(op, params) == params


def test_delete_object_status_204_and_empty_output():
    op = operation('s3', 'DeleteObject')
    response = encode_rest_xml(op, {})
    assert (response.status, response.headers, response.body) == (204, [], b'')
    response = encode_rest_xml(operation('s3', 'PutObject'), {'ETag': '"e"'})
    assert (response.status, response.body) == (200, b'')


def test_error_body_parses():
    body = encode_rest_xml_error('NoSuchKey', 'The specified key does not exist.', 'RID', 'HID',
                                 {'Key': 'a&b', 'BucketName': 'b'})
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>')
    assert body.endswith(b'<Key>a&amp;b</Key><BucketName>b</BucketName><RequestId>RID</RequestId><HostId>HID</HostId></Error>')
    headers = HeadersDict({'x-amz-request-id': 'RID', 'x-amz-id-2': 'HID'})
    parsed = create_parser('rest-xml').parse({'body': body, 'headers': headers, 'status_code': 404},
                                             operation('s3', 'GetObject').output_shape)
    assert parsed['Error'] == {'Code': 'NoSuchKey', 'Message': 'The specified key does not exist.',
                               'Key': 'a&b', 'BucketName': 'b'}
    assert parsed['ResponseMetadata']['RequestId'] == 'RID'


# --- bad input -------------------------------------------------------------------

def _delete(body: bytes, headers=None):
    return decode_rest_xml(operation('s3', 'DeleteObjects'), uri_params={'Bucket': 'b'},
                           query=MultiDict(delete=''), headers=CIMultiDict(headers or {}), body=body)


@pytest.mark.parametrize('body', [
    b'<Delete><Object><Key>a</Key></Object>',                       # not well-formed
    b'<Delete><Object><Key>a</Key></Object></Delete><x/>',          # two roots
    b'<NotDelete><Object><Key>a</Key></Object></NotDelete>',        # wrong root
    b'<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>',  # bad boolean
    b'<Delete><Quiet>true</Quiet></Delete>',                        # required Objects missing
    b'',                                                            # required payload missing
    b'\xff\xfe<garbage',
])
def test_malformed_xml(body):
    with pytest.raises(errors.MalformedXML) as info:
        _delete(body)
    assert info.value.code == 'MalformedXML' and info.value.status == 400


@pytest.mark.parametrize('body', [
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]><Delete><Object><Key>&x;</Key></Object></Delete>',
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Delete><Object><Key>&b;</Key></Object></Delete>',
    b'<?xml version="1.0"?><!DOCTYPE d SYSTEM "file:///etc/passwd"><Delete><Object><Key>a</Key></Object></Delete>',
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>',
    b'<Delete><Object><Key>&undefined;</Key></Object></Delete>',
])
def test_dtd_and_entities_refused(body):
    with pytest.raises(errors.MalformedXML):
        _delete(body)


def test_deep_nesting_refused():
    with pytest.raises(errors.MalformedXML):
        _delete(b'<Delete>' + b'<a>' * 5000 + b'</a>' * 5000 + b'</Delete>')


def test_optional_payload_absent_when_body_empty():
    op = operation('s3', 'CreateBucket')
    decoded = decode_rest_xml(op, uri_params={'Bucket': 'b'}, query=MultiDict(), headers=CIMultiDict(), body=b'')
    assert decoded == {'Bucket': 'b'}


@pytest.mark.parametrize('name,value', [('x-amz-max-parts', 'abc'), ('x-amz-part-number-marker', '1.5')])
def test_bad_header_integer_is_invalid_argument(name, value):
    op = operation('s3', 'GetObjectAttributes')
    with pytest.raises(errors.InvalidArgument) as info:
        decode_rest_xml(op, uri_params={'Bucket': 'b', 'Key': 'k'}, query=MultiDict(),
                        headers=CIMultiDict({name: value, 'x-amz-object-attributes': 'ETag'}), body=None)
    assert info.value.extra == {'ArgumentName': name, 'ArgumentValue': value}


def test_bad_query_integer_and_missing_required():
    op = operation('s3', 'ListObjectsV2')
    with pytest.raises(errors.InvalidArgument):
        decode_rest_xml(op, uri_params={'Bucket': 'b'}, query=MultiDict({'max-keys': 'abc'}),
                        headers=CIMultiDict(), body=None)
    with pytest.raises(errors.InvalidRequest):
        decode_rest_xml(op, uri_params={}, query=MultiDict(), headers=CIMultiDict(), body=None)


def test_header_list_with_quoted_items():
    op = operation('s3', 'GetObjectAttributes')
    decoded = decode_rest_xml(op, uri_params={'Bucket': 'b', 'Key': 'k'}, query=MultiDict(),
                              headers=CIMultiDict({'x-amz-object-attributes': 'ETag, "Object,Parts" ,"a\\"b"'}),
                              body=None)
    assert decoded['ObjectAttributes'] == ['ETag', 'Object,Parts', 'a"b']


def test_has_streaming_payload():
    assert has_streaming_payload(operation('s3', 'PutObject'))
    assert has_streaming_payload(operation('s3', 'UploadPart'))
    assert not has_streaming_payload(operation('s3', 'PutBucketPolicy'))  # string payload, read whole
    assert not has_streaming_payload(operation('s3', 'DeleteObjects'))
    assert not has_streaming_payload(operation('s3', 'ListBuckets'))
