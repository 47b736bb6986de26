"""Key Management Service scenarios (JSON protocol): a symmetric key's life (create, describe,
list, disable, enable, schedule and cancel its deletion), aliases, Encrypt/Decrypt with an
encryption context, data keys, and KMS's errors (unknown keys, bad ciphertext, key states)."""
from __future__ import annotations

import base64
import os

from conformance import scenario


def _key(ctx, description: str = "conformance") -> dict:
    md = ctx.call("kms", "CreateKey", Description=description)["KeyMetadata"]
    ctx.defer(_delete_quietly, ctx, md["KeyId"])
    return md


def _delete_quietly(ctx, key_id: str) -> None:
    try:
        ctx.client("kms", validate=False).schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    except Exception:  # noqa: BLE001 - a clean-up
        pass


@scenario("kms", ["CreateKey", "DescribeKey", "ListKeys", "DisableKey", "EnableKey", "ScheduleKeyDeletion",
                  "CancelKeyDeletion"], client="boto3")
def key_life(ctx):
    """A new key is an Enabled SYMMETRIC_DEFAULT customer managed key; ListKeys pages with Limit and
    Marker; DisableKey/EnableKey flip KeyState; ScheduleKeyDeletion sets PendingDeletion and a
    DeletionDate; CancelKeyDeletion leaves the key Disabled."""
    md = _key(ctx)
    ctx.check_equal((md["KeyState"], md["KeySpec"], md["KeyUsage"], md["KeyManager"], md["Enabled"]),
                    ("Enabled", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "CUSTOMER", True), "KeyMetadata")
    ctx.check_equal(ctx.call("kms", "DescribeKey", KeyId=md["Arn"])["KeyMetadata"]["KeyId"], md["KeyId"], "by ARN")
    seen, marker = [], None
    for _ in range(1000):
        page = ctx.call("kms", "ListKeys", Limit=2, **({"Marker": marker} if marker else {}))
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page.get("Truncated"):
            break
        marker = page["NextMarker"]
    ctx.check(md["KeyId"] in seen, "ListKeys does not list the new key")
    ctx.check_equal(len(seen), len(set(seen)), "keys listed once")
    ctx.call("kms", "DisableKey", KeyId=md["KeyId"])
    ctx.check_equal(ctx.call("kms", "DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["KeyState"], "Disabled",
                    "KeyState after DisableKey")
    ctx.call("kms", "EnableKey", KeyId=md["KeyId"])
    deletion = ctx.call("kms", "ScheduleKeyDeletion", KeyId=md["KeyId"], PendingWindowInDays=7)
    ctx.check_equal((deletion["KeyState"], deletion["PendingWindowInDays"]), ("PendingDeletion", 7), "scheduled")
    ctx.call("kms", "CancelKeyDeletion", KeyId=md["KeyId"])
    ctx.check_equal(ctx.call("kms", "DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["KeyState"], "Disabled",
                    "KeyState after CancelKeyDeletion")


@scenario("kms", ["Encrypt", "Decrypt", "GenerateDataKey", "CreateAlias", "ListAliases", "DeleteAlias"],
          client="boto3")
def encrypt_decrypt(ctx):
    """Encrypt through an alias, Decrypt with the same encryption context; a data key's blob
    decrypts to its plaintext; the alias is listed with its TargetKeyId."""
    md = _key(ctx)
    alias = f"alias/{ctx.name('key')}"
    ctx.call("kms", "CreateAlias", AliasName=alias, TargetKeyId=md["KeyId"])
    ctx.defer(lambda: ctx.client("kms", validate=False).delete_alias(AliasName=alias))
    plaintext = os.urandom(100)
    blob = ctx.call("kms", "Encrypt", KeyId=alias, Plaintext=plaintext,
                    EncryptionContext={"purpose": "conformance"})["CiphertextBlob"]
    out = ctx.call("kms", "Decrypt", CiphertextBlob=blob, EncryptionContext={"purpose": "conformance"})
    ctx.check_equal((out["Plaintext"], out["KeyId"]), (plaintext, md["Arn"]), "Decrypt")
    data = ctx.call("kms", "GenerateDataKey", KeyId=md["KeyId"], KeySpec="AES_256")
    ctx.check_equal(len(data["Plaintext"]), 32, "AES_256 data key length")
    ctx.check_equal(ctx.call("kms", "Decrypt", CiphertextBlob=data["CiphertextBlob"])["Plaintext"],
                    data["Plaintext"], "the data key's blob")
    aliases = ctx.call("kms", "ListAliases", KeyId=md["KeyId"])["Aliases"]
    ctx.check_equal([(a["AliasName"], a.get("TargetKeyId")) for a in aliases], [(alias, md["KeyId"])], "ListAliases")


@scenario("kms", ["DescribeKey", "Decrypt", "Encrypt", "CreateAlias"], client="boto3", variant="errors")
def kms_errors(ctx):
    """NotFoundException for an unknown key or alias; InvalidCiphertextException for a blob that is not
    one or a wrong encryption context; DisabledException for a disabled key; NotAuthorizedException
    for an alias under alias/aws/."""
    with ctx.expect_error("NotFoundException", 400):
        ctx.call("kms", "DescribeKey", KeyId="alias/" + ctx.name("missing"))
    with ctx.expect_error("NotFoundException", 400):
        ctx.call("kms", "DescribeKey", KeyId="11111111-2222-3333-4444-555555555555")
    md = _key(ctx)
    blob = ctx.call("kms", "Encrypt", KeyId=md["KeyId"], Plaintext=b"p", EncryptionContext={"a": "1"})["CiphertextBlob"]
    with ctx.expect_error("InvalidCiphertextException", 400):
        ctx.call("kms", "Decrypt", CiphertextBlob=blob, EncryptionContext={"a": "2"})
    with ctx.expect_error("InvalidCiphertextException", 400):
        ctx.call("kms", "Decrypt", CiphertextBlob=b"not a ciphertext blob, not at all")
    with ctx.expect_error("NotAuthorizedException", 400):
        ctx.call("kms", "CreateAlias", AliasName="alias/aws/" + ctx.name("x"), TargetKeyId=md["KeyId"])
    ctx.call("kms", "DisableKey", KeyId=md["KeyId"])
    with ctx.expect_error("DisabledException", 400):
        ctx.call("kms", "Encrypt", KeyId=md["KeyId"], Plaintext=b"p")


@scenario("kms", ["CreateKey", "Encrypt", "Decrypt"], client="awscli")
def encrypt_decrypt_cli(ctx):
    """`aws kms create-key`, then `encrypt` and `decrypt` with fileb:// files."""
    key = ctx.aws("kms", "create-key", "--description", "conformance cli")["KeyMetadata"]
    ctx.defer(_delete_quietly, ctx, key["KeyId"])
    source = os.path.join(ctx.workdir, "plain.bin")
    with open(source, "wb") as fh:
        fh.write(b"line one\n\x00\xff")
    encrypted = ctx.aws("kms", "encrypt", "--key-id", key["KeyId"], "--plaintext", f"fileb://{source}")
    blob = os.path.join(ctx.workdir, "blob.bin")
    with open(blob, "wb") as fh:
        fh.write(base64.b64decode(encrypted["CiphertextBlob"]))
    decrypted = ctx.aws("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}")
    ctx.check_equal(base64.b64decode(decrypted["Plaintext"]), b"line one\n\x00\xff", "Plaintext")
