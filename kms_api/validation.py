"""The input constraints of KMS's model (lengths, ranges, enums, patterns), checked before a handler
runs, with the message AWS's services give::

    1 validation error detected: Value 'x' at 'keyId' failed to satisfy constraint: Member must have
    length greater than or equal to 1

Members are named as AWS names them in these messages (the member name with a lower-case first
letter, dotted paths for nested members); sensitive members (Plaintext) are named without their
value. The codec has already checked the JSON types and required members."""
from __future__ import annotations

import re
from typing import Any

from kms_api import errors

_PATTERNS: dict[str, re.Pattern] = {}


def _name(member: str) -> str:
    return member[:1].lower() + member[1:]


def check(operation: Any, params: dict) -> None:
    """ValidationException listing every constraint ``params`` fails (none: nothing happens)."""
    problems: list[str] = []
    shape = operation.input_shape
    if shape is not None:
        _structure(shape, params, "", problems)
    if problems:
        count = len(problems)
        raise errors.ValidationException(
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems[:10]))


def _structure(shape: Any, value: dict, path: str, problems: list[str]) -> None:
    for name, member in shape.members.items():
        if name in value and value[name] is not None:
            _value(member, value[name], f"{path}.{_name(name)}" if path else _name(name), problems)


def _shown(shape: Any, value: Any) -> str:
    if shape.metadata.get("sensitive") or shape.type_name == "blob":
        return "Value"
    if shape.type_name in ("list", "map"):
        return "Value"
    return f"Value '{value}'"


def _value(shape: Any, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    where = f"{_shown(shape, value)} at '{path}' failed to satisfy constraint: Member must"
    if kind in ("string", "blob", "list", "map"):
        size = len(value)
        if "min" in meta and size < meta["min"]:
            problems.append(f"{where} have length greater than or equal to {meta['min']}")
        elif "max" in meta and size > meta["max"]:
            problems.append(f"{where} have length less than or equal to {meta['max']}")
    if kind in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            problems.append(f"{where} have value greater than or equal to {meta['min']}")
        elif "max" in meta and value > meta["max"]:
            problems.append(f"{where} have value less than or equal to {meta['max']}")
    if kind == "string":
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"{where} satisfy enum value set: [{', '.join(meta['enum'])}]")
        elif "pattern" in meta and not _pattern(meta["pattern"]).search(value):
            problems.append(f"{where} satisfy regular expression pattern: {meta['pattern']}")
    elif kind == "structure" and isinstance(value, dict):
        _structure(shape, value, path, problems)
    elif kind == "list":
        for index, item in enumerate(value, 1):
            if item is not None:
                _value(shape.member, item, f"{path}.{index}.member", problems)
    elif kind == "map":
        for key, item in value.items():
            _value(shape.key, key, f"{path}.key", problems)
            if item is not None:
                _value(shape.value, item, f"{path}.value", problems)


def _pattern(text: str) -> re.Pattern:
    found = _PATTERNS.get(text)
    if found is None:
        found = _PATTERNS[text] = re.compile(text)
    return found
