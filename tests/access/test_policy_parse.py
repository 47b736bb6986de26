"""PutBucketPolicy's validation: every refusal with S3's code, status and message.

Each row is a policy document for bucket ``bkt`` and what S3 answers (the messages are the ones
S3 returns, as quoted by people who met them against AWS)."""
from __future__ import annotations

import json

import pytest

from access.policy import MalformedPolicy, PolicyTooLarge, parse_policy, principal_lookups

BUCKET = "bkt"
OWNER = "111122223333"
OTHER = "444455556666"
CANONICAL = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
KNOWN = {OWNER, OTHER, CANONICAL, "arn:aws:iam::444455556666:user/alice",
         "arn:aws:iam::444455556666:role/reader"}


def known(value: str) -> bool:
    return value in KNOWN


def stmt(**fields):
    base = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::bkt/*"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def doc(*statements, **top):
    d = {"Version": "2012-10-17", "Statement": list(statements)}
    d.update(top)
    return json.dumps({k: v for k, v in d.items() if v is not None})


def refused(text) -> str:
    with pytest.raises(MalformedPolicy) as info:
        parse_policy(text, BUCKET, known)
    assert info.value.code == "MalformedPolicy" and info.value.status == 400
    return info.value.message


# (name, document, S3's message)
REFUSALS = [
    ("empty body", "", "Policies must be valid JSON and the first byte must be '{'"),
    ("array", "[]", "Policies must be valid JSON and the first byte must be '{'"),
    ("leading space", " " + doc(stmt()), "Policies must be valid JSON and the first byte must be '{'"),
    ("not json", "{Version: 1", "This policy contains invalid Json"),
    ("trailing garbage", doc(stmt()) + "x", "This policy contains invalid Json"),
    ("NaN is not JSON", doc(stmt(Condition={"NumericLessThan": {"s3:max-keys": 1}})).replace(": 1}", ": NaN}"),
     "This policy contains invalid Json"),
    ("not UTF-8", doc(stmt()).encode().replace(b"s3:GetObject", b"s3:Get\xffObject"), "This policy contains invalid Json"),
    ("bad version", doc(stmt(), Version="2020-01-01"), "The policy must contain a valid version string"),
    ("numeric version", doc(stmt(), Version=2012), "The policy must contain a valid version string"),
    ("no statement", json.dumps({"Version": "2012-10-17"}), "Missing required field Statement"),
    ("empty object", "{}", "Missing required field Statement"),
    ("plain words", "invalid json", "Policies must be valid JSON and the first byte must be '{'"),
    ("empty statement list", doc(), "Could not parse the policy: Statement is empty!"),
    ("unknown top field", doc(stmt(), Foo="bar"), "Unknown field Foo"),
    ("unknown statement field", doc(stmt(Foo="bar")), "Unknown field Foo"),
    ("statement not an object", json.dumps({"Statement": ["x"]}), "Invalid policy syntax."),
    ("statement a string", json.dumps({"Statement": "x"}), "Invalid policy syntax."),
    ("sid a number", doc(stmt(Sid=1)), "Invalid policy syntax."),
    ("id a number", doc(stmt(), Id=1), "Invalid policy syntax."),
    ("duplicate sid", doc(stmt(Sid="a"), stmt(Sid="a")), "Statement IDs (SID) in a single policy must be unique."),
    ("no effect", doc(stmt(Effect=None)), "Missing required field Effect"),
    ("bad effect", doc(stmt(Effect="hello")), "Invalid effect: hello"),
    ("lower-case effect", doc(stmt(Effect="allow")), "Invalid effect: allow"),
    ("effect not a string", doc(stmt(Effect=True)), "Invalid policy syntax."),
    ("no principal", doc(stmt(Principal=None)), "Missing required field Principal"),
    ("principal word", doc(stmt(Principal="everyone")), "Invalid principal in policy"),
    ("unknown account", doc(stmt(Principal={"AWS": "999999999999"})), "Invalid principal in policy"),
    ("unknown account root arn", doc(stmt(Principal={"AWS": "arn:aws:iam::999999999999:root"})),
     "Invalid principal in policy"),
    ("access key as principal", doc(stmt(Principal={"AWS": "AKIAIOSFODNN7EXAMPLE"})), "Invalid principal in policy"),
    ("wildcard account arn", doc(stmt(Principal={"AWS": "arn:aws:iam::*:root"})), "Invalid principal in policy"),
    ("unknown user", doc(stmt(Principal={"AWS": "arn:aws:iam::444455556666:user/mallory"})),
     "Invalid principal in policy"),
    ("cloudfront OAI that does not exist",
     doc(stmt(Principal={"AWS": "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E1"})),
     "Invalid principal in policy"),
    ("unknown canonical id", doc(stmt(Principal={"CanonicalUser": "ab" * 32})), "Invalid principal in policy"),
    ("malformed canonical id", doc(stmt(Principal={"CanonicalUser": "abc"})), "Invalid principal in policy"),
    ("unknown principal type", doc(stmt(Principal={"Users": "*"})), "Invalid principal in policy"),
    ("bad service", doc(stmt(Principal={"Service": "not a service"})), "Invalid principal in policy"),
    ("empty principal", doc(stmt(Principal={})), "Missing required field Principal cannot be empty!"),
    ("principal number", doc(stmt(Principal={"AWS": 111122223333})), "Invalid policy syntax."),
    ("principal list", doc(stmt(Principal=["*"])), "Invalid policy syntax."),
    ("empty principal list", doc(stmt(Principal={"AWS": []})), "Missing required field Principal cannot be empty!"),
    ("allow with not-principal", doc(stmt(Principal=None, NotPrincipal={"AWS": OWNER})),
     "Invalid principal in policy"),
    ("both principal and not-principal", doc(stmt(Effect="Deny", NotPrincipal={"AWS": OWNER})),
     "Statement/policy already has instance of Principal"),
    ("no action", doc(stmt(Action=None)), "Missing required field Action"),
    ("action of another service", doc(stmt(Action="ec2:RunInstances")), "Policy has invalid action"),
    ("action without service", doc(stmt(Action="GetObject")), "Policy has invalid action"),
    ("no such s3 action", doc(stmt(Action="s3:GetObjectt")), "Policy has invalid action"),
    ("wildcard matching nothing", doc(stmt(Action="s3:Frobnicate*")), "Policy has invalid action"),
    ("object lock action S3 does not have", doc(stmt(Action="s3:PutObjectLockConfiguration",
                                                     Resource="arn:aws:s3:::bkt")), "Policy has invalid action"),
    ("delete ownership controls is put's permission", doc(stmt(Action="s3:DeleteBucketOwnershipControls",
                                                               Resource="arn:aws:s3:::bkt")), "Policy has invalid action"),
    ("empty action list", doc(stmt(Action=[])), "Missing required field Action cannot be empty!"),
    ("empty resource list", doc(stmt(Resource=[])), "Missing required field Resource cannot be empty!"),
    ("null action", doc(stmt()).replace('"s3:GetObject"', "null"), "Invalid policy syntax."),
    ("action a number", doc(stmt(Action=5)), "Invalid policy syntax."),
    ("both action and not-action", doc(stmt(NotAction="s3:PutObject")),
     "Statement/policy already has instance of Action"),
    ("both resource and not-resource", doc(stmt(NotResource="arn:aws:s3:::bkt/x")),
     "Statement/policy already has instance of Resource"),
    ("a name twice in a statement", doc(stmt()).replace('"Effect": "Allow"', '"Effect": "Allow", "Effect": "Deny"'),
     "Statement/policy already has instance of Effect"),
    ("a name twice at the top", doc(stmt()).replace('{"Version"', '{"Version": "2012-10-17", "Version"'),
     "Statement/policy already has instance of Version"),
    ("resource a number", doc(stmt(Resource=5)), "Invalid policy syntax."),
    ("no resource", doc(stmt(Resource=None)), "Missing required field Resource"),
    ("resource star", doc(stmt(Resource="*")), "Policy has invalid resource"),
    ("other bucket", doc(stmt(Resource="arn:aws:s3:::other/*")), "Policy has invalid resource"),
    ("bucket name prefix", doc(stmt(Resource="arn:aws:s3:::bktx/*")), "Policy has invalid resource"),
    ("not an arn", doc(stmt(Resource="bkt/*")), "Policy has invalid resource"),
    ("wildcard bucket that cannot be this one", doc(stmt(Resource="arn:aws:s3:::x*/*")), "Policy has invalid resource"),
    ("object pattern of another bucket", doc(stmt(Resource="arn:aws:s3:::bk?/x", Action="s3:ListBucket")),
     "Action does not apply to any resource(s) in statement"),
    ("not-resource elsewhere", doc(stmt(Resource=None, NotResource="arn:aws:s3:::other/*")),
     "Policy has invalid resource"),
    ("object action on the bucket", doc(stmt(Action="s3:PutObject", Resource="arn:aws:s3:::bkt")),
     "Action does not apply to any resource(s) in statement"),
    ("bucket action on objects", doc(stmt(Action="s3:ListBucket", Resource="arn:aws:s3:::bkt/*")),
     "Action does not apply to any resource(s) in statement"),
    ("account action", doc(stmt(Action="s3:ListAllMyBuckets", Resource="arn:aws:s3:::bkt")),
     "Action does not apply to any resource(s) in statement"),
    ("one of two actions applies to nothing",
     doc(stmt(Action=["s3:GetObject", "s3:ListBucket"], Resource="arn:aws:s3:::bkt/*")),
     "Action does not apply to any resource(s) in statement"),
    ("unknown operator", doc(stmt(Condition={"StringEqualz": {"aws:Referer": "x"}})),
     "Invalid Condition type : StringEqualz"),
    ("operator case matters", doc(stmt(Condition={"stringequals": {"aws:Referer": "x"}})),
     "Invalid Condition type : stringequals"),
    ("Null has no IfExists", doc(stmt(Condition={"NullIfExists": {"aws:Referer": "true"}})),
     "Invalid Condition type : NullIfExists"),
    ("unknown qualifier", doc(stmt(Condition={"ForSomeValues:StringEquals": {"aws:Referer": "x"}})),
     "Invalid Condition type : ForSomeValues:StringEquals"),
    ("unknown s3 key", doc(stmt(Condition={"StringEquals": {"s3:FakeKeyDoesNotExist": "x"}})),
     "Policy has an invalid condition key"),
    ("s3:VersionStatus is no condition key", doc(stmt(Action="s3:PutBucketVersioning", Resource="arn:aws:s3:::bkt",
                                                      Condition={"StringEquals": {"s3:VersionStatus": "Enabled"}})),
     "Policy has an invalid condition key"),
    ("key of another service", doc(stmt(Condition={"StringEquals": {"ec2:Region": "x"}})),
     "Policy has an invalid condition key"),
    ("prefix with GetObject", doc(stmt(Condition={"StringEquals": {"s3:prefix": "home/"}})),
     "Conditions do not apply to combination of actions and resources in statement"),
    ("x-amz-acl with GetObject and PutObject",
     doc(stmt(Action=["s3:GetObject", "s3:PutObject"], Condition={"StringEquals": {"s3:x-amz-acl": "private"}})),
     "Conditions do not apply to combination of actions and resources in statement"),
    ("ExistingObjectTag with PutObject",
     doc(stmt(Action="s3:PutObject", Condition={"StringEquals": {"s3:ExistingObjectTag/env": "prod"}})),
     "Conditions do not apply to combination of actions and resources in statement"),
    ("ExistingObjectTag with GetObjectRetention",
     doc(stmt(Action="s3:GetObjectRetention", Condition={"StringEquals": {"s3:ExistingObjectTag/env": "prod"}})),
     "Conditions do not apply to combination of actions and resources in statement"),
    ("RequestObjectTag with PutObjectAcl",
     doc(stmt(Action="s3:PutObjectAcl", Condition={"StringEquals": {"s3:RequestObjectTag/env": "prod"}})),
     "Conditions do not apply to combination of actions and resources in statement"),
    ("bad source ip", doc(stmt(Condition={"IpAddress": {"aws:SourceIp": "300.1.2.3/24"}})),
     "Invalid IP address in Conditions"),
    ("condition not an object", doc(stmt(Condition=["x"])), "Invalid policy syntax."),
    ("condition block not an object", doc(stmt(Condition={"StringEquals": "x"})), "Invalid policy syntax."),
    ("condition values an object", doc(stmt(Condition={"StringEquals": {"aws:Referer": {"a": 1}}})),
     "Invalid policy syntax."),
    ("condition value null", doc(stmt(Condition={"StringEquals": {"aws:Referer": None}})),
     "Invalid policy syntax."),
]


