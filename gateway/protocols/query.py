"""The ``ec2`` and ``query`` protocols (EC2; STS, IAM), server side.

Requests are flat form parameters (``Filter.1.Value.2=x``) decoded into the
operation's input shape; responses are XML written from the output shape.

Wire names, as botocore's serializers write them:

* ec2: a member is named by its ``queryName``, else its ``locationName``
  with the first letter upper-cased, else its member name.  Lists are always
  flattened: ``Name.N`` (N from 1); an empty list is not sent at all.
* query: a member is named by its ``locationName`` or its member name.
  Lists are ``Name.member.N`` (the list member's ``locationName`` replaces
  ``member``); flattened lists are ``Name.N``, or ``ItemName.N`` when the
  list member has a ``locationName``.  An empty list is sent as ``Name=``.
* maps (both): ``Name.entry.N.key`` / ``Name.entry.N.value`` (key and value
  named by their ``locationName``), flattened maps ``Name.N.key``.

Decisions (documented, tested):

* a key sent twice: the **first** value wins (whether ``params`` is a
  MultiDict, a dict of lists or a list of pairs);
* unknown parameters are **ignored** by default: clients newer than our
  model send members we do not know, and signature parameters
  (``X-Amz-*``, ``Signature``...) arrive in the same form.  AWS EC2 itself
  answers ``UnknownParameter``; pass ``strict=True`` to do the same;
* list indexes need not be contiguous: items are taken in numeric order;
  non-numeric indexes are ignored (or ``UnknownParameter`` when strict).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from . import errors, models, values, xml_writer
from .xml_io import XML_DECLARATION, attrs_text, document, element

EC2_CONTENT_TYPE = 'text/xml;charset=UTF-8'
QUERY_CONTENT_TYPE = 'text/xml'

# Parameters every request may carry that are not members of the input
# shape: routing and (SigV2 / presigned SigV4) authentication.
COMMON_PARAMETERS = frozenset({
    'Action', 'Version', 'AWSAccessKeyId', 'Signature', 'SignatureMethod',
    'SignatureVersion', 'Timestamp', 'Expires', 'SecurityToken',
})

_ABSENT = object()
_WIRE_TABLES: dict[str, weakref.WeakKeyDictionary] = {
    'ec2': weakref.WeakKeyDictionary(),
    'query': weakref.WeakKeyDictionary(),
}


class _Node:
    __slots__ = ('value', 'children', 'used')

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _Node] = {}
        self.used = False


def _pairs(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Iterable[tuple[str, str]]:
    items = params.items() if hasattr(params, 'items') else params
    for key, value in items:
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = value[0]
        if isinstance(value, bytes):
            value = value.decode('utf-8', 'replace')
        yield str(key), '' if value is None else str(value)


def _build_tree(params) -> _Node:
    root = _Node()
    for key, value in _pairs(params):
        node = root
        for part in key.split('.'):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            node = child
        if node.value is None:  # first value wins
            node.value = value
    return root


def _numbered(node: _Node) -> list[tuple[int, str, _Node]]:
    items = []
    for key, child in node.children.items():
        if key.isascii() and key.isdigit() and int(key) > 0:
            items.append((int(key), key, child))
    items.sort(key=lambda item: item[0])
    return items


class _QueryDecoder:
    def __init__(self, protocol: str) -> None:
        if protocol not in ('ec2', 'query'):
            raise ValueError(f'not a query protocol: {protocol!r}')
        self.protocol = protocol
        self.ec2 = protocol == 'ec2'

    def wire_name(self, shape, default: str) -> str:
        serialization = shape.serialization
        if self.ec2:
            if 'queryName' in serialization:
                return serialization['queryName']
            name = serialization.get('name')
            return name[0].upper() + name[1:] if name else default
        return serialization.get('name', default)

    def _table(self, shape) -> dict[str, tuple[str, Any]]:
        """wire name -> (member name, member shape), built once per shape."""
        cache = _WIRE_TABLES[self.protocol]
        table = cache.get(shape)
        if table is None:
            table = {}
            for name, member in shape.members.items():
                table[self.wire_name(member, name)] = (name, member)
                if self._renamed_flat_list(member):
                    table[member.member.serialization['name']] = (name, member)
            cache[shape] = table
        return table

    def structure(self, node: _Node, shape, path: str) -> dict[str, Any]:
        node.used = True
        out: dict[str, Any] = {}
        table = self._table(shape)
        for key, child in node.children.items():
            entry = table.get(key)
            if entry is None or entry[0] in out:
                continue
            name, member = entry
            value = self.value(child, member, f'{path}.{key}' if path else key)
            if value is not _ABSENT:
                out[name] = value
        for name in shape.required_members:
            if name not in out:
                wire = self.wire_name(shape.members[name], name)
                raise errors.missing_member(self.protocol, f'{path}.{wire}' if path else wire)
        return out

    def _renamed_flat_list(self, member) -> bool:
        return (
            not self.ec2
            and member.type_name == 'list'
            and bool(member.serialization.get('flattened'))
            and bool(member.member.serialization.get('name'))
        )

    def value(self, node: _Node, shape, path: str) -> Any:
        type_name = shape.type_name
        if type_name == 'structure':
            if not node.children:
                return _ABSENT
            return self.structure(node, shape, path)
        if type_name == 'list':
            return self.list(node, shape, path)
        if type_name == 'map':
            return self.map(node, shape, path)
        if node.value is None:
            return _ABSENT
        node.used = True
        try:
            return values.parse_scalar(shape, node.value)
        except ValueError:
            raise errors.invalid_value(self.protocol, path, node.value, type_name) from None

    def list(self, node: _Node, shape, path: str) -> Any:
        holder, holder_path = node, path
        if not self.ec2 and not shape.serialization.get('flattened'):
            item_name = shape.member.serialization.get('name', 'member')
            holder = node.children.get(item_name)
            holder_path = f'{path}.{item_name}'
        if holder is None or not holder.children:
            if node.value == '' and not self.ec2:
                node.used = True
                return []
            return _ABSENT
        node.used = holder.used = True
        out = []
        for _, key, child in _numbered(holder):
            item = self.value(child, shape.member, f'{holder_path}.{key}')
            if item is not _ABSENT:
                out.append(item)
        return out

    def map(self, node: _Node, shape, path: str) -> Any:
        holder, holder_path = node, path
        if not shape.serialization.get('flattened'):
            holder = node.children.get('entry')
            holder_path = f'{path}.entry'
        if holder is None:
            return _ABSENT
        node.used = holder.used = True
        key_wire = self.wire_name(shape.key, 'key')
        value_wire = self.wire_name(shape.value, 'value')
        out: dict[Any, Any] = {}
        for _, index, entry in _numbered(holder):
            entry.used = True
            entry_path = f'{holder_path}.{index}'
            key_node = entry.children.get(key_wire)
            key = _ABSENT if key_node is None else self.value(key_node, shape.key, f'{entry_path}.{key_wire}')
            if key is _ABSENT:
                raise errors.missing_member(self.protocol, f'{entry_path}.{key_wire}')
            value_node = entry.children.get(value_wire)
            if value_node is not None:
                item = self.value(value_node, shape.value, f'{entry_path}.{value_wire}')
                if item is not _ABSENT:
                    out[key] = item
        return out


def _first_unused(node: _Node, path: str) -> str | None:
    for key, child in node.children.items():
        child_path = f'{path}.{key}' if path else key
        if not path and (key in COMMON_PARAMETERS or key.startswith('X-Amz-')):
            continue
        if child.value is not None and not child.used:
            return child_path
        found = _first_unused(child, child_path)
        if found:
            return found
    return None


def decode_query(
    operation,
    params: Mapping[str, Any] | Iterable[tuple[str, Any]],
    protocol: str,
    *,
    strict: bool = False,
) -> dict[str, Any]:
    """Decode form parameters into the input shape of ``operation``.

    ``params`` is the decoded form (POST body and/or query string): a
    MultiDict, a ``dict[str, str | list[str]]`` or a list of pairs.
    ``protocol`` is 'ec2' or 'query'.  Returns a dict keyed by the model's
    member names, values typed per the shapes (int, bool, float, aware UTC
    datetime, bytes for blobs, nested dicts/lists).  Raises a
    ``ProtocolError`` subclass for bad input (see ``errors``).
    """
    decoder = _QueryDecoder(protocol)
    shape = operation.input_shape
    root = _build_tree(params)
    result = {} if shape is None else decoder.structure(root, shape, '')
    if strict:
        unknown = _first_unused(root, '')
        if unknown:
            raise errors.unknown_parameter(unknown)
    return result


# --- responses -------------------------------------------------------------

def ec2_namespace(service_model) -> str:
    """``http://ec2.amazonaws.com/doc/<apiVersion>/`` as EC2 writes it."""
    ns = service_model.metadata.get('xmlNamespace') or (
        f"http://ec2.amazonaws.com/doc/{service_model.api_version}"
    )
    return ns if ns.endswith('/') else ns + '/'


