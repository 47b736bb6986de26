"""Starting a Nimbo server of the suite's own (``--start-nimbo``)."""
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
import urllib.parse

from conformance.context import Target
from conformance.errors import SetupError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where ``--nimbo-tiny-image`` keeps the built tiny image between runs (the tests' cache)
TINY_IMAGE_CACHE = os.environ.get("NIMBO_TINY_IMAGE_CACHE",
                                  os.path.join(REPO, "tests", "backend", ".cache", "tiny-image"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def parse_exports(text: str) -> dict[str, str]:
    """``export NAME=value`` lines (values shell-quoted) as a dict."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            parts = shlex.split(value) if value else [""]
            env[name.strip()] = parts[0] if parts else ""
    return env


class NimboProcess:
    """``python -m gateway.cli serve --port P --data-dir TMP``; ready once TMP/endpoint exists."""

    def __init__(self, port: int | None = None, data_dir: str | None = None,
                 extra_args: list[str] | None = None, keep_data: bool = False,
                 module: str = "gateway.cli", cwd: str = REPO, env: dict | None = None,
                 tiny_image: bool = False, tiny_image_cache: str | None = None):
        self.module = module
        self.cwd = cwd
        self.env = env
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="nimbo-conformance-")
        self.extra_args = list(extra_args or [])
        self.keep_data = keep_data
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.tiny_image = tiny_image
        self.tiny_image_cache = tiny_image_cache or TINY_IMAGE_CACHE
        self.image_id: str | None = None
        self.image_error: str | None = None

    def _gateway(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", self.module, *args], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=60)

    def register_tiny_image(self) -> str | None:
        """``image build-tiny --if-missing`` over the data directory (with the serve flags, so the
        regions match), building into a cache kept between runs. The image id, or None (and
        ``image_error``) when it cannot be built here: EC2 then has nothing to launch."""
        link = os.path.join(self.data_dir, "tiny-image")
        if self.tiny_image_cache and not os.path.lexists(link):
            os.makedirs(self.tiny_image_cache, exist_ok=True)
            os.symlink(os.path.abspath(self.tiny_image_cache), link)
        try:
            made = subprocess.run([sys.executable, "-m", self.module, "image", "build-tiny", "--if-missing",
                                   "--data-dir", self.data_dir, *self.extra_args], cwd=self.cwd,
                                  env=self.env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            self.image_error = "image build-tiny timed out"
            return None
        if made.returncode != 0:
            self.image_error = (made.stderr.strip() or made.stdout.strip())[-500:]
            return None
        self.image_id = made.stdout.strip().splitlines()[-1] if made.stdout.strip() else None
        return self.image_id

    def start(self, region: str | None = None, timeout: float = 60.0) -> Target:
        endpoint_file = os.path.join(self.data_dir, "endpoint")
        if self.tiny_image:
            self.register_tiny_image()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "serve", "--port", str(self.port),
                 "--data-dir", self.data_dir, *self.extra_args],
                cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        endpoint = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f"nimbo serve exited with {self.process.returncode}:\n"
                                 f"{self.log_tail()}")
            if os.path.exists(endpoint_file):
                with open(endpoint_file) as fh:
                    endpoint = fh.read().strip()
                if endpoint and _accepts_connections(endpoint):
                    break
            time.sleep(0.05)
        else:
            self.stop()
            raise SetupError(f"nimbo serve did not write {endpoint_file} in {timeout:.0f} s:\n"
                             f"{self.log_tail()}")
        made = self._gateway("credentials", "--data-dir", self.data_dir)
        if made.returncode != 0:
            self.stop()
            raise SetupError(f"nimbo credentials failed ({made.returncode}): {made.stderr.strip()}")
        env = parse_exports(made.stdout)
        if not env.get("AWS_ACCESS_KEY_ID") or not env.get("AWS_SECRET_ACCESS_KEY"):
            self.stop()
            raise SetupError(f"nimbo credentials printed no keys: {made.stdout!r}")
        return Target(endpoint=endpoint or env.get("AWS_ENDPOINT_URL", ""),
                      access_key=env["AWS_ACCESS_KEY_ID"],
                      secret_key=env["AWS_SECRET_ACCESS_KEY"],
                      region=region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
                      or "us-east-1",
                      session_token=env.get("AWS_SESSION_TOKEN") or None)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir and not self.keep_data:
            if os.geteuid() == 0:   # the edge network namespace a root Nimbo keeps over restarts
                from backend.network.namespace import net_destroy   # noqa: PLC0415
                net_destroy(self.data_dir)
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, limit: int = 3000) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()[-limit:]
        except OSError:
            return ""
