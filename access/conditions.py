"""IAM policy condition operators: ``"Condition": {"<Operator>": {"<key>": <values>}}``.

A condition block is true when every operator's every key is true (AND); a key is true when
the request's value matches any of the policy's values (OR). Operators, as the IAM User Guide's
"Condition operators" page documents them:

- String: ``StringEquals``, ``StringNotEquals``, ``StringEqualsIgnoreCase``,
  ``StringNotEqualsIgnoreCase``, ``StringLike``, ``StringNotLike`` (``*`` and ``?`` wildcards).
- Numeric: ``NumericEquals``, ``NumericNotEquals``, ``NumericLessThan``,
  ``NumericLessThanEquals``, ``NumericGreaterThan``, ``NumericGreaterThanEquals``.
- Date: ``DateEquals``, ``DateNotEquals``, ``DateLessThan``, ``DateLessThanEquals``,
  ``DateGreaterThan``, ``DateGreaterThanEquals`` (ISO 8601 dates or epoch seconds, either side).
- ``Bool``, ``BinaryEquals`` (base64), ``IpAddress`` / ``NotIpAddress`` (IPv4 and IPv6, an
  address or a CIDR), ``ArnEquals`` / ``ArnLike`` / ``ArnNotEquals`` / ``ArnNotLike`` (each of
  the six colon-separated parts matched on its own, with wildcards), ``Null``.
- The ``...IfExists`` suffix (every operator but ``Null``): true when the key is absent.
- The set qualifiers ``ForAnyValue:`` / ``ForAllValues:`` for multivalued keys.

Missing keys (the request has no value for the key): a positive operator is false; a negated
one (``StringNotEquals``, ``NotIpAddress``, ``ArnNotLike``...) is true; ``...IfExists`` is true;
``ForAllValues:`` is true; ``ForAnyValue:`` is false; ``Null`` is true for ``"true"``.

Operator names are case-sensitive (``stringequals`` is not an operator); condition key names
are not (``AWS:SourceIp`` is ``aws:SourceIp``). Values in policies may be strings, numbers or
booleans; they compare as their JSON text (``true`` -> ``"true"``).

Policy variables (``${aws:username}``, ``${*}``, ``${?}``, ``${$}``, and the
``${key, 'default'}`` form) are replaced in condition values before matching when the policy's
Version is 2012-10-17; a value whose variable has no value in the request matches nothing.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

# The base operators, by family. A family decides how one request value is compared with one
# policy value; "negated" operators are true when no policy value matches.
_BASE: dict[str, tuple[str, bool]] = {
    "StringEquals": ("string", False),
    "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string_ci", False),
    "StringNotEqualsIgnoreCase": ("string_ci", True),
    "StringLike": ("string_like", False),
    "StringNotLike": ("string_like", True),
    "NumericEquals": ("num_eq", False),
    "NumericNotEquals": ("num_eq", True),
    "NumericLessThan": ("num_lt", False),
    "NumericLessThanEquals": ("num_le", False),
    "NumericGreaterThan": ("num_gt", False),
    "NumericGreaterThanEquals": ("num_ge", False),
    "DateEquals": ("date_eq", False),
    "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False),
    "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False),
    "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}

BASE_OPERATORS = frozenset(_BASE)


@dataclass(frozen=True)
class Operator:
    """A parsed operator name: ``ForAnyValue:StringLikeIfExists`` -> (StringLike, any, True)."""
    name: str                 # as written in the policy
    base: str                 # StringLike
    family: str               # string_like
    negated: bool
    if_exists: bool
    qualifier: str | None     # "ForAnyValue" | "ForAllValues" | None


@lru_cache(maxsize=512)
def parse_operator(name: str) -> Operator | None:
    """The operator an operator name denotes, or None if IAM has no such operator."""
    if not isinstance(name, str):
        return None
    qualifier = None
    rest = name
    for q in ("ForAnyValue:", "ForAllValues:"):
        if name.startswith(q):
            qualifier, rest = q[:-1], name[len(q):]
            break
    if_exists = False
    if rest.endswith("IfExists") and rest != "IfExists":
        rest, if_exists = rest[: -len("IfExists")], True
    if rest not in _BASE:
        return None
    if rest == "Null" and (if_exists or qualifier):
        return None
    family, negated = _BASE[rest]
    return Operator(name, rest, family, negated, if_exists, qualifier)


def value_text(value) -> str | None:
    """A policy value as the string it compares as (None: not a scalar)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


