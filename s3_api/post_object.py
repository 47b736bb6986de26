"""POST Object: a browser-based upload, the object in a multipart/form-data form.

The form's fields come first (read into memory, at most ``MAX_FIELDS_BYTES`` together), then the
``file`` field, streamed to the blob store exactly as a PutObject body is (``payload.store``:
bounded memory, hashed on the way, fsynced, renamed) and committed exactly as PutObject commits
(``objects.commit_version``: usage events, the key's previous version released). Fields after the
file are not read, as S3 ignores them. The gateway checks the form's signature and policy between
:func:`read_form` and :func:`post_object` (``gateway.post_object``); this module knows the form's
S3 meaning: the key (``${filename}``), content headers, metadata, checksums and the
``success_action_*`` answer.

The form reader is duck-typed on aiohttp's ``MultipartReader``: ``await reader.next()`` gives a
part with ``name``, ``filename`` and ``await part.read_chunk(n)``, or None at the end.
"""
from __future__ import annotations

import email.utils
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from s3_api import access_control, acls, checksums, encryption, payload
from s3_api.errors import (EntityTooLarge, EntityTooSmall, IncompleteBody, InvalidArgument,
                           MalformedPOSTRequest, MaxPostPreDataLengthExceededError, NoSuchBucket)
from s3_api.metadata import check_key, now_us, quoted, stored_headers
from s3_api.objects import checksum_members, commit_version, form_extras
from storage.objects import ObjectVersion, new_id

MAX_FIELDS_BYTES = 64 * 1024     # all fields before the file together
MAX_POST_SIZE = payload.MAX_PUT_SIZE
DRAIN_AFTER_LIMIT = 16 << 20     # read this much past a too-large file to tell its size
SUCCESS_STATUSES = {"200": 200, "201": 201, "204": 204}
_CONTENT_FIELDS = {"content-type": "ContentType", "cache-control": "CacheControl",
                   "content-disposition": "ContentDisposition",
                   "content-encoding": "ContentEncoding", "content-language": "ContentLanguage",
                   "x-amz-storage-class": "StorageClass",
                   "x-amz-website-redirect-location": "WebsiteRedirectLocation",
                   "acl": "ACL", "x-amz-server-side-encryption": "ServerSideEncryption",
                   "x-amz-server-side-encryption-customer-algorithm": "SSECustomerAlgorithm",
                   "x-amz-server-side-encryption-customer-key": "SSECustomerKey",
                   "x-amz-server-side-encryption-customer-key-md5": "SSECustomerKeyMD5",
                   "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
                   "x-amz-server-side-encryption-context": "SSEKMSEncryptionContext",
                   "x-amz-object-lock-mode": "ObjectLockMode",
                   "x-amz-object-lock-legal-hold": "ObjectLockLegalHoldStatus",
                   "x-amz-object-lock-retain-until-date": "ObjectLockRetainUntilDate",
                   "x-amz-checksum-algorithm": "ChecksumAlgorithm"}
_META = "x-amz-meta-"


@dataclass
class PostForm:
    """The fields before the file (lower-case names, as the policy sees them) and the file."""

    fields: dict[str, str] = field(default_factory=dict)
    file: Any = None            # the multipart part of the file, not read yet
    filename: str | None = None


async def read_form(reader) -> PostForm:
    """Read the fields up to the ``file`` field (InvalidArgument when there is none)."""
    form = PostForm()
    budget = MAX_FIELDS_BYTES
    while True:
        part = await _next(reader)
        if part is None:
            break
        name = getattr(part, "name", None)
        if name is None or not hasattr(part, "read_chunk"):
            raise MalformedPOSTRequest()
        lname = name.lower()
        if lname == "file":
            form.file, form.filename = part, part.filename
            break
        value = bytearray()
        while True:
            chunk = await _chunk(part, 8192)
            if not chunk:
                break
            value += chunk
            budget -= len(chunk)
            if budget < 0:
                raise MaxPostPreDataLengthExceededError()
        budget -= len(name)
        if lname in form.fields:
            raise InvalidArgument(f"The form field {name} may appear only once.",
                                  ArgumentName=name, ArgumentValue=bytes(value).decode(
                                      "utf-8", "replace"))
        try:
            form.fields[lname] = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"The form field {name} is not valid UTF-8.",
                                  ArgumentName=name) from None
    if form.file is None:
        raise InvalidArgument("POST requires exactly one file upload per request.",
                              ArgumentName="file", ArgumentValue="0")
    if "key" not in form.fields:
        raise InvalidArgument("Bucket POST must contain a field named 'key'.  If it is specified,"
                              " please check the order of the fields.",
                              ArgumentName="key", ArgumentValue="")
    return form


async def _next(reader):
    try:
        return await reader.next()
    except (ValueError, AssertionError, LookupError) as exc:   # aiohttp: a broken form
        raise MalformedPOSTRequest() from exc
    except Exception as exc:
        if type(exc).__module__.startswith("aiohttp"):
            raise IncompleteBody() from exc
        raise


async def _chunk(part, size: int) -> bytes:
    try:
        return await part.read_chunk(size)
    except (ValueError, AssertionError) as exc:
        raise MalformedPOSTRequest() from exc


class _TooLarge(Exception):
    pass


