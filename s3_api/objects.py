"""Objects: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject,
GetObjectAttributes (ACLs: ``s3_api.acls``; who may: ``s3_api.access_control``).

A write stores its bytes first (inline or as a durable blob), then commits the metadata row in the
next group commit, where its conditions (If-Match, If-None-Match) are checked against the key's
current version; concurrent PUTs of one key therefore leave exactly one complete version, and the
previous version's blob is unlinked only after the commit. Every new version is encrypted
(``s3_api.encryption``: the mode and keys; ``storage.sealed``: the bytes on disk); reads decrypt
only the segments they send.
"""
from __future__ import annotations

import hashlib
import json

from s3_api import (access_control, acls, checksums, conditions, encryption, lifecycle,
                    object_lock, payload, sealed_io, tagging, versioning)
from s3_api.buckets import owner
from s3_api.copying import parse_copy_source, segments, source_version
from s3_api.errors import (AccessDenied, InvalidArgument, InvalidPartNumber, InvalidRequest,
                           MalformedXML, NoSuchBucket, NoSuchKey, NoSuchVersion,
                           NotImplementedOperation, PreconditionFailed, S3Error)
from s3_api.metadata import (check_key, last_modified, now_us, output_headers, quoted,
                             storage_class, stored_headers, unquote)
from s3_api.streaming import ObjectBody
from storage import sealed
from storage.object_versions import well_formed_vid
from storage.objects import Batch, Bucket, ObjectVersion, new_id

MAX_COPY_SIZE = 5 * 1024 ** 3
MAX_DELETE_KEYS = 1000
_OVERRIDES = (("ResponseContentType", "ContentType"), ("ResponseContentLanguage", "ContentLanguage"),
              ("ResponseCacheControl", "CacheControl"),
              ("ResponseContentDisposition", "ContentDisposition"),
              ("ResponseContentEncoding", "ContentEncoding"), ("ResponseExpires", "Expires"))


def target_bucket(ctx, params: dict) -> tuple[Bucket, str]:
    """The bucket and the checked key of an object request the access decision allows."""
    bucket, key, _ = write_target(ctx, params)
    return bucket, key


def write_target(ctx, params: dict) -> tuple[Bucket, str, object]:
    """``target_bucket`` with the bucket's access settings (for the owner and ACL of a write)."""
    bucket, key, access, _ = _write_target(ctx, params)
    return bucket, key, access


def _write_target(ctx, params: dict) -> tuple[Bucket, str, object, dict | None]:
    """``write_target`` and the bucket's default encryption (``bucket_encryption.default_of``),
    from one lookup."""
    key = check_key(params.get("Key"))
    bucket, settings, encryption_config = ctx.state.store.bucket_write_settings(
        params.get("Bucket"))
    if bucket is None:
        raise NoSuchBucket(BucketName=params.get("Bucket"))
    access = access_control.bucket_access(ctx, bucket, settings)
    access = access_control.authorize(ctx, params, bucket, key=key, access=access)
    access_control.authorize_write_extras(ctx, params, bucket, key, access)   # tags, locks
    return bucket, key, access, json.loads(encryption_config) if encryption_config else None


def read_target(ctx, params: dict, method: str = "GET") -> tuple[Bucket, ObjectVersion]:
    """The bucket and the object version a read names (``VersionId``: a version; else the
    current one), once the access decision allows the request on it; or S3's error (NoSuchKey
    with the delete marker's headers, NoSuchVersion, 405 for a delete marker named by version
    id; AccessDenied instead of a 404 for those who may not list the bucket)."""
    key = check_key(params.get("Key"))
    bucket, version, settings = ctx.state.store.bucket_object_access(params.get("Bucket"), key)
    if bucket is None:
        raise NoSuchBucket(BucketName=params.get("Bucket"))
    access = access_control.bucket_access(ctx, bucket, settings)
    if version is None or params.get("VersionId") is not None:
        try:
            version = versioning.find_version(ctx, bucket, key, version, params.get("VersionId"),
                                              method)
        except S3Error as exc:
            access_control.authorize(ctx, params, bucket, key=key, access=access)
            if exc.status == 404 and access_control.list_denied_as_missing(ctx, params, bucket,
                                                                           access):
                raise AccessDenied() from None
            raise
    access_control.authorize(ctx, params, bucket, key=key, version=version, access=access)
    return bucket, version


