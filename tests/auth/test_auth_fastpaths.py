"""The fast paths of the SigV4/SigV2 building blocks give exactly what the plain definitions give
(decode every parameter to bytes, encode every byte through AWS's table, strptime the date,
OpenSSL's HMAC), for random input: canonical query, canonical S3 path, query parameters, the
X-Amz-Date parser and the keyed HMAC."""
from __future__ import annotations

import datetime as dt
import hmac
import os
import random
from urllib.parse import unquote_to_bytes

from gateway.auth import signing

ALPHABET = "aZ09-_.~/ %+=&é€\udcff;2FAfX$"


def _pairs(raw: str) -> list[tuple[bytes, bytes]]:
    pairs = []
    for part in raw.split("&") if raw else ():
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def _encode(data: bytes, table=signing._ENCODED) -> str:
    return "".join(table[b] for b in data)


def _canonical_query(raw: str, exclude=()) -> str:
    skip = {name.encode() for name in exclude}
    encoded = sorted((_encode(n), _encode(v)) for n, v in _pairs(raw) if n not in skip)
    return "&".join(f"{n}={v}" for n, v in encoded)


def _query_params(raw: str) -> dict:
    params: dict = {}
    for n, v in _pairs(raw):
        params.setdefault(n.decode("utf-8", "replace"), []).append(v.decode("utf-8", "replace"))
    return params


def _canonical_uri_s3(raw_path: str) -> str:
    if not raw_path:
        return "/"
    data = raw_path.encode("utf-8", "surrogateescape")
    out, i = [], 0
    while i < len(data):
        if data[i] == 0x25 and i + 2 < len(data) and data[i + 1] in signing._HEX and data[i + 2] in signing._HEX:
            out.append(data[i:i + 3].decode("ascii"))
            i += 3
            continue
        out.append(signing._ENCODED_KEEP_SLASH[data[i]])
        i += 1
    return "".join(out)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the same failure (a surrogate that cannot be UTF-8) counts too
        return type(exc)


def test_canonical_query_params_and_path_match_their_definitions():
    rng = random.Random(20)
    for _ in range(30000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 30)))
        for exclude in ((), ("X-Amz-Signature",), ("a",), ("é",)):
            assert _outcome(signing.canonical_query, text, exclude) == _outcome(_canonical_query, text, exclude), text
        assert _outcome(signing.query_params, text) == _outcome(_query_params, text), text
        assert _outcome(signing.parse_query, text) == _outcome(_pairs, text), text
        assert _outcome(signing.canonical_uri_s3, text) == _outcome(_canonical_uri_s3, text), text


def test_uri_encode_matches_the_table():
    rng = random.Random(21)
    for _ in range(5000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        assert signing.uri_encode(data) == _encode(data)
        assert signing.uri_encode(data, keep_slash=True) == _encode(data, signing._ENCODED_KEEP_SLASH)


def test_amz_date_parser_matches_strptime():
    def reference(value):
        if not signing._AMZ_DATE.fullmatch(value):
            return None
        try:
            return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return None

    rng = random.Random(22)
    for _ in range(50000):
        if rng.random() < 0.5:
            value = (f"{rng.randrange(0, 3000):04d}{rng.randrange(0, 14):02d}{rng.randrange(0, 33):02d}T"
                     f"{rng.randrange(0, 25):02d}{rng.randrange(0, 61):02d}{rng.randrange(0, 62):02d}Z")
        else:  # other digits too: '٢' is a digit to the regex, not to a fixed-position reader
            value = ("".join(rng.choice("0123456789٢") for _ in range(8)) + "T"
                     + "".join(rng.choice("0123456789٢") for _ in range(6)) + "Z")
        assert signing.parse_amz_date(value) == reference(value), value


def test_keyed_hmac_is_hmac():
    rng = random.Random(23)
    for _ in range(3000):
        key = os.urandom(rng.choice([0, 1, 20, 40, 63, 64, 65, 100, 200]))
        msg = os.urandom(rng.randrange(0, 300))
        for algorithm in ("sha1", "sha256"):
            assert signing.keyed_hmac(key, msg, algorithm) == hmac.digest(key, msg, algorithm)
            assert signing.keyed_hmac(key, msg, algorithm) == hmac.digest(key, msg, algorithm)


def test_sha256_hex_check():
    rng = random.Random(24)
    for _ in range(20000):
        value = "".join(rng.choice("0123456789abcdefABCDEFgG ٢\n") for _ in range(rng.choice([0, 63, 64, 65])))
        expected = len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
        assert signing.is_sha256_hex(value) == expected, value
