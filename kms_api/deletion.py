"""The deletion sweep: keys whose deletion date has passed are deleted for good.

ScheduleKeyDeletion puts a key in PendingDeletion with a DeletionDate 7 to 30 days ahead; from then
on the key refuses every cryptographic operation, and CancelKeyDeletion may still bring it back.
Once the date has passed, this sweep deletes the key's row (its wrapped material with it), its
aliases and tags (and the ledger's ``Deleted`` event, ``kms_api.key_months``), in one
transaction per key that re-checks the key is still due (a cancellation
that won the race keeps the key). Ciphertext made under the key can never be decrypted again.

The sweep runs at start-up and then every ``kms_deletion_sweep_seconds`` (an hour by default),
only in the process that holds ``<data_dir>/kms-deletion.lock`` (with several workers over one data
directory, one of them is the leader; another takes over at its next pass when the leader dies).
Crash story: a crash mid-sweep leaves each key deleted or not (one transaction each); the next
pass finds what is left. A key past its date but not yet swept is PendingDeletion to every reader.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from typing import Any

from kms_api import key_months
from storage import kms_keys as store

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


class DeletionSweeper:
    """The periodic task; only the process holding the lock file sweeps."""

    def __init__(self, state: Any, lock_path: str, interval: float) -> None:
        self.state = state
        self.lock_path = lock_path
        self.interval = interval
        self._fd = -1
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kms-deletion")

    def leader(self) -> bool:
        if self._fd >= 0:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def _run(self) -> None:
        while True:
            try:
                if self.leader():
                    await sweep(self.state)
            except asyncio.CancelledError:
                raise
            except Exception:   # a failed pass is retried at the next one
                log.exception("KMS deletion sweep failed; will retry")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
