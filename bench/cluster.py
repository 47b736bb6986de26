"""Cluster benchmark: 4 KiB GET and PUT req/s of two gateways on one PostgreSQL (and one shared
blob directory) next to one gateway on SQLite, in the same run.

    python -m bench.cluster [--duration 5] [--connections 16]

Columns: ``sqlite-1`` is one ``nimbo serve --workers 1`` on SQLite (today's default, one
process); ``pg-1`` one such gateway on PostgreSQL; ``pg-2`` two gateways (ports of their own,
standing in for machines) on the same PostgreSQL and blob directory, loaded at once by one wrk
each (half the connections each), their figures summed. PostgreSQL is a private server of the run
(``initdb`` in a temporary directory, a unix socket only; tests/postgres_server.py). Every wrk
run is bounded by ``--duration``; all traffic is on 127.0.0.1. On one machine the gateways share
its cores with PostgreSQL and wrk: the figure shows what the engine costs and that a second
gateway serves, not how a cluster of machines scales.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import time
import uuid

from bench.peers import Peer, start_nimbo
from bench.s3 import LUA_GET, LUA_PUT, SMALL, client, wrk
from bench.table import Row, render

GATEWAY_ARGS = ("--workers", "1", "--backend", "fake")


def _urls(peer: Peer, bucket: str, keys: list[str], puts: int, tag: str) -> tuple[list[str], list[str]]:
    s3 = client(peer)
    get = [s3.generate_presigned_url("get_object", {"Bucket": bucket, "Key": k}, ExpiresIn=3600) for k in keys]
    put = [s3.generate_presigned_url("put_object", {"Bucket": bucket, "Key": f"put/{tag}/{n:06d}"},
                                     ExpiresIn=3600) for n in range(puts)]
    return get, put


def measure(peers: list[Peer], duration: int, connections: int) -> tuple[float, float]:
    """(GET, PUT) req/s of ``peers`` loaded at once (a bucket made through the first)."""
    bucket = "bench-" + uuid.uuid4().hex[:8]
    first = client(peers[0])
    first.create_bucket(Bucket=bucket)
    keys = [f"small/{n:05d}" for n in range(200)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: first.put_object(Bucket=bucket, Key=k, Body=b"x" * SMALL), keys))
    urls = [_urls(p, bucket, keys, 20000, str(i)) for i, p in enumerate(peers)]
    each = max(1, connections // len(peers))
    figures = []
    for index, lua in ((0, LUA_GET), (1, LUA_PUT)):
        with concurrent.futures.ThreadPoolExecutor(len(peers)) as pool:
            rates = list(pool.map(lambda pu: wrk(pu[0], lua, pu[1][index], duration, each),
                                  zip(peers, urls)))
        figures.append(sum(rates))
    return figures[0], figures[1]


def run(duration: int, connections: int) -> tuple[list[Row], list[str]]:
    from tests.postgres_server import PostgresServer  # noqa: PLC0415 (the tests' private server)
    results: dict[str, tuple[float, float]] = {}
    peer = start_nimbo(GATEWAY_ARGS, name="sqlite-1")
    try:
        results["sqlite-1"] = measure([peer], duration, connections)
    finally:
        peer.stop()
    server = PostgresServer()
    if not server.available:
        raise SystemExit("PostgreSQL is not installed (Debian: postgresql)")
    server.start()
    shared = tempfile.mkdtemp(prefix="bench-blobs-")
    try:
        for name, count in (("pg-1", 1), ("pg-2", 2)):
            url = server.fresh_database(name.replace("-", "_"))
            args = GATEWAY_ARGS + ("--metadata", url, "--blob-dir", os.path.join(shared, name))
            peers = []
            try:
                for i in range(count):
                    peers.append(start_nimbo(args, name=f"{name}.{i}"))
                results[name] = measure(peers, duration, connections)
            finally:
                for p in peers:
                    p.stop()
    finally:
        server.stop()
        shutil.rmtree(shared, ignore_errors=True)
    columns = list(results)
    rows = [Row("4 KiB GET req/s", {c: results[c][0] for c in columns}),
            Row("4 KiB PUT req/s (durable)", {c: results[c][1] for c in columns})]
    return rows, columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (bounded)")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows, columns = run(args.duration, args.connections)
    print(render(rows, columns, [f"(shared cores: compare the columns of this run; took "
                                 f"{time.monotonic() - started:.0f}s)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
