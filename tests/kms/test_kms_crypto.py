"""Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom: round trips, the
encryption context as associated data, key state errors, IncorrectKeyException, bad ciphertext."""
from __future__ import annotations

from _kms_testkit import ALICE

ARN = f"arn:aws:kms:us-east-1:{ALICE}:key/"


async def _key(alice) -> str:
    return (await alice("CreateKey"))["KeyMetadata"]["KeyId"]


async def test_encrypt_decrypt_round_trip_with_context(alice):
    key_id = await _key(alice)
    await alice("CreateAlias", AliasName="alias/data", TargetKeyId=key_id)
    for name in (key_id, ARN + key_id, "alias/data", f"arn:aws:kms:us-east-1:{ALICE}:alias/data"):
        out = await alice("Encrypt", KeyId=name, Plaintext=b"secret", EncryptionContext={"purpose": "test"})
        assert out["KeyId"] == ARN + key_id and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
        assert b"secret" not in out["CiphertextBlob"]
        back = await alice("Decrypt", CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"purpose": "test"})
        assert back == {"KeyId": ARN + key_id, "Plaintext": b"secret", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    blob = out["CiphertextBlob"]
    await alice.fails("Decrypt", "InvalidCiphertextException", CiphertextBlob=blob)
    await alice.fails("Decrypt", "InvalidCiphertextException", CiphertextBlob=blob,
                      EncryptionContext={"purpose": "other"})
    await alice.fails("Decrypt", "InvalidCiphertextException", CiphertextBlob=blob,
                      EncryptionContext={"Purpose": "test"})     # keys are case-sensitive
    same = await alice("Encrypt", KeyId=key_id, Plaintext=b"secret", EncryptionContext={"purpose": "test"})
    assert same["CiphertextBlob"] != blob      # a fresh nonce each time
    assert len((await alice("Encrypt", KeyId=key_id, Plaintext=b"x" * 4096))["CiphertextBlob"]) <= 6144


async def test_decrypt_with_the_wrong_key_id_is_incorrect_key(alice):
    one, two = await _key(alice), await _key(alice)
    blob = (await alice("Encrypt", KeyId=one, Plaintext=b"p"))["CiphertextBlob"]
    await alice.fails("Decrypt", "IncorrectKeyException", CiphertextBlob=blob, KeyId=two)
    assert (await alice("Decrypt", CiphertextBlob=blob, KeyId=ARN + one))["Plaintext"] == b"p"


async def test_malformed_ciphertext_and_plaintext_limits(alice):
    key_id = await _key(alice)
    blob = (await alice("Encrypt", KeyId=key_id, Plaintext=b"p"))["CiphertextBlob"]
    flipped = bytearray(blob)
    flipped[30] ^= 0x80
    for bad in (b"x", b"\x01" * 100, bytes(flipped), blob[:-1], b"\x02" + blob[1:]):
        await alice.fails("Decrypt", "InvalidCiphertextException", CiphertextBlob=bad)
    # a well-formed blob naming a key that does not exist
    await alice.fails("Decrypt", "NotFoundException", CiphertextBlob=b"\x01nkms" + b"\x11" * 60)
    await alice.fails("Decrypt", "ValidationException", CiphertextBlob=b"x" * 6145)
    await alice.fails("Encrypt", "ValidationException", KeyId=key_id, Plaintext=b"x" * 4097)
    await alice.fails("Encrypt", "ValidationException", KeyId=key_id, Plaintext=b"")
    await alice.fails("Encrypt", "InvalidKeyUsageException", KeyId=key_id, Plaintext=b"x",
                      EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    await alice.fails("Encrypt", "ValidationException", KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="AES")


async def test_state_errors_for_cryptographic_operations(alice):
    key_id = await _key(alice)
    other = await _key(alice)
    blob = (await alice("Encrypt", KeyId=key_id, Plaintext=b"p"))["CiphertextBlob"]
    await alice("DisableKey", KeyId=key_id)
    assert "is disabled" in await alice.fails("Encrypt", "DisabledException", KeyId=key_id, Plaintext=b"p")
    await alice.fails("Decrypt", "DisabledException", CiphertextBlob=blob)
    await alice.fails("GenerateDataKey", "DisabledException", KeyId=key_id, KeySpec="AES_256")
    await alice.fails("ReEncrypt", "DisabledException", CiphertextBlob=blob, DestinationKeyId=other)
    await alice("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    await alice.fails("Encrypt", "KMSInvalidStateException", KeyId=key_id, Plaintext=b"p")
    await alice.fails("Decrypt", "KMSInvalidStateException", CiphertextBlob=blob)
    await alice.fails("GenerateDataKeyWithoutPlaintext", "KMSInvalidStateException", KeyId=key_id,
                      NumberOfBytes=16)


async def test_generate_data_key_and_without_plaintext(alice):
    key_id = await _key(alice)
    out = await alice("GenerateDataKey", KeyId=key_id, KeySpec="AES_256", EncryptionContext={"a": "b"})
    assert len(out["Plaintext"]) == 32 and out["KeyId"] == ARN + key_id
    back = await alice("Decrypt", CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"a": "b"})
    assert back["Plaintext"] == out["Plaintext"]
    assert len((await alice("GenerateDataKey", KeyId=key_id, KeySpec="AES_128"))["Plaintext"]) == 16
    assert len((await alice("GenerateDataKey", KeyId=key_id, NumberOfBytes=1024))["Plaintext"]) == 1024
    bare = await alice("GenerateDataKeyWithoutPlaintext", KeyId=key_id, KeySpec="AES_256")
    assert "Plaintext" not in bare
    assert len((await alice("Decrypt", CiphertextBlob=bare["CiphertextBlob"]))["Plaintext"]) == 32
    await alice.fails("GenerateDataKey", "ValidationException", KeyId=key_id)
    await alice.fails("GenerateDataKey", "ValidationException", KeyId=key_id, KeySpec="AES_256", NumberOfBytes=32)
    await alice.fails("GenerateDataKey", "ValidationException", KeyId=key_id, NumberOfBytes=1025)
    await alice.fails("GenerateDataKey", "ValidationException", KeyId=key_id, NumberOfBytes=0)
    await alice.fails("GenerateDataKey", "ValidationException", KeyId=key_id, KeySpec="AES_512")


async def test_re_encrypt_moves_a_ciphertext_to_another_key(alice):
    one, two = await _key(alice), await _key(alice)
    blob = (await alice("Encrypt", KeyId=one, Plaintext=b"p", EncryptionContext={"v": "1"}))["CiphertextBlob"]
    moved = await alice("ReEncrypt", CiphertextBlob=blob, SourceEncryptionContext={"v": "1"},
                        DestinationKeyId=two, DestinationEncryptionContext={"v": "2"})
    assert moved["SourceKeyId"] == ARN + one and moved["KeyId"] == ARN + two
    back = await alice("Decrypt", CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"v": "2"})
    assert back["Plaintext"] == b"p" and back["KeyId"] == ARN + two
    await alice.fails("ReEncrypt", "InvalidCiphertextException", CiphertextBlob=blob, DestinationKeyId=two)
    await alice.fails("ReEncrypt", "IncorrectKeyException", CiphertextBlob=blob, SourceKeyId=two,
                      SourceEncryptionContext={"v": "1"}, DestinationKeyId=two)


async def test_dry_run_checks_and_does_nothing(alice):
    key_id = await _key(alice)
    await alice.fails("Encrypt", "DryRunOperationException", KeyId=key_id, Plaintext=b"p", DryRun=True)
    await alice("DisableKey", KeyId=key_id)
    await alice.fails("Encrypt", "DisabledException", KeyId=key_id, Plaintext=b"p", DryRun=True)


async def test_generate_random(alice):
    one = (await alice("GenerateRandom", NumberOfBytes=64))["Plaintext"]
    assert len(one) == 64 and one != (await alice("GenerateRandom", NumberOfBytes=64))["Plaintext"]
    await alice.fails("GenerateRandom", "ValidationException")
    await alice.fails("GenerateRandom", "ValidationException", NumberOfBytes=1025)
    await alice.fails("GenerateRandom", "CustomKeyStoreNotFoundException", NumberOfBytes=1,
                      CustomKeyStoreId="cks-1234567890abcdef0")


async def test_a_missing_ciphertext_and_dry_runs_that_ignore_it(alice):
    key_id = await _key(alice)
    await alice.fails("Decrypt", "ValidationException")
    await alice.fails("ReEncrypt", "ValidationException", DestinationKeyId=key_id)
    await alice.fails("Decrypt", "DryRunOperationException", KeyId=key_id, DryRun=True,
                      DryRunModifiers=["IGNORE_CIPHERTEXT"])
    await alice.fails("Decrypt", "ValidationException", DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"])
    await alice("DisableKey", KeyId=key_id)
    await alice.fails("Decrypt", "DisabledException", KeyId=key_id, DryRun=True,
                      DryRunModifiers=["IGNORE_CIPHERTEXT"])
