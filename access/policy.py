"""The IAM policy language: parsing a bucket policy as S3's PutBucketPolicy validates it, and
evaluating it for one request.

``parse_policy(text, bucket, known_principal)`` returns a ``Policy`` or raises:

- ``PolicyTooLarge`` for a document over 20 KB (20,480 bytes) once normalized (whitespace
  between tokens dropped): S3 answers it 400 ``MalformedPolicy``, "Normalized policy document
  exceeds the maximum allowed size of 20480 bytes" (a subclass of ``MalformedPolicy``);
- ``MalformedPolicy`` (400 ``MalformedPolicy``) with S3's message for everything else (see
  the ``M_*`` constants below).

``Policy.evaluate(request)`` is ``"Deny"`` when a matching statement denies (an explicit deny
wins), ``"Allow"`` when one allows and none denies, ``None`` when no statement applies.
``Policy.is_public()`` is S3's "public" for Block Public Access and GetBucketPolicyStatus.

A statement matches a request when its Principal (or NotPrincipal), Action (or NotAction),
Resource (or NotResource) and every Condition match. ``*`` and ``?`` are wildcards in actions
(compared case-insensitively) and resources (case-sensitively). With Version 2012-10-17,
``${...}`` policy variables in resources and condition values are replaced from the request's
context (``${*}``, ``${?}``, ``${$}`` are the literal characters); with 2008-10-17 (the
default when Version is absent) they are plain text.

Principals: ``"*"`` and ``{"AWS": "*"}`` match everyone, anonymous included; an account
(``"123456789012"`` or ``arn:aws:iam::123456789012:root``) matches every principal of that
account; an IAM user or role ARN matches that ARN; ``{"CanonicalUser": id}`` matches that
account's canonical id; anonymous requests match nothing but the wildcard.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

from access import conditions as cond
from access import s3_actions
from access.model import AccessRequest

MAX_POLICY_BYTES = 20 * 1024          # of the normalized document (whitespace dropped)
MAX_RAW_BYTES = 16 * MAX_POLICY_BYTES  # a body this big is refused before it is parsed
VERSIONS = ("2012-10-17", "2008-10-17")
DEFAULT_VERSION = "2008-10-17"

# S3's messages (the code is MalformedPolicy, the status 400, for all of them). Where each was
# seen: [S3] quoted from S3's own answers (users' reports, recordings against S3);
# [3p] another S3 implementation's claim of what S3 says, not confirmed against S3 here.
M_FIRST_BYTE = "Policies must be valid JSON and the first byte must be '{'"                # [S3]
M_INVALID_JSON = "This policy contains invalid Json"                                     # [3p]
M_VERSION = "The policy must contain a valid version string"                             # [3p]
M_NO_STATEMENT = "Missing required field Statement"                                      # [S3]
M_EMPTY_STATEMENT = "Could not parse the policy: Statement is empty!"                    # [3p]
M_DUPLICATE_SID = "Statement IDs (SID) in a single policy must be unique."               # IAM's
M_PRINCIPAL = "Invalid principal in policy"                                              # [S3]
M_EMPTY_PRINCIPAL = "Missing required field Principal cannot be empty!"                  # [S3]
M_ACTION = "Policy has invalid action"                                                   # [S3]
M_RESOURCE = "Policy has invalid resource"                                               # [S3]
M_ACTION_RESOURCE = "Action does not apply to any resource(s) in statement"              # [S3]
M_CONDITION_KEY = "Policy has an invalid condition key"                                  # [S3]
M_CONDITION_COMBINATION = ("Conditions do not apply to combination of actions and resources "  # [S3]
                           "in statement")
M_CONDITION_IP = "Invalid IP address in Conditions"                                      # [3p]
M_SYNTAX = "Invalid policy syntax."                                  # [S3] ("Action": null)
M_TOO_LARGE = "Normalized policy document exceeds the maximum allowed size of 20480 bytes"  # [S3]


# [S3] for Principal, Effect and Statement; [3p] for the other names; the rest below: [3p].
def m_missing(name: str) -> str:
    return f"Missing required field {name}"


def m_empty(name: str) -> str:
    return f"Missing required field {name} cannot be empty!"


def m_duplicate(name: str) -> str:
    return f"Statement/policy already has instance of {name}"


def m_unknown_field(name: str) -> str:
    return f"Unknown field {name}"


def m_effect(value) -> str:
    return f"Invalid effect: {value}"


def m_condition_type(name: str) -> str:
    return f"Invalid Condition type : {name}"


class PolicyError(Exception):
    """A policy S3 refuses: ``code``, ``status`` and ``message`` as S3 answers."""
    code = "MalformedPolicy"
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class MalformedPolicy(PolicyError):
    code = "MalformedPolicy"
    status = 400


class PolicyTooLarge(MalformedPolicy):
    """Over 20 KB once normalized (S3 answers it as a MalformedPolicy)."""
    code = "MalformedPolicy"
    status = 400

    def __init__(self, message: str = M_TOO_LARGE):
        super().__init__(message)


_TOP_FIELDS = ("Version", "Id", "Statement")
_STATEMENT_FIELDS = ("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                     "Resource", "NotResource", "Condition")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_CANONICAL_ID = re.compile(r"^[0-9a-fA-F]{64}$")
_IAM_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:(iam|sts)::(\d{12}):(.+)$")
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.amazonaws\.com(\.cn)?$")
_FEDERATED = re.compile(r"^(arn:aws(?:-cn|-us-gov)?:iam::\d{12}:(saml|oidc)-provider/.+"
                        r"|cognito-identity\.amazonaws\.com|www\.amazon\.com"
                        r"|graph\.facebook\.com|accounts\.google\.com|[a-z0-9.-]+\.[a-z]{2,}(/.*)?)$")
_S3_ARN_PREFIX = "arn:aws:s3:::"


# ---- the parsed form ---------------------------------------------------------------------

@dataclass(frozen=True)
class PrincipalEntry:
    kind: str      # "*" | "AWS" | "CanonicalUser" | "Service" | "Federated"
    value: str     # "*", an account root ARN, a user/role ARN, a canonical id, a service name

    @property
    def wildcard(self) -> bool:
        return self.value == "*"


@dataclass
class Statement:
    sid: str | None
    effect: str                                        # "Allow" | "Deny"
    principals: list[PrincipalEntry] | None = None
    not_principals: list[PrincipalEntry] | None = None
    actions: list[str] | None = None
    not_actions: list[str] | None = None
    resources: list[str] | None = None
    not_resources: list[str] | None = None
    conditions: list[tuple[cond.Operator, str, list]] = field(default_factory=list)

    def matches(self, request: AccessRequest, *, variables: bool = True) -> bool:
        return (self.principal_matches(request)
                and self.action_matches(request.action)
                and self.resource_matches(request.resource, request.context, variables)
                and cond.evaluate_block(self.conditions, request.context, variables=variables))

    def principal_matches(self, request: AccessRequest) -> bool:
        if self.principals is not None:
            return any(_principal_match(e, request) for e in self.principals)
        return not any(_principal_match(e, request) for e in self.not_principals or ())

    def action_matches(self, action: str) -> bool:
        if self.actions is not None:
            return any(cond.wildcard_match(p, action, ignore_case=True) for p in self.actions)
        return not any(cond.wildcard_match(p, action, ignore_case=True) for p in self.not_actions or ())

    def resource_matches(self, resource: str, context: dict, variables: bool = True) -> bool:
        def hit(pattern: str) -> bool:
            if variables:
                sub = cond.substitute(pattern, context, escape_wildcards=True)
                return sub is not None and cond.wildcard_match(sub, resource, escaped=True)
            return cond.wildcard_match(pattern, resource)
        if self.resources is not None:
            return any(hit(p) for p in self.resources)
        return not any(hit(p) for p in self.not_resources or ())

    def is_public(self) -> bool:
        """S3's "public" for one statement: an Allow to a wildcard principal (or to everyone but
        some, with NotPrincipal) that no condition pins to fixed values of the keys AWS names."""
        if self.effect != "Allow":
            return False
        if self.not_principals is not None:
            broad = True
        else:
            broad = any(e.wildcard for e in self.principals or ())
        if not broad:
            return False
        return not any(_pins(op, key, values) for op, key, values in self.conditions)


def _principal_match(entry: PrincipalEntry, request: AccessRequest) -> bool:
    p = request.principal
    if entry.wildcard:
        return entry.kind in ("*", "AWS")
    if p.anonymous:
        return False
    if entry.kind == "AWS":
        m = _IAM_ARN.match(entry.value)
        if m and m.group(3) == "root":
            return p.account_id == m.group(2)
        return p.arn is not None and p.arn == entry.value
    if entry.kind == "CanonicalUser":
        return p.canonical_id is not None and p.canonical_id.lower() == entry.value.lower()
    return p.arn is not None and p.arn == entry.value        # Service / Federated principals


# Condition keys whose fixed values make a wildcard grant non-public ("The meaning of public"
# in the S3 User Guide; aws:userid counts outside the pattern "AROLEID:*").
_PINNING_KEYS = frozenset(k.lower() for k in (
    "aws:SourceArn", "aws:SourceVpc", "aws:SourceVpce", "aws:SourceOwner", "aws:SourceAccount",
    "aws:PrincipalAccount", "aws:PrincipalArn", "aws:PrincipalOrgID", "aws:userid",
    "s3:x-amz-server-side-encryption-aws-kms-key-id", "s3:DataAccessPointArn",
    "s3:DataAccessPointAccount",
))
_PINNING_FAMILIES = ("string", "string_ci", "string_like", "arn")


def _fixed(value) -> bool:
    text = cond.value_text(value)
    return text is not None and text != "" and not any(c in text for c in "*?") and "${" not in text


def _pins(op: cond.Operator, key: str, values: list) -> bool:
    """Whether ``{op: {key: values}}`` limits a grant to fixed values of a restricting key."""
    if op.negated or op.if_exists or op.qualifier == "ForAllValues" or not values:
        return False
    lowered = key.lower()
    if lowered == "aws:sourceip":
        return op.family == "ip" and all(_narrow_cidr(v) for v in values)
    if lowered not in _PINNING_KEYS or op.family not in _PINNING_FAMILIES:
        return False
    return all(_fixed(v) for v in values)       # "AROLEID:*" (any session of a role) is not


def _narrow_cidr(value) -> bool:
    """A CIDR S3 accepts as restricting: a fixed network narrower than /8 (IPv4) or /32
    (IPv6); ``0.0.0.0/0`` and other ranges that wide are as good as everyone."""
    text = cond.value_text(value)
    if text is None or "${" in text:
        return False
    net = cond.parse_network(text)
    if net is None:
        return False
    return net.prefixlen >= (8 if net.version == 4 else 32)


@dataclass
class Policy:
    text: str
    version: str
    id: str | None
    statements: list[Statement]

    @property
    def variables(self) -> bool:
        return self.version == "2012-10-17"

    def evaluate(self, request: AccessRequest, *, restrict_public_to: str | None = None) -> str | None:
        """``"Deny"`` (an explicit deny matched), ``"Allow"``, or None (nothing applies).

        ``restrict_public_to`` (the bucket owner's account id, when the bucket's
        RestrictPublicBuckets is on): if this policy is public, its Allow statements grant
        nothing to anyone outside that account, anonymous callers included ("public and
        cross-account access within any public bucket policy, including non-public delegation
        to specific accounts, is blocked"); its Deny statements still apply."""
        request = with_principal_keys(request)
        allow_blocked = (restrict_public_to is not None
                         and request.principal.account_id != restrict_public_to
                         and self.is_public())
        result = None
        for statement in self.statements:
            if statement.matches(request, variables=self.variables):
                if statement.effect == "Deny":
                    return "Deny"
                if not allow_blocked:
                    result = "Allow"
        return result

    def is_public(self) -> bool:
        return any(s.is_public() for s in self.statements)


def normalized_size(doc) -> int:
    """The size S3 holds to the 20 KB limit: the document's UTF-8 bytes without whitespace
    between its tokens."""
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def principal_keys(principal) -> dict[str, list[str]]:
    """The global condition keys AWS derives from who asks: ``aws:PrincipalType``
    (``Anonymous``, ``Account`` for an account's own keys, ``User``, ``AssumedRole``...),
    ``aws:PrincipalAccount``, ``aws:PrincipalArn``, ``aws:userid`` and, for IAM users,
    ``aws:username``."""
    if principal.anonymous:
        return {"aws:PrincipalType": ["Anonymous"], "aws:userid": ["anonymous"]}
    keys = {"aws:PrincipalAccount": [principal.account_id]}
    arn = principal.arn or f"arn:aws:iam::{principal.account_id}:root"
    keys["aws:PrincipalArn"] = [arn]
    m = _IAM_ARN.match(arn)
    rest = m.group(3) if m else "root"
    if rest == "root":
        keys["aws:PrincipalType"] = ["Account"]
        keys["aws:userid"] = [principal.account_id]
    elif rest.startswith("user/"):
        keys["aws:PrincipalType"] = ["User"]
        keys["aws:username"] = [rest.rsplit("/", 1)[-1]]
    elif rest.startswith("assumed-role/"):
        keys["aws:PrincipalType"] = ["AssumedRole"]
    elif rest.startswith("federated-user/"):
        keys["aws:PrincipalType"] = ["FederatedUser"]
    return keys


def with_principal_keys(request: AccessRequest) -> AccessRequest:
    """``request`` with the principal's global keys added where its context lacks them."""
    derived = principal_keys(request.principal)
    present = {k.lower() for k in request.context}
    missing = {k: v for k, v in derived.items() if k.lower() not in present}
    if not missing:
        return request
    return AccessRequest(request.principal, request.action, request.resource,
                         {**missing, **request.context})


def principal_lookups(text: str | bytes) -> set[str]:
    """What ``parse_policy`` would ask ``known_principal`` about this document (account ids,
    lower-case canonical ids, IAM user/role ARNs), so that a caller whose account store is
    asynchronous can look them up first and pass ``found.__contains__``. A document that does
    not parse gives what could be read of it."""
    try:
        doc = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return set()
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    found: set[str] = set()
    for st in statements if isinstance(statements, list) else ():
        if not isinstance(st, dict):
            continue
        for element in ("Principal", "NotPrincipal"):
            value = st.get(element)
            if not isinstance(value, dict):
                continue
            for kind, ids in value.items():
                for one in ids if isinstance(ids, list) else [ids]:
                    if not isinstance(one, str):
                        continue
                    one = one.strip()
                    if kind == "CanonicalUser":
                        found.add(one.lower())
                    elif kind == "AWS" and _ACCOUNT_ID.match(one):
                        found.add(one)
                    elif kind == "AWS" and (m := _IAM_ARN.match(one)):
                        found.add(m.group(2))
                        if m.group(3) != "root":
                            found.add(one)
    return found


# ---- parsing -------------------------------------------------------------------------------

def parse_policy(text: str | bytes, bucket: str,
                 known_principal: Callable[[str], bool] | None = None) -> Policy:
    """Validate a bucket policy for ``bucket`` as PutBucketPolicy does.

    ``known_principal(value)`` says whether a principal exists: it is asked with a 12-digit
    account id (for ``"123456789012"`` and ``arn:aws:iam::123456789012:root``), with a
    canonical user id (``{"CanonicalUser": ...}``) and with a full IAM user/role ARN. None
    accepts every well-formed principal."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if not raw or raw[:1] != b"{":
        raise MalformedPolicy(M_FIRST_BYTE)
    if len(raw) > MAX_RAW_BYTES:
        raise PolicyTooLarge()
    try:
        decoded = raw.decode("utf-8")
        doc = json.loads(decoded, object_pairs_hook=_unique_names, parse_constant=_not_json)
    except _DuplicateName as dup:
        raise MalformedPolicy(m_duplicate(dup.name)) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedPolicy(M_INVALID_JSON) from None
    if not isinstance(doc, dict):
        raise MalformedPolicy(M_FIRST_BYTE)
    if normalized_size(doc) > MAX_POLICY_BYTES:
        raise PolicyTooLarge()
    for name in doc:
        if name not in _TOP_FIELDS:
            raise MalformedPolicy(m_unknown_field(name))

    version = doc.get("Version", DEFAULT_VERSION)
    if version not in VERSIONS:
        raise MalformedPolicy(M_VERSION)
    policy_id = doc.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicy(M_SYNTAX)

    if "Statement" not in doc:
        raise MalformedPolicy(M_NO_STATEMENT)
    raw_statements = doc["Statement"]
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise MalformedPolicy(M_SYNTAX)
    if not raw_statements:
        raise MalformedPolicy(M_EMPTY_STATEMENT)

    statements = []
    sids: set[str] = set()
    for raw_statement in raw_statements:
        statement = _parse_statement(raw_statement, bucket, known_principal)
        if statement.sid:
            if statement.sid in sids:
                raise MalformedPolicy(M_DUPLICATE_SID)
            sids.add(statement.sid)
        statements.append(statement)
    return Policy(decoded, version, policy_id, statements)


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")       # NaN, Infinity: Python's extensions


class _DuplicateName(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _unique_names(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose names are unique (a name given twice: "already has instance")."""
    out: dict = {}
    for name, value in pairs:
        if name in out:
            raise _DuplicateName(name)
        out[name] = value
    return out


def _parse_statement(raw, bucket: str, known_principal) -> Statement:
    if not isinstance(raw, dict):
        raise MalformedPolicy(M_SYNTAX)
    for name in raw:
        if name not in _STATEMENT_FIELDS:
            raise MalformedPolicy(m_unknown_field(name))

    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicy(M_SYNTAX)

    if "Effect" not in raw:
        raise MalformedPolicy(m_missing("Effect"))
    effect = raw["Effect"]
    if not isinstance(effect, str):
        raise MalformedPolicy(M_SYNTAX)
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(m_effect(effect))

    st = Statement(sid=sid, effect=effect)

    # Principal
    if "Principal" in raw and "NotPrincipal" in raw:
        raise MalformedPolicy(m_duplicate("Principal"))
    if "Principal" in raw:
        st.principals = _parse_principal(raw["Principal"], known_principal)
    elif "NotPrincipal" in raw:
        st.not_principals = _parse_principal(raw["NotPrincipal"], known_principal)
        if effect == "Allow":               # NotPrincipal must be used with "Effect": "Deny"
            raise MalformedPolicy(M_PRINCIPAL)
    else:
        raise MalformedPolicy(m_missing("Principal"))

    # Action
    if "Action" in raw and "NotAction" in raw:
        raise MalformedPolicy(m_duplicate("Action"))
    if "Action" in raw:
        st.actions = _parse_actions(raw["Action"])
    elif "NotAction" in raw:
        st.not_actions = _parse_actions(raw["NotAction"])
    else:
        raise MalformedPolicy(m_missing("Action"))

    # Resource
    if "Resource" in raw and "NotResource" in raw:
        raise MalformedPolicy(m_duplicate("Resource"))
    if "Resource" in raw:
        st.resources = _parse_resources(raw["Resource"], bucket)
    elif "NotResource" in raw:
        st.not_resources = _parse_resources(raw["NotResource"], bucket)
    else:
        raise MalformedPolicy(m_missing("Resource"))

    if st.actions is not None and st.resources is not None:
        _check_actions_apply(st.actions, st.resources, bucket)

    if "Condition" in raw:
        st.conditions = _parse_conditions(raw["Condition"], st.actions)
    return st


def _strings(value, empty_message: str) -> list[str]:
    """A JSON string or array of strings as a list: an empty array is ``empty_message``,
    anything but strings (null, a number, an object) is "Invalid policy syntax."."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if not value:
            raise MalformedPolicy(empty_message)
        return list(value)
    raise MalformedPolicy(M_SYNTAX)


def _parse_principal(value, known_principal) -> list[PrincipalEntry]:
    if value == "*":
        return [PrincipalEntry("*", "*")]
    if isinstance(value, dict):
        if not value:
            raise MalformedPolicy(M_EMPTY_PRINCIPAL)
        entries: list[PrincipalEntry] = []
        for kind, ids in value.items():
            if kind not in ("AWS", "CanonicalUser", "Service", "Federated"):
                raise MalformedPolicy(M_PRINCIPAL)
            for one in _strings(ids, M_EMPTY_PRINCIPAL):
                entries.append(_parse_principal_value(kind, one.strip(), known_principal))
        return entries
    if isinstance(value, (list, str)) and not value:
        raise MalformedPolicy(M_EMPTY_PRINCIPAL)
    if isinstance(value, str):
        raise MalformedPolicy(M_PRINCIPAL)
    raise MalformedPolicy(M_SYNTAX)


def _parse_principal_value(kind: str, value: str, known) -> PrincipalEntry:
    def exists(key: str) -> bool:
        return known is None or bool(known(key))

    if kind == "AWS":
        if value == "*":
            return PrincipalEntry("AWS", "*")
        if _ACCOUNT_ID.match(value):
            if not exists(value):
                raise MalformedPolicy(M_PRINCIPAL)
            return PrincipalEntry("AWS", f"arn:aws:iam::{value}:root")
        m = _IAM_ARN.match(value)
        if not m or "*" in value or "?" in value:
            raise MalformedPolicy(M_PRINCIPAL)
        service, account, rest = m.groups()
        if rest == "root" and service == "iam":
            if not exists(account):
                raise MalformedPolicy(M_PRINCIPAL)
            return PrincipalEntry("AWS", f"arn:aws:iam::{account}:root")
        kinds = ("user/", "role/") if service == "iam" else ("assumed-role/", "federated-user/")
        if not rest.startswith(kinds) or rest.endswith("/"):
            raise MalformedPolicy(M_PRINCIPAL)
        if not exists(account) or not exists(value):
            raise MalformedPolicy(M_PRINCIPAL)
        return PrincipalEntry("AWS", value)
    if kind == "CanonicalUser":
        if not _CANONICAL_ID.match(value) or not exists(value.lower()):
            raise MalformedPolicy(M_PRINCIPAL)
        return PrincipalEntry("CanonicalUser", value.lower())
    if kind == "Service":
        if not _SERVICE.match(value):
            raise MalformedPolicy(M_PRINCIPAL)
        return PrincipalEntry("Service", value)
    if not _FEDERATED.match(value):                          # Federated
        raise MalformedPolicy(M_PRINCIPAL)
    return PrincipalEntry("Federated", value)


def _parse_actions(value) -> list[str]:
    actions = _strings(value, m_empty("Action"))
    for action in actions:
        if action == "*":
            continue
        if ":" not in action:
            raise MalformedPolicy(M_ACTION)
        service, _, name = action.partition(":")
        if service.lower() != "s3" or not name:
            raise MalformedPolicy(M_ACTION)
        if not _matching_actions(action):
            raise MalformedPolicy(M_ACTION)
    return actions


def _matching_actions(pattern: str) -> list[str]:
    """The S3 actions a (possibly wildcard) action names."""
    if pattern == "*":
        return list(s3_actions.ACTIONS)
    if "*" not in pattern and "?" not in pattern:
        name = s3_actions.canonical_action(pattern)
        return [name] if name else []
    return [name for name in s3_actions.ACTIONS
            if cond.wildcard_match(pattern, "s3:" + name, ignore_case=True)]


def _parse_resources(value, bucket: str) -> list[str]:
    resources = _strings(value, m_empty("Resource"))
    for resource in resources:
        if not _in_bucket(resource, bucket):
            raise MalformedPolicy(M_RESOURCE)
    return resources


def _in_bucket(resource: str, bucket: str) -> bool:
    """A resource a policy of ``bucket`` may name: an S3 ARN whose pattern can match the
    bucket's ARN or the ARN of one of its objects (``arn:aws:s3:::bkt``, ``arn:aws:s3:::bkt/*``,
    ``arn:aws:s3:::*``); another bucket, a bare ``*`` or another service's ARN is invalid."""
    return bool(_resource_kinds([resource], bucket))


