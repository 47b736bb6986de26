"""Data keys for other services: what S3's SSE-KMS calls (AWS's services call KMS the same way, as
``kms:ViaService``), without going through HTTP.

- ``generate_data_key(app, account_id, key_id, context)``: a fresh 32-byte data key, in plaintext
  (to encrypt with now, never to store) and as a ciphertext blob under the KMS key (to store); the
  blob is exactly what KMS's own Decrypt accepts (``aws kms decrypt`` decrypts it with the same
  encryption context). ``key_id`` None means the account's AWS managed key ``alias/aws/s3``, made
  on first use; otherwise a key id, key ARN, alias name or alias ARN of the account.
- ``decrypt_data_key(app, account_id, blob, context)``: (key ARN, plaintext data key).
- ``key_arn(app, account_id, key_id)``: the ARN a key name resolves to (a configuration's check).
- ``encrypt(app, account_id, key_id, plaintext, context, default_alias=...)``: (key ARN, ciphertext
  blob) of a small secret encrypted directly under the KMS key, as Parameter Store encrypts a
  SecureString (``key_id`` None: the service's AWS managed key, ``alias/aws/ssm`` ..., made on
  first use); ``decrypt_data_key`` opens such a blob too.

Errors are ``kms_api.errors`` classes (``.code``, ``.status``, ``.message``), as the KMS API renders
them: NotFoundException (no such key in the account, or another account's key id),
AccessDeniedException (another account's ARN), DisabledException, KMSInvalidStateException
(pending deletion), InvalidCiphertextException (a blob that is not one, or another context).
Each call is a KMS request that AWS bills to the account (``KMS-Requests`` of ``awskms``, as S3's
calls on a bucket owner's behalf are): it is metered here, to ``account_id``.

Both take an optional ``region`` (the bucket's): for ``generate_data_key`` the server's default
region otherwise (where ``alias/aws/s3`` and aliases are looked up); ``decrypt_data_key`` without
it accepts a blob of the account's key in any region (the blob names its key).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from kms_api import errors
from kms_api.identifiers import Caller, arn_of, find_key
from kms_api.sealing import seal, unseal

DEFAULT_ALIAS = "alias/aws/s3"
DATA_KEY_BYTES = 32


@dataclass(frozen=True)
class DataKey:
    key_arn: str
    plaintext: bytes = field(repr=False)
    blob: bytes = field(repr=False)


def _region(app: Any, region: str | None) -> str:
    if region:
        return region
    config = getattr(app, "config", None)
    return getattr(config, "default_region", None) or "us-east-1"


def _meter(app: Any, account_id: str, region: str, operation: str) -> None:
    buffer = getattr(app, "meter_buffer", None)
    if buffer is not None:
        from kms_api.operations import PRODUCT_CODE   # noqa: PLC0415
        now = app.clock()
        at_us = int(now.timestamp() * 1_000_000)
        buffer.add(account_id, region, PRODUCT_CODE, "KMS-Requests", operation, "", at_us, 1)


def _context(context: dict[str, str] | None) -> dict[str, str]:
    context = dict(context or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise errors.ValidationException("An encryption context maps strings to strings.")
    return context


async def generate_data_key(app: Any, account_id: str, key_id: str | None, context: dict[str, str],
                            *, region: str | None = None) -> DataKey:
    caller = Caller(account_id, _region(app, region), "GenerateDataKey")
    _meter(app, account_id, caller.region, "GenerateDataKey")
    key = await find_key(app, caller, key_id or DEFAULT_ALIAS, create_managed=True)
    plaintext = secrets.token_bytes(DATA_KEY_BYTES)
    blob = await seal(app, key, plaintext, _context(context))
    return DataKey(arn_of(key), plaintext, blob)


async def encrypt(app: Any, account_id: str, key_id: str | None, plaintext: bytes, context: dict[str, str],
                  *, region: str | None = None, default_alias: str = DEFAULT_ALIAS) -> tuple[str, bytes]:
    caller = Caller(account_id, _region(app, region), "Encrypt")
    _meter(app, account_id, caller.region, "Encrypt")
    key = await find_key(app, caller, key_id or default_alias, create_managed=True)
    return arn_of(key), await seal(app, key, bytes(plaintext), _context(context))


async def decrypt_data_key(app: Any, account_id: str, blob: bytes, context: dict[str, str],
                           *, region: str | None = None) -> tuple[str, bytes]:
    caller = Caller(account_id, _region(app, region), "Decrypt")
    _meter(app, account_id, caller.region, "Decrypt")
    key, plaintext = await unseal(app, caller, bytes(blob), _context(context), any_region=region is None)
    return arn_of(key), plaintext


async def key_arn(app: Any, account_id: str, key_id: str | None, *, region: str | None = None) -> str:
    """The ARN of the key ``key_id`` names (None: the account's ``alias/aws/s3``, made on first use),
    whatever its state: for checking a key named in a configuration (a bucket's default
    encryption) before any data key is made. NotFoundException / AccessDeniedException as above."""
    caller = Caller(account_id, _region(app, region), "DescribeKey")
    return arn_of(await find_key(app, caller, key_id or DEFAULT_ALIAS, create_managed=True))
