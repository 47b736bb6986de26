"""The ``rest-xml`` protocol (S3), server side.

Input members are bound, per the model, to the URI (``uri``), the query
string (``querystring``), single headers (``header``), header prefix maps
(``headers``, e.g. ``x-amz-meta-``) or the body (``payload``).  Outputs go
back the same way, plus ``statusCode`` and the operation's ``responseCode``.

Decisions:

* user metadata keys (``headers`` maps) are lower-cased on input, as S3
  stores them;
* header values are written without CR/LF (replaced by spaces) so that no
  value can split a response;
* a payload structure's root element must carry the name the model gives
  it (``<Delete>``, ``<CompleteMultipartUpload>``), else ``MalformedXML``.

S3's model does not name the root elements of its non-payload outputs
(``ListObjectsV2`` answers ``<ListBucketResult>``); ``OUTPUT_ROOTS`` is the
small named table of those names, taken from the S3 API reference.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors, models, values
from .xml_io import Element, XMLRefused, parse, serialize
from .xml_shapes import XMLDecoder, XMLEncoder, body_members, member_element_name, namespace_attrs

XML_CONTENT_TYPE = 'application/xml'

OUTPUT_ROOTS: dict[str, dict[str, str]] = {
    's3': {
        'CompleteMultipartUpload': 'CompleteMultipartUploadResult',
        'CreateMultipartUpload': 'InitiateMultipartUploadResult',
        'CreateSession': 'CreateSessionResult',
        'DeleteObjects': 'DeleteResult',
        'GetBucketAccelerateConfiguration': 'AccelerateConfiguration',
        'GetBucketAcl': 'AccessControlPolicy',
        'GetBucketCors': 'CORSConfiguration',
        'GetBucketLifecycle': 'LifecycleConfiguration',
        'GetBucketLifecycleConfiguration': 'LifecycleConfiguration',
        'GetBucketLocation': 'LocationConstraint',
        'GetBucketLogging': 'BucketLoggingStatus',
        'GetBucketNotification': 'NotificationConfiguration',
        'GetBucketNotificationConfiguration': 'NotificationConfiguration',
        'GetBucketRequestPayment': 'RequestPaymentConfiguration',
        'GetBucketTagging': 'Tagging',
        'GetBucketVersioning': 'VersioningConfiguration',
        'GetBucketWebsite': 'WebsiteConfiguration',
        'GetObjectAcl': 'AccessControlPolicy',
        'GetObjectAttributes': 'GetObjectAttributesResponse',
        'GetObjectTagging': 'Tagging',
        'ListBucketAnalyticsConfigurations': 'ListBucketAnalyticsConfigurationResult',
        'ListBucketIntelligentTieringConfigurations': 'ListBucketIntelligentTieringConfigurationsOutput',
        'ListBucketInventoryConfigurations': 'ListInventoryConfigurationsResult',
        'ListBucketMetricsConfigurations': 'ListMetricsConfigurationsResult',
        'ListBuckets': 'ListAllMyBucketsResult',
        'ListDirectoryBuckets': 'ListAllMyDirectoryBucketsResult',
        'ListMultipartUploads': 'ListMultipartUploadsResult',
        'ListObjectVersions': 'ListVersionsResult',
        'ListObjects': 'ListBucketResult',
        'ListObjectsV2': 'ListBucketResult',
        'ListParts': 'ListPartsResult',
    },
}


@dataclass
class RestResponse:
    """What the gateway writes back: status, header pairs, body.

    ``body`` is ``bytes``, or the streaming object the handler returned for
    a streaming payload (GetObject ``Body``), passed through untouched.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | object = b''


# --- requests ----------------------------------------------------------------

def has_streaming_payload(operation) -> bool:
    """True when the request body is a streaming blob (PutObject, UploadPart):
    the gateway then hands ``decode_rest_xml`` a ``stream`` and no ``body``."""
    shape = operation.input_shape
    payload = shape.serialization.get('payload') if shape is not None else None
    if payload is None:
        return False
    member = shape.members[payload]
    return member.type_name == 'blob' and bool(member.serialization.get('streaming'))