def _resource_kinds(resources: list[str], bucket: str) -> set[str]:
    """Which of "bucket" (the bucket's ARN) and "object" (its objects' ARNs) the resource
    patterns can match."""
    kinds = set()
    for resource in resources:
        if not resource.startswith(_S3_ARN_PREFIX):
            continue
        rest = resource[len(_S3_ARN_PREFIX):]
        if cond.wildcard_match(rest, bucket):
            kinds.add("bucket")
        if _glob_accepts_prefix(rest, bucket + "/"):
            kinds.add("object")
    return kinds


def _glob_accepts_prefix(pattern: str, prefix: str) -> bool:
    """Whether some string starting with ``prefix`` matches the ``*``/``?`` pattern."""
    def closure(states: set[int]) -> set[int]:
        out, todo = set(), list(states)
        while todo:
            i = todo.pop()
            if i in out:
                continue
            out.add(i)
            if i < len(pattern) and pattern[i] == "*":
                todo.append(i + 1)
        return out

    states = closure({0})
    for ch in prefix:
        nxt = set()
        for i in states:
            if i >= len(pattern):
                continue
            p = pattern[i]
            if p == "*":
                nxt.add(i)
            elif p == "?" or p == ch:
                nxt.add(i + 1)
        states = closure(nxt)
        if not states:
            return False
    return True


