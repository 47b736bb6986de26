"""The answers of recent object reads (bucket, current version, access settings), kept while the
database has not changed.

Every GET and HEAD looks up its bucket, the key's current version (with a small object's bytes)
and the bucket's access settings in one SQLite query (``ObjectStore.bucket_object_access``):
~10 us alone, two or three times that amid a request's other work. A hot object read again and
again gets the same answer as long as nothing was committed in between, which SQLite says
cheaply: ``PRAGMA data_version`` on the reading connection changes whenever any other
connection -- this process's writer, or another ``--workers`` process -- has committed since the
connection last looked. So every lookup first reads ``data_version`` (one statement, no table
read); when it changed, everything kept is dropped; else the kept answer is the one the query
would give now.

Why this keeps S3's read-after-write consistency: a write is acknowledged only after its commit,
so a read that starts later sees a new ``data_version`` and queries again. A commit landing
between the ``data_version`` read and the query merely makes the kept answer newer than its
mark; the next lookup sees the newer mark and drops it. Access checks, conditions and
decryption still run on every request, on the answer as committed.

What is kept: up to ``MAX_ENTRIES`` answers and ``MAX_BYTES`` of inline object bytes (beyond
either, everything is dropped and the cache starts over). Kept answers are shared: callers never
change the ``Bucket``/``ObjectVersion`` objects a read returns (writes build new ones).
Only for SQLite (PostgreSQL readers have no ``data_version``); nothing here is persistent.
"""
from __future__ import annotations

import sqlite3
from typing import Any

MAX_ENTRIES = 4096
MAX_BYTES = 8 << 20


class ReadCache:
    """Answers of ``bucket_object_access`` by (bucket, key), valid for one ``data_version``."""

    __slots__ = ("_reader", "_mark", "_answers", "_bytes")

    def __init__(self, reader: sqlite3.Connection) -> None:
        self._reader = reader
        self._mark: int | None = None
        self._answers: dict[tuple[str, str], Any] = {}
        self._bytes = 0

    def current(self) -> dict[tuple[str, str], Any]:
        """The answers kept for the database as it is now (emptied when it changed)."""
        mark = self._reader.execute("PRAGMA data_version").fetchone()[0]
        if mark != self._mark:
            self._mark = mark
            if self._answers:
                self._answers = {}
                self._bytes = 0
        return self._answers

    def keep(self, answers: dict, bucket: str, key: str, answer: Any, size: int) -> None:
        """Keep ``answer`` (``size`` bytes of inline data) in ``answers``, the dict ``current``
        returned before the query (so an answer is never filed under a later mark)."""
        if answers is not self._answers:
            return      # dropped in between
        if len(answers) >= MAX_ENTRIES or self._bytes + size > MAX_BYTES:
            answers.clear()
            self._bytes = 0
            if size > MAX_BYTES:
                return
        answers[(bucket, key)] = answer
        self._bytes += size
