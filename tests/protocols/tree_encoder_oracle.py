"""The element-tree XML encoder that the compiled writers (gateway.protocols.xml_writer) replaced,
kept here as the tests' oracle: the writers must write byte for byte what it writes (an element
object per value, then a walk that serializes the tree)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.protocols import values
from gateway.protocols.xml_io import XML_DECLARATION, escape_attr, escape_text
from gateway.protocols.xml_shapes import body_members, member_element_name, namespace_attrs


@dataclass(slots=True)
class Element:
    """An XML element being built (writer side)."""

    tag: str
    text: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    children: list['Element'] = field(default_factory=list)

    def add(self, tag: str, text: str | None = None) -> 'Element':
        child = Element(tag, text)
        self.children.append(child)
        return child


def serialize(root: Element, declaration: bool = True) -> bytes:
    """UTF-8 bytes of ``root`` (with the XML declaration by default)."""
    out: list[str] = [XML_DECLARATION] if declaration else []
    _write(root, out)
    return ''.join(out).encode('utf-8', 'replace')


def _write(el: Element, out: list[str]) -> None:
    out.append('<' + el.tag)
    for name, value in el.attrs.items():
        out.append(f' {name}="{escape_attr(value)}"')
    if not el.children and not el.text:
        out.append('/>')
        return
    out.append('>')
    if el.text:
        out.append(escape_text(el.text))
    for child in el.children:
        _write(child, out)
    out.append(f'</{el.tag}>')


class XMLEncoder:
    """Writes values of a shape as XML elements.

    ``list_member`` is the element name of a wrapped list's items when the
    model names none ('member' for query/rest-xml, 'item' for ec2).
    """

    def __init__(self, list_member: str = 'member') -> None:
        self.list_member = list_member

    def fill_structure(self, el: Element, shape, value: Mapping[str, Any]) -> None:
        """Add the body members of ``value`` (a ``shape`` structure) to ``el``."""
        if not isinstance(value, Mapping):
            raise TypeError(f'{shape.name}: expected a mapping, got {type(value).__name__}')
        for name, member in body_members(shape):
            item = value.get(name)
            if item is None:
                continue
            if member.serialization.get('xmlAttribute'):
                el.attrs[member.serialization['name']] = values.format_scalar(member, item)
                continue
            self.add(el, member, item, member_element_name(member, name))

    def add(self, parent: Element, shape, value: Any, name: str) -> None:
        type_name = shape.type_name
        if type_name == 'structure':
            el = parent.add(name)
            el.attrs.update(namespace_attrs(shape))
            self.fill_structure(el, shape, value)
        elif type_name == 'list':
            self._add_list(parent, shape, value, name)
        elif type_name == 'map':
            self._add_map(parent, shape, value, name)
        else:
            parent.add(name, values.format_scalar(shape, value))

    def _add_list(self, parent: Element, shape, value: Any, name: str) -> None:
        member = shape.member
        if shape.serialization.get('flattened'):
            holder, item_name = parent, name
        else:
            holder = parent.add(name)
            item_name = member.serialization.get('name', self.list_member)
        for item in value:
            if item is not None:
                self.add(holder, member, item, item_name)

    def _add_map(self, parent: Element, shape, value: Mapping, name: str) -> None:
        key_name = shape.key.serialization.get('name', 'key')
        value_name = shape.value.serialization.get('name', 'value')
        flat = shape.serialization.get('flattened')
        holder = parent if flat else parent.add(name)
        for key, item in value.items():
            entry = holder.add(name if flat else 'entry')
            self.add(entry, shape.key, key, key_name)
            if item is not None:
                self.add(entry, shape.value, item, value_name)
