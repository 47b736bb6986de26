"""The billing task the server starts: it rates and delivers periodically, and stops cleanly."""
from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace

from billing import cost_explorer, report_definitions
from billing.scheduler import start_billing, stop_billing
from gateway.protocols.models import service_model

from _billing_testkit import ACCOUNT, TEST_PRICES, Buckets, instance_state, lines, put_report


def app_for(db, tmp_path, now: str, price_text: str = TEST_PRICES):
    path = tmp_path / "prices.toml"
    path.write_text(price_text)
    moment = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    config = SimpleNamespace(price_list=str(path), data_dir=str(tmp_path / "data"))
    return SimpleNamespace(db=db, config=config, clock=lambda: moment)


async def until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_task_rates_and_delivers_then_stops(db, tmp_path):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await put_report(db)
    store = Buckets(reports=ACCOUNT)
    app = app_for(db, tmp_path, "2026-11-03T13:30:00Z")
    billing = await start_billing(app, deliver=store.deliver, interval=0.05)
    try:
        async def delivered():
            return bool(store.writes)
        await until(delivered)
        assert len(await lines(db)) == 3 and billing.price_error is None
        assert billing.last_rating.rated_until_us is not None
    finally:
        await stop_billing(billing)
    assert billing._task is None


async def test_a_bad_price_list_at_start_up_is_refused_and_the_last_good_one_rates(db, tmp_path, caplog):
    good = app_for(db, tmp_path, "2026-11-03T13:30:00Z")
    billing = await start_billing(good, interval=3600)
    await stop_billing(billing)
    bad = app_for(db, tmp_path, "2026-11-03T13:30:00Z", TEST_PRICES.replace('"0.096"', "0.096"))
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    billing = await start_billing(bad, interval=3600)
    try:
        assert billing.price_error is not None and billing.price_error.line is not None
        assert f"line {billing.price_error.line}" in caplog.text
        await billing.run_once()
        assert {r["rate"] for r in await lines(db)} == {"0.096"}
    finally:
        await stop_billing(billing)


def test_the_operations_are_the_models_operations():
    assert set(cost_explorer.OPERATIONS) <= set(service_model("ce").operation_names)
    assert set(report_definitions.OPERATIONS) <= set(service_model("cur").operation_names)


async def test_stop_lets_the_pass_under_way_finish_its_transaction(db, tmp_path):
    """Stopping the server never cancels a billing pass inside a database transaction (which
    could leave the one writer connection in it: 'cannot start a transaction within a
    transaction' for every later write)."""
    from billing.scheduler import BillingService
    billing = BillingService(app_for(db, tmp_path, "2026-11-03T13:30:00Z"), interval=3600)
    await billing.prepare()
    entered, release = asyncio.Event(), asyncio.Event()
    finished = []

    async def slow_pass():
        async with db.transaction() as tx:
            entered.set()
            await release.wait()
            await tx.execute("SELECT 1")
        finished.append(True)
    billing.run_once = slow_pass
    billing.start()
    await asyncio.wait_for(entered.wait(), 5)
    stopping = asyncio.create_task(stop_billing(billing))
    await asyncio.sleep(0.1)
    assert not stopping.done()                    # waits for the pass ...
    release.set()
    await asyncio.wait_for(stopping, 5)
    assert finished == [True]                     # ... which committed
    async with db.transaction() as tx:            # and the writer is free
        await tx.execute("SELECT 1")
