"""The router, against botocore's model."""
from __future__ import annotations

import botocore.session
import pytest
from multidict import CIMultiDict, MultiDict

from s3_api import errors
from s3_api.operations import OPERATIONS
from s3_api.router import resolve, routes


def r(method, bucket=None, key=None, query=None, headers=None):
    q = MultiDict()
    for k, v in (query or {}).items():
        q.add(k, v)
    return resolve(method, bucket, key, q, CIMultiDict(headers or {}))


@pytest.mark.parametrize("request_, operation", [
    (("GET",), "ListBuckets"),
    (("PUT", "b"), "CreateBucket"),
    (("HEAD", "b"), "HeadBucket"),
    (("DELETE", "b"), "DeleteBucket"),
    (("GET", "b"), "ListObjects"),
    (("GET", "b", None, {"list-type": "2"}), "ListObjectsV2"),
    (("GET", "b", None, {"list-type": "1"}), "ListObjects"),
    (("GET", "b", None, {"location": ""}), "GetBucketLocation"),
    (("GET", "b", None, {"uploads": ""}), "ListMultipartUploads"),
    (("GET", "b", None, {"prefix": "x", "delimiter": "/"}), "ListObjects"),
    (("POST", "b", None, {"delete": ""}), "DeleteObjects"),
    (("PUT", "b", "k"), "PutObject"),
    (("PUT", "b", "k", None, {"x-amz-copy-source": "a/b"}), "CopyObject"),
    (("PUT", "b", "k", {"partNumber": "1", "uploadId": "u"}), "UploadPart"),
    (("PUT", "b", "k", {"partNumber": "1", "uploadId": "u"}, {"X-Amz-Copy-Source": "a/b"}),
     "UploadPartCopy"),
    (("GET", "b", "k"), "GetObject"),
    (("GET", "b", "k", {"partNumber": "2"}), "GetObject"),
    (("GET", "b", "k", {"response-content-type": "x", "X-Amz-Signature": "s"}), "GetObject"),
    (("GET", "b", "k", {"uploadId": "u"}), "ListParts"),
    (("GET", "b", "k", {"attributes": ""}), "GetObjectAttributes"),
    (("HEAD", "b", "k"), "HeadObject"),
    (("DELETE", "b", "k"), "DeleteObject"),
    (("DELETE", "b", "k", {"uploadId": "u"}), "AbortMultipartUpload"),
    (("POST", "b", "k", {"uploads": ""}), "CreateMultipartUpload"),
    (("POST", "b", "k", {"uploadId": "u"}), "CompleteMultipartUpload"),
])
def test_resolves(request_, operation):
    assert r(*request_) == operation


@pytest.mark.parametrize("request_", [
    ("PUT", "b", None, {"website": ""}), ("PUT", "b", None, {"logging": ""}),
    ("POST", "b", "k", {"restore": ""}),
])
def test_not_implemented(request_):
    with pytest.raises(errors.NotImplementedOperation) as info:
        r(*request_)
    assert info.value.status == 501


def test_bucket_post_that_is_not_a_form():
    # multipart/form-data POSTs (POST Object) are the gateway's; anything else is refused as S3 does
    with pytest.raises(errors.PreconditionFailed) as info:
        r("POST", "b")
    assert info.value.extra["Condition"].startswith("Bucket POST must be of the enclosure-type")


@pytest.mark.parametrize("request_", [("PATCH", "b", "k"), ("POST", "b", "k"), ("PUT",),
                                      ("DELETE",), ("OPTIONS", "b")])
def test_method_not_allowed(request_):
    with pytest.raises(errors.MethodNotAllowed) as info:
        r(*request_)
    assert info.value.status == 405


def test_every_implemented_operation_is_routable():
    model = botocore.session.get_session().get_service_model("s3")
    routed = {route.operation for table in routes().values() for route in table}
    for name in OPERATIONS:
        assert name in model.operation_names and name in routed


def test_deprecated_twins_lose():
    ops = [route.operation for route in routes()[("GET", "bucket")]]
    assert ops.index("GetBucketLifecycleConfiguration") < ops.index("GetBucketLifecycle")
