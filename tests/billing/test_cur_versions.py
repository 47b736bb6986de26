"""CUR delivered once per change, and ReportVersioning as AWS does it (issue 9 item 18): no second
assembly of the same data; OVERWRITE_REPORT replaces the old assembly's files, CREATE_NEW_REPORT
keeps them."""
from __future__ import annotations

from billing.cur_export import deliver_due
from billing.rating import rate_pending

from _billing_testkit import ACCOUNT, OTHER, Buckets, T, counts, instance_state, put_report


def seam(store: Buckets):
    """The delivery seam with its ``remove`` (the server's is a DeleteObject as the account)."""
    async def deliver(bucket, key, data, account_id):
        await store.deliver(bucket, key, data, account_id)

    async def remove(bucket, key, account_id):
        assert store.owners[bucket] == account_id
        store.objects.pop((bucket, key), None)
    deliver.remove = remove
    return deliver


def assemblies(store: Buckets) -> set[str]:
    return {key.split("/")[-2] for (_, key) in store.objects if key.endswith(".csv.gz")}


async def _november(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:00:00Z")
    await rate_pending(db, prices, T("2026-11-03T13:00:00Z"))


async def test_a_pass_that_changed_nothing_of_the_report_delivers_nothing(db, prices):
    await _november(db, prices)
    await put_report(db)
    store = Buckets(reports=ACCOUNT)
    [first] = await deliver_due(db, seam(store), T("2026-11-03T13:05:00Z"))
    written = list(store.writes)
    # more hours rated: empty ones, and one with another account's usage only
    await instance_state(db, "i-9", "running", "2026-11-03T14:00:00Z", account=OTHER)
    await rate_pending(db, prices, T("2026-11-03T16:00:00Z"))
    assert await deliver_due(db, seam(store), T("2026-11-03T16:05:00Z")) == []
    assert store.writes == written and assemblies(store) == {first["assemblyId"]}
    # a change of this account's usage is delivered, once
    await counts(db, "Requests-Tier2", "GetObject", 10, "2026-11-03T16:10:00Z", account=ACCOUNT)
    await rate_pending(db, prices, T("2026-11-03T17:00:00Z"))
    [second] = await deliver_due(db, seam(store), T("2026-11-03T17:05:00Z"))
    assert second["assemblyId"] != first["assemblyId"]
    assert await deliver_due(db, seam(store), T("2026-11-03T17:10:00Z")) == []


async def _two_versions(db, prices, versioning: str):
    await _november(db, prices)
    await put_report(db, ReportVersioning=versioning)
    store = Buckets(reports=ACCOUNT)
    [first] = await deliver_due(db, seam(store), T("2026-11-03T13:05:00Z"))
    await counts(db, "Requests-Tier2", "GetObject", 10, "2026-11-03T13:10:00Z", account=ACCOUNT)
    await rate_pending(db, prices, T("2026-11-03T14:00:00Z"))
    [second] = await deliver_due(db, seam(store), T("2026-11-03T14:05:00Z"))
    return store, first, second


async def test_overwrite_report_replaces_the_old_assembly(db, prices):
    store, first, second = await _two_versions(db, prices, "OVERWRITE_REPORT")
    assert assemblies(store) == {second["assemblyId"]}
    assert not any(first["assemblyId"] in key for (_, key) in store.objects)
    manifest, _, rows = store.read_report("reports", "billing/cur/nimbo-cur/20261101-20261201/nimbo-cur-Manifest.json")
    assert manifest["assemblyId"] == second["assemblyId"] and rows


async def test_create_new_report_keeps_the_old_assembly(db, prices):
    store, first, second = await _two_versions(db, prices, "CREATE_NEW_REPORT")
    assert assemblies(store) == {first["assemblyId"], second["assemblyId"]}
    manifest, _, _ = store.read_report("reports", "billing/cur/nimbo-cur/20261101-20261201/nimbo-cur-Manifest.json")
    assert manifest["assemblyId"] == second["assemblyId"]