def encode_query_response(operation, output: Mapping[str, Any] | None, request_id: str, protocol: str) -> bytes:
    """XML body of a successful response, for 'ec2' or 'query', written by the compiled writers
    (``xml_writer``) of the output shape.

    ec2:   ``<OpResponse xmlns=...><requestId/>members</OpResponse>``; an action without an
           output shape (RebootInstances, CreateTags ...) answers ``<return>true</return>``
           as EC2 does (libcloud and euca2ools read it)
    query: ``<OpResponse xmlns=...><OpResult>members</OpResult>
    <ResponseMetadata><RequestId/></ResponseMetadata></OpResponse>``
    """
    shape = operation.output_shape
    output = output or {}
    model = operation.service_model
    name = f'{operation.name}Response'
    if protocol == 'ec2':
        request = element('requestId', request_id)
        namespace = {'xmlns': ec2_namespace(model)}
        wrapper = shape.serialization.get('resultWrapper') if shape is not None else None
        if shape is None or wrapper:
            out = [XML_DECLARATION, f'<{name}{attrs_text(namespace)}>', request]
            if shape is None:
                out.append(_VOID_RETURN)
            else:
                xml_writer.root_writer(model, shape, wrapper, {}, 'item')(out, output)
            out.append(f'</{name}>')
        else:
            # the output's members (and xmlAttribute members) belong to the response element
            out = [XML_DECLARATION]
            xml_writer.root_writer(model, shape, name, namespace, 'item')(out, output)
            if len(out) == 2:                # <OpResponse .../>: no members, open it
                out[1:] = [out[1][:-2] + '>', f'</{name}>']
            out.insert(2, request)
    elif protocol == 'query':
        namespace = models.xml_namespace(model)
        out = [XML_DECLARATION, f'<{name}{attrs_text({"xmlns": namespace} if namespace else None)}>']
        if shape is not None:
            wrapper = shape.serialization.get('resultWrapper', f'{operation.name}Result')
            xml_writer.root_writer(model, shape, wrapper, {}, 'member')(out, output)
        out.append(f'<ResponseMetadata>{element("RequestId", request_id)}</ResponseMetadata>')
        out.append(f'</{name}>')
    else:
        raise ValueError(f'not a query protocol: {protocol!r}')
    return ''.join(out).encode('utf-8', 'replace')


