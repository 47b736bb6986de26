"""The command side of ``nimbo admin migrate-metadata`` (``storage.metadata_migration`` does the work)."""
from __future__ import annotations

import sys

from gateway import data_dir as data_dirs
from storage.metadata_migration import MigrationError, migrate_metadata
from storage.postgres import PostgresDatabase, is_postgres_url


async def migrate_command(source, data_dir: str, url: str) -> int:
    if source.engine != "sqlite":
        print("nimbo: this data directory's metadata is on PostgreSQL already", file=sys.stderr)
        return 2
    if not is_postgres_url(url):
        print(f"nimbo: --to must be a postgresql:// URL, not {url!r}", file=sys.stderr)
        return 2
    try:
        lock = data_dirs.lock_for_server(data_dir)    # no server writes while we copy
    except data_dirs.DataDirInUse as exc:
        print(f"nimbo: {exc}", file=sys.stderr)
        return 1
    try:
        target = await PostgresDatabase.open(url)
        try:
            tables = await migrate_metadata(source, target)
        finally:
            await target.close()
    except MigrationError as exc:
        print(f"nimbo: migration refused or failed: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    print(f"copied and verified {len(tables)} tables, {sum(n for n, _ in tables.values())} rows; "
          f"serve with: metadata = \"{url}\" (or --metadata)")
    return 0
