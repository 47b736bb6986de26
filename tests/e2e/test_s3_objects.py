"""S3 through boto3 and curl against a live server: bucket rules, tenant isolation, ranges,
conditional requests, copies, batch deletes, multipart, checksums, presigned URLs and the read
sides of the configurations Nimbo does not keep."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import subprocess
import uuid
import zlib

import crc32c
import pytest
from awscrt import checksums as crt_checksums
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def name(hint: str) -> str:
    return f"{hint}-{uuid.uuid4().hex[:10]}"


def code_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def fails(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def tenant_s3(server, tenant):
    return server.client("s3", account=tenant)


@pytest.fixture(scope="module")
def bucket(s3):
    bucket = name("objects")
    s3.create_bucket(Bucket=bucket)
    return bucket


# --- buckets and tenants -----------------------------------------------------------------------

def test_create_bucket_rules(s3, tenant_s3):
    bucket = name("rules")
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)      # us-east-1's legacy answer to the owner: 200
    assert code_of(fails(tenant_s3.create_bucket, Bucket=bucket)) == ("BucketAlreadyExists", 409)
    for bad in ("UPPER-case", "ab", "a..b", "192.168.1.10", "-dash-first", "xn--punycode",
                "x" * 64, "under_score", "ends-with-s3alias"):
        assert code_of(fails(s3.create_bucket, Bucket=bad)) == ("InvalidBucketName", 400), bad
    other = fails(s3.create_bucket, Bucket=name("where"),
                  CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code_of(other) == ("IllegalLocationConstraintException", 400)


def test_tenant_isolation(s3, tenant_s3, bucket):
    theirs = name("tenant")
    tenant_s3.create_bucket(Bucket=theirs)
    tenant_s3.put_object(Bucket=theirs, Key="secret.txt", Body=b"theirs")
    upload = tenant_s3.create_multipart_upload(Bucket=theirs, Key="mp")["UploadId"]
    calls = [
        ("HeadBucket", lambda: s3.head_bucket(Bucket=theirs)),
        ("GetBucketLocation", lambda: s3.get_bucket_location(Bucket=theirs)),
        ("ListObjects", lambda: s3.list_objects(Bucket=theirs)),
        ("ListObjectsV2", lambda: s3.list_objects_v2(Bucket=theirs)),
        ("PutObject", lambda: s3.put_object(Bucket=theirs, Key="mine", Body=b"x")),
        ("GetObject", lambda: s3.get_object(Bucket=theirs, Key="secret.txt")),
        ("HeadObject", lambda: s3.head_object(Bucket=theirs, Key="secret.txt")),
        ("DeleteObject", lambda: s3.delete_object(Bucket=theirs, Key="secret.txt")),
        ("DeleteObjects", lambda: s3.delete_objects(
            Bucket=theirs, Delete={"Objects": [{"Key": "secret.txt"}]})),
        ("CopyObject out", lambda: s3.copy_object(Bucket=bucket, Key="stolen",
                                                  CopySource={"Bucket": theirs,
                                                              "Key": "secret.txt"})),
        ("CopyObject in", lambda: s3.copy_object(Bucket=theirs, Key="planted",
                                                 CopySource={"Bucket": theirs,
                                                             "Key": "secret.txt"})),
        ("CreateMultipartUpload", lambda: s3.create_multipart_upload(Bucket=theirs, Key="k")),
        ("UploadPart", lambda: s3.upload_part(Bucket=theirs, Key="mp", UploadId=upload,
                                              PartNumber=1, Body=b"x")),
        ("ListParts", lambda: s3.list_parts(Bucket=theirs, Key="mp", UploadId=upload)),
        ("AbortMultipartUpload", lambda: s3.abort_multipart_upload(Bucket=theirs, Key="mp",
                                                                   UploadId=upload)),
        ("ListMultipartUploads", lambda: s3.list_multipart_uploads(Bucket=theirs)),
        ("GetBucketAcl", lambda: s3.get_bucket_acl(Bucket=theirs)),
        ("GetBucketVersioning", lambda: s3.get_bucket_versioning(Bucket=theirs)),
        ("GetBucketPolicy", lambda: s3.get_bucket_policy(Bucket=theirs)),
        ("GetBucketEncryption", lambda: s3.get_bucket_encryption(Bucket=theirs)),
        ("GetObjectTagging", lambda: s3.get_object_tagging(Bucket=theirs, Key="secret.txt")),
        ("GetObjectAttributes", lambda: s3.get_object_attributes(
            Bucket=theirs, Key="secret.txt", ObjectAttributes=["ETag"])),
        ("DeleteBucket", lambda: s3.delete_bucket(Bucket=theirs)),
    ]
    for what, call in calls:
        code = code_of(fails(call))
        assert code in (("AccessDenied", 403), ("403", 403)), (what, code)
    assert tenant_s3.get_object(Bucket=theirs, Key="secret.txt")["Body"].read() == b"theirs"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="stolen")
    mine = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    their_list = {b["Name"] for b in tenant_s3.list_buckets()["Buckets"]}
    assert theirs not in mine and bucket in mine
    assert theirs in their_list and not their_list & mine


# --- reads: ranges and conditions --------------------------------------------------------------

def test_ranges(s3, bucket):
    data = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="range", Body=data)
    cases = {"bytes=0-99": (0, 99), "bytes=100-": (100, 999), "bytes=-100": (900, 999),
             "bytes=990-5000": (990, 999), "bytes=999-999": (999, 999)}
    for spec, (start, end) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="range", Range=spec)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, spec
        assert got["ContentRange"] == f"bytes {start}-{end}/1000", spec
        assert got["Body"].read() == data[start:end + 1], spec
    for ignored in ("bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=x-y"):   # S3: the whole
        got = s3.get_object(Bucket=bucket, Key="range", Range=ignored)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200, ignored
        assert got["Body"].read() == data
    for unsatisfiable in ("bytes=1000-", "bytes=5000-6000", "bytes=-0"):
        error = fails(s3.get_object, Bucket=bucket, Key="range", Range=unsatisfiable)
        assert code_of(error) == ("InvalidRange", 416), unsatisfiable
        assert error.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */1000"
        assert error.response["Error"]["ActualObjectSize"] == "1000"
    head = s3.head_object(Bucket=bucket, Key="range", Range="bytes=10-19")
    assert head["ContentLength"] == 10 and head["ContentRange"] == "bytes 10-19/1000"


def test_conditional_read_precedence(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="cond", Body=b"v1")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="cond")["LastModified"]
    past, future = modified - dt.timedelta(days=1), modified + dt.timedelta(days=1)

    def status(**conditions):
        try:
            return s3.get_object(Bucket=bucket, Key="cond", **conditions)[
                "ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as exc:
            return code_of(exc)[1]

    assert status(IfMatch=etag) == 200
    assert status(IfMatch='"0000"') == 412
    assert status(IfMatch=etag, IfUnmodifiedSince=past) == 200        # If-Match wins
    assert status(IfUnmodifiedSince=past) == 412
    assert status(IfNoneMatch=etag) == 304
    assert status(IfNoneMatch='"0000"', IfModifiedSince=future) == 200  # If-None-Match wins
    assert status(IfModifiedSince=future) == 304
    assert status(IfModifiedSince=past) == 200
    assert status(IfMatch='"0000"', IfNoneMatch=etag) == 412           # 412 before 304
    error = fails(s3.head_object, Bucket=bucket, Key="cond", IfNoneMatch=etag)
    assert error.response["ResponseMetadata"]["HTTPHeaders"]["etag"] == etag


def test_conditional_write_if_none_match(s3, bucket):
    key = name("once")
    s3.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
    error = fails(s3.put_object, Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert code_of(error) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first"


# --- copies and deletes ------------------------------------------------------------------------

def test_copy_object_directives(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/plain",
                  Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    head = s3.head_object(Bucket=bucket, Key="copied")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"a": "1"})
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", ContentType="text/csv", Metadata={"b": "2"})
    head = s3.head_object(Bucket=bucket, Key="replaced")
    assert (head["ContentType"], head["Metadata"]) == ("text/csv", {"b": "2"})
    error = fails(s3.copy_object, Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code_of(error) == ("InvalidRequest", 400)
    out = s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src",
                         MetadataDirective="REPLACE", Metadata={"c": "3"})
    head = s3.head_object(Bucket=bucket, Key="src")
    assert head["Metadata"] == {"c": "3"} and head["ETag"] == out["CopyObjectResult"]["ETag"]
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"copy me"


def test_delete_objects_quiet_and_errors(s3, bucket):
    for key in ("d/1", "d/2", "d/3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}],
                                                   "Quiet": True})
    assert "Deleted" not in out and "Errors" not in out
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "d/3"}, {"Key": "never-there"}, {"Key": "k" * 1025},
        {"Key": "d/x", "VersionId": "no-such-version"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["d/3", "never-there"]
    assert sorted(e["Code"] for e in out["Errors"]) == ["KeyTooLongError", "NoSuchVersion"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="d/")


# --- multipart ---------------------------------------------------------------------------------

def test_multipart_rules(s3, bucket):
    key = "mp/object"
    small, part = os.urandom(1024), os.urandom(5 * MiB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=small)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=2, Body=part)["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
        (1, 1024, e1), (2, 5 * MiB, e2)]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="mp/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload)]
    error = fails(s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload,
                  MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2},
                                             {"PartNumber": 1, "ETag": e1}]})
    assert code_of(error) == ("InvalidPartOrder", 400)
    # the first part is under 5 MiB and not the last: too small
    e3 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=3, Body=small)["ETag"]
    error = fails(s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=upload,
                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                             {"PartNumber": 3, "ETag": e3}]})
    assert code_of(error) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket, Prefix="mp/")
    error = fails(s3.list_parts, Bucket=bucket, Key=key, UploadId=upload)
    assert code_of(error) == ("NoSuchUpload", 404)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=part)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=2, Body=small)["ETag"]
    out = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert out["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == part + small


# --- checksums ---------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_flexible_checksums(s3, bucket):
    data = os.urandom(200_000)
    expected = {
        "CRC32C": _b64(crc32c.crc32c(data).to_bytes(4, "big")),
        "SHA256": _b64(hashlib.sha256(data).digest()),
        "CRC64NVME": _b64(crt_checksums.crc64nvme(data).to_bytes(8, "big")),
        "CRC32": _b64(zlib.crc32(data).to_bytes(4, "big")),
    }
    for algorithm, value in expected.items():
        key = f"sum/{algorithm}"
        out = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
        assert out[f"Checksum{algorithm}"] == value, algorithm
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head[f"Checksum{algorithm}"] == value, algorithm
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")  # botocore validates
        assert got[f"Checksum{algorithm}"] == value and got["Body"].read() == data
    error = fails(s3.put_object, Bucket=bucket, Key="sum/bad", Body=data,
                  ChecksumSHA256=_b64(hashlib.sha256(b"other").digest()))
    assert code_of(error)[1] == 400


# --- presigned URLs with curl ------------------------------------------------------------------

def test_presigned_urls_with_curl(s3, bucket, tmp_path):
    data = os.urandom(70_000)
    key = "pre signed/\u2603+%.bin"
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key},
                                        ExpiresIn=60)
    done = subprocess.run(["curl", "-sS", "-g", "--fail-with-body", "--noproxy", "*", "-T",
                           str(src), put_url], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                        ExpiresIn=60)
    done = subprocess.run(["curl", "-sS", "-g", "--fail-with-body", "--noproxy", "*", get_url],
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == data
    tampered = get_url + "&response-content-type=text/html"     # not what was signed
    done = subprocess.run(["curl", "-sS", "-g", "--noproxy", "*", "-w", "%{http_code}",
                           tampered], capture_output=True, timeout=60)
    assert done.stdout.endswith(b"403") and b"SignatureDoesNotMatch" in done.stdout


# --- configurations Nimbo does not keep --------------------------------------------------------

def test_bucket_configuration_reads(s3, bucket):
    missing = [("get_bucket_policy", "NoSuchBucketPolicy"),
               ("get_bucket_cors", "NoSuchCORSConfiguration"),
               ("get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration"),
               ("get_bucket_website", "NoSuchWebsiteConfiguration"),
               ("get_bucket_tagging", "NoSuchTagSet")]
    for method, code in missing:
        assert code_of(fails(getattr(s3, method), Bucket=bucket)) == (code, 404), method
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert all(s3.get_public_access_block(Bucket=bucket)[
        "PublicAccessBlockConfiguration"].values())
    s3.put_object(Bucket=bucket, Key="tagged", Body=b"x")
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged")["TagSet"] == []
    assert code_of(fails(s3.get_bucket_policy, Bucket=name("absent")))[1] == 404
