"""S3 scenarios through boto3 (REST-XML): buckets, objects, listing, multipart, presigned URLs,
authentication. The aws-cli ones are in ``s3_cli.py``."""
from __future__ import annotations

import hashlib
import os
import secrets

from boto3.s3.transfer import TransferConfig

from conformance import scenario

MiB = 1024 * 1024


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def put(ctx, bucket: str, key: str, body: bytes, **extra) -> dict:
    return ctx.call("s3", "PutObject", Bucket=bucket, Key=key, Body=body, **extra)


def get_bytes(ctx, bucket: str, key: str, **extra) -> tuple[dict, bytes]:
    out = ctx.call("s3", "GetObject", Bucket=bucket, Key=key, **extra)
    return out, out["Body"].read()


def list_keys(ctx, bucket: str, **params) -> list[str]:
    """Every key (following continuation tokens) through the validating client."""
    keys: list[str] = []
    token = None
    for _ in range(1000):
        extra = {"ContinuationToken": token} if token else {}
        out = ctx.call("s3", "ListObjectsV2", Bucket=bucket, **params, **extra)
        keys += [item["Key"] for item in out.get("Contents", [])]
        if not out.get("IsTruncated"):
            return keys
        token = out.get("NextContinuationToken")
        ctx.check(token, "IsTruncated without NextContinuationToken")
    raise AssertionError("more than 1000 pages")


# --- buckets -----------------------------------------------------------------------------------
@scenario("s3", "ListBuckets", client="boto3")
def list_buckets(ctx):
    """ListBuckets answers with a list (empty or not) and the owner."""
    out = ctx.call("s3", "ListBuckets")
    ctx.check(isinstance(out.get("Buckets"), list), "no Buckets list")
    for bucket in out["Buckets"]:
        ctx.check(bucket.get("Name") and bucket.get("CreationDate"),
                  f"a bucket without Name or CreationDate: {bucket}")


@scenario("s3", ["CreateBucket", "HeadBucket", "DeleteBucket"], client="boto3")
def bucket_lifecycle(ctx):
    """Create a bucket, see it in ListBuckets and HeadBucket, delete it, see it gone."""
    name = ctx.name("lifecycle")
    params = {"Bucket": name}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    ctx.call("s3", "CreateBucket", **params)
    ctx.defer(_delete_if_there, ctx, name)
    names = [b["Name"] for b in ctx.call("s3", "ListBuckets")["Buckets"]]
    ctx.check(name in names, f"{name} is not listed by ListBuckets")
    ctx.call("s3", "HeadBucket", Bucket=name)
    ctx.call("s3", "DeleteBucket", Bucket=name)
    with ctx.expect_error(("404", "NoSuchBucket"), 404):
        ctx.call("s3", "HeadBucket", Bucket=name)


def _delete_if_there(ctx, name: str) -> None:
    try:
        ctx.delete_bucket(name)
    except Exception:  # noqa: BLE001 - already deleted by the scenario
        pass


@scenario("s3", "ListObjectsV2", client="boto3", variant="no such bucket")
def no_such_bucket(ctx):
    """Listing a bucket that does not exist: NoSuchBucket (404)."""
    with ctx.expect_error("NoSuchBucket", 404):
        ctx.call("s3", "ListObjectsV2", Bucket=ctx.name("missing"))


@scenario("s3", "DeleteBucket", client="boto3", variant="not empty")
def delete_bucket_not_empty(ctx):
    """Deleting a bucket that holds an object: BucketNotEmpty (409)."""
    bucket = ctx.bucket("full")
    put(ctx, bucket, "keep.txt", b"x")
    with ctx.expect_error("BucketNotEmpty", 409):
        ctx.call("s3", "DeleteBucket", Bucket=bucket)


# --- objects -----------------------------------------------------------------------------------
@scenario("s3", ["PutObject", "GetObject"], client="boto3")
def put_get_object(ctx):
    """PutObject then GetObject gives back the same bytes (every byte value, 1 MiB + 1)."""
    bucket = ctx.bucket("objects")
    data = bytes(range(256)) * 4096 + os.urandom(1)
    out = put(ctx, bucket, "data.bin", data)
    ctx.check_equal(out.get("ETag"), md5_etag(data), "PutObject ETag")
    got, body = get_bytes(ctx, bucket, "data.bin")
    ctx.check(body == data, f"GetObject returned {len(body)} bytes that differ from the "
                            f"{len(data)} put")
    ctx.check_equal(got.get("ContentLength"), len(data), "GetObject ContentLength")
    ctx.check_equal(got.get("ETag"), md5_etag(data), "GetObject ETag")
    empty = put(ctx, bucket, "empty", b"")
    ctx.check_equal(empty.get("ETag"), md5_etag(b""), "ETag of an empty object")
    ctx.check_equal(get_bytes(ctx, bucket, "empty")[1], b"", "empty object's body")


