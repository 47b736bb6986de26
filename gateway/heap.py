"""The server's garbage collector settings: what start-up built is frozen out of collections, and
young collections run less often.

CPython's cyclic collector runs its youngest generation every 700 net allocations and, now and
then, a full collection that walks every tracked object of the process. A Nimbo server holds
hundreds of thousands of long-lived objects made at start-up (botocore's service models, the
compiled XML writers and parsers, the route tables) and a large answer allocates many short-lived
ones: a 1,000-instance DescribeInstances page is ~100,000 dicts and lists, so the collector ran
hundreds of times during one answer, and a third of that answer's time went to collecting (issue
12's profile). Two settings, applied once start-up is done (``settle``):

- ``gc.freeze()``: what exists when the server starts serving moves to the permanent generation,
  which no collection walks (nothing of it is garbage: the models and tables live as long as the
  process);
- a youngest-generation threshold of ``YOUNG_THRESHOLD`` allocations instead of 700: fewer,
  larger young collections (the cost of one is proportional to the young objects, so the total
  work for short-lived objects shrinks, and survivors are promoted less often).

Reference cycles are still collected (the collector stays enabled; only its rhythm changes), and
memory freed by reference counting, which is most of it, is freed at once as before.
``NIMBO_GC=default`` leaves CPython's settings alone (to measure the difference).

With worker processes, the parent freezes what it imported before it forks them (``before_fork``):
a worker's own collections then never walk (and so never write to, and copy) the pages it shares
with the parent and its siblings.

The C allocator (``limit_arenas``): glibc's malloc gives each thread that allocates its own arena,
up to 8 per core, and a freed buffer stays in the arena it came from; a worker's threads (the
blob store's writers and hashers, SQLite's connections) each kept megabytes of freed upload
buffers resident (measured: +14 MB per worker after three 32 MiB PUTs and GETs).
``MALLOC_ARENAS`` arenas per process share those buffers instead (bench-like runs: a worker's
peak RSS in a 1 GiB upload 9 to 13 MB lower, e.g. 87 -> 74 MB). Buffers are not handed back to
the system per request (a lower mmap threshold would: measured 20 times slower to allocate a
1 MiB buffer), so no request is slower. ``NIMBO_MALLOC=default`` leaves glibc's settings alone;
other C libraries are left alone.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os

log = logging.getLogger("nimbo")

YOUNG_THRESHOLD = 20_000
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8      # glibc's mallopt parameter


def settle() -> None:
    """Freeze what start-up built and space out young collections (once the server serves)."""
    if os.environ.get("NIMBO_GC", "").lower() == "default":
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def before_fork() -> None:
    """In a parent about to fork workers: what it built so far, out of every collection (in the
    parent and in the workers), so that no worker copies the pages it shares to collect them."""
    if os.environ.get("NIMBO_GC", "").lower() == "default":
        return
    gc.collect()
    gc.freeze()


def limit_arenas() -> bool:
    """At most ``MALLOC_ARENAS`` glibc malloc arenas in this process (and the processes it forks
    later); True when set. Call it before the process starts threads."""
    if os.environ.get("NIMBO_MALLOC", "").lower() == "default":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):     # not glibc (musl, macOS): its allocator's own ways
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if mallopt(_M_ARENA_MAX, MALLOC_ARENAS) != 1:
        log.debug("mallopt(M_ARENA_MAX) refused")
        return False
    return True
