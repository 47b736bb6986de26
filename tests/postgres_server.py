"""A private PostgreSQL server for the test session, from Debian's packages (``postgresql``).

``initdb`` in a temporary directory, the server on a unix socket in that directory only (no TCP
port), run as the ``postgres`` system user when the tests run as root (PostgreSQL refuses root),
stopped (``pg_ctl stop -m immediate``) and removed at the end of the session. Each caller gets a
schema of its own (``url(name)``), so tests never see each other's rows.
"""
from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse

import psycopg


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = ""
        self.user_args: list[str] = []
        self.started = False

    @property
    def available(self) -> bool:
        return self.bindir is not None

    def _run(self, *args: str) -> None:
        subprocess.run([*self.user_args, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> "PostgresServer":
        self.root = tempfile.mkdtemp(prefix="nimbo-pg-")
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.user_args = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.root, "data")
        self._run(os.path.join(self.bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.root}' "
                   "-c fsync=on -c max_connections=300 -c shared_buffers=32MB")
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", data, "-l",
                  os.path.join(self.root, "server.log"), "-o", options, "-w", "-t", "60", "start")
        self.started = True
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE nimbo")
        return self

    def url(self, schema: str | None = None, database: str = "postgres") -> str:
        query = {"host": self.root, "user": "postgres"}
        if schema:
            query["options"] = f"-csearch_path={schema}"
        return f"postgresql:///{database}?{urllib.parse.urlencode(query)}"

    def schema_url(self, name: str) -> str:
        """A URL whose tables live in a schema of their own (made if missing), named by ``name``."""
        schema = "t_" + hashlib.sha256(name.encode()).hexdigest()[:20]
        with psycopg.connect(self.url(database="nimbo"), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        return self.url(schema, database="nimbo")

    def fresh_database(self, name: str) -> str:
        """A database of its own (for several gateways, whose advisory locks are per database)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(database=name)

    def stop(self) -> None:
        if self.started:
            subprocess.run([*self.user_args, os.path.join(self.bindir, "pg_ctl"), "-D",
                            os.path.join(self.root, "data"), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
            self.started = False
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)


# --- fixtures (imported by tests/conftest.py) ------------------------------------------------
import pytest  # noqa: E402

ENGINE_ENV = "NIMBO_TEST_METADATA"
_SESSION: dict[str, PostgresServer] = {}


def session_server() -> PostgresServer:
    """The session's server, started on first use; skips the test where PostgreSQL is absent."""
    server = _SESSION.get("server")
    if server is None:
        server = PostgresServer()
        if not server.available:
            pytest.skip("PostgreSQL is not installed (Debian: postgresql)")
        _SESSION["server"] = server.start()
    return server


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres():
    yield
    server = _SESSION.pop("server", None)
    if server is not None:
        server.stop()


@pytest.fixture
def postgres() -> PostgresServer:
    return session_server()


@pytest.fixture(autouse=True)
def _metadata_engine(request, monkeypatch):
    """With NIMBO_TEST_METADATA=postgresql (or on a test marked ``postgresql_engine``), every
    ``storage.db.Database.open(path)`` opens a PostgreSQL schema named by that path instead: the
    same path reopened (a restart, a crash test) finds the same rows."""
    wanted = os.environ.get(ENGINE_ENV, "sqlite") == "postgresql" or \
        request.node.get_closest_marker("postgresql_engine") is not None
    if not wanted:
        yield
        return
    if request.node.get_closest_marker("sqlite_only") is not None:
        pytest.skip("a test of the SQLite engine itself (its file, its connection)")
    server = session_server()
    monkeypatch.setenv(SOCKET_ENV, server.root)    # subprocesses a test starts follow (helpers)
    monkeypatch.setattr(_database_class(), "open", _open_on(server))
    yield


SOCKET_ENV = "NIMBO_TEST_POSTGRES_SOCKET"


def _database_class():
    from storage.db import Database  # noqa: PLC0415
    return Database


def _open_on(server: PostgresServer):
    from storage.postgres import PostgresDatabase  # noqa: PLC0415

    async def open_on_postgres(cls, path: str):
        if path.startswith("postgresql://"):       # a test reopening ``db.path``: that schema
            return await PostgresDatabase.open(path)
        return await PostgresDatabase.open(server.schema_url(os.path.abspath(path)))

    return classmethod(open_on_postgres)


def follow_parent_engine() -> None:
    """In a process a test started (a kill -9 test's writer): the parent's engine, if PostgreSQL."""
    root = os.environ.get(SOCKET_ENV)
    if root:
        server = PostgresServer()
        server.root = root
        _database_class().open = _open_on(server)
