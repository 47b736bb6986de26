"""Helpers for the EC2 handler tests: a handler context, a settable clock, and a strict check of
a handler's output against botocore's output shape (then through the gateway's EC2 encoder and
botocore's own parser, as a client would read it)."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import botocore.session
from botocore.parsers import create_parser

from gateway.protocols.query import encode_query_response

_MODEL = botocore.session.get_session().get_service_model("ec2")


class Clock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def make_ctx(app: Any, state: Any, account: str, region: str = "us-east-1") -> SimpleNamespace:
    return SimpleNamespace(app=app, account=SimpleNamespace(account_id=account), region=region,
                           now=app.clock, state=state, request_id="req-1")


_TYPES = {"string": str, "integer": int, "long": int, "boolean": bool, "timestamp": dt.datetime,
          "double": (float, int), "float": (float, int), "blob": (bytes, str)}


def check_shape(shape: Any, value: Any, path: str = "") -> None:
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), f"{path}: expected a dict, got {type(value).__name__}"
        for key, item in value.items():
            assert key in shape.members, f"{path}.{key}: not a member of {shape.name}"
            check_shape(shape.members[key], item, f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), f"{path}: expected a list"
        for index, item in enumerate(value):
            check_shape(shape.member, item, f"{path}[{index}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{path}: expected a dict"
    else:
        expected = _TYPES[kind]
        assert isinstance(value, expected), f"{path}: expected {kind}, got {type(value).__name__}: {value!r}"
        if kind in ("integer", "long"):
            assert not isinstance(value, bool), f"{path}: bool for an integer"
        if kind == "string" and shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in {shape.enum}"


def wire(operation: str, output: dict) -> dict:
    """Check ``output`` against the model, encode it as Nimbo does and parse it as botocore does."""
    op = _MODEL.operation_model(operation)
    if op.output_shape is not None:
        check_shape(op.output_shape, output, operation)
    body = encode_query_response(op, output, "req-1", "ec2")
    parser = create_parser("ec2")
    parsed = parser.parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed
