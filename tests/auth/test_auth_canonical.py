"""Encoding and canonicalization rules, each against a value worked out by hand."""

from __future__ import annotations

import pytest
from _auth_testkit import wire_request
from multidict import CIMultiDict

from gateway.auth.signing import (
    canonical_headers,
    canonical_query,
    canonical_uri_generic,
    canonical_uri_s3,
    remove_dot_segments,
    uri_encode,
)
from gateway.auth.sigv2 import canonical_resource
from gateway.auth.sigv2 import string_to_sign as v2_string_to_sign


def test_uri_encode():
    assert uri_encode("AZaz09-_.~") == "AZaz09-_.~"
    assert uri_encode("a b/c*é+=") == "a%20b%2Fc%2A%C3%A9%2B%3D"
    assert uri_encode("a b/c", keep_slash=True) == "a%20b/c"


@pytest.mark.parametrize("raw, canonical", [
    ("", "/"),
    ("/", "/"),
    ("/test$file.text", "/test%24file.text"),
    ("/test%24file.text", "/test%24file.text"),
    ("/a%2Fb/c", "/a%2Fb/c"),  # an encoded slash in a key stays encoded
    ("/100%", "/100%25"),  # a lone '%' is encoded
    ("/%zz", "/%25zz"),
    ("//double//slashes/", "//double//slashes/"),  # S3 paths are not normalized
    ("/a/./b/../c", "/a/./b/../c"),
    ("/ü b", "/%C3%BC%20b"),
])
def test_canonical_uri_s3(raw, canonical):
    assert canonical_uri_s3(raw) == canonical


@pytest.mark.parametrize("raw, canonical", [
    ("", "/"),
    ("/", "/"),
    ("/a/./b/../c//d/", "/a/c/d/"),
    ("/../..", "/"),
    ("/my%20func", "/my%2520func"),  # encoded a second time
    ("/~user/x-y_z.1", "/~user/x-y_z.1"),
    ("/a:b", "/a%3Ab"),
])
def test_canonical_uri_generic(raw, canonical):
    assert canonical_uri_generic(raw) == canonical


def test_remove_dot_segments_keeps_trailing_slash_only_with_segments():
    assert remove_dot_segments("/a/b/") == "/a/b/"
    assert remove_dot_segments("/a/..") == "/"


@pytest.mark.parametrize("raw, canonical", [
    ("", ""),
    ("b=2&a=1&a=&c", "a=&a=1&b=2&c="),
    ("x=a+b&y=a%20b", "x=a%2Bb&y=a%20b"),  # '+' is a plus sign, not a space
    ("x=%7e%2f", "x=~%2F"),
    ("a-b=1&a%20b=2&A=3", "A=3&a%20b=2&a-b=1"),  # sorted by encoded name
    ("k=%FF", "k=%FF"),  # bytes that are not UTF-8 survive
    ("ß=€", "%C3%9F=%E2%82%AC"),
    ("&&a=1&", "a=1"),
])
def test_canonical_query(raw, canonical):
    assert canonical_query(raw) == canonical


def test_canonical_query_excludes_the_signature():
    assert canonical_query("X-Amz-Signature=abc&b=1", ["X-Amz-Signature"]) == "b=1"


def test_canonical_headers_trim_collapse_and_join():
    headers = CIMultiDict([("X-Amz-Meta-A", "  one   two "), ("x-amz-meta-a", "three"),
                           ("Host", "h"), ("Unsigned", "u")])
    assert canonical_headers(headers, ["x-amz-meta-a", "host"]) == (
        "host:h\nx-amz-meta-a:one two,three\n")


@pytest.mark.parametrize("path, query, bucket, resource", [
    ("/bucket/key", "", None, "/bucket/key"),
    ("/", "", "bucket", "/bucket/"),
    ("/key%20x", "acl", "bucket", "/bucket/key%20x?acl"),
    ("/b/k", "versioning&prefix=a&acl", None, "/b/k?acl&versioning"),
    ("/b/k", "uploadId=a%2Bb&partNumber=2", None, "/b/k?partNumber=2&uploadId=a+b"),
    ("/b/k", "response-content-type=text%2Fplain&versionId=", None,
     "/b/k?response-content-type=text/plain&versionId="),
])
def test_v2_canonical_resource(path, query, bucket, resource):
    request = wire_request("GET", f"{path}?{query}" if query else path, [], bucket)
    assert canonical_resource(request) == resource


def test_v2_string_to_sign():
    request = wire_request("PUT", "/b/k?acl", [
        ("Content-MD5", "md5=="), ("Content-Type", "text/plain"),
        ("X-Amz-Meta-B", " 2 "), ("x-amz-meta-a", "1"), ("x-amz-meta-b", "3")])
    assert v2_string_to_sign(request, "Fri, 24 May 2013 00:00:00 GMT") == (
        "PUT\nmd5==\ntext/plain\nFri, 24 May 2013 00:00:00 GMT\n"
        "x-amz-meta-a:1\nx-amz-meta-b:2,3\n/b/k?acl")
