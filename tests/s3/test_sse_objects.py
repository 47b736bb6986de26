"""Server-side encryption through the S3 handlers: SSE-S3 by default, SSE-C, SSE-KMS (against a
stand-in of ``kms_api.data_keys``), bucket default encryption, copies and multipart between
modes, ranged reads across segments, plaintext rows written before encryption existed, and the
data directory holding no plaintext."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import types

import pytest

from s3_api.errors import S3Error
from storage import object_files, sealed
from storage.objects import ObjectVersion, new_id
from tests.s3.helpers import BOB, Body

MiB = 1 << 20
SEG = sealed.SEGMENT
MARKER = b"PLAINTEXT-MARKER-7f3a9c"


def ssec(key: bytes, prefix: str = "") -> dict:
    return {f"{prefix}SSECustomerAlgorithm": "AES256",
            f"{prefix}SSECustomerKey": base64.b64encode(key).decode(),
            f"{prefix}SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


async def fails(coro) -> S3Error:
    with pytest.raises(S3Error) as info:
        await coro
    return info.value


def body_of(size: int) -> bytes:
    """Bytes with the marker at the start and at every segment boundary."""
    data = bytearray(os.urandom(size))
    for at in range(0, max(0, size - len(MARKER)), SEG):
        data[at:at + len(MARKER)] = MARKER
    return bytes(data)


def grep_data_dir(root: str, needle: bytes) -> list[str]:
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                if needle in fh.read():
                    found.append(path)
    return found


# --- SSE-S3, the default ---------------------------------------------------------------------

async def test_every_new_object_is_sse_s3_with_the_md5_etag(s3, bucket):
    for size in (0, 10, 70 * 1024, 3 * SEG + 5):      # empty, inline, blob
        data = body_of(size)
        out = await s3.put(bucket, f"k{size}", data)
        assert out["ServerSideEncryption"] == "AES256"
        assert out["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got, body = await s3.get(bucket, f"k{size}")
        assert body == data and got["ServerSideEncryption"] == "AES256"
        assert got["ContentLength"] == size
        head = await s3.call("HeadObject", Bucket=bucket, Key=f"k{size}")
        assert head["ServerSideEncryption"] == "AES256" and head["ContentLength"] == size


async def test_ranges_across_segment_boundaries_decrypt_exactly(s3, bucket):
    size = 4 * SEG + 321
    data = body_of(size)
    await s3.put(bucket, "ranged", data)
    small = body_of(5000)
    await s3.put(bucket, "inline", small)
    for spec, want in ((f"bytes={SEG - 5}-{SEG + 5}", data[SEG - 5:SEG + 6]),
                       ("bytes=0-0", data[:1]),
                       (f"bytes={2 * SEG}-{3 * SEG - 1}", data[2 * SEG:3 * SEG]),
                       ("bytes=-700", data[-700:]),
                       (f"bytes={4 * SEG}-", data[4 * SEG:]),
                       (f"bytes=1-{size + 100}", data[1:])):
        out, got = await s3.get(bucket, "ranged", Range=spec)
        assert got == want and out["ContentLength"] == len(want), spec
    out, got = await s3.get(bucket, "inline", Range="bytes=4000-4999")
    assert got == small[4000:] and out["ContentRange"] == "bytes 4000-4999/5000"


async def test_no_plaintext_in_the_data_directory(s3, bucket):
    await s3.put(bucket, "inline", body_of(3000))
    await s3.put(bucket, "blob", body_of(300 * 1024))
    await s3.call("CopyObject", Bucket=bucket, Key="copy", CopySource=f"{bucket}/blob")
    up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="mp")
    part = await s3.call("UploadPart", Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                         PartNumber=1, Body=Body(body_of(100 * 1024)), ContentLength=100 * 1024)
    await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    key = os.urandom(32)
    await s3.put(bucket, "ssec", body_of(2000), **ssec(key))
    await s3.state.store.settled()
    assert grep_data_dir(s3.data_dir, MARKER) == []
    assert grep_data_dir(s3.data_dir, key) == []          # the customer key is never stored
    assert grep_data_dir(s3.data_dir, base64.b64encode(key)) == []
    _, got = await s3.get(bucket, "mp")
    assert got.startswith(MARKER)                          # and everything reads back


async def test_rows_written_before_encryption_stay_readable(s3, bucket):
    store, blobs = s3.state.store, s3.state.blobs
    inline = b"old inline bytes " * 10
    writer = blobs.create()
    big = os.urandom(200 * 1024)
    writer.write(big)
    writer.commit()
    for key, data, blob in (("old-inline", inline, None), ("old-blob", None, writer.blob_id)):
        size = len(inline) if data is not None else len(big)
        etag = hashlib.md5(inline if data is not None else big).hexdigest()
        version = ObjectVersion(bucket, key, new_id(), size, etag, 1, "111111111111", blob=blob,
                                data=data)
        await store.write(lambda b, v=version: b.put(v))
    out, got = await s3.get(bucket, "old-inline")
    assert got == inline and "ServerSideEncryption" not in out
    out, got = await s3.get(bucket, "old-blob", Range="bytes=100-70000")
    assert got == big[100:70001] and "ServerSideEncryption" not in out
    err = await fails(s3.get(bucket, "old-blob", **ssec(os.urandom(32))))
    assert (err.code, err.status) == ("InvalidRequest", 400)
    assert err.message == "The encryption parameters are not applicable to this object."
    out = await s3.call("CopyObject", Bucket=bucket, Key="new-from-old", CopySource=f"{bucket}/old-blob")
    assert out["ServerSideEncryption"] == "AES256"
    _, got = await s3.get(bucket, "new-from-old")
    assert got == big
    async with object_files.open_object(store, bucket, "old-blob", "111111111111") as found:
        assert b"".join([c async for c in found.chunks()]) == big


async def test_altered_blob_is_an_error_never_wrong_bytes(s3, bucket):
    await s3.put(bucket, "victim", body_of(3 * SEG))
    version = s3.state.store.object(bucket, "victim")
    path = s3.state.blobs.path(version.blob)
    with open(path, "r+b") as fh:
        fh.seek(sealed.HEADER + sealed.STORED_SEGMENT + 100)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    out = await s3.call("GetObject", Bucket=bucket, Key="victim")
    with pytest.raises(sealed.SealBroken):
        async for _ in out["Body"]:
            pass


# --- SSE-C ------------------------------------------------------------------------------------

async def test_sse_c_needs_its_key_for_every_read(s3, bucket):
    key = os.urandom(32)
    data = body_of(150 * 1024)
    out = await s3.put(bucket, "secret", data, **ssec(key))
    assert out["SSECustomerAlgorithm"] == "AES256"
    assert out["SSECustomerKeyMD5"] == ssec(key)["SSECustomerKeyMD5"]
    assert "ServerSideEncryption" not in out
    assert out["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'     # not the MD5, as S3
    for call, params in (("GetObject", {}), ("HeadObject", {}), ("GetObjectAttributes",
                                                                 {"ObjectAttributes": ["ETag"]})):
        err = await fails(s3.call(call, Bucket=bucket, Key="secret", **params))
        assert (err.code, err.status) == ("InvalidRequest", 400), call
        assert err.message.startswith("The object was stored using a form of Server Side Encryption")
        err = await fails(s3.call(call, Bucket=bucket, Key="secret", **params,
                                  **ssec(os.urandom(32))))
        assert (err.code, err.status) == ("AccessDenied", 403), call
    got, body = await s3.get(bucket, "secret", **ssec(key))
    assert body == data and got["SSECustomerKeyMD5"] == ssec(key)["SSECustomerKeyMD5"]
    _, body = await s3.get(bucket, "secret", Range=f"bytes={SEG - 1}-{SEG}", **ssec(key))
    assert body == data[SEG - 1:SEG + 1]
    head = await s3.call("HeadObject", Bucket=bucket, Key="secret", **ssec(key))
    assert head["SSECustomerAlgorithm"] == "AES256" and head["ContentLength"] == len(data)
    err = await fails(s3.call("GetObject", Bucket=bucket, Key="secret", **ssec(key),
                              IfMatch='"nope"'))
    assert err.code == "PreconditionFailed"
    with pytest.raises(object_files.ObjectAccessDenied):     # EC2 has no customer key
        async with object_files.object_file(s3.state.store, bucket, "secret", "111111111111",
                                            s3.data_dir + "/work"):
            pass


@pytest.mark.parametrize("params, code, message", [
    ({"SSECustomerAlgorithm": "AES256"}, "InvalidArgument",
     "must provide an appropriate secret key."),
    ({"SSECustomerKey": base64.b64encode(b"k" * 32).decode()}, "InvalidArgument",
     "must provide a valid encryption algorithm."),
    ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(b"k" * 32).decode()},
     "InvalidArgument", "must provide the client calculated MD5 of the secret key."),
    ({"SSECustomerAlgorithm": "AES128", "SSECustomerKey": base64.b64encode(b"k" * 32).decode(),
      "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(b"k" * 32).digest()).decode()},
     "InvalidEncryptionAlgorithmError", "Supported value: AES256."),
    ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(b"k" * 16).decode(),
      "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(b"k" * 16).digest()).decode()},
     "InvalidArgument", "The secret key was invalid for the specified algorithm."),
    ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(b"k" * 32).decode(),
      "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(b"x").digest()).decode()},
     "InvalidArgument", "The calculated MD5 hash of the key did not match the hash that was"
                        " provided."),
    ({**ssec(b"k" * 32), "ServerSideEncryption": "AES256"}, "InvalidArgument",
     "Server Side Encryption with Customer provided key is incompatible with the encryption"
     " method specified"),
    ({"ServerSideEncryption": "AES512"}, "InvalidArgument",
     "The encryption method specified is not supported"),
    ({"ServerSideEncryption": "AES256", "SSEKMSKeyId": "alias/x"}, "InvalidArgument",
     "requires HTTP header x-amz-server-side-encryption : aws:kms"),
])
async def test_bad_encryption_headers_get_s3s_errors(s3, bucket, params, code, message):
    err = await fails(s3.put(bucket, "bad", b"data", **params))
    assert err.code == code and err.status == 400 and message in err.message
    assert s3.state.store.object(bucket, "bad") is None


async def test_sse_c_over_plain_http_only_from_loopback(s3, bucket):
    key = os.urandom(32)
    far = s3.ctx()
    far.remote, far.secure = "10.1.2.3", False
    err = await fails(s3.put(bucket, "far", b"data", ctx=far, **ssec(key)))
    assert err.code == "InvalidRequest" and "secure connection" in err.message
    far.secure = True
    await s3.put(bucket, "far", b"data", ctx=far, **ssec(key))
    near = s3.ctx()
    near.remote, near.secure = "::1", False
    _, got = await s3.get(bucket, "far", ctx=near, **ssec(key))
    assert got == b"data"


async def test_copies_between_modes(s3, bucket):
    key, other = os.urandom(32), os.urandom(32)
    data = body_of(200 * 1024)
    await s3.put(bucket, "c-src", data, **ssec(key))
    err = await fails(s3.call("CopyObject", Bucket=bucket, Key="c1", CopySource=f"{bucket}/c-src"))
    assert err.code == "InvalidRequest"
    out = await s3.call("CopyObject", Bucket=bucket, Key="c1", CopySource=f"{bucket}/c-src",
                        **ssec(key, "CopySource"))
    assert out["ServerSideEncryption"] == "AES256"      # the target takes the bucket's default
    assert out["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    _, got = await s3.get(bucket, "c1")
    assert got == data
    out = await s3.call("CopyObject", Bucket=bucket, Key="c2", CopySource=f"{bucket}/c1",
                        **ssec(other))
    assert out["SSECustomerKeyMD5"] == ssec(other)["SSECustomerKeyMD5"]
    _, got = await s3.get(bucket, "c2", **ssec(other))
    assert got == data
    # rotating the key of an object in place: copy onto itself with both keys
    await s3.call("CopyObject", Bucket=bucket, Key="c2", CopySource=f"{bucket}/c2",
                  **ssec(other, "CopySource"), **ssec(key))
    _, got = await s3.get(bucket, "c2", **ssec(key))
    assert got == data
    small = b"tiny inline secret"
    await s3.put(bucket, "c-inline", small, **ssec(key))
    await s3.call("CopyObject", Bucket=bucket, Key="c3", CopySource=f"{bucket}/c-inline",
                  **ssec(key, "CopySource"), **ssec(other))
    _, got = await s3.get(bucket, "c3", **ssec(other))
    assert got == small


async def test_multipart_with_sse_c_needs_the_key_on_every_part(s3, bucket):
    key = os.urandom(32)
    up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="mp", **ssec(key))
    assert up["SSECustomerAlgorithm"] == "AES256"
    upload_id = up["UploadId"]
    first, second = body_of(5 * MiB), body_of(SEG + 77)

    def part(number, data, **extra):
        return s3.call("UploadPart", Bucket=bucket, Key="mp", UploadId=upload_id,
                       PartNumber=number, Body=Body(data), ContentLength=len(data), **extra)

    err = await fails(part(1, first))
    assert err.code == "InvalidRequest" and "Subsequent part requests must include" in err.message
    err = await fails(part(1, first, **ssec(os.urandom(32))))
    assert err.code == "InvalidArgument" and "did not match the ones used originally" in err.message
    one = await part(1, first, **ssec(key))
    assert one["SSECustomerKeyMD5"] == ssec(key)["SSECustomerKeyMD5"]
    assert one["ETag"] != f'"{hashlib.md5(first).hexdigest()}"'
    two = await part(2, second, **ssec(key))
    done = await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="mp", UploadId=upload_id,
                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": one["ETag"]},
                                                    {"PartNumber": 2, "ETag": two["ETag"]}]})
    assert done["ETag"].endswith('-2"')
    data = first + second
    _, got = await s3.get(bucket, "mp", **ssec(key))
    assert got == data
    boundary = len(first)
    _, got = await s3.get(bucket, "mp", Range=f"bytes={boundary - 10}-{boundary + 10}", **ssec(key))
    assert got == data[boundary - 10:boundary + 11]
    err = await fails(s3.get(bucket, "mp"))
    assert err.code == "InvalidRequest"
    # UploadPartCopy: an SSE-C source into an SSE-S3 upload
    up2 = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="mp2")
    assert up2["ServerSideEncryption"] == "AES256"
    copied = await s3.call("UploadPartCopy", Bucket=bucket, Key="mp2", UploadId=up2["UploadId"],
                           PartNumber=1, CopySource=f"{bucket}/mp",
                           CopySourceRange=f"bytes={boundary - 100}-{boundary + 99}",
                           **ssec(key, "CopySource"))
    assert copied["ServerSideEncryption"] == "AES256"
    assert copied["CopyPartResult"]["ETag"] == \
        f'"{hashlib.md5(data[boundary - 100:boundary + 100]).hexdigest()}"'
    await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="mp2", UploadId=up2["UploadId"],
                  MultipartUpload={"Parts": [{"PartNumber": 1,
                                              "ETag": copied["CopyPartResult"]["ETag"]}]})
    _, got = await s3.get(bucket, "mp2")
    assert got == data[boundary - 100:boundary + 100]


# --- bucket default encryption ----------------------------------------------------------------

async def test_bucket_encryption_configuration(s3, bucket):
    checksum = s3.ctx(headers={"Content-MD5": "x"})
    rule = (await s3.call("GetBucketEncryption", Bucket=bucket))[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule == {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": False}
    err = await fails(s3.call("PutBucketEncryption", Bucket=bucket,
                              ServerSideEncryptionConfiguration={"Rules": [rule]}))
    assert err.code == "InvalidRequest"      # no Content-MD5 nor checksum
    for bad, code in (({"Rules": []}, "MalformedXML"),
                      ({"Rules": [{"BucketKeyEnabled": True}]}, "MalformedXML"),
                      ({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "DES"}}]},
                       "MalformedXML"),
                      ({"Rules": [{"ApplyServerSideEncryptionByDefault": {
                          "SSEAlgorithm": "AES256", "KMSMasterKeyID": "alias/k"}}]},
                       "InvalidArgument")):
        err = await fails(s3.call("PutBucketEncryption", checksum, Bucket=bucket,
                                  ServerSideEncryptionConfiguration=bad))
        assert err.code == code, bad
    blocked = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
               "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}
    key = os.urandom(32)
    await s3.put(bucket, "before", b"old secret", **ssec(key))
    await s3.call("PutBucketEncryption", checksum, Bucket=bucket,
                  ServerSideEncryptionConfiguration={"Rules": [blocked]})
    got = (await s3.call("GetBucketEncryption", Bucket=bucket))[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    assert got["BlockedEncryptionTypes"] == {"EncryptionType": ["SSE-C"]}
    err = await fails(s3.put(bucket, "after", b"new secret", **ssec(key)))
    assert (err.code, err.status) == ("AccessDenied", 403)
    _, body = await s3.get(bucket, "before", **ssec(key))     # existing ones stay readable
    assert body == b"old secret"
    out = await s3.call("DeleteBucketEncryption", Bucket=bucket)
    assert out["__status__"] == 204
    await s3.put(bucket, "after", b"new secret", **ssec(key))
    other = s3.ctx(account=BOB)
    for op, params in (("GetBucketEncryption", {}), ("DeleteBucketEncryption", {}),
                       ("PutBucketEncryption", {"ServerSideEncryptionConfiguration":
                                                {"Rules": [rule]}})):
        err = await fails(s3.call(op, s3.ctx(account=BOB, headers={"Content-MD5": "x"})
                                  if op.startswith("Put") else other, Bucket=bucket, **params))
        assert err.code == "AccessDenied", op


async def test_deleting_a_bucket_forgets_its_encryption(s3):
    await s3.call("CreateBucket", Bucket="gone")
    await s3.call("PutBucketEncryption", s3.ctx(headers={"Content-MD5": "x"}), Bucket="gone",
                  ServerSideEncryptionConfiguration={"Rules": [{
                      "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    await s3.call("DeleteBucket", Bucket="gone")
    await s3.call("CreateBucket", Bucket="gone")
    rule = (await s3.call("GetBucketEncryption", Bucket="gone"))[
        "ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


# --- SSE-KMS (a stand-in KMS with kms_api.data_keys's interface) ------------------------------

class FakeKMSError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@pytest.fixture
def kms(monkeypatch):
    calls = []
    keys = {"alias/aws/s3": "arn:aws:kms:us-east-1:111111111111:key/aws-s3-default",
            "alias/mine": "arn:aws:kms:us-east-1:111111111111:key/1234abcd",
            "1234abcd": "arn:aws:kms:us-east-1:111111111111:key/1234abcd"}
    disabled = set()

    async def generate_data_key(app, account_id, key_id, context, region=None):
        calls.append(("generate", account_id, key_id, dict(context)))
        arn = keys.get(key_id or "alias/aws/s3") or (key_id if key_id in keys.values() else None)
        if arn is None:
            raise FakeKMSError("NotFoundException", f"Key '{key_id}' does not exist")
        if arn in disabled:
            raise FakeKMSError("DisabledException", f"{arn} is disabled.")
        plaintext = os.urandom(32)
        blob = json.dumps({"arn": arn, "k": plaintext.hex(), "c": context}).encode()
        return types.SimpleNamespace(key_arn=arn, plaintext=plaintext, blob=blob)

    async def decrypt_data_key(app, account_id, blob, context, region=None):
        calls.append(("decrypt", account_id, dict(context)))
        found = json.loads(blob)
        if found["c"] != context:
            raise FakeKMSError("InvalidCiphertextException", "context mismatch")
        if found["arn"] in disabled:
            raise FakeKMSError("DisabledException", f"{found['arn']} is disabled.")
        return found["arn"], bytes.fromhex(found["k"])

    module = types.ModuleType("kms_api.data_keys")
    module.generate_data_key, module.decrypt_data_key = generate_data_key, decrypt_data_key
    package = types.ModuleType("kms_api")
    package.data_keys = module
    monkeypatch.setitem(sys.modules, "kms_api", package)
    monkeypatch.setitem(sys.modules, "kms_api.data_keys", module)
    return types.SimpleNamespace(calls=calls, keys=keys, disabled=disabled)


async def test_sse_kms_headers_and_keys(s3, bucket, kms):
    data = body_of(100 * 1024)
    context = base64.b64encode(json.dumps({"team": "blue"}).encode()).decode()
    out = await s3.put(bucket, "kms", data, ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/mine",
                       SSEKMSEncryptionContext=context, BucketKeyEnabled=True)
    arn = kms.keys["alias/mine"]
    assert out["ServerSideEncryption"] == "aws:kms" and out["SSEKMSKeyId"] == arn
    assert out["BucketKeyEnabled"] is True
    assert json.loads(base64.b64decode(out["SSEKMSEncryptionContext"])) == \
        {"team": "blue", "aws:s3:arn": f"arn:aws:s3:::{bucket}"}
    assert out["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'
    got, body = await s3.get(bucket, "kms")
    assert body == data and got["SSEKMSKeyId"] == arn and got["BucketKeyEnabled"] is True
    assert "SSEKMSEncryptionContext" not in got
    head = await s3.call("HeadObject", Bucket=bucket, Key="kms")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == arn
    out = await s3.put(bucket, "dsse", b"x", ServerSideEncryption="aws:kms:dsse")
    assert out["ServerSideEncryption"] == "aws:kms:dsse"
    assert out["SSEKMSKeyId"] == kms.keys["alias/aws/s3"] and "BucketKeyEnabled" not in out
    err = await fails(s3.put(bucket, "nokey", b"x", ServerSideEncryption="aws:kms",
                             SSEKMSKeyId="alias/none"))
    assert (err.code, err.status) == ("KMS.NotFoundException", 400)
    v2 = s3.ctx()
    v2.auth.signature_version = "v2"
    err = await fails(s3.get(bucket, "kms", ctx=v2))
    assert err.code == "InvalidArgument" and "Signature Version 4" in err.message
    kms.disabled.add(arn)
    err = await fails(s3.get(bucket, "kms"))
    assert (err.code, err.status) == ("KMS.DisabledException", 400)
    err = await fails(s3.put(bucket, "nokey", b"x", ServerSideEncryption="aws:kms",
                             SSEKMSKeyId="1234abcd"))
    assert (err.code, err.status) == ("KMS.DisabledException", 400)


async def test_bucket_default_sse_kms_applies_to_puts_copies_and_uploads(s3, bucket, kms):
    await s3.call("PutBucketEncryption", s3.ctx(headers={"Content-MD5": "x"}), Bucket=bucket,
                  ServerSideEncryptionConfiguration={"Rules": [{
                      "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                             "KMSMasterKeyID": "alias/mine"},
                      "BucketKeyEnabled": True}]})
    arn = kms.keys["alias/mine"]
    out = await s3.put(bucket, "d1", b"default kms")
    assert out["ServerSideEncryption"] == "aws:kms" and out["SSEKMSKeyId"] == arn
    assert out["BucketKeyEnabled"] is True
    out = await s3.put(bucket, "d2", b"explicit s3", ServerSideEncryption="AES256")
    assert out["ServerSideEncryption"] == "AES256"
    out = await s3.call("CopyObject", Bucket=bucket, Key="d3", CopySource=f"{bucket}/d2")
    assert out["ServerSideEncryption"] == "aws:kms" and out["SSEKMSKeyId"] == arn
    up = await s3.call("CreateMultipartUpload", Bucket=bucket, Key="d4")
    assert up["SSEKMSKeyId"] == arn
    part = await s3.call("UploadPart", Bucket=bucket, Key="d4", UploadId=up["UploadId"],
                         PartNumber=1, Body=Body(b"part"), ContentLength=4)
    assert part["SSEKMSKeyId"] == arn
    done = await s3.call("CompleteMultipartUpload", Bucket=bucket, Key="d4",
                         UploadId=up["UploadId"],
                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ServerSideEncryption"] == "aws:kms" and done["SSEKMSKeyId"] == arn
    _, got = await s3.get(bucket, "d4")
    assert got == b"part"
    _, got = await s3.get(bucket, "d3")
    assert got == b"explicit s3"
    assert [c[0] for c in kms.calls].count("decrypt") >= 2


async def test_post_object_with_customer_key_fields(s3, bucket):
    from s3_api import post_object
    from tests.s3.test_post_object import form_reader
    key = os.urandom(32)
    fields = {k.lower(): v for k, v in {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": ssec(key)["SSECustomerKeyMD5"]}.items()}
    data = body_of(100 * 1024)
    form = await post_object.read_form(form_reader(data, key="posted", **fields))
    out = await post_object.post_object(s3.ctx(), bucket, form, None)
    assert out["headers"]["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    err = await fails(s3.get(bucket, "posted"))
    assert err.code == "InvalidRequest"
    _, got = await s3.get(bucket, "posted", **ssec(key))
    assert got == data
    form = await post_object.read_form(form_reader(b"plain", key="posted-s3"))
    out = await post_object.post_object(s3.ctx(), bucket, form, None)
    assert out["headers"] == {"x-amz-server-side-encryption": "AES256"}


async def test_a_replaced_master_key_is_refused_at_start(tmp_path):
    from s3_api.service import WrongMasterKey
    from tests.s3.helpers import close_harness, make_harness
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    key_file = os.path.join(data_dir, "master.key")
    h = await make_harness(data_dir)
    await h.call("CreateBucket", Bucket="keep")
    await close_harness(h)
    os.unlink(key_file)                  # nothing encrypted yet: a new key is accepted
    h = await make_harness(data_dir)
    await h.put("keep", "k", b"sealed with the second key")
    await close_harness(h)
    original = open(key_file, "rb").read()
    os.unlink(key_file)                  # lost after objects were encrypted with it
    with pytest.raises(WrongMasterKey):
        await make_harness(data_dir)
    os.unlink(key_file)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, original)
    os.close(fd)
    h = await make_harness(data_dir)     # restored from the backup: served again
    try:
        _, got = await h.get("keep", "k")
        assert got == b"sealed with the second key"
    finally:
        await close_harness(h)


async def test_update_object_encryption_rewraps_the_data_key_only(s3, bucket, kms):
    data = body_of(150 * 1024)
    put = await s3.put(bucket, "upd", data)
    blob_before = s3.state.store.object(bucket, "upd").blob
    checksum = s3.ctx(headers={"Content-MD5": "x"})
    arn = kms.keys["alias/mine"]

    def update(ctx=checksum, key="upd", **spec):
        return s3.call("UpdateObjectEncryption", ctx, Bucket=bucket, Key=key,
                       ObjectEncryption={"SSEKMS": spec} if spec is not None else {})

    assert await update(KMSKeyArn=arn, BucketKeyEnabled=True) == {}
    head = await s3.call("HeadObject", Bucket=bucket, Key="upd")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == arn
    assert head["BucketKeyEnabled"] is True and head["ETag"] == put["ETag"]
    after = s3.state.store.object(bucket, "upd")
    assert after.blob == blob_before          # no data moved
    _, got = await s3.get(bucket, "upd", Range=f"bytes={SEG - 2}-{SEG + 2}")
    assert got == data[SEG - 2:SEG + 3]
    other = kms.keys["alias/aws/s3"]
    await update(KMSKeyArn=other)            # KMS to another KMS key
    _, got = await s3.get(bucket, "upd")
    assert got == data
    assert (await s3.call("HeadObject", Bucket=bucket, Key="upd"))["SSEKMSKeyId"] == other
    await s3.put(bucket, "upd-c", b"customer", **ssec(os.urandom(32)))
    for call, code, text in (
            (update(key="upd-c", KMSKeyArn=arn), "InvalidRequest", "DSSE-KMS or SSE-C"),
            (s3.call("UpdateObjectEncryption", checksum, Bucket=bucket, Key="upd",
                     ObjectEncryption={}), "InvalidRequest", "Valid values are SSEKMS"),
            (update(KMSKeyArn="alias/mine"), "InvalidRequest", "correctly formatted KMS key ARN"),
            (update(KMSKeyArn="arn:aws:kms:us-east-1:222222222222:key/abc"), "AccessDenied",
             "owned by the same account as the bucket"),
            (update(ctx=s3.ctx(), KMSKeyArn=arn), "InvalidRequest", "Content-MD5"),
            (update(key="none", KMSKeyArn=arn), "NoSuchKey", "")):
        err = await fails(call)
        assert err.code == code and text in err.message, (code, err.message)


async def test_sse_c_blocked_by_default_when_the_server_says_so(s3, bucket):
    s3.app.config.s3_block_sse_c_by_default = True      # S3's setting for new buckets (2026)
    try:
        rule = (await s3.call("GetBucketEncryption", Bucket=bucket))[
            "ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["SSE-C"]}
        key = os.urandom(32)
        err = await fails(s3.put(bucket, "c", b"x", **ssec(key)))
        assert (err.code, err.status) == ("AccessDenied", 403)
        await s3.call("PutBucketEncryption", s3.ctx(headers={"Content-MD5": "x"}), Bucket=bucket,
                      ServerSideEncryptionConfiguration={"Rules": [{
                          "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                          "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]}}]})
        await s3.put(bucket, "c", b"x", **ssec(key))      # unblocked by its configuration
    finally:
        s3.app.config.s3_block_sse_c_by_default = False
