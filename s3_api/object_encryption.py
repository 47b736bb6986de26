"""UpdateObjectEncryption: an existing object's encryption changed to SSE-KMS without moving its
data.

The object's bytes stay sealed with their data key (``storage.sealed``); only the way that key is
kept changes (envelope encryption, as S3 describes it): KMS makes a new data key under the
requested KMS key, and the object's own data key is stored wrapped by it (``w`` in the ``sse``
column, ``s3_api.encryption``). ETag, checksums, metadata and the modification time stay as they
were. Only SSE-S3 and SSE-KMS objects can be updated, only to SSE-KMS, with a KMS key ARN of the
bucket owner's account; S3's InvalidRequest messages otherwise.

Crash story: one metadata update in one transaction (the version's ``sse`` replaced in place);
a crash before it commits leaves the object as it was, readable with its old key.
"""
from __future__ import annotations

import base64
import re

from s3_api import encryption
from s3_api.errors import AccessDenied, InvalidRequest, NoSuchKey
from s3_api.object_lock import require_checksum
from s3_api.objects import read_target
from storage import key_wrap
from storage.objects import Batch

_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:(\d{12}):key/[A-Za-z0-9-]+$")
_AGAIN = "Modify the request to specify SSE-KMS for the updated encryption type, and then try again."


async def update_object_encryption(ctx, params: dict) -> dict:
    bucket, version = read_target(ctx, params)
    require_checksum(ctx)
    if getattr(getattr(ctx, "auth", None), "signature_version", "v4") == "v2":
        raise InvalidRequest("Requests that modify an object encryption configuration require AWS"
                             " Signature Version 4. Modify the request to use AWS Signature"
                             " Version 4, and then try again.")
    wanted = (params.get("ObjectEncryption") or {}).get("SSEKMS")
    if not isinstance(wanted, dict):
        raise InvalidRequest("Requests that modify an object encryption configuration require a"
                             f" valid new encryption type. Valid values are SSEKMS. {_AGAIN}")
    arn = wanted.get("KMSKeyArn")
    if not arn:
        raise InvalidRequest("Requests that modify an object's encryption type to SSE-KMS require"
                             " an AWS KMS key Amazon Resource Name (ARN). Modify the request to"
                             " specify a KMS key ARN, and then try again.")
    match = _KEY_ARN.match(arn)
    if match is None:
        raise InvalidRequest("Requests that modify an object's encryption type to SSE-KMS require"
                             " a valid AWS KMS key Amazon Resource Name (ARN). Confirm that you"
                             " have a correctly formatted KMS key ARN in your request, and then"
                             " try again.")
    if match.group(1) != bucket.account_id:
        raise AccessDenied("The AWS KMS key in the request must be owned by the same account as"
                           " the bucket. Modify the request to specify a KMS key from the same"
                           " account, and then try again.")
    current = encryption.parse(version.sse)
    if current is None:
        raise InvalidRequest("The UpdateObjectEncryption operation doesn't supported unencrypted"
                             " source objects. Only source objects encrypted with SSE-S3 or"
                             " SSE-KMS are supported.")
    if current.algorithm not in (encryption.AES256, "aws:kms"):
        raise InvalidRequest("The UpdateObjectEncryption operation doesn't support source objects"
                             " with the encryption type DSSE-KMS or SSE-C. Only source objects"
                             " encrypted with SSE-S3 or SSE-KMS are supported.")
    opened = await encryption.for_read(ctx, {}, version.sse)
    bucket_key = bool(wanted.get("BucketKeyEnabled"))
    context = {"aws:s3:arn": f"arn:aws:s3:::{bucket.name}" if bucket_key
               else f"arn:aws:s3:::{bucket.name}/{version.key}"}
    made = await encryption.kms_data_key(ctx, arn, context, bucket.region)
    stored = {"a": "aws:kms", "k": base64.b64encode(made.blob).decode(), "id": made.key_arn,
              "c": context, "w": base64.b64encode(key_wrap.wrap(
                  bytes(made.plaintext), opened.data_key, encryption.ENVELOPE)).decode()}
    if bucket_key:
        stored["bk"] = True
    text = encryption.Encryption("aws:kms", stored).sse_text

    def update(batch: Batch) -> None:
        found = batch.find(bucket.name, version.key, version.vid)
        if found is None or found.delete_marker or found.version_id != version.version_id:
            raise NoSuchKey(Key=version.key)      # replaced or deleted meanwhile
        batch.update(found, found.copy(sse=text))

    await ctx.state.store.write(update)
    return {}


OPERATIONS = {"UpdateObjectEncryption": update_object_encryption}
