"""Object versions on disk: the version model of the object store, and its crash story.

The model
---------
``s3_objects`` (primary key bucket, key) keeps what it always kept: the *current* version of each
key when that version is an object. Every other version -- noncurrent object versions and every
delete marker, current or not -- is a row of ``s3_versions`` (primary key bucket, key, seq DESC).
So GET/HEAD of the current version, ListObjects and ListObjectsV2 read exactly the rows and the
index they read before versioning existed: they do not get slower, whatever the number of old
versions. A key whose newest version is a delete marker has no ``s3_objects`` row; the marker is
the newest ``s3_versions`` row of the key (looked up only on the 404 path, to send
``x-amz-delete-marker``).

Each version has:

- ``version_id``: the internal id (unique over the store; multipart parts hang off it; never shown);
- ``vid``: the S3 version id: ``null`` for the null version (every object written while the
  bucket was unversioned or suspended; existing objects became it when this migration ran), else
  32 characters ``[0-9A-Za-z]``: 10 of ``seq`` in base 62 (sortable by time) and 22 random ones;
- ``seq``: the version's place among its key's versions (newest highest): the write's microsecond
  clock, raised above the key's newest version when the clock is behind it;
- ``tags`` (JSON list of [key, value]), ``lock_mode``, ``lock_until_us``, ``legal_hold``: object
  tagging and object lock, kept with the version wherever it moves.

Crash story
-----------
A version's bytes are written (inline row or fsynced, renamed blob) before the metadata
transaction that names them commits; a crash before that commit leaves a blob nothing points to,
which start-up collects (``referenced_blobs`` names the blobs of every version, current or not).
Moving a version between ``s3_objects`` and ``s3_versions`` (an overwrite in a versioned bucket,
a delete marker, the promotion of the next-newest version when the current one is deleted by
id), the stored-bytes usage event and the deletion of the rows of a version that goes away all
commit in one transaction: after a crash every version is either where it was or where it went,
never in both tables nor in neither. Blobs of versions that went away are unlinked only after the
commit (a crash in between leaves orphans for the start-up collection, never a row without its
blob).

Migration (``SCHEMA``, applied after ``storage.objects.SCHEMA``): adds the version columns to
``s3_objects`` (existing rows: vid ``null``, seq = their modification time), the bucket
configuration columns to ``s3_buckets`` (versioning, object lock, tags, lifecycle), the
``extras`` of multipart uploads (tags and object lock of the version they will create) and the
``s3_versions`` table; one transaction.
"""
from __future__ import annotations

import re
import secrets

from storage.db import Schema

# The columns a stored version has in ``s3_objects`` (the current versions, ``storage.objects``)
# and in ``s3_versions`` (the older ones): part of released migrations, frozen.
STORED_VERSION_COLUMNS = """\
            key TEXT NOT NULL,
            version_id TEXT NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            modified_us INTEGER NOT NULL,
            owner_id TEXT NOT NULL,
            parts INTEGER NOT NULL DEFAULT 0,
            checksum_algorithm TEXT,
            checksum_type TEXT,
            checksum_value TEXT,
            headers TEXT,
            blob TEXT,
            inline_id INTEGER,
"""

SCHEMA = Schema(
    "s3_versions",
    [
        f"""
        ALTER TABLE s3_objects ADD COLUMN vid TEXT NOT NULL DEFAULT 'null';
        ALTER TABLE s3_objects ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE s3_objects ADD COLUMN tags TEXT;
        ALTER TABLE s3_objects ADD COLUMN lock_mode TEXT;
        ALTER TABLE s3_objects ADD COLUMN lock_until_us INTEGER;
        ALTER TABLE s3_objects ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
        UPDATE s3_objects SET seq = modified_us;
        CREATE TABLE s3_versions (
            bucket TEXT NOT NULL,
{STORED_VERSION_COLUMNS}            vid TEXT NOT NULL,
            seq INTEGER NOT NULL,
            tags TEXT,
            lock_mode TEXT,
            lock_until_us INTEGER,
            legal_hold INTEGER NOT NULL DEFAULT 0,
            delete_marker INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (bucket, key, seq DESC)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX s3_versions_by_vid ON s3_versions(bucket, key, vid);
        ALTER TABLE s3_buckets ADD COLUMN versioning TEXT;
        ALTER TABLE s3_buckets ADD COLUMN object_lock TEXT;
        ALTER TABLE s3_buckets ADD COLUMN tags TEXT;
        ALTER TABLE s3_buckets ADD COLUMN lifecycle TEXT;
        ALTER TABLE s3_uploads ADD COLUMN extras TEXT
        """
    ],
)

NULL_VERSION = "null"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SEQ_DIGITS = 10
VID_LENGTH = 32
# ours are 32 base-62 digits; AWS-made ids (imported data, clients' fixtures) are base64-like, 32
# characters or longer: both are well-formed (unknown ones are NoSuchVersion, not a bad argument)
_VID = re.compile(r"^[0-9A-Za-z+/=._-]{32,1024}$")


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def new_vid(seq: int) -> str:
    """An S3 version id: opaque, unique (22 random base-62 digits: 131 bits), sortable by time."""
    rand = secrets.randbits(131)
    return _base62(seq, _SEQ_DIGITS) + _base62(rand, VID_LENGTH - _SEQ_DIGITS)


def well_formed_vid(value: str) -> bool:
    """Whether ``value`` could name a version of this store (``null`` or one of ours)."""
    return value == NULL_VERSION or bool(_VID.match(value))
