"""Accounts and their access keys, as rows of the metadata database.

Secrets are stored as they are (a SigV4 verifier needs the secret itself); the database file is
readable by its owner only. Nothing here logs a secret.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from storage.db import Database, Schema

SCHEMA = Schema(
    "accounts",
    [
        """
        CREATE TABLE accounts (
            account_id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            canonical_user_id TEXT NOT NULL UNIQUE,
            is_admin INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        CREATE TABLE access_keys (
            access_key_id TEXT PRIMARY KEY,
            secret_access_key TEXT NOT NULL,
            account_id TEXT NOT NULL REFERENCES accounts(account_id),
            status TEXT NOT NULL DEFAULT 'Active',
            created_at REAL NOT NULL
        );
        CREATE INDEX access_keys_by_account ON access_keys(account_id)
        """
    ],
)


# An account's email address (S3 ACL grants by email: x-amz-grant-*: emailAddress=...). Its own
# schema, migrated with SCHEMA (``AccountStore.setup``, the server's start-up).
EMAIL_SCHEMA = Schema(
    "account_emails",
    [
        """
        ALTER TABLE accounts ADD COLUMN email TEXT;
        CREATE UNIQUE INDEX accounts_by_email ON accounts(email COLLATE NOCASE)
        """
    ],
)




async def migrate(db: Database) -> None:
    """Bring the account tables up to date: every schema of this module, in order. Everything that
    opens a database holding accounts calls this, never one of the schemas alone."""
    for schema in (SCHEMA, EMAIL_SCHEMA):
        await db.migrate(schema)


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    canonical_user_id: str
    is_admin: bool
    created_at: float

    @property
    def display_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str
    account_id: str
    status: str
    created_at: float

    @property
    def active(self) -> bool:
        return self.status == "Active"


class AccountExists(Exception):
    pass


class AccessKeyExists(Exception):
    pass


class NoSuchAccount(Exception):
    pass


class NoSuchAccessKey(Exception):
    pass


def _account(row) -> Account:
    return Account(row["account_id"], row["name"], row["canonical_user_id"], bool(row["is_admin"]),
                   row["created_at"])


def _key(row) -> AccessKey:
    return AccessKey(row["access_key_id"], row["secret_access_key"], row["account_id"], row["status"],
                     row["created_at"])


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def setup(self) -> None:
        await migrate(self.db)

    async def create_account(self, account_id: str, name: str, canonical_user_id: str,
                             is_admin: bool = False, email: str | None = None) -> Account:
        async with self.db.transaction() as tx:
            clash = await tx.fetchone(
                "SELECT 1 FROM accounts WHERE account_id = ? OR name = ? OR (? IS NOT NULL AND"
                " email = ? COLLATE NOCASE)", (account_id, name, email, email))
            if clash:
                raise AccountExists(f"an account with id {account_id}, name {name!r} or that"
                                    " email address exists")
            created = time.time()
            await tx.execute(
                "INSERT INTO accounts (account_id, name, canonical_user_id, is_admin, created_at,"
                " email) VALUES (?, ?, ?, ?, ?, ?)",
                (account_id, name, canonical_user_id, int(is_admin), created, email))
        return Account(account_id, name, canonical_user_id, is_admin, created)

    async def list_accounts(self) -> list[Account]:
        rows = await self.db.fetchall("SELECT * FROM accounts ORDER BY created_at, account_id")
        return [_account(r) for r in rows]

    async def get_account(self, account_id: str) -> Account | None:
        row = await self.db.fetchone("SELECT * FROM accounts WHERE account_id = ?", (account_id,))
        return _account(row) if row else None

    async def find_account(self, id_or_name: str) -> Account | None:
        row = await self.db.fetchone(
            "SELECT * FROM accounts WHERE account_id = ? OR name = ?", (id_or_name, id_or_name))
        return _account(row) if row else None

    async def account_by_canonical_id(self, canonical_user_id: str) -> Account | None:
        row = await self.db.fetchone(
            "SELECT * FROM accounts WHERE canonical_user_id = ?", (canonical_user_id,))
        return _account(row) if row else None

    async def add_key(self, account_id: str, access_key_id: str, secret_access_key: str) -> AccessKey:
        async with self.db.transaction() as tx:
            if not await tx.fetchone("SELECT 1 FROM accounts WHERE account_id = ?", (account_id,)):
                raise NoSuchAccount(account_id)
            if await tx.fetchone("SELECT 1 FROM access_keys WHERE access_key_id = ?",
                                 (access_key_id,)):
                raise AccessKeyExists(access_key_id)
            created = time.time()
            await tx.execute(
                "INSERT INTO access_keys (access_key_id, secret_access_key, account_id, status,"
                " created_at) VALUES (?, ?, ?, 'Active', ?)",
                (access_key_id, secret_access_key, account_id, created))
        return AccessKey(access_key_id, secret_access_key, account_id, "Active", created)

    async def get_key(self, access_key_id: str) -> AccessKey | None:
        row = await self.db.fetchone(
            "SELECT * FROM access_keys WHERE access_key_id = ?", (access_key_id,))
        return _key(row) if row else None

    async def list_keys(self, account_id: str | None = None) -> list[AccessKey]:
        if account_id is None:
            rows = await self.db.fetchall("SELECT * FROM access_keys ORDER BY created_at")
        else:
            rows = await self.db.fetchall(
                "SELECT * FROM access_keys WHERE account_id = ? ORDER BY created_at", (account_id,))
        return [_key(r) for r in rows]

    async def set_key_status(self, access_key_id: str, status: str) -> None:
        async with self.db.transaction() as tx:
            if not await tx.execute("UPDATE access_keys SET status = ? WHERE access_key_id = ?",
                                    (status, access_key_id)):
                raise NoSuchAccessKey(access_key_id)

    async def delete_key(self, access_key_id: str) -> None:
        async with self.db.transaction() as tx:
            if not await tx.execute("DELETE FROM access_keys WHERE access_key_id = ?",
                                    (access_key_id,)):
                raise NoSuchAccessKey(access_key_id)
