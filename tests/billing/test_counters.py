"""Cumulative counters (the hypervisor driver's net_rx_bytes / net_tx_bytes) sampled with reset
detection, and billed as EC2 data transfer."""
from __future__ import annotations

from decimal import Decimal

import pytest

from billing.rating import rate_pending
from storage.usage import record_counter_sample

from _billing_testkit import ACCOUNT, T, lines

GIB = 1 << 30


async def sample(db, value, at, counter="net_tx_bytes", **kw):
    return await record_counter_sample(db, ACCOUNT, "us-east-1", "i-1", counter, value, T(at), **kw)


async def counted(db):
    row = await db.fetchone("SELECT COALESCE(SUM(amount), 0) AS n FROM usage_counts WHERE service = 'AmazonEC2'")
    return row["n"]


async def test_a_counter_1000_1500_200_adds_700_never_a_negative_amount(db):
    assert await sample(db, 1000, "2026-11-03T10:00:00Z") == 1000    # a new VM's counters start at 0
    base = await counted(db)
    assert await sample(db, 1500, "2026-11-03T10:01:00Z") == 500
    assert await sample(db, 200, "2026-11-03T10:02:00Z") == 200      # reset: a new epoch adds 200
    assert await counted(db) - base == 700
    rows = await db.fetchall("SELECT amount FROM usage_counts")
    assert all(r["amount"] > 0 for r in rows)
    state = await db.fetchone("SELECT resets, total, last_value FROM usage_counter_samples")
    assert (state["resets"], state["total"], state["last_value"]) == (1, 1700, 200)


async def test_replayed_or_stale_samples_add_nothing(db):
    await sample(db, 1000, "2026-11-03T10:00:00Z")
    assert await sample(db, 1000, "2026-11-03T10:00:00Z") == 0
    assert await sample(db, 5000, "2026-11-03T09:59:00Z") == 0       # older than the last sample
    assert await sample(db, None, "2026-11-03T10:05:00Z") == 0       # the driver does not know
    assert await counted(db) == 1000


async def test_an_epoch_change_is_a_reset_even_when_the_counter_grew(db):
    await sample(db, 1000, "2026-11-03T10:00:00Z", epoch="boot-1")
    assert await sample(db, 3000, "2026-11-03T10:01:00Z", epoch="boot-2") == 3000
    assert await sample(db, 3500, "2026-11-03T10:02:00Z", epoch="boot-2") == 500


async def test_bad_samples_are_refused(db):
    with pytest.raises(ValueError):
        await sample(db, -1, "2026-11-03T10:00:00Z")
    with pytest.raises(ValueError):
        await sample(db, 1, "2026-11-03T10:00:00Z", counter="cpu_seconds")


async def test_samples_are_billed_as_ec2_data_transfer_in_gb(db, prices):
    await sample(db, GIB, "2026-11-03T10:30:00Z", counter="net_tx_bytes")
    await sample(db, 3 * GIB, "2026-11-03T11:30:00Z", counter="net_tx_bytes")
    await sample(db, GIB // 4, "2026-11-03T11:30:00Z", counter="net_rx_bytes")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db, product_code="AmazonEC2")
    assert [(r["usage_type"], r["operation"], r["amount"], r["unit"]) for r in rows] == [
        ("DataTransfer-Out-Bytes", "RunInstances", "1.000000000000", "GB"),
        ("DataTransfer-In-Bytes", "RunInstances", "0.250000000000", "GB"),
        ("DataTransfer-Out-Bytes", "RunInstances", "2.000000000000", "GB")]
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("0.27")
