"""Keys, aliases, tags, key policies, rotation status and deletion, as KMS answers them (outputs
round-tripped through the gateway's JSON encoder and botocore's parser)."""
from __future__ import annotations

import datetime as dt
import json

from _kms_testkit import ALICE
from kms_api.deletion import sweep
from kms_api.state import state_of

ARN = f"arn:aws:kms:us-east-1:{ALICE}:key/"


async def test_create_key_defaults_and_describe(alice, app):
    made = (await alice("CreateKey", Description="app data", Tags=[{"TagKey": "env", "TagValue": "prod"}]))
    md = made["KeyMetadata"]
    assert md["Arn"] == ARN + md["KeyId"] and md["AWSAccountId"] == ALICE
    assert (md["KeyState"], md["Enabled"], md["KeyUsage"], md["KeySpec"], md["CustomerMasterKeySpec"],
            md["Origin"], md["KeyManager"], md["EncryptionAlgorithms"], md["MultiRegion"]) == \
        ("Enabled", True, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT", "AWS_KMS", "CUSTOMER",
         ["SYMMETRIC_DEFAULT"], False)
    assert md["CreationDate"] == app.clock.now and "DeletionDate" not in md
    for name in (md["KeyId"], md["Arn"], md["KeyId"].upper()):
        assert (await alice("DescribeKey", KeyId=name))["KeyMetadata"] == md
    assert (await alice("ListResourceTags", KeyId=md["KeyId"]))["Tags"] == [{"TagKey": "env", "TagValue": "prod"}]


async def test_create_key_refuses_what_it_cannot_make(alice):
    for spec in ("RSA_2048", "ECC_NIST_P256", "HMAC_256"):
        assert "not supported" in await alice.fails("CreateKey", "UnsupportedOperationException", KeySpec=spec)
    await alice.fails("CreateKey", "UnsupportedOperationException", CustomerMasterKeySpec="RSA_4096")
    await alice.fails("CreateKey", "UnsupportedOperationException", Origin="EXTERNAL")
    await alice.fails("CreateKey", "UnsupportedOperationException", MultiRegion=True)
    await alice.fails("CreateKey", "ValidationException", KeySpec="SYMMETRIC_DEFAULT",
                      CustomerMasterKeySpec="SYMMETRIC_DEFAULT")
    await alice.fails("CreateKey", "ValidationException", KeyUsage="SIGN_VERIFY")
    message = await alice.fails("CreateKey", "ValidationException", KeySpec="NOPE")
    assert message.startswith("1 validation error detected: Value 'NOPE' at 'keySpec'")
    await alice.fails("CreateKey", "ValidationException", Description="x" * 8193)
    await alice.fails("CreateKey", "MalformedPolicyDocumentException", Policy="{not json")
    await alice.fails("CreateKey", "TagException", Tags=[{"TagKey": "aws:x", "TagValue": "v"}])
    await alice.fails("CreateKey", "TagException", Tags=[{"TagKey": "a", "TagValue": "1"},
                                                         {"TagKey": "a", "TagValue": "2"}])
    await alice.fails("CreateKey", "LimitExceededException",
                      Tags=[{"TagKey": f"k{i}", "TagValue": ""} for i in range(51)])
    assert (await alice("ListKeys"))["Keys"] == []     # nothing half-made


async def test_list_keys_pages_with_limit_and_marker(alice):
    ids = sorted([(await alice("CreateKey"))["KeyMetadata"]["KeyId"] for _ in range(5)])
    first = await alice("ListKeys", Limit=2)
    assert first["Truncated"] is True and [k["KeyId"] for k in first["Keys"]] == ids[:2]
    assert first["Keys"][0]["KeyArn"] == ARN + ids[0]
    second = await alice("ListKeys", Limit=2, Marker=first["NextMarker"])
    third = await alice("ListKeys", Limit=2, Marker=second["NextMarker"])
    assert [k["KeyId"] for k in second["Keys"] + third["Keys"]] == ids[2:]
    assert third["Truncated"] is False and "NextMarker" not in third
    await alice.fails("ListKeys", "InvalidMarkerException", Marker="!!!")
    await alice.fails("ListKeys", "ValidationException", Limit=0)
    await alice.fails("ListKeys", "ValidationException", Limit=1001)


