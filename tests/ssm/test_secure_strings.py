"""SecureString parameters as Parameter Store keeps them: encrypted under a KMS key (``KeyId``, or the
AWS managed ``alias/aws/ssm`` made on first use), the ciphertext answered without ``WithDecryption``
(base64 of a KMS ciphertext blob that KMS's Decrypt opens with the ``PARAMETER_ARN`` context), the
plaintext with it; DescribeParameters shows the KeyId; KMS's refusals as ``InvalidKeyId``; one
account never reaches another's keys or parameters; the plaintext never lands on disk. Handlers
with botocore's parser, then boto3 against the gateway."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import uuid
from types import SimpleNamespace

import boto3
import botocore.config
import botocore.session
import pytest
from aiohttp.test_utils import TestServer
from botocore.parsers import create_parser

from gateway.protocols.json_protocol import encode_json
from kms_api.operations import OPERATIONS as KMS
from kms_api.state import close_state, state_of
from ssm_api import errors
from ssm_api.operations import OPERATIONS, open_state
from storage.db import Database

ALICE, BOB = "222222222222", "333333333333"
_MODEL = botocore.session.get_session().get_service_model("ssm")
SECRET = "hunter2-\u00e9t\u00e9-0f3c9a"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def app(tmp_path):
    db = await Database.open(os.path.join(tmp_path, "nimbo.db"))
    application = SimpleNamespace(db=db, clock=Clock(), states={},
                                  config=SimpleNamespace(data_dir=str(tmp_path), default_region="us-east-1"))
    await open_state(application)
    yield application
    if "kms" in application.states:
        await close_state(application.states["kms"])
    await db.close()


def _ctx(app, account: str, region: str = "us-east-1") -> SimpleNamespace:
    return SimpleNamespace(app=app, account=SimpleNamespace(account_id=account), region=region, now=app.clock,
                           meter=None)


async def call(app, operation: str, account: str = ALICE, **params) -> dict:
    out = await OPERATIONS[operation](_ctx(app, account), params)
    op = _MODEL.operation_model(operation)
    body = encode_json(op, out)
    parsed = create_parser("json").parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


async def kms(app, operation: str, account: str = ALICE, **params) -> dict:
    ctx = _ctx(app, account)
    ctx.state = await state_of(app)
    return await KMS[operation](ctx, params)


async def fails(app, operation: str, code: str, account: str = ALICE, **params) -> str:
    with pytest.raises(errors.SSMError) as caught:
        await call(app, operation, account, **params)
    assert caught.value.code == code, caught.value.message
    assert caught.value.status == 400
    return caught.value.message


async def test_default_key_ciphertext_and_plaintext(app):
    put = await call(app, "PutParameter", Name="/db/password", Value=SECRET, Type="SecureString")
    assert put == {"Version": 1, "Tier": "Standard"}
    plain = (await call(app, "GetParameter", Name="/db/password", WithDecryption=True))["Parameter"]
    assert plain["Value"] == SECRET and plain["Type"] == "SecureString"
    hidden = (await call(app, "GetParameter", Name="/db/password"))["Parameter"]["Value"]
    assert hidden != SECRET and SECRET not in hidden
    blob = base64.b64decode(hidden, validate=True)
    arn = f"arn:aws:ssm:us-east-1:{ALICE}:parameter/db/password"
    managed = (await kms(app, "DescribeKey", KeyId="alias/aws/ssm"))["KeyMetadata"]
    assert managed["KeyManager"] == "AWS" and uuid.UUID(managed["KeyId"]).bytes in blob   # the blob names its key
    # an AWS managed key serves its service only (kms:ViaService): a direct Decrypt is refused
    with pytest.raises(Exception) as refused:
        await kms(app, "Decrypt", CiphertextBlob=blob, EncryptionContext={"PARAMETER_ARN": arn})
    assert getattr(refused.value, "code", None) == "AccessDeniedException"
    meta = (await call(app, "DescribeParameters"))["Parameters"]
    assert [(m["Name"], m["Type"], m["KeyId"]) for m in meta] == [("/db/password", "SecureString", "alias/aws/ssm")]


async def test_customer_key_reads_by_every_action_and_overwrites(app):
    key = (await kms(app, "CreateKey"))["KeyMetadata"]
    await kms(app, "CreateAlias", AliasName="alias/app", TargetKeyId=key["KeyId"])
    await call(app, "PutParameter", Name="/app/a", Value="one", Type="SecureString", KeyId="alias/app")
    await call(app, "PutParameter", Name="/app/b", Value="two", Type="String")
    both = await call(app, "GetParameters", Names=["/app/a", "/app/b", "/app/none"], WithDecryption=True)
    assert {p["Name"]: p["Value"] for p in both["Parameters"]} == {"/app/a": "one", "/app/b": "two"}
    assert both["InvalidParameters"] == ["/app/none"]
    hidden = await call(app, "GetParameters", Names=["/app/a"])
    assert hidden["Parameters"][0]["Value"] != "one"
    by_path = await call(app, "GetParametersByPath", Path="/app", WithDecryption=True)
    assert {p["Name"]: p["Value"] for p in by_path["Parameters"]} == {"/app/a": "one", "/app/b": "two"}
    by_path = await call(app, "GetParametersByPath", Path="/app")
    assert {p["Name"]: p["Value"] == "one" for p in by_path["Parameters"]}["/app/a"] is False
    await call(app, "PutParameter", Name="/app/a", Value="uno", Overwrite=True)       # keeps type and key
    history = (await call(app, "GetParameterHistory", Name="/app/a", WithDecryption=True))["Parameters"]
    assert [(h["Version"], h["Value"], h["KeyId"]) for h in history] == [(1, "one", "alias/app"),
                                                                          (2, "uno", "alias/app")]
    opened = await kms(app, "Decrypt", CiphertextBlob=base64.b64decode(
        (await call(app, "GetParameter", Name="/app/a:2"))["Parameter"]["Value"]),
        EncryptionContext={"PARAMETER_ARN": f"arn:aws:ssm:us-east-1:{ALICE}:parameter/app/a"})
    assert opened["KeyId"] == key["Arn"]
    await call(app, "PutParameter", Name="/app/a", Value="plain now", Type="String", Overwrite=True)
    meta = {m["Name"]: m for m in (await call(app, "DescribeParameters"))["Parameters"]}
    assert meta["/app/a"]["Type"] == "String" and "KeyId" not in meta["/app/a"]
    filtered = await call(app, "DescribeParameters", ParameterFilters=[{"Key": "Type", "Values": ["SecureString"]}])
    assert filtered["Parameters"] == []


async def test_key_errors_are_invalid_key_id(app):
    key = (await kms(app, "CreateKey"))["KeyMetadata"]
    await call(app, "PutParameter", Name="/k", Value="v", Type="SecureString", KeyId=key["KeyId"])
    message = await fails(app, "PutParameter", "InvalidKeyId", Name="/x", Value="v", Type="SecureString",
                          KeyId="alias/missing")
    assert "NotFoundException" in message
    await fails(app, "PutParameter", "InvalidKeyId", Name="/x", Value="v", Type="SecureString",
                KeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
    await fails(app, "PutParameter", "ValidationException", Name="/x", Value="v", Type="SecureString",
                KeyId="bad key id!")
    await kms(app, "DisableKey", KeyId=key["KeyId"])
    assert "DisabledException" in await fails(app, "PutParameter", "InvalidKeyId", Name="/x", Value="v",
                                              Type="SecureString", KeyId=key["KeyId"])
    assert "DisabledException" in await fails(app, "GetParameter", "InvalidKeyId", Name="/k", WithDecryption=True)
    assert (await call(app, "GetParameter", Name="/k"))["Parameter"]["Value"] != "v"   # the ciphertext still reads
    await kms(app, "ScheduleKeyDeletion", KeyId=key["KeyId"], PendingWindowInDays=7)
    assert "KMSInvalidStateException" in await fails(app, "GetParameter", "InvalidKeyId", Name="/k",
                                                     WithDecryption=True)
    assert (await call(app, "DescribeParameters", ParameterFilters=[{"Key": "Name", "Values": ["/x"]}]))[
        "Parameters"] == []                                  # nothing was stored by the refused puts


async def test_tenants_never_reach_each_others_keys_or_secrets(app):
    key = (await kms(app, "CreateKey"))["KeyMetadata"]
    await call(app, "PutParameter", Name="/shared-name", Value="alice's", Type="SecureString", KeyId=key["Arn"])
    assert "AccessDeniedException" in await fails(app, "PutParameter", "InvalidKeyId", BOB, Name="/b", Value="v",
                                                  Type="SecureString", KeyId=key["Arn"])
    assert "NotFoundException" in await fails(app, "PutParameter", "InvalidKeyId", BOB, Name="/b", Value="v",
                                              Type="SecureString", KeyId=key["KeyId"])
    await fails(app, "GetParameter", "ParameterNotFound", BOB, Name="/shared-name", WithDecryption=True)
    await call(app, "PutParameter", BOB, Name="/shared-name", Value="bob's", Type="SecureString")
    assert (await call(app, "GetParameter", BOB, Name="/shared-name", WithDecryption=True))["Parameter"]["Value"] \
        == "bob's"
    assert (await call(app, "GetParameter", Name="/shared-name", WithDecryption=True))["Parameter"]["Value"] \
        == "alice's"
    # each account's alias/aws/ssm is its own key
    alice_managed = (await kms(app, "DescribeKey", KeyId="alias/aws/ssm"))["KeyMetadata"]["Arn"]
    bob_managed = (await kms(app, "DescribeKey", BOB, KeyId="alias/aws/ssm"))["KeyMetadata"]["Arn"]
    assert alice_managed != bob_managed and BOB in bob_managed
    # Alice's ciphertext planted in Bob's row (a copied database row) does not open as Bob's
    alice_row = await app.db.fetchone("SELECT value FROM ssm_parameters WHERE account_id = ?", (ALICE,))
    async with app.db.transaction() as tx:
        await tx.execute("UPDATE ssm_parameters SET value = ? WHERE account_id = ?", (alice_row["value"], BOB))
    await fails(app, "GetParameter", "InvalidKeyId", BOB, Name="/shared-name", WithDecryption=True)
    # and a ciphertext moved to another of Alice's parameters does not open there (the ARN is the context)
    await call(app, "PutParameter", Name="/other", Value="x", Type="SecureString", KeyId=key["Arn"])
    async with app.db.transaction() as tx:
        await tx.execute("UPDATE ssm_parameters SET value = ? WHERE account_id = ? AND name = '/other'",
                         (alice_row["value"], ALICE))
    assert "InvalidCiphertextException" in await fails(app, "GetParameter", "InvalidKeyId", Name="/other",
                                                       WithDecryption=True)


@pytest.mark.sqlite_only   # it searches the SQLite file and its WAL
async def test_the_plaintext_never_reaches_the_disk(app, tmp_path):
    marker = "plain-marker-7d41b2"
    await call(app, "PutParameter", Name="/visible", Value=marker, Type="String")
    for n in range(3):
        await call(app, "PutParameter", Name=f"/secret/{n}", Value=SECRET, Type="SecureString")
    await call(app, "PutParameter", Name="/secret/0", Value=SECRET, Overwrite=True)
    files = [os.path.join(d, f) for d, _, names in os.walk(tmp_path) for f in names]
    assert any(f.endswith("-wal") for f in files)            # the write-ahead log is searched too
    found = {marker: False, SECRET: False}
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        for text in found:
            found[text] |= text.encode() in data or text.encode("utf-16-le") in data
    assert found == {marker: True, SECRET: False}


# -- through boto3 ----------------------------------------------------------------------------------

def _call(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


async def test_secure_strings_through_boto3(tmp_path):
    from backend.fake import FakeDriver
    from gateway.app import APP_CONTEXT, create_app
    from gateway.config import Config
    config = Config(data_dir=str(tmp_path / "data"), backend="fake", meter_flush_seconds=3600,
                    billing_interval_seconds=3600, ec2_housekeeping_seconds=3600)
    app = create_app(config, backend=FakeDriver())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        context = app[APP_CONTEXT]
        clients = {}
        for name in ("alice", "bob"):
            account = await context.accounts.create_account(f"ssm-{name}")
            cred = await context.accounts.create_key(account.account_id)
            clients[name] = {service: boto3.client(
                service, endpoint_url=f"http://127.0.0.1:{server.port}", region_name="us-east-1",
                aws_access_key_id=cred.access_key_id, aws_secret_access_key=cred.secret_access_key,
                config=botocore.config.Config(retries={"max_attempts": 1})) for service in ("ssm", "kms")}
            clients[name]["account"] = account.account_id
        ssm, kms_client = clients["alice"]["ssm"], clients["alice"]["kms"]
        key_id = (await _call(kms_client.create_key))["KeyMetadata"]["KeyId"]
        await _call(ssm.put_parameter, Name="/e2e/pw", Value=SECRET, Type="SecureString", KeyId=key_id)
        got = await _call(ssm.get_parameter, Name="/e2e/pw", WithDecryption=True)
        assert got["Parameter"]["Value"] == SECRET
        cipher = (await _call(ssm.get_parameter, Name="/e2e/pw", WithDecryption=False))["Parameter"]["Value"]
        arn = f"arn:aws:ssm:us-east-1:{clients['alice']['account']}:parameter/e2e/pw"
        opened = await _call(kms_client.decrypt, CiphertextBlob=base64.b64decode(cipher),
                             EncryptionContext={"PARAMETER_ARN": arn})
        assert opened["Plaintext"] == SECRET.encode() and opened["KeyId"].endswith(key_id)
        described = (await _call(ssm.describe_parameters))["Parameters"]
        assert [(d["Name"], d["KeyId"]) for d in described] == [("/e2e/pw", key_id)]
        await _call(kms_client.disable_key, KeyId=key_id)
        with pytest.raises(ssm.exceptions.InvalidKeyId):
            await _call(ssm.get_parameter, Name="/e2e/pw", WithDecryption=True)
        bob = clients["bob"]["ssm"]
        with pytest.raises(bob.exceptions.ParameterNotFound):
            await _call(bob.get_parameter, Name="/e2e/pw", WithDecryption=True)
        with pytest.raises(bob.exceptions.InvalidKeyId):
            await _call(bob.put_parameter, Name="/e2e/pw", Value="x", Type="SecureString",
                        KeyId=opened["KeyId"])
        await _call(bob.put_parameter, Name="/e2e/pw", Value="bob", Type="SecureString")
        assert (await _call(bob.get_parameters_by_path, Path="/e2e", WithDecryption=True))["Parameters"][0][
            "Value"] == "bob"
        await context.meter_buffer.flush()        # Parameter Store's KMS calls are billed to the caller
        rows = await context.db.fetchall("SELECT operation, SUM(amount) AS n FROM usage_counts WHERE account_id = ?"
                                         " AND service = 'awskms' GROUP BY operation", (clients["alice"]["account"],))
        counted = {r["operation"]: r["n"] for r in rows}
        # 2 reads WithDecryption (one refused: a disabled key) and 1 kms decrypt
        assert counted["Encrypt"] == 1 and counted["Decrypt"] == 3
    finally:
        await server.close()
