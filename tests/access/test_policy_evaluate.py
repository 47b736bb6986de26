"""Policy.evaluate on the S3 User Guide's bucket policy examples, and the statement semantics
(explicit deny wins, NotPrincipal/NotAction/NotResource, wildcards, policy variables)."""
from __future__ import annotations

import json

import pytest

from access.model import ANONYMOUS, AccessRequest, Principal, s3_arn
from access.policy import parse_policy

B = "amzn-s3-demo-bucket"
OWNER = Principal.account("111122223333", "a" * 64)
OTHER = Principal.account("444455556666", "b" * 64)
THIRD = Principal.account("777788889999", "c" * 64)


def policy(*statements, version="2012-10-17"):
    return parse_policy(json.dumps({"Version": version, "Statement": list(statements)}), B)


def ask(pol, principal, action, key=None, context=None):
    return pol.evaluate(AccessRequest(principal, action, s3_arn(B, key), context or {}))


# ---- the User Guide's examples -------------------------------------------------------------

def test_ip_restriction_denies_outside_the_range_ipv4_and_ipv6():
    pol = policy({
        "Sid": "IPAllow", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"],
        "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:DB8:1234:5678::/64"]}},
    }, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*"})
    inside4 = {"aws:SourceIp": ["192.0.2.17"]}
    inside6 = {"aws:SourceIp": ["2001:db8:1234:5678::9"]}
    outside = {"aws:SourceIp": ["203.0.113.5"]}
    outside6 = {"aws:SourceIp": ["2001:db8:1234:9999::1"]}
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k", inside4) == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k", inside6) == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k", outside) == "Deny"
    assert ask(pol, OWNER, "s3:ListBucket", None, outside6) == "Deny"
    assert ask(pol, OWNER, "s3:ListBucket", None, inside4) is None


def test_secure_transport_deny():
    pol = policy({
        "Sid": "RestrictToTLSRequestsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    })
    assert ask(pol, OWNER, "s3:GetObject", "k", {"aws:SecureTransport": ["false"]}) == "Deny"
    assert ask(pol, OWNER, "s3:GetObject", "k", {"aws:SecureTransport": ["true"]}) is None
    assert ask(pol, OWNER, "s3:GetObject", "k", {"aws:SecureTransport": ["FALSE"]}) == "Deny"


def test_referer_restriction():
    pol = policy({
        "Sid": "AllowGetRequestsOriginatingFromExampleSites", "Effect": "Allow", "Principal": "*",
        "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": f"arn:aws:s3:::{B}/*",
        "Condition": {"StringLike": {"aws:Referer": ["https://www.example.com/*", "https://example.com/*"]}},
    })
    assert ask(pol, ANONYMOUS, "s3:GetObject", "a.png", {"aws:Referer": ["https://example.com/page"]}) == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObjectVersion", "a.png",
               {"aws:Referer": ["https://www.example.com/x/y"]}) == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "a.png", {"aws:Referer": ["https://evil.example/"]}) is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "a.png", {}) is None          # no Referer
    assert ask(pol, ANONYMOUS, "s3:PutObject", "a.png", {"aws:Referer": ["https://example.com/"]}) is None


def test_cross_account_grant():
    pol = policy({
        "Sid": "CrossAccount", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"],
    })
    assert ask(pol, OTHER, "s3:GetObject", "k") == "Allow"
    assert ask(pol, OTHER, "s3:ListBucket") == "Allow"
    assert ask(pol, OTHER, "s3:PutObject", "k") is None
    assert ask(pol, THIRD, "s3:GetObject", "k") is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k") is None