# ---- policy variables --------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


class _Unresolved(Exception):
    pass


def lookup(context: dict[str, list[str]], key: str) -> list[str] | None:
    """The request's values for a condition key (names compare case-insensitively)."""
    values = context.get(key)
    if values is None:
        lowered = key.lower()
        for k, v in context.items():
            if k.lower() == lowered:
                values = v
                break
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    return list(values)


def _variable_value(inner: str, context: dict[str, list[str]]) -> str:
    inner = inner.strip()
    if inner in _SPECIAL:
        return _SPECIAL[inner]
    default = None
    if "," in inner:                       # ${aws:username, 'nobody'}
        inner, _, default_text = inner.partition(",")
        inner = inner.strip()
        default_text = default_text.strip()
        if len(default_text) >= 2 and default_text[0] == default_text[-1] == "'":
            default = default_text[1:-1]
    values = lookup(context, inner)
    if values and len(values) == 1:
        return values[0]
    if default is not None:
        return default
    raise _Unresolved(inner)


def substitute(text: str, context: dict[str, list[str]], *, escape_wildcards: bool = False) -> str | None:
    """``text`` with its policy variables replaced from ``context`` (None: a variable has no
    value). With ``escape_wildcards`` the result is a match pattern in which a substituted
    value's own ``*`` and ``?`` are literal characters (``${*}`` stays a literal ``*`` too)."""
    def literal(part: str) -> str:
        return part.replace("\\", "\\\\") if escape_wildcards else part

    if "${" not in text:
        return literal(text)
    out: list[str] = []
    pos = 0
    try:
        for m in _VARIABLE.finditer(text):
            out.append(literal(text[pos:m.start()]))
            value = _variable_value(m.group(1), context)
            out.append(_escape(value) if escape_wildcards else value)
            pos = m.end()
    except _Unresolved:
        return None
    out.append(literal(text[pos:]))
    return "".join(out)


# ---- wildcard matching ----------------------------------------------------------------------
# Patterns produced by substitute(..., escape_wildcards=True) mark literal * ? with a backslash.

def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


@lru_cache(maxsize=4096)
def _compile(pattern: str, ignore_case: bool, escaped: bool) -> re.Pattern:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escaped and c == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            parts.append(".*")
        elif c == "?":
            parts.append(".")
        else:
            parts.append(re.escape(c))
        i += 1
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False, escaped: bool = False) -> bool:
    """IAM's ``*`` (any run of characters, ``/`` included) and ``?`` (one character)."""
    if "*" not in pattern and "?" not in pattern and not escaped:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _compile(pattern, ignore_case, escaped).fullmatch(value) is not None


# ---- value parsing ----------------------------------------------------------------------------

def parse_number(text: str):
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if value != value else value        # NaN compares as nothing


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


