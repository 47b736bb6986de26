"""S3 scenarios through aws-cli v1: ``aws s3api ...`` (JSON validated against the shapes) and the
high-level ``aws s3 ls/cp/sync/rm/presign`` (checked by what they do)."""
from __future__ import annotations

import os
import time
import re

from conformance import scenario
from conformance.scenarios.s3 import MiB, get_bytes, list_keys, md5_etag, put, sha256_of

LS_BUCKET_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (\S+)$")
LS_OBJECT_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\s+(\d+) (.+)$")

# File names that trip up encoders: spaces, '+', '%', unicode, '&', '=', an empty file.
ODD_TREE = {
    "plain.txt": b"plain\n",
    "with space.txt": b"space\n",
    "plus+sign.txt": b"plus\n",
    "percent%41 and %25.txt": b"percent\n",
    "unicod\u00e9/na\u00efve \u2603 \u65e5\u672c.txt": "snow \u2603\n".encode(),
    "dir/sub dir/a+b%20c=d&e.txt": b"query-ish\n",
    "empty.txt": b"",
}


def _write_tree(ctx, root: str, tree: dict[str, bytes]) -> str:
    """The files get an mtime a minute ago, to the whole second: `aws s3 sync` uploads again a
    file whose mtime is a later fraction of the second that the object's LastModified names, so
    files written within the second of their upload would make a second sync flaky."""
    written = int(time.time()) - 60
    for relpath, data in tree.items():
        path = ctx.file(os.path.join(root, relpath), data)
        os.utime(path, (written, written))
    return os.path.join(ctx.workdir, root)


def _read_tree(path: str) -> dict[str, bytes]:
    found = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as fh:
                found[os.path.relpath(full, path).replace(os.sep, "/")] = fh.read()
    return found


@scenario("s3", "ListBuckets", client="awscli")
def list_buckets_cli(ctx):
    """`aws s3api list-buckets` (JSON checked against the shape) and `aws s3 ls`."""
    out = ctx.aws("s3api", "list-buckets")
    ctx.check(isinstance(out.get("Buckets"), list), "no Buckets list")
    for line in ctx.aws("s3", "ls").stdout.splitlines():
        ctx.check(LS_BUCKET_RE.match(line), f"`aws s3 ls` printed an odd line: {line!r}")


@scenario("s3", ["PutObject", "HeadObject", "GetObject", "ListObjectsV2", "DeleteObject"],
          client="awscli")
def s3api_objects(ctx):
    """`aws s3api put-object / head-object / list-objects-v2 / get-object / delete-object`: the
    JSON of each (timestamps as the wire wrote them) against the shapes."""
    bucket = ctx.bucket("s3api")
    data = os.urandom(2048)
    src = ctx.file("in.bin", data)
    out = ctx.aws("s3api", "put-object", "--bucket", bucket, "--key", "k.bin", "--body", src)
    ctx.check_equal(out.get("ETag"), md5_etag(data), "put-object ETag")
    head = ctx.aws("s3api", "head-object", "--bucket", bucket, "--key", "k.bin")
    ctx.check_equal(head.get("ContentLength"), len(data), "head-object ContentLength")
    listing = ctx.aws("s3api", "list-objects-v2", "--bucket", bucket)
    ctx.check_equal([c["Key"] for c in listing.get("Contents", [])], ["k.bin"], "Contents")
    dest = os.path.join(ctx.workdir, "out.bin")
    got = ctx.aws("s3api", "get-object", "--bucket", bucket, "--key", "k.bin", dest)
    ctx.check_equal(got.get("ContentLength"), len(data), "get-object ContentLength")
    with open(dest, "rb") as fh:
        ctx.check(fh.read() == data, "get-object wrote other bytes")
    ctx.aws("s3api", "delete-object", "--bucket", bucket, "--key", "k.bin")
    ctx.check_equal(list_keys(ctx, bucket), [], "keys after delete-object")


@scenario("s3", ["PutObject", "GetObject"], client="awscli")
def cp_roundtrip(ctx):
    """`aws s3 cp` a file up and back down, byte-exact."""
    bucket = ctx.bucket("cp")
    data = os.urandom(300 * 1024)
    src = ctx.file("up.bin", data)
    ctx.aws("s3", "cp", src, f"s3://{bucket}/dir/up.bin")
    _, body = get_bytes(ctx, bucket, "dir/up.bin")
    ctx.check(body == data, "the object differs from the file uploaded")
    dest = os.path.join(ctx.workdir, "down.bin")
    ctx.aws("s3", "cp", f"s3://{bucket}/dir/up.bin", dest)
    with open(dest, "rb") as fh:
        ctx.check(fh.read() == data, "the file downloaded differs from the one uploaded")


