"""The bill of EBS: a volume bills its provisioned GB-months by type (EBS:VolumeUsage.<type>, a
resize from the time of the ModifyVolume), a snapshot bills the GB-months of its stored bytes
(EBS:SnapshotUsage) until it is deleted; nothing bills after deletion. Rated with the default
price list from the events the handlers wrote."""
from __future__ import annotations

import os
from collections import defaultdict
from decimal import Decimal

from billing.prices import DEFAULT_PRICE_LIST, parse_price_list
from billing.rating import rate_range
from ec2_api import snapshots, volumes
from tests.ec2.test_snapshots import qemu_io, volume_path

HOUR = 3600
MARCH_HOURS = 31 * 24


async def test_volume_and_snapshot_gb_months(env):
    start = env.clock()
    ctx = env.ctx()
    volume_id = (await volumes.create_volume(ctx, {"AvailabilityZone": "us-east-1a", "Size": 10,
                                                   "VolumeType": "gp3"}))["VolumeId"]
    await env.settle()
    await qemu_io(volume_path(env, volume_id), "write -P 0x61 0 8M")
    snapshot_id = (await snapshots.create_snapshot(ctx, {"VolumeId": volume_id}))["SnapshotId"]
    await env.settle()
    env.clock.advance(HOUR)
    await volumes.modify_volume(ctx, {"VolumeId": volume_id, "Size": 20})
    await env.settle()
    env.clock.advance(HOUR)
    await volumes.delete_volume(ctx, {"VolumeId": volume_id})
    env.clock.advance(HOUR)
    await snapshots.delete_snapshot(ctx, {"SnapshotId": snapshot_id})
    stored = (await env.db.fetchone("SELECT quantity FROM usage_events WHERE resource_id = ? AND kind = 'stored_bytes'"
                                    " AND quantity > 0", (snapshot_id,)))["quantity"]
    with open(DEFAULT_PRICE_LIST) as fh:
        prices = parse_price_list(fh.read(), DEFAULT_PRICE_LIST)
    begin = int(start.timestamp()) * 1_000_000
    rows = await rate_range(env.db, prices, begin, begin + 5 * HOUR * 1_000_000)
    amounts: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in rows:
        amounts[(row[3], row[5])] += Decimal(row[12])
    gp3 = sum(v for (usage_type, resource), v in amounts.items()
              if resource == volume_id and usage_type.endswith("EBS:VolumeUsage.gp3"))
    # 10 GB for an hour, then 20 GB for an hour, of a 744-hour month
    assert abs(gp3 - Decimal(30) / MARCH_HOURS) < Decimal("0.000001"), amounts
    snapshot = next(v for (usage_type, resource), v in amounts.items()
                    if resource == snapshot_id and usage_type.endswith("EBS:SnapshotUsage"))
    expected = Decimal(stored) / (1024 ** 3) * 3 / MARCH_HOURS   # three hours stored
    assert abs(snapshot - expected) < Decimal("0.000001"), (snapshot, expected)
    assert stored < 16 * 1024 * 1024          # the snapshot stores what was written, not 10 GiB
    assert os.listdir(os.path.join(env.config.data_dir, "snapshots")) == []
