"""The S3 service's ``data_key_of`` for ``storage.object_files`` (set on its store): the data key of an encrypted
version that another service (EC2's ImportImage, RegisterImage) reads for an account.

SSE-S3 keys unwrap with the master key; SSE-KMS keys through Nimbo's KMS as the requesting
account (its errors, e.g. a disabled key, make the object unavailable); SSE-C objects cannot be
read without their customer's key, which no other service has: ``LookupError``.
"""
from __future__ import annotations

import base64

from s3_api import encryption
from storage import key_wrap
from storage.objects import ObjectVersion


def install(state, app=None) -> None:
    async def data_key_of(version: ObjectVersion, account_id: str) -> bytes:
        found = encryption.parse(version.sse)
        if found is None:
            raise LookupError("not encrypted")
        if found.algorithm == encryption.AES256:
            return state.keys.unwrap_s3(base64.b64decode(found.stored["k"]))
        if found.algorithm == encryption.SSE_C or app is None:
            raise LookupError(found.algorithm)
        try:
            from kms_api import data_keys  # noqa: PLC0415
            _, key = await data_keys.decrypt_data_key(
                app, account_id, base64.b64decode(found.stored["k"]), found.stored.get("c") or {})
            if found.stored.get("w"):
                key = key_wrap.unwrap(key, base64.b64decode(found.stored["w"]),
                                      encryption.ENVELOPE)
        except Exception as exc:  # any KMS refusal: the object is not available to them
            raise LookupError(str(exc)) from exc
        return key

    state.store.data_key_of = data_key_of
