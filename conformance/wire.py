"""Checks on the raw HTTP response, below what boto3's lenient parser lets through.

botocore forgives a lot: a boolean written ``True`` silently parses as False, an EC2 list whose
items are not ``<item>`` still parses, a timestamp in any of a dozen formats is accepted. Other
clients parse differently, so this module walks the raw XML body and the header-bound members
against the model (element names, list items, lexical forms as AWS writes them), and checks the
request id that every AWS response carries.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Mapping

from conformance.shapes import (ERROR, WARNING, Problem, expected_timestamp_format,
                                timestamp_text_problem)

REQUEST_ID = "request-id"
WIRE_FORMAT = "wire.format"          # a scalar's text is not how AWS writes that type
WIRE_ELEMENT = "wire.element"        # list items, duplicates, wrappers: the XML's structure
WIRE_UNKNOWN = "wire.unknown-element"  # an element the model does not have (warning)
WIRE_XML = "wire.xml"                # the body is not XML at all
WIRE_ERROR = "wire.error"            # an error response without the protocol's error structure

XML_PROTOCOLS = ("query", "ec2", "rest-xml")
INTEGER_RE = re.compile(r"^-?\d+$")
FLOAT_RE = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^(NaN|Infinity|-Infinity)$")


def protocol_of(operation_model) -> str:
    service_model = operation_model.service_model
    return getattr(service_model, "resolved_protocol", None) or service_model.protocol


def check_response(operation_model, status: int, headers: Mapping[str, str],
                   body: bytes | None) -> list[Problem]:
    """Problems with one raw response to ``operation_model`` (body None: streamed, not read)."""
    protocol = protocol_of(operation_model)
    root = operation_model.name
    problems = check_request_id(protocol, status, headers, body, root)
    if status >= 300:
        problems += check_error_body(protocol, status, body, root)
        return problems
    shape = operation_model.output_shape
    if shape is None:
        return problems
    if protocol == "rest-xml":
        problems += _check_header_members(shape, headers, protocol, root)
    if protocol in XML_PROTOCOLS and body is not None:
        problems += _check_xml_body(operation_model, protocol, shape, body, root)
    return problems


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _parse_xml(body: bytes | None) -> ET.Element | None:
    if not body or not body.strip():
        return None
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _child(element: ET.Element | None, *names: str) -> ET.Element | None:
    for name in names:
        if element is None:
            return None
        element = next((c for c in element if _tag(c) == name), None)
    return element


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def check_request_id(protocol: str, status: int, headers: Mapping[str, str], body: bytes | None,
                     root: str) -> list[Problem]:
    """Every AWS response names its request: S3 in ``x-amz-request-id``; query and EC2 in the
    ``x-amzn-RequestId`` header or the body (``requestId``, ``RequestID``, ``RequestId``)."""
    lowered = _lower(headers)
    if protocol == "rest-xml":
        if lowered.get("x-amz-request-id", "").strip():
            return []
        also = " (it sent x-amzn-RequestId instead)" if "x-amzn-requestid" in lowered else ""
        return [Problem(root, f"missing x-amz-request-id header{also}", ERROR, REQUEST_ID)]
    if lowered.get("x-amzn-requestid", "").strip():
        return []
    if protocol in ("query", "ec2"):
        document = _parse_xml(body)
        if document is not None:
            for path in (("requestId",), ("RequestID",), ("RequestId",),
                         ("ResponseMetadata", "RequestId")):
                if _text(_child(document, *path)):
                    return []
        where = "requestId element" if protocol == "ec2" and status < 300 else "RequestId element"
        return [Problem(root, f"no request id: neither an x-amzn-RequestId header nor a {where}",
                        ERROR, REQUEST_ID)]
    return [Problem(root, "missing x-amzn-RequestId header", ERROR, REQUEST_ID)]


def error_code_of(protocol: str, body: bytes | None) -> tuple[str | None, str | None]:
    """(code, message) from an error body in the protocol's format, or (None, None)."""
    document = _parse_xml(body)
    if document is None:
        return None, None
    if protocol == "ec2":
        error = _child(document, "Errors", "Error")
    elif protocol == "query":
        error = _child(document, "Error")
    else:
        error = document if _tag(document) == "Error" else _child(document, "Error")
    if error is None:
        return None, None
    return _text(_child(error, "Code")) or None, _text(_child(error, "Message")) or None


