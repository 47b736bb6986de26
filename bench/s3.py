"""S3 benchmark: Nimbo next to its peers, measured in the same run, printed as one table.

    python -m bench.s3 [--quick] [--duration 10] [--connections 16] [--large-mib 256] [--keys 10000]
                       [--peers null,s3rver,moto] [--baseline DIR]

Peers: the null server (``bench.null_server``: S3's shapes on aiohttp, no storage or auth: the
framework ceiling), s3rver (Node.js; when installed: ``make bench`` installs it with npm) and
moto's server (when installed); ``--baseline DIR`` adds another checkout of Nimbo (``base``),
so a change is measured before/after in one run. The null server is measured on the small
requests only.

- 4 KiB GET and PUT (distinct keys) ops/s at 16 connections, driven by wrk on presigned URLs
  (wrk is C: the load generator costs the server little CPU);
- 256 MiB PUT and GET in MB/s with curl on presigned URLs (bodies from and to disk), the median
  of ``--large-rounds``; beside them, a dd-like 256 MiB write + fsync in the server's data
  directory (the disk's own figure for a durable write, so a PUT can be judged disk-bound or not);
- the server's peak RSS during a 1 GiB upload;
- a full ListObjectsV2 of 10,000 keys, 1,000 keys a page, two ways: raw HTTP on presigned URLs
  (the server's time: the client only reads the continuation token), and boto3's paginator (what
  a Python user waits for: botocore parses every page into dicts, and its timestamp parsing
  (dateutil, for each LastModified) costs ~0.1 s a page, whatever the server).

Targets (issue 12): 4 KiB GET >= 12,000 req/s, >= 4x s3rver, >= 20x moto, >= 45% of the null
server; durable 4 KiB PUT >= 5,000 req/s; 256 MiB PUT >= 650 MB/s, GET >= 3,000 MB/s; peak RSS
< 100 MB during the 1 GiB upload; the 10,000-key listing < 50 ms of server time.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import html
import http.client
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse

import boto3
import botocore.config

from bench.peers import (Peer, moto_installed, s3rver_binary, start_moto, start_nimbo, start_null,
                         start_s3rver)
from bench.table import Row, at_least, at_most, ratio_to, render
from bench.why import Why, explain

SMALL = 4096
# The targets of issue 12, by row key; ``--test-target KEY=VALUE`` replaces one (for tests).
TARGETS = {"get_ops": 12000, "put_ops": 5000, "put_mbps": 650, "get_mbps": 3000, "peak_rss_mb": 100,
           "list_raw_ms": 50}
last_run: dict[str, float] = {}     # the latest wrk run's requests, errors and seconds


def client(peer: Peer, signature_version: str | None = None):
    return boto3.client("s3", endpoint_url=peer.endpoint, region_name="us-east-1",
                        aws_access_key_id=peer.access_key, aws_secret_access_key=peer.secret_key,
                        config=botocore.config.Config(max_pool_connections=32,
                                                      retries={"max_attempts": 2},
                                                      signature_version=signature_version))


def _path_and_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def wrk(peer: Peer, lua: str, urls: list[str], duration: int, connections: int = 16) -> float:
    """Requests per second that completed with a 2xx status."""
    workdir = tempfile.mkdtemp(prefix="wrk-")
    try:
        url_file = os.path.join(workdir, "urls.txt")
        with open(url_file, "w") as fh:
            fh.write("\n".join(_path_and_query(u) for u in urls) + "\n")
        script = os.path.join(workdir, "script.lua")
        with open(script, "w") as fh:
            fh.write(lua.replace("URLFILE", url_file))
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", script,
                              peer.endpoint], capture_output=True, text=True, timeout=duration + 60)
        text = out.stdout
        total = int(re.search(r"(\d+) requests in", text).group(1))
        seconds = float(re.search(r"requests in ([\d.]+)(m?s)", text).group(1))
        unit = re.search(r"requests in [\d.]+(m?s)", text).group(1)
        if unit == "ms":
            seconds /= 1000
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        errors = int(bad.group(1)) if bad else 0
        last_run.update(requests=total, errors=errors, seconds=seconds)
        return (total - errors) / seconds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


_LUA_COMMON = """
local urls = {}
local i = 0
init = function(args)
  for line in io.lines("URLFILE") do urls[#urls + 1] = line end
  i = math.random(#urls)
end
"""
LUA_GET = _LUA_COMMON + """
request = function()
  i = i % #urls + 1
  return wrk.format("GET", urls[i])
end
"""
LUA_PUT = _LUA_COMMON + """
local body = string.rep("x", %d)
request = function()
  i = i %% #urls + 1
  return wrk.format("PUT", urls[i], nil, body)
end
""" % SMALL


def small_ops(peer: Peer, bucket: str, duration: int, connections: int = 16, why=None,
              urls: dict | None = None) -> tuple[float, float]:
    """(GET, PUT) req/s; with ``why`` (a ``bench.why.Why``) the CPU each run took is recorded;
    ``urls`` receives the presigned URLs (for a profile pass of the same workload)."""
    s3 = client(peer)
    keys = [f"small/{n:05d}" for n in range(200)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x" * SMALL), keys))
    get_urls = [s3.generate_presigned_url("get_object", {"Bucket": bucket, "Key": k}, ExpiresIn=3600)
                for k in keys]
    put_urls = [s3.generate_presigned_url("put_object", {"Bucket": bucket, "Key": f"put/{n:06d}"},
                                          ExpiresIn=3600) for n in range(20000)]
    if urls is not None:
        urls.update(get=get_urls, put=put_urls)
    rates = []
    for workload, lua, batch in (("get", LUA_GET, get_urls), ("put", LUA_PUT, put_urls)):
        if why is None or not why.enabled:
            rates.append(wrk(peer, lua, batch, duration, connections))
            continue
        from bench.profile_pass import cpu_window  # noqa: PLC0415
        with cpu_window(peer) as window:
            rates.append(wrk(peer, lua, batch, duration, connections))
        why.record_load(peer.name, workload, window, int(last_run.get("requests", 0)))
    return rates[0], rates[1]


def large_transfer(peer: Peer, bucket: str, source: str, size: int, rounds: int = 3
                   ) -> tuple[float, float]:
    """Median MB/s of ``rounds`` PUTs and GETs of ``source`` (the same key, overwritten)."""
    s3 = client(peer)
    put_url = s3.generate_presigned_url("put_object", {"Bucket": bucket, "Key": "large"}, ExpiresIn=3600)
    get_url = s3.generate_presigned_url("get_object", {"Bucket": bucket, "Key": "large"}, ExpiresIn=3600)
    puts, gets = [], []
    mb = size / 1e6
    for _ in range(rounds):
        started = time.monotonic()
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-T", source, "-H", "Expect:", put_url],
                       check=True, timeout=600)
        puts.append(mb / (time.monotonic() - started))
        started = time.monotonic()
        subprocess.run(["curl", "-sf", "-o", "/dev/null", get_url], check=True, timeout=600)
        gets.append(mb / (time.monotonic() - started))
    return statistics.median(puts), statistics.median(gets)


def disk_write(directory: str, size: int, rounds: int = 3) -> float:
    """Median MB/s of writing ``size`` bytes 1 MiB at a time and fsyncing them, in ``directory``
    (a server's data directory: the filesystem its blobs land on), as ``dd bs=1M
    conv=fsync`` would: what the disk gives a durable write, beside what the server makes of it."""
    block = os.urandom(1 << 20)
    path = os.path.join(directory, "bench-disk-write")
    figures = []
    for _ in range(rounds):
        started = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(size >> 20):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        figures.append(size / 1e6 / (time.monotonic() - started))
        os.unlink(path)
    return statistics.median(figures)


def upload_peak_memory(peer: Peer, bucket: str, source: str) -> tuple[int, int]:
    """(peak RSS, peak PSS sampled every 50 ms) of the server's largest process during an upload."""
    s3 = client(peer)
    url = s3.generate_presigned_url("put_object", {"Bucket": bucket, "Key": "gib"}, ExpiresIn=3600)
    peer.reset_peak()
    upload = subprocess.Popen(["curl", "-sf", "-o", "/dev/null", "-T", source, "-H", "Expect:", url])
    peak_pss, deadline = 0, time.monotonic() + 900
    while upload.poll() is None and time.monotonic() < deadline:
        peak_pss = max(peak_pss, peer.pss_bytes())
        time.sleep(0.05)
    if upload.poll() is None:
        upload.kill()
    if upload.wait() != 0:
        raise RuntimeError(f"{peer.name}: the {source} upload failed (curl exit {upload.returncode})")
    peak = peer.peak_rss_bytes()
    s3.delete_object(Bucket=bucket, Key="gib")
    return peak, peak_pss


def listing(peer: Peer, bucket: str, keys: int) -> float:
    s3 = client(peer)
    started = time.monotonic()
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/"):
        count += page.get("KeyCount", 0)
    elapsed = time.monotonic() - started
    if count != keys:
        raise RuntimeError(f"{peer.name} listed {count} of {keys} keys")
    return elapsed


def fill_for_listing(peer: Peer, bucket: str, keys: int) -> None:
    s3 = client(peer)
    names = [f"list/{n // 100:03d}/{n:06d}" for n in range(keys)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), names))


_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def listing_raw(peer: Peer, bucket: str, keys: int) -> float:
    """A full listing over one keep-alive connection, each page a presigned URL; the client
    counts the keys and reads the continuation token, nothing more. SigV4 presigning: botocore
    signs a SigV2 bucket-level URL for the resource '/bucket/' while it requests '/bucket'."""
    s3 = client(peer, "s3v4")
    host = urllib.parse.urlsplit(peer.endpoint)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    count = 0
    token = None
    started = time.monotonic()
    while True:
        params = {"Bucket": bucket, "Prefix": "list/", "MaxKeys": 1000}
        if token is not None:
            params["ContinuationToken"] = token
        url = s3.generate_presigned_url("list_objects_v2", params, ExpiresIn=3600)
        conn.request("GET", _path_and_query(url))
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{peer.name}: ListObjectsV2 answered {response.status}: {body[:300]!r}")
        count += body.count(b"<Key>")
        found = _TOKEN.search(body)
        if found is None:
            break
        token = html.unescape(found.group(1).decode())
    elapsed = time.monotonic() - started
    conn.close()
    if count != keys:
        raise RuntimeError(f"{peer.name} listed {count} of {keys} keys")
    return elapsed


def make_file(directory: str, size: int) -> str:
    path = os.path.join(directory, f"blob-{size}")
    with open(path, "wb") as fh:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            fh.write(chunk)
    return path


def measure(peer: Peer, args, files: dict[str, str], small_only: bool = False,
            result: dict[str, float] | None = None) -> dict[str, float]:
    """The figures of one server, filled into ``result`` as they come (a later failure keeps
    the earlier figures)."""
    s3 = client(peer)
    bucket = "bench-" + peer.name
    s3.create_bucket(Bucket=bucket)
    result = {} if result is None else result
    urls: dict = {}
    result["get_ops"], result["put_ops"] = small_ops(peer, bucket, args.duration, args.connections,
                                                     args.why_data, urls)
    probed = bool(peer.probe_dir) and args.why_data.enabled
    from bench import why_s3  # noqa: PLC0415 (it uses this module's load generators)
    if small_only or args.small_only:
        if probed:
            why_s3.after_small(peer, bucket, urls, args, result)
        return result
    result["disk_mbps"] = disk_write(peer.workdir, args.large_mib << 20)
    result["put_mbps"], result["get_mbps"] = large_transfer(peer, bucket, files["large"],
                                                            args.large_mib << 20, args.large_rounds)
    peak_rss, peak_pss = upload_peak_memory(peer, bucket, files["gib"])
    result["peak_rss_mb"], result["peak_pss_mb"] = peak_rss / 1e6, peak_pss / 1e6
    fill_for_listing(peer, bucket, args.keys)
    result["list_raw_ms"] = min(listing_raw(peer, bucket, args.keys) for _ in range(3)) * 1000
    result["list_ms"] = listing(peer, bucket, args.keys) * 1000
    if probed:
        why_s3.after_small(peer, bucket, urls, args, result)
        why_s3.after_large(peer, bucket, files, args, result)
    return result


def rows(results: dict[str, dict[str, float]], args) -> list[Row]:
    """The S3 rows of the table (``results``: server name -> figures)."""
    def figures(key: str) -> dict[str, float | None]:
        return {name: r.get(key) for name, r in results.items()}
    big = f"{args.large_mib} MiB"
    t = args.targets
    small = [
        Row(f"4 KiB GET req/s ({args.connections} conns)", figures("get_ops"),
            [at_least(t["get_ops"]), ratio_to("s3rver", 4), ratio_to("moto", 20), ratio_to("null", 0.45)],
            key="get_ops"),
        Row(f"4 KiB PUT req/s, durable ({args.connections} conns)", figures("put_ops"),
            [at_least(t["put_ops"]), ratio_to("null", 0.45)], key="put_ops"),
    ]
    if args.small_only:
        return small
    return small + [
        Row(f"{big} PUT MB/s (median of {args.large_rounds})", figures("put_mbps"), [at_least(t["put_mbps"])],
            key="put_mbps"),
        Row(f"{big} write+fsync on the data disk (dd), MB/s", figures("disk_mbps"), []),
        Row(f"{big} PUT as % of the disk's write+fsync", {
            name: (r["put_mbps"] / r["disk_mbps"] * 100 if r.get("put_mbps") and r.get("disk_mbps")
                   else None) for name, r in results.items()}, []),
        Row(f"{big} GET MB/s (median of {args.large_rounds})", figures("get_mbps"), [at_least(t["get_mbps"])],
            key="get_mbps"),
        Row(f"peak RSS in a {args.gib_mib} MiB upload, MB", figures("peak_rss_mb"), [at_most(t["peak_rss_mb"])],
            key="peak_rss_mb"),
        Row(f"peak PSS in a {args.gib_mib} MiB upload, MB (shared pages split)", figures("peak_pss_mb"), []),
        Row(f"ListObjectsV2 {args.keys:,} keys (HTTP), ms", figures("list_raw_ms"), [at_most(t["list_raw_ms"])],
            key="list_raw_ms"),
        Row(f"ListObjectsV2 {args.keys:,} keys (boto3), ms", figures("list_ms"), []),
    ]


def peers_wanted(args) -> list:
    """(start, small_only) of each server to measure, Nimbo first; peers not installed are left
    out with a note."""
    plan: list = [(lambda: start_nimbo(probe=args.why_data.enabled), False)]
    if args.baseline:
        plan.append((lambda: start_nimbo(repo=args.baseline, name="base"), False))
    wanted = [p for p in args.peers.split(",") if p]
    if "null" in wanted:
        plan.append((start_null, True))
    if "s3rver" in wanted:
        if s3rver_binary():
            plan.append((start_s3rver, False))
        else:
            args.notes.append("s3rver: not installed (make bench installs it with npm)")
    if "moto" in wanted:
        if moto_installed():
            plan.append((start_moto, False))
        else:
            args.notes.append("moto: not installed (pip install 'moto[server]')")
    return plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--large-rounds", type=int, default=3, help="PUT/GET rounds (median)")
    parser.add_argument("--gib-mib", type=int, default=1024, help="size of the RSS upload")
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--peers", default="null,s3rver,moto", help="peers to run beside Nimbo")
    parser.add_argument("--baseline", help="another checkout of Nimbo to measure beside this one")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--small-only", action="store_true",
                        help="S3: the 4 KiB GET and PUT rows only (no big objects, RSS, listing)")
    parser.add_argument("--why", dest="why", action="store_true", default=True,
                        help="after the table, where Nimbo's time goes for each missed target, measured "
                             "in this run (the default; see bench.why)")
    parser.add_argument("--no-why", dest="why", action="store_false", help="the table only")
    parser.add_argument("--why-profiles", metavar="DIR", default="",
                        help="keep each --why profile pass's whole profile (pstats) in DIR")
    parser.add_argument("--test-target", action="append", default=[], metavar="KEY=VALUE",
                        help="FOR TESTS: replace the absolute target of row KEY (get_ops, put_ops, "
                             "put_mbps, get_mbps, peak_rss_mb, list_raw_ms, describe_page_ms, "
                             "describe_filter_ms, run100_ms) by VALUE, e.g. to force a miss")


