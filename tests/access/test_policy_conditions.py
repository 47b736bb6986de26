"""Condition operators as the IAM User Guide documents them: each operator's comparison, the
IfExists suffix, the ForAnyValue/ForAllValues set qualifiers, and missing keys."""
from __future__ import annotations

import pytest

from access.conditions import (evaluate_block, evaluate_key, parse_date, parse_operator,
                               substitute, wildcard_match)


def check(operator: str, key: str, policy_values, context: dict, variables: bool = True) -> bool:
    op = parse_operator(operator)
    assert op is not None, operator
    values = policy_values if isinstance(policy_values, list) else [policy_values]
    ctx = {k: (v if isinstance(v, list) else [v]) for k, v in context.items()}
    return evaluate_key(op, key, values, ctx, variables=variables)


# (operator, key, policy value(s), request value (None: key absent), expected)
CASES = [
    # strings
    ("StringEquals", "aws:Referer", "abc", "abc", True),
    ("StringEquals", "aws:Referer", "abc", "ABC", False),
    ("StringEquals", "aws:Referer", ["x", "abc"], "abc", True),
    ("StringEquals", "aws:Referer", "a*", "abc", False),             # no wildcards in Equals
    ("StringEquals", "aws:Referer", "abc", None, False),
    ("StringNotEquals", "aws:Referer", "abc", "abd", True),
    ("StringNotEquals", "aws:Referer", ["abc", "abd"], "abd", False),
    ("StringNotEquals", "aws:Referer", "abc", None, True),           # negated: absent is true
    ("StringEqualsIgnoreCase", "aws:Referer", "AbC", "aBc", True),
    ("StringNotEqualsIgnoreCase", "aws:Referer", "AbC", "aBc", False),
    ("StringLike", "s3:prefix", "home/*", "home/a/b", True),
    ("StringLike", "s3:prefix", "home/?", "home/ab", False),
    ("StringLike", "s3:prefix", "home/?", "home/a", True),
    ("StringLike", "s3:prefix", "Home/*", "home/a", False),
    ("StringLike", "s3:prefix", "", "", True),
    ("StringNotLike", "s3:prefix", "home/*", "tmp/a", True),
    ("StringNotLike", "s3:prefix", "home/*", "home/a", False),
    ("StringNotLike", "s3:prefix", "home/*", None, True),
    # numbers
    ("NumericEquals", "s3:max-keys", "10", "10", True),
    ("NumericEquals", "s3:max-keys", 10, "10.0", True),
    ("NumericNotEquals", "s3:max-keys", "10", "11", True),
    ("NumericLessThan", "s3:max-keys", "10", "9", True),
    ("NumericLessThan", "s3:max-keys", "10", "10", False),
    ("NumericLessThanEquals", "s3:max-keys", "10", "10", True),
    ("NumericGreaterThan", "s3:max-keys", "10", "11", True),
    ("NumericGreaterThanEquals", "s3:max-keys", "10", "10", True),
    ("NumericGreaterThanEquals", "s3:max-keys", "10", "x", False),   # not a number
    ("NumericLessThan", "s3:max-keys", "10", None, False),
    ("NumericNotEquals", "s3:max-keys", "10", None, True),
    # dates (ISO 8601 and epoch, either side)
    ("DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", "2024-05-01T12:00:00Z", True),
    ("DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", False),
    ("DateLessThan", "aws:CurrentTime", "2020-01-01", "2019-12-31T23:59:59Z", True),
    ("DateLessThanEquals", "aws:CurrentTime", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
    ("DateEquals", "aws:CurrentTime", "2020-01-01T01:00:00+01:00", "2020-01-01T00:00:00Z", True),
    ("DateNotEquals", "aws:CurrentTime", "2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", True),
    ("DateGreaterThanEquals", "aws:EpochTime", "1577836800", "2020-01-01T00:00:00Z", True),
    ("DateLessThan", "aws:EpochTime", "2020-01-01T00:00:00Z", "1577836799", True),
    ("DateLessThan", "aws:CurrentTime", "2020-01-01T00:00:00.500Z", "2020-01-01T00:00:00Z", True),
    ("DateLessThan", "aws:CurrentTime", "2020-01-01", "not a date", False),
    # booleans
    ("Bool", "aws:SecureTransport", "true", "true", True),
    ("Bool", "aws:SecureTransport", True, "true", True),
    ("Bool", "aws:SecureTransport", "false", "true", False),
    ("Bool", "aws:SecureTransport", "false", None, False),
    ("BoolIfExists", "aws:SecureTransport", "false", None, True),
    # binary (base64)
    ("BinaryEquals", "s3:x-amz-content-sha256", "QmluYXJ5VmFsdWU=", "QmluYXJ5VmFsdWU=", True),
    ("BinaryEquals", "s3:x-amz-content-sha256", "QmluYXJ5VmFsdWU=", "T3RoZXI=", False),
    # IP addresses
    ("IpAddress", "aws:SourceIp", "192.0.2.0/24", "192.0.2.200", True),
    ("IpAddress", "aws:SourceIp", "192.0.2.0/24", "192.0.3.1", False),
    ("IpAddress", "aws:SourceIp", "203.0.113.7", "203.0.113.7", True),
    ("IpAddress", "aws:SourceIp", "2001:DB8:1234:5678::/64", "2001:db8:1234:5678:a::1", True),
    ("IpAddress", "aws:SourceIp", "2001:DB8:1234:5678::/64", "192.0.2.1", False),
    ("IpAddress", "aws:SourceIp", "192.0.2.0/24", "::ffff:192.0.2.9", True),
    ("IpAddress", "aws:SourceIp", "192.0.2.0/24", None, False),
    ("NotIpAddress", "aws:SourceIp", "192.0.2.0/24", "192.0.3.1", True),
    ("NotIpAddress", "aws:SourceIp", ["192.0.2.0/24", "10.0.0.0/8"], "10.9.9.9", False),
    ("NotIpAddress", "aws:SourceIp", "192.0.2.0/24", None, True),
    # ARNs: each of the six parts on its own, wildcards in both operators
    ("ArnEquals", "aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic", "arn:aws:sns:us-east-1:111122223333:topic", True),
    ("ArnLike", "aws:SourceArn", "arn:aws:sns:*:111122223333:*", "arn:aws:sns:eu-west-1:111122223333:t", True),
    ("ArnLike", "aws:SourceArn", "arn:aws:sns:*:111122223333:*", "arn:aws:sqs:eu-west-1:111122223333:t", False),
    ("ArnLike", "aws:SourceArn", "arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c", True),
    ("ArnLike", "aws:SourceArn", "arn:aws:sns:*:111122223333:*", "not-an-arn", False),
    ("ArnNotLike", "aws:SourceArn", "arn:aws:sns:*:111122223333:*", "arn:aws:sns:x:444455556666:t", True),
    ("ArnNotEquals", "aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic", None, True),
    # Null
    ("Null", "aws:MultiFactorAuthAge", "true", None, True),
    ("Null", "aws:MultiFactorAuthAge", "true", "10", False),
    ("Null", "aws:MultiFactorAuthAge", "false", "10", True),
    ("Null", "aws:MultiFactorAuthAge", "false", None, False),
    ("Null", "aws:MultiFactorAuthAge", False, None, False),
    # IfExists
    ("StringEqualsIfExists", "s3:x-amz-acl", "private", None, True),
    ("StringEqualsIfExists", "s3:x-amz-acl", "private", "public-read", False),
    ("StringEqualsIfExists", "s3:x-amz-acl", "private", "private", True),
    ("StringNotLikeIfExists", "s3:x-amz-acl", "public*", "public-read", False),
    ("NumericLessThanIfExists", "s3:max-keys", "10", None, True),
    ("IpAddressIfExists", "aws:SourceIp", "10.0.0.0/8", None, True),
    ("ArnLikeIfExists", "aws:SourceArn", "arn:*:*:*:*:*", None, True),
    # set qualifiers
    ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], ["a"], True),
    ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], None, True),         # vacuously
    ("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b"], [], True),
    ("ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"], ["c", "b"], True),
    ("ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"], ["c", "d"], False),
    ("ForAnyValue:StringEquals", "aws:TagKeys", ["a", "b"], None, False),
    ("ForAnyValue:StringLike", "aws:TagKeys", "pro*", ["dev", "prod"], True),
    ("ForAllValues:StringLike", "aws:TagKeys", "pro*", ["dev", "prod"], False),
    ("ForAnyValue:StringNotEquals", "aws:TagKeys", ["a"], ["a", "b"], True),
    ("ForAllValues:StringNotEquals", "aws:TagKeys", ["a"], ["a", "b"], False),
    ("ForAllValues:StringNotEquals", "aws:TagKeys", ["a"], ["c", "b"], True),
    ("ForAnyValue:StringEqualsIfExists", "aws:TagKeys", "a", None, False),
    # a multivalued key without a qualifier: any value matching is a match
    ("StringEquals", "aws:TagKeys", "a", ["b", "a"], True),
    ("StringNotEquals", "aws:TagKeys", "a", ["b", "a"], False),
]


