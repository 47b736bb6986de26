"""XML escaping, small writing helpers and the safe reader for the XML protocols.

Responses are written by the compiled writers (``xml_writer``); the few fixed documents (error
bodies, PostObject's answer) by ``element``. Every text and attribute value is escaped here, in one place
(``& < >`` plus quotes in attributes, and ``\\r``/control characters as
numeric references so they survive a parser's line-end normalisation).

Reader: expat without namespace processing, refusing any DOCTYPE (and so
any entity declaration) before it is read: nothing is ever expanded or
fetched.  Tag prefixes (``s3:Delete``) are dropped; attribute names are kept
as written (``xsi:type``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.parsers import expat

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_DEPTH = 64

_TEXT_ESCAPES = re.compile('[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
_ATTR_ESCAPES = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
_NAMED = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}


def _escape_char(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or f'&#x{ord(char):X};'


def escape_text(text: str) -> str:
    return _TEXT_ESCAPES.sub(_escape_char, text)


def escape_attr(text: str) -> str:
    return _ATTR_ESCAPES.sub(_escape_char, text)


def attrs_text(attrs: Mapping[str, str] | None) -> str:
    """`` name="value"`` for each attribute, values escaped."""
    return ''.join(f' {name}="{escape_attr(value)}"' for name, value in (attrs or {}).items())


def element(tag: str, text: str | None = None, children: str = '',
            attrs: Mapping[str, str] | None = None) -> str:
    """``<tag attrs>text children</tag>``, or ``<tag attrs/>`` when it has neither text nor
    children (the text escaped here; ``children`` is XML already written)."""
    inner = (escape_text(text) if text else '') + children
    head = attrs_text(attrs)
    return f'<{tag}{head}>{inner}</{tag}>' if inner else f'<{tag}{head}/>'


def document(root: str) -> bytes:
    """UTF-8 bytes of a document: the XML declaration and ``root``."""
    return (XML_DECLARATION + root).encode('utf-8', 'replace')


# --- reader ---------------------------------------------------------------

class XMLRefused(ValueError):
    """The document is not well-formed, or uses a DTD / entities."""


@dataclass(slots=True)
class Node:
    """A parsed XML element (reader side). ``tag`` has no prefix."""

    tag: str
    attrs: dict[str, str]
    children: list['Node'] = field(default_factory=list)
    _text: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return ''.join(self._text)

    def attr(self, name: str) -> str | None:
        """An attribute by its written name, or by local name (``xsi:type``/``type``)."""
        if name in self.attrs:
            return self.attrs[name]
        local = name.rsplit(':', 1)[-1]
        for key, value in self.attrs.items():
            if key.rsplit(':', 1)[-1] == local and not key.startswith('xmlns'):
                return value
        return None


def local_name(tag: str) -> str:
    return tag.rsplit(':', 1)[-1]


def parse(data: bytes) -> Node:
    """Parse ``data`` into a ``Node`` tree; ``XMLRefused`` on any problem."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Node] = []
    roots: list[Node] = []

    def refuse(*_args) -> None:
        raise XMLRefused('DTDs and entity declarations are not allowed')

    def start(tag: str, attrs: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise XMLRefused('XML nested too deeply')
        node = Node(local_name(tag), attrs)
        if stack:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1]._text.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XMLRefused(f'not well-formed XML: {exc}') from None
    except RecursionError:
        raise XMLRefused('XML nested too deeply') from None
    except XMLRefused:
        raise
    except (LookupError, ValueError) as exc:   # expat: an encoding= it cannot decode
        raise XMLRefused(f'unsupported XML encoding: {exc}') from None
    if not roots:
        raise XMLRefused('no root element')
    return roots[0]
