"""The bench's side of ``bench.probe``: CPU times of a server's processes from /proc, and a
profile pass: switch the probe on in every process of a Nimbo server started with
``probe=True``, run a bounded workload, switch it off and collect what each process wrote.

A pass is bounded: arming and disarming wait at most ``WAIT`` seconds each (a process that does
not answer is left out and said so), and the workload given is the caller's, bounded itself.
"""
from __future__ import annotations

import glob
import json
import os
import pstats
import resource
import signal
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

from bench.peers import Peer

WAIT = 10.0
_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pids`` together, from /proc/<pid>/stat (gone ones: 0)."""
    user = system = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / _TICK
        system += int(fields[12]) / _TICK
    return user, system


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk, curl) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU used by a server's processes and by the load generator over one bounded run."""

    wall: float = 0.0
    server_user: float = 0.0
    server_system: float = 0.0
    client: float = 0.0

    @property
    def server(self) -> float:
        return self.server_user + self.server_system


class cpu_window:
    """``with cpu_window(peer) as w: run()`` fills ``w`` (a CpuWindow) when the block ends."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.result = CpuWindow()

    def __enter__(self) -> CpuWindow:
        self.pids = self.peer.processes()
        self.start = (time.monotonic(), *process_cpu(self.pids), children_cpu())
        return self.result

    def __exit__(self, *exc) -> None:
        now = (time.monotonic(), *process_cpu(self.pids), children_cpu())
        r = self.result
        r.wall, r.server_user, r.server_system, r.client = (b - a for a, b in zip(self.start, now))


@dataclass
class Pass:
    """What one profile pass found: merged pstats of the processes that did work, their threads'
    CPU seconds by thread label, garbage collection, tracemalloc figures, per process."""

    stats: pstats.Stats | None = None
    reports: list[dict] = field(default_factory=list)
    cpu: CpuWindow = field(default_factory=CpuWindow)
    missing: int = 0          # processes that did not answer a signal in time

    def threads(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for report in self.reports:
            for label, seconds in report.get("threads", {}).items():
                total[label] = total.get(label, 0.0) + seconds
        return total

    def gc(self) -> tuple[float, int]:
        return (sum(r.get("gc_seconds", 0.0) for r in self.reports),
                sum(r.get("gc_count", 0) for r in self.reports))


def _probed(peer: Peer) -> list[int]:
    """The server's processes that run the probe (forked workers share the parent's command line)."""
    found = []
    for pid in peer.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"bench.probe" in fh.read():
                    found.append(pid)
        except OSError:
            continue
    if len(found) > 1 and peer.pid in found:    # the supervisor of --workers: it serves nothing
        found.remove(peer.pid)
    return found


def _nudge(peer: Peer) -> None:
    """A few bare connections, so that an idle event loop wakes up and runs the signal handler."""
    parts = urllib.parse.urlsplit(peer.endpoint)
    for _ in range(4):
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                sock.recv(1024)
        except OSError:
            pass


def _signal_and_wait(peer: Peer, pids: list[int], signum: int, suffix: str, directory: str) -> int:
    """Signal ``pids``; wait until each has written ``<pid><suffix>``; the count that did not."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + WAIT
    waiting = set(pids)
    while waiting and time.monotonic() < deadline:
        waiting = {p for p in waiting if not os.path.exists(os.path.join(directory, f"{p}{suffix}"))}
        if waiting:
            _nudge(peer)
            time.sleep(0.05)
    return len(waiting)


def profile_pass(peer: Peer, workload: Callable[[], None], *, profile: bool = True,
                 tracemalloc: bool = False, frames: int = 1) -> Pass:
    """Run ``workload`` (bounded) with the probe on in every process of ``peer``."""
    directory = peer.probe_dir
    if not directory:
        raise RuntimeError(f"{peer.name} was not started with the probe")
    for path in glob.glob(os.path.join(directory, "*")):
        os.unlink(path)
    with open(os.path.join(directory, "command.json"), "w") as fh:
        json.dump({"profile": profile, "tracemalloc": tracemalloc, "frames": frames}, fh)
    pids = _probed(peer)
    found = Pass()
    found.missing = _signal_and_wait(peer, pids, signal.SIGUSR1, ".armed", directory)
    with cpu_window(peer) as window:
        workload()
    found.cpu = window
    found.missing += _signal_and_wait(peer, pids, signal.SIGUSR2, ".json", directory)
    for pid in pids:
        try:
            with open(os.path.join(directory, f"{pid}.json")) as fh:
                report = json.load(fh)
        except (OSError, ValueError):
            continue
        if sum(report.get("threads", {}).values()) <= 0.0 and not report.get("traced_peak"):
            continue     # a process that did nothing (the supervisor, an idle worker)
        found.reports.append(report)
        prof = os.path.join(directory, f"{pid}.prof")
        if profile and os.path.exists(prof):
            if found.stats is None:
                found.stats = pstats.Stats(prof)
            else:
                found.stats.add(prof)
    return found
