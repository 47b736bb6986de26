"""Shared fixtures: a live Nimbo server in its own process, and AWS clients pointed at it."""
from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import boto3
import botocore.config
import pytest

from tests.postgres_server import _metadata_engine, _stop_postgres, postgres  # noqa: F401 (fixtures)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """``predicate()``'s first true value, polled every 50 ms; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def parse_exports(text: str) -> dict[str, str]:
    import shlex
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


# Data directories of root servers on a real hypervisor: each made an edge network namespace that
# Nimbo keeps across its own restarts (so guests keep their network); removed when the session ends.
NETWORKED_DATA_DIRS: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _remove_test_networks():
    yield
    # this file is loaded twice: by pytest (under a name other conftest files share) and as
    # ``tests.conftest`` by the test modules that import NimboServer: both registries count
    dirs = NETWORKED_DATA_DIRS | getattr(sys.modules.get("tests.conftest"), "NETWORKED_DATA_DIRS", set())
    if dirs:
        from backend.network.namespace import net_destroy   # noqa: PLC0415
        for data_dir in sorted(dirs):
            net_destroy(data_dir)


@dataclass
class NimboServer:
    """A ``nimbo serve`` process on a free port over its own data directory."""

    data_dir: str
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    log_path: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def nimbo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=REPO, text=True,
                              capture_output=True, check=check, timeout=120)

    def start(self, timeout: float = 30.0) -> "NimboServer":
        if os.geteuid() == 0 and "fake" not in self.extra_args:
            NETWORKED_DATA_DIRS.add(self.data_dir)   # a root Nimbo on a hypervisor makes its namespace
        self.log_path = os.path.join(self.data_dir, "server.log")
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port),
             "--data-dir", self.data_dir, *self.extra_args],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nimbo exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if os.path.exists(os.path.join(self.data_dir, "endpoint")):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nimbo did not start: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        self._wait_until_its_processes_are_gone(timeout)
        return code

    def _wait_until_its_processes_are_gone(self, timeout: float) -> None:
        """A killed server's workers die a moment after it (the kernel signals them when their
        parent dies) and answer on its port until then: a restart must not take them for the new
        server. They hold the data directory's lock while they live."""
        from gateway.data_dir import LOCK_FILE   # noqa: PLC0415
        try:
            fd = os.open(os.path.join(self.data_dir, LOCK_FILE), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    time.sleep(0.02)
        finally:
            os.close(fd)   # drops the shared lock too

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def credentials(self, account: str | None = None) -> dict[str, str]:
        args = ["credentials", "--data-dir", self.data_dir]
        if account:
            args += ["--account", account]
        env = parse_exports(self.nimbo(*args).stdout)
        env["AWS_ENDPOINT_URL"] = self.endpoint
        return env

    def client(self, service: str, account: str | None = None, region: str = "us-east-1", **config):
        env = self.credentials(account)
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(retries={"max_attempts": 1}, **config))


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> NimboServer:
    """One Nimbo server for the whole session (tests use their own buckets and resources)."""
    srv = NimboServer(str(tmp_path_factory.mktemp("nimbo-data"))).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path) -> NimboServer:
    """A Nimbo server of the test's own, for tests that restart or kill it."""
    srv = NimboServer(str(tmp_path / "data"))
    yield srv
    srv.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def tenant(server) -> str:
    """A second account (a tenant) with its own key: the name to pass as ``account``."""
    server.nimbo("admin", "--data-dir", server.data_dir, "create-account", "tenant-one")
    return "tenant-one"