@scenario("s3", ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"],
          client="awscli")
def cp_multipart(ctx):
    """`aws s3 cp` of 17 MiB (over its 8 MiB threshold: 3 parts) up and down, byte-exact."""
    bucket = ctx.bucket("cp-multipart")
    src = ctx.file("big.bin", os.urandom(17 * MiB))
    ctx.aws("s3", "cp", src, f"s3://{bucket}/big.bin")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="big.bin")
    ctx.check_equal(head.get("ContentLength"), 17 * MiB, "ContentLength")
    ctx.check(str(head.get("ETag", "")).endswith('-3"'),
              f"a 3-part upload's ETag ends in -3, got {head.get('ETag')}")
    dest = os.path.join(ctx.workdir, "back.bin")
    ctx.aws("s3", "cp", f"s3://{bucket}/big.bin", dest)
    ctx.check(sha256_of(dest) == sha256_of(src), "the file downloaded differs from the upload")


@scenario("s3", ["PutObject", "ListObjectsV2", "GetObject"], client="awscli", variant="sync")
def sync_odd_names(ctx):
    """`aws s3 sync` a tree with spaces, '+', '%', '&', '=' and unicode in its names up and back;
    a second sync of the unchanged tree uploads nothing."""
    bucket = ctx.bucket("sync")
    local = _write_tree(ctx, "tree", ODD_TREE)
    ctx.aws("s3", "sync", local, f"s3://{bucket}/t/")
    ctx.check_equal(sorted(list_keys(ctx, bucket)), sorted("t/" + k for k in ODD_TREE),
                    "keys after sync")
    again = ctx.aws("s3", "sync", local, f"s3://{bucket}/t/").stdout
    uploads = [line for line in again.splitlines() if line.startswith("upload")]
    ctx.check(not uploads, f"a second sync of an unchanged tree uploaded again: {uploads[:3]}")
    back = os.path.join(ctx.workdir, "back")
    ctx.aws("s3", "sync", f"s3://{bucket}/t/", back)
    ctx.check_equal(_read_tree(back), ODD_TREE, "the tree synced back down")


@scenario("s3", "ListObjectsV2", client="awscli", variant="ls --recursive")
def ls_recursive(ctx):
    """`aws s3 ls --recursive` shows every key with its size."""
    bucket = ctx.bucket("ls")
    keys = {"a/1.txt": b"1", "a/b/22.txt": b"22", "top file.txt": b"333"}
    for key, data in keys.items():
        put(ctx, bucket, key, data)
    shown = {}
    for line in ctx.aws("s3", "ls", "--recursive", f"s3://{bucket}/").stdout.splitlines():
        match = LS_OBJECT_RE.match(line)
        ctx.check(match, f"`aws s3 ls --recursive` printed an odd line: {line!r}")
        shown[match.group(2)] = int(match.group(1))
    ctx.check_equal(shown, {k: len(v) for k, v in keys.items()}, "keys and sizes shown")


@scenario("s3", "DeleteObject", client="awscli", variant="rm --recursive")
def rm_recursive(ctx):
    """`aws s3 rm --recursive` under a prefix deletes that prefix's keys and no others."""
    bucket = ctx.bucket("rm")
    for key in ("gone/1", "gone/sub/2", "gone/odd name+%.txt", "kept/3", "gone-not/4"):
        put(ctx, bucket, key, b"x")
    ctx.aws("s3", "rm", "--recursive", f"s3://{bucket}/gone/")
    ctx.check_equal(list_keys(ctx, bucket), ["gone-not/4", "kept/3"], "keys left")


@scenario("s3", "GetObject", client="awscli", variant="presigned")
def presign_cli(ctx):
    """A URL from `aws s3 presign` fetched with urllib gives the object's bytes."""
    bucket = ctx.bucket("presign-cli")
    data = os.urandom(1000)
    put(ctx, bucket, "odd key+1.bin", data)
    url = ctx.aws("s3", "presign", f"s3://{bucket}/odd key+1.bin", "--expires-in", "300")
    url = url.stdout.strip()
    ctx.check(url.startswith(ctx.endpoint), f"the presigned URL is not on the endpoint: {url}")
    response = ctx.fetch(url)
    ctx.check_equal(response.status, 200, f"presigned GET status ({response.body[:200]!r})")
    ctx.check(response.body == data, "the presigned GET returned other bytes")
