"""Request bodies through real clients against a live server: a body is read whole (bounded by
the configured limit) whatever the network hands over at a time, and never inflated."""
from __future__ import annotations

import uuid

import pytest


def name(hint: str) -> str:
    return f"{hint}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


def test_delete_objects_of_1000_long_keys_reads_the_whole_body(s3):
    """DeleteObjects of 1,000 keys of ~500 bytes (a ~0.5 MB body, S3's maximum key count): the
    signed payload hash matches only when the whole body is read, every time."""
    bucket = name("bodies")
    s3.create_bucket(Bucket=bucket)
    keys = [f"{i:04d}/" + "k" * 490 for i in range(1000)]
    for attempt in range(8):
        out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys],
                                                       "Quiet": False})
        assert not out.get("Errors"), out.get("Errors")[:1]
        assert len(out["Deleted"]) == 1000, attempt


# --- Content-Encoding: the bytes as sent, never inflated ------------------------------------------

def test_put_object_content_encoding_gzip_stores_the_bytes_as_sent(s3):
    """S3 stores a gzip-encoded body as it was sent (compressed) and returns its
    Content-Encoding: boto3's put_object(ContentEncoding="gzip") round-trips."""
    import gzip
    bucket = name("gzip")
    s3.create_bucket(Bucket=bucket)
    plain = b"hello gzip " * 5000
    packed = gzip.compress(plain)
    put = s3.put_object(Bucket=bucket, Key="a.txt.gz", Body=packed, ContentEncoding="gzip")
    got = s3.get_object(Bucket=bucket, Key="a.txt.gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["ContentLength"] == len(packed)
    assert got["Body"].read() == packed
    import hashlib
    assert put["ETag"] == f'"{hashlib.md5(packed).hexdigest()}"'
    # a gzip header on bytes that are not gzip: stored as sent, no error
    s3.put_object(Bucket=bucket, Key="not-gzip", Body=b"plain text, not gzip",
                  ContentEncoding="gzip")
    got = s3.get_object(Bucket=bucket, Key="not-gzip")
    assert got["Body"].read() == b"plain text, not gzip"
    assert got["ContentEncoding"] == "gzip"


def test_aws_cli_cp_content_encoding_gzip(server, s3, tmp_path):
    import gzip
    from tests.e2e.test_foundation import aws_cli
    bucket = name("gzcli")
    s3.create_bucket(Bucket=bucket)
    src = tmp_path / "page.html.gz"
    src.write_bytes(gzip.compress(b"<html>" + b"x" * 100000 + b"</html>"))
    done = aws_cli(server, "s3", "cp", str(src), f"s3://{bucket}/page.html",
                   "--content-encoding", "gzip")
    assert done.returncode == 0, done.stderr[-2000:]
    got = s3.get_object(Bucket=bucket, Key="page.html")
    assert got["ContentEncoding"] == "gzip"
    assert got["Body"].read() == src.read_bytes()
