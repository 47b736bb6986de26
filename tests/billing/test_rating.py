"""The auditor's cases (shared/notes/billing.md), rated from events written as the API layers
write them, with an injected clock (the rater's ``now``)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from billing import rating
from billing.periods import HOUR_US
from billing.prices import parse_price_list
from billing.rating import rate_pending, rated_until, rounded
from storage.usage import observe_instance_state, record_event

from _billing_testkit import ACCOUNT, TEST_PRICES, T, counts, instance_state, lines, stored_bytes, volume_state

GIB = 1 << 30
SECOND_HRS = lambda s: rounded(s * 1_000_000, HOUR_US)  # noqa: E731


def total(rows, field="amount"):
    return sum((Decimal(r[field]) for r in rows), Decimal(0))


# 1 ------------------------------------------------------------------------------------------------
async def test_2_vcpu_instance_10_30_to_12_00_is_1_5_hrs_and_3_vcpu_hours(db, prices):
    await instance_state(db, "i-1", "pending", "2026-11-03T10:29:30Z")
    await instance_state(db, "i-1", "running", "2026-11-03T10:30:00Z", vcpus=2)
    await instance_state(db, "i-1", "stopping", "2026-11-03T12:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:00:05Z")
    await rate_pending(db, prices, T("2026-11-03T13:00:00Z"))
    rows = await lines(db)
    assert [(r["usage_type"], r["amount"]) for r in rows] == [
        ("BoxUsage:m5.large", "0.500000000000"), ("BoxUsage:m5.large", "1.000000000000")]
    assert [r["start_us"] for r in rows] == [T("2026-11-03T10:00:00Z"), T("2026-11-03T11:00:00Z")]
    assert all(r["end_us"] - r["start_us"] == HOUR_US for r in rows)
    assert total(rows) == Decimal("1.5")
    assert sum(Decimal(r["amount"]) * int(r["vcpu"]) for r in rows) == Decimal("3.0")
    assert {r["unit"] for r in rows} == {"Hrs"} and {r["operation"] for r in rows} == {"RunInstances"}
    assert total(rows, "cost") == Decimal("0.144")


# 2 ------------------------------------------------------------------------------------------------
async def test_a_20_second_run_bills_60_seconds(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:00:20Z")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    assert len(rows) == 1 and Decimal(rows[0]["amount"]) == SECOND_HRS(60)


async def test_3_min_40_s_bills_220_seconds(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:03:40Z")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    assert total(await lines(db)) == SECOND_HRS(220)


async def test_two_starts_in_one_hour_each_get_their_minimum(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:00:20Z")
    await instance_state(db, "i-1", "running", "2026-11-03T10:30:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:30:10Z")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    assert len(rows) == 1 and Decimal(rows[0]["amount"]) == SECOND_HRS(120)


async def test_pending_stopping_and_stopped_bill_nothing(db, prices):
    await instance_state(db, "i-1", "pending", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopping", "2026-11-03T10:10:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:20:00Z")
    await instance_state(db, "i-2", "shutting-down", "2026-11-03T10:00:00Z")
    await rate_pending(db, prices, T("2026-11-03T14:00:00Z"))
    assert await lines(db) == []


async def test_a_minimum_that_spills_over_the_hour_goes_to_the_hour_the_run_started(db, prices):
    # 10:59:50 -> 11:00:10 is 20 s: 10 s + 10 s used, 40 s added at the start -> 50 s + 10 s.
    await instance_state(db, "i-1", "running", "2026-11-03T10:59:50Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T11:00:10Z")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    assert [r["hour_us"] for r in rows] == [T("2026-11-03T10:00:00Z"), T("2026-11-03T11:00:00Z")]
    assert Decimal(rows[0]["amount"]) == SECOND_HRS(50)
    assert total(rows) == SECOND_HRS(60)


# 3 ------------------------------------------------------------------------------------------------
async def test_running_across_the_month_boundary_is_half_an_hour_in_each_period(db, prices):
    await instance_state(db, "i-1", "running", "2026-01-31T23:30:00Z")
    await instance_state(db, "i-1", "stopped", "2026-02-01T00:30:00Z")
    await rate_pending(db, prices, T("2026-02-01T02:00:00Z"))
    january = [r for r in await lines(db) if r["start_us"] < T("2026-02-01T00:00:00Z")]
    february = [r for r in await lines(db) if r["start_us"] >= T("2026-02-01T00:00:00Z")]
    assert total(january) == Decimal("0.5") == total(february)
    assert all(floor == r["start_us"] - r["start_us"] % HOUR_US and r["end_us"] <= floor + HOUR_US
               for r in await lines(db) for floor in [r["hour_us"]])


# 4, 5 -----------------------------------------------------------------------------------------------
async def test_1_gib_for_15_days_of_june_is_half_a_gb_month(db, prices):
    await stored_bytes(db, "photos", GIB, "2026-06-01T00:00:00Z")
    await stored_bytes(db, "photos", -GIB, "2026-06-16T00:00:00Z")
    await rate_pending(db, prices, T("2026-07-01T00:00:00Z"))
    rows = await lines(db, usage_type="TimedStorage-ByteHrs")
    assert len(rows) == 15 * 24                          # one line per hour
    assert total(rows) == Decimal("0.5")
    assert {r["unit"] for r in rows} == {"GB-Mo"} and {r["operation"] for r in rows} == {"StandardStorage"}


async def test_1_gib_for_15_days_of_may_is_0_483870967742_gb_month(db, prices):
    await stored_bytes(db, "photos", GIB, "2026-05-01T00:00:00Z")
    await stored_bytes(db, "photos", -GIB, "2026-05-16T00:00:00Z")
    await rate_pending(db, prices, T("2026-06-01T00:00:00Z"))
    assert total(await lines(db)) == Decimal("0.483870967742")   # 360 / 744, 12 places


async def test_aws_example_is_52900_gb_months_exactly(db, prices):
    # 100 GB for the first 15 days of March, 100 TB for the last 16: 42,259,901,212,262,400 byte-hours.
    await stored_bytes(db, "archive", 100 * GIB, "2026-03-01T00:00:00Z")
    await stored_bytes(db, "archive", 100 * (1 << 40) - 100 * GIB, "2026-03-16T00:00:00Z")
    await rate_pending(db, prices, T("2026-04-01T00:00:00Z"))
    rows = await lines(db)
    assert total(rows) == Decimal(52900)
    assert total(rows, "cost") == Decimal(52900) * Decimal("0.023")
    # and the ledger's byte-hours are the ones AWS gives
    byte_hours = 100 * GIB * 15 * 24 + 100 * (1 << 40) * 16 * 24
    assert byte_hours == 42_259_901_212_262_400


# 6 --------------------------------------------------------------------------------------------------
async def _busy_month(db, with_counts=True):
    await instance_state(db, "i-1", "running", "2026-11-03T10:30:00Z", key="run-1")
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:10:07Z", key="stop-1")
    await instance_state(db, "i-2", "running", "2026-11-03T09:59:50Z", instance_type="t3.micro", key="run-2")
    await instance_state(db, "i-2", "stopped", "2026-11-03T10:00:05Z", instance_type="t3.micro", key="stop-2")
    await stored_bytes(db, "b1", 5 * GIB + 123, "2026-11-03T08:15:00Z", key="put-1")
    if not with_counts:   # counters are sums, not events: a replay re-sends events only
        return
    await counts(db, "Requests-Tier1", "PutObject", 7, "2026-11-03T10:10:00Z", resource="b1")
    await counts(db, "DataTransfer-Out-Bytes", "GetObject", 3 * GIB + 1, "2026-11-03T11:10:00Z", resource="b1")


async def test_replaying_the_same_events_twice_gives_identical_lines(db, prices):
    await _busy_month(db)
    await rate_pending(db, prices, T("2026-11-03T15:00:00Z"))
    first = await lines(db)
    await _busy_month(db, with_counts=False)                   # same dedupe keys: no-ops ...
    async with db.transaction() as tx:                        # ... and a full re-rate from scratch
        await tx.execute("DELETE FROM billing_state")
        await tx.execute("DELETE FROM billing_line_items")
    await rate_pending(db, prices, T("2026-11-03T15:00:00Z"))
    assert await lines(db) == first


async def test_a_rater_killed_mid_pass_leaves_nothing_and_its_rerun_matches(db, prices, monkeypatch, tmp_path):
    await _busy_month(db)
    real = rating.write_lines
    calls = []

    async def crash(tx, start, end, rows):
        await real(tx, start, end, rows[: len(rows) // 2])    # half written, then the process dies
        calls.append(start)
        raise KeyboardInterrupt

    monkeypatch.setattr(rating, "write_lines", crash)
    with pytest.raises(KeyboardInterrupt):
        await rate_pending(db, prices, T("2026-11-03T15:00:00Z"), chunk_hours=2)
    assert calls and await lines(db) == [] and await rated_until(db) is None
    monkeypatch.setattr(rating, "write_lines", real)
    await rate_pending(db, prices, T("2026-11-03T15:00:00Z"), chunk_hours=2)
    resumed = await lines(db)

    from billing.schema import ensure_schema
    from storage.db import Database
    clean = await Database.open(str(tmp_path / "clean.db"))
    await ensure_schema(clean)
    try:
        await _busy_month(clean)
        await rate_pending(clean, prices, T("2026-11-03T15:00:00Z"))
        assert resumed == await lines(clean)
    finally:
        await clean.close()


async def test_rating_mid_hour_and_again_later_matches_one_pass(db, prices, tmp_path):
    await _busy_month(db)
    for now in ("2026-11-03T10:30:00Z", "2026-11-03T11:59:59Z", "2026-11-03T12:00:01Z", "2026-11-03T15:00:00Z"):
        await rate_pending(db, prices, T(now))
    from billing.schema import ensure_schema
    from storage.db import Database
    other = await Database.open(str(tmp_path / "one-pass.db"))
    await ensure_schema(other)
    try:
        await _busy_month(other)
        await rate_pending(other, prices, T("2026-11-03T15:00:00Z"))
        assert await lines(db) == await lines(other)
    finally:
        await other.close()


# 7 --------------------------------------------------------------------------------------------------
async def test_a_rater_down_for_5_hours_rates_all_5_one_line_per_hour(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T08:00:00Z")
    await rate_pending(db, prices, T("2026-11-03T09:10:00Z"))
    assert len(await lines(db)) == 1
    result = await rate_pending(db, prices, T("2026-11-03T14:10:00Z"))      # back after 5 hours
    assert result.hours_rated == 5
    rows = await lines(db)
    assert [r["start_us"] for r in rows] == [T("2026-11-03T08:00:00Z") + h * HOUR_US for h in range(6)]
    assert total(rows) == Decimal(6)                                         # wall-clock hours
    assert await rated_until(db) == T("2026-11-03T14:00:00Z")


async def test_an_always_on_instance_bills_a_whole_month_exactly(db, prices):
    await instance_state(db, "i-1", "running", "2026-10-25T00:00:00Z")
    await rate_pending(db, prices, T("2026-12-01T00:00:00Z"))
    november = [r for r in await lines(db) if r["start_us"] >= T("2026-11-01T00:00:00Z")]
    assert len(november) == 720 and total(november) == Decimal(720)


# 8 --------------------------------------------------------------------------------------------------
async def test_a_duplicate_start_does_not_double_count(db, prices):
    assert await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z", key="start-i-1")
    assert not await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z", key="start-i-1")
    await instance_state(db, "i-1", "running", "2026-11-03T10:20:00Z")     # another 'running' event
    await instance_state(db, "i-1", "stopped", "2026-11-03T11:00:00Z")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    assert len(rows) == 1 and Decimal(rows[0]["amount"]) == Decimal(1)


async def test_a_vm_that_stopped_by_itself_stops_billing(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    async with db.transaction() as tx:   # the EC2 reconciler finds the guest powered off
        assert await observe_instance_state(tx, account_id=ACCOUNT, region="us-east-1", instance_id="i-1",
                                            state="stopped", at_us=T("2026-11-03T10:40:00Z"))
        assert not await observe_instance_state(tx, account_id=ACCOUNT, region="us-east-1",
                                                instance_id="i-1", state="stopped",
                                                at_us=T("2026-11-03T10:41:00Z"))
    await rate_pending(db, prices, T("2026-11-03T18:00:00Z"))
    rows = await lines(db)
    assert len(rows) == 1 and Decimal(rows[0]["amount"]) == SECOND_HRS(40 * 60)


async def test_a_stop_recorded_late_rates_the_past_hours_again(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await rate_pending(db, prices, T("2026-11-03T13:00:00Z"))
    assert total(await lines(db)) == Decimal(3)
    async with db.transaction() as tx:   # found at 13:05 that the guest died at 10:15
        await observe_instance_state(tx, account_id=ACCOUNT, region="us-east-1", instance_id="i-1",
                                     state="stopped", at_us=T("2026-11-03T10:15:00Z"))
    result = await rate_pending(db, prices, T("2026-11-03T13:05:00Z"))
    assert result.rerated_from_us == T("2026-11-03T10:00:00Z")
    assert total(await lines(db)) == Decimal("0.25")


async def test_counts_flushed_late_are_rated(db, prices):
    await counts(db, "Requests-Tier2", "GetObject", 10, "2026-11-03T10:59:59Z", resource="b1")
    await rate_pending(db, prices, T("2026-11-03T11:00:01Z"))
    await counts(db, "Requests-Tier2", "GetObject", 5, "2026-11-03T10:59:59Z", resource="b1")  # late flush
    await rate_pending(db, prices, T("2026-11-03T11:00:06Z"))
    rows = await lines(db)
    assert [(r["usage_type"], r["amount"]) for r in rows] == [("Requests-Tier2", "15.000000000000")]


# 9 --------------------------------------------------------------------------------------------------
async def test_no_usage_after_deletion(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "terminated", "2026-11-03T11:00:00Z")
    await instance_state(db, "i-1", "running", "2026-11-03T12:00:00Z")     # a stray event after deletion
    await volume_state(db, "vol-1", "available", 8, "2026-11-03T10:00:00Z")
    await volume_state(db, "vol-1", "deleted", 8, "2026-11-03T10:30:00Z")
    await volume_state(db, "vol-1", "available", 8, "2026-11-03T11:30:00Z")
    await rate_pending(db, prices, T("2026-11-03T16:00:00Z"))
    rows = await lines(db)
    assert all(r["end_us"] <= T("2026-11-03T11:00:00Z") for r in rows)
    assert total([r for r in rows if r["product_code"] == "AmazonEC2" and "BoxUsage" in r["usage_type"]]) == 1
    volume = [r for r in rows if r["usage_type"] == "EBS:VolumeUsage.gp2"]
    assert total(volume) == rounded(8, 2 * 720)             # 8 GiB for half an hour of a 720-hour month
    assert {r["operation"] for r in volume} == {"CreateVolume-Gp2"}


async def test_at_most_one_open_interval_and_cost_is_rate_times_amount(db, prices):
    for minute in (0, 5, 10):
        await instance_state(db, "i-1", "running", f"2026-11-03T10:{minute:02d}:00Z")
    await _busy_month(db)
    await rate_pending(db, prices, T("2026-11-03T16:00:00Z"))
    rows = await lines(db)
    for row in rows:
        assert Decimal(row["cost"]) == Decimal(row["rate"]) * Decimal(row["amount"])
        if row["resource_id"] == "i-1":
            assert Decimal(row["amount"]) <= 1


# 10 -------------------------------------------------------------------------------------------------
async def test_a_mid_hour_resize_gives_two_lines_with_the_right_types(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z", instance_type="m5.large")
    await instance_state(db, "i-1", "stopping", "2026-11-03T10:20:00Z", instance_type="m5.large")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:20:30Z", instance_type="m5.large")
    await instance_state(db, "i-1", "running", "2026-11-03T10:30:00Z", instance_type="m5.xlarge", vcpus=4)
    await instance_state(db, "i-1", "stopped", "2026-11-03T11:00:00Z", instance_type="m5.xlarge", vcpus=4)
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    assert [(r["usage_type"], Decimal(r["amount"]), r["rate"], r["vcpu"]) for r in rows] == [
        ("BoxUsage:m5.large", SECOND_HRS(1200), "0.096", "2"),
        ("BoxUsage:m5.xlarge", Decimal("0.5"), "0.192", "4")]


async def test_a_type_change_while_running_splits_the_hour_without_a_second_minimum(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z", instance_type="m5.large")
    await instance_state(db, "i-1", "running", "2026-11-03T10:45:00Z", instance_type="m5.xlarge")
    await instance_state(db, "i-1", "stopped", "2026-11-03T10:45:30Z", instance_type="m5.xlarge")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    assert [(r["usage_type"], Decimal(r["amount"])) for r in rows] == [
        ("BoxUsage:m5.large", Decimal("0.75")), ("BoxUsage:m5.xlarge", SECOND_HRS(30))]


async def test_a_price_change_applies_from_its_start_time(db):
    prices = parse_price_list(TEST_PRICES + """
