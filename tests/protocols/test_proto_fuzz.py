"""Junk in, ``ProtocolError`` out: no decoder lets another exception escape."""

from __future__ import annotations

import json
import random
from urllib.parse import parse_qsl, urlencode

from botocore.serialize import create_serializer
from multidict import CIMultiDict, MultiDict

from gateway.protocols.errors import ProtocolError
from gateway.protocols.json_protocol import decode_json
from gateway.protocols.models import operation, service_model
from gateway.protocols.query import decode_query
from gateway.protocols.rest_xml import decode_rest_xml
from proto_samples import Gen

JUNK = ['', 'abc', '-', '1e5', '1.5', '٣', '²', '9999-99-99', '0001-01-01T00:00:00+01:00',
        '9999-12-31T23:59:59-01:00', '1' * 40, '\x00', '&&', 'NaN', 'true', 'Tru', '***', 'é',
        '2026-11-26T10:00:00Z', 'Wed, 26 Nov 2026 10:00:00 GMT', 'Mon, 99 Foo 2026 99:99:99 GMT']


def _mutate_keys(rng, keys):
    key = rng.choice(keys) if keys else 'X'
    parts = key.split('.')
    i = rng.randrange(len(parts))
    parts[i] = rng.choice(['0', 'x', '²', '', '-1', '99999999999999999999', parts[i]])
    return '.'.join(parts)


def _decode_or_protocol_error(call):
    try:
        result = call()
    except ProtocolError:
        return None
    assert isinstance(result, dict)
    return result


def test_query_junk():
    rng = random.Random(5)
    for service, protocol in (('ec2', 'ec2'), ('sts', 'query'), ('iam', 'query')):
        names = service_model(service).operation_names[::7]
        for i, name in enumerate(names):
            op = operation(service, name)
            if op.input_shape is None:
                continue
            params = Gen(i).value(op.input_shape)
            request = create_serializer(protocol).serialize_to_request(params, op)
            form = parse_qsl(urlencode(request['body']), keep_blank_values=True)
            keys = [k for k, _ in form]
            for _ in range(8):
                junk = [(k, rng.choice(JUNK) if rng.random() < 0.5 else v) for k, v in form]
                junk += [(_mutate_keys(rng, keys), rng.choice(JUNK)) for _ in range(3)]
                rng.shuffle(junk)
                _decode_or_protocol_error(lambda: decode_query(op, junk, protocol, strict=rng.random() < 0.5))


def test_rest_xml_junk():
    rng = random.Random(6)
    for name in service_model('s3').operation_names:
        op = operation('s3', name)
        shape = op.input_shape
        if shape is None:
            continue
        headers = CIMultiDict()
        query = MultiDict()
        for member_name, member in shape.members.items():
            location = member.serialization.get('location')
            wire = member.serialization.get('name', member_name)
            if location == 'header':
                headers[wire] = rng.choice(JUNK)
            elif location == 'querystring' and member.type_name != 'map':
                query[wire] = rng.choice(JUNK)
        payload = shape.serialization.get('payload')
        bodies = [b'', b'<', b'<a/>', b'<?xml version="1.0"?><x>&amp;</x>', b'\xff\xfe\x00<', b'<a>' * 70]
        if payload and shape.members[payload].type_name == 'structure':
            good = create_serializer('rest-xml', include_validation=False)._serialize_body_params(
                Gen(1).value(shape.members[payload]), shape.members[payload])
            for _ in range(10):
                cut = bytearray(good)
                for _ in range(3):
                    pos = rng.randrange(len(cut))
                    cut[pos:pos + 1] = rng.choice([b'', b'<', b'>', b'&', b'x', b'1', b'\x00'])
                bodies.append(bytes(cut))
        for body in bodies:
            _decode_or_protocol_error(lambda: decode_rest_xml(
                op, uri_params={'Bucket': 'b', 'Key': 'k'}, query=query, headers=headers, body=body))


def test_json_junk():
    rng = random.Random(7)
    values = [None, True, 1, -1.5, 2**70, 'x', '', [], {}, [1, 'a'], {'a': 1}, 'NaN', float('inf')]
    for service in ('ce', 'cur'):
        for i, name in enumerate(service_model(service).operation_names):
            op = operation(service, name)
            document = Gen(i).value(op.input_shape)

            def scramble(node):
                if isinstance(node, dict):
                    return {k: rng.choice(values) if rng.random() < 0.3 else scramble(v) for k, v in node.items()}
                if isinstance(node, list):
                    return [rng.choice(values) if rng.random() < 0.3 else scramble(v) for v in node]
                return node

            for _ in range(10):
                body = json.dumps(scramble(document)).encode()
                _decode_or_protocol_error(lambda: decode_json(op, body))