def new_version_extras(ctx, params: dict, bucket: Bucket) -> dict:
    """Tags (``x-amz-tagging``) and object lock (headers, the bucket's default retention) of a
    version a write creates, as ObjectVersion attributes."""
    extras = object_lock.new_version_lock(ctx, params, bucket)
    tags = tagging.header_tags(params.get("Tagging"))
    if tags is not None:
        extras["tags"] = tags
    return extras


def form_extras(ctx, params: dict, bucket: Bucket, tagging_xml: str | None) -> dict:
    """POST Object's tags (the ``tagging`` field: a Tagging XML document) and object lock."""
    extras = object_lock.new_version_lock(ctx, params, bucket, need_checksum=False)
    if tagging_xml:
        tags = tagging.stored(tagging.check_tags(tagging.from_xml(tagging_xml),
                                                 tagging.MAX_OBJECT_TAGS))
        if tags is not None:
            extras["tags"] = tags
    return extras


def _is_noncurrent(ctx, bucket: Bucket, version: ObjectVersion) -> bool:
    current = ctx.state.store.object_meta(bucket.name, version.key)
    return current is None or current.version_id != version.version_id


def version_attributes(version: ObjectVersion) -> dict:
    """GetObject/HeadObject members of a version's tags and locks."""
    out: dict = {}
    if version.tags:
        out["TagCount"] = len(version.tag_list())
    if version.lock_mode:
        out["ObjectLockMode"] = version.lock_mode
        out["ObjectLockRetainUntilDate"] = object_lock.from_us(version.lock_until_us)
    if version.legal_hold:
        out["ObjectLockLegalHoldStatus"] = object_lock.LEGAL_HOLD_NAMES[version.legal_hold]
    return out


def checksum_members(algorithm: str | None, value: str | None, checksum_type: str | None) -> dict:
    if not algorithm or not value:
        return {}
    out = {checksums.member(algorithm): value}
    if checksum_type:
        out["ChecksumType"] = checksum_type
    return out


async def commit_version(ctx, version: ObjectVersion, params: dict, acl: str | None = None) -> None:
    """Make ``version`` current in the next group commit (with its ACL, when not the default),
    or unlink its blob and raise."""
    store = ctx.state.store

    def commit(batch: Batch) -> None:
        if batch.bucket(version.bucket) is None:
            raise NoSuchBucket(BucketName=version.bucket)
        current = batch.get(version.bucket, version.key)
        conditions.check_write(params, current.etag if current else None)
        batch.put(version)
        if acl is not None:
            batch.set_acl(version.version_id, acl)

    try:
        await store.write(commit)
    except BaseException:
        if version.blob:
            store.discard([version.blob])
        raise


# --- PutObject ---------------------------------------------------------------------------------

