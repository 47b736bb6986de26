"""The ``json`` protocol (Cost Explorer, CUR), server side.

Requests: ``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>`` and a
JSON body; members are keyed by ``locationName`` or member name; timestamps
are epoch seconds (numbers) unless ``timestampFormat`` says otherwise; blobs
are base64 strings; floats may be "NaN"/"Infinity"/"-Infinity".

Errors follow AWS's JSON services: a body that is not a JSON object, or a
value of the wrong JSON type -> ``SerializationException``; a required
member missing -> ``ValidationException``.  Unknown members are ignored;
``null`` counts as absent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from . import errors, values

JSON_CONTENT_TYPE = 'application/x-amz-json-1.1'


def json_content_type(operation_or_service) -> str:
    """``application/x-amz-json-<jsonVersion>`` for the operation's service."""
    model = getattr(operation_or_service, 'service_model', operation_or_service)
    return f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.1')}"


content_type = json_content_type


def target_operation(service_model, target: str | None) -> str | None:
    """The operation name in an ``X-Amz-Target`` header, if it is this service's."""
    if not target or '.' not in target:
        return None
    prefix, _, name = target.rpartition('.')
    if prefix != service_model.metadata.get('targetPrefix'):
        return None
    return name if name in service_model.operation_names else None


# --- requests ----------------------------------------------------------------

def decode_json(operation, body: bytes | None) -> dict[str, Any]:
    """Decode a JSON request body into the input shape of ``operation``."""
    shape = operation.input_shape
    if body is None or not body.strip():
        document: Any = {}
    else:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise errors.SerializationException(f'Malformed JSON request body: {exc}') from None
    if not isinstance(document, dict):
        raise errors.SerializationException('The request body must be a JSON object')
    if shape is None:
        return {}
    return _structure(document, shape, '')


def _join(path: str, name: str) -> str:
    return f'{path}.{name}' if path else name


def _structure(value: Any, shape, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_value('json', path or shape.name, value, 'structure')
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        key = member.serialization.get('name', name)
        raw = value.get(key)
        if raw is not None:
            out[name] = _value(raw, member, _join(path, key))
    for name in shape.required_members:
        if name not in out:
            raise errors.missing_member('json', _join(path, shape.members[name].serialization.get('name', name)))
    return out


def _value(raw: Any, shape, path: str) -> Any:
    type_name = shape.type_name
    if type_name == 'structure':
        if shape.is_document_type:
            return raw
        return _structure(raw, shape, path)
    if type_name == 'list':
        if not isinstance(raw, list):
            raise errors.invalid_value('json', path, raw, 'list')
        return [None if item is None else _value(item, shape.member, f'{path}.{i}') for i, item in enumerate(raw, 1)]
    if type_name == 'map':
        if not isinstance(raw, dict):
            raise errors.invalid_value('json', path, raw, 'map')
        return {
            key: None if item is None else _value(item, shape.value, f'{path}.{key}')
            for key, item in raw.items()
        }
    try:
        return _scalar(raw, shape)
    except (TypeError, ValueError):
        raise errors.invalid_value('json', path, raw, type_name) from None


def _scalar(raw: Any, shape) -> Any:
    type_name = shape.type_name
    if type_name in ('string', 'character'):
        if not isinstance(raw, str):
            raise TypeError
        return raw
    if type_name == 'boolean':
        if not isinstance(raw, bool):
            raise TypeError
        return raw
    if type_name in ('integer', 'long'):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError
        return values.parse_integer(str(int(raw)), type_name)
    if type_name in ('float', 'double'):
        if isinstance(raw, str):
            return values.parse_float(raw) if raw in ('NaN', 'Infinity', '-Infinity') else _bad()
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError
        return float(raw)
    if type_name == 'timestamp':
        if isinstance(raw, bool):
            raise TypeError
        if isinstance(raw, (int, float)):
            return values.from_epoch(raw)
        if isinstance(raw, str):
            return values.parse_timestamp(raw, shape.serialization.get('timestampFormat'))
        raise TypeError
    if type_name == 'blob':
        if not isinstance(raw, str):
            raise TypeError
        return values.parse_blob(raw)
    return raw


def _bad() -> Any:
    raise ValueError


# --- responses ---------------------------------------------------------------

def encode_json(operation, output: Mapping[str, Any] | None) -> bytes:
    """JSON body of a successful response (``{}`` when there is no output)."""
    shape = operation.output_shape
    document = {} if shape is None else _dump_structure(output or {}, shape)
    return json.dumps(document, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def _dump_structure(value: Mapping[str, Any], shape) -> Any:
    if shape.is_document_type:
        return value
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        item = value.get(name)
        if item is not None:
            out[member.serialization.get('name', name)] = _dump(item, member)
    return out


def _dump(value: Any, shape) -> Any:
    type_name = shape.type_name
    if type_name == 'structure':
        return _dump_structure(value, shape)
    if type_name == 'list':
        return [None if item is None else _dump(item, shape.member) for item in value]
    if type_name == 'map':
        return {str(key): None if item is None else _dump(item, shape.value) for key, item in value.items()}
    if type_name == 'timestamp':
        fmt = (shape.serialization.get('timestampFormat') or 'unixtimestamp').lower()
        if fmt == 'unixtimestamp':
            return values.epoch_seconds(value)
        return values.format_timestamp(value, fmt, 'iso8601')
    if type_name == 'blob':
        return values.format_blob(value)
    if type_name in ('float', 'double'):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return values.format_float(number)
        return number
    if type_name in ('integer', 'long'):
        return int(value)
    if type_name == 'boolean':
        return bool(value)
    return value if isinstance(value, str) else str(value)


def encode_json_error(code: str, message: str) -> bytes:
    """``{"__type": code, "message": message}``."""
    return json.dumps({'__type': code, 'message': message}, ensure_ascii=False).encode('utf-8')
