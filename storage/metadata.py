"""The metadata engine: where Nimbo keeps its rows, chosen at start-up from the configuration.

Two engines implement one interface (``transaction()`` with ``execute/executemany/insert/
fetchone/fetchall``, ``fetchone/fetchall`` outside one, ``migrate(Schema)``, ``sync_reader()``,
``wait_for_writers()``, ``cluster_lock(name)``, ``close()``, ``space``, ``engine``):

* ``storage.db.Database``: SQLite, one file in the data directory (``nimbo.db``), the default;
* ``storage.postgres.PostgresDatabase``: a PostgreSQL server shared by several gateways
  (``metadata = "postgresql://..."`` in the config file, or ``--metadata``).

Both run the same statements (written in SQLite's dialect, translated for PostgreSQL by the named
rules of ``storage.sql_dialect``) and the same schemas and migrations.
"""
from __future__ import annotations

import os

from storage.db import Database
from storage.postgres import PostgresDatabase, is_postgres_url

DATABASE_FILE = "nimbo.db"


async def open_metadata(metadata: str | None, data_dir: str):
    """The metadata database: ``metadata`` (a PostgreSQL URL) if given, else the data
    directory's SQLite file."""
    if is_postgres_url(metadata):
        return await PostgresDatabase.open(metadata)
    if metadata:
        raise ValueError(f"metadata must be a postgresql:// URL (or unset for SQLite): {metadata!r}")
    return await Database.open(os.path.join(data_dir, DATABASE_FILE))
