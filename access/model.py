"""The words every part of the access decision shares.

A request is judged as (principal, action, resource, context):

- ``Principal``: who asks. An account (its 12-digit id and S3 canonical user id) or anonymous
  (every field None). ``arn`` is what a policy's ``Principal`` matches: ``arn:aws:iam::<id>:root``
  for an account's own keys (IAM users and roles come later).
- ``action``: the IAM action name, service prefix included: ``s3:GetObject``, ``s3:ListBucket``.
- ``resource``: the ARN acted on: ``arn:aws:s3:::bucket`` or ``arn:aws:s3:::bucket/key``.
- ``context``: the request's condition keys, named as AWS documents them (``aws:SourceIp``,
  ``aws:SecureTransport``, ``aws:Referer``, ``aws:PrincipalAccount``, ``aws:CurrentTime``,
  ``aws:EpochTime``, ``aws:UserAgent``, ``s3:prefix``, ``s3:delimiter``, ``s3:max-keys``,
  ``s3:x-amz-acl``, ``s3:x-amz-server-side-encryption``, ``s3:ExistingObjectTag/<tag-key>``,
  ``s3:RequestObjectTag/<tag-key>``, ``s3:RequestObjectTagKeys``, ``s3:VersionId``,
  ``s3:signatureversion``, ``s3:authType``, ``s3:x-amz-content-sha256``, ...). Every value is a
  list of strings (booleans "true"/"false", numbers and dates as the request carried them); a key
  that the request does not have is absent. Policies match key names case-insensitively.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ANONYMOUS_ARN = "*"


@dataclass(frozen=True)
class Principal:
    account_id: str | None = None       # 12 digits; None: anonymous
    canonical_id: str | None = None     # the S3 canonical user id of the account
    arn: str | None = None              # arn:aws:iam::<account_id>:root

    @property
    def anonymous(self) -> bool:
        return self.account_id is None

    @classmethod
    def account(cls, account_id: str, canonical_id: str) -> "Principal":
        return cls(account_id, canonical_id, f"arn:aws:iam::{account_id}:root")


ANONYMOUS = Principal()


@dataclass(frozen=True)
class AccessRequest:
    principal: Principal
    action: str                                   # "s3:GetObject"
    resource: str                                 # "arn:aws:s3:::bucket/key"
    context: dict[str, list[str]] = field(default_factory=dict)


def s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"