async def put_object(ctx, params: dict) -> dict:
    bucket, key, access, encryption_config = _write_target(ctx, params)
    owner_id = access_control.object_owner(ctx, bucket, access, params)
    acl = acls.write_acl(ctx, params, bucket, access, owner_id)
    conditions.validate_write(params)
    if params.get("WriteOffsetBytes") is not None:
        raise NotImplementedOperation(Header="x-amz-write-offset-bytes")
    headers = stored_headers(params)
    extras = new_version_extras(ctx, params, bucket)
    store = ctx.state.store
    if params.get("IfNoneMatch") is not None or params.get("IfMatch") is not None:
        current = store.object(bucket.name, key)        # fail before reading the body
        conditions.check_write(params, current.etag if current else None)
    declared = checksums.declared(params, ctx.headers)
    sse = await encryption.for_write(ctx, params, bucket, key, encryption_config)
    received = await payload.receive(ctx, ctx.state, params, inline_ok=True, declared=declared,
                                     seal=sse.data_key)
    value = received.checksums[declared.algorithm]
    etag = sse.etag(received.md5)
    version = ObjectVersion(bucket.name, key, new_id(), received.size, etag, now_us(ctx),
                            owner_id, 0, declared.algorithm, checksums.FULL_OBJECT,
                            value, headers, received.blob_id, received.data, **extras,
                            sse=sse.sse_text)
    await commit_version(ctx, version, params, acl)
    out = {"ETag": quoted(etag), **versioning.version_header(bucket, version),
           **checksum_members(declared.algorithm, value, checksums.FULL_OBJECT),
           **sse.members(write=True)}
    if bucket.lifecycle:
        expiration = lifecycle.expiration_header(bucket, version, ctx.state.day_us)
        if expiration:
            out["Expiration"] = expiration
    return out


# --- GetObject / HeadObject --------------------------------------------------------------------

async def get_object(ctx, params: dict) -> dict:
    for _ in range(3):
        bucket, version = read_target(ctx, params)
        sse = await encryption.for_read(ctx, params, version.sse)
        out = _describe(ctx, params, version, bucket)
        start, end = out.pop("__range__")
        if sse is not None:
            out.update(sse.members())
        if version.data is not None:
            data = version.data[start:end + 1] if sse is None else \
                sealed.unseal_range(sse.data_key, version.data, version.size, start, end)
            out["Body"] = ObjectBody(ctx.state.blobs, data=data)
            return out
        if sse is not None:
            body = sealed_io.SealedBody(ctx.state.blobs, sse.data_key,
                                        sealed_io.pieces(ctx.state.store, version, start, end))
        else:
            body = ObjectBody(ctx.state.blobs,
                              segments=segments(ctx.state.store, version, start, end))
        try:
            body.open()
        except FileNotFoundError:
            continue    # the version was replaced between the lookup and the open: look again
        out["Body"] = body
        return out
    raise S3Error("The object changed while it was being read; please retry.")


async def head_object(ctx, params: dict) -> dict:
    bucket, version = read_target(ctx, params, "HEAD")
    sse = await encryption.for_read(ctx, params, version.sse, need_key=False)
    out = _describe(ctx, params, version, bucket)
    out.pop("__range__")
    if sse is not None:
        out.update(sse.members())
    return out


_STORED_MEMBERS: dict[str | None, dict] = {}


def _stored_members(stored: str | None) -> dict:
    """``output_headers(stored)`` as a new dict, parsed once per stored text (a hot object's
    headers JSON is the same on every read; the nested ``Metadata`` dict is shared, read only)."""
    found = _STORED_MEMBERS.get(stored)
    if found is None:
        found = output_headers(stored)
        if stored is None or len(stored) <= 2048:
            if len(_STORED_MEMBERS) >= 4096:
                _STORED_MEMBERS.clear()
            _STORED_MEMBERS[stored] = found
    return dict(found)


