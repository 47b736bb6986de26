import asyncio
import os
import sqlite3
import stat

import pytest

from storage.db import Database, Schema


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "meta.db"))
    yield database
    await database.close()


@pytest.mark.sqlite_only
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


DEFERRED_FK = Schema("fk", ["""
    CREATE TABLE parents (id TEXT PRIMARY KEY);
    CREATE TABLE children (id TEXT PRIMARY KEY,
                           parent TEXT REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)
"""])


@pytest.mark.sqlite_only
async def test_run_in_transaction_commits_in_one_call_and_returns(db):
    await db.migrate(Schema("t", ["CREATE TABLE t (k TEXT PRIMARY KEY)"]))

    def insert(conn, keys):
        conn.executemany("INSERT INTO t VALUES (?)", [(k,) for k in keys])
        return conn.execute("SELECT count(*) AS n FROM t").fetchone()["n"]

    assert await db.run_in_transaction(insert, ["a", "b"]) == 2
    assert [r["k"] for r in await db.fetchall("SELECT k FROM t ORDER BY k")] == ["a", "b"]


@pytest.mark.sqlite_only
async def test_run_in_transaction_rolls_back_when_fn_raises(db):
    await db.migrate(Schema("t", ["CREATE TABLE t (k TEXT PRIMARY KEY)"]))

    def insert_then_fail(conn):
        conn.execute("INSERT INTO t VALUES ('x')")
        raise LookupError("no")

    with pytest.raises(LookupError):
        await db.run_in_transaction(insert_then_fail)
    assert await db.fetchall("SELECT * FROM t") == []
    await db.run_in_transaction(lambda conn: conn.execute("INSERT INTO t VALUES ('y')"))
    assert [r["k"] for r in await db.fetchall("SELECT k FROM t")] == ["y"]


@pytest.mark.sqlite_only
async def test_failed_commit_is_rolled_back_in_transaction(db):
    # A deferred foreign key is checked at COMMIT: the COMMIT fails and SQLite keeps the
    # transaction open, as it may on a full disk. The writer must not stay inside it.
    await db.migrate(DEFERRED_FK)
    with pytest.raises(Exception, match="FOREIGN KEY"):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO children VALUES ('c', 'missing')")
    async with db.transaction() as tx:     # would fail: "cannot start a transaction within ..."
        await tx.execute("INSERT INTO parents VALUES ('p')")
    assert await db.fetchall("SELECT * FROM children") == []
    assert [r["id"] for r in await db.fetchall("SELECT id FROM parents")] == ["p"]


@pytest.mark.sqlite_only
async def test_failed_commit_is_rolled_back_in_run_in_transaction(db):
    await db.migrate(DEFERRED_FK)
    with pytest.raises(sqlite3.IntegrityError):
        await db.run_in_transaction(
            lambda conn: conn.execute("INSERT INTO children VALUES ('c', 'missing')"))
    await db.run_in_transaction(lambda conn: conn.execute("INSERT INTO parents VALUES ('p')"))
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO children VALUES ('c', 'p')")
    assert [r["id"] for r in await db.fetchall("SELECT id FROM children")] == ["c"]


@pytest.mark.sqlite_only
async def test_run_in_transaction_and_transactions_serialise(db):
    await db.migrate(Schema("n", ["CREATE TABLE n (id INTEGER PRIMARY KEY, v INTEGER)"]))
    await db.run_in_transaction(lambda conn: conn.execute("INSERT INTO n VALUES (1, 0)"))

    def bump(conn):
        v = conn.execute("SELECT v FROM n WHERE id = 1").fetchone()["v"]
        conn.execute("UPDATE n SET v = ? WHERE id = 1", (v + 1,))

    async def bump_async():
        async with db.transaction() as tx:
            row = await tx.fetchone("SELECT v FROM n WHERE id = 1")
            await asyncio.sleep(0)
            await tx.execute("UPDATE n SET v = ? WHERE id = 1", (row["v"] + 1,))

    await asyncio.gather(*[db.run_in_transaction(bump) if i % 2 else bump_async() for i in range(40)])
    assert (await db.fetchone("SELECT v FROM n WHERE id = 1"))["v"] == 40


@pytest.mark.sqlite_only
async def test_a_transaction_cancelled_while_it_begins_leaves_no_transaction_open(tmp_path):
    """BEGIN runs on the writer's thread; a caller cancelled while it waits for it must not leave
    the one writer connection inside a transaction (every later write would then fail with
    'cannot start a transaction within a transaction')."""
    import time
    db = await Database.open(str(tmp_path / "t.db"))
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE t (x INTEGER)")
        busy = asyncio.ensure_future(db._writer._execute(time.sleep, 0.3))   # BEGIN queues behind it

        async def write():
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")

        task = asyncio.ensure_future(write())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await busy
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
        assert [tuple(r) for r in await db.fetchall("SELECT x FROM t")] == [(2,)]
    finally:
        await db.close()



async def test_a_read_sees_every_write_committed_before_it_while_other_reads_run(db, monkeypatch):
    """Read-after-write on the shared reader connection: a read must see what was committed
    before it started, even while another coroutine's read of the same connection is under way.
    A statement left open across an await pins the connection's snapshot for every read that
    shares it (ImportSnapshot once read back None for the task it had just inserted, and
    DescribeVolumeAttribute the value before ModifyVolumeAttribute). The event loop is made slow
    between a cursor's hops, as a busy server's is."""
    import aiosqlite
    await db.migrate(Schema("raw", ["CREATE TABLE big (n INTEGER); CREATE TABLE mine (k TEXT)"]))
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO big VALUES (?)", [(n,) for n in range(100)])
    for name in ("fetchall", "fetchone"):
        real = getattr(aiosqlite.Cursor, name)

        async def slow(self, *args, _real=real):
            await asyncio.sleep(0.02)      # the loop serves others between execute and fetch
            return await _real(self, *args)
        monkeypatch.setattr(aiosqlite.Cursor, name, slow)
    scanning = asyncio.create_task(db.fetchall("SELECT n FROM big"))
    await asyncio.sleep(0.005)            # the scan has begun
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO mine VALUES ('written')")
    found = await db.fetchone("SELECT k FROM mine")
    assert len(await scanning) == 100
    assert found is not None and found["k"] == "written"