@pytest.mark.parametrize("name,text,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_put_bucket_policy_refuses_with_s3_message(name, text, message):
    assert refused(text) == message


def compact(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, separators=(",", ":"))


def test_policy_over_20_kb_normalized_is_refused():
    base = compact(stmt(Sid=""))
    text = compact(stmt(Sid="x" * (20 * 1024 - len(base) + 1)))
    assert len(text.encode()) == 20 * 1024 + 1
    with pytest.raises(PolicyTooLarge) as info:
        parse_policy(text, BUCKET, known)
    assert isinstance(info.value, MalformedPolicy)
    assert (info.value.code, info.value.status) == ("MalformedPolicy", 400)
    assert info.value.message == "Normalized policy document exceeds the maximum allowed size of 20480 bytes"


def test_policy_of_exactly_20_kb_normalized_is_accepted():
    base = compact(stmt(Sid=""))
    text = compact(stmt(Sid="x" * (20 * 1024 - len(base))))
    assert len(text.encode()) == 20 * 1024
    assert parse_policy(text, BUCKET, known).statements[0].sid.startswith("x")


def test_whitespace_does_not_count_toward_20_kb():
    statements = [stmt(Sid=f"s{i}", Resource=f"arn:aws:s3:::bkt/prefix-{i}/*") for i in range(60)]
    text = json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=12)
    assert len(text.encode()) > 20 * 1024 > len(compact(*statements).encode())
    assert len(parse_policy(text, BUCKET, known).statements) == 60


