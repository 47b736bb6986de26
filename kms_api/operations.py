"""Every KMS action Nimbo implements, by its botocore operation name, and the service's state.

Each handler is wrapped once: the model's input constraints are checked first
(``kms_api.validation``), and the request is metered to the caller's account (``KMS-Requests``,
product ``awskms``)."""
from __future__ import annotations

import functools
from typing import Any

from kms_api import aliases, crypto, key_policies, keys, rotation, tagging, validation
from kms_api.state import close_state, open_state  # noqa: F401  (the gateway's hooks)

SERVICE_MODEL = "kms"
PRODUCT_CODE = "awskms"


_service_model = None


def use_models(service_model) -> None:
    """Where KMS's model comes from: the gateway's loader (``gateway.registry``: one copy per
    process, the one the codec serves with); botocore's own when none is given."""
    global _service_model
    if service_model is _service_model:
        return
    _service_model = service_model
    _model.cache_clear()


@functools.lru_cache(maxsize=1)
def _model():
    """KMS's model, loaded once per process, on the first KMS request (a session per handler
    held 27 copies of it: ~35 MB in every process)."""
    if _service_model is not None:
        return _service_model(SERVICE_MODEL)
    import botocore.session   # noqa: PLC0415
    return botocore.session.get_session().get_service_model(SERVICE_MODEL)


def _wrapped(name: str, handler):
    operation = None    # the operation's model, found by its first request

    @functools.wraps(handler)
    async def run(ctx: Any, params: dict) -> dict:
        nonlocal operation
        if operation is None:
            operation = _model().operation_model(name)
        validation.check(operation, params)
        meter = getattr(ctx, "meter", None)
        if meter is not None:
            meter.service = PRODUCT_CODE
            meter.count("KMS-Requests", name, 1)
        return await handler(ctx, params)
    return run


_HANDLERS = {
    "CreateKey": keys.create_key,
    "DescribeKey": keys.describe_key,
    "ListKeys": keys.list_keys,
    "UpdateKeyDescription": keys.update_key_description,
    "EnableKey": keys.enable_key,
    "DisableKey": keys.disable_key,
    "ScheduleKeyDeletion": keys.schedule_key_deletion,
    "CancelKeyDeletion": keys.cancel_key_deletion,
    "TagResource": tagging.tag_resource,
    "UntagResource": tagging.untag_resource,
    "ListResourceTags": tagging.list_resource_tags,
    "CreateAlias": aliases.create_alias,
    "UpdateAlias": aliases.update_alias,
    "DeleteAlias": aliases.delete_alias,
    "ListAliases": aliases.list_aliases,
    "Encrypt": crypto.encrypt,
    "Decrypt": crypto.decrypt,
    "ReEncrypt": crypto.re_encrypt,
    "GenerateDataKey": crypto.generate_data_key,
    "GenerateDataKeyWithoutPlaintext": crypto.generate_data_key_without_plaintext,
    "GenerateRandom": crypto.generate_random,
    "GetKeyPolicy": key_policies.get_key_policy,
    "PutKeyPolicy": key_policies.put_key_policy,
    "ListKeyPolicies": key_policies.list_key_policies,
    "GetKeyRotationStatus": rotation.get_key_rotation_status,
    "EnableKeyRotation": rotation.enable_key_rotation,
    "DisableKeyRotation": rotation.disable_key_rotation,
}

OPERATIONS = {name: _wrapped(name, handler) for name, handler in _HANDLERS.items()}
