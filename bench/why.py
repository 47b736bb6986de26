"""``python -m bench --why``: after the table, for each row whose target Nimbo misses, a few
lines on where its time goes for exactly that workload, measured in the same run.

The figures come from two places, both of this run:

- the measured runs themselves: the CPU the server's processes and the load generator used
  (``bench.profile_pass.cpu_window``: /proc and getrusage around each wrk run, for every server,
  so Nimbo's CPU per request stands beside the null server's);
- profile passes on Nimbo after its figures are taken (``bench.why_s3``, ``bench.why_ec2``):
  the same workload again, bounded (a 2 s wrk run, one upload, a few DescribeInstances calls),
  with ``bench.probe`` on in every worker: cProfile of the event loop thread grouped into stages
  (``bench.stages``), each thread's CPU, garbage collection, tracemalloc for the memory row.

Nothing printed is canned: a line is printed only from figures measured here, and a row whose
pass did not run or failed says so in one line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from bench import stages
from bench.profile_pass import CpuWindow, Pass
from bench.table import Row, misses

PROFILE_SECONDS = 2       # the wrk run of a small-request profile pass


@dataclass
class Why:
    """What ``--why`` collects during the run, by row key (``Row.key``)."""

    enabled: bool = False
    # server -> workload ("get", "put") -> (CPU window, requests answered)
    load: dict[str, dict[str, tuple[CpuWindow, int]]] = field(default_factory=dict)
    # row key -> lines to print under it when the row misses (made from this run's figures)
    lines: dict[str, list[str]] = field(default_factory=dict)
    # row key -> a function making the lines at the end (when they need other servers' figures)
    later: dict[str, Callable[["Why"], list[str]]] = field(default_factory=dict)
    profiles_dir: str = ""     # --why-profiles DIR: each pass's merged pstats kept there

    def keep(self, key: str, found: Pass, suffix: str = "") -> list[str]:
        """Save the pass's profile as DIR/<key><suffix>.prof when asked; the line that says where."""
        if not self.profiles_dir or found.stats is None:
            return []
        os.makedirs(self.profiles_dir, exist_ok=True)
        path = os.path.join(self.profiles_dir, f"{key}{suffix}.prof")
        found.stats.dump_stats(path)
        return [f"  the whole profile: {path} (python -m pstats {path})"]

    def record_load(self, server: str, workload: str, window: CpuWindow, requests: int) -> None:
        self.load.setdefault(server, {})[workload] = (window, requests)

    def add(self, key: str, lines: list[str]) -> None:
        self.lines.setdefault(key, []).extend(lines)


def cpu_per_request_line(why: Why, workload: str, cores: int) -> str | None:
    """'server CPU 318 µs/request (null 74 µs, s3rver 120 µs); over the 3.0 s run Nimbo used
    1.71 of 2 cores, wrk 0.27'."""
    mine = why.load.get("nimbo", {}).get(workload)
    if mine is None or mine[1] <= 0:
        return None
    window, requests = mine
    others = []
    for server, loads in why.load.items():
        if server != "nimbo" and workload in loads and loads[workload][1] > 0:
            w, n = loads[workload]
            others.append(f"{server} {w.server / n * 1e6:,.0f} µs")
    text = (f"server CPU {window.server / requests * 1e6:,.0f} µs/request"
            f"{' (' + ', '.join(others) + ')' if others else ''}; over the {window.wall:.1f} s run "
            f"Nimbo's processes used {window.server / window.wall:.2f} of {cores} cores "
            f"({window.server_system / max(window.server, 1e-9) * 100:.0f}% of it in the kernel), "
            f"the load generator {window.client / window.wall:.2f}")
    return text


def thread_line(found: Pass, per: float = 0.0, unit: str = "") -> str | None:
    """'threads: main (event loop) 81% · aiosqlite 12% · blobs 7%' of the pass's CPU (or, with
    ``per``, in CPU seconds per ``unit`` scaled by 1,000: 'ms/MB')."""
    threads = {k: v for k, v in found.threads().items() if v > 0}
    total = sum(threads.values())
    if total <= 0:
        return None
    parts = sorted(threads.items(), key=lambda kv: -kv[1])[:5]
    if per:
        return "threads' CPU: " + " · ".join(f"{name} {seconds / per * 1e3:.2f} ms/{unit}"
                                             for name, seconds in parts)
    return "threads' CPU: " + " · ".join(f"{name} {seconds / total * 100:.0f}%" for name, seconds in parts)


def stage_lines(found: Pass, table: list, what: str) -> list[str]:
    """The profile's stages and the garbage collector's share, in one or two lines."""
    lines = []
    if found.stats is not None:
        seconds = stages.attribute(found.stats.stats, table)
        parts = stages.shares(seconds)
        if parts:
            lines.append(f"{what}: {stages.format_shares(parts)}")
            top = stages.top_functions(found.stats.stats, 2)
            lines.append("  hottest functions (own time): "
                         + ", ".join(f"{name} {share * 100:.0f}%" for name, share in top))
    gc_seconds, collections = found.gc()
    main = sum(r.get("threads", {}).get("main (event loop)", 0.0) for r in found.reports)
    if collections and main > 0:
        lines.append(f"  garbage collection: {gc_seconds * 1e3:,.0f} ms in {collections} collections "
                     f"= {gc_seconds / main * 100:.0f}% of the event loop thread's CPU")
    if found.missing:
        lines.append(f"  ({found.missing} server process(es) did not answer the profiler's signal in time)")
    return lines


def explain(rows: list[Row], why: Why) -> str:
    """The why-section: for each row with a missed target, its header and its lines."""
    out = []
    for row in rows:
        missed = misses(row)
        if not missed or not row.key:
            continue
        lines = list(why.lines.get(row.key, []))
        if row.key in why.later:
            try:
                lines = why.later[row.key](why) + lines
            except Exception as exc:  # noqa: BLE001 (an explanation that fails is said, not fatal)
                lines.append(f"(the explanation failed: {exc})")
        if not lines:
            lines = ["(no profile for this row in this run)"]
        out.append(f"why {row.label}: misses {'; '.join(missed)}")
        out += [f"  {line}" for line in lines]
    if not out:
        return ""
    return "\n".join(["", "== why: where Nimbo's time goes for each missed target "
                          "(measured in this run; profile shares are of the profiled thread's time)"]
                     + out)
