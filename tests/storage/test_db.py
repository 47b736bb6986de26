import os
import stat

import pytest

from storage.db import Database, Schema


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "meta.db"))
    yield database
    await database.close()


async def test_file_is_private_and_wal(db):
    assert stat.S_IMODE(os.stat(db.path).st_mode) == 0o600
    row = await db.fetchone("PRAGMA journal_mode")
    assert row[0] == "wal"


async def test_migrations_apply_once_in_order(db):
    v1 = Schema("things", ["CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)"])
    await db.migrate(v1)
    v2 = Schema("things", [v1.migrations[0], "ALTER TABLE things ADD COLUMN size INTEGER DEFAULT 0"])
    await db.migrate(v2)
    await db.migrate(v2)  # nothing left to apply: must not fail on the existing column
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO things (name) VALUES ('a')")
    row = await db.fetchone("SELECT name, size FROM things")
    assert (row["name"], row["size"]) == ("a", 0)
    version = await db.fetchone("SELECT version FROM schema_versions WHERE component='things'")
    assert version["version"] == 2


async def test_failed_transaction_rolls_back(db):
    await db.migrate(Schema("t", ["CREATE TABLE t (k TEXT PRIMARY KEY)"]))
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ('x')")
            raise RuntimeError("boom")
    assert await db.fetchall("SELECT * FROM t") == []


async def test_committed_write_visible_to_reader_and_survives_reopen(tmp_path):
    path = str(tmp_path / "m.db")
    first = await Database.open(path)
    await first.migrate(Schema("t", ["CREATE TABLE t (k TEXT PRIMARY KEY)"]))
    async with first.transaction() as tx:
        await tx.execute("INSERT INTO t VALUES ('kept')")
    assert [r["k"] for r in await first.fetchall("SELECT k FROM t")] == ["kept"]
    await first.close()
    second = await Database.open(path)
    assert [r["k"] for r in await second.fetchall("SELECT k FROM t")] == ["kept"]
    await second.close()
