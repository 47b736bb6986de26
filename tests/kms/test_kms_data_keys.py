"""The interface S3's SSE-KMS uses (``kms_api.data_keys``): data keys under the account's keys, the
AWS managed ``alias/aws/s3`` key made on first use, blobs that KMS's own Decrypt accepts, and the
errors S3 passes on."""
from __future__ import annotations

import base64
import os

import pytest

from kms_api import errors
from kms_api.data_keys import decrypt_data_key, generate_data_key
from kms_api.state import state_of
from storage import kms_keys as store

from _kms_testkit import ALICE, BOB

CONTEXT = {"aws:s3:arn": "arn:aws:s3:::bucket/key"}


async def test_default_key_is_the_aws_managed_aws_s3_key_made_once(app, alice):
    first = await generate_data_key(app, ALICE, None, CONTEXT)
    assert len(first.plaintext) == 32 and first.key_arn.startswith(f"arn:aws:kms:us-east-1:{ALICE}:key/")
    second = await generate_data_key(app, ALICE, None, CONTEXT)
    assert second.key_arn == first.key_arn and second.plaintext != first.plaintext
    assert "plaintext" not in repr(first) and first.plaintext.hex() not in repr(first)
    described = (await alice("DescribeKey", KeyId="alias/aws/s3"))["KeyMetadata"]
    assert described["Arn"] == first.key_arn and described["KeyManager"] == "AWS"
    assert await decrypt_data_key(app, ALICE, first.blob, CONTEXT) == (first.key_arn, first.plaintext)
    # another account gets its own aws/s3 key
    bobs = await generate_data_key(app, BOB, None, CONTEXT)
    assert bobs.key_arn != first.key_arn and f":{BOB}:key/" in bobs.key_arn


async def test_concurrent_first_use_makes_one_managed_key(app):
    import asyncio
    made = await asyncio.gather(*(generate_data_key(app, ALICE, None, CONTEXT) for _ in range(8)))
    assert len({d.key_arn for d in made}) == 1
    rows = await app.db.fetchall("SELECT key_id FROM kms_keys WHERE account_id = ?", (ALICE,))
    assert len(rows) == 1


async def test_every_way_to_name_a_customer_key(app, alice):
    key = (await alice("CreateKey", Description="sse"))["KeyMetadata"]
    await store.insert_alias(app.db, ALICE, "us-east-1", "alias/sse", key["KeyId"], 0)
    for name in (key["KeyId"], key["Arn"], "alias/sse", f"arn:aws:kms:us-east-1:{ALICE}:alias/sse"):
        made = await generate_data_key(app, ALICE, name, CONTEXT)
        assert made.key_arn == key["Arn"]
        assert await decrypt_data_key(app, ALICE, made.blob, CONTEXT) == (key["Arn"], made.plaintext)


async def test_the_blob_is_what_kms_decrypt_accepts(app, alice):
    key = (await alice("CreateKey"))["KeyMetadata"]
    made = await generate_data_key(app, ALICE, key["KeyId"], CONTEXT)
    from kms_api.sealing import unseal
    from kms_api.identifiers import Caller
    found, plaintext = await unseal(app, Caller(ALICE, "us-east-1", "Decrypt"), made.blob, CONTEXT)
    assert found.key_id == key["KeyId"] and plaintext == made.plaintext


async def test_wrong_context_or_altered_blob_is_invalid_ciphertext(app):
    made = await generate_data_key(app, ALICE, None, CONTEXT)
    for context in ({}, {"aws:s3:arn": "arn:aws:s3:::bucket/other"}, {**CONTEXT, "extra": "x"}):
        with pytest.raises(errors.InvalidCiphertextException):
            await decrypt_data_key(app, ALICE, made.blob, context)
    altered = bytearray(made.blob)
    altered[-1] ^= 1
    for blob in (bytes(altered), made.blob[:20], b"", b"\x00" * 80, made.blob + b"x"):
        with pytest.raises(errors.InvalidCiphertextException):
            await decrypt_data_key(app, ALICE, blob, CONTEXT)
    # the context's order does not matter
    two = {"a": "1", "b": "2"}
    made = await generate_data_key(app, ALICE, None, two)
    assert (await decrypt_data_key(app, ALICE, made.blob, {"b": "2", "a": "1"}))[1] == made.plaintext


