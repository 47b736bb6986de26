"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
AbortMultipartUpload, ListParts, ListMultipartUploads.

Each part is its own blob. Completing an upload copies no data: the object becomes the ordered
list of its parts' blobs (``s3_object_parts``) and GetObject streams them one after the other.
The whole completion (validation included) runs inside one exclusive transaction, so a part
re-uploaded or an upload aborted concurrently cannot slip in between the check and the commit.
Parts of uploads in progress count as stored bytes, as S3 bills them. An upload's encryption
(``s3_api.encryption``) is chosen when it is created (``s3_uploads.sse``: one data key for the
object); every part is sealed with it (``storage.sealed``: each part blob with its own salt) and
an SSE-C upload needs its customer key on every part.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import urllib.parse

from s3_api import access_control, acls, checksums, conditions, encryption, objects, payload, sealed_io
from s3_api.versioning import version_header  # noqa: I001 (versions: s3_api.versioning)
from s3_api.buckets import owned_bucket
from s3_api.copying import parse_copy_range, source_version
from s3_api.errors import (BadDigest, EntityTooSmall, InvalidArgument, InvalidPart,
                           InvalidPartOrder, InvalidRequest, MalformedXML, NoSuchBucket,
                           NoSuchUpload)
from s3_api.listing import encoder, walk
from s3_api.metadata import last_modified, now_us, quoted, storage_class, stored_headers, unquote
from s3_api.objects import checksum_members, target_bucket
from storage import completed_uploads, sealed
from storage.objects import Batch, ObjectVersion, new_id, prefix_end

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 ** 3
MAX_PART_NUMBER = 10000
MAX_COPY_PART = 5 * 1024 ** 3
_AFTER_ANY_UPLOAD_ID = "\x7f"   # sorts after every upload id (hex digits)


def upload_extras(store, upload_id: str) -> dict:
    """The tags and object lock an upload's version gets (set when the upload was created)."""
    rows = store.query("SELECT extras FROM s3_uploads WHERE upload_id = ?", (upload_id,))
    extras = json.loads(rows[0][0]) if rows and rows[0][0] else {}
    extras.pop(ACL_EXTRA, None)
    return extras


ACL_EXTRA = "acl"       # the ACL the completed object gets (s3_api.acls), kept with the upload


def upload_acl(store, upload_id: str) -> str | None:
    rows = store.query("SELECT extras FROM s3_uploads WHERE upload_id = ?", (upload_id,))
    return json.loads(rows[0][0]).get(ACL_EXTRA) if rows and rows[0][0] else None


def upload_sse(store, upload_id: str) -> str | None:
    """The encryption of an upload's object (None: an upload begun before encryption at rest)."""
    rows = store.query("SELECT sse FROM s3_uploads WHERE upload_id = ?", (upload_id,))
    return rows[0][0] if rows else None


def _upload_for(ctx, bucket: str, key: str, upload_id: str | None) -> tuple:
    upload = ctx.state.store.upload(upload_id) if upload_id else None
    if upload is None or upload[1] != bucket or upload[2] != key:
        raise NoSuchUpload(UploadId=upload_id)
    return upload


def _part_number(params: dict) -> int:
    value = params.get("PartNumber")
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                              ArgumentName="partNumber", ArgumentValue=value)
    return number


# --- CreateMultipartUpload ---------------------------------------------------------------------

