"""A small synthetic model exercising the traits the bundled EC2/STS/S3
models barely use: flattened lists and maps, renamed list members and map
keys, nested lists, every scalar type, timestamp formats, xmlAttribute,
query-string maps, header lists, jsonvalue headers and statusCode."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlencode

import pytest
from botocore.awsrequest import HeadersDict
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from multidict import CIMultiDict, MultiDict

from gateway.protocols.json_protocol import decode_json, encode_json
from gateway.protocols.query import decode_query, encode_query_response
from gateway.protocols.rest_xml import decode_rest_xml, encode_rest_xml

UTC = dt.timezone.utc
T1 = dt.datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC)
T2 = dt.datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)

SHAPES = {
    'Str': {'type': 'string'}, 'Int': {'type': 'integer'}, 'Long': {'type': 'long'},
    'Bool': {'type': 'boolean'}, 'Dbl': {'type': 'double'}, 'Flt': {'type': 'float'},
    'Blob': {'type': 'blob'}, 'Time': {'type': 'timestamp'},
    'EpochTime': {'type': 'timestamp', 'timestampFormat': 'unixTimestamp'},
    'HttpTime': {'type': 'timestamp', 'timestampFormat': 'rfc822'},
    'StrList': {'type': 'list', 'member': {'shape': 'Str'}},
    'NamedList': {'type': 'list', 'member': {'shape': 'Str', 'locationName': 'Item'}},
    'FlatList': {'type': 'list', 'member': {'shape': 'Str'}, 'flattened': True},
    'FlatNamedList': {'type': 'list', 'member': {'shape': 'Inner', 'locationName': 'Thing'}, 'flattened': True},
    'ListOfLists': {'type': 'list', 'member': {'shape': 'StrList'}},
    'IntList': {'type': 'list', 'member': {'shape': 'Int'}},
    'StrMap': {'type': 'map', 'key': {'shape': 'Str'}, 'value': {'shape': 'Str'}},
    'NamedMap': {'type': 'map', 'key': {'shape': 'Str', 'locationName': 'Name'},
                 'value': {'shape': 'Inner', 'locationName': 'Val'}},
    'FlatMap': {'type': 'map', 'key': {'shape': 'Str'}, 'value': {'shape': 'Int'}, 'flattened': True},
    'Inner': {'type': 'structure', 'required': ['A'], 'members': {
        'A': {'shape': 'Str'}, 'B': {'shape': 'Int', 'locationName': 'bee'},
        'Kind': {'shape': 'Str', 'locationName': 'kind', 'xmlAttribute': True}}},
    'Everything': {'type': 'structure', 'members': {
        'S': {'shape': 'Str'}, 'I': {'shape': 'Int'}, 'L': {'shape': 'Long'}, 'B': {'shape': 'Bool'},
        'D': {'shape': 'Dbl'}, 'F': {'shape': 'Flt'}, 'Bl': {'shape': 'Blob'}, 'T': {'shape': 'Time'},
        'TE': {'shape': 'EpochTime'}, 'TH': {'shape': 'HttpTime'},
        'Plain': {'shape': 'StrList', 'locationName': 'plain'},
        'Named': {'shape': 'NamedList'}, 'Flat': {'shape': 'FlatList'},
        'FlatNamed': {'shape': 'FlatNamedList'}, 'Nested': {'shape': 'ListOfLists'},
        'M': {'shape': 'StrMap'}, 'NM': {'shape': 'NamedMap'}, 'FM': {'shape': 'FlatMap'},
        'In': {'shape': 'Inner', 'locationName': 'inner'}}},
    'RestIn': {'type': 'structure', 'required': ['Id'], 'payload': 'Body', 'members': {
        'Id': {'shape': 'Str', 'location': 'uri', 'locationName': 'Id'},
        'Q': {'shape': 'StrMap', 'location': 'querystring'},
        'Ints': {'shape': 'IntList', 'location': 'header', 'locationName': 'x-ints'},
        'Json': {'shape': 'JsonStr', 'location': 'header', 'locationName': 'x-json'},
        'When': {'shape': 'Time', 'location': 'header', 'locationName': 'x-when'},
        'Body': {'shape': 'Everything', 'locationName': 'Everything',
                 'xmlNamespace': {'uri': 'https://example.com/ns'}}}},
    'RestOut': {'type': 'structure', 'members': {
        'Status': {'shape': 'Int', 'location': 'statusCode'},
        'Ints': {'shape': 'IntList', 'location': 'header', 'locationName': 'x-ints'},
        'Json': {'shape': 'JsonStr', 'location': 'header', 'locationName': 'x-json'},
        'Meta': {'shape': 'StrMap', 'location': 'headers', 'locationName': 'x-meta-'},
        'S': {'shape': 'Str'}, 'FM': {'shape': 'FlatMap'}, 'In': {'shape': 'Inner'}}},
    'JsonStr': {'type': 'string', 'jsonvalue': True},
}

SAMPLE = {
    'S': 'a & <b> "c"', 'I': -5, 'L': 2**40, 'B': False, 'D': 1.5, 'F': -0.25, 'Bl': b'\x00\xff',
    'T': T1, 'TE': T2, 'TH': T2,
    'Plain': ['p1', 'p2'], 'Named': ['n1'], 'Flat': ['f1', 'f2'],
    'FlatNamed': [{'A': 'x', 'B': 1}, {'A': 'y'}], 'Nested': [['a', 'b'], ['c']],
    'M': {'k1': 'v1', 'k2': 'v2'}, 'NM': {'n': {'A': 'z'}}, 'FM': {'one': 1, 'two': 2},
    'In': {'A': 'q', 'B': 7},
}


def model(protocol: str) -> ServiceModel:
    return ServiceModel({
        'metadata': {'protocol': protocol, 'apiVersion': '2020-01-01', 'serviceId': 'Synth',
                     'endpointPrefix': 'synth', 'xmlNamespace': 'https://example.com/doc/2020-01-01/',
                     'jsonVersion': '1.0', 'targetPrefix': 'Synth'},
        'operations': {
            'Echo': {'name': 'Echo', 'http': {'method': 'POST', 'requestUri': '/'},
                     'input': {'shape': 'Everything'},
                     'output': {'shape': 'Everything', 'resultWrapper': 'EchoResult'}},
            'Rest': {'name': 'Rest', 'http': {'method': 'PUT', 'requestUri': '/things/{Id}'},
                     'input': {'shape': 'RestIn'}, 'output': {'shape': 'RestOut'}},
        },
        'shapes': SHAPES,
    }, service_name='synth')


@pytest.mark.parametrize('protocol', ['query', 'ec2'])
def test_query_protocols_roundtrip(protocol):
    op = model(protocol).operation_model('Echo')
    request = create_serializer(protocol).serialize_to_request(SAMPLE, op)
    form = parse_qsl(urlencode(request['body']), keep_blank_values=True)
    keys = {key for key, _ in form}
    if protocol == 'query':
        assert {'Flat.1', 'Thing.1.A', 'M.entry.1.key', 'NM.entry.1.Name', 'FM.1.key', 'Named.Item.1', 'plain.member.1'} <= keys
    else:
        assert {'Flat.1', 'FlatNamed.1.A', 'Plain.1', 'Named.1', 'Nested.1.1', 'Inner.Bee'} <= keys
    assert decode_query(op, form, protocol, strict=True) == SAMPLE
    body = encode_query_response(op, SAMPLE, 'rid', protocol)
    parsed = create_parser(protocol).parse({'body': body, 'headers': {}, 'status_code': 200}, op.output_shape)
    parsed.pop('ResponseMetadata')
    assert parsed == SAMPLE


def test_json_roundtrip():
    op = model('json').operation_model('Echo')
    request = create_serializer('json').serialize_to_request(dict(SAMPLE, T=T2), op)
    assert decode_json(op, request['body']) == dict(SAMPLE, T=T2)
    parsed = create_parser('json').parse({'body': encode_json(op, SAMPLE), 'headers': {}, 'status_code': 200},
                                         op.output_shape)
    parsed.pop('ResponseMetadata')
    assert parsed == SAMPLE


def test_rest_xml_roundtrip():
    op = model('rest-xml').operation_model('Rest')
    params = {'Id': 'a b/c', 'Q': {'x': '1', 'y': 'two'}, 'Ints': [1, 2, 3], 'Json': {'k': [1, 'v']},
              'When': T2, 'Body': dict(SAMPLE, FlatNamed=[{'A': 'x', 'Kind': 'special'}])}
    request = create_serializer('rest-xml').serialize_to_request(params, op)
    assert request['url_path'] == '/things/a%20b%2Fc'
    assert b'<FlatNamed kind="special">' in request['body']  # parser side says <Thing>
    decoded = decode_rest_xml(op, uri_params={'Id': 'a b/c'},
                              query=MultiDict(parse_qsl(urlencode(request['query_string']))),
                              headers=CIMultiDict(request['headers']), body=request['body'])
    assert decoded == params
    output = {'Status': 201, 'Ints': [4, 5], 'Json': {'a': None}, 'Meta': {'k': 'v'}, 'S': 's',
              'FM': {'a': 1}, 'In': {'A': 'x', 'Kind': 'attr & "q"'}}
    response = encode_rest_xml(op, output)
    assert response.status == 201
    headers = HeadersDict()
    for name, value in response.headers:
        headers[name] = value
    parsed = create_parser('rest-xml').parse({'body': response.body, 'headers': headers, 'status_code': 201},
                                             op.output_shape)
    parsed.pop('ResponseMetadata')
    assert parsed == output