def decode_rest_xml(
    operation,
    *,
    uri_params: Mapping[str, str],
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes | None,
    stream: object | None = None,
) -> dict[str, Any]:
    """Decode an S3-style request into the input shape of ``operation``.

    ``uri_params`` are the percent-decoded URI labels ({'Bucket', 'Key'}),
    ``query`` the decoded query string (a MultiDict: list members use
    ``getall``), ``headers`` a case-insensitive mapping, ``body`` the request
    body when the payload is XML or a small blob, ``stream`` the body object
    for a streaming payload (never read here).  Raises ``ProtocolError``.
    """
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get('location')
        wire = member.serialization.get('name', name)
        if location == 'uri':
            raw = uri_params.get(wire, uri_params.get(wire + '+'))
            if raw is not None:
                params[name] = _scalar(member, raw, wire, 'iso8601')
        elif location == 'querystring':
            value = _from_query(member, wire, query, shape, operation)
            if value is not None:
                params[name] = value
        elif location == 'header':
            raw = _get_header(headers, wire)
            if raw is not None:
                params[name] = _from_header(member, raw, wire)
        elif location == 'headers':
            prefixed = _prefixed_headers(headers, wire)
            if prefixed:
                params[name] = prefixed
    _decode_body(operation, shape, params, body, stream)
    for name in shape.required_members:
        if name not in params:
            member = shape.members[name]
            if member.serialization.get('location') is None:
                raise errors.MalformedXML()
            raise errors.missing_member('rest-xml', member.serialization.get('name', name))
    return params


def _scalar(shape, raw: str, wire: str, default_ts: str) -> Any:
    try:
        return values.parse_scalar(shape, raw, default_ts)
    except ValueError:
        raise errors.invalid_value('rest-xml', wire, raw, shape.type_name) from None


def _getall(query: Mapping[str, str], key: str) -> list[str]:
    if hasattr(query, 'getall'):
        return list(query.getall(key, []))
    value = query.get(key)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _from_query(member, wire: str, query: Mapping[str, str], shape, operation) -> Any:
    if member.type_name == 'list':
        raw_items = _getall(query, wire)
        if not raw_items:
            return None
        return [_scalar(member.member, raw, wire, 'iso8601') for raw in raw_items]
    if member.type_name == 'map':
        # Every query parameter not bound elsewhere: not the members, not the
        # requestUri's own (``?list-type=2``), not a presigned signature's.
        bound = {
            m.serialization.get('name', n)
            for n, m in shape.members.items()
            if m.serialization.get('location') == 'querystring' and m.type_name != 'map'
        }
        static = operation.http.get('requestUri', '').partition('?')[2]
        bound.update(part.partition('=')[0] for part in static.split('&') if part)
        found = {}
        for key in dict.fromkeys(query.keys()):
            if key in bound or key.lower().startswith('x-amz-'):
                continue
            found[key] = _scalar(member.value, _getall(query, key)[0], key, 'iso8601')
        return found or None
    raw_items = _getall(query, wire)
    if not raw_items:
        return None
    return _scalar(member, raw_items[0], wire, 'iso8601')


def _get_header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not hasattr(headers, 'getall'):
        lowered = name.lower()
        for key, item in headers.items():
            if key.lower() == lowered:
                return item
    return value


def _prefixed_headers(headers: Mapping[str, str], prefix: str) -> dict[str, str]:
    lowered = prefix.lower()
    found: dict[str, str] = {}
    for key, value in headers.items():
        if key.lower().startswith(lowered) and len(key) > len(prefix):
            found.setdefault(key[len(prefix):].lower(), value)
    return found


