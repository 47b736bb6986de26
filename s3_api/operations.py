"""The S3 operations Nimbo implements, by botocore operation name: ``OPERATIONS[name](ctx, params)``.

Anything the router resolves to that is not in this table answers ``NotImplemented`` (501).
"""
from __future__ import annotations

from s3_api import (acls, bucket_config, bucket_encryption, bucket_policy, buckets, cors,
                    lifecycle, listing, multipart, object_encryption, object_lock, objects,
                    ownership, public_access_block, tagging, versioning)

OPERATIONS = {
    # buckets
    "CreateBucket": buckets.create_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "HeadBucket": buckets.head_bucket,
    "ListBuckets": buckets.list_buckets,
    "GetBucketLocation": buckets.get_bucket_location,
    # objects
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": objects.delete_objects,
    "CopyObject": objects.copy_object,
    "GetObjectAttributes": objects.get_object_attributes,
    # listing
    "ListObjects": listing.list_objects,
    "ListObjectsV2": listing.list_objects_v2,
    # multipart
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    # configurations Nimbo does not keep: their read side (404 "none", or the defaults)
    **bucket_config.OPERATIONS,
    # versions, tags, object lock (after the read-only defaults: these replace theirs)
    **versioning.OPERATIONS,
    **tagging.OPERATIONS,
    **object_lock.OPERATIONS,
    **lifecycle.OPERATIONS,
    **bucket_encryption.OPERATIONS,
    **object_encryption.OPERATIONS,
    **cors.OPERATIONS,
    # access control: ACLs, ownership, bucket policies, public access block
    **acls.OPERATIONS,
    **ownership.OPERATIONS,
    **bucket_policy.OPERATIONS,
    **public_access_block.OPERATIONS,
}