async def create_multipart_upload(ctx, params: dict) -> dict:
    bucket, key, access = objects.write_target(ctx, params)
    account_id = access_control.object_owner(ctx, bucket, access, params)   # the object's owner
    acl = acls.write_acl(ctx, params, bucket, access, account_id)
    headers = stored_headers(params)
    extras = objects.new_version_extras(ctx, params, bucket)   # tags and object lock of the version
    if acl is not None:
        extras[ACL_EXTRA] = acl
    algorithm = checksums.algorithm_named(params.get("ChecksumAlgorithm"))
    checksum_type = None
    if algorithm:
        checksum_type = checksums.check_type(algorithm, params.get("ChecksumType"))
    elif params.get("ChecksumType"):
        raise InvalidRequest("The x-amz-checksum-type header can only be used with the"
                             " x-amz-checksum-algorithm header.")
    sse = await encryption.for_write(ctx, params, bucket, key)
    initiated = now_us(ctx)
    upload_id = f"{initiated:014x}{secrets.token_hex(16)}"

    async def create(batch: Batch) -> None:
        if batch.bucket(bucket.name) is None:
            raise NoSuchBucket(BucketName=bucket.name)
        await batch.tx.execute(
            "INSERT INTO s3_uploads (upload_id, bucket, key, initiated_us, owner_id,"
            " checksum_algorithm, checksum_type, headers, extras, sse)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (upload_id, bucket.name, key, initiated, account_id, algorithm, checksum_type, headers,
             json.dumps(extras) if extras else None, sse.sse_text))

    await ctx.state.store.write_alone(create)
    out = {"Bucket": bucket.name, "Key": key, "UploadId": upload_id, **sse.members(write=True)}
    if algorithm:
        out.update({"ChecksumAlgorithm": algorithm, "ChecksumType": checksum_type})
    return out


# --- UploadPart, UploadPartCopy ----------------------------------------------------------------

async def _commit_part(ctx, bucket: str, upload_id: str, number: int, size: int, etag: str,
                       sums: dict[str, str], blob_id: str) -> None:
    store = ctx.state.store
    modified = now_us(ctx)

    async def commit(batch: Batch) -> None:
        if store.upload(upload_id) is None:
            raise NoSuchUpload(UploadId=upload_id)
        old = store.query("SELECT size, blob FROM s3_upload_parts WHERE upload_id = ? AND"
                          " part_number = ?", (upload_id, number))
        await batch.tx.execute(
            "INSERT INTO s3_upload_parts (upload_id, part_number, size, etag, modified_us,"
            " checksums, blob) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(upload_id, part_number)"
            " DO UPDATE SET size = excluded.size, etag = excluded.etag,"
            " modified_us = excluded.modified_us, checksums = excluded.checksums,"
            " blob = excluded.blob",
            (upload_id, number, size, etag, modified, json.dumps(sums), blob_id))
        batch.add_usage(bucket, size - (old[0][0] if old else 0))
        if old:
            batch.discard_blobs([old[0][1]])

    try:
        await store.write_alone(commit)
    except BaseException:
        store.discard([blob_id])
        raise


def _part_algorithms(upload: tuple) -> tuple[str, ...]:
    algorithm = upload[5]
    return tuple(dict.fromkeys(a for a in (algorithm, checksums.DEFAULT_ALGORITHM) if a))


async def upload_part(ctx, params: dict) -> dict:
    bucket, key = target_bucket(ctx, params)
    number = _part_number(params)
    upload_id = params.get("UploadId")
    upload = _upload_for(ctx, bucket.name, key, upload_id)
    algorithm = upload[5]
    declared = checksums.declared(params, ctx.headers, fallback=algorithm)
    if algorithm and declared.algorithm != algorithm:
        raise InvalidRequest(f"Checksum Type mismatch occurred, expected checksum Type:"
                             f" {algorithm.lower()}, actual checksum Type:"
                             f" {declared.algorithm.lower()}")
    sse = await encryption.for_part(ctx, params, upload_sse(ctx.state.store, upload_id))
    received = await payload.receive(ctx, ctx.state, params, inline_ok=False, declared=declared,
                                     also=_part_algorithms(upload), max_size=MAX_PART_SIZE,
                                     seal=sse.data_key if sse is not None else None)
    etag = sse.etag(received.md5) if sse is not None else received.etag
    await _commit_part(ctx, bucket.name, upload_id, number, received.size, etag,
                       received.checksums, received.blob_id)
    out = {"ETag": quoted(etag), **(sse.members() if sse is not None else {})}
    if declared.explicit:
        out[checksums.member(declared.algorithm)] = received.checksums[declared.algorithm]
    return out


