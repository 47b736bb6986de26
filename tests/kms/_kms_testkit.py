"""Helpers of the KMS tests: accounts, a clock, and a caller that runs the handlers as the gateway does."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import botocore.session
import pytest
from botocore.parsers import create_parser

from gateway.protocols.json_protocol import encode_json
from kms_api import errors
from kms_api.operations import OPERATIONS
from kms_api.state import state_of

ALICE, BOB = "222222222222", "333333333333"
MODEL = botocore.session.get_session().get_service_model("kms")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


class Kms:
    """Calls the handlers as the gateway does, round-tripping the output through the JSON encoder
    and botocore's parser (so every output matches the model's shape)."""

    def __init__(self, app, account: str = ALICE, region: str = "us-east-1") -> None:
        self.app, self.account, self.region = app, account, region

    async def __call__(self, operation: str, **params) -> dict:
        ctx = SimpleNamespace(app=self.app, account=SimpleNamespace(account_id=self.account), region=self.region,
                              now=self.app.clock, meter=None, state=await state_of(self.app))
        out = await OPERATIONS[operation](ctx, params)
        op = MODEL.operation_model(operation)
        body = encode_json(op, out)
        parsed = create_parser("json").parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
        parsed.pop("ResponseMetadata", None)
        return parsed

    async def fails(self, operation: str, code: str, **params) -> str:
        with pytest.raises(errors.KMSError) as caught:
            await self(operation, **params)
        assert caught.value.code == code, (caught.value.code, caught.value.message)
        assert caught.value.status < 500
        return caught.value.message