def _check_actions_apply(actions: list[str], resources: list[str], bucket: str) -> None:
    kinds = _resource_kinds(resources, bucket)
    for action in actions:
        applies = {s3_actions.ACTIONS[name] for name in _matching_actions(action)}
        if not applies & kinds:
            raise MalformedPolicy(M_ACTION_RESOURCE)


def _parse_conditions(value, actions: list[str] | None) -> list[tuple[cond.Operator, str, list]]:
    if not isinstance(value, dict):
        raise MalformedPolicy(M_SYNTAX)
    concrete = []
    for action in actions or ():
        if "*" in action or "?" in action:
            continue
        concrete.append(s3_actions.canonical_action(action))
    parsed = []
    for name, block in value.items():
        op = cond.parse_operator(name)
        if op is None:
            raise MalformedPolicy(m_condition_type(name))
        if not isinstance(block, dict):
            raise MalformedPolicy(M_SYNTAX)
        for key, raw_values in block.items():
            values = raw_values if isinstance(raw_values, list) else [raw_values]
            if any(cond.value_text(v) is None for v in values):
                raise MalformedPolicy(M_SYNTAX)
            known, applies_to = s3_actions.condition_key_actions(key)
            if not known:
                raise MalformedPolicy(M_CONDITION_KEY)
            if applies_to is not None and any(a not in applies_to for a in concrete):
                raise MalformedPolicy(M_CONDITION_COMBINATION)
            if op.family == "ip" or key.lower() == "aws:sourceip":
                for v in values:
                    text = cond.value_text(v)
                    if "${" not in text and cond.parse_network(text) is None:
                        raise MalformedPolicy(M_CONDITION_IP)
            parsed.append((op, key, list(values)))
    return parsed
