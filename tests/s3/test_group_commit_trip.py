"""SQLite's group commit runs a batch in ONE trip to the writer's thread (storage.objects
``_run_on_writer``): the writers' lock, BEGIN IMMEDIATE, the operations, their statements and
COMMIT, so that the lock other processes wait for is never held across a wait for the event
loop. What the batch decides is unchanged: each operation's refusal is undone alone, writes that
arrive while the trip waits for the lock join it, and a failed batch is retried one by one."""
from __future__ import annotations

import asyncio
import fcntl
import os
import threading

import pytest

from s3_api.errors import PreconditionFailed
from storage.db import WriterTransaction, run_now
from storage.objects import ObjectVersion, new_id

pytestmark = pytest.mark.sqlite_only


def _version(bucket: str, key: str, size: int = 3) -> ObjectVersion:
    return ObjectVersion(bucket, key, new_id(), size, "etag", 1, "111111111111", data=b"x" * size)


def _count_trips(store, monkeypatch) -> list[int]:
    """Sizes of the batches that went to the writer's thread (failed ones too); a plain
    transaction fails the test."""
    trips: list[int] = []
    run = store.db.run_in_transaction

    async def counted(fn, ops, more, outcomes):
        try:
            return await run(fn, ops, more, outcomes)
        finally:
            trips.append(len(ops))

    def no_transaction():
        raise AssertionError("a batch of writes took the transaction() path")
    monkeypatch.setattr(store.db, "run_in_transaction", counted)
    monkeypatch.setattr(store.db, "transaction", no_transaction)
    return trips


async def test_a_batch_runs_on_the_writer_thread_in_one_trip(s3, bucket, monkeypatch):
    store = s3.state.store
    trips = _count_trips(store, monkeypatch)
    threads: set[int] = set()

    def put(key):
        def fn(batch):
            threads.add(threading.get_ident())
            batch.put(_version(bucket, key))
            return key
        return fn

    done = await asyncio.gather(*(store.write(put(f"k{i}")) for i in range(5)))
    assert done == [f"k{i}" for i in range(5)]
    assert trips == [5]                                 # one trip for the five
    assert threading.get_ident() not in threads         # not on the event loop
    for i in range(5):
        assert store.object(bucket, f"k{i}").data == b"xxx"   # committed, inline rows too
    # the writers' lock was dropped with the COMMIT: another descriptor takes it at once
    fd = os.open(store.db.path + ".writer-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


async def test_one_refusal_is_undone_alone(s3, bucket, monkeypatch):
    store = s3.state.store
    trips = _count_trips(store, monkeypatch)

    def refused(batch):
        batch.put(_version(bucket, "refused"))
        raise PreconditionFailed(Condition="If-None-Match")

    def accepted(batch):
        batch.put(_version(bucket, "accepted"))

    results = await asyncio.gather(store.write(refused), store.write(accepted),
                                   return_exceptions=True)
    assert isinstance(results[0], PreconditionFailed) and results[1] is None
    assert trips == [2]
    assert store.object(bucket, "refused") is None
    assert store.object(bucket, "accepted") is not None
    assert await s3.stored_bytes(bucket) == 3     # the usage event: the accepted object only


async def test_writes_that_arrive_while_waiting_for_the_lock_join_the_batch(s3, bucket, monkeypatch):
    store = s3.state.store
    trips = _count_trips(store, monkeypatch)
    fd = os.open(store.db.path + ".writer-lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)           # another process is writing
    try:
        first = store.write(lambda batch: batch.put(_version(bucket, "first")))
        await asyncio.sleep(0.05)            # the trip waits for the lock on the writer's thread
        second = store.write(lambda batch: batch.put(_version(bucket, "second")))
        await asyncio.sleep(0.05)
        assert not first.done()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    await asyncio.gather(first, second)
    assert trips == [2]
    assert store.object(bucket, "first") and store.object(bucket, "second")


async def test_a_failed_batch_is_retried_one_by_one(s3, bucket, monkeypatch):
    store = s3.state.store
    trips = _count_trips(store, monkeypatch)
    broken = _version(bucket, "broken")
    broken.etag = None          # NOT NULL in s3_objects: the batch's statements fail

    results = await asyncio.gather(store.write(lambda batch: batch.put(broken)),
                                   store.write(lambda batch: batch.put(_version(bucket, "fine"))),
                                   return_exceptions=True)
    assert isinstance(results[0], Exception) and results[1] is None
    assert trips == [2, 1, 1]     # the batch of two rolled back, then each alone
    assert store.object(bucket, "fine") is not None and store.object(bucket, "broken") is None


async def test_batch_reads_see_the_transactions_own_rows(s3, bucket, monkeypatch):
    """A batch on the writer's thread reads through the writer's connection: the second write
    of a key in one batch sees the first as the key's current version."""
    store = s3.state.store
    _count_trips(store, monkeypatch)
    await store.write(lambda batch: batch.put(_version(bucket, "k", 5)))
    seen = []

    def replace(batch):
        seen.append(batch.get(bucket, "k").size)
        batch.put(_version(bucket, "k", 7))

    await asyncio.gather(store.write(replace), store.write(replace))
    assert seen == [5, 7]
    assert store.object(bucket, "k").size == 7
    assert await s3.stored_bytes(bucket) == 7


def test_run_now_refuses_a_coroutine_that_suspends():
    async def waits():
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError):
        run_now(waits())

    class Conn:
        def execute(self, sql, params):
            return type("Cursor", (), {"rowcount": 2})()
    assert run_now(WriterTransaction(Conn()).execute("UPDATE t SET a = 1")) == 2
