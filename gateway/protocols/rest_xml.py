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
from . import xml_writer
from .xml_io import XML_DECLARATION, XMLRefused, document, element, parse
from .xml_shapes import XMLDecoder, body_members, member_element_name, namespace_attrs

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


# --- per-operation plans ---------------------------------------------------------
#
# What the model says about an operation's members is read once per operation (and kept for the
# life of the process), not on every request: where each member travels, its wire name, how its
# text is converted, and a compiled writer for its XML body.

_PLANS: dict[int, tuple[Any, '_Plan']] = {}
_PLAIN_HEADER, _HEADER, _PREFIXED, _STATUS = range(4)


class _Plan:
    """The model facts about one operation that decoding and encoding need, precomputed."""

    __slots__ = (
        'streaming_payload', 'uri', 'query', 'query_map', 'header_members', 'prefix_members',
        'payload', 'payload_type', 'payload_root', 'body_members', 'required',
        'out_members', 'response_code', 'writer', 'root_value',
    )

    def __init__(self, operation) -> None:
        shape = operation.input_shape
        self.streaming_payload = has_streaming_payload_uncached(operation)
        self.uri: list[tuple[str, str, str, Any]] = []
        self.query: list[tuple[str, str, Any]] = []
        self.query_map: tuple[str, Any, frozenset] | None = None
        self.header_members: dict[str, list[tuple[str, str, Any]]] = {}
        self.prefix_members: list[tuple[str, int, str]] = []
        self.payload = self.payload_type = self.payload_root = None
        self.body_members = False
        self.required: list[tuple[str, bool, str]] = []
        if shape is not None:
            self._plan_input(operation, shape)
        self._plan_output(operation)

    def _plan_input(self, operation, shape) -> None:
        bound = {
            m.serialization.get('name', n)
            for n, m in shape.members.items()
            if m.serialization.get('location') == 'querystring' and m.type_name != 'map'
        }
        static = operation.http.get('requestUri', '').partition('?')[2]
        bound.update(part.partition('=')[0] for part in static.split('&') if part)
        for name, member in shape.members.items():
            location = member.serialization.get('location')
            wire = member.serialization.get('name', name)
            if location == 'uri':
                self.uri.append((name, wire, wire + '+', member))
            elif location == 'querystring':
                if member.type_name == 'map':
                    self.query_map = (name, member, frozenset(bound))
                else:
                    self.query.append((name, wire, member))
            elif location == 'header':
                self.header_members.setdefault(wire.lower(), []).append((name, wire, member))
            elif location == 'headers':
                self.prefix_members.append((wire.lower(), len(wire), name))
        payload = shape.serialization.get('payload')
        if payload is not None:
            member = shape.members[payload]
            self.payload, self.payload_type = payload, member.type_name
            self.payload_root = (member.serialization.get('name', payload), member)
        else:
            self.body_members = bool(body_members(shape))
        for name in shape.required_members:
            member = shape.members[name]
            self.required.append((name, member.serialization.get('location') is None,
                                  member.serialization.get('name', name)))

    def _plan_output(self, operation) -> None:
        shape = operation.output_shape
        self.response_code = int(operation.http.get('responseCode', 200))
        # member name -> (how: _PLAIN_HEADER / _HEADER / _PREFIXED / _STATUS, wire name, shape)
        self.out_members: dict[str, tuple[int, str, Any]] = {}
        self.writer = None
        self.root_value = None
        if shape is None:
            return
        for name, member in shape.members.items():
            location = member.serialization.get('location')
            wire = member.serialization.get('name', name)
            if location == 'header':
                plain = member.type_name == 'string' and not member.serialization.get('jsonvalue')
                self.out_members[name] = (_PLAIN_HEADER if plain else _HEADER, wire, member)
            elif location == 'headers':
                self.out_members[name] = (_PREFIXED, wire, member)
            elif location == 'statusCode':
                self.out_members[name] = (_STATUS, wire, member)
        self._plan_body(operation, shape)

    def _plan_body(self, operation, shape) -> None:
        namespace = models.xml_namespace(operation.service_model)
        payload = shape.serialization.get('payload')
        if payload is not None:
            member = shape.members[payload]
            if member.type_name == 'structure':
                attrs = namespace_attrs(member) or ({'xmlns': namespace} if namespace else {})
                self.writer = (payload, xml_writer.root_writer(
                    operation.service_model, member, member.serialization.get('name', payload), attrs))
            return
        members = body_members(shape)
        if not members:
            return
        root = output_root_name(operation)
        attrs = {'xmlns': namespace} if namespace else {}
        if len(members) == 1 and members[0][1].type_name not in ('structure', 'list', 'map') and (
            member_element_name(members[0][1], members[0][0]) == root
        ):
            # GetBucketLocation: the root element itself carries the value.
            self.root_value = (root, attrs, members[0][0], members[0][1])
            return
        self.writer = (None, xml_writer.root_writer(operation.service_model, shape, root, attrs))


