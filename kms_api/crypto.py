"""The cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
GenerateDataKeyWithoutPlaintext, GenerateRandom.

A key must be Enabled (Disabled: DisabledException; PendingDeletion: KMSInvalidStateException). The
encryption context is the associated data of the ciphertext: Decrypt needs the same one. Only the
symmetric algorithm exists here (SYMMETRIC_DEFAULT); naming an RSA or SM2 algorithm is
InvalidKeyUsageException, as with a symmetric key on AWS. AWS managed keys are used through their
service only (their policy's ``kms:ViaService``): called directly they are AccessDeniedException.
DryRun checks everything and then answers DryRunOperationException. Grant tokens are accepted and
ignored (grants are not implemented); Recipient (Nitro Enclaves attestation) is refused.
"""
from __future__ import annotations

import secrets
from typing import Any

from kms_api import errors
from kms_api.identifiers import Caller, arn_of, check_usable, find_key
from kms_api.keys import caller
from kms_api.sealing import seal, unseal
from storage.kms_keys import KeyRow

ALGORITHM = "SYMMETRIC_DEFAULT"
DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}


def _algorithm(params: dict, member: str = "EncryptionAlgorithm") -> None:
    algorithm = params.get(member)
    if algorithm is not None and algorithm != ALGORITHM:
        raise errors.InvalidKeyUsageException(f"The encryption algorithm {algorithm} is not valid for a "
                                              f"symmetric encryption KMS key: use {ALGORITHM}.")


def _no_recipient(params: dict) -> None:
    if params.get("Recipient"):
        raise errors.ValidationException("Recipient (a Nitro Enclaves attestation document) is not supported "
                                         "by this endpoint.")


def _direct_use(who: Caller, key: KeyRow) -> KeyRow:
    if key.key_manager != "CUSTOMER":
        raise who.denied(arn_of(key))
    if key.key_usage != "ENCRYPT_DECRYPT":
        raise errors.InvalidKeyUsageException(f"{arn_of(key)} key usage is {key.key_usage} which is not valid "
                                              f"for {who.action}.")
    return key


def _dry_run(params: dict, who: Caller) -> None:
    if params.get("DryRun"):
        raise errors.DryRunOperationException(f"The {who.action} request would have succeeded, but the DryRun "
                                              f"option is set.")


async def _usable_key(ctx: Any, who: Caller, name: str | None) -> KeyRow:
    key = _direct_use(who, await find_key(ctx.app, who, name))
    check_usable(key)
    return key


async def encrypt(ctx: Any, params: dict) -> dict:
    who = caller(ctx, "Encrypt")
    _algorithm(params)
    key = await _usable_key(ctx, who, params.get("KeyId"))
    _dry_run(params, who)
    blob = await seal(ctx.app, key, params["Plaintext"], params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": arn_of(key), "EncryptionAlgorithm": ALGORITHM}


def _ciphertext(params: dict, who: Caller, key_id: str | None) -> bytes | None:
    """The request's CiphertextBlob (the model leaves it optional for DryRun's IGNORE_CIPHERTEXT);
    None only for such a dry run, which then needs a KeyId."""
    blob = params.get("CiphertextBlob")
    if blob is not None:
        return blob
    if params.get("DryRun") and "IGNORE_CIPHERTEXT" in (params.get("DryRunModifiers") or []):
        if not key_id:
            raise errors.ValidationException("A dry run that ignores the ciphertext needs a KeyId.")
        return None
    raise errors.ValidationException("1 validation error detected: Value null at 'ciphertextBlob' failed to "
                                     "satisfy constraint: Member must not be null")


async def _open(ctx: Any, who: Caller, blob: bytes | None, context: dict | None,
                key_id: str | None) -> tuple[KeyRow, bytes]:
    if blob is None:     # a dry run that ignores the ciphertext: the key is all there is to check
        await _usable_key(ctx, who, key_id)
        _dry_run({"DryRun": True}, who)
    expected = await find_key(ctx.app, who, key_id) if key_id else None
    if expected is not None:
        _direct_use(who, expected)
    key, plaintext = await unseal(ctx.app, who, blob, context, expected)
    _direct_use(who, key)
    return key, plaintext


async def decrypt(ctx: Any, params: dict) -> dict:
    who = caller(ctx, "Decrypt")
    _algorithm(params)
    _no_recipient(params)
    key, plaintext = await _open(ctx, who, _ciphertext(params, who, params.get("KeyId")),
                                 params.get("EncryptionContext"), params.get("KeyId"))
    _dry_run(params, who)
    return {"KeyId": arn_of(key), "Plaintext": plaintext, "EncryptionAlgorithm": ALGORITHM}


async def re_encrypt(ctx: Any, params: dict) -> dict:
    who = caller(ctx, "ReEncrypt")
    _algorithm(params, "SourceEncryptionAlgorithm")
    _algorithm(params, "DestinationEncryptionAlgorithm")
    destination = await _usable_key(ctx, who, params.get("DestinationKeyId"))
    source, plaintext = await _open(ctx, who, _ciphertext(params, who, params.get("SourceKeyId")),
                                    params.get("SourceEncryptionContext"), params.get("SourceKeyId"))
    _dry_run(params, who)
    blob = await seal(ctx.app, destination, plaintext, params.get("DestinationEncryptionContext"))
    return {"CiphertextBlob": blob, "SourceKeyId": arn_of(source), "KeyId": arn_of(destination),
            "SourceEncryptionAlgorithm": ALGORITHM, "DestinationEncryptionAlgorithm": ALGORITHM}


def _data_key_size(params: dict) -> int:
    spec, size = params.get("KeySpec"), params.get("NumberOfBytes")
    if spec is None and size is None:
        raise errors.ValidationException("Please specify either number of bytes or key spec.")
    if spec is not None and size is not None:
        raise errors.ValidationException("Please specify either number of bytes or key spec, not both.")
    return DATA_KEY_SPECS[spec] if spec is not None else size


async def _data_key(ctx: Any, params: dict, action: str) -> tuple[KeyRow, bytes, bytes]:
    who = caller(ctx, action)
    _no_recipient(params)
    size = _data_key_size(params)
    key = await _usable_key(ctx, who, params.get("KeyId"))
    _dry_run(params, who)
    plaintext = secrets.token_bytes(size)
    return key, plaintext, await seal(ctx.app, key, plaintext, params.get("EncryptionContext"))


async def generate_data_key(ctx: Any, params: dict) -> dict:
    key, plaintext, blob = await _data_key(ctx, params, "GenerateDataKey")
    return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": arn_of(key)}


async def generate_data_key_without_plaintext(ctx: Any, params: dict) -> dict:
    key, _, blob = await _data_key(ctx, params, "GenerateDataKeyWithoutPlaintext")
    return {"CiphertextBlob": blob, "KeyId": arn_of(key)}


async def generate_random(ctx: Any, params: dict) -> dict:
    _no_recipient(params)
    if params.get("CustomKeyStoreId"):
        raise errors.CustomKeyStoreNotFoundException(f"Custom key store {params['CustomKeyStoreId']} does not "
                                                     f"exist: this endpoint has no custom key stores.")
    size = params.get("NumberOfBytes")
    if size is None:
        raise errors.ValidationException("Please specify number of bytes.")
    return {"Plaintext": secrets.token_bytes(size)}
