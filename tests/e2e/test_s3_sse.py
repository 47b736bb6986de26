"""Server-side encryption through boto3 and aws-cli against a live server: SSE-S3 headers by
default, SSE-C (missing and wrong keys, multipart through s3transfer, copies), bucket default
encryption, the data directory (blobs, SQLite file and WAL) holding no plaintext, and encrypted
objects surviving a restart and a kill -9."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import uuid

import boto3.s3.transfer
import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_foundation import aws_cli

MiB = 1 << 20
MARKER = b"E2E-PLAINTEXT-MARKER-51c0"


def name(hint: str) -> str:
    return f"{hint}-{uuid.uuid4().hex[:10]}"


def code_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def fails(call, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value


def marked(size: int) -> bytes:
    data = bytearray(os.urandom(size))
    for at in range(0, size - len(MARKER), 64 * 1024):
        data[at:at + len(MARKER)] = MARKER
    return bytes(data)


def grep(root: str, needle: bytes) -> list[str]:
    hits = []
    for folder, _, files in os.walk(root):
        for file in files:
            path = os.path.join(folder, file)
            try:
                with open(path, "rb") as fh:
                    if needle in fh.read():
                        hits.append(path)
            except OSError:
                pass
    return hits


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def bucket(s3):
    bucket = name("sse")
    s3.create_bucket(Bucket=bucket)
    return bucket


def test_sse_s3_is_the_default_everywhere(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="plain", Body=b"hello")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    assert s3.head_object(Bucket=bucket, Key="plain")["ServerSideEncryption"] == "AES256"
    got = s3.get_object(Bucket=bucket, Key="plain")
    assert got["ServerSideEncryption"] == "AES256" and got["Body"].read() == b"hello"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_sse_c_round_trip_and_refusals(s3, bucket):
    key, wrong = os.urandom(32), os.urandom(32)
    data = marked(300 * 1024)
    put = s3.put_object(Bucket=bucket, Key="secret", Body=data, SSECustomerAlgorithm="AES256",
                        SSECustomerKey=key)
    assert put["SSECustomerAlgorithm"] == "AES256" and "ServerSideEncryption" not in put
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="secret")) == ("InvalidRequest", 400)
    assert code_of(fails(s3.head_object, Bucket=bucket, Key="secret"))[1] == 400
    wrong_args = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": wrong}
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="secret", **wrong_args)) == \
        ("AccessDenied", 403)
    assert code_of(fails(s3.head_object, Bucket=bucket, Key="secret", **wrong_args))[1] == 403
    args = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    got = s3.get_object(Bucket=bucket, Key="secret", Range="bytes=65530-65545", **args)
    assert got["Body"].read() == data[65530:65546]
    assert got["SSECustomerKeyMD5"] == put["SSECustomerKeyMD5"]
    assert s3.head_object(Bucket=bucket, Key="secret", **args)["ContentLength"] == len(data)
    copy = s3.copy_object(Bucket=bucket, Key="unsealed-copy",
                          CopySource={"Bucket": bucket, "Key": "secret"},
                          CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key)
    assert copy["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="unsealed-copy")["Body"].read() == data
    err = fails(s3.put_object, Bucket=bucket, Key="both", Body=b"x", ServerSideEncryption="AES256",
                **args)
    assert code_of(err) == ("InvalidArgument", 400)


def test_multipart_sse_c_through_s3transfer(s3, bucket, tmp_path):
    key = os.urandom(32)
    args = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    data = marked(13 * MiB)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=5 * MiB,
                                              multipart_chunksize=5 * MiB, max_concurrency=2)
    s3.upload_fileobj(io.BytesIO(data), bucket, "big", ExtraArgs=args, Config=config)
    head = s3.head_object(Bucket=bucket, Key="big", **args)
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big", out, ExtraArgs=args, Config=config)
    assert out.getvalue() == data
    got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}", **args)
    assert got["Body"].read() == data[5 * MiB - 3:5 * MiB + 3]
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="big")) == ("InvalidRequest", 400)


def test_bucket_default_encryption_through_boto3(s3):
    bucket = name("sse-default")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["BlockedEncryptionTypes"]["EncryptionType"] == ["SSE-C"]
    err = fails(s3.put_object, Bucket=bucket, Key="k", Body=b"x", SSECustomerAlgorithm="AES256",
                SSECustomerKey=os.urandom(32))
    assert code_of(err) == ("AccessDenied", 403)
    err = fails(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256",
                                                          "KMSMasterKeyID": "alias/x"}}]})
    assert code_of(err) == ("InvalidArgument", 400)
    s3.delete_bucket_encryption(Bucket=bucket)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert "BlockedEncryptionTypes" not in rule


def test_aws_cli_sse_c_and_head(server, bucket, tmp_path):
    src, back = tmp_path / "cli.bin", tmp_path / "back.bin"
    src.write_bytes(marked(2 * MiB))
    key = "k" * 32       # the CLI takes the raw key (32 characters) and encodes it
    done = aws_cli(server, "s3", "cp", str(src), f"s3://{bucket}/cli.bin", "--sse-c", "AES256",
                   "--sse-c-key", key)
    assert done.returncode == 0, done.stderr
    done = aws_cli(server, "s3", "cp", f"s3://{bucket}/cli.bin", str(back))
    assert done.returncode != 0 and "400" in done.stderr + done.stdout
    done = aws_cli(server, "s3", "cp", f"s3://{bucket}/cli.bin", str(back), "--sse-c", "AES256",
                   "--sse-c-key", key)
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == src.read_bytes()
    done = aws_cli(server, "s3", "cp", str(src), f"s3://{bucket}/cli-s3.bin", "--sse", "AES256")
    assert done.returncode == 0, done.stderr
    done = aws_cli(server, "s3api", "head-object", "--bucket", bucket, "--key", "cli-s3.bin")
    assert '"ServerSideEncryption": "AES256"' in done.stdout


def test_no_plaintext_on_disk_and_restart_safe(fresh_server):
    server = fresh_server.start()
    s3 = server.client("s3")
    bucket = name("grep")
    s3.create_bucket(Bucket=bucket)
    small, large = marked(4000), marked(3 * MiB)
    s3.put_object(Bucket=bucket, Key="inline", Body=small)
    s3.put_object(Bucket=bucket, Key="blob", Body=large)
    key = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="ssec", Body=small, SSECustomerAlgorithm="AES256",
                  SSECustomerKey=key)
    assert grep(server.data_dir, MARKER) == []           # blobs, nimbo.db, nimbo.db-wal ...
    assert grep(server.data_dir, key) == [] and grep(server.data_dir, base64.b64encode(key)) == []
    assert any(f.endswith("-wal") for _, _, files in os.walk(server.data_dir) for f in files)
    assert oct(os.stat(os.path.join(server.data_dir, "master.key")).st_mode & 0o777) == "0o600"
    server.stop(signal.SIGKILL)                           # acknowledged writes survive kill -9
    server.start()
    s3 = server.client("s3")
    assert s3.get_object(Bucket=bucket, Key="inline")["Body"].read() == small
    assert s3.get_object(Bucket=bucket, Key="blob")["Body"].read() == large
    got = s3.get_object(Bucket=bucket, Key="ssec", SSECustomerAlgorithm="AES256",
                        SSECustomerKey=key)
    assert got["Body"].read() == small


def test_sse_kms_with_nimbos_kms(server, s3, bucket):
    kms = server.client("kms")
    key = kms.create_key(Description="sse e2e")["KeyMetadata"]
    kms.create_alias(AliasName="alias/sse-e2e", TargetKeyId=key["KeyId"])
    data = marked(200 * 1024)
    put = s3.put_object(Bucket=bucket, Key="kms", Body=data, ServerSideEncryption="aws:kms",
                        SSEKMSKeyId="alias/sse-e2e", BucketKeyEnabled=True)
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == key["Arn"]
    assert put["BucketKeyEnabled"] is True
    assert put["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="kms")
    assert head["SSEKMSKeyId"] == key["Arn"] and head["BucketKeyEnabled"] is True
    assert s3.get_object(Bucket=bucket, Key="kms", Range="bytes=65530-65545")["Body"].read() == \
        data[65530:65546]
    default = s3.put_object(Bucket=bucket, Key="kms-default", Body=b"x",
                            ServerSideEncryption="aws:kms")
    managed = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert default["SSEKMSKeyId"] == managed["Arn"] and managed["KeyManager"] == "AWS"
    err = fails(s3.put_object, Bucket=bucket, Key="nokey", Body=b"x",
                ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/does-not-exist")
    assert code_of(err) == ("KMS.NotFoundException", 400)
    kms.disable_key(KeyId=key["KeyId"])
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="kms")) == ("KMS.DisabledException", 400)
    kms.enable_key(KeyId=key["KeyId"])
    assert s3.get_object(Bucket=bucket, Key="kms")["Body"].read() == data
    other = name("kms-default")
    s3.create_bucket(Bucket=other)
    s3.put_bucket_encryption(Bucket=other, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": key["Arn"]}}]})
    put = s3.put_object(Bucket=other, Key="k", Body=b"by default")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == key["Arn"]
    assert s3.get_object(Bucket=other, Key="k")["Body"].read() == b"by default"


def test_tenants_cannot_touch_bucket_encryption(server, s3, bucket, tenant):
    theirs = server.client("s3", account=tenant)
    for call, extra in ((theirs.get_bucket_encryption, {}), (theirs.delete_bucket_encryption, {}),
                        (theirs.put_bucket_encryption, {"ServerSideEncryptionConfiguration": {
                            "Rules": [{"ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "AES256"}}]}})):
        assert code_of(fails(call, Bucket=bucket, **extra)) == ("AccessDenied", 403)


def test_malformed_encryption_configuration_is_malformed_xml(server, bucket):
    from tests.e2e.test_client_errors_not_500 import s3_send
    for body in (b"<ServerSideEncryptionConfiguration><Rule>", b"not xml at all",
                 b'<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                 b"<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>ROT13</SSEAlgorithm>"
                 b"</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        status, answer = s3_send(server, "PUT", f"/{bucket}?encryption", body, {"Content-MD5": md5})
        assert status == 400 and b"<Code>MalformedXML</Code>" in answer, answer


def test_plaintext_objects_from_before_stay_readable(fresh_server, monkeypatch):
    """Objects stored before encryption at rest (made here with NIMBO_S3_PLAINTEXT_WRITES) are
    read back as they were after a restart without it, next to new encrypted ones."""
    monkeypatch.setenv("NIMBO_S3_PLAINTEXT_WRITES", "1")
    server = fresh_server.start()
    s3 = server.client("s3")
    bucket = name("legacy")
    s3.create_bucket(Bucket=bucket)
    small, large = marked(3000), marked(2 * MiB)
    put = s3.put_object(Bucket=bucket, Key="old-small", Body=small)
    assert "ServerSideEncryption" not in put
    s3.put_object(Bucket=bucket, Key="old-large", Body=large)
    assert grep(server.data_dir, MARKER)          # they really are plaintext on disk
    server.stop()
    monkeypatch.delenv("NIMBO_S3_PLAINTEXT_WRITES")
    server.start()
    s3 = server.client("s3")
    got = s3.get_object(Bucket=bucket, Key="old-small")
    assert got["Body"].read() == small and "ServerSideEncryption" not in got
    assert s3.get_object(Bucket=bucket, Key="old-large", Range="bytes=100-200000")["Body"].read() \
        == large[100:200001]
    copy = s3.copy_object(Bucket=bucket, Key="new-large", CopySource=f"{bucket}/old-large")
    assert copy["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="new-large")["Body"].read() == large
    assert s3.put_object(Bucket=bucket, Key="new", Body=b"x")["ServerSideEncryption"] == "AES256"


def test_update_object_encryption_through_boto3(server, s3, bucket):
    kms = server.client("kms")
    key = kms.create_key(Description="rewrap")["KeyMetadata"]
    data = marked(300 * 1024)
    put = s3.put_object(Bucket=bucket, Key="rewrap", Body=data)
    assert put["ServerSideEncryption"] == "AES256"
    s3.update_object_encryption(Bucket=bucket, Key="rewrap",
                                ObjectEncryption={"SSEKMS": {"KMSKeyArn": key["Arn"]}})
    head = s3.head_object(Bucket=bucket, Key="rewrap")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key["Arn"]
    assert head["ETag"] == put["ETag"]
    assert s3.get_object(Bucket=bucket, Key="rewrap")["Body"].read() == data
    kms.disable_key(KeyId=key["KeyId"])       # the object now depends on that key
    assert code_of(fails(s3.get_object, Bucket=bucket, Key="rewrap")) == \
        ("KMS.DisabledException", 400)
    kms.enable_key(KeyId=key["KeyId"])
