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
    return _generated_structure(compiler, shape, name, attrs_text(attrs))


_INLINE_DEPTH = 8        # nested structures and lists written in line, deeper ones by a call
_INLINE_LINES = 4000     # a generated writer grows no longer than this; what is left is called


def _generated_structure(compiler: WriterCompiler, shape, name: str, head: str) -> Writer:
    """A structure writer as one generated function. Its members are written in line: strings,
    integers, booleans and timestamps as their text, and nested structures and lists (a
    structure's members, a list's loop) as code of the same function, so that a wide shape such
    as EC2's Instance (60 members, a dozen nested structures and lists) is one call per instance,
    not one per structure and list. A list's structure items, maps, structures with xmlAttribute
    members, recursive shapes and what is deeper than ``_INLINE_DEPTH`` are written by their own
    (memoized) writers, called."""
    generator = _Generator(compiler)
    body = generator.structure(shape, name, head, 'value', '    ', 0, (shape.name,))
    lines = ['def write_structure(out, value):', '    append = out.append', *body]
    exec(compile('\n'.join(lines), f'<xml writer {shape.name}>', 'exec'), generator.env)  # noqa: S102
    return generator.env['write_structure']


class _Generator:
    """The lines of a generated structure writer; ``env`` holds the names they use."""

    def __init__(self, compiler: WriterCompiler) -> None:
        self.compiler = compiler
        self.env: dict[str, Any] = {'Mapping': Mapping, 'str': str, 'int': int, 'type': type,
                                    'isinstance': isinstance, 'len': len, 'dict': dict,
                                    'escape': _ESCAPE_SUB, 'ESCAPED': _escape_char,
                                    'datetime': _dt.datetime, 'TypeError': TypeError,
                                    'MAX': _TEXT_CACHE_MAX}
        self.count = 0
        self.lines = 0

    def const(self, value: Any) -> str:
        self.count += 1
        name = f'K{self.count}'
        self.env[name] = value
        return name

    def structure(self, shape, name: str, head: str, var: str, indent: str, depth: int,
                  stack: tuple) -> list[str]:
        """Lines writing the structure ``var`` as element ``name`` (``head``: its attributes)."""
        at, get, v = f'a{depth}', f'g{depth}', f'v{depth}'
        refused = self.const(f'{shape.name}: expected a mapping, got ')
        lines = [f'{indent}if type({var}) is not dict and not isinstance({var}, Mapping):',
                 f'{indent}    raise TypeError({refused} + type({var}).__name__)',
                 f'{indent}{at} = len(out)',
                 f'{indent}append(None)',
                 f'{indent}{get} = {var}.get']
        inner = indent + '    '
        members = body_members(shape)
        self.lines += 10 + 2 * len(members)
        for member_name, member in members:
            lines += [f'{indent}{v} = {get}({self.const(member_name)})', f'{indent}if {v} is not None:']
            lines += self.value(member, member_element_name(member, member_name), v, inner, depth, stack)
        empty, opened, close = self.const(f'<{name}{head}/>'), self.const(f'<{name}{head}>'), self.const(f'</{name}>')
        lines += [f'{indent}if len(out) == {at} + 1:',
                  f'{indent}    out[{at}] = {empty}',
                  f'{indent}else:',
                  f'{indent}    out[{at}] = {opened}',
                  f'{indent}    append({close})']
        return lines

    def value(self, shape, name: str, var: str, indent: str, depth: int, stack: tuple,
              item: bool = False) -> list[str]:
        """Lines writing the member value ``var`` (not None) of ``shape`` as element(s) ``name``;
        ``item``: a list's item, whose structure is written by its own (shared) writer, so that
        the code of a shape listed in many answers (an EC2 Instance) is made once, not in each."""
        type_name = shape.type_name
        nested = depth + 1 < _INLINE_DEPTH and self.lines < _INLINE_LINES
        if type_name == 'structure' and nested and not item and shape.name not in stack and not any(
                member.serialization.get('xmlAttribute') for _, member in body_members(shape)):
            return self.structure(shape, name, attrs_text(namespace_attrs(shape)), var, indent, depth + 1,
                                  stack + (shape.name,))
        if type_name == 'list' and nested and shape.name not in stack:
            member = shape.member
            entry = f'e{depth}'
            self.lines += 9
            if shape.serialization.get('flattened'):
                return [f'{indent}for {entry} in {var}:', f'{indent}    if {entry} is not None:',
                        *self.value(member, name, entry, indent + '        ', depth + 1, stack + (shape.name,),
                                    True)]
            at = f'l{depth}'
            item_name = member.serialization.get('name', self.compiler.list_member)
            empty, opened, close = self.const(f'<{name}/>'), self.const(f'<{name}>'), self.const(f'</{name}>')
            return [f'{indent}{at} = len(out)',
                    f'{indent}append({opened})',
                    f'{indent}for {entry} in {var}:',
                    f'{indent}    if {entry} is not None:',
                    *self.value(member, item_name, entry, indent + '        ', depth + 1, stack + (shape.name,),
                                True),
                    f'{indent}if len(out) == {at} + 1:',
                    f'{indent}    out[{at}] = {empty}',
                    f'{indent}else:',
                    f'{indent}    append({close})']
        write = self.compiler.writer(shape, name)
        if getattr(write, 'inline_kind', None) is not None:
            lines = self.scalar(write, var, indent)
            self.lines += len(lines)
            return lines
        return [f'{indent}{self.const(write)}(out, {var})']

    def scalar(self, write: Writer, var: str, indent: str) -> list[str]:
        """Lines that write scalar ``var`` as ``write`` would."""
        kind, tag = write.inline_kind, write.element_name
        opened, close, empty = f'<{tag}>', f'</{tag}>', f'<{tag}/>'
        if kind == 'string':
            # the element of a text seen before comes from the writer's cache (ids, states, zones
            # and names repeat across a page); a new text is escaped once and remembered
            lookup, element = self.const(write.cache.get), self.const(write.element)
            return [f'{indent}x = {lookup}({var}) if type({var}) is str else None',
                    f'{indent}append({element}({var}) if x is None else x)']
        if kind == 'integer':
            return [f'{indent}append({self.const(opened)} + str(int({var})) + {self.const(close)})']
        if kind == 'boolean':
            true, false = self.const(f'{opened}true{close}'), self.const(f'{opened}false{close}')
            return [f'{indent}append({true} if {var} else {false})']
        # timestamp: the element text of a datetime seen before comes from the writer's cache
        cache, slow = self.const(write.cache), self.const(write)
        return [f'{indent}t = {cache}.get({var}) if type({var}) is datetime else None',
                f'{indent}if t is None:',
                f'{indent}    {slow}(out, {var})',
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

        def element(value: Any) -> str:
            text = value if type(value) is str else str(value)
            found = texts.get(text)
            if found is None:
                if len(texts) >= _TEXT_CACHE_MAX:
                    texts.clear()
                found = texts[text] = f'{open_tag}{escape_text(text)}{close_tag}' if text else empty
            return found

        def write_string(out: list, value: Any) -> None:
            out.append(element(value))
        write_string.cache = texts    # type: ignore[attr-defined]
        write_string.element = element    # type: ignore[attr-defined]
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