def _plan(operation) -> _Plan:
    found = _PLANS.get(id(operation))
    if found is None or found[0] is not operation:
        found = _PLANS[id(operation)] = (operation, _Plan(operation))
    return found[1]


# --- requests ----------------------------------------------------------------

def has_streaming_payload_uncached(operation) -> bool:
    shape = operation.input_shape
    payload = shape.serialization.get('payload') if shape is not None else None
    if payload is None:
        return False
    member = shape.members[payload]
    return member.type_name == 'blob' and bool(member.serialization.get('streaming'))


def has_streaming_payload(operation) -> bool:
    """True when the request body is a streaming blob (PutObject, UploadPart):
    the gateway then hands ``decode_rest_xml`` a ``stream`` and no ``body``."""
    return _plan(operation).streaming_payload


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

    Header members are found by walking the request's headers once (a handful)
    rather than looking up each of the model's (PutObject has ~45).
    """
    if operation.input_shape is None:
        return {}
    plan = _plan(operation)
    params: dict[str, Any] = {}
    for name, wire, wire_plus, member in plan.uri:
        raw = uri_params.get(wire, uri_params.get(wire_plus))
        if raw is not None:
            params[name] = _scalar(member, raw, wire, 'iso8601')
    if query:
        for name, wire, member in plan.query:
            if wire in query:
                value = _from_query(member, wire, query)
                if value is not None:
                    params[name] = value
        if plan.query_map is not None:
            name, member, bound = plan.query_map
            value = _query_map(member, query, bound)
            if value is not None:
                params[name] = value
    header_members = plan.header_members
    prefixes = plan.prefix_members
    for key, raw in headers.items():
        lowered = key.lower()
        found = header_members.get(lowered)
        if found is not None:
            for name, wire, member in found:
                if name not in params:     # a repeated header: the first one counts
                    params[name] = _from_header(member, raw, wire)
        for prefix, length, name in prefixes:
            if lowered.startswith(prefix) and len(key) > length:
                params.setdefault(name, {}).setdefault(key[length:].lower(), raw)
    _decode_body(plan, operation.input_shape, params, body, stream)
    for name, in_body, wire in plan.required:
        if name not in params:
            if in_body:
                raise errors.MalformedXML()
            raise errors.missing_member('rest-xml', wire)
    return params


def _scalar(shape, raw: str, wire: str, default_ts: str) -> Any:
    if shape.type_name == 'string':
        return raw
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


def _query_map(member, query: Mapping[str, str], bound: frozenset) -> dict | None:
    """Every query parameter not bound elsewhere: not the members, not the requestUri's own
    (``?list-type=2``), not a presigned signature's."""
    found = {}
    for key in dict.fromkeys(query.keys()):
        if key in bound or key.lower().startswith('x-amz-'):
            continue
        found[key] = _scalar(member.value, _getall(query, key)[0], key, 'iso8601')
    return found or None


