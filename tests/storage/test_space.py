"""The free-space watermark, the space reserve, and out-of-space errors as one error
(``storage.space``; rendered by ``gateway.errors`` as ServiceUnavailable, 503)."""
from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from gateway.errors import wire_error
from storage.db import Database, Schema
from storage.space import SpaceGuard, StorageFull, is_out_of_space

MiB = 1 << 20


def test_out_of_space_conditions_are_one_wire_error():
    for exc in (StorageFull(), OSError(errno.ENOSPC, "No space left on device"),
                OSError(errno.EDQUOT, "Disk quota exceeded"),
                sqlite3.OperationalError("database or disk is full")):
        assert is_out_of_space(exc)
        for service in ("s3", "ec2", "ce"):
            wire = wire_error(exc, service)
            assert (wire.code, wire.status) == ("ServiceUnavailable", 503)
    assert not is_out_of_space(OSError(errno.EACCES, "denied"))


@pytest.mark.sqlite_only
async def test_sqlite_full_is_storage_full_and_the_writer_stays_usable(tmp_path):
    db = await Database.open(str(tmp_path / "n.db"))
    try:
        await db.migrate(Schema("t", ["CREATE TABLE t (v BLOB)"]))
        async with db.transaction() as tx:
            row = await tx.fetchone("PRAGMA page_count")
            await tx.execute(f"PRAGMA max_page_count = {row[0] + 2}")   # SQLITE_FULL soon
        with pytest.raises(StorageFull):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (?)", (b"x" * (64 * 1024),))

        def insert(conn):
            conn.execute("INSERT INTO t VALUES (?)", (b"y" * (64 * 1024),))
        with pytest.raises(StorageFull):
            await db.run_in_transaction(insert)
        async with db.transaction() as tx:          # deletes still commit
            await tx.execute("DELETE FROM t")
    finally:
        await db.close()


def test_watermark_and_reserve(tmp_path, monkeypatch):
    free = {"bytes": 100 * MiB}
    guard = SpaceGuard(str(tmp_path), 10 * MiB, 4 * MiB)
    monkeypatch.setattr(guard, "free_bytes", lambda: free["bytes"])
    guard.start()
    assert guard.has_reserve and os.path.getsize(guard.reserve_path) == 4 * MiB
    guard.check_room(80 * MiB)
    with pytest.raises(StorageFull):
        guard.check_room(91 * MiB)
    free["bytes"] = 1 * MiB                         # someone else filled the disk
    guard.before_write()
    assert not guard.has_reserve and not os.path.exists(guard.reserve_path)
    free["bytes"] = 9 * MiB                         # deletes freed some: the reserve first
    guard.after_free()
    assert guard.has_reserve
    with pytest.raises(StorageFull):                # new data waits for the watermark
        guard.check_room(0)
