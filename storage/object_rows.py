"""Rows of the object store: the column lists and the ``Bucket`` and ``ObjectVersion`` records
(``storage.objects`` re-exports them; the version model is ``storage.object_versions``'s)."""
from __future__ import annotations

import json
import secrets

from storage.object_versions import NULL_VERSION

OBJECT_COLUMNS = ("bucket", "key", "version_id", "size", "etag", "modified_us", "owner_id",
                  "parts", "checksum_algorithm", "checksum_type", "checksum_value", "headers",
                  "blob", "inline_id", "vid", "seq", "tags", "lock_mode", "lock_until_us",
                  "legal_hold", "sse")
VERSION_COLUMNS = OBJECT_COLUMNS + ("delete_marker",)
_OBJECT_SELECT = ", ".join(f"o.{c}" for c in OBJECT_COLUMNS) + ", d.data"
_OBJECT_FROM = "s3_objects o LEFT JOIN s3_inline d ON d.id = o.inline_id"
_VERSION_SELECT = ", ".join(f"o.{c}" for c in VERSION_COLUMNS) + ", d.data"
_VERSION_FROM = "s3_versions o LEFT JOIN s3_inline d ON d.id = o.inline_id"
_UPSERT = (
    f"INSERT INTO s3_objects ({', '.join(OBJECT_COLUMNS)}) VALUES ({', '.join('?' * len(OBJECT_COLUMNS))})"
    " ON CONFLICT(bucket, key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in OBJECT_COLUMNS[2:])
)
_VERSION_INSERT = (f"INSERT INTO s3_versions ({', '.join(VERSION_COLUMNS)}) VALUES"
                   f" ({', '.join('?' * len(VERSION_COLUMNS))})")
LIST_COLUMNS = ("key, size, etag, modified_us, owner_id, checksum_algorithm, checksum_type,"
                " headers")
VERSION_LIST_COLUMNS = ("key, seq, vid, {dm}, size, etag, modified_us, owner_id,"
                        " checksum_algorithm, checksum_type, headers")
BUCKET_COLUMNS = "name, account_id, region, created_us, versioning, object_lock, tags, lifecycle"


class Bucket:
    """A bucket row. ``versioning``: None (never enabled), 'Enabled' or 'Suspended';
    ``object_lock``, ``tags``, ``lifecycle``: JSON texts of those configurations, or None."""

    __slots__ = ("name", "account_id", "region", "created_us", "versioning", "object_lock", "tags",
                 "lifecycle")

    def __init__(self, name: str, account_id: str, region: str, created_us: int,
                 versioning: str | None = None, object_lock: str | None = None,
                 tags: str | None = None, lifecycle: str | None = None) -> None:
        self.name, self.account_id, self.region, self.created_us = name, account_id, region, created_us
        self.versioning, self.object_lock, self.tags, self.lifecycle = \
            versioning, object_lock, tags, lifecycle

    @property
    def status(self) -> str | None:
        """Versioning: None (never enabled), 'Enabled' or 'Suspended' (``versioning`` holds
        ``Status[/MFADelete]``)."""
        return self.versioning.partition("/")[0] if self.versioning else None

    def tag_dict(self) -> dict:
        return dict(json.loads(self.tags)) if self.tags else {}


class ObjectVersion:
    """One stored version: inline ``data`` (a row of ``s3_inline``), one ``blob``, or ``parts``
    (> 0) rows of blobs; or a delete marker (no bytes). See ``storage.object_versions``; the
    bytes are sealed (``storage.sealed``) when ``sse`` says so.

    ``part_rows`` is set on a new multipart version: (part_number, start, size, etag, checksum,
    blob) tuples written with it."""

    __slots__ = VERSION_COLUMNS + ("data", "part_rows")

    def __init__(self, bucket: str, key: str, version_id: str, size: int, etag: str,
                 modified_us: int, owner_id: str, parts: int = 0,
                 checksum_algorithm: str | None = None, checksum_type: str | None = None,
                 checksum_value: str | None = None, headers: str | None = None,
                 blob: str | None = None, data: bytes | None = None,
                 part_rows: list[tuple] | None = None, inline_id: int | None = None, *,
                 vid: str = NULL_VERSION, seq: int = 0, tags: str | None = None,
                 lock_mode: str | None = None, lock_until_us: int | None = None,
                 legal_hold: int = 0, delete_marker: int = 0, sse: str | None = None) -> None:
        self.bucket, self.key, self.version_id, self.size = bucket, key, version_id, size
        self.etag, self.modified_us, self.owner_id, self.parts = etag, modified_us, owner_id, parts
        self.checksum_algorithm, self.checksum_type = checksum_algorithm, checksum_type
        self.checksum_value, self.headers, self.blob, self.data = checksum_value, headers, blob, data
        self.part_rows = part_rows
        if data is not None and inline_id is None:
            inline_id = secrets.randbits(63)
        self.inline_id = inline_id
        self.vid, self.seq, self.tags = vid, seq, tags
        self.lock_mode, self.lock_until_us, self.legal_hold = lock_mode, lock_until_us, legal_hold
        self.delete_marker = delete_marker
        self.sse = sse      # its encryption (storage.sealed, s3_api.encryption); None: plaintext

    @classmethod
    def from_row(cls, row: tuple, columns: tuple = OBJECT_COLUMNS) -> "ObjectVersion":
        """From ``columns`` followed by the inline data."""
        version = cls.__new__(cls)
        for name, value in zip(columns, row):
            setattr(version, name, value)
        version.data = row[len(columns)]
        version.part_rows = None
        if len(columns) == len(OBJECT_COLUMNS):
            version.delete_marker = 0
        return version

    @classmethod
    def marker(cls, bucket: str, key: str, owner_id: str, modified_us: int) -> "ObjectVersion":
        return cls(bucket, key, new_id(), 0, "", modified_us, owner_id, delete_marker=1)

    def as_row(self) -> tuple:
        return tuple(getattr(self, c) for c in OBJECT_COLUMNS)

    def as_version_row(self) -> tuple:
        return tuple(getattr(self, c) for c in VERSION_COLUMNS)

    def copy(self, **changes) -> "ObjectVersion":
        """The same version (same internal id, bytes and place) with some attributes changed."""
        other = ObjectVersion.__new__(ObjectVersion)
        for name in ObjectVersion.__slots__:
            setattr(other, name, getattr(self, name))
        for name, value in changes.items():
            setattr(other, name, value)
        return other

    def tag_list(self) -> list[tuple[str, str]]:
        return [tuple(t) for t in json.loads(self.tags)] if self.tags else []


def new_id() -> str:
    return secrets.token_hex(16)


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix``, or None when there is
    none. UTF-8 byte order (SQLite's BINARY collation on TEXT) is code point order, so
    incrementing the last code point that can be incremented gives it."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
