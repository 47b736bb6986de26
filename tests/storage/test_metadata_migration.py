"""``nimbo admin migrate-metadata --to postgresql://...``: an SQLite install copied to PostgreSQL,
verified per table, and served from there with everything in it; a second run into the filled
database is refused; a running server's data directory is refused."""
from __future__ import annotations

import pytest

import os
import subprocess
import sys

from storage.db import Database
from tests.postgres_server import _open_on
from tests.s3.helpers import close_harness, make_harness

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nimbo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.sqlite_only   # its source is an SQLite file, whatever engine the run uses
async def test_an_sqlite_install_moves_to_postgresql_verified(postgres, tmp_path, monkeypatch):
    data_dir = str(tmp_path / "install")
    os.makedirs(data_dir)
    s3 = await make_harness(data_dir)              # SQLite: the install as it is today
    await s3.call("CreateBucket", Bucket="photos")
    await s3.call("PutBucketVersioning", Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    bodies = {f"k{n}": os.urandom(50 + n * 9000) for n in range(12)}
    for key, body in bodies.items():
        await s3.put("photos", key, body)
    await s3.put("photos", "k0", b"second version")
    assert s3.state.store.db.engine == "sqlite"
    await close_harness(s3)

    url = postgres.schema_url(os.path.abspath(os.path.join(data_dir, "nimbo.db")))
    done = nimbo("admin", "--data-dir", data_dir, "migrate-metadata", "--to", url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("s3_versions\t") and line.endswith("verified") for line in lines)
    assert any(line.startswith("accounts\t") for line in lines)
    assert "copied and verified" in lines[-1]

    again = nimbo("admin", "--data-dir", data_dir, "migrate-metadata", "--to", url)
    assert again.returncode == 1 and "empty database" in again.stderr

    monkeypatch.setattr(Database, "open", _open_on(postgres))   # now served from PostgreSQL
    s3 = await make_harness(data_dir)
    try:
        assert s3.state.store.db.engine == "postgresql"
        for key, body in bodies.items():
            if key != "k0":
                assert (await s3.get("photos", key))[1] == body
        assert (await s3.get("photos", "k0"))[1] == b"second version"
        versions = await s3.call("ListObjectVersions", Bucket="photos", Prefix="k0")
        assert len(versions["Versions"]) == 2
        await s3.put("photos", "new", b"written after the move")   # identities go on
        assert (await s3.get("photos", "new"))[1] == b"written after the move"
    finally:
        await close_harness(s3)