def _split_header_list(raw: str) -> list[str]:
    """Split a comma-separated header list, honouring ``"quoted, items"``."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in raw:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == '\\':
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ',' and not quoted:
            items.append(''.join(current).strip())
            current = []
        else:
            current.append(char)
    items.append(''.join(current).strip())
    return [item for item in items if item != ''] if raw.strip() else []


def _from_header(member, raw: str, wire: str) -> Any:
    if member.type_name == 'list':
        return [_scalar(member.member, item, wire, 'rfc822') for item in _split_header_list(raw)]
    if member.type_name == 'string' and member.serialization.get('jsonvalue'):
        try:
            return json.loads(base64.b64decode(raw, validate=True).decode('utf-8'))
        except (binascii.Error, ValueError):
            raise errors.invalid_value('rest-xml', wire, raw, 'base64 JSON') from None
    return _scalar(member, raw.strip() if member.type_name != 'string' else raw, wire, 'rfc822')


def _is_blank(body: bytes | None) -> bool:
    return body is None or not body.strip()


def _parse_body(body: bytes):
    try:
        return parse(body)
    except XMLRefused:
        raise errors.MalformedXML() from None


def _decode_body(operation, shape, params: dict, body: bytes | None, stream: object | None) -> None:
    payload = shape.serialization.get('payload')
    if payload is not None:
        member = shape.members[payload]
        if member.type_name == 'blob':
            if stream is not None:
                params[payload] = stream
            elif body:
                params[payload] = body
        elif member.type_name == 'string':
            if body:
                try:
                    params[payload] = body.decode('utf-8')
                except UnicodeDecodeError:
                    raise errors.InvalidRequest('The request body is not valid UTF-8') from None
        elif member.type_name == 'structure' and not _is_blank(body):
            root = _parse_body(body)
            if root.tag != member.serialization.get('name', payload):
                raise errors.MalformedXML()
            params[payload] = XMLDecoder().structure(root, member, '')
        return
    if body_members(shape) and not _is_blank(body):
        root = _parse_body(body)
        params.update(XMLDecoder().structure(root, shape, ''))


# --- responses ---------------------------------------------------------------

def _header_text(shape, value: Any) -> str:
    if shape.type_name == 'list':
        parts = []
        for item in value:
            text = _header_text(shape.member, item)
            if shape.member.type_name == 'string' and (',' in text or '"' in text):
                text = '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'
            parts.append(text)
        text = ','.join(parts)
    elif shape.type_name == 'string' and shape.serialization.get('jsonvalue'):
        text = base64.b64encode(json.dumps(value, separators=(',', ':')).encode('utf-8')).decode('ascii')
    else:
        text = values.format_scalar(shape, value, default_ts='rfc822')
    return text.replace('\r', ' ').replace('\n', ' ')


def output_root_name(operation) -> str:
    """Root element of a non-payload XML output."""
    service = operation.service_model.service_name
    known = OUTPUT_ROOTS.get(service, {}).get(operation.name)
    if known:
        return known
    shape = operation.output_shape
    return shape.serialization.get('name', shape.name)


def encode_rest_xml(operation, output: Mapping[str, Any] | None, *, status: int | None = None) -> RestResponse:
    """Turn a handler's output dict into status, headers and body.

    ``status`` overrides the model's status (e.g. 206 for a ranged GetObject);
    otherwise a ``statusCode`` member, else the operation's ``responseCode``,
    else 200.
    """
    shape = operation.output_shape
    output = output or {}
    response = RestResponse(status=int(operation.http.get('responseCode', 200)))
    if shape is None:
        if status is not None:
            response.status = status
        return response
    for name, member in shape.members.items():
        value = output.get(name)
        if value is None:
            continue
        location = member.serialization.get('location')
        wire = member.serialization.get('name', name)
        if location == 'header':
            if member.type_name == 'list' and not value:
                continue
            response.headers.append((wire, _header_text(member, value)))
        elif location == 'headers':
            for key, item in value.items():
                text = str(item).replace('\r', ' ').replace('\n', ' ')
                response.headers.append((wire + key, text))
        elif location == 'statusCode':
            response.status = int(value)
    if status is not None:
        response.status = status
    _encode_body(operation, shape, output, response)
    return response


def _encode_body(operation, shape, output: Mapping[str, Any], response: RestResponse) -> None:
    namespace = models.xml_namespace(operation.service_model)
    payload = shape.serialization.get('payload')
    if payload is not None:
        member = shape.members[payload]
        value = output.get(payload)
        if value is None:
            return
        if member.type_name == 'blob':
            response.body = value.encode('utf-8') if isinstance(value, str) else value
        elif member.type_name == 'string':
            response.body = value.encode('utf-8') if isinstance(value, str) else bytes(value)
        else:
            root = Element(member.serialization.get('name', payload))
            root.attrs.update(namespace_attrs(member) or ({'xmlns': namespace} if namespace else {}))
            XMLEncoder().fill_structure(root, member, value)
            _set_xml(response, root)
        return
    members = body_members(shape)
    if not members:
        return
    root = Element(output_root_name(operation))
    if namespace:
        root.attrs['xmlns'] = namespace
    if len(members) == 1 and members[0][1].type_name not in ('structure', 'list', 'map') and (
        member_element_name(members[0][1], members[0][0]) == root.tag
    ):
        # GetBucketLocation: the root element itself carries the value.
        value = output.get(members[0][0])
        if value is not None:
            root.text = values.format_scalar(members[0][1], value)
    else:
        XMLEncoder().fill_structure(root, shape, output)
    _set_xml(response, root)


def _set_xml(response: RestResponse, root: Element) -> None:
    response.body = serialize(root)
    if not any(name.lower() == 'content-type' for name, _ in response.headers):
        response.headers.append(('Content-Type', XML_CONTENT_TYPE))


def encode_rest_xml_error(
    code: str,
    message: str,
    request_id: str,
    host_id: str = '',
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """``<Error><Code/><Message/>{extra}<RequestId/><HostId/></Error>``."""
    root = Element('Error')
    root.add('Code', code)
    root.add('Message', message)
    for name, value in (extra or {}).items():
        if value is not None:
            root.add(name, value if isinstance(value, str) else str(value))
    root.add('RequestId', request_id)
    root.add('HostId', host_id)
    return serialize(root)
