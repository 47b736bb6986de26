"""S3 routing is kept per routing signature (``s3_api.router.resolve``): method, shape, the query
parameters routes look at (with the values routes name) and the routing headers. Requests that
differ in any of these still get their own operation, whatever was resolved before."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict, MultiDict

from s3_api.errors import MethodNotAllowed
from s3_api.router import resolve


def q(**items):
    return MultiDict({k.replace("_", "-"): v for k, v in items.items()})


@pytest.mark.parametrize("headers_type", [dict, CIMultiDict])
def test_the_same_request_shape_resolves_the_same_and_others_differ(headers_type):
    get = resolve("GET", "b", "k", q(), headers_type())
    assert get == "GetObject"
    # a presigned URL's parameters do not change the operation
    assert resolve("GET", "b", "k", q(AWSAccessKeyId="A", Signature="s", Expires="1"),
                   headers_type()) == "GetObject"
    assert resolve("GET", "b", "k", q(tagging=""), headers_type()) == "GetObjectTagging"
    assert resolve("PUT", "b", "k", q(), headers_type()) == "PutObject"
    # the routing header, in any case, makes it a copy; then without it a PUT again
    assert resolve("PUT", "b", "k", q(), headers_type({"X-Amz-Copy-Source": "/a/b"})) == "CopyObject"
    assert resolve("PUT", "b", "k", q(), headers_type({"x-amz-copy-source": "/a/b"})) == "CopyObject"
    assert resolve("PUT", "b", "k", q(), headers_type()) == "PutObject"
    assert resolve("PUT", "b", "k", q(partNumber="1", uploadId="u1"), headers_type()) == "UploadPart"
    assert resolve("PUT", "b", "k", q(partNumber="2", uploadId="u2"),
                   headers_type({"x-amz-copy-source": "/a/b"})) == "UploadPartCopy"


def test_a_route_that_names_a_value_sees_the_value():
    assert resolve("GET", "b", None, q(list_type="2"), {}) == "ListObjectsV2"
    assert resolve("GET", "b", None, q(), {}) == "ListObjects"
    assert resolve("GET", "b", None, q(list_type="3"), {}) == "ListObjects"
    assert resolve("GET", "b", None, q(list_type="2"), {}) == "ListObjectsV2"


def test_refusals_are_not_remembered_as_answers():
    for _ in range(2):
        with pytest.raises(MethodNotAllowed):
            resolve("PATCH", "b", "k", q(), {})
