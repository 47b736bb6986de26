"""Tenant isolation for every KMS operation: one account never sees or touches another's keys,
aliases, tags or ciphertexts. Another account's key id reads as no key (NotFoundException, the
same answer as for an id that names nothing); another account's ARN is AccessDeniedException
(no key policy grants another account here)."""
from __future__ import annotations

import pytest

from _kms_testkit import ALICE
from kms_api.operations import OPERATIONS

POLICY = '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*"}]}'

# operation -> the parameters besides the key name (KeyId unless the name goes elsewhere)
BY_KEY = {
    "DescribeKey": {}, "UpdateKeyDescription": {"Description": "mine now"}, "EnableKey": {}, "DisableKey": {},
    "ScheduleKeyDeletion": {"PendingWindowInDays": 7}, "CancelKeyDeletion": {},
    "TagResource": {"Tags": [{"TagKey": "owner", "TagValue": "bob"}]}, "UntagResource": {"TagKeys": ["env"]},
    "ListResourceTags": {}, "GetKeyPolicy": {}, "PutKeyPolicy": {"PolicyName": "default", "Policy": POLICY},
    "ListKeyPolicies": {}, "GetKeyRotationStatus": {}, "EnableKeyRotation": {}, "DisableKeyRotation": {},
    "Encrypt": {"Plaintext": b"x"}, "GenerateDataKey": {"KeySpec": "AES_256"},
    "GenerateDataKeyWithoutPlaintext": {"NumberOfBytes": 16}, "ListAliases": {},
}


@pytest.fixture
async def alices(alice):
    md = (await alice("CreateKey", Tags=[{"TagKey": "env", "TagValue": "prod"}]))["KeyMetadata"]
    await alice("CreateAlias", AliasName="alias/shared-name", TargetKeyId=md["KeyId"])
    blob = (await alice("Encrypt", KeyId=md["KeyId"], Plaintext=b"alice's")).get("CiphertextBlob")
    return md, blob


async def _unchanged(alice, md) -> None:
    now = (await alice("DescribeKey", KeyId=md["KeyId"]))["KeyMetadata"]
    assert (now["KeyState"], now["Description"]) == (md["KeyState"], md["Description"])
    assert (await alice("ListResourceTags", KeyId=md["KeyId"]))["Tags"] == [{"TagKey": "env", "TagValue": "prod"}]
    assert (await alice("GetKeyRotationStatus", KeyId=md["KeyId"]))["KeyRotationEnabled"] is False
    assert "Principal\": \"*\"" not in (await alice("GetKeyPolicy", KeyId=md["KeyId"]))["Policy"]


@pytest.mark.parametrize("operation", sorted(BY_KEY))
async def test_another_accounts_key_id_is_not_found(alice, bob, alices, operation):
    md, _ = alices
    message = await bob.fails(operation, "NotFoundException", KeyId=md["KeyId"], **BY_KEY[operation])
    assert ALICE not in message
    await _unchanged(alice, md)


@pytest.mark.parametrize("operation", sorted(BY_KEY))
async def test_another_accounts_key_arn_is_access_denied(alice, bob, alices, operation):
    md, _ = alices
    await bob.fails(operation, "AccessDeniedException", KeyId=md["Arn"], **BY_KEY[operation])
    await _unchanged(alice, md)


@pytest.mark.parametrize("operation", ["Encrypt", "GenerateDataKey", "DescribeKey"])
async def test_another_accounts_alias_is_its_own(alice, bob, alices, operation):
    md, _ = alices
    await bob.fails(operation, "NotFoundException", KeyId="alias/shared-name", **BY_KEY[operation])
    await bob.fails(operation, "AccessDeniedException", KeyId=f"arn:aws:kms:us-east-1:{ALICE}:alias/shared-name",
                    **BY_KEY[operation])


async def test_ciphertexts_and_reencrypt_across_accounts(alice, bob, alices):
    md, blob = alices
    bobs = (await bob("CreateKey"))["KeyMetadata"]
    assert ALICE not in await bob.fails("Decrypt", "NotFoundException", CiphertextBlob=blob)
    await bob.fails("Decrypt", "NotFoundException", CiphertextBlob=blob, KeyId=md["KeyId"])
    await bob.fails("Decrypt", "IncorrectKeyException", CiphertextBlob=blob, KeyId=bobs["KeyId"])
    await bob.fails("ReEncrypt", "NotFoundException", CiphertextBlob=blob, DestinationKeyId=bobs["KeyId"])
    await alice.fails("ReEncrypt", "NotFoundException", CiphertextBlob=blob, DestinationKeyId=bobs["KeyId"])
    await alice.fails("ReEncrypt", "AccessDeniedException", CiphertextBlob=blob, DestinationKeyId=bobs["Arn"])
    assert (await alice("Decrypt", CiphertextBlob=blob))["Plaintext"] == b"alice's"


async def test_lists_and_aliases_are_per_account(alice, bob, alices):
    md, _ = alices
    assert (await bob("ListKeys"))["Keys"] == []
    assert all("TargetKeyId" not in a for a in (await bob("ListAliases"))["Aliases"])
    await bob.fails("CreateAlias", "NotFoundException", AliasName="alias/steal", TargetKeyId=md["KeyId"])
    await bob.fails("CreateAlias", "AccessDeniedException", AliasName="alias/steal", TargetKeyId=md["Arn"])
    bobs = (await bob("CreateKey"))["KeyMetadata"]["KeyId"]
    await bob("CreateAlias", AliasName="alias/shared-name", TargetKeyId=bobs)     # the same name: his own
    await bob.fails("UpdateAlias", "NotFoundException", AliasName="alias/shared-name", TargetKeyId=md["KeyId"])
    await bob("DeleteAlias", AliasName="alias/shared-name")
    await bob.fails("DeleteAlias", "NotFoundException", AliasName="alias/shared-name")
    assert (await alice("DescribeKey", KeyId="alias/shared-name"))["KeyMetadata"]["KeyId"] == md["KeyId"]
    await alice.fails("UpdateAlias", "NotFoundException", AliasName="alias/shared-name", TargetKeyId=bobs)
    alias_names = [a["AliasName"] for a in (await alice("ListAliases", KeyId=md["KeyId"]))["Aliases"]]
    assert alias_names == ["alias/shared-name"]
    # the AWS managed keys are per account
    assert (await alice("DescribeKey", KeyId="alias/aws/s3"))["KeyMetadata"]["KeyId"] != \
        (await bob("DescribeKey", KeyId="alias/aws/s3"))["KeyMetadata"]["KeyId"]


def test_every_operation_is_covered_here():
    covered = set(BY_KEY) | {"Decrypt", "ReEncrypt", "CreateAlias", "UpdateAlias", "DeleteAlias", "ListKeys",
                             "CreateKey", "GenerateRandom"}
    assert set(OPERATIONS) <= covered, sorted(set(OPERATIONS) - covered)