def _from_query(member, wire: str, query: Mapping[str, str]) -> Any:
    raw_items = _getall(query, wire)
    if not raw_items:
        return None
    if member.type_name == 'list':
        return [_scalar(member.member, raw, wire, 'iso8601') for raw in raw_items]
    return _scalar(member, raw_items[0], wire, 'iso8601')


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
    type_name = member.type_name
    if type_name == 'string':
        if member.serialization.get('jsonvalue'):
            try:
                return json.loads(base64.b64decode(raw, validate=True).decode('utf-8'))
            except (binascii.Error, ValueError):
                raise errors.invalid_value('rest-xml', wire, raw, 'base64 JSON') from None
        return raw
    if type_name == 'list':
        return [_scalar(member.member, item, wire, 'rfc822') for item in _split_header_list(raw)]
    return _scalar(member, raw.strip(), wire, 'rfc822')


def _is_blank(body: bytes | None) -> bool:
    return body is None or not body.strip()


def _parse_body(body: bytes):
    try:
        return parse(body)
    except XMLRefused:
        raise errors.MalformedXML() from None


def _decode_body(plan: _Plan, shape, params: dict, body: bytes | None, stream: object | None) -> None:
    payload = plan.payload
    if payload is not None:
        type_name = plan.payload_type
        if type_name == 'blob':
            if stream is not None:
                params[payload] = stream
            elif body:
                params[payload] = body
        elif type_name == 'string':
            if body:
                try:
                    params[payload] = body.decode('utf-8')
                except UnicodeDecodeError:
                    raise errors.InvalidRequest('The request body is not valid UTF-8') from None
        elif type_name == 'structure' and not _is_blank(body):
            root = _parse_body(body)
            root_name, member = plan.payload_root
            if root.tag != root_name:
                raise errors.MalformedXML()
            params[payload] = XMLDecoder().structure(root, member, '')
        return
    if plan.body_members and not _is_blank(body):
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
    plan = _plan(operation)
    output = output or {}
    response = RestResponse(status=plan.response_code)
    if operation.output_shape is None:
        if status is not None:
            response.status = status
        return response
    headers = response.headers
    members = plan.out_members
    # the output's own members (a handful), in its order, rather than every header the model
    # has (GetObject: ~40)
    for name, value in output.items():
        found = members.get(name)
        if found is None or value is None:
            continue
        how, wire, member = found
        if how == _PLAIN_HEADER:
            text = value if type(value) is str else str(value)
            if '\r' in text or '\n' in text:
                text = text.replace('\r', ' ').replace('\n', ' ')
            headers.append((wire, text))
        elif how == _HEADER:
            if member.type_name == 'list' and not value:
                continue
            headers.append((wire, _header_text(member, value)))
        elif how == _PREFIXED:
            for key, item in value.items():
                text = str(item).replace('\r', ' ').replace('\n', ' ')
                headers.append((wire + key, text))
        else:
            response.status = int(value)
    if status is not None:
        response.status = status
    _encode_body(plan, operation, output, response)
    return response


def _encode_body(plan: _Plan, operation, output: Mapping[str, Any], response: RestResponse) -> None:
    if plan.root_value is not None:
        root, attrs, name, member = plan.root_value
        value = output.get(name)
        text = values.format_scalar(member, value) if value is not None else None
        _set_xml(response, document(element(root, text, attrs=attrs)))
        return
    payload = operation.output_shape.serialization.get('payload')
    if payload is not None:
        value = output.get(payload)
        if value is None:
            return
        type_name = operation.output_shape.members[payload].type_name
        if type_name == 'blob':
            response.body = value.encode('utf-8') if isinstance(value, str) else value
        elif type_name == 'string':
            response.body = value.encode('utf-8') if isinstance(value, str) else bytes(value)
        elif plan.writer is not None:
            _set_xml(response, _write(plan.writer[1], value))
        return
    if plan.writer is not None:
        _set_xml(response, _write(plan.writer[1], output))


def _write(writer, value: Any) -> bytes:
    out: list = [XML_DECLARATION]
    writer(out, value)
    return ''.join(out).encode('utf-8', 'replace')


def _set_xml(response: RestResponse, body: bytes) -> None:
    response.body = body
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
    children = [element('Code', code), element('Message', message)]
    for name, value in (extra or {}).items():
        if value is not None:
            children.append(element(name, value if isinstance(value, str) else str(value)))
    children += [element('RequestId', request_id), element('HostId', host_id)]
    return document(element('Error', children=''.join(children)))