def _describe(ctx, params: dict, version: ObjectVersion, bucket: Bucket) -> dict:
    """Headers of a GetObject/HeadObject answer, with the byte range to send as ``__range__``."""
    if len(params) > 2:     # anything besides Bucket and Key: conditions, overrides ...
        conditions.check_read(params, version.etag, version.modified_us // 1_000_000)
        overrides = [(m, params[p]) for p, m in _OVERRIDES if params.get(p) is not None]
    else:
        overrides = ()
    out = _stored_members(version.headers)
    out["ETag"] = f'"{version.etag}"'
    out["LastModified"] = last_modified(version.modified_us)
    out["AcceptRanges"] = "bytes"
    if bucket.versioning is not None or params.get("VersionId") is not None:
        out["VersionId"] = version.vid
    if version.tags or version.lock_mode or version.legal_hold:
        out.update(version_attributes(version))
    if bucket.lifecycle:      # current versions only: Expiration rules expire nothing else
        expiration = lifecycle.expiration_header(bucket, version, ctx.state.day_us)
        if expiration and (params.get("VersionId") is None
                           or not _is_noncurrent(ctx, bucket, version)):
            out["Expiration"] = expiration
    for member, value in overrides:
        out[member] = value
    size = version.size
    part_number = params.get("PartNumber")
    range_header = params.get("Range")
    whole = True
    start, end = 0, size - 1
    checksum_value = version.checksum_value
    if part_number is not None:
        if range_header:
            raise InvalidRequest("Cannot specify both Range header and partNumber query parameter.")
        part_number = int(part_number)
        if not 1 <= part_number <= 10000:
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                  ArgumentName="partNumber", ArgumentValue=part_number)
        if version.parts:
            rows = ctx.state.store.object_parts(version.version_id, part_number - 1, 1)
            if not rows or rows[0][0] != part_number:
                raise InvalidPartNumber(PartNumberRequested=part_number,
                                        ActualPartCount=version.parts)
            _, start, part_size, _, checksum_value, _ = rows[0]
            end = start + part_size - 1
            out["PartsCount"] = version.parts
        elif part_number != 1:
            raise InvalidPartNumber(PartNumberRequested=part_number, ActualPartCount=1)
        if size:
            out["__status__"] = 206
            out["ContentRange"] = f"bytes {start}-{end}/{size}"
        whole = not version.parts
    else:
        selected = conditions.parse_range(range_header, size)
        if selected is not None:
            start, end = selected
            out["__status__"] = 206
            out["ContentRange"] = f"bytes {start}-{end}/{size}"
            whole = False
    if params.get("ChecksumMode") == "ENABLED" and (whole or part_number is not None):
        out.update(checksum_members(version.checksum_algorithm, checksum_value,
                                    version.checksum_type))
    out["ContentLength"] = max(0, end - start + 1)
    out["__range__"] = (start, end)
    return out


# --- DeleteObject / DeleteObjects --------------------------------------------------------------

def _check_delete(item: dict, current: ObjectVersion | None) -> None:
    """Conditional deletes: If-Match (ETag), x-amz-if-match-size, -last-modified-time."""
    etag, size, modified = item.get("IfMatch"), item.get("IfMatchSize"), \
        item.get("IfMatchLastModifiedTime")
    if etag is None and size is None and modified is None:
        return
    if current is None:
        raise NoSuchKey(Key=item.get("Key"))
    if etag is not None and not conditions.etag_matches(etag, current.etag):
        raise PreconditionFailed(Condition="If-Match")
    if size is not None and int(size) != current.size:
        raise PreconditionFailed(Condition="x-amz-if-match-size")
    if modified is not None and conditions.seconds(modified) != current.modified_us // 1_000_000:
        raise PreconditionFailed(Condition="x-amz-if-match-last-modified-time")


async def delete_object(ctx, params: dict) -> dict:
    bucket, key = target_bucket(ctx, params)
    vid = versioning.check_version_id(params.get("VersionId"))
    owner_id = ctx.account.account_id if ctx.account is not None else bucket.account_id
    now = now_us(ctx)

    def delete(batch: Batch) -> dict:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        return _delete_one(batch, bucket.name, key, vid, params, owner_id, now)

    out = await ctx.state.store.write(delete)
    out["__status__"] = 204
    return out