@scenario("s3", "GetObject", client="boto3", variant="range")
def get_object_range(ctx):
    """A ranged GET answers 206 with the bytes asked for and a Content-Range."""
    bucket = ctx.bucket("range")
    data = os.urandom(1000)
    put(ctx, bucket, "r.bin", data)
    out, body = get_bytes(ctx, bucket, "r.bin", Range="bytes=10-19")
    ctx.check_equal(out["ResponseMetadata"]["HTTPStatusCode"], 206, "status")
    ctx.check_equal(body, data[10:20], "ranged body")
    ctx.check_equal(out.get("ContentRange"), "bytes 10-19/1000", "ContentRange")


@scenario("s3", "GetObject", client="boto3", variant="no such key")
def get_object_missing(ctx):
    """GetObject of a key that does not exist: NoSuchKey (404)."""
    bucket = ctx.bucket("nokey")
    with ctx.expect_error("NoSuchKey", 404):
        ctx.call("s3", "GetObject", Bucket=bucket, Key="not/there")


@scenario("s3", "HeadObject", client="boto3")
def head_object(ctx):
    """HeadObject gives length, ETag, type, last-modified and user metadata as put; a missing key
    gives a bare 404."""
    bucket = ctx.bucket("head")
    data = b"hello, head\n"
    put(ctx, bucket, "h.txt", data, ContentType="text/plain", Metadata={"colour": "blue"})
    out = ctx.call("s3", "HeadObject", Bucket=bucket, Key="h.txt")
    ctx.check_equal(out.get("ContentLength"), len(data), "ContentLength")
    ctx.check_equal(out.get("ETag"), md5_etag(data), "ETag")
    ctx.check_equal(out.get("ContentType"), "text/plain", "ContentType")
    ctx.check_equal(out.get("Metadata"), {"colour": "blue"}, "Metadata")
    ctx.check(out.get("LastModified"), "no LastModified")
    with ctx.expect_error(("404", "NoSuchKey"), 404):
        ctx.call("s3", "HeadObject", Bucket=bucket, Key="missing.txt")


@scenario("s3", "ListObjectsV2", client="boto3")
def list_objects_v2(ctx):
    """Prefix and Delimiter group keys into Contents and CommonPrefixes; MaxKeys pages."""
    bucket = ctx.bucket("list")
    keys = ["a/1", "a/2", "a/b/3", "b/4", "c", "d e+f%g"]
    for key in keys:
        put(ctx, bucket, key, key.encode())
    out = ctx.call("s3", "ListObjectsV2", Bucket=bucket, Prefix="a/", Delimiter="/")
    ctx.check_equal([c["Key"] for c in out.get("Contents", [])], ["a/1", "a/2"], "Contents")
    ctx.check_equal([p["Prefix"] for p in out.get("CommonPrefixes", [])], ["a/b/"],
                    "CommonPrefixes")
    ctx.check_equal(out.get("KeyCount"), 3, "KeyCount (keys + common prefixes)")
    top = ctx.call("s3", "ListObjectsV2", Bucket=bucket, Delimiter="/")
    ctx.check_equal([c["Key"] for c in top.get("Contents", [])], ["c", "d e+f%g"], "top Contents")
    ctx.check_equal([p["Prefix"] for p in top.get("CommonPrefixes", [])], ["a/", "b/"],
                    "top CommonPrefixes")
    for item in top.get("Contents", []):
        ctx.check_equal(item.get("Size"), len(item["Key"]), f"Size of {item['Key']}")
    ctx.check_equal(list_keys(ctx, bucket, MaxKeys=2), sorted(keys), "all keys, 2 per page")


@scenario("s3", "DeleteObject", client="boto3")
def delete_object(ctx):
    """DeleteObject removes the key (and deleting it again is not an error)."""
    bucket = ctx.bucket("delete")
    put(ctx, bucket, "gone.txt", b"bye")
    out = ctx.call("s3", "DeleteObject", Bucket=bucket, Key="gone.txt")
    ctx.check_equal(out["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteObject status")
    with ctx.expect_error(("404", "NoSuchKey"), 404):
        ctx.call("s3", "HeadObject", Bucket=bucket, Key="gone.txt")
    ctx.call("s3", "DeleteObject", Bucket=bucket, Key="gone.txt")


@scenario("s3", "DeleteObjects", client="boto3")
def delete_objects(ctx):
    """DeleteObjects removes several keys at once, reporting each (a missing one too)."""
    bucket = ctx.bucket("multidelete")
    for key in ("x/1", "x/2", "keep"):
        put(ctx, bucket, key, b"1")
    out = ctx.call("s3", "DeleteObjects", Bucket=bucket,
                   Delete={"Objects": [{"Key": "x/1"}, {"Key": "x/2"}, {"Key": "never"}]})
    ctx.check_equal(sorted(d["Key"] for d in out.get("Deleted", [])), ["never", "x/1", "x/2"],
                    "Deleted")
    ctx.check_equal(out.get("Errors", []), [], "Errors")
    ctx.check_equal(list_keys(ctx, bucket), ["keep"], "keys left")


@scenario("s3", ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"],
          client="boto3")
def multipart_transfer_manager(ctx):
    """boto3's transfer manager uploads 20 MiB in 8 MiB parts and downloads it byte-exact."""
    bucket = ctx.bucket("multipart")
    path = ctx.file("big.bin", os.urandom(20 * MiB))
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                            max_concurrency=4)
    s3 = ctx.client("s3")
    s3.upload_file(path, bucket, "big.bin", Config=config)
    parts = [c for c in ctx.recorder.calls if c.operation == "UploadPart"]
    ctx.check_equal(len(parts), 3, "UploadPart calls")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="big.bin")
    ctx.check_equal(head.get("ContentLength"), 20 * MiB, "ContentLength")
    ctx.check(str(head.get("ETag", "")).endswith('-3"'),
              f"a 3-part upload's ETag ends in -3, got {head.get('ETag')}")
    back = os.path.join(ctx.workdir, "back.bin")
    s3.download_file(bucket, "big.bin", back, Config=config)
    ctx.check(sha256_of(back) == sha256_of(path), "the downloaded file differs from the upload")


