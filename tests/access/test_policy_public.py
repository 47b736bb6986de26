"""Policy.is_public: S3's meaning of "public" for Block Public Access and GetBucketPolicyStatus.

A policy is public when some Allow statement grants to a wildcard principal and no condition pins it to fixed values of aws:SourceIp (a CIDR),
aws:SourceArn, aws:SourceVpc, aws:SourceVpce, aws:SourceOwner, aws:SourceAccount,
s3:x-amz-server-side-encryption-aws-kms-key-id, aws:userid (outside "AROLEID:*"),
aws:PrincipalOrgID and the other keys the S3 User Guide names."""
from __future__ import annotations

import json

import pytest

from access.policy import parse_policy

B = "bkt"


def pol(principal="*", effect="Allow", condition=None, action="s3:GetObject", not_principal=False):
    st = {"Effect": effect, "Action": action, "Resource": f"arn:aws:s3:::{B}/*"}
    st["NotPrincipal" if not_principal else "Principal"] = principal
    if condition:
        st["Condition"] = condition
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [st]}), B)


PUBLIC = [
    ("star", pol("*")),
    ("aws star", pol({"AWS": "*"})),
    ("aws star in a list", pol({"AWS": ["111122223333", "*"]})),
    ("referer only", pol(condition={"StringLike": {"aws:Referer": "https://example.com/*"}})),
    ("secure transport only", pol(condition={"Bool": {"aws:SecureTransport": "true"}})),
    ("source ip everything", pol(condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}})),
    ("source ip ipv6 everything", pol(condition={"IpAddress": {"aws:SourceIp": "::/0"}})),
    ("source ip half the internet", pol(condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}})),
    ("source ip broader than /8", pol(condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/7"}})),
    ("source ipv6 broader than /32", pol(condition={"IpAddress": {"aws:SourceIp": "2001:db8::/31"}})),
    ("one broad cidr among narrow ones", pol(condition={"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "0.0.0.0/0"]}})),
    ("not ip address", pol(condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    ("source vpc wildcard", pol(condition={"StringLike": {"aws:SourceVpc": "vpc-*"}})),
    ("source account not equals", pol(condition={"StringNotEquals": {"aws:SourceAccount": "111122223333"}})),
    ("source arn if exists", pol(condition={"ArnEqualsIfExists": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:t"}})),
    ("org id via variable", pol(condition={"StringEquals": {"aws:PrincipalOrgID": "${aws:username}"}})),
    ("userid of any role session", pol(condition={"StringEquals": {"aws:userid": "AROLEID:*"}})),
    ("for all values", pol(condition={"ForAllValues:StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}})),
    ("one public statement is enough", parse_policy(json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "s3:*", "Resource": f"arn:aws:s3:::{B}/*"},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{B}/*"}]}), B)),
]

NOT_PUBLIC = [
    ("account principal", pol({"AWS": "111122223333"})),
    ("account root arn", pol({"AWS": "arn:aws:iam::111122223333:root"})),
    ("canonical user", pol({"CanonicalUser": "a" * 64})),
    ("service principal", pol({"Service": "logging.s3.amazonaws.com"}, action="s3:PutObject")),
    ("deny to everyone", pol("*", effect="Deny")),
    ("not principal deny", pol({"AWS": "111122223333"}, effect="Deny", not_principal=True)),
    ("source ip cidr", pol(condition={"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/48"]}})),
    ("source ip address", pol(condition={"IpAddress": {"aws:SourceIp": "203.0.113.9"}})),
    ("s3-tests' 10.0.0.0/32", pol({"AWS": "*"}, condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/32"}})),
    ("source ip exactly /8", pol(condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    ("source arn", pol(condition={"ArnEquals": {"aws:SourceArn": "arn:aws:cloudfront::111122223333:distribution/E1"}})),
    ("source arn like without wildcard", pol(condition={"ArnLike": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:t"}})),
    ("source vpc", pol(condition={"StringEquals": {"aws:SourceVpc": "vpc-111bbb22"}})),
    ("source vpce", pol(condition={"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}})),
    ("source owner", pol(condition={"StringEquals": {"aws:SourceOwner": "111122223333"}})),
    ("source account", pol(condition={"StringEquals": {"aws:SourceAccount": "111122223333"}})),
    ("principal org", pol(condition={"StringEquals": {"aws:PrincipalOrgID": "o-xxxxxxxxxx"}})),
    ("principal account", pol(condition={"StringEquals": {"aws:PrincipalAccount": "111122223333"}})),
    ("kms key id", pol(action="s3:PutObject", condition={"StringEquals": {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:111122223333:key/k"}})),
    ("userid fixed", pol(condition={"StringEquals": {"aws:userid": "AIDAEXAMPLEUSERID"}})),
    ("pinned plus other conditions", pol(condition={"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"},
                                                    "Bool": {"aws:SecureTransport": "true"}})),
    ("for any value pins", pol(condition={"ForAnyValue:StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}})),
]


@pytest.mark.parametrize("name,policy", PUBLIC, ids=[p[0] for p in PUBLIC])
def test_public(name, policy):
    assert policy.is_public() is True


@pytest.mark.parametrize("name,policy", NOT_PUBLIC, ids=[p[0] for p in NOT_PUBLIC])
def test_not_public(name, policy):
    assert policy.is_public() is False
