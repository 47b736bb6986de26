"""The deletion sweep: keys whose deletion date has passed are deleted for good.

ScheduleKeyDeletion puts a key in PendingDeletion with a DeletionDate 7 to 30 days ahead; from then
on the key refuses every cryptographic operation, and CancelKeyDeletion may still bring it back.
Once the date has passed, this sweep deletes the key's row (its wrapped material with it), its
aliases and tags (and the ledger's ``Deleted`` event, ``kms_api.key_months``), in one
transaction per key that re-checks the key is still due (a cancellation
that won the race keeps the key). Ciphertext made under the key can never be decrypted again.

The sweep runs at start-up and then every ``kms_deletion_sweep_seconds`` (an hour by default),
only in the process that holds ``<data_dir>/kms-deletion.lock`` (with several workers over one data
directory, one of them is the leader; another takes over at its next pass when the leader dies),
and in one gateway of a cluster (``storage.periodic_pass``).
Crash story: a crash mid-sweep leaves each key deleted or not (one transaction each); the next
pass finds what is left. A key past its date but not yet swept is PendingDeletion to every reader.
"""
from __future__ import annotations

import logging
from typing import Any

from kms_api import key_months
from storage import kms_keys as store
from storage.periodic_pass import PeriodicPass

log = logging.getLogger("nimbo.kms")


async def sweep(state: Any, now_us: int | None = None) -> list[str]:
    """Delete every key due at ``now_us`` (the server's clock unless given); the ids deleted."""
    now = state.now_us() if now_us is None else now_us
    deleted = []
    for key in await store.keys_due(state.app.db, now):
        if await store.delete_key(state.app.db, key.key_id, now, key_months.deleted(key)):
            state.forget(key.key_id)
            deleted.append(key.key_id)
            log.info("KMS key %s of account %s deleted (its deletion date has passed)", key.key_id,
                     key.account_id)
    return deleted


def deletion_sweeper(state: Any, lock_path: str, interval: float) -> PeriodicPass:
    """The periodic task: a sweep at start and every ``interval`` seconds, once per data directory
    and cluster."""
    return PeriodicPass("kms-deletion", lock_path, interval, lambda: sweep(state),
                        getattr(getattr(state, "app", None), "db", None), at_start=True)
