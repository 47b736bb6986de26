"""The access decision: who may do what to which resource.

One evaluator, below the services, that knows no HTTP (ARCHITECTURE.md): S3 asks it for every
operation (and IAM will later). Its parts:

- ``access.model``: the words every part shares (``Principal``, ``AccessRequest``).
- ``access.policy``: the IAM policy language: ``parse_policy`` (validation with AWS's
  MalformedPolicy messages) and ``Policy.evaluate`` / ``Policy.is_public`` (conditions in
  ``access.conditions``).
- ``access.acl``: grants, canned ACLs and what each ACL permission allows.
- ``access.decision``: ``decide``: the owner's rights, ACLs, the bucket policy and the public
  access block combined as S3 combines them; an explicit deny wins.
"""
