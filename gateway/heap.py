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
"""
from __future__ import annotations

import gc
import os

YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Freeze what start-up built and space out young collections (once the server serves)."""
    if os.environ.get("NIMBO_GC", "").lower() == "default":
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
