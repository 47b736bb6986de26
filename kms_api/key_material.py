"""Key material and ciphertext blobs: the only module that handles a KMS key's secret bytes.

A key's material is 32 random bytes (AES-256), made once when the key is created. On disk it is
wrapped with AES-256-GCM under the data directory's master key (``storage.master_key``), with the
key's id as associated data (a wrapped material moved to another key's row does not unwrap). The
material is never logged and never written unwrapped; the process keeps unwrapped material in
memory only (a small cache, cleared at shutdown).

A ciphertext blob, as Encrypt and GenerateDataKey return it and Decrypt takes it::

    version (1 byte, 0x01) | "nkms" | key id (16 bytes, the key's UUID) | nonce (12 bytes) | AES-256-GCM ciphertext + tag

The associated data is the blob's header (version, marker and key id) followed by the encryption
context, serialized canonically (the pairs sorted by key, as JSON): a blob decrypts only under
the key it names and with exactly the context it was made with (order of the pairs aside), as
AWS documents. Anything else (a truncated or altered blob, another context) is
InvalidCiphertextException.
"""
from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms_api import errors

MATERIAL_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
BLOB_VERSION = 1
_MARKER = b"nkms"
_HEADER = 1 + len(_MARKER) + 16
MIN_BLOB = _HEADER + NONCE_BYTES + TAG_BYTES
_WRAP_VERSION = b"\x01"


def new_material() -> bytes:
    return secrets.token_bytes(MATERIAL_BYTES)


def wrap(master_key: bytes, key_id: str, material: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return _WRAP_VERSION + nonce + AESGCM(master_key).encrypt(nonce, material, _wrap_aad(key_id))


def unwrap(master_key: bytes, key_id: str, wrapped: bytes) -> bytes:
    if wrapped[:1] != _WRAP_VERSION:
        raise errors.KMSInternalException("The key material of this key cannot be read.")
    nonce, sealed = wrapped[1:1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES:]
    try:
        return AESGCM(master_key).decrypt(nonce, sealed, _wrap_aad(key_id))
    except InvalidTag:
        # another master key than the one the material was wrapped with (a replaced master.key)
        raise errors.KMSInternalException("The key material of this key cannot be read with this data "
                                          "directory's master key.") from None


def _wrap_aad(key_id: str) -> bytes:
    return b"nimbo-kms-key-material:" + key_id.encode()


def canonical_context(context: dict[str, str] | None) -> bytes:
    if not context:
        return b""
    return json.dumps(sorted(context.items()), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def seal(material: bytes, key_id: str, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    header = bytes([BLOB_VERSION]) + _MARKER + uuid.UUID(key_id).bytes
    nonce = secrets.token_bytes(NONCE_BYTES)
    return header + nonce + AESGCM(material).encrypt(nonce, plaintext, header + canonical_context(context))


@dataclass(frozen=True)
class Blob:
    key_id: str
    header: bytes
    nonce: bytes
    sealed: bytes


def parse_blob(blob: bytes) -> Blob:
    """The parts of a ciphertext blob; InvalidCiphertextException for what is not one."""
    if len(blob) < MIN_BLOB or blob[0] != BLOB_VERSION or blob[1:1 + len(_MARKER)] != _MARKER:
        raise errors.InvalidCiphertextException()
    key_id = str(uuid.UUID(bytes=bytes(blob[1 + len(_MARKER):_HEADER])))
    return Blob(key_id, bytes(blob[:_HEADER]), bytes(blob[_HEADER:_HEADER + NONCE_BYTES]),
                bytes(blob[_HEADER + NONCE_BYTES:]))


def open_blob(material: bytes, blob: Blob, context: dict[str, str] | None) -> bytes:
    try:
        return AESGCM(material).decrypt(blob.nonce, blob.sealed, blob.header + canonical_context(context))
    except InvalidTag:
        raise errors.InvalidCiphertextException() from None
