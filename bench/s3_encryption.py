"""Encryption at rest: what SSE-S3 (every new object's default) costs next to plaintext, measured
in the same run and printed as ratios.

    python -m bench.s3_encryption [--size-mib 256] [--rounds 3] [--small-seconds 5]

Two Nimbo servers from this tree: one as shipped (objects sealed with AES-256-GCM,
``storage.sealed``) and one started with ``NIMBO_S3_PLAINTEXT_WRITES=1`` (objects stored as
plaintext, as before encryption at rest). For each: a ``--size-mib`` PUT and GET with curl on
presigned URLs (bodies from a file and to /dev/null), best of ``--rounds``, the two servers
alternating so that both see the same machine load; then (unless ``--small-seconds 0``) 4 KiB GET
and PUT ops/s at 16 connections with wrk, as ``bench.s3`` measures them. Every step has a timeout:
the whole run is bounded (about a minute at the defaults).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager

from bench.peers import Peer, start_nimbo
from bench.s3 import client, make_file, small_ops

MAX_ROUNDS = 5


@contextmanager
def plaintext_env():
    os.environ["NIMBO_S3_PLAINTEXT_WRITES"] = "1"
    try:
        yield
    finally:
        del os.environ["NIMBO_S3_PLAINTEXT_WRITES"]


def put_get(peer: Peer, bucket: str, source: str, size: int) -> tuple[float, float, dict]:
    """MB/s of one PUT and one GET of ``source``; and the object's HEAD."""
    s3 = client(peer)
    put_url = s3.generate_presigned_url("put_object", {"Bucket": bucket, "Key": "large"},
                                        ExpiresIn=3600)
    started = time.monotonic()
    subprocess.run(["curl", "-sf", "-o", "/dev/null", "-T", source, "-H", "Expect:", put_url],
                   check=True, timeout=120)
    put_seconds = time.monotonic() - started
    get_url = s3.generate_presigned_url("get_object", {"Bucket": bucket, "Key": "large"},
                                        ExpiresIn=3600)
    started = time.monotonic()
    subprocess.run(["curl", "-sf", "-o", "/dev/null", get_url], check=True, timeout=120)
    get_seconds = time.monotonic() - started
    head = s3.head_object(Bucket=bucket, Key="large")
    return size / 1e6 / put_seconds, size / 1e6 / get_seconds, head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-seconds", type=int, default=5)
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, MAX_ROUNDS))
    size = args.size_mib << 20
    workdir = tempfile.mkdtemp(prefix="bench-sse-")
    sealed_peer = plain_peer = None
    try:
        source = make_file(workdir, size)
        sealed_peer = start_nimbo()
        with plaintext_env():
            plain_peer = start_nimbo()
        peers = {"sse-s3": sealed_peer, "plain": plain_peer}
        for peer in peers.values():
            client(peer).create_bucket(Bucket="bench-sse")
        best = {name: [0.0, 0.0] for name in peers}
        modes = {}
        for _ in range(rounds):
            for name, peer in peers.items():
                put_mbps, get_mbps, head = put_get(peer, "bench-sse", source, size)
                best[name][0] = max(best[name][0], put_mbps)
                best[name][1] = max(best[name][1], get_mbps)
                modes[name] = head.get("ServerSideEncryption", "none")
        if modes != {"sse-s3": "AES256", "plain": "none"}:
            raise SystemExit(f"the servers did not store what they should: {modes}")
        print(f"{args.size_mib} MiB objects, best of {rounds} (curl, presigned URLs):")
        print(f"  {'':8} {'PUT MB/s':>10} {'GET MB/s':>10}")
        for name in peers:
            print(f"  {name:8} {best[name][0]:10.0f} {best[name][1]:10.0f}")
        print(f"  ratio sse-s3/plain: PUT {best['sse-s3'][0] / best['plain'][0]:.2f},"
              f" GET {best['sse-s3'][1] / best['plain'][1]:.2f}")
        if args.small_seconds > 0 and shutil.which("wrk"):
            small = {name: small_ops(peer, "bench-sse", args.small_seconds)
                     for name, peer in peers.items()}
            print(f"4 KiB objects, {args.small_seconds} s each at 16 connections (wrk):")
            for name, (get_ops, put_ops) in small.items():
                print(f"  {name:8} GET {get_ops:8.0f} ops/s   PUT {put_ops:8.0f} ops/s")
            print(f"  ratio sse-s3/plain: GET {small['sse-s3'][0] / small['plain'][0]:.2f},"
                  f" PUT {small['sse-s3'][1] / small['plain'][1]:.2f}")
    finally:
        for peer in (sealed_peer, plain_peer):
            if peer is not None:
                peer.stop()
                for path in peer.cleanup_dirs:
                    shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