def test_account_id_principal_covers_the_accounts_users():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/*"})
    user = Principal("444455556666", None, "arn:aws:iam::444455556666:user/alice")
    assert ask(pol, user, "s3:GetObject", "k") == "Allow"


def test_user_arn_principal_matches_only_that_user():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:user/alice"},
                  "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*"})
    alice = Principal("444455556666", None, "arn:aws:iam::444455556666:user/alice")
    bob = Principal("444455556666", None, "arn:aws:iam::444455556666:user/bob")
    assert ask(pol, alice, "s3:GetObject", "k") == "Allow"
    assert ask(pol, bob, "s3:GetObject", "k") is None
    assert ask(pol, OTHER, "s3:GetObject", "k") is None


def test_canonical_user_principal():
    pol = policy({"Effect": "Allow", "Principal": {"CanonicalUser": "B" * 64},
                  "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*"})
    assert ask(pol, OTHER, "s3:GetObject", "k") == "Allow"
    assert ask(pol, THIRD, "s3:GetObject", "k") is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k") is None


def test_prefix_listing_restriction():
    pol = policy({
        "Sid": "AllowRootAndHomeListingOfBucket", "Effect": "Allow", "Principal": {"AWS": "444455556666"},
        "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{B}",
        "Condition": {"StringEquals": {"s3:prefix": ["", "home/", "home/JohnDoe"], "s3:delimiter": ["/"]}},
    }, {
        "Sid": "AllowListingOfUserFolder", "Effect": "Allow", "Principal": {"AWS": "444455556666"},
        "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{B}",
        "Condition": {"StringLike": {"s3:prefix": ["home/JohnDoe/*"]}},
    })
    assert ask(pol, OTHER, "s3:ListBucket", None, {"s3:prefix": ["home/"], "s3:delimiter": ["/"]}) == "Allow"
    assert ask(pol, OTHER, "s3:ListBucket", None, {"s3:prefix": [""], "s3:delimiter": ["/"]}) == "Allow"
    assert ask(pol, OTHER, "s3:ListBucket", None, {"s3:prefix": ["home/"]}) is None       # no delimiter
    assert ask(pol, OTHER, "s3:ListBucket", None, {"s3:prefix": ["home/JohnDoe/docs/"]}) == "Allow"
    assert ask(pol, OTHER, "s3:ListBucket", None, {"s3:prefix": ["home/Jane/"], "s3:delimiter": ["/"]}) is None


def test_existing_object_tag():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"StringEquals": {"s3:ExistingObjectTag/environment": "production"}}})
    assert ask(pol, OTHER, "s3:GetObject", "k", {"s3:ExistingObjectTag/environment": ["production"]}) == "Allow"
    assert ask(pol, OTHER, "s3:GetObject", "k", {"s3:ExistingObjectTag/environment": ["test"]}) is None
    assert ask(pol, OTHER, "s3:GetObject", "k", {}) is None


def test_bucket_owner_full_control_required_for_cross_account_uploads():
    pol = policy({"Sid": "RequireOwnerFullControl", "Effect": "Allow",
                  "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "s3:PutObject",
                  "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}})
    assert ask(pol, OTHER, "s3:PutObject", "k", {"s3:x-amz-acl": ["bucket-owner-full-control"]}) == "Allow"
    assert ask(pol, OTHER, "s3:PutObject", "k", {"s3:x-amz-acl": ["public-read"]}) is None
    assert ask(pol, OTHER, "s3:PutObject", "k", {}) is None


def test_sse_required_deny_unencrypted_and_wrong_algorithm():
    pol = policy({"Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*",
                  "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
                 {"Sid": "DenyUnencryptedObjectUploads", "Effect": "Deny", "Principal": "*",
                  "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}})
    assert ask(pol, OWNER, "s3:PutObject", "k", {}) == "Deny"
    assert ask(pol, OWNER, "s3:PutObject", "k", {"s3:x-amz-server-side-encryption": ["AES256"]}) == "Deny"
    assert ask(pol, OWNER, "s3:PutObject", "k", {"s3:x-amz-server-side-encryption": ["aws:kms"]}) is None


def test_mfa_required_for_a_folder():
    pol = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                  "Resource": f"arn:aws:s3:::{B}/taxdocuments/*",
                  "Condition": {"Null": {"aws:MultiFactorAuthAge": True}}})
    assert ask(pol, OWNER, "s3:GetObject", "taxdocuments/2024.pdf") == "Deny"
    assert ask(pol, OWNER, "s3:GetObject", "taxdocuments/2024.pdf", {"aws:MultiFactorAuthAge": ["30"]}) is None
    assert ask(pol, OWNER, "s3:GetObject", "other/2024.pdf") is None


def test_tls_version_numeric():
    pol = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                  "Resource": [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"],
                  "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}})
    assert ask(pol, OWNER, "s3:GetObject", "k", {"s3:TlsVersion": ["1.1"]}) == "Deny"
    assert ask(pol, OWNER, "s3:GetObject", "k", {"s3:TlsVersion": ["1.3"]}) is None


def test_principal_org_and_account_conditions():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"StringEquals": {"aws:PrincipalAccount": ["444455556666"]}}})
    assert ask(pol, OTHER, "s3:GetObject", "k", {"aws:PrincipalAccount": ["444455556666"]}) == "Allow"
    assert ask(pol, THIRD, "s3:GetObject", "k", {"aws:PrincipalAccount": ["777788889999"]}) is None


# ---- statement semantics -------------------------------------------------------------------

def test_explicit_deny_wins_whatever_the_order():
    allow = {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{B}/*"}
    deny = {"Effect": "Deny", "Principal": {"AWS": "444455556666"}, "Action": "s3:DeleteObject",
            "Resource": f"arn:aws:s3:::{B}/*"}
    for pol in (policy(allow, deny), policy(deny, allow)):
        assert ask(pol, OTHER, "s3:DeleteObject", "k") == "Deny"
        assert ask(pol, OTHER, "s3:GetObject", "k") == "Allow"
        assert ask(pol, THIRD, "s3:DeleteObject", "k") == "Allow"


def test_anonymous_matches_only_the_wildcard():
    for principal in ({"AWS": "444455556666"}, {"CanonicalUser": "b" * 64}):
        pol = policy({"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject",
                      "Resource": f"arn:aws:s3:::{B}/*"})
        assert ask(pol, ANONYMOUS, "s3:GetObject", "k") is None
    for principal in ("*", {"AWS": "*"}, {"AWS": ["*"]}):
        pol = policy({"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject",
                      "Resource": f"arn:aws:s3:::{B}/*"})
        assert ask(pol, ANONYMOUS, "s3:GetObject", "k") == "Allow"
        assert ask(pol, OTHER, "s3:GetObject", "k") == "Allow"


def test_not_principal_applies_to_everyone_else_anonymous_included():
    pol = policy({"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:root"},
                  "Action": "s3:*", "Resource": f"arn:aws:s3:::{B}/*"})
    assert ask(pol, OWNER, "s3:GetObject", "k") is None
    assert ask(pol, OTHER, "s3:GetObject", "k") == "Deny"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k") == "Deny"


def test_not_action():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "NotAction": "s3:Delete*",
                  "Resource": f"arn:aws:s3:::{B}/*"})
    assert ask(pol, OTHER, "s3:GetObject", "k") == "Allow"
    assert ask(pol, OTHER, "s3:DeleteObject", "k") is None
    assert ask(pol, OTHER, "s3:deleteobjectversion", "k") is None


def test_not_resource():
    pol = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                  "NotResource": f"arn:aws:s3:::{B}/public/*"})
    assert ask(pol, ANONYMOUS, "s3:GetObject", "public/a") is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "private/a") == "Deny"


@pytest.mark.parametrize("pattern,action,hit", [
    ("s3:GetObject", "s3:GetObject", True),
    ("S3:GETOBJECT", "s3:GetObject", True),
    ("s3:Get*", "s3:GetObjectAcl", True),
    ("s3:Get*", "s3:PutObject", False),
    ("s3:*Object", "s3:DeleteObject", True),
    ("s3:?etObject", "s3:GetObject", True),
    ("s3:?etObject", "s3:GetObjectAcl", False),
    ("*", "s3:PutBucketPolicy", True),
])
def test_action_wildcards_case_insensitive(pattern, action, hit):
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": pattern,
                  "Resource": [f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"]})
    resource_key = "k" if "Object" in action else None
    assert (ask(pol, ANONYMOUS, action, resource_key) == "Allow") is hit


@pytest.mark.parametrize("pattern,key,hit", [
    ("images/*", "images/a/b.png", True),
    ("images/*", "Images/a.png", False),              # resources are case-sensitive
    ("*.png", "deep/path/x.png", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file12.txt", False),
    ("exact", "exact", True),
    ("exact", "exactly", False),
])
def test_resource_wildcards(pattern, key, hit):
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/{pattern}"})
    assert (ask(pol, ANONYMOUS, "s3:GetObject", key) == "Allow") is hit


def test_bucket_resource_does_not_cover_objects():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{B}"})
    assert ask(pol, ANONYMOUS, "s3:ListBucket") == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k") is None


def test_policy_variables_in_resources():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/home/${{aws:username}}/*"})
    alice = {"aws:username": ["alice"]}
    assert ask(pol, OTHER, "s3:GetObject", "home/alice/a.txt", alice) == "Allow"
    assert ask(pol, OTHER, "s3:GetObject", "home/bob/a.txt", alice) is None
    assert ask(pol, OTHER, "s3:GetObject", "home/alice/a.txt", {}) is None    # no value: no match


def test_policy_variable_value_is_literal_not_a_wildcard():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/home/${{aws:username}}/a"})
    assert ask(pol, OTHER, "s3:GetObject", "home/x/a", {"aws:username": ["*"]}) is None
    assert ask(pol, OTHER, "s3:GetObject", "home/*/a", {"aws:username": ["*"]}) == "Allow"


