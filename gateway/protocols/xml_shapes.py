"""The XML side of the botocore shapes: element names, body members, namespaces, and the reader
of rest-xml request bodies (``XMLDecoder``); values are written by ``xml_writer``.

Used by the ec2, query and rest-xml codecs.  Element names, list and map
styles (wrapped or ``flattened``), member names of lists, ``xmlAttribute``
members and ``xmlNamespace`` traits all come from the botocore shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import errors, values
from .xml_io import Node

# Members bound to the HTTP envelope are never part of an XML body.
ENVELOPE_LOCATIONS = frozenset({'header', 'headers', 'statusCode', 'uri', 'querystring'})


def member_element_name(shape, member_name: str) -> str:
    """The element name of a structure member (botocore's ``_member_key_name``).

    A flattened list whose member shape has a ``locationName`` repeats that
    name; everything else uses the member's ``locationName`` or its name.
    """
    if shape.type_name == 'list' and shape.serialization.get('flattened'):
        name = shape.member.serialization.get('name')
        if name:
            return name
    return shape.serialization.get('name', member_name)


def body_members(shape) -> list[tuple[str, Any]]:
    """(name, shape) of the members of ``shape`` that live in the XML body."""
    if shape is None:
        return []
    return [
        (name, member)
        for name, member in shape.members.items()
        if member.serialization.get('location') not in ENVELOPE_LOCATIONS
        and not member.serialization.get('eventheader')
    ]


def namespace_attrs(shape) -> dict[str, str]:
    trait = shape.serialization.get('xmlNamespace')
    if isinstance(trait, str):
        return {'xmlns': trait}
    if isinstance(trait, Mapping) and trait.get('uri'):
        prefix = trait.get('prefix')
        return {f'xmlns:{prefix}' if prefix else 'xmlns': trait['uri']}
    return {}


# --- XML -> value ------------------------------------------------------------

class XMLDecoder:
    """Reads an XML request body into shape values (rest-xml input).

    Every mismatch with the model (a bad number, a missing required member)
    is a ``MalformedXML``, as S3 reports schema violations.
    """

    protocol = 'rest-xml-body'

    def structure(self, node: Node, shape, path: str) -> dict[str, Any]:
        groups: dict[str, list[Node]] = {}
        for child in node.children:
            groups.setdefault(child.tag, []).append(child)
        out: dict[str, Any] = {}
        for name, member in body_members(shape):
            if member.serialization.get('xmlAttribute'):
                text = node.attr(member.serialization['name'])
                if text is not None:
                    out[name] = self._scalar(member, text, f'{path}@{name}')
                continue
            wire = member_element_name(member, name)
            nodes = groups.get(wire)
            if not nodes:
                # botocore's serializer names a flattened list's items after
                # the member (its parser, after the list member): take both.
                wire = member.serialization.get('name', name)
                nodes = groups.get(wire)
            if nodes:
                out[name] = self.value(nodes, member, f'{path}.{wire}' if path else wire)
        for name in shape.required_members:
            if name not in out and name in shape.members and (
                shape.members[name].serialization.get('location') not in ENVELOPE_LOCATIONS
            ):
                raise errors.missing_member(self.protocol, name)
        return out

    def value(self, nodes: list[Node], shape, path: str) -> Any:
        """Decode the element(s) ``nodes`` found for one member."""
        type_name = shape.type_name
        flat = shape.serialization.get('flattened')
        if type_name == 'list':
            items = nodes if flat else nodes[0].children
            return [self.value([item], shape.member, f'{path}.{i}') for i, item in enumerate(items, 1)]
        if type_name == 'map':
            entries = nodes if flat else nodes[0].children
            return self._map(entries, shape, path)
        if type_name == 'structure':
            return self.structure(nodes[0], shape, path)
        return self._scalar(shape, nodes[0].text, path)

    def _map(self, entries: list[Node], shape, path: str) -> dict[Any, Any]:
        key_name = shape.key.serialization.get('name', 'key')
        value_name = shape.value.serialization.get('name', 'value')
        out: dict[Any, Any] = {}
        for entry in entries:
            key_nodes = [c for c in entry.children if c.tag == key_name]
            value_nodes = [c for c in entry.children if c.tag == value_name]
            if not key_nodes:
                raise errors.MalformedXML()
            key = self._scalar(shape.key, key_nodes[0].text, path)
            out[key] = self.value(value_nodes, shape.value, f'{path}.{key}') if value_nodes else None
        return out

    def _scalar(self, shape, text: str, path: str) -> Any:
        try:
            return values.parse_scalar(shape, text)
        except ValueError:
            raise errors.invalid_value(self.protocol, path, text, shape.type_name) from None
