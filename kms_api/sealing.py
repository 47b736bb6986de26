"""Encrypting under a key and decrypting a ciphertext blob, for the API's cryptographic operations
and for other services (``kms_api.data_keys``): the key lookups, state checks and errors AWS
gives, around ``kms_api.key_material``."""
from __future__ import annotations

from typing import Any

from kms_api import errors, key_material
from kms_api.identifiers import Caller, arn_of, check_usable
from kms_api.state import state_of
from storage import kms_keys as store
from storage.kms_keys import KeyRow

MAX_PLAINTEXT = 4096


async def seal(app: Any, key: KeyRow, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    """A ciphertext blob of ``plaintext`` under ``key`` (which must be usable)."""
    check_usable(key)
    state = await state_of(app)
    return key_material.seal(state.material(key), key.key_id, plaintext, context)


async def unseal(app: Any, caller: Caller, blob: bytes, context: dict[str, str] | None,
                 expected: KeyRow | None = None, any_region: bool = False) -> tuple[KeyRow, bytes]:
    """(the key, the plaintext) of a ciphertext blob the caller's account made; ``expected``: the key
    the request named (IncorrectKeyException when the blob names another); ``any_region``: the key
    may be in any region of the account (a service that stored the blob knows it is the account's)."""
    state = await state_of(app)
    parsed = key_material.parse_blob(blob)
    if expected is not None and expected.key_id != parsed.key_id:
        raise errors.IncorrectKeyException("The key ID in the request does not identify a KMS key that can "
                                           "perform this operation.")
    key = expected or await store.get_key(app.db, caller.account_id, parsed.key_id)
    if key is None or (key.region != caller.region and not any_region):
        # another account's key reads as no key at all (its ARN is not the caller's to learn)
        raise errors.NotFoundException(f"Key '{_arn(caller, parsed.key_id)}' does not exist")
    check_usable(key)
    return key, key_material.open_blob(state.material(key), parsed, context)


def _arn(caller: Caller, key_id: str) -> str:
    return f"arn:aws:kms:{caller.region}:{caller.account_id}:key/{key_id}"


__all__ = ["seal", "unseal", "arn_of", "MAX_PLAINTEXT"]