def test_special_variables_are_literal_characters():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/a${{*}}b${{?}}c${{$}}d"})
    assert ask(pol, ANONYMOUS, "s3:GetObject", "a*b?c$d") == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "aXXbYc$d") is None


def test_variable_with_default_value():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/${{aws:username, 'public'}}/*"})
    assert ask(pol, ANONYMOUS, "s3:GetObject", "public/x") == "Allow"
    assert ask(pol, OTHER, "s3:GetObject", "bob/x", {"aws:username": ["bob"]}) == "Allow"


def test_variables_in_condition_values():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:ListBucket",
                  "Resource": f"arn:aws:s3:::{B}",
                  "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}}})
    assert ask(pol, OTHER, "s3:ListBucket", None,
               {"aws:username": ["alice"], "s3:prefix": ["home/alice/docs/"]}) == "Allow"
    assert ask(pol, OTHER, "s3:ListBucket", None,
               {"aws:username": ["alice"], "s3:prefix": ["home/bob/"]}) is None


def test_version_2008_takes_variables_literally():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/${{aws:username}}/*"}, version="2008-10-17")
    assert ask(pol, ANONYMOUS, "s3:GetObject", "alice/x", {"aws:username": ["alice"]}) is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "${aws:username}/x", {"aws:username": ["alice"]}) == "Allow"


def test_condition_key_names_are_case_insensitive():
    pol = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"Bool": {"AWS:SECURETRANSPORT": "false"}}})
    assert ask(pol, OWNER, "s3:GetObject", "k", {"aws:SecureTransport": ["false"]}) == "Deny"


def test_all_conditions_must_hold():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"Bool": {"aws:SecureTransport": "true"},
                                "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k",
               {"aws:SecureTransport": ["true"], "aws:SourceIp": ["10.1.2.3"]}) == "Allow"
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k",
               {"aws:SecureTransport": ["false"], "aws:SourceIp": ["10.1.2.3"]}) is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k",
               {"aws:SecureTransport": ["true"], "aws:SourceIp": ["11.1.2.3"]}) is None


def test_principal_keys_come_from_who_asks():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*",
                  "Condition": {"StringEquals": {"aws:PrincipalAccount": "444455556666"}}},
                 {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/anon/*",
                  "Condition": {"StringEquals": {"aws:PrincipalType": "Anonymous"}}})
    assert ask(pol, OTHER, "s3:GetObject", "k") == "Allow"
    assert ask(pol, THIRD, "s3:GetObject", "k") is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "k") is None
    assert ask(pol, ANONYMOUS, "s3:GetObject", "anon/k") == "Allow"
    assert ask(pol, THIRD, "s3:GetObject", "anon/k") is None


def test_username_of_an_iam_user_fills_the_variable():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/home/${{aws:username}}/*"})
    alice = Principal("444455556666", None, "arn:aws:iam::444455556666:user/team/alice")
    assert ask(pol, alice, "s3:GetObject", "home/alice/x") == "Allow"
    assert ask(pol, OTHER, "s3:GetObject", "home/alice/x") is None    # the account itself has no username


def test_restrict_public_buckets_blocks_every_outside_allow_of_a_public_policy():
    pol = policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*"},
                 {"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:PutObject",
                  "Resource": f"arn:aws:s3:::{B}/*"},
                 {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{B}/*"})
    owner = "111122223333"
    assert pol.evaluate(AccessRequest(ANONYMOUS, "s3:GetObject", s3_arn(B, "k"))) == "Allow"
    assert pol.evaluate(AccessRequest(ANONYMOUS, "s3:GetObject", s3_arn(B, "k")), restrict_public_to=owner) is None
    # non-public delegation to a specific account is blocked too, while the policy is public
    assert pol.evaluate(AccessRequest(OTHER, "s3:PutObject", s3_arn(B, "k")), restrict_public_to=owner) is None
    assert pol.evaluate(AccessRequest(OWNER, "s3:GetObject", s3_arn(B, "k")), restrict_public_to=owner) == "Allow"
    assert pol.evaluate(AccessRequest(OWNER, "s3:DeleteObject", s3_arn(B, "k")), restrict_public_to=owner) == "Deny"


def test_restrict_public_buckets_leaves_a_non_public_policy_alone():
    pol = policy({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "s3:GetObject",
                  "Resource": f"arn:aws:s3:::{B}/*"})
    assert pol.evaluate(AccessRequest(OTHER, "s3:GetObject", s3_arn(B, "k")),
                        restrict_public_to="111122223333") == "Allow"
