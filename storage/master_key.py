"""The data directory's master key: 32 random bytes in ``<data_dir>/master.key``.

Everything Nimbo encrypts at rest is wrapped by it, directly or through keys it wraps: the per-object
data keys of SSE-S3 and the key material of Nimbo's KMS keys. The file is readable by its owner
only (0600) and its bytes are never logged. Losing it loses every encrypted object: back it up with
the data directory, and keep it out of copies that others can read.

Crash story: the key is written to a temporary file, fsynced and linked into place with ``link``,
which fails when another process made the key first; the loser reads the winner's key. A crash
before the link leaves a ``master.key.tmp-*`` file and no key: the next start makes a new one
(nothing can have been encrypted with the lost one, since its file never existed).
"""
from __future__ import annotations

import os
import secrets

KEY_BYTES = 32
FILE_NAME = "master.key"


class MasterKeyError(Exception):
    """The key file exists but is not a key (wrong size or mode): refuse to serve with it."""


def key_dir(config) -> str:
    """Where the key lives: beside the objects. A cluster's gateways (``blob_dir`` on a shared
    filesystem, ``storage.postgres``) thus share one key, made once by whichever starts first
    (``link`` is atomic on NFS and CephFS too); one server keeps it in its data directory."""
    data_dir = getattr(config, "data_dir", None) or config["data_dir"]
    return getattr(config, "blob_dir", None) or data_dir


def load_or_create(data_dir: str) -> bytes:
    path = os.path.join(data_dir, FILE_NAME)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass                    # another process made it first: use theirs
    finally:
        os.unlink(tmp)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return _read(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_mode & 0o077:
            raise MasterKeyError(f"{path} is readable by others than its owner (chmod 600 it)")
        key = f.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{path} is not a {KEY_BYTES}-byte key")
    return key
