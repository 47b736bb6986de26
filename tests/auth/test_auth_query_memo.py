"""Query parts that recur from request to request (a presigned URL's credential scope) are
decoded and canonicalized once and then taken from two bounded tables (``gateway.auth.signing``):
the answers read from the tables are the definitions' answers, also after the tables overflow."""
from __future__ import annotations

import random

from gateway.auth import signing
from tests.auth.test_auth_fastpaths import ALPHABET, _canonical_query, _outcome, _query_params


def test_remembered_parts_give_the_definitions_answers(monkeypatch):
    monkeypatch.setattr(signing, "_MEMO_ENTRIES", 50)    # overflow often
    rng = random.Random(31)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 30))) for _ in range(400)]
    for _ in range(3):              # the second and third passes read the tables
        for text in texts:
            for exclude in ((), ("X-Amz-Signature",), ("é",)):
                assert _outcome(signing.canonical_query, text, exclude) == \
                    _outcome(_canonical_query, text, exclude), text
            assert _outcome(signing.query_params, text) == _outcome(_query_params, text), text
    assert 0 < len(signing._DECODED_PARTS) <= 50 and 0 < len(signing._CANONICAL_TEXTS) <= 50


def test_a_presigned_credential_is_remembered():
    raw = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260501%2Fus-east-1"
           "%2Fs3%2Faws4_request&X-Amz-Date=20260501T000000Z&X-Amz-Expires=60"
           "&X-Amz-SignedHeaders=host&X-Amz-Signature=abc")
    first = signing.canonical_query(raw, ("X-Amz-Signature",))
    assert "AKIDEXAMPLE%2F20260501%2Fus-east-1%2Fs3%2Faws4_request" in signing._CANONICAL_TEXTS
    assert signing.canonical_query(raw, ("X-Amz-Signature",)) == first
    assert signing.query_params(raw)["X-Amz-Credential"] == [
        "AKIDEXAMPLE/20260501/us-east-1/s3/aws4_request"]
