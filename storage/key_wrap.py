"""Wrapping object data keys: by the data directory's master key (SSE-S3), by a customer's key
(SSE-C), and the verifier that tells a customer key apart without storing it.

The master key (``storage.master_key``) is never used directly: keys for each purpose are derived
from it with HMAC-SHA256 and a label, so that the same 32 bytes never serve two algorithms. A
wrapped key is ``nonce (12) | AES-256-GCM(data key) | tag (16)`` (60 bytes), the associated
data naming what it belongs to, so a wrapped key moved to another purpose does not unwrap.

A customer key (SSE-C) is never stored; ``customer_key_verifier`` is an HMAC of it keyed by a key
derived from the master key: it confirms that a later request brings the same key, and reveals
nothing about the key to someone who reads the database without the master key.

Crash story: nothing here writes anything (the wrapped keys go into the metadata rows of the
objects they belong to, in the transactions that create them).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12


class UnwrapFailed(Exception):
    """The wrapped key does not open with this key (another key, or altered bytes)."""


def derive(master_key: bytes, label: str) -> bytes:
    return hmac.new(master_key, b"nimbo key:" + label.encode(), hashlib.sha256).digest()


def wrap(key: bytes | AESGCM, data_key: bytes, context: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE)
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    return nonce + aead.encrypt(nonce, data_key, context)


def unwrap(key: bytes | AESGCM, wrapped: bytes, context: bytes) -> bytes:
    if len(wrapped) <= NONCE:
        raise UnwrapFailed("wrapped key too short")
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    try:
        return aead.decrypt(wrapped[:NONCE], wrapped[NONCE:], context)
    except InvalidTag:
        raise UnwrapFailed("the key does not unwrap") from None


class KeyRing:
    """The keys the object store derives from the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._sse_s3 = AESGCM(derive(master_key, "s3 sse-s3 data keys"))   # made once
        self._verifier = derive(master_key, "s3 sse-c key verifier")
        self._master_check = derive(master_key, "s3 master key check")

    def check_value(self) -> bytes:
        """16 bytes that tell this master key from another without revealing it: stored once,
        compared at every start (a replaced ``master.key`` would make every object unreadable)."""
        return derive(self._master_check, "check")[:16]

    def wrap_s3(self, data_key: bytes) -> bytes:
        return wrap(self._sse_s3, data_key, b"sse-s3")

    def unwrap_s3(self, wrapped: bytes) -> bytes:
        return unwrap(self._sse_s3, wrapped, b"sse-s3")

    def customer_key_verifier(self, customer_key: bytes) -> bytes:
        return hmac.new(self._verifier, customer_key, hashlib.sha256).digest()

    def customer_key_matches(self, customer_key: bytes, verifier: bytes) -> bool:
        return hmac.compare_digest(self.customer_key_verifier(customer_key), verifier)


def wrap_customer(customer_key: bytes, data_key: bytes) -> bytes:
    return wrap(customer_key, data_key, b"sse-c")


def unwrap_customer(customer_key: bytes, wrapped: bytes) -> bytes:
    return unwrap(customer_key, wrapped, b"sse-c")