def _delete_one(batch: Batch, bucket: str, key: str, vid: str | None, item: dict, owner_id: str,
                now: int) -> dict:
    """One deletion in a batch: without ``vid`` the key's object (unversioned bucket) or a new
    delete marker (versioned); with ``vid`` that version for good (object lock permitting).
    Returns the answer's members (DeleteMarker, VersionId)."""
    if vid is None:
        _check_delete(item, batch.get(bucket, key))
        marker = batch.delete(bucket, key, owner_id)
        if marker is not None and marker.delete_marker:
            return {"DeleteMarker": True, "VersionId": marker.vid}
        return {}
    found = batch.find(bucket, key, vid)
    if found is None:
        return {"VersionId": vid}       # S3 answers 204 for a version that is not there
    _check_delete(item, found if not found.delete_marker else None)
    object_lock.check_delete(found, bool(item.get("BypassGovernanceRetention")), now)
    batch.delete_version(bucket, key, vid)
    out = {"VersionId": vid}
    if found.delete_marker:
        out["DeleteMarker"] = True
    return out


async def delete_objects(ctx, params: dict) -> dict:
    bucket = ctx.state.store.bucket(params.get("Bucket")) if params.get("Bucket") else None
    if bucket is None:
        raise NoSuchBucket(BucketName=params.get("Bucket"))
    access_control.check_expected_owner(params, bucket)
    spec = params.get("Delete") or {}
    items = spec.get("Objects") or []
    if not items or len(items) > MAX_DELETE_KEYS:
        raise MalformedXML()
    quiet = bool(spec.get("Quiet"))
    bypass = bool(params.get("BypassGovernanceRetention"))
    owner_id = ctx.account.account_id if ctx.account is not None else bucket.account_id
    denied = _denied_keys(ctx, params, bucket, items)
    now = now_us(ctx)

    def delete(batch: Batch) -> list[tuple[dict, dict | S3Error]]:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        results = []
        for item in items:
            key = item.get("Key")
            try:
                check_key(key)
                if id(item) in denied:
                    raise AccessDenied()
                vid = item.get("VersionId")
                if vid is not None and not well_formed_vid(vid):
                    raise NoSuchVersion(Key=key, VersionId=vid)   # S3's answer in a multi-delete
                condition = {"IfMatch": item.get("ETag"), "IfMatchSize": item.get("Size"),
                             "IfMatchLastModifiedTime": item.get("LastModifiedTime"), "Key": key,
                             "BypassGovernanceRetention": bypass}
                results.append((item, _delete_one(batch, bucket.name, key, vid, condition,
                                                  owner_id, now)))
            except S3Error as exc:
                results.append((item, exc))
        return results

    results = await ctx.state.store.write(delete)
    deleted, errors = [], []
    for item, outcome in results:
        if not isinstance(outcome, S3Error):
            if not quiet:
                entry = {"Key": item["Key"]}
                if item.get("VersionId"):
                    entry["VersionId"] = item["VersionId"]
                    if outcome.get("DeleteMarker"):
                        entry["DeleteMarker"] = True
                        entry["DeleteMarkerVersionId"] = item["VersionId"]
                elif outcome.get("DeleteMarker"):
                    entry["DeleteMarker"] = True
                    entry["DeleteMarkerVersionId"] = outcome["VersionId"]
                deleted.append(entry)
        else:
            entry = {"Key": item.get("Key"), "Code": outcome.code, "Message": outcome.message}
            if item.get("VersionId"):
                entry["VersionId"] = item["VersionId"]
            errors.append(entry)
    out: dict = {}
    if deleted:
        out["Deleted"] = deleted
    if errors:
        out["Errors"] = errors
    return out


# --- CopyObject --------------------------------------------------------------------------------

def _denied_keys(ctx, params: dict, bucket: Bucket, items: list) -> set[int]:
    """The entries of a DeleteObjects the decision refuses (s3:DeleteObject, or
    s3:DeleteObjectVersion for a version); all of them refused is AccessDenied for the request."""
    access = access_control.bucket_access(ctx, bucket)
    denied = set()
    for item in items:
        key = item.get("Key")
        action = "s3:DeleteObjectVersion" if item.get("VersionId") else "s3:DeleteObject"
        if isinstance(key, str) and not access_control.allowed(
                ctx, {"VersionId": item.get("VersionId")} if item.get("VersionId") else {},
                bucket, action, key, access=access):
            denied.add(id(item))
    if denied and len(denied) == len(items):
        raise AccessDenied()
    if ctx.account is None or ctx.account.account_id != bucket.account_id:
        ctx.bill_to = bucket.account_id
    return denied