def fix_arguments(args) -> None:
    from bench.ec2 import TARGETS as EC2_TARGETS  # noqa: PLC0415
    if args.quick:
        args.duration, args.large_mib, args.gib_mib, args.keys = 3, 32, 64, 1000
    args.notes = []
    args.targets = {**TARGETS, **EC2_TARGETS}
    for item in getattr(args, "test_target", []):
        key, _, value = item.partition("=")
        if key not in args.targets or not value:
            raise SystemExit(f"--test-target: unknown row {key!r} (one of {', '.join(args.targets)})")
        args.targets[key] = float(value)
    args.why_data = Why(enabled=getattr(args, "why", False),
                        profiles_dir=getattr(args, "why_profiles", "") or "")


def run(args) -> tuple[list[Row], list[str]]:
    """Measure every server in turn (one at a time: they share the machine's cores)."""
    workdir = tempfile.mkdtemp(prefix="bench-files-")
    try:
        files = {"large": make_file(workdir, args.large_mib << 20),
                 "gib": make_file(workdir, args.gib_mib << 20)}
        results: dict[str, dict[str, float]] = {}
        for start, small_only in peers_wanted(args):
            peer = start()
            try:
                print(f"   s3: measuring {peer.name} ...", flush=True)
                measure(peer, args, files, small_only, results.setdefault(peer.name, {}))
            except Exception as exc:  # noqa: BLE001 (a peer that fails is reported, not fatal)
                args.notes.append(f"{peer.name}: failed: {exc}")
            finally:
                peer.stop()
        return rows(results, args), list(results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    fix_arguments(args)
    table, servers = run(args)
    print(render(table, servers, args.notes))
    if args.why_data.enabled:
        print(explain(table, args.why_data))


if __name__ == "__main__":
    main()
