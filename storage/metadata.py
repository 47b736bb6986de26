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
import urllib.parse

from storage.db import Database

DATABASE_FILE = "nimbo.db"


class MetadataUnavailable(Exception):
    """The configured metadata database cannot be opened (a start-up error, said in one line)."""


def without_password(url: str) -> str:
    """``url`` as it may be shown or logged: a password in it replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def is_postgres_url(target: str | None) -> bool:
    return bool(target) and target.startswith(("postgresql://", "postgres://"))


async def open_metadata(metadata: str | None, data_dir: str):
    """The metadata database: ``metadata`` (a PostgreSQL URL) if given, else the data
    directory's SQLite file."""
    if is_postgres_url(metadata):
        import psycopg  # noqa: PLC0415 (PostgreSQL's driver: ~5 MB a process that uses SQLite never needs)
        from storage.postgres import PostgresDatabase  # noqa: PLC0415
        try:
            return await PostgresDatabase.open(metadata)
        except psycopg.OperationalError as exc:   # unreachable, refused, not authenticated
            raise MetadataUnavailable(f"cannot open the metadata database {without_password(metadata)}: "
                                      f"{str(exc).removeprefix('connection failed: ').strip()}") from None
    if metadata:
        raise ValueError(f"metadata must be a postgresql:// URL (or unset for SQLite): {metadata!r}")
    return await Database.open(os.path.join(data_dir, DATABASE_FILE))
