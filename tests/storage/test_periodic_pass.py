"""storage.periodic_pass: a background pass runs in one process of a data directory (its lock file)
and in one gateway of a cluster (the engine's cluster lock)."""
from __future__ import annotations

import asyncio
import contextlib


class FakeEngine:
    """A metadata engine whose cluster lock another gateway may hold."""

    def __init__(self, held_elsewhere: bool) -> None:
        self.held_elsewhere = held_elsewhere
        self.asked: list[str] = []

    @contextlib.asynccontextmanager
    async def cluster_lock(self, name: str):
        self.asked.append(name)
        yield not self.held_elsewhere


def _pass(tmp_path, runs, db=None, **kw):
    from storage.periodic_pass import PeriodicPass

    async def work():
        runs.append(1)
    return PeriodicPass("test-pass", str(tmp_path / "test-pass.lock"), 3600, work, db, **kw)


async def test_a_pass_runs_in_the_process_holding_the_lock_file_only(tmp_path):
    runs: list[int] = []
    first, second = _pass(tmp_path, runs), _pass(tmp_path, runs)
    try:
        assert await first.run_once() is True
        assert await second.run_once() is False
        assert runs == [1]
        await first.stop()                      # its holder gone, the other takes over
        assert await second.run_once() is True
        assert runs == [1, 1]
    finally:
        await first.stop()
        await second.stop()


async def test_a_pass_is_skipped_while_another_gateway_holds_the_cluster_lock(tmp_path):
    runs: list[int] = []
    engine = FakeEngine(held_elsewhere=True)
    one = _pass(tmp_path, runs, engine)
    try:
        assert await one.run_once() is False
        assert runs == [] and engine.asked == ["test-pass"]
        engine.held_elsewhere = False
        assert await one.run_once() is True
        assert runs == [1]
    finally:
        await one.stop()


async def test_at_start_runs_a_pass_before_the_first_interval(tmp_path):
    runs: list[int] = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    lazy_runs: list[int] = []
    eager = _pass(tmp_path / "a", runs, at_start=True)
    lazy = _pass(tmp_path / "b", lazy_runs)
    eager.start()
    lazy.start()
    try:
        for _ in range(100):
            if runs:
                break
            await asyncio.sleep(0.01)
        assert runs == [1]
        assert lazy_runs == []                  # its first pass waits an interval (an hour here)
    finally:
        await eager.stop()
        await lazy.stop()