[[version]]
id = "v2"
effective = 2026-11-03T10:30:00Z
[version.AmazonEC2]
"BoxUsage:m5.large" = "0.2"
""")
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:00:00Z")
    await stored_bytes(db, "b1", GIB, "2026-11-03T10:00:00Z")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db, resource_id="i-1")
    assert [(r["start_us"], r["end_us"], r["amount"], r["rate"], r["price_version"]) for r in rows] == [
        (T("2026-11-03T10:00:00Z"), T("2026-11-03T10:30:00Z"), "0.500000000000", "0.096", "v1"),
        (T("2026-11-03T10:30:00Z"), T("2026-11-03T11:00:00Z"), "0.500000000000", "0.2", "v2"),
        (T("2026-11-03T11:00:00Z"), T("2026-11-03T12:00:00Z"), "1.000000000000", "0.2", "v2")]
    assert total(rows, "cost") == Decimal("0.048") + Decimal("0.1") + Decimal("0.2")
    assert len(await lines(db, resource_id="b1")) == 2     # S3's rate did not change: one line per hour


async def test_other_regions_carry_aws_prefix_and_their_own_rates(db, prices):
    await instance_state(db, "i-eu", "running", "2026-11-03T10:00:00Z", region="eu-west-1")
    await instance_state(db, "i-eu", "stopped", "2026-11-03T11:00:00Z", region="eu-west-1")
    await instance_state(db, "i-uk", "running", "2026-11-03T10:00:00Z", region="eu-west-2")
    await instance_state(db, "i-uk", "stopped", "2026-11-03T11:00:00Z", region="eu-west-2")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = {r["resource_id"]: r for r in await lines(db)}
    assert (rows["i-eu"]["usage_type"], rows["i-eu"]["rate"]) == ("EU-BoxUsage:m5.large", "0.107")
    assert (rows["i-uk"]["usage_type"], rows["i-uk"]["rate"]) == ("EUW2-BoxUsage:m5.large", "0.096")
    assert rows["i-uk"]["base_usage_type"] == "BoxUsage:m5.large"


async def test_requests_and_transfer_are_rated_in_requests_and_gb(db, prices):
    await counts(db, "Requests-Tier1", "PutObject", 1000, "2026-11-03T10:10:00Z", resource="b1")
    await counts(db, "DataTransfer-Out-Bytes", "GetObject", GIB // 2, "2026-11-03T10:20:00Z", resource="b1")
    await counts(db, "DataTransfer-Out-Bytes", "GetObject", GIB // 2, "2026-11-03T11:20:00Z", resource="b1")
    await rate_pending(db, prices, T("2026-11-03T12:00:00Z"))
    rows = await lines(db)
    by_type = {}
    for r in rows:
        by_type.setdefault((r["usage_type"], r["unit"]), []).append(r)
    assert total(by_type[("Requests-Tier1", "Requests")]) == 1000
    assert total(by_type[("Requests-Tier1", "Requests")], "cost") == Decimal("0.005")
    assert total(by_type[("DataTransfer-Out-Bytes", "GB")]) == 1


async def test_an_event_with_the_same_dedupe_key_is_recorded_once(db):
    async with db.transaction() as tx:
        kwargs = dict(dedupe_key="k", account_id=ACCOUNT, region="us-east-1", service="AmazonEC2",
                      kind="instance_state", resource_id="i-1", at_us=1, attrs={"state": "running"})
        assert await record_event(tx, **kwargs)
        assert not await record_event(tx, **kwargs)


async def test_volume_resize_and_type_change_and_snapshots(db, prices):
    await volume_state(db, "vol-1", "creating", 10, "2026-11-01T00:00:00Z")
    await volume_state(db, "vol-1", "available", 10, "2026-11-01T00:00:05Z")
    await volume_state(db, "vol-1", "in-use", 20, "2026-11-11T00:00:00Z")                     # grown
    await volume_state(db, "vol-1", "in-use", 20, "2026-11-21T00:00:00Z", volume_type="gp3")  # retyped
    await volume_state(db, "vol-1", "deleting", 20, "2026-11-26T00:00:00Z", volume_type="gp3")
    async with db.transaction() as tx:
        await record_event(tx, dedupe_key="snap-1+", account_id=ACCOUNT, region="us-east-1", service="AmazonEC2",
                           kind="stored_bytes", resource_id="snap-1", at_us=T("2026-11-01T00:00:00Z"),
                           quantity=3 * GIB, attrs={"volume_type": "gp2"})
    await rate_pending(db, prices, T("2026-12-01T00:00:00Z"))
    rows = await lines(db)
    gp2 = [r for r in rows if r["usage_type"] == "EBS:VolumeUsage.gp2"]
    gp3 = [r for r in rows if r["usage_type"] == "EBS:VolumeUsage.gp3"]
    assert total(gp2) == Decimal(10 * 10 + 20 * 10) / 30          # GiB-days / 30-day month
    assert total(gp3) == rounded(20 * 5, 30)
    assert {r["operation"] for r in gp3} == {"CreateVolume-Gp3"} and {r["volume_type"] for r in gp3} == {"gp3"}
    snapshot = [r for r in rows if r["usage_type"] == "EBS:SnapshotUsage"]
    assert total(snapshot) == Decimal(3) and {r["operation"] for r in snapshot} == {"CreateSnapshot"}
