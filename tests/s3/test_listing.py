"""ListObjects / ListObjectsV2: order, prefixes, delimiters, markers, tokens, encoding."""
from __future__ import annotations

import urllib.parse

import pytest

from s3_api import errors
from s3_api.listing import walk
from storage.objects import prefix_end


async def put_keys(s3, bucket, keys):
    from tests.s3.helpers import Body
    async def one(k):
        await s3.call("PutObject", Bucket=bucket, Key=k, Body=Body(b"x"), ContentLength=1)
    import asyncio
    for i in range(0, len(keys), 200):
        await asyncio.gather(*(one(k) for k in keys[i:i + 200]))


def keys_of(out):
    return [c["Key"] for c in out.get("Contents", [])]


def prefixes_of(out):
    return [p["Prefix"] for p in out.get("CommonPrefixes", [])]


def test_prefix_end():
    assert prefix_end("abc") == "abd"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"
    for p in ["a/", "x\u00ff", "中"]:
        end = prefix_end(p)
        assert p < end and (p + "\U0010ffff" * 3) < end
        assert end.encode() > (p + "\U0010ffff").encode()


async def test_utf8_byte_order(s3, bucket):
    keys = ["z", "a", "é", "中", "\U0001f600", "~", "A", "a/b", "ab"]
    await put_keys(s3, bucket, keys)
    out = await s3.call("ListObjectsV2", Bucket=bucket)
    assert keys_of(out) == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert out["KeyCount"] == len(keys) and out["IsTruncated"] is False
    assert out["Contents"][0]["ETag"].startswith('"') and out["Contents"][0]["Size"] == 1
    assert out["Contents"][0]["StorageClass"] == "STANDARD"
    assert "Owner" not in out["Contents"][0]
    out = await s3.call("ListObjectsV2", Bucket=bucket, FetchOwner=True, MaxKeys=1)
    assert out["Contents"][0]["Owner"]["ID"] == "a" * 64


async def test_delimiter_and_prefix(s3, bucket):
    await put_keys(s3, bucket, ["a/1", "a/2", "a/b/1", "a/b/2", "b", "c/1", "c/2/3", "d"])
    out = await s3.call("ListObjectsV2", Bucket=bucket, Delimiter="/")
    assert keys_of(out) == ["b", "d"] and prefixes_of(out) == ["a/", "c/"]
    assert out["KeyCount"] == 4 and out["Delimiter"] == "/"
    out = await s3.call("ListObjectsV2", Bucket=bucket, Delimiter="/", Prefix="a/")
    assert keys_of(out) == ["a/1", "a/2"] and prefixes_of(out) == ["a/b/"]
    out = await s3.call("ListObjectsV2", Bucket=bucket, Prefix="a/b")
    assert keys_of(out) == ["a/b/1", "a/b/2"]
    out = await s3.call("ListObjectsV2", Bucket=bucket, Prefix="zzz")
    assert keys_of(out) == [] and out["KeyCount"] == 0
    out = await s3.call("ListObjects", Bucket=bucket, Delimiter="/b/")
    assert prefixes_of(out) == ["a/b/"] and "a/1" in keys_of(out) and "a/b/1" not in keys_of(out)


async def test_pagination_across_prefixes_v2(s3, bucket):
    keys = ["a/1", "a/2", "b", "c/1", "d", "e/1", "e/2", "f"]
    await put_keys(s3, bucket, keys)
    seen, token, pages = [], None, 0
    while True:
        params = {"Bucket": bucket, "Delimiter": "/", "MaxKeys": 2}
        if token:
            params["ContinuationToken"] = token
        out = await s3.call("ListObjectsV2", **params)
        pages += 1
        seen += prefixes_of(out) + keys_of(out)
        assert out["KeyCount"] <= 2
        if not out["IsTruncated"]:
            assert "NextContinuationToken" not in out
            break
        token = out["NextContinuationToken"]
    assert sorted(seen) == ["a/", "b", "c/", "d", "e/", "f"] and pages == 3


