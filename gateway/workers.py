"""Worker processes: ``nimbo serve --workers N`` serves one port from N processes.

The parent process binds the port, then forks the workers and supervises them; it serves no
request itself. Each worker is a whole Nimbo server (``gateway.cli.run_server``) over the same data
directory: one SQLite file in WAL mode (``storage.db``: one writer at a time across processes,
each still grouping its own writes) and one blob store.

Sockets: the parent first binds the port plainly (so that a port in use, also by another Nimbo's
workers, is one clear error, and port 0 picks a free port), then opens one listening socket per
worker on that port with ``SO_REUSEPORT``, and keeps them all. The kernel spreads new connections
over the sockets by their addresses, evenly; one socket shared by every worker would hand a burst
of connections to whichever worker wakes first (asyncio and libuv accept as many as are queued),
leaving the others idle under a load of long-lived connections. A worker that dies leaves its
socket open in the parent: connections that arrive meanwhile wait in its queue for the worker's
replacement, which inherits the same socket, instead of being refused.

Start-up: the first worker starts alone (it migrates the database, creates the admin account,
collects what a crash left in the blob store, which ``storage.blobs`` does only while no other
process has the store open, and becomes the leader: ``gateway.leader``); the others start once it
serves. The parent writes ``<data_dir>/endpoint`` when every worker serves, and records the server
for the other commands (``gateway.data_dir``). Each worker's log lines carry its pid.

Supervision: a worker that exits or is killed is started again after a short pause (doubling, up
to ``MAX_BACKOFF_SECONDS``); more than ``MAX_RESTARTS`` restarts of one worker within
``RESTART_WINDOW_SECONDS`` and that worker stays down (its socket is closed so that the kernel
sends its share to the others); with no worker left the parent exits with status 1. A worker's
death wedges no other: its SQLite and ``flock`` locks die with it, and if it led, another worker
takes over (``gateway.leader``). Several gateways on one PostgreSQL database: the worker that
holds this data directory's leader lock also seeks the cluster's EC2 lock, and relays its
siblings' EC2 requests on to the gateway that holds it (``gateway.cluster``).

Signals: SIGINT or SIGTERM to the parent stops every worker cleanly (SIGTERM: each drains its
requests, flushes its usage counts and closes its database), the leader last (so that requests
the others forwarded to it are answered), and then the parent; Ctrl-C in a terminal reaches the
workers directly too, with the same effect (a worker that is stopping never takes over as the
leader, and stops waiting for one). A worker that is still running
``STOP_TIMEOUT_SECONDS`` later is killed. If the parent itself dies (``kill -9``), the kernel kills
its workers (``PR_SET_PDEATHSIG``), so no orphan keeps the port or the data directory.

Crash story: nothing here is persistent; every process's persistent work has its own (acknowledged
S3 writes are committed before the answer, whichever worker serves them).
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from storage.metadata import MetadataUnavailable

log = logging.getLogger("nimbo.workers")

MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def listen_reuseport(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port (``SO_REUSEPORT``); raises OSError (EADDRINUSE)
    when anything listens there already, whether with ``SO_REUSEPORT`` or not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family) as probe:   # plain: in use is an error
        port = probe.getsockname()[1]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.create_server((host, port), family=family, backlog=1024,
                                                reuse_port=True))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@dataclass
class _Worker:
    index: int
    sock: socket.socket | None
    pid: int = 0
    ready_fd: int = -1            # the parent's end of the worker's ready pipe
    ready: bool = False
    restarts: list[float] = field(default_factory=list)
    start_at: float = 0.0         # when a replacement may start
    given_up: bool = False


class Supervisor:
    def __init__(self, config: Any, sockets: list[socket.socket], serve: Callable[[Any, socket.socket, int], int]) -> None:
        self.config = config
        self.serve = serve        # serve(config, sock, ready_fd) in the worker; returns its exit status
        self.workers = [_Worker(i, sock) for i, sock in enumerate(sockets)]
        self.stopping = False

    # -- the parent's life -----------------------------------------------------------------
    def run(self, announce: Callable[[], None]) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_stop)
        _preload()
        if self.stopping:
            return 0
        try:
            first = self.workers[0]
            self._spawn(first)
            if not self._wait_ready([first]):
                return self._stop_all() if self.stopping else max(self._stop_all(), 1)
            for worker in self.workers[1:]:
                self._spawn(worker)
            self._wait_ready(self.workers[1:])
            if self.stopping:
                return self._stop_all()
            with open(self.config.path("endpoint"), "w") as fh:   # every worker serves
                fh.write(self.config.endpoint_url + "\n")
            announce()
            log.info("Nimbo serving %s with %d worker processes (pids %s)", self.config.endpoint_url,
                     len(self.workers), ", ".join(str(w.pid) for w in self.workers))
            return self._supervise()
        finally:
            for worker in self.workers:
                if worker.sock is not None:
                    worker.sock.close()

    def _on_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _supervise(self) -> int:
        while not self.stopping:
            self._reap()
            now = time.monotonic()
            for worker in self.workers:
                if worker.pid == 0 and not worker.given_up and now >= worker.start_at:
                    self._spawn(worker)
            if all(w.given_up for w in self.workers):
                log.error("every worker failed repeatedly: stopping")
                return 1
            self._collect_ready(0.2)
        return self._stop_all()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue
            self._exited(worker, status)

    def _exited(self, worker: _Worker, status: int) -> None:
        worker.pid = 0
        worker.ready = False
        if worker.ready_fd >= 0:
            os.close(worker.ready_fd)
            worker.ready_fd = -1
        if self.stopping:
            return
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"status {os.waitstatus_to_exitcode(status)}")
        now = time.monotonic()
        worker.restarts = [t for t in worker.restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
        if len(worker.restarts) > MAX_RESTARTS:
            log.error("worker %d exited (%s) %d times within %.0f s: it stays down", worker.index,
                      how, len(worker.restarts), RESTART_WINDOW_SECONDS)
            worker.given_up = True
            if worker.sock is not None:     # its share of new connections goes to the others
                worker.sock.close()
                worker.sock = None
            return
        pause = min(0.1 * 2 ** (len(worker.restarts) - 1), MAX_BACKOFF_SECONDS)
        worker.start_at = now + pause
        log.warning("worker %d exited (%s); starting it again in %.1f s", worker.index, how, pause)

    def _wait_ready(self, workers: list[_Worker]) -> bool:
        """Until each of ``workers`` serves (True); False when the first worker exits before it
        serves (a start-up that fails: its error is in the log), or when all of them gave up."""
        first_start = workers[0] is self.workers[0]
        while not self.stopping:
            self._collect_ready(0.1)
            if all(w.ready or w.given_up for w in workers):
                return not all(w.given_up for w in workers)
            self._reap()
            if first_start and workers[0].pid == 0:
                log.error("the first worker exited before it served")
                return False
            now = time.monotonic()
            for worker in workers:
                if worker.pid == 0 and not worker.given_up and now >= worker.start_at:
                    self._spawn(worker)
        return False

    def _collect_ready(self, timeout: float) -> None:
        waiting = {w.ready_fd: w for w in self.workers if w.ready_fd >= 0 and not w.ready}
        if not waiting:
            time.sleep(timeout)
            return
        try:
            readable, _, _ = select.select(list(waiting), [], [], timeout)
        except InterruptedError:
            return
        for fd in readable:
            worker = waiting[fd]
            if os.read(fd, 1):
                worker.ready = True
            os.close(fd)
            worker.ready_fd = -1

    def _stop_all(self) -> int:
        """SIGTERM the workers that do not lead, then, once they are gone (their requests
        forwarded to the leader answered), the leader; SIGKILL what still runs
        ``STOP_TIMEOUT_SECONDS`` later."""
        self.stopping = True
        leader = _leader_pid(self.config.data_dir)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for last in (False, True):
            for worker in self.workers:
                if worker.pid and (worker.pid == leader) == last:
                    _signal(worker.pid, signal.SIGTERM)
            while any(w.pid and (last or w.pid != leader) for w in self.workers):
                self._reap()
                if time.monotonic() > deadline:
                    for worker in self.workers:
                        if worker.pid:
                            log.warning("worker %d did not stop: killing it", worker.index)
                            _signal(worker.pid, signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(0.02)
        log.info("stopped")
        return 0

    # -- a worker's life -------------------------------------------------------------------
    def _spawn(self, worker: _Worker) -> None:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        stops = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)   # held until the worker's own handling
        pid = os.fork()
        if pid == 0:    # the worker
            status = 1
            try:
                os.close(read_fd)
                _die_with(parent)
                for signum in stops:
                    signal.signal(signum, signal.SIG_DFL)   # until its event loop handles them
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
                for other in self.workers:
                    if other is not worker:
                        if other.sock is not None:
                            other.sock.close()
                        if other.ready_fd >= 0:
                            os.close(other.ready_fd)
                status = self.serve(self.config, worker.sock, write_fd)
            except MetadataUnavailable as exc:   # said in one line: no traceback helps here
                log.error("worker %d: %s", worker.index, exc)
            except BaseException:   # noqa: BLE001 (the worker's end, whatever happened)
                log.exception("worker %d failed", worker.index)
            finally:
                logging.shutdown()
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        os.close(write_fd)
        worker.pid = pid
        worker.ready = False
        worker.ready_fd = read_fd


def _preload() -> None:
    """Import the application's modules once, here, so that every worker (and a replacement)
    starts without importing them again (fork shares them), and load what every worker uses:
    S3's model and routes (``preload_s3``). What only some processes use is left to them: EC2's
    package is imported by the leader (``gateway.registry``: at its start, or when a worker takes
    over), and a service's model by the first request for it in a process
    (``gateway.protocols.models``); what the parent holds is resident in every worker, needed or
    not. What was built is frozen out of the collector (``gateway.heap.before_fork``). Imports and
    data only: no thread, event loop or descriptor is made (a fork copies none of them)."""
    try:
        from gateway import app  # noqa: F401, PLC0415
        from gateway.registry import default_services, preload_s3  # noqa: PLC0415
        default_services()
        preload_s3()
    except Exception:   # noqa: BLE001 (a worker importing it will report the error itself)
        log.debug("preloading the application failed", exc_info=True)
    from gateway import heap  # noqa: PLC0415
    heap.before_fork()


def _leader_pid(data_dir: str) -> int:
    from gateway.leader import LOCK_FILE  # noqa: PLC0415
    try:
        with open(os.path.join(data_dir, LOCK_FILE)) as fh:
            text = fh.read().strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _die_with(parent: int) -> None:
    """The kernel kills this process when its parent dies (Linux's PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("PR_SET_PDEATHSIG: %s", os.strerror(ctypes.get_errno() or errno.EINVAL))
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:      # the parent died before the request took effect
        os._exit(1)
