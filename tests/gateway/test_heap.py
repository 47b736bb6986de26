"""The server's collector settings (gateway.heap): once serving, start-up's objects are frozen
out of collections and young collections are spaced out; cycles are still collected;
NIMBO_GC=default leaves CPython's settings alone."""
from __future__ import annotations

import gc

import pytest

from gateway import heap


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_start_up_objects_and_spaces_young_collections(restored_gc, monkeypatch):
    monkeypatch.delenv("NIMBO_GC", raising=False)
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)
    assert gc.isenabled()

    class Node:
        pass
    a, b = Node(), Node()
    a.other, b.other = b, a          # a cycle made after start-up is still collected
    del a, b
    assert gc.collect() >= 2


def test_nimbo_gc_default_leaves_the_collector_alone(restored_gc, monkeypatch):
    monkeypatch.setenv("NIMBO_GC", "default")
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    heap.settle()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)


def test_before_fork_freezes_what_the_parent_built(restored_gc, monkeypatch):
    monkeypatch.delenv("NIMBO_GC", raising=False)
    gc.unfreeze()
    built = [{"n": n} for n in range(1000)]
    heap.before_fork()
    assert gc.get_freeze_count() >= len(built)
    monkeypatch.setenv("NIMBO_GC", "default")
    gc.unfreeze()
    heap.before_fork()
    assert gc.get_freeze_count() == 0


def test_limit_arenas_sets_glibcs_arena_count_unless_told_not_to():
    """In a process of its own (the setting is the process's): glibc accepts M_ARENA_MAX;
    NIMBO_MALLOC=default leaves the allocator alone."""
    import os
    import platform
    import subprocess
    import sys
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt only")
    code = "from gateway import heap; print(heap.limit_arenas())"
    env = {k: v for k, v in os.environ.items() if k != "NIMBO_MALLOC"}
    from tests.conftest import REPO
    run = lambda extra: subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, **extra},  # noqa: E731
                                       capture_output=True, text=True, check=True).stdout.strip()
    assert run({}) == "True"
    assert run({"NIMBO_MALLOC": "default"}) == "False"
