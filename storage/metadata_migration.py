"""``nimbo admin migrate-metadata --to postgresql://...``: an SQLite install's metadata, copied to
PostgreSQL and verified.

Steps: (1) the target must hold no Nimbo tables with rows (a second run into a filled database is
refused, never merged); (2) each component's migrations are applied on the target up to the
version the SQLite file has (``schema_versions``), so both have the same tables and columns;
(3) every table is copied in chunks (a table after those its foreign keys name), in one transaction on the target (a failure leaves the target
without rows: run again); identity columns continue after the highest id copied; (4) each table is
verified: the same row count, and the same checksum, a sum of the SHA-256 of every row's values
(order-free, so collations cannot differ). The source is only read, never changed; the gateway
must be stopped (its data directory's lock is taken for the copy), so no write is missed. Then
start the gateways with ``metadata = "postgresql://..."``; the SQLite file stays as it was.
"""
from __future__ import annotations

import hashlib
import importlib
import pkgutil
import sqlite3
from types import SimpleNamespace
from typing import Any

from storage.db import SCHEMAS, Database, Schema

PACKAGES = ("storage", "s3_api", "ec2_api", "billing", "kms_api", "ssm_api", "gateway", "access")
CHUNK = 2000


class MigrationError(Exception):
    pass


def load_schemas() -> dict[str, Schema]:
    """Every component's schema (each module that declares one registers it when imported)."""
    for name in PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for module in pkgutil.walk_packages(package.__path__, name + "."):
            try:
                importlib.import_module(module.name)
            except Exception:  # noqa: BLE001 (a module that cannot load here declares no table we need)
                continue
    return dict(SCHEMAS)


def _row_digest(values: tuple) -> int:
    h = hashlib.sha256()
    for value in values:
        if isinstance(value, memoryview):
            value = bytes(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        h.update(repr((type(value).__name__, value)).encode())
    return int.from_bytes(h.digest(), "big")


async def _tables(source: Database) -> list[tuple[str, list[str]]]:
    rows = await source.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name != 'schema_versions' ORDER BY name")
    columns, parents = {}, {}
    for row in rows:
        name = row["name"]
        columns[name] = [c["name"] for c in await source.fetchall(f'PRAGMA table_info("{name}")')]
        parents[name] = {f["table"] for f in await source.fetchall(f'PRAGMA foreign_key_list("{name}")')}
    ordered: list[str] = []      # a table after the tables its foreign keys refer to

    def visit(name: str, seen: frozenset = frozenset()) -> None:
        if name in ordered or name in seen or name not in columns:
            return
        for parent in sorted(parents[name]):
            visit(parent, seen | {name})
        ordered.append(name)

    for name in sorted(columns):
        visit(name)
    return [(name, columns[name]) for name in ordered]


async def checksum(db: Any, table: str, columns: list[str]) -> tuple[int, str]:
    """(rows, checksum) of one table on either engine."""
    total = count = 0
    cols = ", ".join(columns)
    rows = await db.fetchall(f"SELECT {cols} FROM {table}")
    for row in rows:
        total = (total + _row_digest(tuple(row))) % (1 << 256)
        count += 1
    return count, f"{total:064x}"


async def migrate_metadata(source: Database, target: Any, out=print) -> dict[str, tuple[int, str]]:
    """Copy ``source`` (SQLite) into ``target`` (PostgreSQL) and verify; the verified tables."""
    schemas = load_schemas()
    versions = {r["component"]: r["version"] for r in
                await source.fetchall("SELECT component, version FROM schema_versions")}
    unknown = sorted(set(versions) - set(schemas))
    if unknown:
        raise MigrationError(f"no schema known for component(s) {', '.join(unknown)}")
    tables = await _tables(source)
    for table, _ in tables:
        try:
            row = await target.fetchone(f"SELECT 1 FROM {table} LIMIT 1")
        except sqlite3.OperationalError:
            continue       # not there yet
        if row is not None:
            raise MigrationError(f"the target has rows in {table} already: migrate into an empty database")
    # up to the source's version (a namespace, not a Schema: that would replace the registered
    # one); a component whose tables refer to another's waits for it (each step is a transaction)
    pending = sorted(versions.items())
    while pending:
        postponed, error = [], None
        for component, version in pending:
            steps = SimpleNamespace(component=component, migrations=list(schemas[component].migrations[:version]))
            try:
                await target.migrate(steps)
            except (sqlite3.OperationalError, sqlite3.IntegrityError) as exc:
                postponed.append((component, version))
                error = exc
        if len(postponed) == len(pending):
            raise MigrationError(f"the schema of {postponed[0][0]} cannot be made: {error}")
        pending = postponed
    reader = source.sync_reader()       # streams each table (a CLI: blocking is fine)
    async with target.transaction() as tx:
        for table, columns in tables:
            cols = ", ".join(columns)
            insert = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in columns)})"
            cursor = reader.execute(f"SELECT {cols} FROM {table}")
            while rows := cursor.fetchmany(CHUNK):
                await tx.executemany(insert, rows)
            for column in columns:   # identity columns go on after the highest id copied
                seq = await tx.fetchone("SELECT pg_get_serial_sequence(?, ?) AS s", (table, column))
                if seq is not None and seq["s"]:
                    await tx.execute(f"SELECT setval('{seq['s']}', COALESCE((SELECT MAX({column}) FROM"
                                     f" {table}), 0) + 1, false)")
    verified = {}
    for table, columns in tables:
        expected, got = await checksum(source, table, columns), await checksum(target, table, columns)
        if expected != got:
            raise MigrationError(f"{table}: {expected[0]} rows (checksum {expected[1][:16]}) in SQLite,"
                                 f" {got[0]} rows (checksum {got[1][:16]}) in PostgreSQL")
        verified[table] = expected
        out(f"{table}\t{expected[0]} rows\tsha256-sum {expected[1][:16]}\tverified")
    return verified

