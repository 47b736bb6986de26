"""The billing task the server runs: rate the complete hours, estimate the open one
(``billing.estimates``), then deliver the CUR reports that changed, every ``interval`` seconds (default 60; a pass with nothing to do is a few queries).

The server starts it after the database is open and stops it before closing it::

    billing = await start_billing(app, deliver=put_report_object)   # the S3 store's put
    ...
    await stop_billing(billing)

``deliver(bucket, key, data, account_id)`` (sync or async) writes one object into ``bucket`` on
behalf of ``account_id`` and raises when the bucket does not exist or is not that account's (see
``billing.cur_export``). Without it, rating runs and deliveries wait until one is set
(``billing.deliver = ...``).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from billing.cur_export import Deliver, deliver_due
from billing.estimates import refresh_estimates
from billing.periods import to_us
from billing.prices import PriceSource
from billing.rating import RateResult, rate_pending, refresh_prices
from billing.schema import ensure_schema

log = logging.getLogger("nimbo.billing")
DEFAULT_INTERVAL = 60.0
STOP_GRACE_SECONDS = 30.0


class BillingService:
    def __init__(self, app: Any, deliver: Deliver | None = None, interval: float = DEFAULT_INTERVAL) -> None:
        self.app = app
        config = app.config
        self.source = PriceSource(getattr(config, "price_list", None), getattr(config, "data_dir", None))
        self.deliver = deliver
        self.interval = interval
        self.last_rating: RateResult | None = None
        self.last_deliveries: list[dict] = []
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    @property
    def price_error(self) -> Exception | None:
        """Why the configured price list was refused (None when it is in force)."""
        return self.source.error

    async def prepare(self) -> None:
        await ensure_schema(self.app.db)
        await refresh_prices(self.app.db, self.source)

    async def run_once(self) -> RateResult:
        """One pass: reload a changed price list, rate, estimate the open hour, deliver."""
        db = self.app.db
        now_us = to_us(self.app.clock())
        await self.bring_up_to_date(now_us)
        if self.deliver is not None:
            self.last_deliveries = await deliver_due(db, self.deliver, now_us)
            from billing.data_exports import deliver_exports  # noqa: PLC0415 (FOCUS, beside the CUR)
            self.last_deliveries += await deliver_exports(db, self.deliver, now_us)
        return self.last_rating

    async def bring_up_to_date(self, now_us: int | None = None) -> RateResult:
        """Rate the complete hours and re-estimate the open one (also what a Cost Explorer request
        asks for, so that it shows the usage of a minute ago)."""
        async with self._lock:
            db = self.app.db
            now_us = to_us(self.app.clock()) if now_us is None else now_us
            prices = await refresh_prices(db, self.source)
            self.last_rating = await rate_pending(db, prices, now_us)
            await refresh_estimates(db, prices, now_us)
            return self.last_rating

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="nimbo-billing")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self.app.db.cluster_lock("billing-pass") as held:   # once per cluster
                    if held:
                        await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("billing pass failed; will retry")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop after the pass under way (a pass cancelled inside a database transaction could
        leave the writer connection in it); cancel only a pass that outlasts ``grace``."""
        if self._task is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except asyncio.TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None


async def start_billing(app: Any, deliver: Deliver | None = None, *, interval: float | None = None) -> BillingService:
    """Prepare billing (tables, the price list: a bad file is refused and logged with its line,
    the last good one stays in force) and start the periodic task."""
    service = BillingService(app, deliver, interval or getattr(app.config, "billing_interval_seconds",
                                                               DEFAULT_INTERVAL))
    await service.prepare()
    service.start()
    return service


async def stop_billing(service: BillingService) -> None:
    await service.stop()
