"""KMS through real clients against a live server: boto3's kms client and aws-cli (``aws kms
create-key``, ``encrypt``/``decrypt`` with ``fileb://``), tenants kept apart, bad input answered
with KMS's errors (never a 500), and no plaintext of a data key in the data directory."""
from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import urllib.request

import botocore.exceptions
import pytest

from tests.conftest import NimboServer
from tests.e2e.test_foundation import aws_cli, signed


def code_of(call, *args, **kwargs) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, caught.value.response
    return caught.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def kms(server):
    return server.client("kms")


def test_boto3_key_life(kms):
    md = kms.create_key(Description="e2e", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    key_id = md["KeyId"]
    alias = f"alias/e2e-{key_id[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    blob = kms.encrypt(KeyId=alias, Plaintext=b"hello kms", EncryptionContext={"app": "e2e"})["CiphertextBlob"]
    out = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "e2e"})
    assert out["Plaintext"] == b"hello kms" and out["KeyId"] == md["Arn"]
    assert code_of(kms.decrypt, CiphertextBlob=blob) == "InvalidCiphertextException"
    assert code_of(kms.decrypt, CiphertextBlob=b"garbage" * 10) == "InvalidCiphertextException"
    data = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=data["CiphertextBlob"])["Plaintext"] == data["Plaintext"]
    assert alias in [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]]
    listed = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1})
              for k in page["Keys"]]
    assert key_id in listed and len(listed) == len(set(listed))
    kms.disable_key(KeyId=key_id)
    assert code_of(kms.encrypt, KeyId=key_id, Plaintext=b"x") == "DisabledException"
    deletion = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert deletion["KeyState"] == "PendingDeletion" and "DeletionDate" in deletion
    assert code_of(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"app": "e2e"}) == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "a"}]
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])["Statement"]


def test_boto3_errors_are_kms_errors(kms):
    assert code_of(kms.describe_key, KeyId="not-a-key") == "NotFoundException"
    assert code_of(kms.describe_key, KeyId="alias/none-such") == "NotFoundException"
    assert code_of(kms.create_key, KeySpec="RSA_2048") == "UnsupportedOperationException"
    assert code_of(kms.create_alias, AliasName="alias/aws/mine",
                   TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"]) == "NotAuthorizedException"
    assert code_of(kms.generate_random, NumberOfBytes=5000) == "ValidationException"
    assert code_of(kms.list_keys, Marker="bogus") == "InvalidMarkerException"
    managed = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert managed["KeyManager"] == "AWS"
    assert code_of(kms.disable_key, KeyId=managed["KeyId"]) == "AccessDeniedException"
    assert code_of(kms.schedule_key_deletion, KeyId=managed["KeyId"]) == "AccessDeniedException"


def test_malformed_requests_are_never_500(server):
    target = {"X-Amz-Target": "TrentService.Encrypt", "Content-Type": "application/x-amz-json-1.1"}
    for body in ("{not json", "[]", '{"KeyId": 5, "Plaintext": "aGk="}', '{"KeyId": "x", "Plaintext": "@@@"}',
                 '{"Plaintext": "aGk="}', '{"KeyId": "x"}'):
        status, text, headers = signed(server, "kms", body, headers=target)
        assert 400 <= status < 500, (body, status, text)
        assert json.loads(text)["__type"] in ("SerializationException", "ValidationException",
                                              "NotFoundException"), text
    status, text, _ = signed(server, "kms", "{}", headers={**target, "X-Amz-Target": "TrentService.Nope"})
    assert status == 400 and json.loads(text)["__type"] == "UnknownOperationException"
    unsigned = urllib.request.Request(server.endpoint + "/", data=b"{}", method="POST", headers=target)
    try:
        urllib.request.urlopen(unsigned, timeout=10)
        raise AssertionError("an unsigned KMS request was served")
    except urllib.error.HTTPError as err:
        assert err.code in (400, 403) and err.headers.get("Content-Type", "").startswith("application/x-amz-json")


def test_tenants_do_not_see_each_others_keys(server, tenant, kms):
    theirs = server.client("kms", account=tenant)
    md = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"private")["CiphertextBlob"]
    assert code_of(theirs.describe_key, KeyId=md["KeyId"]) == "NotFoundException"
    assert code_of(theirs.describe_key, KeyId=md["Arn"]) == "AccessDeniedException"
    assert code_of(theirs.encrypt, KeyId=md["Arn"], Plaintext=b"x") == "AccessDeniedException"
    assert code_of(theirs.decrypt, CiphertextBlob=blob) == "NotFoundException"
    assert code_of(theirs.schedule_key_deletion, KeyId=md["KeyId"]) == "NotFoundException"
    assert md["KeyId"] not in [k["KeyId"] for k in theirs.list_keys()["Keys"]]
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_aws_cli_create_key_encrypt_decrypt_with_fileb(server, tmp_path):
    def cli(*args):
        done = aws_cli(server, "kms", *args)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout) if done.stdout.strip() else {}

    key = cli("create-key", "--description", "from the cli")["KeyMetadata"]
    cli("create-alias", "--alias-name", f"alias/cli-{key['KeyId'][:8]}", "--target-key-id", key["KeyId"])
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"a secret line\n\x00\xff binary too")
    encrypted = cli("encrypt", "--key-id", f"alias/cli-{key['KeyId'][:8]}", "--plaintext", f"fileb://{secret}",
                    "--encryption-context", "purpose=cli")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(base64.b64decode(encrypted["CiphertextBlob"]))
    decrypted = cli("decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "purpose=cli")
    assert base64.b64decode(decrypted["Plaintext"]) == secret.read_bytes()
    assert decrypted["KeyId"] == key["Arn"]
    wrong = aws_cli(server, "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}")
    assert wrong.returncode != 0 and "InvalidCiphertextException" in wrong.stderr
    listed = cli("list-aliases", "--key-id", key["KeyId"])["Aliases"]
    assert [a["TargetKeyId"] for a in listed] == [key["KeyId"]]


def test_no_data_key_plaintext_in_the_data_directory(server, kms):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    secrets_made = [kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"] for _ in range(3)]
    marker = os.urandom(24)
    kms.encrypt(KeyId=key_id, Plaintext=marker)
    for root, _, files in os.walk(server.data_dir):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.isfile(path) or os.path.getsize(path) > 256 << 20:
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            for secret in (*secrets_made, marker):
                assert secret not in data and base64.b64encode(secret) not in data, path


def test_kill_9_keeps_every_acknowledged_key_and_ciphertext(tmp_path):
    """Crash story: a key (and its wrapped material) is one transaction; after kill -9 every key
    CreateKey acknowledged is there and decrypts what Encrypt acknowledged."""
    server = NimboServer(str(tmp_path / "data"), extra_args=["--backend", "fake"]).start()
    made: list[tuple[str, bytes, bytes]] = []
    stop = threading.Event()

    def work():
        kms = server.client("kms")
        for n in range(200):
            if stop.is_set():
                return
            try:
                key_id = kms.create_key()["KeyMetadata"]["KeyId"]
                plaintext = f"record {n}".encode()
                blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
            except Exception:   # noqa: BLE001 - the server was killed mid-request
                return
            made.append((key_id, plaintext, blob))

    worker = threading.Thread(target=work)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(made) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop(signal.SIGKILL)
        stop.set()
        worker.join(30)
        assert len(made) >= 5
        server.start()
        kms = server.client("kms")
        listed = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
        for key_id, plaintext, blob in made:
            assert key_id in listed
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    finally:
        stop.set()
        server.stop(signal.SIGKILL)