# EC2's answer to an action that has no output shape.
_VOID_RETURN = '<return>true</return>'


def encode_query_error(
    code: str,
    message: str,
    request_id: str,
    status: int = 400,
    protocol: str = 'query',
    *,
    xml_namespace: str | None = None,
    sender_fault: bool | None = None,
) -> bytes:
    """XML body of an error response, for 'ec2' or 'query'.

    ec2:   ``<Response><Errors><Error><Code/><Message/></Error></Errors>
    <RequestID/></Response>``
    query: ``<ErrorResponse xmlns=ns><Error><Type>Sender|Receiver</Type>
    <Code/><Message/></Error><RequestId/></ErrorResponse>``; the type is
    ``Sender`` when ``sender_fault`` (default: status < 500), else ``Receiver``.
    """
    if protocol == 'ec2':
        error = element('Error', children=element('Code', code) + element('Message', message))
        return document(element('Response', children=element('Errors', children=error)
                                + element('RequestID', request_id)))
    if sender_fault is None:
        sender_fault = status < 500
    error = element('Error', children=element('Type', 'Sender' if sender_fault else 'Receiver')
                    + element('Code', code) + element('Message', message))
    return document(element('ErrorResponse', children=error + element('RequestId', request_id),
                            attrs={'xmlns': xml_namespace} if xml_namespace else None))