@pytest.mark.parametrize("operator,key,policy_values,request_value,expected", CASES,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_operator(operator, key, policy_values, request_value, expected):
    context = {} if request_value is None else {key: request_value}
    assert check(operator, key, policy_values, context) is expected


@pytest.mark.parametrize("name", ["StringEqualz", "stringequals", "Null IfExists", "NullIfExists",
                                  "ForAnyValue:Null", "ForAnyValue:", "IfExists", "ForEach:StringEquals",
                                  "StringEqualsIfExistsIfExists", ""])
def test_unknown_operators(name):
    assert parse_operator(name) is None


def test_operator_parts():
    op = parse_operator("ForAnyValue:StringNotLikeIfExists")
    assert (op.base, op.negated, op.if_exists, op.qualifier) == ("StringNotLike", True, True, "ForAnyValue")


def test_key_lookup_is_case_insensitive():
    assert check("StringEquals", "AWS:REFERER", "x", {"aws:Referer": "x"})
    assert check("StringEquals", "s3:existingobjecttag/Env", "prod", {"s3:ExistingObjectTag/env": "prod"})


def test_block_is_an_and_of_every_key():
    ops = [(parse_operator("StringEquals"), "aws:Referer", ["a"]),
           (parse_operator("Bool"), "aws:SecureTransport", ["true"])]
    assert evaluate_block(ops, {"aws:Referer": ["a"], "aws:SecureTransport": ["true"]})
    assert not evaluate_block(ops, {"aws:Referer": ["a"], "aws:SecureTransport": ["false"]})
    assert evaluate_block([], {})


def test_policy_variables_in_condition_values():
    ctx = {"aws:username": "alice", "s3:prefix": "home/alice/x"}
    assert check("StringLike", "s3:prefix", "home/${aws:username}/*", ctx)
    assert not check("StringLike", "s3:prefix", "home/${aws:userid}/*", ctx)            # unresolved
    assert not check("StringLike", "s3:prefix", "home/${aws:username}/*", ctx, variables=False)
    # a substituted value's wildcard characters are literal
    assert not check("StringLike", "s3:prefix", "home/${aws:username}", {"aws:username": "*", "s3:prefix": "home/x"})
    assert check("StringEquals", "s3:prefix", "${*}${?}${$}", {"s3:prefix": "*?$"})


def test_substitute():
    assert substitute("a/${aws:username}/b", {"aws:username": ["bob"]}) == "a/bob/b"
    assert substitute("${aws:username, 'anon'}", {}) == "anon"
    assert substitute("${aws:username}", {}) is None
    assert substitute("no variables", {}) == "no variables"
    assert substitute("${aws:username}", {"aws:username": ["a*"]}, escape_wildcards=True) == "a\\*"


@pytest.mark.parametrize("pattern,value,hit", [
    ("*", "", True), ("*", "anything/at/all", True), ("a*c", "abbbc", True), ("a*c", "abbbd", False),
    ("a?c", "abc", True), ("a?c", "ac", False), ("a.c", "abc", False), ("[ab]", "a", False),
    ("[ab]", "[ab]", True), ("a+", "aa", False),
])
def test_wildcard_match(pattern, value, hit):
    assert wildcard_match(pattern, value) is hit


@pytest.mark.parametrize("text,epoch", [
    ("2020-01-01T00:00:00Z", 1577836800), ("2020-01-01", 1577836800), ("2020-01-01T00:00:00", 1577836800),
    ("2020-01-01T01:00:00+01:00", 1577836800), ("20200101T000000Z", 1577836800), ("1577836800", 1577836800),
])
def test_parse_date(text, epoch):
    assert parse_date(text).timestamp() == epoch
