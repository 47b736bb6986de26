"""S3's query strings are decoded with the parts that need decoding remembered
(``gateway.dispatch._decoded_pair``): the answers stay parse_qsl's, also from the table and
across its overflow."""
from __future__ import annotations

import random
import urllib.parse

from gateway import dispatch


def test_remembered_parts_give_parse_qsl_answers(monkeypatch):
    monkeypatch.setattr(dispatch, "_MAX_DECODED", 40)
    rng = random.Random(7)
    alphabet = "ab=&+%2F%zz%E9é ;"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25))) for _ in range(500)]
    for _ in range(3):       # later passes read the table
        for text in texts:
            expected = urllib.parse.parse_qsl(text, keep_blank_values=True)
            assert list(dispatch.query_multidict(text).items()) == expected, text
    assert 0 < len(dispatch._DECODED) <= 40
