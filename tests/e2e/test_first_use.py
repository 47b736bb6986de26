"""A newcomer's first hour (issue 9 items 19-21): `nimbo serve` on a port in use, the commands that
must find the running server's data directory and never make one, and two servers on one data
directory."""
from __future__ import annotations

import fnmatch
import os
import socket
import subprocess
import sys
import time
import tomllib

import boto3
import pytest

from tests.conftest import REPO, NimboServer, free_port, parse_exports


def nimbo(*args: str, cwd: str, env_extra: dict | None = None, timeout: float = 60):
    env = dict(os.environ, PYTHONPATH=REPO, **(env_extra or {}))
    env.pop("NIMBO_DATA_DIR", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)
    return done, time.monotonic() - started


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    """A runtime directory of the test's own (where servers record themselves)."""
    path = str(tmp_path / "runtime")
    monkeypatch.setenv("NIMBO_RUNTIME_DIR", path)
    return path


def test_serve_on_a_port_in_use_exits_at_once_with_one_line(tmp_path, runtime_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, took = nimbo("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                           "--backend", "fake", cwd=str(tmp_path), timeout=30)
    assert done.returncode == 1
    assert took < 15
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in lines[0]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_with_an_unreachable_metadata_database_says_so_in_one_line(tmp_path, runtime_dir, workers):
    nowhere = tmp_path / "no-postgres-here"      # a socket directory with no server in it
    nowhere.mkdir()
    url = f"postgresql://nimbo:s3cret@/nimbo?host={nowhere}"
    done, took = nimbo("serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--backend", "fake",
                       "--metadata", url, "--workers", workers, cwd=str(tmp_path), timeout=60)
    assert done.returncode == 1, done.stderr
    assert took < 30
    assert "Traceback" not in done.stderr, done.stderr
    said = [line for line in done.stderr.splitlines() if "cannot open the metadata database" in line]
    assert said and str(nowhere) in said[0], done.stderr
    assert "s3cret" not in done.stderr                     # a password in the URL is never shown


def test_the_installed_nimbo_holds_every_package_of_the_repository():
    """`pip install .` (and `nimbo` run outside the checkout) must find every top-level package:
    the tests run with the checkout on PYTHONPATH, which would hide one left out of pyproject."""
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        include = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {name for name in os.listdir(REPO) if name != "tests"
                and os.path.isfile(os.path.join(REPO, name, "__init__.py"))}
    assert {"gateway", "kms_api", "ssm_api", "access"} <= packages
    assert {name for name in packages if not any(fnmatch.fnmatch(name, p) for p in include)} == set()


def test_second_server_on_one_data_directory_refuses(tmp_path, runtime_dir):
    first = NimboServer(str(tmp_path / "data"), extra_args=["--backend", "fake"]).start()
    try:
        endpoint_file = os.path.join(first.data_dir, "endpoint")
        before = open(endpoint_file).read()
        other_port = free_port()
        done, took = nimbo("serve", "--port", str(other_port), "--data-dir", first.data_dir,
                           "--backend", "fake", cwd=str(tmp_path), timeout=30)
        assert done.returncode == 1 and took < 15
        assert "another Nimbo server" in done.stderr and first.endpoint in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert open(endpoint_file).read() == before        # the first one's endpoint stays
        with pytest.raises(OSError):                       # and the second never listened
            socket.create_connection(("127.0.0.1", other_port), timeout=0.5).close()
        sts = first.client("sts")
        assert sts.get_caller_identity()["Account"]        # the first still serves
    finally:
        first.stop()
    # once the first is gone, the data directory is free again
    again = NimboServer(first.data_dir, extra_args=["--backend", "fake"]).start()
    again.stop()


@pytest.mark.parametrize("command,at", [(["credentials"], 1), (["admin", "list-accounts"], 1),
                                        (["billing", "report", "--period", "2026-11"], 4)])
def test_commands_never_create_a_data_directory(tmp_path, runtime_dir, command, at):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done, _ = nimbo(*command, cwd=str(cwd))
    assert done.returncode != 0
    assert "no running Nimbo server found" in done.stderr and "--data-dir" in done.stderr
    assert "Traceback" not in done.stderr
    assert os.listdir(cwd) == []
    missing = tmp_path / "missing"
    done, _ = nimbo(*command[:at], "--data-dir", str(missing), *command[at:], cwd=str(cwd))
    assert done.returncode != 0 and "no Nimbo data in" in done.stderr
    assert not missing.exists()


def test_credentials_outside_the_repository_find_the_running_server(tmp_path, runtime_dir):
    server = NimboServer(str(tmp_path / "served"), extra_args=["--backend", "fake"]).start()
    try:
        cwd = tmp_path / "home"
        cwd.mkdir()
        done, _ = nimbo("credentials", cwd=str(cwd))
        assert done.returncode == 0, done.stderr
        assert os.listdir(cwd) == []
        env = parse_exports(done.stdout)
        assert env["AWS_ENDPOINT_URL"] == server.endpoint
        sts = boto3.client("sts", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                           aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        assert sts.get_caller_identity()["Account"]       # keys the running server accepts
        done, _ = nimbo("admin", "list-accounts", cwd=str(cwd))
        assert done.returncode == 0 and "admin" in done.stdout
    finally:
        server.stop()
    done, _ = nimbo("credentials", cwd=str(cwd))         # the server is gone: refuse again
    assert done.returncode != 0 and "no running Nimbo server found" in done.stderr
