"""A group commit's statements run side by side (storage.object_batch): a failure is raised only
once every chain has ended, so no statement of a failed batch reaches the writer's connection
after the rollback that the failure causes (it would commit on its own, outside the batch)."""
from __future__ import annotations

import asyncio

import pytest

from storage.object_batch import _all


async def test_a_failure_is_raised_after_every_chain_has_ended():
    events: list[str] = []

    async def failing():
        events.append("fail")
        raise ValueError("constraint")

    async def two_steps():
        events.append("first")
        await asyncio.sleep(0.01)
        events.append("second")

    with pytest.raises(ValueError):
        await _all([failing(), two_steps()])
    events.append("rollback")
    assert events == ["fail", "first", "second", "rollback"]


async def test_chains_start_in_order_and_all_run():
    events: list[int] = []

    async def chain(n):
        events.append(n)
        await asyncio.sleep(0)
        events.append(n + 10)

    await _all([chain(1), chain(2), chain(3)])
    assert events[:3] == [1, 2, 3] and sorted(events[3:]) == [11, 12, 13]