async def upload_part_copy(ctx, params: dict) -> dict:
    bucket, key = target_bucket(ctx, params)
    number = _part_number(params)
    upload_id = params.get("UploadId")
    upload = _upload_for(ctx, bucket.name, key, upload_id)
    state = ctx.state
    algorithms = list(_part_algorithms(upload))
    sse = await encryption.for_part(ctx, params, upload_sse(state.store, upload_id))
    seal = sse.data_key if sse is not None else None
    for _ in range(3):
        source_bucket, source, source_vid = source_version(ctx, params)
        source_sse = await encryption.for_read(ctx, params, source.sse, prefix="CopySource")
        source_key = source_sse.data_key if source_sse is not None else None
        conditions.check_copy_source(params, source.etag, source.modified_us // 1_000_000)
        first, last = parse_copy_range(params.get("CopySourceRange"), source.size)
        if last - first + 1 > MAX_COPY_PART:
            raise InvalidRequest("The specified copy range is larger than the maximum allowable"
                                 f" size for a part: {MAX_COPY_PART}")
        writer = None
        try:
            writer = await state.blobs.run(_part_writer, state.blobs, seal)
            if source.data is not None:
                data = source.data[first:last + 1] if source_key is None else \
                    sealed.unseal_range(source_key, source.data, source.size, first, last)
                sums = {a: checksums.compute(a, data) for a in algorithms}
                md5 = hashlib.md5(data).digest()
                await state.blobs.run(writer.write, data)
            else:
                fds = sealed_io.open_pieces(state.store,
                                            sealed_io.pieces(state.store, source, first, last))
                try:
                    md5, sums = await state.blobs.run(sealed_io.copy_plain, writer, fds,
                                                      source_key, algorithms)
                finally:
                    sealed_io.close_pieces(fds)
            await state.blobs.run(writer.commit)
            break
        except FileNotFoundError:
            if writer is not None:
                await state.blobs.run(writer.abort)
            continue
        except BaseException:
            if writer is not None:
                await state.blobs.run(writer.abort)
            raise
    else:
        raise InvalidRequest("The copy source changed while it was being read; please retry.")
    etag = sse.etag(md5) if sse is not None else md5.hex()
    await _commit_part(ctx, bucket.name, upload_id, number, last - first + 1, etag, sums,
                       writer.blob_id)
    result = {"ETag": quoted(etag), "LastModified": last_modified(now_us(ctx))}
    if upload[5]:
        result[checksums.member(upload[5])] = sums[upload[5]]
    out = {"CopyPartResult": result, **(sse.members() if sse is not None else {})}
    if source_bucket.versioning is not None or source_vid is not None:
        out["CopySourceVersionId"] = source.vid
    return out


# --- CompleteMultipartUpload, AbortMultipartUpload ---------------------------------------------

def _part_writer(blobs, seal: bytes | None):
    writer = blobs.create()
    return writer if seal is None else sealed.SealingWriter(writer, seal)


def _object_checksum(upload: tuple, chosen: list[tuple[int, int, str, dict]]) -> tuple[str, str, str]:
    """(algorithm, type, value) of the completed object from its parts' checksums."""
    algorithm = upload[5] or checksums.DEFAULT_ALGORITHM
    checksum_type = upload[6] or checksums.FULL_OBJECT
    values = [sums.get(algorithm) for _, _, _, sums in chosen]
    if any(v is None for v in values):   # parts from before an algorithm was known: none
        return algorithm, checksum_type, ""
    if checksum_type == checksums.COMPOSITE:
        return algorithm, checksum_type, checksums.composite(algorithm, values)
    return algorithm, checksum_type, checksums.full_object(
        algorithm, [(v, size) for v, (_, size, _, _) in zip(values, chosen)])


async def complete_multipart_upload(ctx, params: dict) -> dict:
    bucket, key = target_bucket(ctx, params)
    conditions.validate_write(params)
    upload_id = params.get("UploadId")
    requested = (params.get("MultipartUpload") or {}).get("Parts") or []
    try:
        _upload_for(ctx, bucket.name, key, upload_id)
        if not requested:
            raise MalformedXML()
        numbers = [int(p.get("PartNumber") or 0) for p in requested]
        return await _complete(ctx, params, bucket, key, upload_id, requested, numbers)
    except NoSuchUpload:
        repeated = await _completed_before(ctx, bucket.name, key, upload_id, requested)
        if repeated is None:
            raise
        return repeated


async def _completed_before(ctx, bucket: str, key: str, upload_id: str | None,
                            requested: list) -> dict | None:
    """The answer of an earlier CompleteMultipartUpload of ``upload_id`` with the same parts,
    while the object it made is still the key's current one (S3 answers such a retry with 200)."""
    if not upload_id or not requested:
        return None
    found = await completed_uploads.lookup(ctx.state.store.db, upload_id, bucket, key)
    if found is None:
        return None
    version_id, answer = found
    current = ctx.state.store.object_meta(bucket, key)
    if current is None or current.version_id != version_id:
        return None
    try:
        digests = b"".join(bytes.fromhex(unquote(p.get("ETag") or "")) for p in requested)
    except ValueError:
        return None
    if quoted(f"{hashlib.md5(digests).hexdigest()}-{len(requested)}") != answer.get("ETag"):
        return None     # another part list: not a retry of that completion
    return {"Location": _location(ctx, bucket, key), "Bucket": bucket, "Key": key, **answer}


def _location(ctx, bucket: str, key: str) -> str:
    location = f"/{bucket}/{urllib.parse.quote(key)}"
    if getattr(ctx, "host", ""):
        location = f"http://{ctx.host}{location}"
    return location


async def _complete(ctx, params: dict, bucket, key: str, upload_id: str, requested: list,
                    numbers: list[int]) -> dict:
    store = ctx.state.store
    modified = now_us(ctx)

    async def complete(batch: Batch) -> ObjectVersion:
        upload = store.upload(upload_id)
        if upload is None or upload[1] != bucket.name or upload[2] != key:
            raise NoSuchUpload(UploadId=upload_id)
        account_id = upload[4]      # the owner the object gets, chosen at CreateMultipartUpload
        stored = {r[0]: r for r in store.upload_parts(upload_id)}
        chosen = []
        for i, (part, number) in enumerate(zip(requested, numbers)):
            # the list is walked in order, as S3 walks it: a number not above the one before
            # (listed twice, or out of order) is InvalidPartOrder once the parts before it were
            # found; a missing or mismatched part before it is InvalidPart
            if i and number <= numbers[i - 1]:
                raise InvalidPartOrder()
            row = stored.get(number)
            if row is None or unquote(part.get("ETag")) != row[2]:
                raise InvalidPart(UploadId=upload_id, PartNumber=number, ETag=part.get("ETag"))
            sums = json.loads(row[4] or "{}")
            for algorithm in checksums.ALGORITHMS:
                given = part.get(checksums.member(algorithm))
                if given is not None and sums.get(algorithm) not in (None, given):
                    raise InvalidPart(f"The {algorithm.lower()} checksum of part {number} does"
                                      " not match the part's.", PartNumber=number)
            chosen.append((number, row[1], row[5], sums, row[2]))
        for (number, part_size, _, _, _), part in zip(chosen[:-1], requested):
            if part_size < MIN_PART_SIZE:     # every part but the last: 5 MiB at least
                raise EntityTooSmall(ProposedSize=part_size, MinSizeAllowed=MIN_PART_SIZE,
                                     PartNumber=number, ETag=part.get("ETag"))
        size = sum(c[1] for c in chosen)
        expected_size = params.get("MpuObjectSize")
        if expected_size is not None and int(expected_size) != size:
            raise InvalidRequest("The provided x-amz-mp-object-size header value does not match"
                                 " the object size.")
        algorithm, checksum_type, value = _object_checksum(
            upload, [(n, s, b, sums) for n, s, b, sums, _ in chosen])
        if params.get("ChecksumType") and params["ChecksumType"].upper() != checksum_type:
            raise InvalidRequest(f"The upload was created using the {checksum_type} checksum"
                                 " mode. The complete request must use the same checksum mode.")
        claimed = params.get(checksums.member(algorithm))
        if claimed is not None and value and claimed.split("-")[0] != value.split("-")[0]:
            raise BadDigest(f"The {algorithm} you specified did not match the calculated"
                            " checksum.")
        current = batch.get(bucket.name, key)
        conditions.check_write(params, current.etag if current else None)
        etag = hashlib.md5(b"".join(bytes.fromhex(c[4]) for c in chosen)).hexdigest()
        part_rows, start = [], 0
        for number, part_size, blob, sums, part_etag in chosen:
            part_rows.append((number, start, part_size, part_etag, sums.get(algorithm), blob))
            start += part_size
        version = ObjectVersion(bucket.name, key, new_id(), size, f"{etag}-{len(chosen)}",
                                modified, account_id, len(chosen), algorithm, checksum_type,
                                value or None, upload[7], None, None, part_rows,
                                **upload_extras(store, upload_id),
                                sse=upload_sse(store, upload_id))
        batch.put(version)
        acl = upload_acl(store, upload_id)
        if acl is not None:
            batch.set_acl(version.version_id, acl)
        used = {c[2] for c in chosen}
        batch.discard_blobs([r[5] for r in stored.values() if r[5] not in used])
        batch.add_usage(bucket.name, -sum(r[1] for r in stored.values()))
        await batch.tx.execute("DELETE FROM s3_upload_parts WHERE upload_id = ?", (upload_id,))
        await batch.tx.execute("DELETE FROM s3_uploads WHERE upload_id = ?", (upload_id,))
        await completed_uploads.record(batch.tx, upload_id, bucket.name, key, version.version_id,
                                       _answer(bucket, version), modified)
        return version

    version = await store.write_alone(complete)
    return {"Location": _location(ctx, bucket.name, key), "Bucket": bucket.name, "Key": key,
            **_answer(bucket, version)}


def _answer(bucket, version: ObjectVersion) -> dict:
    """The members of a completion's answer that a retry repeats (its version id included)."""
    out = {"ETag": quoted(version.etag), **version_header(bucket, version)}
    out.update((k, v) for k, v in encryption.members_of(version.sse).items()
               if not k.startswith("SSECustomer"))      # S3's Complete answer names no SSE-C key
    out.update(checksum_members(version.checksum_algorithm, version.checksum_value,
                                version.checksum_type))
    return out


async def abort_multipart_upload(ctx, params: dict) -> dict:
    bucket, key = target_bucket(ctx, params)
    upload_id = params.get("UploadId")
    store = ctx.state.store

    async def abort(batch: Batch) -> None:
        upload = store.upload(upload_id) if upload_id else None
        if upload is None or upload[1] != bucket.name or upload[2] != key:
            raise NoSuchUpload(UploadId=upload_id)
        parts = store.upload_parts(upload_id)
        batch.add_usage(bucket.name, -sum(p[1] for p in parts))
        batch.discard_blobs([p[5] for p in parts])
        await batch.tx.execute("DELETE FROM s3_upload_parts WHERE upload_id = ?", (upload_id,))
        await batch.tx.execute("DELETE FROM s3_uploads WHERE upload_id = ?", (upload_id,))

    await store.write_alone(abort)
    return {"__status__": 204}


# --- ListParts, ListMultipartUploads -----------------------------------------------------------

def _limit(value, name: str) -> int:
    if value is None:
        return 1000
    value = int(value)
    if value < 0:
        raise InvalidArgument(f"Argument {name} must be an integer between 0 and 2147483647",
                              ArgumentName=name, ArgumentValue=value)
    return min(value, 1000)


async def list_parts(ctx, params: dict) -> dict:
    bucket, key = target_bucket(ctx, params)
    upload_id = params.get("UploadId")
    upload = _upload_for(ctx, bucket.name, key, upload_id)
    marker = int(params.get("PartNumberMarker") or 0)
    limit = _limit(params.get("MaxParts"), "max-parts")
    rows = ctx.state.store.upload_parts(upload_id, marker, limit + 1)
    algorithm = upload[5]
    parts = []
    for number, size, etag, modified_us, sums, _ in rows[:limit]:
        part = {"PartNumber": number, "LastModified": last_modified(modified_us),
                "ETag": quoted(etag), "Size": size}
        if algorithm:
            value = json.loads(sums or "{}").get(algorithm)
            if value:
                part[checksums.member(algorithm)] = value
        parts.append(part)
    who = access_control.display(ctx, upload[4])
    out = {"Bucket": bucket.name, "Key": key, "UploadId": upload_id, "PartNumberMarker": marker,
           "MaxParts": limit, "IsTruncated": len(rows) > limit, "Parts": parts,
           "Initiator": who, "Owner": who, "StorageClass": storage_class(upload[7])}
    if parts:
        out["NextPartNumberMarker"] = parts[-1]["PartNumber"]
    if algorithm:
        out.update({"ChecksumAlgorithm": algorithm, "ChecksumType": upload[6]})
    return out


async def list_multipart_uploads(ctx, params: dict) -> dict:
    bucket = owned_bucket(ctx, params)
    encode = encoder(params)
    limit = _limit(params.get("MaxUploads"), "max-uploads")
    prefix = params.get("Prefix") or ""
    delimiter = params.get("Delimiter") or None
    key_marker = params.get("KeyMarker") or None
    upload_marker = params.get("UploadIdMarker") or None
    store = ctx.state.store

    def scan(start, inclusive, end, n):
        return store.scan_uploads(bucket.name, start, None if inclusive else _AFTER_ANY_UPLOAD_ID,
                                  end, n)

    first_scan = None
    if key_marker is not None and key_marker >= prefix:
        end = prefix_end(prefix) if prefix else None
        after_id = upload_marker or _AFTER_ANY_UPLOAD_ID
        first_scan = (lambda n: store.scan_uploads(bucket.name, key_marker, after_id, end, n))
    result = walk(scan, prefix, delimiter, key_marker, limit, first_scan)
    uploads = []
    for key, upload_id, initiated_us, owner_id, algorithm, checksum_type in result.rows:
        who = access_control.display(ctx, owner_id)
        item = {"UploadId": upload_id, "Key": encode(key), "Initiated": last_modified(initiated_us),
                "StorageClass": "STANDARD", "Owner": who, "Initiator": who}
        if algorithm:
            item.update({"ChecksumAlgorithm": algorithm, "ChecksumType": checksum_type})
        uploads.append(item)
    out = {"Bucket": bucket.name, "KeyMarker": encode(key_marker or ""),
           "UploadIdMarker": upload_marker or "", "Prefix": encode(prefix), "MaxUploads": limit,
           "IsTruncated": result.truncated, "Uploads": uploads,
           "CommonPrefixes": [{"Prefix": encode(p)} for p in result.prefixes]}
    if delimiter:
        out["Delimiter"] = encode(delimiter)
    if params.get("EncodingType"):
        out["EncodingType"] = params["EncodingType"]
    if result.truncated:
        if result.last_row is not None:
            out["NextKeyMarker"] = encode(result.last_row[0])
            out["NextUploadIdMarker"] = result.last_row[1]
        else:
            out["NextKeyMarker"] = encode(result.last)
    return out
