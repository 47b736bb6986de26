"""Validate a parsed response against the operation's botocore output shape.

``validate_output(shape, value, root=..., flavour=BOTO3)`` walks the shape and the value together
and returns a list of :class:`Problem` (empty when the value conforms). The same walk serves boto3's
parsed dicts (timestamps are ``datetime``, blobs ``bytes`` or a streaming body) and aws-cli v1's
JSON (timestamps are the wire's own strings, blobs base64 text, nulls left by its paginator).
"""
from __future__ import annotations

import base64
import binascii
import datetime
import io
import re
from dataclasses import dataclass
from typing import Any, Iterable

ERROR = "error"
WARNING = "warning"

# Checks, by id. A Problem carries one; ``--lenient ID`` turns the errors of that check (or of every
# check whose id starts with ``ID.``) into warnings.
SHAPE_TYPE = "shape.type"
SHAPE_REQUIRED = "shape.required"
SHAPE_EXTRA = "shape.extra"
SHAPE_ENUM = "shape.enum"
SHAPE_UNION = "shape.union"

# Keys that botocore adds to a parsed response although the model does not have them.
SYNTHETIC_MEMBERS: dict[tuple[str, str], frozenset[str]] = {
    ("s3", "GetObject"): frozenset({"ExpiresString"}),
    ("s3", "HeadObject"): frozenset({"ExpiresString"}),
}

ISO8601_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$")
RFC822_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT$")
EPOCH_RE = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass(frozen=True)
class Problem:
    """One deviation: where (``GetObject.Body``), what, how bad, and which check found it."""

    path: str
    message: str
    severity: str = ERROR
    check: str = SHAPE_TYPE

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "severity": self.severity,
                "check": self.check}


@dataclass(frozen=True)
class Flavour:
    """How a client renders model types: what counts as a timestamp, a blob, a missing member."""

    name: str
    timestamps_as_wire_strings: bool = False   # aws-cli v1 prints the wire's own text
    blobs_as_base64: bool = False              # JSON output cannot hold bytes
    null_means_absent: bool = False            # aws-cli's paginator leaves ``"Prefix": null``


BOTO3 = Flavour("boto3")
AWSCLI = Flavour("awscli", timestamps_as_wire_strings=True, blobs_as_base64=True,
                 null_means_absent=True)


def expected_timestamp_format(shape, protocol: str | None) -> str:
    """The format a timestamp takes on the wire: the shape's own trait, else the protocol's default
    for where the member lives (headers are RFC 822, XML and query bodies ISO 8601, JSON epoch)."""
    explicit = shape.serialization.get("timestampFormat")
    if explicit:
        return explicit
    location = shape.serialization.get("location")
    if location == "header":
        return "rfc822"
    if location == "querystring":
        return "iso8601"
    if protocol in ("json", "rest-json", "smithy-rpc-v2-cbor"):
        return "unixTimestamp"
    return "iso8601"


def timestamp_text_problem(text: Any, fmt: str) -> str | None:
    """Why ``text`` is not a timestamp in ``fmt`` as AWS writes it, or None."""
    if fmt == "unixTimestamp":
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return None
        if isinstance(text, str) and EPOCH_RE.match(text):
            return None
        return f"expected an epoch-seconds timestamp, got {text!r}"
    if not isinstance(text, str):
        return f"expected a timestamp string, got {type(text).__name__}"
    pattern = ISO8601_RE if fmt == "iso8601" else RFC822_RE
    if not pattern.match(text):
        example = ("2024-05-01T12:00:00.000Z" if fmt == "iso8601"
                   else "Wed, 01 May 2024 12:00:00 GMT")
        return f"expected an {fmt} timestamp like {example!r}, got {text!r}"
    return None


def validate_output(shape, value: Any, root: str, flavour: Flavour = BOTO3,
                    protocol: str | None = None,
                    synthetic: Iterable[str] = ()) -> list[Problem]:
    """Check a parsed response (``ResponseMetadata`` excluded at the top) against ``shape``.

    ``shape`` may be None (an operation without output): then the value must be empty.
    """
    problems: list[Problem] = []
    top = dict(value) if isinstance(value, dict) else value
    if isinstance(top, dict):
        top.pop("ResponseMetadata", None)
        for name in synthetic:
            top.pop(name, None)
    if shape is None:
        if top:
            for key in top:
                problems.append(Problem(f"{root}.{key}", "not in the model (the operation has no "
                                        "output)", ERROR, SHAPE_EXTRA))
        return problems
    _Walker(flavour, protocol, problems).walk(shape, top, root)
    return problems