def check_error_body(protocol: str, status: int, body: bytes | None, root: str) -> list[Problem]:
    expected = {"ec2": "<Response><Errors><Error><Code>", "query": "<ErrorResponse><Error><Code>",
                "rest-xml": "<Error><Code>"}.get(protocol)
    if expected is None:
        return []
    if not body or not body.strip():
        if protocol == "rest-xml":  # HEAD responses and a few others carry no body
            return []
        return [Problem(root, f"HTTP {status} error without a body (expected {expected})",
                        ERROR, WIRE_ERROR)]
    document = _parse_xml(body)
    if document is None:
        return [Problem(root, f"HTTP {status} error body is not XML: {body[:60]!r}", ERROR,
                        WIRE_ERROR)]
    wanted_root = {"ec2": "Response", "query": "ErrorResponse", "rest-xml": "Error"}[protocol]
    code, _ = error_code_of(protocol, body)
    if _tag(document) != wanted_root or not code:
        return [Problem(root, f"HTTP {status} error body is not {expected}...: root "
                              f"<{_tag(document)}>", ERROR, WIRE_ERROR)]
    return []


def _check_header_members(shape, headers: Mapping[str, str], protocol: str,
                          root: str) -> list[Problem]:
    problems: list[Problem] = []
    lowered = _lower(headers)
    for name, member in shape.members.items():
        if member.serialization.get("location") != "header":
            continue
        header = member.serialization.get("name", name).lower()
        if header not in lowered:
            continue
        message = _scalar_problem(member, lowered[header], protocol)
        if message:
            problems.append(Problem(f"{root}.{name} (header {header})", message, ERROR,
                                    WIRE_FORMAT))
    return problems


def _scalar_problem(shape, text: str, protocol: str) -> str | None:
    kind = shape.type_name
    if kind == "boolean":
        if text in ("true", "false"):
            return None
        return f"boolean must be 'true' or 'false', got {text!r}"
    if kind in ("integer", "long"):
        return None if INTEGER_RE.match(text.strip()) else f"expected an integer, got {text!r}"
    if kind in ("float", "double"):
        return None if FLOAT_RE.match(text.strip()) else f"expected a number, got {text!r}"
    if kind == "timestamp":
        return timestamp_text_problem(text.strip(), expected_timestamp_format(shape, protocol))
    return None


def _check_xml_body(operation_model, protocol: str, shape, body: bytes,
                    root: str) -> list[Problem]:
    body_members = [m for m in shape.members.values()
                    if m.serialization.get("location") not in ("header", "headers", "statusCode")]
    payload = shape.serialization.get("payload")
    if payload is not None:
        payload_shape = shape.members[payload]
        if payload_shape.type_name != "structure":
            return []  # a blob or string payload: the body is the data itself
    elif not body_members and not body.strip():
        return []
    document = _parse_xml(body)
    if document is None:
        if payload is not None and not body.strip():
            return []
        if protocol == "rest-xml" and not body.strip():
            return []
        return [Problem(root, f"body is not XML: {body[:60]!r}", ERROR, WIRE_XML)]
    walker = _XmlWalker(protocol)
    if protocol == "rest-xml":
        if payload is not None:
            walker.walk(shape.members[payload], document, f"{root}.{payload}")
        else:
            walker.walk(shape, document, root)
        return walker.problems
    expected_root = f"{operation_model.name}Response"
    if _tag(document) != expected_root:
        walker.fail(root, f"root element is <{_tag(document)}>, expected <{expected_root}>",
                    WIRE_ELEMENT, WARNING)
    if protocol == "ec2":
        walker.walk(shape, document, root, ignore=("requestId",))
        return walker.problems
    wrapper = shape.serialization.get("resultWrapper")
    if wrapper:
        result = _child(document, wrapper)
        if result is None:
            walker.fail(root, f"no <{wrapper}> element in <{_tag(document)}>", WIRE_ELEMENT,
                        ERROR)
            return walker.problems
        for child in document:
            if _tag(child) not in (wrapper, "ResponseMetadata"):
                walker.fail(f"{root}.<{_tag(child)}>", "element not in the model", WIRE_UNKNOWN,
                            WARNING)
        walker.walk(shape, result, root)
    else:
        walker.walk(shape, document, root, ignore=("ResponseMetadata",))
    return walker.problems


