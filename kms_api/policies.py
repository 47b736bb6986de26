"""Key policies as AWS writes them by default: the account's root may do everything with a customer
managed key; an AWS managed key may be used only through its service (``kms:ViaService``) and its
metadata read by the account. Nimbo stores and returns a key's policy (GetKeyPolicy,
ListKeyPolicies, CreateKey's ``Policy``) but does not evaluate it: within an account every
principal may use its keys, and no policy grants another account (cross-account keys are out of
scope)."""
from __future__ import annotations

import json

from kms_api import errors

POLICY_NAME = "default"
MAX_POLICY = 32768


def default_key_policy(account_id: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }, indent=2)


def managed_key_policy(account_id: str, region: str, service: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": f"auto-{service}-2",
        "Statement": [
            {
                "Sid": f"Allow access through {service.upper()} for all principals in the account that are "
                       f"authorized to use {service.upper()}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                           "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account_id,
                                               "kms:ViaService": f"{service}.{region}.amazonaws.com"}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*",
            },
        ],
    }, indent=2)


def check_policy(text: str) -> str:
    """A policy document as CreateKey accepts it: JSON with a Statement list (not evaluated)."""
    if len(text.encode("utf-8")) > MAX_POLICY:
        raise errors.LimitExceededException("The key policy exceeds the maximum size of 32 KB.")
    try:
        document = json.loads(text)
    except ValueError:
        raise errors.MalformedPolicyDocumentException("The new key policy will not allow you to update the key "
                                                      "policy in the future.") from None
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements or \
            not all(isinstance(s, dict) and s.get("Effect") in ("Allow", "Deny") for s in statements):
        raise errors.MalformedPolicyDocumentException("The policy document is not valid: it needs a Statement "
                                                      "list whose statements have an Effect of Allow or Deny.")
    return text