async def test_enable_disable_and_key_state_errors(alice):
    key_id = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    await alice("DisableKey", KeyId=key_id)
    md = (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("Disabled", False)
    await alice("DisableKey", KeyId=key_id)           # idempotent
    await alice("EnableKey", KeyId=key_id)
    assert (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]["Enabled"] is True
    await alice("UpdateKeyDescription", KeyId=key_id, Description="renamed")
    assert (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]["Description"] == "renamed"


async def test_schedule_and_cancel_deletion_and_the_sweep(alice, app):
    key_id = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    await alice.fails("ScheduleKeyDeletion", "ValidationException", KeyId=key_id, PendingWindowInDays=6)
    await alice.fails("ScheduleKeyDeletion", "ValidationException", KeyId=key_id, PendingWindowInDays=31)
    await alice.fails("CancelKeyDeletion", "KMSInvalidStateException", KeyId=key_id)
    scheduled = await alice("ScheduleKeyDeletion", KeyId=key_id)
    assert scheduled == {"KeyId": ARN + key_id, "KeyState": "PendingDeletion", "PendingWindowInDays": 30,
                         "DeletionDate": app.clock.now + dt.timedelta(days=30)}
    md = (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion" and md["Enabled"] is False and "DeletionDate" in md
    for op in ("EnableKey", "DisableKey", "ScheduleKeyDeletion", "UpdateKeyDescription"):
        params = {"Description": "x"} if op == "UpdateKeyDescription" else {}
        assert "pending deletion" in await alice.fails(op, "KMSInvalidStateException", KeyId=key_id, **params)
    await alice.fails("TagResource", "KMSInvalidStateException", KeyId=key_id,
                      Tags=[{"TagKey": "a", "TagValue": "b"}])
    await alice.fails("CreateAlias", "KMSInvalidStateException", AliasName="alias/doomed", TargetKeyId=key_id)
    assert (await alice("CancelKeyDeletion", KeyId=key_id)) == {"KeyId": ARN + key_id}
    md = (await alice("DescribeKey", KeyId=key_id))["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and "DeletionDate" not in md      # AWS: cancelled keys are Disabled

    await alice("CreateAlias", AliasName="alias/doomed", TargetKeyId=key_id)
    await alice("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    state = await state_of(app)
    app.clock.now += dt.timedelta(days=6, hours=23)
    assert await sweep(state) == []
    app.clock.now += dt.timedelta(hours=2)
    assert await sweep(state) == [key_id]
    await alice.fails("DescribeKey", "NotFoundException", KeyId=key_id)
    assert [a["AliasName"] for a in (await alice("ListAliases"))["Aliases"] if "TargetKeyId" in a] == []
    assert (await alice("ListKeys"))["Keys"] == []


async def test_aliases(alice):
    one = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    two = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    await alice("CreateAlias", AliasName="alias/app", TargetKeyId=one)
    await alice("CreateAlias", AliasName="alias/app-2", TargetKeyId=ARN + one)
    assert "already exists" in await alice.fails("CreateAlias", "AlreadyExistsException", AliasName="alias/app",
                                                 TargetKeyId=two)
    await alice.fails("CreateAlias", "ValidationException", AliasName="app", TargetKeyId=one)
    await alice.fails("CreateAlias", "NotAuthorizedException", AliasName="alias/aws/mine", TargetKeyId=one)
    await alice.fails("CreateAlias", "ValidationException", AliasName="alias/has space", TargetKeyId=one)
    await alice.fails("CreateAlias", "ValidationException", AliasName="alias/a:b", TargetKeyId=one)
    await alice.fails("CreateAlias", "ValidationException", AliasName="alias/x", TargetKeyId="alias/app")
    await alice.fails("CreateAlias", "NotFoundException", AliasName="alias/x",
                      TargetKeyId="11111111-2222-3333-4444-555555555555")
    listed = (await alice("ListAliases"))["Aliases"]
    mine = {a["AliasName"]: a for a in listed if "TargetKeyId" in a}
    assert set(mine) == {"alias/app", "alias/app-2"} and mine["alias/app"]["TargetKeyId"] == one
    assert mine["alias/app"]["AliasArn"] == f"arn:aws:kms:us-east-1:{ALICE}:alias/app"
    assert {"alias/aws/s3"} <= {a["AliasName"] for a in listed if "TargetKeyId" not in a}
    of_key = (await alice("ListAliases", KeyId=one))["Aliases"]
    assert [a["AliasName"] for a in of_key] == ["alias/app", "alias/app-2"]
    page = await alice("ListAliases", Limit=1)
    assert page["Truncated"] and len(page["Aliases"]) == 1
    rest = await alice("ListAliases", Marker=page["NextMarker"])
    assert page["Aliases"][0]["AliasName"] not in [a["AliasName"] for a in rest["Aliases"]]

    await alice("UpdateAlias", AliasName="alias/app", TargetKeyId=two)
    assert (await alice("DescribeKey", KeyId="alias/app"))["KeyMetadata"]["KeyId"] == two
    await alice.fails("UpdateAlias", "NotFoundException", AliasName="alias/none", TargetKeyId=two)
    await alice.fails("UpdateAlias", "NotAuthorizedException", AliasName="alias/aws/s3", TargetKeyId=two)
    await alice("DeleteAlias", AliasName="alias/app")
    await alice.fails("DeleteAlias", "NotFoundException", AliasName="alias/app")
    await alice.fails("DeleteAlias", "NotAuthorizedException", AliasName="alias/aws/s3")
    await alice.fails("DescribeKey", "NotFoundException", KeyId="alias/app")


async def test_aws_managed_key_is_made_by_describe_and_cannot_be_changed(alice):
    md = (await alice("DescribeKey", KeyId="alias/aws/s3"))["KeyMetadata"]
    assert md["KeyManager"] == "AWS" and md["KeyState"] == "Enabled"
    assert (await alice("DescribeKey", KeyId="alias/aws/s3"))["KeyMetadata"]["KeyId"] == md["KeyId"]
    s3 = [a for a in (await alice("ListAliases"))["Aliases"] if a["AliasName"] == "alias/aws/s3"]
    assert s3[0]["TargetKeyId"] == md["KeyId"]
    assert md["KeyId"] in [k["KeyId"] for k in (await alice("ListKeys"))["Keys"]]
    for op, extra in (("DisableKey", {}), ("EnableKey", {}), ("ScheduleKeyDeletion", {}),
                      ("UpdateKeyDescription", {"Description": "x"}), ("EnableKeyRotation", {}),
                      ("TagResource", {"Tags": [{"TagKey": "a", "TagValue": "b"}]}),
                      ("PutKeyPolicy", {"Policy": '{"Statement": [{"Effect": "Allow"}]}'})):
        message = await alice.fails(op, "AccessDeniedException", KeyId=md["KeyId"], **extra)
        assert f"kms:{op}" in message
    await alice.fails("CreateAlias", "AccessDeniedException", AliasName="alias/mine", TargetKeyId=md["KeyId"])
    await alice.fails("Encrypt", "AccessDeniedException", KeyId="alias/aws/s3", Plaintext=b"x")
    policy = json.loads((await alice("GetKeyPolicy", KeyId=md["KeyId"]))["Policy"])
    assert policy["Statement"][0]["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    status = await alice("GetKeyRotationStatus", KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 365


async def test_key_policies_and_rotation(alice, app):
    key_id = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    policy = await alice("GetKeyPolicy", KeyId=key_id, PolicyName="default")
    assert policy["PolicyName"] == "default"
    statement = json.loads(policy["Policy"])["Statement"][0]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ALICE}:root"} and statement["Action"] == "kms:*"
    assert (await alice("ListKeyPolicies", KeyId=key_id)) == {"PolicyNames": ["default"], "Truncated": False}
    await alice.fails("GetKeyPolicy", "NotFoundException", KeyId=key_id, PolicyName="other")
    mine = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*"}]}'
    await alice("PutKeyPolicy", KeyId=key_id, PolicyName="default", Policy=mine)
    assert (await alice("GetKeyPolicy", KeyId=key_id))["Policy"] == mine
    await alice.fails("PutKeyPolicy", "MalformedPolicyDocumentException", KeyId=key_id, Policy='{"a": 1}')

    assert await alice("GetKeyRotationStatus", KeyId=key_id) == {"KeyRotationEnabled": False,
                                                                  "KeyId": ARN + key_id}
    await alice("EnableKeyRotation", KeyId=key_id, RotationPeriodInDays=90)
    status = await alice("GetKeyRotationStatus", KeyId=key_id)
    assert status["RotationPeriodInDays"] == 90 and status["NextRotationDate"] == app.clock.now + dt.timedelta(days=90)
    await alice.fails("EnableKeyRotation", "ValidationException", KeyId=key_id, RotationPeriodInDays=89)
    await alice("DisableKeyRotation", KeyId=key_id)
    assert (await alice("GetKeyRotationStatus", KeyId=key_id))["KeyRotationEnabled"] is False
    await alice("DisableKey", KeyId=key_id)
    await alice.fails("EnableKeyRotation", "DisabledException", KeyId=key_id)


async def test_tags(alice):
    key_id = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    await alice("TagResource", KeyId=key_id, Tags=[{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": "1"}])
    await alice("TagResource", KeyId=ARN + key_id, Tags=[{"TagKey": "a", "TagValue": "one"}])
    assert (await alice("ListResourceTags", KeyId=key_id))["Tags"] == [{"TagKey": "a", "TagValue": "one"},
                                                                     {"TagKey": "b", "TagValue": "2"}]
    first = await alice("ListResourceTags", KeyId=key_id, Limit=1)
    assert first["Truncated"] and first["Tags"] == [{"TagKey": "a", "TagValue": "one"}]
    assert (await alice("ListResourceTags", KeyId=key_id, Marker=first["NextMarker"]))["Tags"] == \
        [{"TagKey": "b", "TagValue": "2"}]
    await alice("UntagResource", KeyId=key_id, TagKeys=["a", "missing"])
    assert (await alice("ListResourceTags", KeyId=key_id))["Tags"] == [{"TagKey": "b", "TagValue": "2"}]
    await alice.fails("TagResource", "TagException", KeyId=key_id, Tags=[{"TagKey": "AWS:x", "TagValue": "v"}])
    await alice.fails("TagResource", "LimitExceededException", KeyId=key_id,
                      Tags=[{"TagKey": f"k{i}", "TagValue": "v"} for i in range(50)])
    await alice.fails("TagResource", "ValidationException", KeyId=key_id, Tags=[{"TagKey": "k" * 129, "TagValue": ""}])
    await alice.fails("ListResourceTags", "NotFoundException", KeyId="alias/x")


async def test_bad_key_names_are_client_errors(alice):
    for name in ("nonsense", "alias/none", "11111111-2222-3333-4444-555555555555", "mrk-1234",
                 "arn:aws:kms:us-east-1:222222222222:key/not-a-uuid"):
        await alice.fails("DescribeKey", "NotFoundException", KeyId=name)
    for name in ("arn:aws:kms:us-east-1", "arn:aws:kms:us-east-1:22:key/x", "arn:aws:s3:::bucket"):
        await alice.fails("DescribeKey", "InvalidArnException", KeyId=name)
        await alice.fails("Encrypt", "NotFoundException", KeyId=name, Plaintext=b"x")
    await alice.fails("DescribeKey", "ValidationException", KeyId="")
    await alice.fails("DescribeKey", "ValidationException", KeyId="x" * 2049)
    key_id = (await alice("CreateKey"))["KeyMetadata"]["KeyId"]
    await alice.fails("DescribeKey", "NotFoundException", KeyId=f"arn:aws:kms:eu-west-1:{ALICE}:key/{key_id}")
