"""The metadata database: one SQLite file in WAL mode, reached through aiosqlite.

Writes go through one connection, serialised by a lock, inside explicit transactions
(``async with db.transaction() as tx``); reads use a second connection and see every committed
write (WAL), so a write acknowledged to a client is visible to the next read.

Each component owns its tables and declares them as an ordered list of migrations
(``Schema("objects", [sql_v1, sql_v2, ...])``); ``Database.migrate`` applies the ones a file has not
seen yet, each in its own transaction, and records the component's version.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Sequence

import aiosqlite


@dataclass(frozen=True)
class Schema:
    """A component's tables: migrations applied in order, never edited once released."""

    component: str
    migrations: Sequence[str]


class Transaction:
    """The write connection while a transaction is open."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        cursor = await self._conn.execute(sql, params)
        changed = cursor.rowcount
        await cursor.close()
        return changed

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def insert(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run an INSERT; returns the new row id."""
        cursor = await self._conn.execute(sql, params)
        rowid = cursor.lastrowid
        await cursor.close()
        return rowid

    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


class Database:
    """The metadata database of one data directory."""

    def __init__(self, path: str, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> "Database":
        """Open (creating if needed) the database file, readable by its owner only."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        writer = await _connect(path)
        await _pragma(writer, "PRAGMA journal_mode=WAL")
        reader = await _connect(path)
        db = cls(path, writer, reader)
        await db._ensure_versions_table()
        return db

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def _ensure_versions_table(self) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )

    async def migrate(self, schema: Schema) -> None:
        """Apply the migrations of ``schema`` that this file has not seen yet."""
        row = await self.fetchone(
            "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
        )
        current = row["version"] if row else 0
        for version, sql in enumerate(schema.migrations[current:], start=current + 1):
            async with self.transaction() as tx:
                for statement in _statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (schema.component, version),
                )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._write_lock:
            await _pragma(self._writer, "BEGIN IMMEDIATE")
            try:
                yield Transaction(self._writer)
            except BaseException:
                await self._writer.rollback()
                raise
            await self._writer.commit()

    async def fetchone(self, sql: str, params: Sequence[Any] | dict = ()) -> sqlite3.Row | None:
        async with self._reader.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] | dict = ()) -> list[sqlite3.Row]:
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in ("PRAGMA busy_timeout=5000", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"):
        await _pragma(conn, pragma)
    return conn


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> None:
    async with conn.execute(pragma) as cursor:
        await cursor.fetchall()


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (migrations hold no ';' inside literals)."""
    return [part.strip() for part in sql.split(";") if part.strip()]
