"""Inside the measured server: ``python -m bench.probe serve ...`` is ``python -m gateway.cli
serve ...`` with a profiler that the bench switches on and off by signal, for ``--why``.

Until it is signalled nothing is different: two signal handlers are installed before the server
starts (the forked workers inherit them) and they do nothing until a signal comes. The bench
(``bench.profile_pass``) writes ``command.json`` into ``NIMBO_BENCH_PROBE_DIR``, sends SIGUSR1 to
each server process, and each process, in its main thread (the event loop's: Python runs signal
handlers there):

- records the CPU times of each of its threads (``/proc/self/task``), starts ``cProfile`` of that
  thread when asked, times garbage collections (``gc.callbacks``) and, when asked, starts
  ``tracemalloc`` with a thread that snapshots the traced allocations whenever they pass their
  previous high (bounded: at most ``SNAPSHOTS`` snapshots, every 50 ms at most);
- writes ``<pid>.armed`` to say so.

SIGUSR2 stops all of it and writes ``<pid>.prof`` (pstats) and ``<pid>.json`` (threads' CPU
deltas by thread name, garbage collections, tracemalloc's peak and its top sites at the highest
snapshot, the process's RSS figures). Nothing here changes what the server answers.
"""
from __future__ import annotations

import cProfile
import gc
import json
import os
import resource
import runpy
import signal
import sys
import threading
import time

SNAPSHOTS = 8
_TICK = os.sysconf("SC_CLK_TCK")
_state: dict = {}


def _dir() -> str:
    return os.environ.get("NIMBO_BENCH_PROBE_DIR", "")


def _task_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by native thread id."""
    found = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            found[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, ValueError, IndexError):
            continue
    return found


def _thread_label(thread: threading.Thread) -> str:
    """A thread's name without its serial number ('blobs_3' -> 'blobs'), or, for a thread named
    'Thread-N', the class or target that runs it (e.g. 'aiosqlite.core.Connection')."""
    name = thread.name
    if thread is threading.main_thread():
        return "main (event loop)"
    if name.startswith("Thread-") or name.startswith("Dummy-"):
        target = getattr(thread, "_target", None)
        if target is not None:
            return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
        return f"{type(thread).__module__}.{type(thread).__qualname__}"
    return name.rstrip("0123456789").rstrip("_-") or name


def _gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        _state["gc_started"] = time.perf_counter()
    elif "gc_started" in _state:
        _state["gc_seconds"] += time.perf_counter() - _state.pop("gc_started")
        _state["gc_count"] += 1


def _watch_memory(stop: threading.Event) -> None:
    import tracemalloc  # noqa: PLC0415
    best = 0
    while not stop.wait(0.05):
        current = tracemalloc.get_traced_memory()[0]
        if current > best * 1.1 and _state["snapshots"] < SNAPSHOTS:
            best = current
            _state["snapshots"] += 1
            _state["snapshot"] = (current, tracemalloc.take_snapshot())


def _arm(signum, frame) -> None:
    if _state.get("armed"):
        return
    try:
        with open(os.path.join(_dir(), "command.json")) as fh:
            command = json.load(fh)
    except (OSError, ValueError):
        command = {}
    _state.clear()
    _state.update(armed=True, started=time.monotonic(), cpu=_task_cpu(), gc_seconds=0.0, gc_count=0,
                  snapshots=0, command=command)
    gc.callbacks.append(_gc_callback)
    if command.get("tracemalloc"):
        import tracemalloc  # noqa: PLC0415
        tracemalloc.start(int(command.get("frames", 1)))
        stop = threading.Event()
        _state["watch_stop"] = stop
        watcher = threading.Thread(target=_watch_memory, args=(stop,), name="bench-probe-memory",
                                   daemon=True)
        watcher.start()
        _state["watcher"] = watcher
    if command.get("profile", True):
        profiler = cProfile.Profile()
        _state["profiler"] = profiler
        profiler.enable()
    _write(f"{os.getpid()}.armed", "")


def _disarm(signum, frame) -> None:
    if not _state.get("armed"):
        return
    profiler = _state.pop("profiler", None)
    if profiler is not None:
        profiler.disable()
    _state["armed"] = False
    if _gc_callback in gc.callbacks:
        gc.callbacks.remove(_gc_callback)
    elapsed = time.monotonic() - _state["started"]
    before, after = _state["cpu"], _task_cpu()
    labels = {t.native_id: _thread_label(t) for t in threading.enumerate() if t.native_id}
    labels[os.getpid()] = "main (event loop)"      # a forked worker's main thread keeps the parent's id
    threads: dict[str, float] = {}
    for tid, seconds in after.items():
        if tid in labels and labels[tid] == "bench-probe-memory":
            continue
        label = labels.get(tid, "exited or native thread")
        threads[label] = threads.get(label, 0.0) + seconds - before.get(tid, 0.0)
    report = {"pid": os.getpid(), "seconds": elapsed, "threads": threads,
              "gc_seconds": _state["gc_seconds"], "gc_count": _state["gc_count"],
              "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    if "watch_stop" in _state:
        import tracemalloc  # noqa: PLC0415
        _state["watch_stop"].set()
        _state["watcher"].join(2)
        current, peak = tracemalloc.get_traced_memory()
        top = []
        if "snapshot" in _state:
            at, snapshot = _state["snapshot"]
            for stat in snapshot.statistics("lineno")[:6]:
                where = stat.traceback[0]
                top.append([f"{where.filename}:{where.lineno}", stat.size])
            report["snapshot_bytes"] = at
        tracemalloc.stop()
        report.update(traced_peak=peak, traced_end=current, traced_top=top)
    if profiler is not None:
        profiler.dump_stats(os.path.join(_dir(), f"{os.getpid()}.prof"))
    _write(f"{os.getpid()}.json", json.dumps(report))


def _write(name: str, text: str) -> None:
    path = os.path.join(_dir(), name)
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def main() -> None:
    if _dir():
        signal.signal(signal.SIGUSR1, _arm)
        signal.signal(signal.SIGUSR2, _disarm)
    sys.argv = ["gateway.cli", *sys.argv[1:]]
    runpy.run_module("gateway.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