def _member_element_name(member, name: str) -> str:
    if member.type_name == "list" and member.serialization.get("flattened"):
        inner = member.member.serialization.get("name")
        if inner:
            return inner
    return member.serialization.get("name", name)


class _XmlWalker:
    def __init__(self, protocol: str):
        self.protocol = protocol
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str, check: str = WIRE_FORMAT, severity: str = ERROR):
        self.problems.append(Problem(path, message, severity, check))

    def walk(self, shape, node: Any, path: str, ignore: tuple[str, ...] = ()) -> None:
        kind = shape.type_name
        if kind == "structure":
            self._structure(shape, node, path, ignore)
        elif kind == "list":
            self._list(shape, [node] if isinstance(node, ET.Element) else node, path)
        elif kind == "map":
            self._map(shape, node, path)
        else:
            element = node[0] if isinstance(node, list) else node
            if list(element):
                self.fail(path, f"expected text for {kind}, got child elements", WIRE_ELEMENT)
                return
            message = _scalar_problem(shape, element.text or "", self.protocol)
            if message:
                self.fail(path, message)

    def _structure(self, shape, node: Any, path: str, ignore: tuple[str, ...]) -> None:
        if isinstance(node, list):
            node = node[0]
        expected: dict[str, tuple[str, Any]] = {}
        for name, member in shape.members.items():
            if member.serialization.get("location") in ("header", "headers", "statusCode"):
                continue
            if member.serialization.get("xmlAttribute"):
                continue
            expected[_member_element_name(member, name)] = (name, member)
        grouped: dict[str, list[ET.Element]] = {}
        for child in node:
            grouped.setdefault(_tag(child), []).append(child)
        for tag, elements in grouped.items():
            if tag in ignore:
                continue
            if tag not in expected:
                self.fail(f"{path}.<{tag}>", f"element not in the model ({shape.name})",
                          WIRE_UNKNOWN, WARNING)
                continue
            name, member = expected[tag]
            if member.type_name in ("list", "map") and member.serialization.get("flattened"):
                self.walk(member, elements, f"{path}.{name}")
                continue
            if len(elements) > 1:
                self.fail(f"{path}.{name}", f"<{tag}> appears {len(elements)} times (it is not a "
                                            "flattened list)", WIRE_ELEMENT)
            self.walk(member, elements[0], f"{path}.{name}")

    def _list(self, shape, nodes: list[ET.Element], path: str) -> None:
        if shape.serialization.get("flattened"):
            items = nodes
        else:
            wrapper = nodes[0]
            item_name = shape.member.serialization.get("name", "member")
            items = []
            for child in wrapper:
                if _tag(child) != item_name:
                    self.fail(f"{path}[{len(items)}]", f"list item is <{_tag(child)}>, expected "
                                                       f"<{item_name}>", WIRE_ELEMENT)
                items.append(child)
        for index, item in enumerate(items):
            self.walk(shape.member, item, f"{path}[{index}]")

    def _map(self, shape, node: Any, path: str) -> None:
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        if shape.serialization.get("flattened"):
            entries = node if isinstance(node, list) else [node]
        else:
            wrapper = node[0] if isinstance(node, list) else node
            entries = list(wrapper)
        for index, entry in enumerate(entries):
            key = _child(entry, key_name)
            value = _child(entry, value_name)
            if key is None or value is None:
                self.fail(f"{path}[{index}]", f"map entry without <{key_name}> and <{value_name}>",
                          WIRE_ELEMENT)
                continue
            self.walk(shape.value, value, f"{path}[{_text(key)!r}]")