class _Walker:
    def __init__(self, flavour: Flavour, protocol: str | None, problems: list[Problem]):
        self.flavour = flavour
        self.protocol = protocol
        self.problems = problems

    def fail(self, path: str, message: str, check: str = SHAPE_TYPE, severity: str = ERROR):
        self.problems.append(Problem(path, message, severity, check))

    def walk(self, shape, value: Any, path: str) -> None:
        handler = getattr(self, f"_{shape.type_name}", None)
        if handler is None:  # a type this suite does not know: accept it
            return
        handler(shape, value, path)

    def _expect(self, ok: bool, value: Any, what: str, path: str) -> bool:
        if not ok:
            self.fail(path, f"expected {what}, got {type(value).__name__} {_short(value)}")
        return ok

    # containers ---------------------------------------------------------------------------------
    def _structure(self, shape, value, path):
        if getattr(shape, "is_document_type", False):
            return
        if not self._expect(isinstance(value, dict), value, "structure", path):
            return
        members = shape.members
        present = {k: v for k, v in value.items()
                   if not (v is None and self.flavour.null_means_absent)}
        for key in value:
            if key not in members:
                self.fail(f"{path}.{key}", f"not a member of {shape.name}", SHAPE_EXTRA)
        for name in shape.required_members:
            if name not in present:
                self.fail(f"{path}.{name}", f"required member of {shape.name} is missing",
                          SHAPE_REQUIRED)
        if getattr(shape, "is_tagged_union", False) and len(present) != 1:
            self.fail(path, f"union {shape.name} must have exactly one member set, "
                            f"has {sorted(present)}", SHAPE_UNION)
        for key, item in present.items():
            if key in members:
                self.walk(members[key], item, f"{path}.{key}")

    def _list(self, shape, value, path):
        if not self._expect(isinstance(value, list), value, "list", path):
            return
        for index, item in enumerate(value):
            if item is None:
                self.fail(f"{path}[{index}]", "null list element")
                continue
            self.walk(shape.member, item, f"{path}[{index}]")

    def _map(self, shape, value, path):
        if not self._expect(isinstance(value, dict), value, "map", path):
            return
        for key, item in value.items():
            self.walk(shape.key, key, f"{path}{{key {key!r}}}")
            self.walk(shape.value, item, f"{path}[{key!r}]")

    # scalars ------------------------------------------------------------------------------------
    def _string(self, shape, value, path):
        if not self._expect(isinstance(value, str), value, "string", path):
            return
        enum = shape.enum
        if enum and value not in enum:
            self.fail(path, f"{value!r} is not one of the model's values for {shape.name} "
                            f"({_few(enum)})", SHAPE_ENUM, WARNING)

    def _character(self, shape, value, path):
        self._expect(isinstance(value, str) and len(value) == 1, value, "a single character", path)

    def _integer(self, shape, value, path):
        self._expect(isinstance(value, int) and not isinstance(value, bool), value, "integer", path)

    _long = _integer

    def _float(self, shape, value, path):
        self._expect(isinstance(value, (int, float)) and not isinstance(value, bool), value,
                     "number", path)

    _double = _float

    def _boolean(self, shape, value, path):
        self._expect(isinstance(value, bool), value, "boolean", path)

    def _timestamp(self, shape, value, path):
        if not self.flavour.timestamps_as_wire_strings:
            if self._expect(isinstance(value, datetime.datetime), value, "timestamp", path):
                if value.tzinfo is None:
                    self.fail(path, "timestamp without a time zone")
            return
        problem = timestamp_text_problem(value, expected_timestamp_format(shape, self.protocol))
        if problem:
            self.fail(path, problem)

    def _blob(self, shape, value, path):
        if self.flavour.blobs_as_base64:
            if self._expect(isinstance(value, str), value, "base64 text", path):
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    self.fail(path, "expected base64 text")
            return
        streaming = shape.serialization.get("streaming")
        if isinstance(value, (bytes, bytearray)):
            return
        if streaming and (hasattr(value, "read") or isinstance(value, io.IOBase)):
            return
        self.fail(path, f"expected blob (bytes{' or a stream' if streaming else ''}), "
                        f"got {type(value).__name__}")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _few(values: list[str], limit: int = 6) -> str:
    shown = ", ".join(values[:limit])
    return shown + (", ..." if len(values) > limit else "")