@scenario("s3", "AbortMultipartUpload", client="boto3")
def abort_multipart(ctx):
    """An aborted upload is gone: ListParts on it gives NoSuchUpload (404)."""
    bucket = ctx.bucket("abort")
    upload = ctx.call("s3", "CreateMultipartUpload", Bucket=bucket, Key="a.bin")["UploadId"]
    ctx.call("s3", "UploadPart", Bucket=bucket, Key="a.bin", UploadId=upload, PartNumber=1,
             Body=b"x" * 1024)
    ctx.call("s3", "AbortMultipartUpload", Bucket=bucket, Key="a.bin", UploadId=upload)
    with ctx.expect_error("NoSuchUpload", 404):
        ctx.call("s3", "ListParts", Bucket=bucket, Key="a.bin", UploadId=upload)


# --- presigned URLs ----------------------------------------------------------------------------
def _presigned_round_trip(ctx, s3, bucket: str) -> None:
    data = os.urandom(4096)
    params = {"Bucket": bucket, "Key": "p.bin", "ContentType": "application/octet-stream"}
    put_url = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300)
    response = ctx.fetch(put_url, "PUT", data, headers={"Content-Type": params["ContentType"]})
    ctx.check_equal(response.status, 200, f"presigned PUT status ({response.body[:200]!r})")
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.bin"},
                                        ExpiresIn=300)
    response = ctx.fetch(get_url)
    ctx.check_equal(response.status, 200, f"presigned GET status ({response.body[:200]!r})")
    ctx.check(response.body == data, "the presigned GET returned other bytes")
    ctx.check_equal(response.header("Content-Type"), params["ContentType"], "Content-Type")


@scenario("s3", ["GetObject", "PutObject"], client="boto3", variant="presigned")
def presigned_urls(ctx):
    """SigV4 presigned URLs (signature_version s3v4) work with urllib: PUT, then GET."""
    bucket = ctx.bucket("presign")
    _presigned_round_trip(ctx, ctx.client("s3", signature_version="s3v4"), bucket)


@scenario("s3", ["GetObject", "PutObject"], client="boto3", variant="presigned, sigv2")
def presigned_urls_sigv2(ctx):
    """boto3's default presigned URLs (SigV2 query strings: AWSAccessKeyId, Signature, Expires)
    work with urllib: PUT, then GET."""
    bucket = ctx.bucket("presign-v2")
    s3 = ctx.client("s3")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "x"})
    if "X-Amz-Signature=" in url:
        ctx.note("this botocore presigns with SigV4 by default")
    _presigned_round_trip(ctx, s3, bucket)


@scenario("s3", "GetObject", client="boto3", variant="presigned, tampered")
def presigned_url_tampered(ctx):
    """A presigned URL whose key was changed after signing is refused (403)."""
    bucket = ctx.bucket("tamper")
    put(ctx, bucket, "p.bin", b"p")
    put(ctx, bucket, "q.bin", b"q")
    url = ctx.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p.bin"}, ExpiresIn=300)
    response = ctx.fetch(url.replace("/p.bin", "/q.bin"))
    ctx.check_equal(response.status, 403, "status of a tampered presigned URL")


# --- authentication ----------------------------------------------------------------------------
@scenario("s3", "ListBuckets", client="boto3", variant="wrong secret")
def wrong_secret(ctx):
    """A request signed with the wrong secret: SignatureDoesNotMatch (403)."""
    with ctx.expect_error("SignatureDoesNotMatch", 403):
        ctx.with_credentials(secret_key=ctx.secret_key + "x").call("s3", "ListBuckets")


@scenario("s3", "ListBuckets", client="boto3", variant="unknown key")
def unknown_key(ctx):
    """A request signed with an access key the endpoint does not know: InvalidAccessKeyId (403)."""
    stranger = "AKIA" + secrets.token_hex(8).upper()
    with ctx.expect_error("InvalidAccessKeyId", 403):
        ctx.with_credentials(access_key=stranger).call("s3", "ListBuckets")
