"""Compiled, model-driven XML writers: each shape's writing is planned once, then reused.

The one way Nimbo writes XML responses (rest-xml, query and ec2). An element-tree encoder that
walks the model for every value and builds element objects took ~100 ms for a 1,000-key listing
page and ~2 ms per EC2 instance; here a shape (with the element name and traits its member
reference gives it) is turned once into a small closure that appends escaped text to a list; a
response is one ``''.join``.

The output is exactly what that element-tree encoder wrote (the tests keep it as their oracle,
tests/protocols/tree_encoder_oracle.py, and compare the two over every output shape):

* an element with neither text nor children is written ``<Name/>`` (an empty wrapped list, a
  structure without members set, a scalar whose text is empty);
* a flattened list or map repeats its element in the parent, and writes nothing when empty;
* ``None`` members and ``None`` list items are left out; a map entry whose value is ``None``
  has its key only;
* a structure's attributes: its ``xmlNamespace`` first, then its ``xmlAttribute`` members;
* text and attribute values are escaped by ``xml_io`` (one place for escaping).

Everything comes from the botocore shapes: element names, list/map styles, list member names,
namespaces, attributes, scalar types and timestamp formats.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any, Callable

from . import values
from .xml_io import _TEXT_ESCAPES, _escape_char, attrs_text, escape_text
from .xml_shapes import body_members, member_element_name, namespace_attrs

Writer = Callable[[list, Any], None]   # writer(out, value): append the element(s) for value

_ESCAPE_SUB = _TEXT_ESCAPES.sub     # escape_text without its call: sub(_escape_char, text)
_TIMESTAMP_CACHE_MAX = 4096
_TEXT_CACHE_MAX = 4096      # elements remembered per string writer


def _serialization_key(shape) -> str:
    return json.dumps(shape.serialization, sort_keys=True, default=str)


class WriterCompiler:
    """Compiles writers for one list-member convention (``member`` for query and rest-xml,
    ``item`` for ec2); writers are memoized by shape, traits and element name, which also
    makes recursive shapes work (a writer may refer to itself through its slot)."""

    def __init__(self, list_member: str = 'member') -> None:
        self.list_member = list_member
        self._memo: dict[tuple, Writer] = {}

    def writer(self, shape, name: str) -> Writer:
        """The writer of a value of ``shape`` as element(s) named ``name``."""
        key = (shape.name, shape.type_name, _serialization_key(shape), name)
        found = self._memo.get(key)
        if found is not None:
            return found
        slot: list[Writer] = []

        def deferred(out: list, value: Any) -> None:  # used only while the shape is compiling
            slot[0](out, value)

        self._memo[key] = deferred
        type_name = shape.type_name
        if type_name == 'structure':
            compiled = self._structure(shape, name, namespace_attrs(shape))
        elif type_name == 'list':
            compiled = self._list(shape, name)
        elif type_name == 'map':
            compiled = self._map(shape, name)
        else:
            compiled = scalar_writer(shape, name)
        slot.append(compiled)
        self._memo[key] = compiled
        return compiled

    def members(self, shape) -> tuple[list[tuple[str, Writer]], list[tuple[str, str, Any]]]:
        """(member name, writer) of the body members of a structure, and its xmlAttribute
        members as (member name, attribute name, shape)."""
        elements: list[tuple[str, Writer]] = []
        attributes: list[tuple[str, str, Any]] = []
        for name, member in body_members(shape):
            if member.serialization.get('xmlAttribute'):
                attributes.append((name, member.serialization['name'], member))
                continue
            elements.append((name, self.writer(member, member_element_name(member, name))))
        return elements, attributes

    def _structure(self, shape, name: str, attrs: Mapping[str, str]) -> Writer:
        return structure_writer(self, shape, name, attrs)

    def _list(self, shape, name: str) -> Writer:
        member = shape.member
        if shape.serialization.get('flattened'):
            item = self.writer(member, name)

            def write_flat_list(out: list, value: Any) -> None:
                for entry in value:
                    if entry is not None:
                        item(out, entry)
            write_flat_list.flat_item = item    # type: ignore[attr-defined]
            return write_flat_list
        item = self.writer(member, member.serialization.get('name', self.list_member))
        open_tag, close_tag, empty = f'<{name}>', f'</{name}>', f'<{name}/>'

        def write_list(out: list, value: Any) -> None:
            at = len(out)
            out.append(open_tag)
            for entry in value:
                if entry is not None:
                    item(out, entry)
            if len(out) == at + 1:
                out[at] = empty
            else:
                out.append(close_tag)
        return write_list

    def _map(self, shape, name: str) -> Writer:
        key = self.writer(shape.key, shape.key.serialization.get('name', 'key'))
        item = self.writer(shape.value, shape.value.serialization.get('name', 'value'))
        flat = bool(shape.serialization.get('flattened'))
        entry_name = name if flat else 'entry'
        entry_open, entry_close = f'<{entry_name}>', f'</{entry_name}>'
        open_tag, close_tag, empty = f'<{name}>', f'</{name}>', f'<{name}/>'

        def write_entries(out: list, value: Mapping) -> None:
            for k, v in value.items():
                out.append(entry_open)
                key(out, k)
                if v is not None:
                    item(out, v)
                out.append(entry_close)

        if flat:
            return write_entries

        def write_map(out: list, value: Mapping) -> None:
            if not value:
                out.append(empty)
                return
            out.append(open_tag)
            write_entries(out, value)
            out.append(close_tag)
        return write_map


def structure_writer(compiler: WriterCompiler, shape, name: str, attrs: Mapping[str, str]) -> Writer:
    """The writer of a structure as element ``name`` with the fixed attributes ``attrs``."""
    elements, attributes = compiler.members(shape)
    if attributes:
        return _structure_with_attributes(shape, name, attrs, elements, attributes)
    return _generated_structure(shape, name, attrs_text(attrs), elements)


def _generated_structure(shape, name: str, head: str, elements: list[tuple[str, Writer]]) -> Writer:
    """A structure writer as one generated function: a member lookup and, for strings,
    integers and booleans, the element text written in line (no call per member)."""
    env: dict[str, Any] = {'Mapping': Mapping, 'dict': dict, 'str': str, 'int': int,
                           'type': type, 'isinstance': isinstance, 'len': len,
                           'escape': _ESCAPE_SUB, 'ESCAPED': _escape_char,
                           'datetime': _dt.datetime, 'TypeError': TypeError,
                           'EMPTY': f'<{name}{head}/>', 'OPEN': f'<{name}{head}>',
                           'CLOSE': f'</{name}>',
                           'NOT_MAPPING': f'{shape.name}: expected a mapping, got '}
    lines = ['def write_structure(out, value):',
             '    if type(value) is not dict and not isinstance(value, Mapping):',
             '        raise TypeError(NOT_MAPPING + type(value).__name__)',
             '    append = out.append',
             '    at = len(out)',
             '    append(None)',
             '    get = value.get']
    for i, (member_name, write) in enumerate(elements):
        env[f'N{i}'] = member_name
        env[f'W{i}'] = write
        lines += [f'    v = get(N{i})', '    if v is not None:']
        flat_item = getattr(write, 'flat_item', None)
        if flat_item is not None and getattr(flat_item, 'inline_kind', None) is not None:
            # a flattened list of scalars: the loop in line too
            lines += ['        for e in v:', '            if e is not None:']
            lines += _inline_lines(env, f'{i}i', flat_item, 'e', '                ')
            continue
        if getattr(write, 'inline_kind', None) is None:
            lines.append(f'        W{i}(out, v)')
            continue
        lines += _inline_lines(env, str(i), write, 'v', '        ')
    lines += ['    if len(out) == at + 1:',
              '        out[at] = EMPTY',
              '    else:',
              '        out[at] = OPEN',
              '        append(CLOSE)']
    exec(compile('\n'.join(lines), f'<xml writer {shape.name}>', 'exec'), env)  # noqa: S102
    return env['write_structure']


def _inline_lines(env: dict, i: str, write: Writer, var: str, indent: str) -> list[str]:
    """Generated lines that write scalar ``var`` as ``write`` would."""
    kind, tag = write.inline_kind, write.element_name
    env[f'W{i}'] = write
    env[f'O{i}'], env[f'C{i}'], env[f'E{i}'] = f'<{tag}>', f'</{tag}>', f'<{tag}/>'
    if kind == 'string':
        # the element of a text seen before comes from the writer's cache (ids, states, zones
        # and names repeat across a page); a new text is escaped once and remembered
        env[f'K{i}'] = write.cache
        env['MAX'] = _TEXT_CACHE_MAX
        return [f'{indent}t = {var} if type({var}) is str else str({var})',
                f'{indent}x = K{i}.get(t)',
                f'{indent}if x is None:',
                f'{indent}    x = O{i} + escape(ESCAPED, t) + C{i} if t else E{i}',
                f'{indent}    if len(K{i}) >= MAX:',
                f'{indent}        K{i}.clear()',
                f'{indent}    K{i}[t] = x',
                f'{indent}append(x)']
    if kind == 'integer':
        return [f'{indent}append(O{i} + str(int({var})) + C{i})']
    if kind == 'boolean':
        env[f'T{i}'], env[f'F{i}'] = f'<{tag}>true</{tag}>', f'<{tag}>false</{tag}>'
        return [f'{indent}append(T{i} if {var} else F{i})']
    # timestamp: the element text of a datetime seen before comes from the writer's cache
    env[f'K{i}'] = write.cache
    return [f'{indent}t = K{i}.get({var}) if type({var}) is datetime else None',
            f'{indent}if t is None:',
            f'{indent}    W{i}(out, {var})',
            f'{indent}else:',
            f'{indent}    append(t)']


def _structure_with_attributes(shape, name: str, attrs: Mapping[str, str],
                               elements: list[tuple[str, Writer]],
                               attributes: list[tuple[str, str, Any]]) -> Writer:
    fixed = attrs_text(attrs)

    def write_structure(out: list, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise TypeError(f'{shape.name}: expected a mapping, got {type(value).__name__}')
        head = fixed
        extra = {}
        for member_name, attribute, member in attributes:
            item = value.get(member_name)
            if item is not None:
                extra[attribute] = values.format_scalar(member, item)
        if extra:
            merged = dict(attrs)
            merged.update(extra)
            head = attrs_text(merged)
        at = len(out)
        out.append(None)
        get = value.get
        for member_name, write in elements:
            item = get(member_name)
            if item is not None:
                write(out, item)
        if len(out) == at + 1:
            out[at] = f'<{name}{head}/>'
        else:
            out[at] = f'<{name}{head}>'
            out.append(f'</{name}>')
    return write_structure


def _inline(write: Writer, kind: str, name: str) -> Writer:
    """Mark a scalar writer whose text a generated structure writer may write in line."""
    write.inline_kind = kind      # type: ignore[attr-defined]
    write.element_name = name     # type: ignore[attr-defined]
    return write


def scalar_writer(shape, name: str) -> Writer:
    """The writer of a scalar member: ``<name>text</name>``, ``<name/>`` when the text is empty."""
    open_tag, close_tag, empty = f'<{name}>', f'</{name}>', f'<{name}/>'
    type_name = shape.type_name
    if type_name == 'string':
        texts: dict[str, str] = {}    # text -> the whole element

        def write_string(out: list, value: Any) -> None:
            text = value if type(value) is str else str(value)
            element = texts.get(text)
            if element is None:
                if len(texts) >= _TEXT_CACHE_MAX:
                    texts.clear()
                element = texts[text] = f'{open_tag}{escape_text(text)}{close_tag}' if text else empty
            out.append(element)
        write_string.cache = texts    # type: ignore[attr-defined]
        return _inline(write_string, 'string', name)
    if type_name in ('integer', 'long'):
        def write_integer(out: list, value: Any) -> None:
            out.append(f'{open_tag}{int(value)}{close_tag}')
        return _inline(write_integer, 'integer', name)
    if type_name == 'boolean':
        true_text, false_text = f'{open_tag}true{close_tag}', f'{open_tag}false{close_tag}'

        def write_boolean(out: list, value: Any) -> None:
            out.append(true_text if value else false_text)
        return _inline(write_boolean, 'boolean', name)
    if type_name == 'timestamp':
        fmt = shape.serialization.get('timestampFormat')
        cache: dict[_dt.datetime, str] = {}    # datetime -> the whole element

        def element(value: Any) -> str:
            text = escape_text(values.format_timestamp(value, fmt, 'iso8601'))
            return f'{open_tag}{text}{close_tag}' if text else empty

        def write_timestamp(out: list, value: Any) -> None:
            if type(value) is not _dt.datetime:
                out.append(element(value))
                return
            text = cache.get(value)
            if text is None:
                if len(cache) >= _TIMESTAMP_CACHE_MAX:
                    cache.clear()
                text = cache[value] = element(value)
            out.append(text)
        write_timestamp.cache = cache    # type: ignore[attr-defined]
        return _inline(write_timestamp, 'timestamp', name)

    def write_scalar(out: list, value: Any) -> None:
        text = values.format_scalar(shape, value)
        out.append(f'{open_tag}{escape_text(text)}{close_tag}' if text else empty)
    return write_scalar


# (id of the service model, list member) -> (the model, kept alive so its id stays its own; compiler)
_COMPILERS: dict[tuple[int, str], tuple[Any, WriterCompiler]] = {}


def compiler(service_model, list_member: str = 'member') -> WriterCompiler:
    """The compiler of one service model (shape names are unique within a model only) and
    list-member convention."""
    key = (id(service_model), list_member)
    found = _COMPILERS.get(key)
    if found is None:
        found = _COMPILERS[key] = (service_model, WriterCompiler(list_member))
    return found[1]


# (id of the shape, root name, attributes, list member) -> (the shape, kept alive; its writer)
_ROOTS: dict[tuple, tuple[Any, Writer]] = {}


def root_writer(service_model, shape, name: str, attrs: Mapping[str, str],
                list_member: str = 'member') -> Writer:
    """A writer of ``shape``'s body members inside a root element ``name`` with ``attrs``
    (the root of a response body takes its name and namespace from the protocol, not from
    the shape's own traits). Made once per shape object (botocore keeps one per operation)."""
    key = (id(shape), name, tuple(attrs.items()), list_member)
    found = _ROOTS.get(key)
    if found is None or found[0] is not shape:
        if len(_ROOTS) > 4096:
            _ROOTS.clear()
        found = _ROOTS[key] = (shape, structure_writer(compiler(service_model, list_member),
                                                       shape, name, attrs))
    return found[1]
