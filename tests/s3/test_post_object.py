"""POST Object: the policy and its signature (gateway.auth.post_policy), the form and the stored
object (s3_api.post_object), and the read sides of the configurations Nimbo does not keep."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os

import pytest

from gateway.auth import errors as auth_errors
from gateway.auth import post_policy as pp
from s3_api import errors, post_object
from tests.s3.helpers import BOB, md5_hex

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
AKID, SECRET = "AKIAPOSTTESTKEY00001", "post/secret+key/0123456789abcdefghijkl"


async def lookup(access_key_id: str):
    return SECRET if access_key_id == AKID else None


def encode(policy: dict) -> str:
    return base64.b64encode(json.dumps(policy).encode()).decode()


def policy_doc(*conditions, expires_in: int = 300) -> dict:
    when = (NOW + dt.timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"expiration": when, "conditions": list(conditions)}


def v4_fields(policy: dict, region: str = "us-east-1", secret: str = SECRET, **fields) -> dict:
    """Lower-case form fields of a SigV4-signed form (as the form reader hands them over)."""
    date = NOW.strftime("%Y%m%d")
    out = {k.lower(): v for k, v in fields.items()}
    out.update({"x-amz-algorithm": "AWS4-HMAC-SHA256",
                "x-amz-credential": f"{AKID}/{date}/{region}/s3/aws4_request",
                "x-amz-date": NOW.strftime("%Y%m%dT%H%M%SZ"), "policy": encode(policy)})
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    out["x-amz-signature"] = hmac.new(key, out["policy"].encode(), hashlib.sha256).hexdigest()
    return out


def v2_fields(policy: dict, **fields) -> dict:
    out = {k.lower(): v for k, v in fields.items()}
    out["policy"] = encode(policy)
    out["awsaccesskeyid"] = AKID
    out["signature"] = base64.b64encode(hmac.new(SECRET.encode(), out["policy"].encode(),
                                                 hashlib.sha1).digest()).decode()
    return out


V4_CONDITIONS = [{"x-amz-algorithm": "AWS4-HMAC-SHA256"}, ["starts-with", "$x-amz-credential", ""],
                 ["starts-with", "$x-amz-date", ""]]


async def verify(fields):
    return await pp.verify_post_form(fields, lookup, ("us-east-1",))


# --- signature and expiration ----------------------------------------------------------------

async def test_sigv4_form_verifies_and_reads_the_policy():
    doc = policy_doc({"bucket": "b"}, ["content-length-range", 10, 100], *V4_CONDITIONS)
    auth = await verify(v4_fields(doc, key="k"))
    assert (auth.access_key_id, auth.region, auth.signature_version) == (AKID, "us-east-1", "v4")
    assert auth.policy.length_range == (10, 100)


async def test_sigv2_form_verifies():
    auth = await verify(v2_fields(policy_doc({"bucket": "b"}), key="k"))
    assert (auth.access_key_id, auth.region, auth.signature_version) == (AKID, None, "v2")


async def test_anonymous_form_has_no_auth():
    assert await verify({"key": "k"}) is None


@pytest.mark.parametrize("tamper", ["signature", "policy", "secret"])
async def test_bad_signatures(tamper):
    doc = policy_doc({"bucket": "b"})
    fields = v4_fields(doc, secret="another secret key entirely" if tamper == "secret" else SECRET)
    if tamper == "signature":
        fields["x-amz-signature"] = "0" * 64
    if tamper == "policy":
        fields["policy"] = encode(policy_doc({"bucket": "other"}))
    with pytest.raises(auth_errors.SignatureDoesNotMatch):
        await verify(fields)
    v2 = v2_fields(doc)
    v2["signature"] = base64.b64encode(b"x" * 20).decode()
    with pytest.raises(auth_errors.SignatureDoesNotMatch):
        await verify(v2)


async def test_unknown_key_wrong_region_and_missing_fields():
    fields = v4_fields(policy_doc())
    fields["x-amz-credential"] = fields["x-amz-credential"].replace(AKID, "AKIANOSUCHKEY0000000")
    with pytest.raises(auth_errors.InvalidAccessKeyId):
        await verify(fields)
    with pytest.raises(auth_errors.WrongRegion):
        await verify(v4_fields(policy_doc(), region="eu-west-3"))
    fields = v4_fields(policy_doc())
    del fields["x-amz-date"]
    with pytest.raises(pp.InvalidPostArgument) as info:
        await verify(fields)
    assert info.value.extra["ArgumentName"] == "x-amz-date"
    with pytest.raises(pp.InvalidPostArgument) as info:
        await verify({"key": "k", "policy": encode(policy_doc())})
    assert info.value.extra["ArgumentName"] == "AWSAccessKeyId"


async def test_expired_policy():
    auth = await verify(v4_fields(policy_doc(expires_in=-1)))
    with pytest.raises(pp.PolicyDenied) as info:
        pp.check_policy(auth.policy, {}, "b", NOW)
    assert (info.value.code, info.value.status) == ("AccessDenied", 403)
    assert info.value.message == "Invalid according to Policy: Policy expired."


@pytest.mark.parametrize("doc, detail", [
    ("not base64 json", "Invalid JSON."),
    ({"conditions": []}, "Policy missing expiration."),
    ({"expiration": "2030-01-01T00:00:00Z"}, "Policy missing conditions."),
    ({"expiration": "tomorrow", "conditions": []}, "Invalid 'expiration' value"),
    ({"expiration": "2030-01-01T00:00:00Z", "conditions": [["like", "$key", "a"]]},
     "Invalid Condition"),
    ({"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 5, 1]]},
     "Invalid content-length-range"),
])
def test_invalid_policy_documents(doc, detail):
    text = base64.b64encode(doc.encode()).decode() if isinstance(doc, str) else encode(doc)
    with pytest.raises(pp.InvalidPolicyDocument) as info:
        pp.parse_policy(text)
    assert info.value.status == 400 and detail in info.value.message


# --- conditions ------------------------------------------------------------------------------

def check(conditions, fields, bucket="b"):
    pp.check_policy(pp.parse_policy(encode(policy_doc(*conditions))), fields, bucket, NOW)


def test_conditions_that_hold():
    check([{"bucket": "b"}, ["starts-with", "$key", "user/"], {"Content-Type": "text/plain"},
           ["eq", "$x-amz-meta-a", "1"], ["starts-with", "$success_action_redirect", ""]],
          {"key": "user/x", "content-type": "text/plain", "x-amz-meta-a": "1",
           "success_action_redirect": "http://example.com/", "x-ignore-me": "anything",
           "policy": "p", "x-amz-signature": "s", "awsaccesskeyid": "a", "signature": "s"})
    check([["starts-with", "$Content-Type", "image/"], ["starts-with", "$key", ""]],
          {"key": "k", "content-type": "image/png, image/gif"})


@pytest.mark.parametrize("conditions, fields, failed", [
    ([{"bucket": "other"}], {}, '["eq", "$bucket", "other"]'),
    ([["starts-with", "$key", "user/"]], {"key": "admin/x"}, '["starts-with", "$key", "user/"]'),
    ([["starts-with", "$Content-Type", "image/"]], {"content-type": "image/png,text/html"},
     '["starts-with", "$content-type", "image/"]'),
    ([{"x-amz-meta-a": "1"}], {}, '["eq", "$x-amz-meta-a", "1"]'),
])
def test_conditions_that_fail(conditions, fields, failed):
    with pytest.raises(pp.PolicyDenied) as info:
        check(conditions, fields)
    assert info.value.message == "Invalid according to Policy: Policy Condition failed: " + failed


def test_every_field_needs_a_condition():
    with pytest.raises(pp.PolicyDenied) as info:
        check([["starts-with", "$key", ""]], {"key": "k", "x-amz-meta-a": "1", "acl": "private"})
    assert info.value.message == ("Invalid according to Policy: Extra input fields: "
                                  "x-amz-meta-a, acl")


# --- the form and the stored object ----------------------------------------------------------

class Part:
    def __init__(self, name: str, data: bytes, filename: str | None = None, piece: int = 65536):
        self.name, self.filename, self.data, self.pos, self.piece = name, filename, data, 0, piece

    async def read_chunk(self, size: int = 8192) -> bytes:
        n = min(size, self.piece, len(self.data) - self.pos)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


class Reader:
    def __init__(self, *parts: Part) -> None:
        self.parts = list(parts)

    async def next(self):
        return self.parts.pop(0) if self.parts else None


def form_reader(data: bytes, filename: str = "photo.jpg", **fields) -> Reader:
    parts = [Part(k, v.encode()) for k, v in fields.items()]
    return Reader(*parts, Part("file", data, filename), Part("after", b"ignored"))


async def test_read_form_stops_at_the_file():
    reader = form_reader(b"data", key="k", **{"Content-Type": "text/plain"})
    form = await post_object.read_form(reader)
    assert form.fields == {"key": "k", "content-type": "text/plain"}
    assert form.filename == "photo.jpg" and reader.parts[0].name == "after"


@pytest.mark.parametrize("parts, error, argument", [
    ([Part("key", b"k")], errors.InvalidArgument, "file"),
    ([Part("acl", b"private"), Part("file", b"x", "f")], errors.InvalidArgument, "key"),
    ([Part("key", b"k"), Part("KEY", b"j"), Part("file", b"x", "f")], errors.InvalidArgument,
     "KEY"),
    ([Part("x-amz-meta-big", b"x" * (post_object.MAX_FIELDS_BYTES + 1))],
     errors.MaxPostPreDataLengthExceededError, None),
])
async def test_read_form_refusals(parts, error, argument):
    with pytest.raises(error) as info:
        await post_object.read_form(Reader(*parts))
    assert info.value.extra.get("ArgumentName") == argument


async def test_post_object_stores_like_put_object(s3, bucket):
    data = os.urandom(300_000)   # beyond the inline limit: a blob
    form = await post_object.read_form(form_reader(
        data, "C:\\Users\\me\\photo 1.jpg", key="up/${filename}", **{
            "Content-Type": "image/jpeg", "Cache-Control": "max-age=60",
            "x-amz-meta-Colour": "blue", "Expires": "Thu, 01 Dec 2044 16:00:00 GMT",
            "x-amz-checksum-algorithm": "SHA256"}))
    out = await post_object.post_object(s3.ctx(), bucket, form, (1, 1 << 20))
    assert out["Key"] == "up/photo 1.jpg" and out["ETag"] == f'"{md5_hex(data)}"'
    assert out["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    got, body = await s3.get(bucket, "up/photo 1.jpg", ChecksumMode="ENABLED")
    assert body == data and got["ContentType"] == "image/jpeg"
    assert got["CacheControl"] == "max-age=60" and got["Metadata"] == {"colour": "blue"}
    assert got["Expires"].year == 2044 and got["ChecksumSHA256"] == out["ChecksumSHA256"]
    assert len(s3.blob_files()) == 1 and await s3.stored_bytes(bucket) == len(data)


async def test_post_object_small_file_is_inline(s3, bucket):
    form = await post_object.read_form(form_reader(b"tiny", key="t"))
    out = await post_object.post_object(s3.ctx(), bucket, form, None)
    assert out["ETag"] == f'"{md5_hex(b"tiny")}"' and "ChecksumCRC64NVME" in out
    assert s3.blob_files() == [] and (await s3.get(bucket, "t"))[1] == b"tiny"


@pytest.mark.parametrize("size, limits, error", [
    (3 * 1024 * 1024, (0, 1024 * 1024), errors.EntityTooLarge),
    (200_000, (300_000, 400_000), errors.EntityTooSmall),
    (10, (11, 20), errors.EntityTooSmall),
])
async def test_post_object_length_range(s3, bucket, size, limits, error):
    form = await post_object.read_form(form_reader(os.urandom(size), key="k"))
    with pytest.raises(error) as info:
        await post_object.post_object(s3.ctx(), bucket, form, limits)
    assert info.value.extra["ProposedSize"] == size
    await s3.state.store.settled()
    assert s3.blob_files() == []
    with pytest.raises(errors.NoSuchKey):
        await s3.get(bucket, "k")


async def test_post_object_checks_owner_checksum_and_acl(s3, bucket):
    form = await post_object.read_form(form_reader(b"x", key="k"))
    with pytest.raises(errors.AccessDenied):
        await post_object.post_object(s3.ctx(account=BOB), bucket, form, None)
    bad_sum = base64.b64encode(b"\0" * 32).decode()
    form = await post_object.read_form(form_reader(b"x", key="k", **{"x-amz-checksum-sha256":
                                                                    bad_sum}))
    with pytest.raises(errors.BadDigest):
        await post_object.post_object(s3.ctx(), bucket, form, None)
    form = await post_object.read_form(form_reader(b"x", key="k", acl="public-read"))
    with pytest.raises(errors.AccessControlListNotSupported):
        await post_object.post_object(s3.ctx(), bucket, form, None)


def test_success_answers():
    form = post_object.PostForm(fields={})
    result = {"Bucket": "b", "Key": "a b/c", "ETag": '"e"'}
    assert post_object.success_answer(form, result) == (204, None)
    for value, status in (("200", 200), ("201", 201), ("204", 204), ("302", 204)):
        form.fields = {"success_action_status": value}
        assert post_object.success_answer(form, result) == (status, None)
    form.fields = {"success_action_redirect": "https://example.com/done?x=1",
                   "success_action_status": "201"}
    assert post_object.success_answer(form, result) == (
        303, "https://example.com/done?x=1&bucket=b&key=a%20b%2Fc&etag=%22e%22")
    form.fields = {"success_action_redirect": "not a url", "success_action_status": "200"}
    assert post_object.success_answer(form, result) == (200, None)


# --- configurations Nimbo does not keep --------------------------------------------------------

@pytest.mark.parametrize("operation, error", [
    ("GetBucketPolicy", errors.NoSuchBucketPolicy), ("GetBucketCors", errors.NoSuchCORSConfiguration),
    ("GetBucketLifecycleConfiguration", errors.NoSuchLifecycleConfiguration),
    ("GetBucketWebsite", errors.NoSuchWebsiteConfiguration),
    ("GetBucketTagging", errors.NoSuchTagSet),
])
async def test_missing_configurations(s3, bucket, operation, error):
    with pytest.raises(error) as info:
        await s3.call(operation, Bucket=bucket)
    assert info.value.status == 404 and info.value.extra["BucketName"] == bucket
    with pytest.raises(errors.AccessDenied):
        await s3.call(operation, s3.ctx(account=BOB), Bucket=bucket)
    with pytest.raises(errors.NoSuchBucket):
        await s3.call(operation, Bucket="nope")


async def test_default_configurations(s3, bucket):
    out = await s3.call("GetBucketEncryption", Bucket=bucket)
    rule = out["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    await s3.put(bucket, "k", b"x")
    assert await s3.call("GetObjectTagging", Bucket=bucket, Key="k") == {"TagSet": []}
    with pytest.raises(errors.NoSuchKey):
        await s3.call("GetObjectTagging", Bucket=bucket, Key="missing")
    with pytest.raises(errors.AccessDenied):
        await s3.call("GetBucketEncryption", s3.ctx(account=BOB), Bucket=bucket)
