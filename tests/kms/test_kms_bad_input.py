"""Bad input never becomes a 500: every operation, called with values generated from its input
shape (empty, oversize, out of range, foreign ARNs, random bytes, other enums), answers a KMS
error with a 4xx status or succeeds; the account's keys are unchanged by refused calls."""
from __future__ import annotations

import random

from _kms_testkit import ALICE, MODEL
from kms_api import errors
from kms_api.operations import OPERATIONS

NAMES = ["", "x", "alias/", "alias/aws/s3", "alias/none", "arn:aws:kms:us-east-1:333333333333:key/"
         "11111111-2222-3333-4444-555555555555", "arn:aws:kms:us-east-1", "arn:aws:s3:::b/k", "mrk-0",
         "11111111-2222-3333-4444-555555555555", "../../etc/passwd", "\u00e9\u0000", "k" * 3000]


def _value(shape, rng: random.Random, depth: int = 0, key_id: str = ""):
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        choices = list(meta.get("enum") or []) + NAMES + ([key_id] if key_id else [])
        return rng.choice(choices + ["UNKNOWN_ENUM"])
    if kind == "blob":
        return rng.choice([b"", b"\x01nkms" + bytes(rng.randrange(256) for _ in range(40)), b"x" * 7000,
                           bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))])
    if kind in ("integer", "long"):
        return rng.choice([-1, 0, 1, 7, 31, 89, 1024, 1025, 10 ** 9])
    if kind == "boolean":
        return rng.choice([True, False])
    if kind == "list":
        return [_value(shape.member, rng, depth + 1, key_id) for _ in range(rng.choice([0, 1, 2, 51]))] \
            if depth < 3 else []
    if kind == "map":
        return {str(_value(shape.key, rng, depth + 1)): str(_value(shape.value, rng, depth + 1))
                for _ in range(rng.randrange(3))}
    if kind == "structure":
        # required members are always there: the JSON codec refuses a request without them first
        return {name: _value(member, rng, depth + 1, key_id) for name, member in shape.members.items()
                if name in shape.required_members or (depth < 3 and rng.random() < 0.7)}
    return None


async def test_generated_bad_input_is_a_client_error(alice):
    key_id = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    before = (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]
    rng = random.Random(11)
    outcomes = {"ok": 0, "refused": 0}
    for operation in sorted(OPERATIONS):
        shape = MODEL.operation_model(operation).input_shape
        for _ in range(40):
            params = _value(shape, rng, 0, key_id) if shape is not None else {}
            if operation in ("ScheduleKeyDeletion", "DisableKey") and params.get("KeyId") == key_id:
                continue       # allowed changes: the key stays comparable below
            try:
                await alice(operation, **params)
                outcomes["ok"] += 1
            except errors.KMSError as exc:
                assert 400 <= exc.status < 500, (operation, params, exc.code, exc.message)
                outcomes["refused"] += 1
    assert outcomes["refused"] > 500 and outcomes["ok"] > 10, outcomes
    after = (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]
    assert after["KeyState"] in ("Enabled", "Disabled") and after["Arn"] == before["Arn"]
    assert after["AWSAccountId"] == ALICE