async def test_another_accounts_keys_and_blobs(app, alice):
    key = (await alice("CreateKey"))["KeyMetadata"]
    with pytest.raises(errors.NotFoundException):
        await generate_data_key(app, BOB, key["KeyId"], CONTEXT)
    with pytest.raises(errors.AccessDeniedException):
        await generate_data_key(app, BOB, key["Arn"], CONTEXT)
    with pytest.raises(errors.AccessDeniedException):
        await generate_data_key(app, BOB, f"arn:aws:kms:us-east-1:{ALICE}:alias/aws/s3", CONTEXT)
    made = await generate_data_key(app, ALICE, key["KeyId"], CONTEXT)
    with pytest.raises(errors.NotFoundException) as caught:
        await decrypt_data_key(app, BOB, made.blob, CONTEXT)
    assert ALICE not in caught.value.message


async def test_unknown_and_malformed_key_names(app):
    for name in ("alias/none", "1234abcd-12ab-34cd-56ef-1234567890ab", "nonsense", "arn:aws:kms:us-east-1"):
        with pytest.raises(errors.NotFoundException):
            await generate_data_key(app, ALICE, name, CONTEXT)


async def test_disabled_and_pending_deletion_keys_refuse(app, alice):
    key = (await alice("CreateKey"))["KeyMetadata"]
    made = await generate_data_key(app, ALICE, key["KeyId"], CONTEXT)
    await alice("DisableKey", KeyId=key["KeyId"])
    with pytest.raises(errors.DisabledException):
        await generate_data_key(app, ALICE, key["KeyId"], CONTEXT)
    with pytest.raises(errors.DisabledException):
        await decrypt_data_key(app, ALICE, made.blob, CONTEXT)
    await alice("ScheduleKeyDeletion", KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(errors.KMSInvalidStateException):
        await generate_data_key(app, ALICE, key["KeyId"], CONTEXT)
    with pytest.raises(errors.KMSInvalidStateException):
        await decrypt_data_key(app, ALICE, made.blob, CONTEXT)
    await alice("CancelKeyDeletion", KeyId=key["KeyId"])
    await alice("EnableKey", KeyId=key["KeyId"])
    assert (await decrypt_data_key(app, ALICE, made.blob, CONTEXT))[1] == made.plaintext


async def test_key_material_is_never_on_disk_in_plaintext(app, alice, tmp_path):
    key = (await alice("CreateKey"))["KeyMetadata"]
    state = await state_of(app)
    row = await store.get_key(app.db, ALICE, key["KeyId"])
    material = state.material(row)
    managed = await generate_data_key(app, ALICE, None, CONTEXT)
    managed_material = state.material(await store.get_key(app.db, ALICE, managed.key_arn.rsplit("/", 1)[1]))
    assert len(material) == 32 and material not in row.material
    await app.db.close()   # everything on disk: database, WAL
    from storage.db import Database
    for root, _, files in os.walk(tmp_path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                data = fh.read()
            for secret in (material, managed_material, managed.plaintext):
                assert secret not in data and base64.b64encode(secret) not in data and \
                    secret.hex().encode() not in data, name
    app.db = await Database.open(os.path.join(tmp_path, "nimbo.db"))
    assert oct(os.stat(tmp_path / "master.key").st_mode & 0o777) == "0o600"


async def test_key_arn_resolves_names_and_makes_the_default_key(app, alice):
    from kms_api.data_keys import key_arn
    key = (await alice("CreateKey"))["KeyMetadata"]
    await alice("CreateAlias", AliasName="alias/cfg", TargetKeyId=key["KeyId"])
    assert await key_arn(app, ALICE, "alias/cfg") == key["Arn"]
    await alice("DisableKey", KeyId=key["KeyId"])
    assert await key_arn(app, ALICE, key["KeyId"]) == key["Arn"]       # any state: a configuration check
    default = await key_arn(app, ALICE, None)
    assert default == (await generate_data_key(app, ALICE, None, CONTEXT)).key_arn
    with pytest.raises(errors.NotFoundException):
        await key_arn(app, BOB, key["KeyId"])
    with pytest.raises(errors.AccessDeniedException):
        await key_arn(app, BOB, key["Arn"])


async def test_data_key_requests_are_metered_to_the_account(app):
    counted = []
    app.meter_buffer = type("Buffer", (), {"add": lambda self, *row: counted.append(row)})()
    made = await generate_data_key(app, ALICE, None, CONTEXT)
    await decrypt_data_key(app, ALICE, made.blob, CONTEXT)
    assert [(r[0], r[1], r[2], r[3], r[4], r[7]) for r in counted] == [
        (ALICE, "us-east-1", "awskms", "KMS-Requests", "GenerateDataKey", 1),
        (ALICE, "us-east-1", "awskms", "KMS-Requests", "Decrypt", 1)]
