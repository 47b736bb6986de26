"""The usage ledger: what happened to chargeable things, written by the API layers.

Time-based usage (an instance running, bytes stored) is recorded as events *inside the same
transaction* as the state change that causes them, so the ledger can never disagree with the
resources. Each event carries a dedupe key: recording the same event twice is a no-op.

Event kinds and their fields (``quantity`` is an integer; ``attrs`` is JSON):
- ``instance_state``: resource_id = instance id; attrs: state (pending, running, stopping,
  stopped, shutting-down, terminated), instance_type, vcpus, memory_mib, image_id,
  availability_zone, tags {k: v}.
- ``stored_bytes``: resource_id = bucket (S3) or volume id; quantity = change in stored bytes
  (positive or negative); attrs: storage_class or volume_type, tags.
- ``volume_state``: resource_id = volume id; quantity = size in bytes; attrs: state, volume_type.

Counted usage (requests, bytes transferred) is added to hourly counters by ``add_counts``.
Times are integer microseconds since the epoch (exact arithmetic for the rater).
"""
from __future__ import annotations

import json
from typing import Any

from storage.db import Schema, Transaction

SCHEMA = Schema(
    "usage",
    [
        """
        CREATE TABLE usage_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            dedupe_key TEXT NOT NULL UNIQUE,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            service TEXT NOT NULL,
            kind TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            at_us INTEGER NOT NULL,
            quantity INTEGER NOT NULL DEFAULT 0,
            attrs TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX usage_events_by_resource ON usage_events(account_id, resource_id, at_us);
        CREATE INDEX usage_events_by_time ON usage_events(at_us);
        CREATE TABLE usage_counts (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            service TEXT NOT NULL,
            usage_type TEXT NOT NULL,
            operation TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            hour_us INTEGER NOT NULL,
            amount INTEGER NOT NULL,
            PRIMARY KEY (account_id, region, service, usage_type, operation, resource_id, hour_us)
        )
        """
    ],
)

HOUR_US = 3600 * 1_000_000


async def record_event(
    tx: Transaction,
    *,
    dedupe_key: str,
    account_id: str,
    region: str,
    service: str,
    kind: str,
    resource_id: str,
    at_us: int,
    quantity: int = 0,
    attrs: dict[str, Any] | None = None,
) -> bool:
    """Add one event to the ledger; False when an event with this dedupe key exists already."""
    changed = await tx.execute(
        "INSERT INTO usage_events (dedupe_key, account_id, region, service, kind, resource_id,"
        " at_us, quantity, attrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(dedupe_key) DO NOTHING",
        (dedupe_key, account_id, region, service, kind, resource_id, at_us, quantity,
         json.dumps(attrs or {}, sort_keys=True)),
    )
    return changed > 0


async def add_counts(tx: Transaction, rows: list[tuple[str, str, str, str, str, str, int, int]]) -> None:
    """Add counted usage: rows of (account, region, service, usage_type, operation, resource,
    at_us, amount); amounts are summed into the hour that contains ``at_us``."""
    await tx.executemany(
        "INSERT INTO usage_counts (account_id, region, service, usage_type, operation, resource_id,"
        " hour_us, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(account_id, region, service, usage_type, operation, resource_id, hour_us)"
        " DO UPDATE SET amount = amount + excluded.amount",
        [(a, r, s, u, o, res, at - at % HOUR_US, amt) for a, r, s, u, o, res, at, amt in rows],
    )
