"""The one filter and pagination engine behind every Describe call.

A Describe handler declares its filters as a mapping from filter name to a function that gives an
item's values for it (a string, a list of strings, or None); ``tag:<key>`` filters are handled
for items that expose tags. Filter values match with EC2's wildcards (``*`` any run, ``?`` one
character, ``\\`` escapes). Several values of one filter are ORed; several filters are ANDed.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from ec2_api.errors import InvalidParameterValue, ec2_error

InvalidNextToken = ec2_error("InvalidNextToken", 400, "The token is invalid.")

FieldGetter = Callable[[Any], Any]


@lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern:
    parts, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            parts.append(re.escape(value[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def value_matches(pattern: str, value: str) -> bool:
    return _pattern(pattern).fullmatch(value) is not None


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, bool):
        return ["true" if raw else "false"]
    if isinstance(raw, (list, tuple, set)):
        return [v for item in raw for v in _values(item)]
    return [str(raw)]


def apply_filters(items: Iterable[Any], filters: Sequence[dict] | None, fields: dict[str, FieldGetter],
                  tags: Callable[[Any], dict[str, str]] | None = None) -> list[Any]:
    """The items that pass every filter; an unknown filter name is InvalidParameterValue."""
    checks: list[Callable[[Any], bool]] = []
    for flt in filters or []:
        name = flt.get("Name")
        patterns = [str(v) for v in flt.get("Values") or []]
        if not name:
            raise InvalidParameterValue("The filter 'null' is invalid")
        checks.append(_check(name, patterns, fields, tags))
    return [item for item in items if all(check(item) for check in checks)]


def _check(name: str, patterns: list[str], fields: dict[str, FieldGetter],
           tags: Callable[[Any], dict[str, str]] | None) -> Callable[[Any], bool]:
    def any_match(values: list[str]) -> bool:
        return any(value_matches(p, v) for p in patterns for v in values)

    if name in fields:
        getter = fields[name]
        return lambda item: any_match(_values(getter(item)))
    if tags is not None and name.startswith("tag:"):
        key = name[4:]
        return lambda item: key in tags(item) and any_match([tags(item)[key]])
    if tags is not None and name == "tag-key":
        return lambda item: any_match(list(tags(item)))
    if tags is not None and name == "tag-value":
        return lambda item: any_match(list(tags(item).values()))
    raise InvalidParameterValue(f"The filter '{name}' is invalid")


def paginate(items: Sequence[Any], key: Callable[[Any], str], max_results: int | None,
             next_token: str | None, *, minimum: int = 5, maximum: int = 1000) -> tuple[list[Any], str | None]:
    """One page of ``items`` (sorted by ``key``) and the token of the next page, or None.

    The token names the last key returned, so a page is stable when items come and go between
    calls. MaxResults outside [minimum, maximum] is InvalidParameterValue, as in EC2.
    """
    ordered = sorted(items, key=key)
    if next_token:
        after = _decode_token(next_token)
        ordered = [item for item in ordered if key(item) > after]
    if max_results is None:
        if next_token is None:
            return ordered, None
        max_results = maximum
    if not minimum <= max_results <= maximum:
        raise InvalidParameterValue(
            f"Value ( {max_results} ) for parameter maxResults is invalid. "
            f"Expecting a value greater than {minimum - 1} and less than {maximum + 1}.")
    page = ordered[:max_results]
    if len(ordered) > max_results:
        return page, _encode_token(key(page[-1]))
    return page, None


def filter_and_paginate(items: Iterable[Any], params: dict, fields: dict[str, FieldGetter],
                        tags: dict[str, dict[str, str]], id_member: str,
                        **limits: int) -> tuple[list[Any], str | None]:
    """A Describe* answer's page: ``items`` (output dicts identified by ``id_member``, whose tags are
    ``tags[id]``) passed through the request's Filters, then paged by MaxResults / NextToken."""
    items = apply_filters(items, params.get("Filters"), fields, tags=lambda item: tags[item[id_member]])
    return paginate(items, lambda item: item[id_member], params.get("MaxResults"), params.get("NextToken"), **limits)


def _encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def _decode_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidNextToken(f"The token '{token}' is invalid.") from exc
    if not isinstance(after, str):
        raise InvalidNextToken(f"The token '{token}' is invalid.")
    return after


__all__ = ["apply_filters", "paginate", "value_matches", "InvalidNextToken"]
