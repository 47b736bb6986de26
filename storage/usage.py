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

For the EC2 layer's periodic tasks:
- ``record_counter_sample`` takes a sample of a cumulative hypervisor counter (``net_rx_bytes``,
  ``net_tx_bytes`` from the driver's ``usage()``) and adds the increment since the last sample to
  the hourly counters (AmazonEC2 ``DataTransfer-In-Bytes`` / ``DataTransfer-Out-Bytes``); a counter
  that went down (a restarted VM process) starts a new epoch and never adds a negative amount.
- ``observe_instance_state`` is the reconciler's hook: it records the state the hypervisor reports
  (a guest that powered itself off) when the ledger believes otherwise.
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
        """,
        # 2: the last sample of each cumulative counter (VM network bytes), and an index that lets
        # the rater find the hours whose counts changed.
        """
        CREATE TABLE usage_counter_samples (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            resource_id TEXT NOT NULL,
            counter_name TEXT NOT NULL,
            epoch TEXT NOT NULL DEFAULT '',
            last_value INTEGER NOT NULL,
            last_at_us INTEGER NOT NULL,
            total INTEGER NOT NULL DEFAULT 0,
            resets INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (account_id, resource_id, counter_name)
        );
        CREATE INDEX usage_counts_by_hour ON usage_counts(hour_us)
        """,
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
        " DO UPDATE SET amount = usage_counts.amount + excluded.amount",
        [(a, r, s, u, o, res, at - at % HOUR_US, amt) for a, r, s, u, o, res, at, amt in rows],
    )


# The hypervisor driver's cumulative counters and the usage type their increments are billed as.
COUNTER_USAGE_TYPES = {
    "net_rx_bytes": "DataTransfer-In-Bytes",
    "net_tx_bytes": "DataTransfer-Out-Bytes",
    # the tap data path's per-interface counters (ec2_api.network_sync): internet and other zones
    "eni_in_internet_bytes": "DataTransfer-In-Bytes",
    "eni_out_internet_bytes": "DataTransfer-Out-Bytes",
    "eni_in_other_az_bytes": "DataTransfer-Regional-Bytes",
    "eni_out_other_az_bytes": "DataTransfer-Regional-Bytes",
}
COUNTER_OPERATIONS = {"eni_in_other_az_bytes": "InterZone-In", "eni_out_other_az_bytes": "InterZone-Out"}
EC2_SERVICE = "AmazonEC2"
EC2_RUN_OPERATION = "RunInstances"


async def record_counter_sample(db: Any, account_id: str, region: str, resource_id: str,
                                counter_name: str, value: int | None, at_us: int, *,
                                epoch: str | None = None) -> int:
    """Add one sample of a cumulative counter (``usage()['net_rx_bytes']`` ...); returns the
    increment billed (>= 0).

    The increment since the previous sample lands in ``usage_counts`` (service AmazonEC2,
    operation RunInstances, the hour of ``at_us``). A counter that went down was reset (the VM's
    process restarted): a new epoch begins and its whole new value is added, never a negative
    amount. ``epoch`` (the VM process's boot id, if the caller knows one) makes a reset visible
    even when the counter has grown past its old value by the next sample. The first sample of a
    counter counts from zero (a new VM process starts its counters at zero). A sample not newer
    than the last one is ignored (replays are harmless); a ``None`` value (unknown) is ignored.
    """
    if value is None:
        return 0
    if counter_name not in COUNTER_USAGE_TYPES:
        raise ValueError(f"unknown counter {counter_name!r}")
    value = int(value)
    if value < 0:
        raise ValueError("a cumulative counter cannot be negative")
    async with db.transaction() as tx:
        row = await tx.fetchone(
            "SELECT epoch, last_value, last_at_us FROM usage_counter_samples"
            " WHERE account_id = ? AND resource_id = ? AND counter_name = ?",
            (account_id, resource_id, counter_name))
        reset = 0
        if row is None:
            delta = value
        elif at_us <= row["last_at_us"]:
            return 0
        elif (epoch is not None and epoch != row["epoch"]) or value < row["last_value"]:
            delta, reset = value, 1
        else:
            delta = value - row["last_value"]
        await tx.execute(
            "INSERT INTO usage_counter_samples (account_id, region, resource_id, counter_name, epoch,"
            " last_value, last_at_us, total, resets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(account_id, resource_id, counter_name) DO UPDATE SET"
            " region = excluded.region, epoch = excluded.epoch, last_value = excluded.last_value,"
            " last_at_us = excluded.last_at_us, total = usage_counter_samples.total + excluded.total,"
            " resets = usage_counter_samples.resets + excluded.resets",
            (account_id, region, resource_id, counter_name,
             epoch if epoch is not None else (row["epoch"] if row else ""),
             value, at_us, delta, reset))
        if delta:
            await add_counts(tx, [(account_id, region, EC2_SERVICE, COUNTER_USAGE_TYPES[counter_name],
                                   COUNTER_OPERATIONS.get(counter_name, EC2_RUN_OPERATION), resource_id, at_us,
                                   delta)])
    return delta


async def latest_event(conn: Any, account_id: str, kind: str, resource_id: str) -> dict[str, Any] | None:
    """The ledger's latest event (by time, then arrival) of a resource; ``conn`` is a
    ``Database`` or an open ``Transaction``."""
    row = await conn.fetchone(
        "SELECT at_us, quantity, attrs, region, service FROM usage_events"
        " WHERE account_id = ? AND kind = ? AND resource_id = ? ORDER BY at_us DESC, seq DESC LIMIT 1",
        (account_id, kind, resource_id))
    if row is None:
        return None
    return {"at_us": row["at_us"], "quantity": row["quantity"], "attrs": json.loads(row["attrs"]),
            "region": row["region"], "service": row["service"]}


async def observe_instance_state(tx: Transaction, *, account_id: str, region: str, instance_id: str,
                                 state: str, at_us: int, attrs: dict[str, Any] | None = None) -> bool:
    """Reconciler hook: the hypervisor reports ``state`` for an instance (a guest that shut itself
    down, a VM found dead after a host restart). Records an ``instance_state`` event only when the
    ledger's latest state differs, carrying the last known attributes (instance type, tags ...)
    updated with ``attrs``; True when an event was recorded. Idempotent."""
    last = await latest_event(tx, account_id, "instance_state", instance_id)
    if last is not None and last["attrs"].get("state") == state:
        return False
    merged = dict(last["attrs"]) if last else {}
    merged.update(attrs or {})
    merged["state"] = state
    return await record_event(
        tx, dedupe_key=f"observed:{instance_id}:{state}:{at_us}", account_id=account_id,
        region=region, service=EC2_SERVICE, kind="instance_state", resource_id=instance_id,
        at_us=at_us, attrs=merged)