def test_multibyte_characters_count_as_their_utf8_bytes():
    base = compact(stmt(Sid=""))
    room = 20 * 1024 - len(base)
    parse_policy(compact(stmt(Sid="é" * (room // 2))), BUCKET, known)
    with pytest.raises(PolicyTooLarge):
        parse_policy(compact(stmt(Sid="é" * (room // 2 + 1))), BUCKET, known)


def test_a_huge_body_is_refused_before_parsing():
    with pytest.raises(PolicyTooLarge):
        parse_policy("{" + " " * (1024 * 1024), BUCKET, known)


ACCEPTED = [
    ("statement as one object", json.dumps({"Version": "2012-10-17", "Statement": stmt()})),
    ("no version: 2008-10-17", json.dumps({"Statement": [stmt()]})),
    ("2008 version", doc(stmt(), Version="2008-10-17")),
    ("id", doc(stmt(), Id="PolicyForCloudFront")),
    ("account id", doc(stmt(Principal={"AWS": OTHER}))),
    ("account root arn list", doc(stmt(Principal={"AWS": [f"arn:aws:iam::{OTHER}:root", OWNER]}))),
    ("aws star", doc(stmt(Principal={"AWS": "*"}))),
    ("aws star list", doc(stmt(Principal={"AWS": ["*"]}))),
    ("user arn", doc(stmt(Principal={"AWS": "arn:aws:iam::444455556666:user/alice"}))),
    ("role arn", doc(stmt(Principal={"AWS": "arn:aws:iam::444455556666:role/reader"}))),
    ("canonical user", doc(stmt(Principal={"CanonicalUser": CANONICAL}))),
    ("service", doc(stmt(Principal={"Service": "logging.s3.amazonaws.com"}, Action="s3:PutObject"))),
    ("not principal", doc(stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": OWNER}))),
    ("action case-insensitive", doc(stmt(Action="S3:getobject"))),
    ("action wildcard", doc(stmt(Action="s3:Get*", Resource=["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*"]))),
    ("action star", doc(stmt(Action="*", Resource="arn:aws:s3:::bkt/*"))),
    ("s3 star on the bucket", doc(stmt(Action="s3:*", Resource="arn:aws:s3:::bkt"))),
    ("not action", doc(stmt(Action=None, NotAction="s3:DeleteObject"))),
    ("not resource", doc(stmt(Effect="Deny", Resource=None, NotResource="arn:aws:s3:::bkt/public/*"))),
    ("every bucket (s3-tests' another-bucket policy)",
     doc(stmt(Action="s3:ListBucket", Resource=["arn:aws:s3:::*", "arn:aws:s3:::*/*"]))),
    ("bucket wildcard", doc(stmt(Action="s3:*", Resource="arn:aws:s3:::bkt*"))),
    ("single-character wildcard in the bucket", doc(stmt(Resource="arn:aws:s3:::b?t/*"))),
    ("object key pattern", doc(stmt(Resource="arn:aws:s3:::bkt/home/${aws:username}/*"))),
    ("list bucket with prefix", doc(stmt(Action="s3:ListBucket", Resource="arn:aws:s3:::bkt",
                                         Condition={"StringLike": {"s3:prefix": "home/*"}}))),
    ("prefix with wildcard action", doc(stmt(Action="s3:List*", Resource="arn:aws:s3:::bkt",
                                             Condition={"StringEquals": {"s3:prefix": ""}}))),
    ("global keys", doc(stmt(Condition={"Bool": {"aws:SecureTransport": "true"},
                                        "IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:DB8::/32"]},
                                        "StringLike": {"aws:Referer": "https://example.com/*"},
                                        "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                                        "NumericLessThan": {"s3:TlsVersion": 1.2}}))),
    ("any aws: key", doc(stmt(Condition={"Bool": {"aws:xyz": "true"}}))),
    ("key case-insensitive", doc(stmt(Condition={"IpAddress": {"AWS:SOURCEIP": "10.0.0.1"}}))),
    ("qualifiers", doc(stmt(Action="s3:PutObject",
                            Condition={"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["a", "b"]},
                                       "ForAnyValue:StringLikeIfExists": {"aws:TagKeys": "x*"}}))),
    ("bool as json", doc(stmt(Condition={"Bool": {"aws:SecureTransport": False}}))),
    ("existing tag on GetObject", doc(stmt(Condition={"StringEquals": {"s3:ExistingObjectTag/env": "prod"}}))),
    ("x-amz-acl on PutObject", doc(stmt(Action="s3:PutObject",
                                        Condition={"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}))),
    ("sse on PutObject", doc(stmt(Effect="Deny", Action="s3:PutObject",
                                  Condition={"Null": {"s3:x-amz-server-side-encryption": "true"}}))),
    ("empty sid twice", doc(stmt(Sid=""), stmt(Sid=""))),
]


@pytest.mark.parametrize("name,text", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_put_bucket_policy_accepts(name, text):
    policy = parse_policy(text, BUCKET, known)
    assert policy.text == text
    assert policy.statements


def test_bytes_are_accepted_and_text_is_kept_as_given():
    text = doc(stmt())
    policy = parse_policy(text.encode(), BUCKET)
    assert policy.text == text and policy.version == "2012-10-17"


def test_without_known_principal_any_well_formed_account_is_accepted():
    assert parse_policy(doc(stmt(Principal={"AWS": "999999999999"})), BUCKET).statements
    assert refused_without_lookup(doc(stmt(Principal={"AWS": "bob"}))) == "Invalid principal in policy"


def refused_without_lookup(text):
    with pytest.raises(MalformedPolicy) as info:
        parse_policy(text, BUCKET)
    return info.value.message


def test_known_principal_is_asked_with_account_canonical_id_and_arn():
    asked = []

    def lookup(value):
        asked.append(value)
        return True

    parse_policy(doc(stmt(Principal={"AWS": [OTHER, f"arn:aws:iam::{OWNER}:root",
                                             "arn:aws:iam::444455556666:user/alice"],
                                     "CanonicalUser": CANONICAL})), BUCKET, lookup)
    assert asked == [OTHER, OWNER, OTHER, "arn:aws:iam::444455556666:user/alice", CANONICAL]


# ---- bad input never escapes as anything but MalformedPolicy -------------------------------

_ODD_VALUES = [None, True, False, 0, -1, 1.5, "", "*", "x", "${aws:username}", [], [None], [""], ["*"],
               {}, {"AWS": None}, {"a": {"b": []}}, "arn:aws:s3:::bkt/*", "s3:*", "\u00e9\ud7ff",
               "10.0.0.0/8", "2024-01-01T00:00:00Z", [1, 2], {"StringEquals": {"aws:Referer": [None]}}]


def _mutations(node, rng):
    """Copies of a JSON document with one value somewhere replaced by an odd one."""
    import copy
    doc_ = copy.deepcopy(node)
    paths = []

    def walk(n, path):
        paths.append(path)
        if isinstance(n, dict):
            for k, v in n.items():
                walk(v, path + [k])
        elif isinstance(n, list):
            for i, v in enumerate(n):
                walk(v, path + [i])
    walk(doc_, [])
    path = rng.choice(paths[1:])
    target = doc_
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = rng.choice(_ODD_VALUES)
    return doc_


def test_mutated_policies_raise_only_malformed_policy_and_evaluate_safely():
    import random

    from access.model import ANONYMOUS, AccessRequest, Principal
    rng = random.Random(11)
    seeds = [json.loads(text) for _, text in ACCEPTED]
    contexts = [{}, {"aws:SourceIp": ["not an ip"]}, {"aws:CurrentTime": ["yesterday"]},
                {"s3:max-keys": ["many"]}, {"aws:username": ["*"]}, {"aws:SecureTransport": ["maybe"]}]
    accepted = refused = 0
    for _ in range(1500):
        mutated = _mutations(rng.choice(seeds), rng)
        try:
            policy = parse_policy(json.dumps(mutated), BUCKET, known)
        except MalformedPolicy as e:
            assert e.code == "MalformedPolicy" and e.status == 400 and e.message
            refused += 1
            continue
        accepted += 1
        for ctx in contexts:
            for who in (ANONYMOUS, Principal.account(OTHER, CANONICAL)):
                assert policy.evaluate(AccessRequest(who, "s3:GetObject", "arn:aws:s3:::bkt/k", ctx)) in (
                    "Allow", "Deny", None)
        assert policy.is_public() in (True, False)
    assert accepted > 50 and refused > 500


def test_principal_lookups_lists_what_known_principal_would_be_asked():
    text = doc(stmt(Principal={"AWS": [OTHER, f"arn:aws:iam::{OWNER}:root", "arn:aws:iam::444455556666:user/alice", "*"],
                               "CanonicalUser": CANONICAL.upper(), "Service": "s3.amazonaws.com"}))
    found = principal_lookups(text)
    assert found == {OTHER, OWNER, "arn:aws:iam::444455556666:user/alice", CANONICAL}
    asked = []
    parse_policy(text, BUCKET, lambda v: asked.append(v) or v in found)
    assert set(asked) <= found
    assert principal_lookups("not json") == set() and principal_lookups('{"Statement": 5}') == set()
