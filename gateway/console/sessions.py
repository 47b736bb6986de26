"""Console sessions: who is signed in, as rows of the metadata database (so every worker process
of one server sees the same sessions and a restart keeps them).

Sign-in checks an access key id and secret as a request's signature check does: the key must
exist, be active and its account exist, and the secret must match (a constant-time compare). The
browser gets a random session token in a cookie (``HttpOnly; SameSite=Strict; Path=/console``,
``Secure`` over TLS, ``Max-Age`` the session's life); the database keeps only the token's SHA-256,
never the secret. Each session has its CSRF token (``gateway.console.csrf``). A session ends at
sign-out, at its expiry (``SESSION_SECONDS`` after sign-in), or as soon as its key is disabled or
deleted (checked on every request, through the accounts' one-second cache). Ten failed sign-ins
from one address for one key id within five minutes make the next ones wait (429), in each
server process.

Crash story: a session is one row written in one transaction; a crash loses at most a sign-in in
progress (the user signs in again). Expired rows are swept when the console is first used after start-up and at each sign-in.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from storage.db import Database, Schema

COOKIE = "nimbo_console"
SESSION_SECONDS = 8 * 3600

SCHEMA = Schema(
    "console_sessions",
    [
        """
        CREATE TABLE console_sessions (
            token_sha256 TEXT PRIMARY KEY,
            access_key_id TEXT NOT NULL,
            account_id TEXT NOT NULL,
            csrf_token TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )
        """
    ],
)


class SignInFailed(Exception):
    """The key id or the secret is wrong, or the key is disabled (one answer for all: no oracle)."""


class TooManyAttempts(Exception):
    """Too many failed sign-ins from one address for one key id: refused for a while."""


# Failed sign-ins per (client address, key id), in this process: MAX_FAILURES within
# FAILURE_WINDOW seconds make further tries wait until the oldest failure is that old.
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
_failures: dict[tuple[str, str], list[float]] = {}


def check_attempts(remote: str, access_key_id: str) -> None:
    now = time.monotonic()
    recent = [t for t in _failures.get((remote, access_key_id), []) if now - t < FAILURE_WINDOW]
    if recent:
        _failures[(remote, access_key_id)] = recent
    else:
        _failures.pop((remote, access_key_id), None)
    if len(recent) >= MAX_FAILURES:
        raise TooManyAttempts()


def record_failure(remote: str, access_key_id: str) -> None:
    if len(_failures) > 10_000:
        _failures.clear()
    _failures.setdefault((remote, access_key_id), []).append(time.monotonic())


@dataclass(frozen=True)
class Session:
    token_sha256: str
    access_key_id: str
    account_id: str
    csrf_token: str
    expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def prepare(db: Database) -> None:
    """The table (migrated once per database) and the sweep of expired sessions."""
    if not getattr(db, "_console_sessions_ready", False):
        await db.migrate(SCHEMA)
        db._console_sessions_ready = True  # type: ignore[attr-defined]
        await sweep(db)


async def sweep(db: Database, now: float | None = None) -> int:
    async with db.transaction() as tx:
        return await tx.execute("DELETE FROM console_sessions WHERE expires_at <= ?",
                                (now or time.time(),))


async def sign_in(db: Database, accounts, access_key_id: str, secret: str) -> tuple[str, Session]:
    """(the cookie's token, the session) for a right key id and secret; SignInFailed otherwise."""
    await prepare(db)
    access_key_id = (access_key_id or "").strip()
    if not access_key_id or len(access_key_id) > 128 or not secret or len(secret) > 256:
        raise SignInFailed()
    key, account = await accounts.lookup(access_key_id)
    expected = key.secret_access_key if key is not None else secrets.token_hex(20)
    matches = hmac.compare_digest(expected.encode(), secret.encode())
    if key is None or account is None or not key.active or not matches:
        raise SignInFailed()
    await sweep(db)
    token = secrets.token_urlsafe(32)
    now = time.time()
    session = Session(_digest(token), access_key_id, account.account_id, secrets.token_urlsafe(32),
                      now + SESSION_SECONDS)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO console_sessions (token_sha256, access_key_id, account_id, csrf_token,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (session.token_sha256, access_key_id, account.account_id, session.csrf_token, now,
             session.expires_at))
    return token, session


async def find(db: Database, accounts, token: str | None):
    """(session, account) of a cookie's token, or (None, None) when there is none, it expired,
    or its key no longer works."""
    if not token or len(token) > 128:
        return None, None
    await prepare(db)
    row = await db.fetchone("SELECT * FROM console_sessions WHERE token_sha256 = ?", (_digest(token),))
    if row is None or row["expires_at"] <= time.time():
        return None, None
    key, account = await accounts.lookup(row["access_key_id"])
    if key is None or account is None or not key.active or account.account_id != row["account_id"]:
        await end_session(db, token)
        return None, None
    return Session(row["token_sha256"], row["access_key_id"], row["account_id"], row["csrf_token"],
                   row["expires_at"]), account


async def end_session(db: Database, token: str) -> None:
    await prepare(db)
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM console_sessions WHERE token_sha256 = ?", (_digest(token),))


def cookie_header(token: str, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    """The Set-Cookie value of a session (an empty token with max_age 0 removes it)."""
    parts = [f"{COOKIE}={token}", "Path=/console", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
