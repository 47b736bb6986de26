"""Helpers for the S3 unit tests: a real data directory and SQLite file, handlers called directly
with a small fake request context."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from types import SimpleNamespace

from multidict import CIMultiDict

from s3_api.operations import OPERATIONS
from s3_api.service import close_state, open_state
from storage import usage
from storage.accounts import Account, AccountStore
from storage.db import Database
from tests.postgres_server import follow_parent_engine

follow_parent_engine()   # a kill -9 test's writer process: on its parent's metadata engine

ALICE = Account("111111111111", "alice", "a" * 64, False, 0.0)
BOB = Account("222222222222", "bob", "b" * 64, False, 0.0)


class Body:
    """aiohttp StreamReader's read(n) over bytes, handing out at most ``piece`` bytes at a time."""

    def __init__(self, data: bytes, piece: int = 65536, fail_after: int | None = None) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.piece = piece
        self.fail_after = fail_after

    async def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise ConnectionResetError("client went away")
        if n < 0:
            n = len(self.data)
        n = min(n, self.piece, len(self.data) - self.pos)
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Harness:
    def __init__(self, app, state, clock, data_dir) -> None:
        self.app = app
        self.state = state
        self.clock = clock
        self.data_dir = data_dir

    def ctx(self, account=ALICE, region="us-east-1", headers=None, payload_hash=None,
            chunk_chain=None, operation=""):
        headers = CIMultiDict(headers or {})
        auth = SimpleNamespace(payload_hash=payload_hash or headers.get("x-amz-content-sha256",
                                                                          "UNSIGNED-PAYLOAD"))
        return SimpleNamespace(state=self.state, account=account, region=region, headers=headers,
                               auth=auth, chunk_chain=chunk_chain, now=self.clock, host="",
                               app=self.app, operation=operation, request_id="req")

    async def call(self, operation: str, ctx=None, **params):
        ctx = ctx or self.ctx()
        ctx.operation = operation      # as the gateway sets it: the access decision's action
        return await OPERATIONS[operation](ctx, params)

    async def put(self, bucket: str, key: str, data: bytes, ctx=None, **params):
        params.setdefault("ContentLength", len(data))
        return await self.call("PutObject", ctx, Bucket=bucket, Key=key, Body=Body(data), **params)

    async def get(self, bucket: str, key: str, ctx=None, **params) -> tuple[dict, bytes]:
        out = await self.call("GetObject", ctx, Bucket=bucket, Key=key, **params)
        chunks = [bytes(c) async for c in out.pop("Body")]
        return out, b"".join(chunks)

    def blob_files(self) -> list[str]:
        root = os.path.join(self.data_dir, "blobs")
        found = []
        for folder in os.listdir(root):
            path = os.path.join(root, folder)
            if os.path.isdir(path):
                found.extend(os.path.join(path, f) for f in os.listdir(path))
        return found

    async def stored_bytes(self, bucket: str) -> int:
        row = await self.app.db.fetchone(
            "SELECT COALESCE(SUM(quantity), 0) AS q FROM usage_events WHERE kind = 'stored_bytes'"
            " AND resource_id = ?", (bucket,))
        return row["q"]


async def make_harness(data_dir: str, clock: Clock | None = None) -> Harness:
    db = await Database.open(os.path.join(data_dir, "nimbo.db"))
    await db.migrate(usage.SCHEMA)
    store = AccountStore(db)
    await store.setup()
    for account in (ALICE, BOB):    # the accounts the tests act as (grantees, owners)
        if await store.get_account(account.account_id) is None:
            await store.create_account(account.account_id, account.name, account.canonical_user_id,
                                       email=f"{account.name}@example.com")
    clock = clock or Clock()
    app = SimpleNamespace(config=SimpleNamespace(data_dir=data_dir), db=db, clock=clock)
    state = await open_state(app)
    return Harness(app, state, clock, data_dir)


async def close_harness(h: Harness) -> None:
    await close_state(h.state)
    await h.app.db.close()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
