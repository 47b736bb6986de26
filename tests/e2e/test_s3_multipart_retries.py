"""CompleteMultipartUpload retried through boto3 against a live server: S3 answers a repeat of a
completion that succeeded with the same result (200), as long as the object is the one that
upload made; a different part list, or a replaced object, is NoSuchUpload."""
from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


def _upload(s3, bucket, key, sizes):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, size in enumerate(sizes, start=1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=bytes([number]) * size)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    return upload_id, parts


def test_repeated_complete_returns_the_same_result(s3):
    bucket = f"mpu-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    upload_id, parts = _upload(s3, bucket, "obj", [5 * MiB, 100])
    first = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    for member in ("ETag", "Bucket", "Key", "Location"):
        assert again[member] == first[member]
    assert s3.head_object(Bucket=bucket, Key="obj")["ContentLength"] == 5 * MiB + 100

    # another part list for the same upload id: the upload is gone
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts[:1]})
    assert info.value.response["Error"]["Code"] == "NoSuchUpload"
    # the object replaced since: the upload's result is no longer there
    s3.put_object(Bucket=bucket, Key="obj", Body=b"new")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert info.value.response["Error"]["Code"] == "NoSuchUpload"


def test_part_listed_twice_or_out_of_order_is_invalid_part_order(s3):
    """S3's parts list must be in ascending order by part number: a number listed twice (as
    clients that retried a part sometimes send) or a smaller one after a larger is
    InvalidPartOrder; the upload stays open and completes with a correct list."""
    bucket = f"mpu-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    upload_id, parts = _upload(s3, bucket, "obj", [5 * MiB, 10])
    for bad in ([parts[0], parts[0], parts[1]], [parts[1], parts[0]]):
        with pytest.raises(ClientError) as info:
            s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                         MultipartUpload={"Parts": bad})
        assert info.value.response["Error"]["Code"] == "InvalidPartOrder"
    # the list is walked in order: a wrong part before the repeated number is InvalidPart
    wrong = {"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                     MultipartUpload={"Parts": [wrong, parts[0], parts[1]]})
    assert info.value.response["Error"]["Code"] == "InvalidPart"
    s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