class FormFile:
    """The file part as ``async read(n)``, refusing more than ``limit`` bytes."""

    def __init__(self, part, limit: int) -> None:
        self.part = part
        self.limit = limit
        self.total = 0

    async def read(self, n: int = payload.BLOCK) -> bytes:
        data = await _chunk(self.part, max(n, 8192))
        self.total += len(data)
        if self.total > self.limit:
            raise _TooLarge()
        return data

    async def drain(self, cap: int) -> bool:
        """Read (and drop) up to ``cap`` more bytes; True when the file ended within them."""
        while cap > 0:
            data = await _chunk(self.part, payload.BLOCK)
            if not data:
                return True
            self.total += len(data)
            cap -= len(data)
        return False


def substituted_key(form: PostForm) -> str:
    """The key field with ``${filename}`` replaced by the uploaded file's name (the key the
    policy's conditions are checked against, as S3 checks them)."""
    key = form.fields["key"]
    if "${filename}" in key:
        name = (form.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        key = key.replace("${filename}", name)
    return key


def policy_fields(form: PostForm) -> dict[str, str]:
    """The form's fields as the policy sees them: the key after ``${filename}``."""
    return {**form.fields, "key": substituted_key(form)}


def object_key(form: PostForm) -> str:
    """The object's key: ``substituted_key``, checked as any key."""
    return check_key(substituted_key(form))


def object_params(form: PostForm) -> dict:
    """The PutObject-style members the form's fields give (content headers, metadata,
    checksums), checked as PutObject checks them."""
    fields = form.fields
    params: dict = {member: fields[name] for name, member in _CONTENT_FIELDS.items()
                    if fields.get(name)}
    bucket_key = fields.get("x-amz-server-side-encryption-bucket-key-enabled")
    if bucket_key:
        params["BucketKeyEnabled"] = bucket_key.strip().lower() == "true"
    expires = fields.get("expires")
    if expires:
        try:
            params["Expires"] = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            pass    # CHOICE: an Expires S3 could not parse either is not stored
    metadata = {name[len(_META):]: value for name, value in fields.items()
                if name.startswith(_META) and len(name) > len(_META)}
    if metadata:
        params["Metadata"] = metadata
    for algorithm in checksums.ALGORITHMS:
        value = fields.get(checksums.header_name(algorithm))
        if value:
            params[checksums.member(algorithm)] = value
    return params


async def post_object(ctx, bucket_name: str, form: PostForm,
                      length_range: tuple[int, int] | None) -> dict:
    """Store the form's file as the object its key names; the answer's members."""
    bucket = ctx.state.store.bucket(bucket_name)
    if bucket is None:
        raise NoSuchBucket(BucketName=bucket_name)
    key = object_key(form)
    params = object_params(form)
    access = access_control.authorize(ctx, params, bucket, "s3:PutObject", key)
    owner_id = access_control.object_owner(ctx, bucket, access, params)
    acl = acls.write_acl(ctx, {**params, "Key": key}, bucket, access, owner_id)
    headers = stored_headers(params)
    extras = form_extras(ctx, params, bucket, form.fields.get("tagging"))   # tags, object lock
    declared = checksums.declared(params, None)
    low, high = length_range or (0, MAX_POST_SIZE)
    high = min(high, MAX_POST_SIZE)
    body = FormFile(form.file, high)
    state = ctx.state
    sse = await encryption.for_write(ctx, params, bucket, key)

    def verify(md5, declared_sum) -> None:
        if declared.expected is not None and declared_sum.digest() != declared.expected:
            raise checksums.mismatch(declared.algorithm)

    try:
        received = await payload.store(state, body, size=None, inline_ok=True,
                                       declared=declared, verify=verify, seal=sse.data_key)
    except _TooLarge:
        ended = await body.drain(DRAIN_AFTER_LIMIT)
        raise EntityTooLarge("Your proposed upload exceeds the maximum allowed size",
                             ProposedSize=body.total if ended else None,
                             MaxSizeAllowed=high) from None
    if received.size < low:
        if received.blob_id:
            state.store.discard([received.blob_id])
        raise EntityTooSmall("Your proposed upload is smaller than the minimum allowed size",
                             ProposedSize=received.size, MinSizeAllowed=low)
    value = received.checksums[declared.algorithm]
    etag = sse.etag(received.md5)
    version = ObjectVersion(bucket.name, key, new_id(), received.size, etag, now_us(ctx),
                            owner_id, 0, declared.algorithm, checksums.FULL_OBJECT,
                            value, headers, received.blob_id, received.data, **extras,
                            sse=sse.sse_text)
    await commit_version(ctx, version, {"Key": key}, acl)
    return {"Bucket": bucket.name, "Key": key, "ETag": quoted(etag),
            **checksum_members(declared.algorithm, value, checksums.FULL_OBJECT),
            "headers": encryption.response_headers(sse.members(write=True))}


def success_answer(form: PostForm, result: dict) -> tuple[int, str | None]:
    """(status, redirect URL or None) the form asks for: a 303 to ``success_action_redirect``
    (or the older ``redirect``) with bucket, key and etag appended; else
    ``success_action_status`` (200, 201 or 204; anything else is 204)."""
    target = form.fields.get("success_action_redirect") or form.fields.get("redirect")
    if target:
        parts = urllib.parse.urlsplit(target)
        if parts.scheme in ("http", "https") and parts.netloc:
            extra = urllib.parse.urlencode({"bucket": result["Bucket"], "key": result["Key"],
                                            "etag": result["ETag"]},
                                           quote_via=urllib.parse.quote)
            query = f"{parts.query}&{extra}" if parts.query else extra
            return 303, urllib.parse.urlunsplit(parts._replace(query=query))
    return SUCCESS_STATUSES.get(form.fields.get("success_action_status", "").strip(), 204), None
