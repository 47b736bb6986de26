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

The policy language (``access.policy``, ``access.conditions``, ``access.s3_actions``):

- ``parse_policy(text, bucket, known_principal=None) -> Policy`` validates as PutBucketPolicy
  does and raises ``MalformedPolicy`` with S3's message (``PolicyTooLarge``, its subclass, for
  a document over 20 KB normalized); both carry ``.code`` ("MalformedPolicy"), ``.status``
  (400) and ``.message``. ``known_principal`` is asked with an account id, a canonical user
  id or an IAM user/role ARN; ``principal_lookups(text)`` lists those values beforehand, for
  an asynchronous account store.
- ``Policy.text`` (the document as given), ``.version``, ``.id``, ``.statements``;
  ``Policy.evaluate(AccessRequest, restrict_public_to=None) -> "Deny" | "Allow" | None`` (the
  principal's global keys, ``aws:PrincipalAccount``, ``aws:PrincipalType``..., are added to the
  context; ``restrict_public_to=<owner account>`` applies RestrictPublicBuckets);
  ``Policy.is_public()`` and ``Statement.is_public()``: S3's meaning of "public".
"""
