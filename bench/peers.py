"""Servers to measure side by side: Nimbo and moto's standalone server, each in its own process
on a free loopback port, with a way to read its memory high-water mark."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@dataclass
class Peer:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    workdir: str
    cleanup_dirs: list[str] = field(default_factory=list)
    repo: str = REPO    # the checkout a Nimbo peer runs from
    probe_dir: str = ""  # where bench.probe (started with probe=True) writes its profiles

    @property
    def pid(self) -> int:
        return self.process.pid

    def processes(self) -> list[int]:
        """The server's process and its descendants (Nimbo's worker processes)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    @staticmethod
    def _status_kib(pid: int, field_name: str) -> int:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith(field_name):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def peak_rss_bytes(self) -> int:
        """The largest VmHWM among the server's processes: per process, as the target is per worker
        (moto and s3rver are one process; Nimbo with --workers is a parent and its workers)."""
        return max(self._status_kib(pid, "VmHWM:") for pid in self.processes()) * 1024

    def rss_bytes(self) -> int:
        """The largest VmRSS among the server's processes."""
        return max(self._status_kib(pid, "VmRSS:") for pid in self.processes()) * 1024

    def pss_bytes(self) -> int:
        """The largest proportional set size among the server's processes: its private pages plus
        its share of those it shares (workers share what the parent imported before forking them,
        which VmRSS counts in full for each)."""
        largest = 0
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    for line in fh:
                        if line.startswith("Pss:"):
                            largest = max(largest, int(line.split()[1]))
                            break
            except OSError:
                pass
        return largest * 1024

    def reset_peak(self) -> None:
        """Reset VmHWM of every server process (Linux: writing 5 to clear_refs) so a later peak is
        this phase's own."""
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in self.cleanup_dirs:
            shutil.rmtree(path, ignore_errors=True)


def start_nimbo(extra_args: tuple[str, ...] = (), repo: str = REPO, name: str = "nimbo",
                probe: bool = False) -> Peer:
    """``nimbo serve`` of the tree at ``repo`` (another checkout makes a before/after pair).
    ``probe``: through ``bench.probe`` (this tree's), whose profiler ``bench.profile_pass``
    switches on and off by signal for ``--why``; off, it costs nothing."""
    workdir = tempfile.mkdtemp(prefix="bench-nimbo-")
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "wb")
    # NIMBO_BENCH_PROFILE=FILE: the server runs under cProfile and writes its profile to FILE
    # when it stops (read it with `python -m pstats FILE`).
    profile = os.environ.get("NIMBO_BENCH_PROFILE")
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    env = dict(os.environ)
    probe_dir = ""
    if probe and not profile and os.path.samefile(repo, REPO):   # the probe is this tree's
        probe_dir = os.path.join(workdir, "probe")
        os.mkdir(probe_dir)
        env["NIMBO_BENCH_PROBE_DIR"] = probe_dir
    module = "bench.probe" if probe_dir else "gateway.cli"
    process = subprocess.Popen(
        [sys.executable, *prefix, "-m", module, "serve", "--port", str(port), "--data-dir",
         os.path.join(workdir, "data"), "--log-level", "WARNING", *extra_args],
        cwd=repo, stdout=log, stderr=subprocess.STDOUT, env=env)
    _wait_port(port, process)
    while not os.path.exists(os.path.join(workdir, "data", "endpoint")):
        time.sleep(0.05)
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "credentials", "--data-dir",
                          os.path.join(workdir, "data")], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    keys = {}
    for line in out.splitlines():
        var, _, value = line.removeprefix("export ").partition("=")
        keys[var] = shlex.split(value)[0]
    return Peer(name, f"http://127.0.0.1:{port}", keys["AWS_ACCESS_KEY_ID"],
                keys["AWS_SECRET_ACCESS_KEY"], process, workdir, [workdir], repo, probe_dir)


def start_moto() -> Peer:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-moto-")
    log = open(os.path.join(workdir, "server.log"), "wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    _wait_port(port, process)
    return Peer("moto", f"http://127.0.0.1:{port}", "testing", "testing", process, workdir, [workdir])


def start_null() -> Peer:
    """The framework ceiling (``bench.null_server``): S3's shapes, no storage, no auth."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-null-")
    log = open(os.path.join(workdir, "server.log"), "wb")
    process = subprocess.Popen([sys.executable, "-m", "bench.null_server", "--port", str(port)],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    _wait_port(port, process)
    return Peer("null", f"http://127.0.0.1:{port}", "null", "null", process, workdir, [workdir])


# Where `make bench` installs s3rver (npm) when npm is there; NIMBO_S3RVER names another binary.
S3RVER_PREFIX = os.path.join(REPO, ".cache", "bench-peers")


def s3rver_binary() -> str | None:
    candidates = [os.environ.get("NIMBO_S3RVER"), os.path.join(S3RVER_PREFIX, "node_modules", ".bin", "s3rver"),
                  shutil.which("s3rver")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def start_s3rver() -> Peer:
    """s3rver (Node.js, objects as files, no fsync), with its default credentials."""
    binary = s3rver_binary()
    if binary is None:
        raise FileNotFoundError("s3rver is not installed (make bench installs it with npm)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-s3rver-")
    log = open(os.path.join(workdir, "server.log"), "wb")
    process = subprocess.Popen([binary, "-d", os.path.join(workdir, "data"), "-a", "127.0.0.1", "-p", str(port),
                                "--silent"], stdout=log, stderr=subprocess.STDOUT)
    _wait_port(port, process)
    return Peer("s3rver", f"http://127.0.0.1:{port}", "S3RVER", "S3RVER", process, workdir, [workdir])


def moto_installed() -> bool:
    import importlib.util  # noqa: PLC0415
    return importlib.util.find_spec("moto") is not None
