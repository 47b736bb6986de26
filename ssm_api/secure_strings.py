"""SecureString parameters: values encrypted under a KMS key, as Parameter Store keeps them.

PutParameter ``Type=SecureString`` encrypts the value with KMS (``kms_api.data_keys.encrypt``)
under ``KeyId`` (a key id, key ARN, alias name or alias ARN of the caller's account and region) or,
without one, the account's AWS managed key ``alias/aws/ssm`` (made on first use, as AWS makes it).
The encryption context is ``{"PARAMETER_ARN": <the parameter's ARN>}``, as Parameter Store's: a
ciphertext copied onto another parameter does not decrypt there. What is stored (and what
GetParameter* answers without ``WithDecryption``) is the base64 text of the KMS ciphertext blob;
``aws kms decrypt`` with the same context opens it. The plaintext never reaches the database (nor
its write-ahead log): it is encrypted before the row is written, in the request's memory only.

KMS's refusals come back as SSM reports them: ``InvalidKeyId`` carrying KMS's message and code
(a key that does not exist or is another account's, a disabled key, a key pending deletion).
Each Encrypt/Decrypt is a KMS request billed to the account (``KMS-Requests``), as AWS bills the
calls Parameter Store makes on the caller's behalf.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from kms_api import data_keys
from kms_api import errors as kms_errors
from ssm_api import errors
from storage.parameters import Parameter

SECURE_STRING = "SecureString"
DEFAULT_KEY = "alias/aws/ssm"
CONTEXT_KEY = "PARAMETER_ARN"


def _invalid_key(exc: kms_errors.KMSError) -> errors.SSMError:
    return errors.InvalidKeyId(f"{exc.message} (Service: AWSKMS; Status Code: {exc.status}; "
                               f"Error Code: {exc.code})")


async def encrypt(ctx: Any, parameter_arn: str, key_id: str | None, value: str) -> str:
    """The stored form of a SecureString value: base64 of its KMS ciphertext blob."""
    try:
        _, blob = await data_keys.encrypt(ctx.app, ctx.account.account_id, key_id or DEFAULT_KEY,
                                          value.encode("utf-8"), {CONTEXT_KEY: parameter_arn},
                                          region=ctx.region, default_alias=DEFAULT_KEY)
    except kms_errors.KMSError as exc:
        raise _invalid_key(exc) from None
    return base64.b64encode(blob).decode("ascii")


async def decrypt(ctx: Any, parameter_arn: str, parameter: Parameter) -> str:
    """The plaintext of a stored SecureString value."""
    try:
        blob = base64.b64decode(parameter.value.encode("ascii"), validate=True)
        _, plaintext = await data_keys.decrypt_data_key(ctx.app, ctx.account.account_id, blob,
                                                        {CONTEXT_KEY: parameter_arn}, region=ctx.region)
    except kms_errors.KMSError as exc:
        raise _invalid_key(exc) from None
    except (binascii.Error, ValueError):
        raise errors.SSMError(f"The stored value of {parameter.name} is not a ciphertext.") from None
    return plaintext.decode("utf-8")
