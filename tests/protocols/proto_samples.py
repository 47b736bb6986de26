"""Random but reproducible sample values for botocore shapes (test helper).

``Gen(seed).value(shape)`` builds a value botocore's validator accepts:
required members always present, min/max lengths and ranges respected, enum
strings picked from the enum, recursion bounded by depth.  ``place`` tunes
values for where they travel (headers lose surrounding blanks and precision
below a second, XML request bodies cannot carry ``\\r``...).
"""

from __future__ import annotations

import datetime as dt
import random
import string

UTC = dt.timezone.utc

BODY_CHARS = string.ascii_letters + string.digits + ' <>&\'"/=+-_.,;:!?#%[]{}()' + 'éß☃中'
HEADER_CHARS = string.ascii_letters + string.digits + ' /=+-_.;:'
TOKEN_CHARS = string.ascii_lowercase + string.digits


class Gen:
    def __init__(self, seed: int, *, max_depth: int = 5, list_max: int = 3) -> None:
        self.rng = random.Random(seed)
        self.max_depth = max_depth
        self.list_max = list_max

    # place: 'body' (XML/JSON/query values), 'xml-input' (no \r), 'header'
    # (ASCII, no surrounding blanks, whole seconds), 'header-list' (tokens),
    # 'query-string' (whole seconds for timestamps).
    def value(self, shape, depth: int = 0, place: str = 'body', ms: bool = True):
        kind = shape.type_name
        if kind == 'structure':
            return self.structure(shape, depth, place, ms)
        if kind == 'list':
            low = shape.metadata.get('min', 1)
            high = max(low, min(shape.metadata.get('max', self.list_max), self.list_max))
            count = self.rng.randint(max(low, 1), high) if depth < self.max_depth else max(low, 1)
            inner = 'header-list' if place == 'header' else place
            return [self.value(shape.member, depth + 1, inner, ms) for _ in range(count)]
        if kind == 'map':
            count = self.rng.randint(1, 2)
            return {
                self.token(shape.key, 4): self.value(shape.value, depth + 1, place, ms)
                for _ in range(count)
            }
        return self.scalar(shape, place, ms)

    def structure(self, shape, depth: int, place: str, ms: bool) -> dict:
        members = shape.members
        if shape.is_document_type:
            return {'doc': [1, 'two', {'three': True}]}
        required = set(shape.required_members)
        out = {}
        if shape.is_tagged_union:
            name = self.rng.choice(sorted(members))
            return {name: self.value(members[name], depth + 1, place, ms)}
        for name, member in members.items():
            if member.serialization.get('eventstream') or member.serialization.get('streaming'):
                continue
            if name in required or (depth < self.max_depth and self.rng.random() < 0.6):
                out[name] = self.value(member, depth + 1, place, ms)
        if not out and depth < self.max_depth + 3:
            # An empty structure sends nothing in the query protocols: add
            # one member, a scalar when there is one.
            names = [n for n, m in members.items()
                     if not m.serialization.get('eventstream') and not m.serialization.get('streaming')]
            scalars = [n for n in names if members[n].type_name not in ('structure', 'list', 'map')]
            if names:
                name = self.rng.choice(scalars or names)
                out[name] = self.value(members[name], depth + 1, place, ms)
        return out

    def token(self, shape, length: int) -> str:
        enum = shape.metadata.get('enum')
        if enum:
            return self.rng.choice(enum)
        low = shape.metadata.get('min', 1)
        return ''.join(self.rng.choice(TOKEN_CHARS) for _ in range(max(length, low)))

    def scalar(self, shape, place: str, ms: bool):
        kind = shape.type_name
        meta = shape.metadata
        rng = self.rng
        if kind in ('string', 'character'):
            if meta.get('enum'):
                return rng.choice(meta['enum'])
            low = meta.get('min', 0)
            high = meta.get('max', 24)
            size = rng.randint(max(low, 1), max(max(low, 1), min(high, 24)))
            if place == 'header-list':
                return ''.join(rng.choice(TOKEN_CHARS) for _ in range(size))
            chars = HEADER_CHARS if place == 'header' else BODY_CHARS
            text = ''.join(rng.choice(chars) for _ in range(size))
            if place == 'header':
                text = text.strip() or 'x'
                text = text if len(text) >= low else text + 'x' * (low - len(text))
            return text
        if kind == 'integer':
            low = meta.get('min', -1000)
            high = meta.get('max', 100000)
            return rng.randint(int(low), int(min(high, 2**31 - 1)))
        if kind == 'long':
            low = meta.get('min', 0)
            high = meta.get('max', 2**40)
            return rng.randint(int(low), int(min(high, 2**62)))
        if kind == 'boolean':
            return rng.random() < 0.5
        if kind in ('float', 'double'):
            low = meta.get('min', -1e6)
            high = meta.get('max', 1e6)
            return round(rng.uniform(low, high), 3)
        if kind == 'timestamp':
            seconds = rng.randint(0, 2_000_000_000)
            iso = shape.serialization.get('timestampFormat', 'iso8601') == 'iso8601'
            whole = not ms or not iso or place in ('header', 'header-list', 'query-string')
            millis = 0 if whole else rng.randint(0, 999)
            return dt.datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
        if kind == 'blob':
            return bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        raise AssertionError(f'unexpected shape type {kind}')


def prune(value):
    """Drop empty dicts (and lists left empty) recursively: what the query
    protocols cannot carry (an empty structure sends no parameter)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = prune(item)
            if item == {} or item == []:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        items = [prune(item) for item in value]
        return [item for item in items if item != {} and item != []]
    return value
