"""KMS keys on disk: one row per key (its metadata and its key material, wrapped), the aliases of
each account and region, and the keys' tags. This module knows SQL only: the material arrives
already wrapped under the data directory's master key (``kms_api.key_material``) and leaves the
same way; nothing here ever sees it in plaintext.

Crash story: every change is one transaction (a key and its tags; the AWS managed key and its
alias; a key's state change; the deletion of a key with its aliases and tags), so a crash leaves
the old or the new state, never half of one. A key whose deletion date has passed while the server
was down is deleted by the next sweep (``kms_api.deletion``); until then it stays PendingDeletion
and refuses every cryptographic operation, as it did before the crash.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage import usage
from storage.db import Schema

SCHEMA = Schema(
    "kms",
    [
        """
        CREATE TABLE kms_keys (
            key_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            state TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            key_usage TEXT NOT NULL,
            key_spec TEXT NOT NULL,
            origin TEXT NOT NULL,
            key_manager TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            deletion_us INTEGER,
            pending_days INTEGER,
            policy TEXT NOT NULL,
            rotation_days INTEGER,
            material BLOB NOT NULL
        );
        CREATE INDEX kms_keys_by_account ON kms_keys(account_id, region, key_id);
        CREATE INDEX kms_keys_by_deletion ON kms_keys(deletion_us) WHERE deletion_us IS NOT NULL;
        CREATE TABLE kms_aliases (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            name TEXT NOT NULL,
            key_id TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            updated_us INTEGER NOT NULL,
            PRIMARY KEY (account_id, region, name)
        ) WITHOUT ROWID;
        CREATE INDEX kms_aliases_by_key ON kms_aliases(key_id);
        CREATE TABLE kms_key_tags (
            key_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (key_id, key)
        ) WITHOUT ROWID
        """
    ],
)

_KEY_COLUMNS = ("key_id, account_id, region, state, description, key_usage, key_spec, origin, key_manager,"
                " created_us, deletion_us, pending_days, policy, rotation_days, material")


@dataclass
class KeyRow:
    key_id: str
    account_id: str
    region: str
    state: str                  # Enabled, Disabled, PendingDeletion
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: str            # CUSTOMER or AWS
    created_us: int
    deletion_us: int | None
    pending_days: int | None
    policy: str
    rotation_days: int | None   # None: automatic rotation off
    material: bytes             # wrapped under the master key

    def __repr__(self) -> str:  # the wrapped material stays out of logs and tracebacks too
        return f"KeyRow({self.key_id!r}, account={self.account_id!r}, region={self.region!r}, state={self.state!r})"


@dataclass
class AliasRow:
    account_id: str
    region: str
    name: str
    key_id: str
    created_us: int
    updated_us: int


def _key(row: sqlite3.Row | None) -> KeyRow | None:
    return None if row is None else KeyRow(*tuple(row))


def _alias(row: sqlite3.Row | None) -> AliasRow | None:
    return None if row is None else AliasRow(*tuple(row))


# -- reads ------------------------------------------------------------------------------------------

async def get_key(db: Any, account_id: str, key_id: str) -> KeyRow | None:
    return _key(await db.fetchone(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id = ? AND account_id = ?",
                                  (key_id, account_id)))


async def list_keys(db: Any, account_id: str, region: str, after: str | None, limit: int) -> list[KeyRow]:
    rows = await db.fetchall(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE account_id = ? AND region = ?"
                             " AND key_id > ? ORDER BY key_id LIMIT ?", (account_id, region, after or "", limit))
    return [_key(r) for r in rows]


async def get_alias(db: Any, account_id: str, region: str, name: str) -> AliasRow | None:
    return _alias(await db.fetchone("SELECT account_id, region, name, key_id, created_us, updated_us"
                                    " FROM kms_aliases WHERE account_id = ? AND region = ? AND name = ?",
                                    (account_id, region, name)))


async def list_aliases(db: Any, account_id: str, region: str, key_id: str | None = None) -> list[AliasRow]:
    sql = ("SELECT account_id, region, name, key_id, created_us, updated_us FROM kms_aliases"
           " WHERE account_id = ? AND region = ?")
    args: list = [account_id, region]
    if key_id is not None:
        sql += " AND key_id = ?"
        args.append(key_id)
    return [_alias(r) for r in await db.fetchall(sql + " ORDER BY name", args)]


async def count_aliases(db: Any, key_id: str) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM kms_aliases WHERE key_id = ?", (key_id,))
    return row[0]


async def tags_of(db: Any, key_id: str) -> dict[str, str]:
    rows = await db.fetchall("SELECT key, value FROM kms_key_tags WHERE key_id = ? ORDER BY key", (key_id,))
    return {r["key"]: r["value"] for r in rows}


async def keys_due(db: Any, now_us: int) -> list[KeyRow]:
    rows = await db.fetchall(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE state = 'PendingDeletion'"
                             " AND deletion_us IS NOT NULL AND deletion_us <= ?", (now_us,))
    return [_key(r) for r in rows]


# -- writes -----------------------------------------------------------------------------------------

async def _record(tx: Any, events: Sequence[dict]) -> None:
    for event in events:
        await usage.record_event(tx, **event)


async def insert_key(db: Any, key: KeyRow, tags: dict[str, str], events: Sequence[dict] = ()) -> None:
    async with db.transaction() as tx:
        await _insert_key(tx, key)
        await _record(tx, events)
        await tx.executemany("INSERT INTO kms_key_tags (key_id, key, value) VALUES (?, ?, ?)",
                             [(key.key_id, k, v) for k, v in tags.items()])


async def _insert_key(tx: Any, key: KeyRow) -> None:
    await tx.execute(f"INSERT INTO kms_keys ({_KEY_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                     (key.key_id, key.account_id, key.region, key.state, key.description, key.key_usage,
                      key.key_spec, key.origin, key.key_manager, key.created_us, key.deletion_us,
                      key.pending_days, key.policy, key.rotation_days, key.material))


async def insert_managed_key(db: Any, key: KeyRow, alias: str) -> KeyRow:
    """The AWS managed key behind ``alias`` for the key's account and region: ``key`` inserted with
    the alias in one transaction, unless another request (or worker) made it first; the key the
    alias names either way."""
    async with db.transaction() as tx:
        row = await tx.fetchone("SELECT key_id FROM kms_aliases WHERE account_id = ? AND region = ? AND name = ?",
                                (key.account_id, key.region, alias))
        if row is None:
            await _insert_key(tx, key)
            await tx.execute("INSERT INTO kms_aliases (account_id, region, name, key_id, created_us, updated_us)"
                             " VALUES (?, ?, ?, ?, ?, ?)",
                             (key.account_id, key.region, alias, key.key_id, key.created_us, key.created_us))
            return key
        found = await tx.fetchone(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id = ?", (row["key_id"],))
    return _key(found)


async def update_key(db: Any, account_id: str, key_id: str, *, from_state: str | None = None,
                     events: Sequence[dict] = (), **fields: Any) -> bool:
    """Change a key's fields (only while it is in ``from_state``, when given), recording ``events``
    with the change; False when no key changed (and nothing recorded)."""
    allowed = {"state", "description", "deletion_us", "pending_days", "rotation_days", "policy"}
    if not fields or set(fields) - allowed:
        raise ValueError(f"not a key field: {sorted(set(fields) - allowed)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql = f"UPDATE kms_keys SET {assignments} WHERE key_id = ? AND account_id = ?"
    args = [*fields.values(), key_id, account_id]
    if from_state is not None:
        sql += " AND state = ?"
        args.append(from_state)
    async with db.transaction() as tx:
        changed = await tx.execute(sql, args)
        if changed:
            await _record(tx, events)
    return changed > 0


async def delete_key(db: Any, key_id: str, due_us: int, events: Sequence[dict] = ()) -> bool:
    """Delete a key whose deletion date (at most ``due_us``) has come, with its aliases and tags;
    False when the key is no longer due (its deletion was cancelled meanwhile)."""
    async with db.transaction() as tx:
        changed = await tx.execute("DELETE FROM kms_keys WHERE key_id = ? AND state = 'PendingDeletion'"
                                   " AND deletion_us IS NOT NULL AND deletion_us <= ?", (key_id, due_us))
        if changed:
            await tx.execute("DELETE FROM kms_aliases WHERE key_id = ?", (key_id,))
            await tx.execute("DELETE FROM kms_key_tags WHERE key_id = ?", (key_id,))
            await _record(tx, events)
    return changed > 0


async def record_unmetered(db: Any, kind: str, events_of: Any) -> int:
    """Record ``events_of(key)`` for every customer managed key that has no ledger event of ``kind``
    yet (keys made before their key-months were metered), in one transaction; how many keys."""
    async with db.transaction() as tx:
        rows = await tx.fetchall(
            f"SELECT {_KEY_COLUMNS} FROM kms_keys AS k WHERE key_manager = 'CUSTOMER' AND NOT EXISTS ("
            " SELECT 1 FROM usage_events AS e WHERE e.account_id = k.account_id AND e.kind = ?"
            " AND e.resource_id = 'arn:aws:kms:' || k.region || ':' || k.account_id || ':key/' || k.key_id)",
            (kind,))
        for row in rows:
            await _record(tx, events_of(_key(row)))
    return len(rows)


async def insert_alias(db: Any, account_id: str, region: str, name: str, key_id: str, now_us: int) -> bool:
    """False when the account already has an alias of that name in the region."""
    async with db.transaction() as tx:
        changed = await tx.execute("INSERT OR IGNORE INTO kms_aliases (account_id, region, name, key_id,"
                                   " created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?)",
                                   (account_id, region, name, key_id, now_us, now_us))
    return changed > 0


async def retarget_alias(db: Any, account_id: str, region: str, name: str, key_id: str, now_us: int) -> bool:
    async with db.transaction() as tx:
        changed = await tx.execute("UPDATE kms_aliases SET key_id = ?, updated_us = ? WHERE account_id = ?"
                                   " AND region = ? AND name = ?", (key_id, now_us, account_id, region, name))
    return changed > 0


async def delete_alias(db: Any, account_id: str, region: str, name: str) -> bool:
    async with db.transaction() as tx:
        changed = await tx.execute("DELETE FROM kms_aliases WHERE account_id = ? AND region = ? AND name = ?",
                                   (account_id, region, name))
    return changed > 0


async def set_tags(db: Any, key_id: str, tags: dict[str, str], limit: int) -> bool:
    """Add or overwrite ``tags``; False (and nothing written) when the key would pass ``limit``."""
    async with db.transaction() as tx:
        rows = await tx.fetchall("SELECT key FROM kms_key_tags WHERE key_id = ?", (key_id,))
        if len({r["key"] for r in rows} | set(tags)) > limit:
            return False
        await tx.executemany("INSERT INTO kms_key_tags (key_id, key, value) VALUES (?, ?, ?)"
                             " ON CONFLICT(key_id, key) DO UPDATE SET value = excluded.value",
                             [(key_id, k, v) for k, v in tags.items()])
    return True


async def remove_tags(db: Any, key_id: str, keys: list[str]) -> None:
    async with db.transaction() as tx:
        await tx.executemany("DELETE FROM kms_key_tags WHERE key_id = ? AND key = ?", [(key_id, k) for k in keys])