async def copy_object(ctx, params: dict) -> dict:
    bucket, key, access = write_target(ctx, params)
    owner_id = access_control.object_owner(ctx, bucket, access, params)
    acl = acls.write_acl(ctx, params, bucket, access, owner_id)
    conditions.validate_write(params)
    directive = (params.get("MetadataDirective") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown metadata directive.", ArgumentName="x-amz-metadata-directive",
                              ArgumentValue=params.get("MetadataDirective"))
    tag_directive = (params.get("TaggingDirective") or "COPY").upper()
    if tag_directive not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown tagging directive.", ArgumentName="x-amz-tagging-directive",
                              ArgumentValue=params.get("TaggingDirective"))
    lock = object_lock.new_version_lock(ctx, params, bucket)
    replaced_tags = tagging.header_tags(params.get("Tagging")) if tag_directive == "REPLACE" else None
    src_name, src_key, src_vid = parse_copy_source(params.get("CopySource"))
    wanted_algorithm = checksums.algorithm_named(params.get("ChecksumAlgorithm"))
    if (src_name, src_key) == (bucket.name, key) and directive == "COPY" and src_vid is None and not (
            params.get("StorageClass") or params.get("WebsiteRedirectLocation")
            or params.get("ServerSideEncryption") or params.get("SSECustomerAlgorithm")
            or params.get("SSEKMSKeyId") or wanted_algorithm):
        raise InvalidRequest("This copy request is illegal because it is trying to copy an object to"
                             " itself without changing the object's metadata, storage class,"
                             " website redirect location or encryption attributes.")
    encryption.requested(ctx, params)       # the target's headers: checked before the source
    for _ in range(3):
        source_bucket, source, _ = source_version(ctx, params)
        source_sse = await encryption.for_read(ctx, params, source.sse, prefix="CopySource")
        conditions.check_copy_source(params, source.etag, source.modified_us // 1_000_000)
        if source.size > MAX_COPY_SIZE:
            raise InvalidRequest("The specified copy source is larger than the maximum allowable"
                                 f" size for a copy source: {MAX_COPY_SIZE}")
        headers = stored_headers(params) if directive == "REPLACE" else _copied_headers(params, source)
        sse = await encryption.for_write(ctx, params, bucket, key)
        try:
            version = await _copy_data(ctx, source, bucket.name, key, headers, wanted_algorithm,
                                       source_sse, sse, owner_id)
            break
        except FileNotFoundError:
            continue   # the source was replaced while we opened it: look again
    else:
        raise S3Error("The copy source changed while it was being read; please retry.")
    version.tags = source.tags if tag_directive == "COPY" else replaced_tags
    for name, value in lock.items():
        setattr(version, name, value)
    await commit_version(ctx, version, params, acl)
    result = {"ETag": quoted(version.etag), "LastModified": last_modified(version.modified_us)}
    result.update(checksum_members(version.checksum_algorithm, version.checksum_value,
                                   version.checksum_type))
    out = {"CopyObjectResult": result, **versioning.version_header(bucket, version),
           **sse.members(write=True)}
    if source_bucket.versioning is not None or src_vid is not None:
        out["CopySourceVersionId"] = source.vid
    return out


def _copied_headers(params: dict, source: ObjectVersion) -> str | None:
    changes = {k: params[k] for k in ("StorageClass", "WebsiteRedirectLocation") if params.get(k)}
    if not changes:
        return source.headers
    merged = output_headers(source.headers)
    merged.update(changes)
    return stored_headers(merged)


async def _copy_data(ctx, source: ObjectVersion, bucket: str, key: str, headers: str | None,
                     wanted: str | None, source_sse, sse, owner_id: str) -> ObjectVersion:
    """The copy's new version: the source's plaintext (decrypted with ``source_sse``'s key)
    sealed with the target's new data key (``sse``), hashed on the way."""
    state = ctx.state
    algorithm = wanted or source.checksum_algorithm or checksums.DEFAULT_ALGORITHM
    reuse_sum = (algorithm == source.checksum_algorithm and not source.parts
                 and source.checksum_value is not None)
    value = source.checksum_value if reuse_sum else None
    source_key = source_sse.data_key if source_sse is not None else None
    blob_id = data = None
    if source.data is not None:
        plain = source.data if source_key is None else \
            sealed.unseal(source_key, source.data, source.size)
        md5 = hashlib.md5(plain).digest()
        value = value or checksums.compute(algorithm, plain)
        data = sealed.seal(sse.data_key, plain) if sse.data_key is not None else plain
    else:
        fds = sealed_io.open_pieces(state.store, sealed_io.pieces(state.store, source, 0,
                                                                  source.size - 1))
        writer = None
        try:
            writer = await state.blobs.run(_sealing_writer, state.blobs, sse.data_key)
            md5, sums = await state.blobs.run(sealed_io.copy_plain, writer, fds, source_key,
                                              [] if value else [algorithm])
            await state.blobs.run(writer.commit)
        except BaseException:
            if writer is not None:
                await state.blobs.run(writer.abort)
            raise
        finally:
            sealed_io.close_pieces(fds)
        value = value or sums[algorithm]
        blob_id = writer.blob_id
    return ObjectVersion(bucket, key, new_id(), source.size, sse.etag(md5), now_us(ctx),
                         owner_id, 0, algorithm, checksums.FULL_OBJECT, value,
                         headers, blob_id, data, sse=sse.sse_text)


def _sealing_writer(blobs, data_key: bytes | None):
    writer = blobs.create()
    return writer if data_key is None else sealed.SealingWriter(writer, data_key)


# --- GetObjectAttributes, GetObjectAcl ---------------------------------------------------------

async def get_object_attributes(ctx, params: dict) -> dict:
    bucket, version = read_target(ctx, params)
    await encryption.for_read(ctx, params, version.sse, need_key=False)   # SSE-C: the key
    wanted = {a.strip() for item in params.get("ObjectAttributes") or [] for a in str(item).split(",")}
    out: dict = {"LastModified": last_modified(version.modified_us),
                 **versioning.version_header(bucket, version, params.get("VersionId"))}
    if "ETag" in wanted:
        out["ETag"] = version.etag
    if "Checksum" in wanted and version.checksum_value:
        out["Checksum"] = checksum_members(version.checksum_algorithm, version.checksum_value,
                                           version.checksum_type)
    if "ObjectParts" in wanted and version.parts:
        marker = int(params.get("PartNumberMarker") or 0)
        max_parts = min(int(params.get("MaxParts") or 1000), 1000)
        rows = ctx.state.store.object_parts(version.version_id, marker, max_parts + 1)
        parts = [{"PartNumber": r[0], "Size": r[2],
                  **({checksums.member(version.checksum_algorithm): r[4]}
                     if r[4] and version.checksum_algorithm else {})} for r in rows[:max_parts]]
        info = {"TotalPartsCount": version.parts, "PartNumberMarker": marker,
                "MaxParts": max_parts, "IsTruncated": len(rows) > max_parts, "Parts": parts}
        if parts:
            info["NextPartNumberMarker"] = parts[-1]["PartNumber"]
        out["ObjectParts"] = info
    if "StorageClass" in wanted:
        out["StorageClass"] = storage_class(version.headers)
    if "ObjectSize" in wanted:
        out["ObjectSize"] = version.size
    return out


__all__ = ["put_object", "get_object", "head_object", "delete_object", "delete_objects",
           "copy_object", "get_object_attributes", "owner", "unquote"]