def parse_date(text: str) -> datetime | None:
    """ISO 8601 (``2024-01-01``, ``2024-01-01T12:00:00Z``, with fractions or an offset,
    ``20240101T120000Z``) or epoch seconds; naive times are UTC."""
    if not isinstance(text, str) or not text:
        return None
    text = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text) and not _DATE_ONLY.match(text):
        try:
            return datetime.fromtimestamp(float(text), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    m = _COMPACT.match(text)
    if m:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        try:
            return datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
        except ValueError:
            return None
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        value = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_network(text: str):
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except (ValueError, AttributeError):
        return None


def _address(text: str):
    try:
        addr = ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _arn_match(pattern: str, value: str) -> bool:
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return wildcard_match(pattern, value, escaped=True) if pattern == "*" else False
    return all(wildcard_match(p, v, escaped=True) for p, v in zip(p_parts, v_parts))


def _positive(family: str, request_value: str, policy_value: str) -> bool:
    """Whether one request value matches one (substituted) policy value, positively."""
    if family == "string":
        return request_value == _unescape(policy_value)
    if family == "string_ci":
        return request_value.casefold() == _unescape(policy_value).casefold()
    if family == "string_like":
        return wildcard_match(policy_value, request_value, escaped=True)
    if family.startswith("num_"):
        a, b = parse_number(request_value), parse_number(_unescape(policy_value))
        if a is None or b is None:
            return False
        return _compare(family[4:], a, b)
    if family.startswith("date_"):
        a, b = parse_date(request_value), parse_date(_unescape(policy_value))
        if a is None or b is None:
            return False
        return _compare(family[5:], a, b)
    if family == "bool":
        return request_value.lower() == _unescape(policy_value).lower()
    if family == "binary":
        a, b = _b64(request_value), _b64(_unescape(policy_value))
        if a is None or b is None:
            return request_value == _unescape(policy_value)
        return a == b
    if family == "ip":
        addr, net = _address(request_value), parse_network(_unescape(policy_value))
        if addr is None or net is None or addr.version != net.version:
            return False
        return addr in net
    if family == "arn":
        return _arn_match(policy_value, request_value)
    raise ValueError(family)


def _compare(how: str, a, b) -> bool:
    return {"eq": a == b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[how]


def _unescape(pattern: str) -> str:
    if "\\" not in pattern:
        return pattern
    return re.sub(r"\\(.)", r"\1", pattern)


# ---- one operator on one key ------------------------------------------------------------------

def _value_matches(op: Operator, request_value: str, policy_values: list[str]) -> bool:
    """One request value against the key's policy values, the operator's negation applied."""
    hit = any(_positive(op.family, request_value, pv) for pv in policy_values)
    return not hit if op.negated else hit


def evaluate_key(op: Operator, key: str, policy_values: list, context: dict[str, list[str]],
                 *, variables: bool = True) -> bool:
    """Whether the request satisfies ``{op: {key: policy_values}}``."""
    present = lookup(context, key)
    if present is not None and len(present) == 0:
        present = None
    if op.family == "null":
        wanted = [str(value_text(v)).lower() for v in policy_values]
        is_null = present is None
        return any((w == "true") == is_null for w in wanted if w in ("true", "false"))

    patterns: list[str] = []
    for v in policy_values:
        text = value_text(v)
        if text is None:
            continue
        if variables:
            sub = substitute(text, context, escape_wildcards=True)
            if sub is None:
                continue                 # an unresolved variable matches nothing
            patterns.append(sub)
        else:
            patterns.append(_escape_literal_for(op, text))

    if op.qualifier == "ForAllValues":
        if present is None:
            return True
        return all(_value_matches(op, rv, patterns) for rv in present)
    if op.qualifier == "ForAnyValue":
        if present is None:
            return False
        return any(_value_matches(op, rv, patterns) for rv in present)
    if present is None:
        return True if op.if_exists else op.negated
    hit = any(_positive(op.family, rv, pv) for rv in present for pv in patterns)
    return not hit if op.negated else hit


def _escape_literal_for(op: Operator, text: str) -> str:
    # Without variables the text is the pattern itself; only backslashes need escaping so
    # that the matcher (which reads \x as a literal x) sees them as written.
    return text.replace("\\", "\\\\")


def evaluate_block(conditions, context: dict[str, list[str]], *, variables: bool = True) -> bool:
    """Whether every (operator, key, values) triple of a parsed Condition block holds."""
    return all(evaluate_key(op, key, values, context, variables=variables)
               for op, key, values in conditions)
