"""A background pass that must run once: in one process of a data directory, and in one gateway of
a cluster.

Two locks decide it. Within a data directory, the process that holds ``<data_dir>/<name>.lock``
(an ``flock``, kept once taken; with ``--workers`` another process takes it when its holder dies)
runs the pass. Across the gateways of a cluster, each pass also takes the metadata engine's
``cluster_lock(name)`` (a PostgreSQL advisory lock; always granted on SQLite), so of several
gateways on one database only one runs a given pass at a time.

Used by S3 lifecycle (``s3_api.lifecycle_runner``) and the KMS deletion sweep
(``kms_api.deletion``). Crash story: nothing here is persistent; the locks die with their holders
and a pass that failed or was cut short is run again at the next interval.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from typing import Any, Awaitable, Callable

log = logging.getLogger("nimbo.passes")


class PeriodicPass:
    """Runs ``work()`` every ``interval`` seconds (first at start when ``at_start``) while this
    process holds the pass's lock file and the cluster lock."""

    def __init__(self, name: str, lock_path: str, interval: float, work: Callable[[], Awaitable[Any]],
                 db: Any = None, *, at_start: bool = False) -> None:
        self.name = name
        self.lock_path = lock_path
        self.interval = interval
        self.work = work
        self.db = db
        self.at_start = at_start
        self._fd = -1
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    def leader(self) -> bool:
        """Whether this process holds the pass's lock file (taken now if free, kept after)."""
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

    async def run_once(self) -> bool:
        """One pass now, if this process and this gateway may run it; whether it ran."""
        if not self.leader():
            return False
        if self.db is None:
            await self.work()
            return True
        async with self.db.cluster_lock(self.name) as held:
            if held:
                await self.work()
            return held

    async def _run(self) -> None:
        if not self.at_start:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:   # a failed pass is retried at the next one
                log.exception("%s pass failed; will retry", self.name)
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