async def test_pagination_v1_markers(s3, bucket):
    await put_keys(s3, bucket, ["a/1", "a/2", "b", "c/1"])
    out = await s3.call("ListObjects", Bucket=bucket, MaxKeys=2)
    assert keys_of(out) == ["a/1", "a/2"] and out["IsTruncated"] and "NextMarker" not in out
    out = await s3.call("ListObjects", Bucket=bucket, Marker="a/2")
    assert keys_of(out) == ["b", "c/1"] and out["Marker"] == "a/2"
    out = await s3.call("ListObjects", Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert prefixes_of(out) == ["a/"] and out["NextMarker"] == "a/"
    out = await s3.call("ListObjects", Bucket=bucket, Delimiter="/", MaxKeys=1,
                        Marker=out["NextMarker"])
    assert keys_of(out) == ["b"] and out["NextMarker"] == "b"
    out = await s3.call("ListObjects", Bucket=bucket, Delimiter="/", Marker="b")
    assert prefixes_of(out) == ["c/"] and not out["IsTruncated"]


async def test_start_after(s3, bucket):
    await put_keys(s3, bucket, ["a", "b", "c", "d"])
    out = await s3.call("ListObjectsV2", Bucket=bucket, StartAfter="b")
    assert keys_of(out) == ["c", "d"] and out["StartAfter"] == "b"
    out = await s3.call("ListObjectsV2", Bucket=bucket, StartAfter="bb", Prefix="c")
    assert keys_of(out) == ["c"]


async def test_thousands_of_keys(s3, bucket):
    keys = [f"k{i:05d}" for i in range(2500)]
    await put_keys(s3, bucket, keys)
    out = await s3.call("ListObjectsV2", Bucket=bucket, MaxKeys=5000)
    assert len(keys_of(out)) == 1000 and out["IsTruncated"] and out["MaxKeys"] == 1000
    seen, token = [], None
    while True:
        params = {"Bucket": bucket}
        if token:
            params["ContinuationToken"] = token
        out = await s3.call("ListObjectsV2", **params)
        seen += keys_of(out)
        if not out["IsTruncated"]:
            break
        token = out["NextContinuationToken"]
    assert seen == keys


async def test_common_prefix_is_skipped_with_one_seek(s3, bucket, monkeypatch):
    await put_keys(s3, bucket, [f"big/{i:05d}" for i in range(3000)] + ["a", "z/1", "zz"])
    store = s3.state.store
    calls = []
    real = store.scan_objects

    def counting(*args):
        rows = real(*args)
        calls.append(len(rows))
        return rows

    monkeypatch.setattr(store, "scan_objects", counting)
    out = await s3.call("ListObjectsV2", Bucket=bucket, Delimiter="/")
    assert keys_of(out) == ["a", "zz"] and prefixes_of(out) == ["big/", "z/"]
    assert len(calls) <= 4 and sum(calls) < 2100


async def test_encoding_type_url(s3, bucket):
    await put_keys(s3, bucket, ["dir one/a+b c", "dir one/ü"])
    out = await s3.call("ListObjectsV2", Bucket=bucket, EncodingType="url")
    assert keys_of(out) == ["dir%20one/a%2Bb%20c", "dir%20one/%C3%BC"]
    assert [urllib.parse.unquote_plus(k) for k in keys_of(out)] == ["dir one/a+b c", "dir one/ü"]
    out = await s3.call("ListObjectsV2", Bucket=bucket, EncodingType="url", Delimiter=" ")
    assert prefixes_of(out) == ["dir%20"] and out["Delimiter"] == "%20"
    with pytest.raises(errors.InvalidArgument):
        await s3.call("ListObjectsV2", Bucket=bucket, EncodingType="base64")


async def test_bad_arguments(s3, bucket):
    with pytest.raises(errors.InvalidArgument):
        await s3.call("ListObjectsV2", Bucket=bucket, ContinuationToken="!!!not-a-token")
    with pytest.raises(errors.InvalidArgument):
        await s3.call("ListObjects", Bucket=bucket, MaxKeys=-1)
    out = await s3.call("ListObjectsV2", Bucket=bucket, MaxKeys=0)
    assert out["KeyCount"] == 0 and out["IsTruncated"] is False


def test_walk_in_memory():
    keys = sorted(["a/1", "a/2", "b/1", "c", "d/x/y", "d/z", "e"])

    def scan(start, inclusive, end, n):
        rows = [(k,) for k in keys if (k >= start if inclusive else k > start)
                and (end is None or k < end)]
        return rows[:n]

    out = walk(scan, "", "/", None, 10)
    assert out.prefixes == ["a/", "b/", "d/"] and [r[0] for r in out.rows] == ["c", "e"]
    out = walk(scan, "d/", "/", None, 10)
    assert out.prefixes == ["d/x/"] and [r[0] for r in out.rows] == ["d/z"]
    out = walk(scan, "", "/", "a/1", 10)     # a marker inside a prefix skips that prefix
    assert out.prefixes == ["b/", "d/"]
    out = walk(scan, "", None, "c", 2)
    assert [r[0] for r in out.rows] == ["d/x/y", "d/z"] and out.truncated and out.last == "d/z"


def test_url_encoding_of_listed_keys_is_quote_with_slash_and_tilde_kept():
    """encoding-type=url: the fast path for keys that need no escaping gives what quote gives."""
    import urllib.parse

    from s3_api.listing import url_encode
    for key in ("", "a/b/c.txt", "x-y_z~1", "sp ace", "100%", "é/☃", "a+b", "line\nbreak",
                "tab\t", "semi;colon", "q?&=#", "dot./..", "UPPER/lower/0123456789"):
        assert url_encode(key) == (urllib.parse.quote(key, safe="/~") if key else key)
