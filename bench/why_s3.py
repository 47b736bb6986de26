"""``--why`` for the S3 rows: profile passes on Nimbo after its figures are taken, each the row's
own workload again, bounded: a ``PROFILE_SECONDS`` wrk run for the 4 KiB GET and PUT, one PUT or
GET of the big object (twice: profiler off for the CPU split, on for the stages), one upload of
the RSS object (tracemalloc on), one full listing. A pass runs only for a row whose absolute
target Nimbo missed, or (the small requests) whose target is a ratio to a peer measured later.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time

from bench import s3 as s3bench
from bench import stages
from bench.peers import REPO, Peer
from bench.profile_pass import Pass, profile_pass
from bench.why import PROFILE_SECONDS, Why, cpu_per_request_line, stage_lines, thread_line

MB = 1e6


def _missed_low(result: dict, key: str, targets: dict) -> bool:
    return result.get(key) is not None and result[key] < targets[key]


def _missed_high(result: dict, key: str, targets: dict) -> bool:
    return result.get(key) is not None and result[key] > targets[key]


def _failed(why: Why, key: str, exc: Exception) -> None:
    why.add(key, [f"(the profile pass failed: {type(exc).__name__}: {exc})"])


# -- 4 KiB GET and PUT ---------------------------------------------------------------------------

def after_small(peer: Peer, bucket: str, urls: dict, args, result: dict) -> None:
    why: Why = args.why_data
    cores = os.cpu_count() or 1
    seconds = max(1, min(PROFILE_SECONDS, args.duration))
    for key, workload, lua in (("get_ops", "get", s3bench.LUA_GET), ("put_ops", "put", s3bench.LUA_PUT)):
        why.later[key] = lambda w, workload=workload: [
            line for line in [cpu_per_request_line(w, workload, cores)] if line]
        try:
            found = profile_pass(peer, lambda lua=lua, workload=workload: s3bench.wrk(
                peer, lua, urls[workload], seconds, args.connections))
            requests = int(s3bench.last_run.get("requests", 0))
            lines = [f"profile pass ({seconds} s of wrk, {requests:,} requests, cProfile on in "
                     f"{len(found.reports)} worker(s)):"]
            threads = thread_line(found)
            if threads:
                lines.append("  " + threads)
            lines += ["  " + line for line in stage_lines(found, stages.S3_STAGES, "event loop thread")]
            why.add(key, lines + why.keep(key, found))
        except Exception as exc:  # noqa: BLE001 (a pass that fails is said, not fatal)
            _failed(why, key, exc)


# -- big PUT and GET ---------------------------------------------------------------------------

def machine_rates(size: int) -> dict[str, float]:
    """MB/s of MD5 (hashlib, one stream) and of AES-256-GCM (1 MiB pieces) over ``size`` bytes
    in this process: what one PUT's hashing and sealing cost at best on this machine."""
    block = os.urandom(1 << 20)
    pieces = max(1, size >> 20)
    started = time.perf_counter()
    digest = hashlib.md5()
    for _ in range(pieces):
        digest.update(block)
    rates = {"md5": pieces * (1 << 20) / MB / (time.perf_counter() - started)}
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        cipher, nonce = AESGCM(os.urandom(32)), os.urandom(12)
        started = time.perf_counter()
        for _ in range(pieces):
            cipher.encrypt(nonce, block, None)
        rates["aes"] = pieces * (1 << 20) / MB / (time.perf_counter() - started)
    except ImportError:
        pass
    return rates


def _curl(direction: str, url: str, source: str) -> None:
    command = (["curl", "-sf", "-o", "/dev/null", "-T", source, "-H", "Expect:", url] if direction == "put"
               else ["curl", "-sf", "-o", "/dev/null", url])
    subprocess.run(command, check=True, timeout=600)


def large_pass(peer: Peer, bucket: str, source: str, size: int, direction: str, args, result: dict) -> list[str]:
    client = s3bench.client(peer)
    operation = "put_object" if direction == "put" else "get_object"
    url = client.generate_presigned_url(operation, {"Bucket": bucket, "Key": "large"}, ExpiresIn=3600)
    if direction == "get":    # the object the measured GETs read (the last PUT may have replaced it)
        _curl("put", client.generate_presigned_url("put_object", {"Bucket": bucket, "Key": "large"},
                                                   ExpiresIn=3600), source)
    rates = machine_rates(size)
    sealed = client.head_object(Bucket=bucket, Key="large").get("ServerSideEncryption")
    mb = size / MB
    key = f"{direction}_mbps"
    lines = [f"{result[key]:,.0f} MB/s measured; on this machine (same run) "
             + (f"the data disk's write+fsync gives {result['disk_mbps']:,.0f} MB/s, "
                if direction == "put" and result.get("disk_mbps") else "")
             + (f"MD5 alone {rates['md5']:,.0f} MB/s (hashlib, one stream: the bound of one PUT), "
                if direction == "put" else "")
             + (f"AES-256-GCM alone {rates['aes']:,.0f} MB/s" if "aes" in rates else "")
             + (f"; the object is sealed ({sealed})" if sealed else "; the object is stored in plaintext")]
    # /proc counts CPU in clock ticks (10 ms): enough transfers for about a second, at most 5
    rounds = max(1, min(5, math.ceil(1.0 / (mb / max(result[key], 1.0)))))
    plain: Pass = profile_pass(peer, lambda: [_curl(direction, url, source) for _ in range(rounds)],
                               profile=False)
    cpu = plain.cpu
    mb *= rounds
    if cpu.wall > 0:
        lines.append(f"{rounds} more {direction.upper()}{'s' if rounds > 1 else ''}, profiler off: "
                     f"{mb / cpu.wall:,.0f} MB/s; server CPU "
                     f"{cpu.server / mb * 1e3:.2f} ms/MB (user {cpu.server_user / mb * 1e3:.2f}, kernel "
                     f"{cpu.server_system / mb * 1e3:.2f}) = {cpu.server / cpu.wall:.2f} cores busy; "
                     f"curl {cpu.client / mb * 1e3:.2f} ms/MB")
        threads = thread_line(plain, per=mb, unit="MB")
        if threads:
            lines.append("  " + threads)
        parts = []
        rest = cpu.server_user / mb * 1e3
        if direction == "put":
            parts.append(f"MD5 {1e3 / rates['md5']:.2f}")
            rest -= 1e3 / rates["md5"]
        if sealed and "aes" in rates:
            parts.append(f"AES-GCM {1e3 / rates['aes']:.2f}")
            rest -= 1e3 / rates["aes"]
        parts.append(f"kernel (copies, syscalls) {cpu.server_system / mb * 1e3:.2f}")
        parts.append(f"the rest of the user time (Python, copies) {max(rest, 0.0):.2f}")
        lines.append("  ms/MB by this machine's MD5/AES rates and the measured split: " + ", ".join(parts))
    profiled = profile_pass(peer, lambda: _curl(direction, url, source))
    lines += ["  " + line for line in stage_lines(profiled, stages.S3_STAGES,
                                                  f"event loop thread, one profiled {direction.upper()}")]
    return lines + args.why_data.keep(key, profiled)


# -- peak RSS of the upload --------------------------------------------------------------------

def _short(site: str) -> str:
    """'/…/site-packages/aiohttp/streams.py:123' -> 'aiohttp/streams.py:123'."""
    filename, _, line = site.rpartition(":")
    return f"{stages.where((filename, 0, '')).rstrip(':')}:{line}"


def _status_kib(pid: int, name: str) -> int:
    return Peer._status_kib(pid, name)


def _rollup(pid: int) -> dict[str, int]:
    """Rss_Anon / Rss_File (KiB) from /proc/<pid>/smaps_rollup."""
    found = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Anonymous", "Pss_Anon", "Pss_File", "Shared_Clean", "Private_Dirty"):
                    found[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


IMPORT_COSTS = r"""
import builtins, json, os, sys, sysconfig
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE
stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
repo = os.path.realpath(sys.argv[1])
start = rss()
sizes, seen, stack = {}, set(), []
original = builtins.__import__
def tracked(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.partition(".")[0] if level == 0 else ""
    if not top or top in sys.modules or top in seen:
        return original(name, globals, locals, fromlist, level)
    seen.add(top)
    before = rss()
    stack.append(0)
    try:
        return original(name, globals, locals, fromlist, level)
    finally:
        nested = stack.pop()
        grown = rss() - before
        path = os.path.realpath(getattr(sys.modules.get(top), "__file__", None) or "")
        if "site-packages" + os.sep in path:
            group = top
        elif path.startswith(repo + os.sep):
            group = "nimbo's modules"
        else:
            group = "standard library"
        sizes[group] = sizes.get(group, 0) + grown - nested
        if stack:
            stack[-1] += grown
builtins.__import__ = tracked
try:
    from gateway import workers
    preload = workers._preload
except (ImportError, AttributeError):
    def preload():
        from gateway import app
preload()
builtins.__import__ = original
total = rss()
print(json.dumps({"start": start, "rss": total, "imports": sizes,
                  "other": total - start - sum(sizes.values())}))
"""


def import_costs(timeout: float = 60) -> dict:
    """What the application's start costs in memory: a fresh interpreter runs the workers'
    preload (``gateway.workers._preload``, else ``import gateway.app``), noting the RSS growth of
    each top-level package's first import (third-party packages by name, the standard library
    and Nimbo's modules together; an import nested in another counts for itself only), and
    what the preload grew by beyond its imports. A few seconds: no tracing."""
    out = subprocess.run([sys.executable, "-c", IMPORT_COSTS, REPO], cwd=REPO, capture_output=True,
                         text=True, timeout=timeout, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_pass(peer: Peer, bucket: str, source: str, size_mib: int, result: dict) -> list[str]:
    client = s3bench.client(peer)
    url = client.generate_presigned_url("put_object", {"Bucket": bucket, "Key": "why-gib"}, ExpiresIn=3600)
    pids = [p for p in peer.processes() if p != peer.pid] or [peer.pid]
    idle = {pid: (_status_kib(pid, "VmRSS:"), _rollup(pid)) for pid in pids}
    peer.reset_peak()
    found = profile_pass(peer, lambda: _curl("put", url, source), profile=False, tracemalloc=True)
    client.delete_object(Bucket=bucket, Key="why-gib")
    peaks = {pid: _status_kib(pid, "VmHWM:") for pid in pids}
    worker = max(peaks, key=peaks.get)
    rss, rollup = idle[worker]
    lines = [f"the worker that peaks (pid {worker}) held {rss / 1024:,.0f} MB before the upload "
             f"({rollup.get('Anonymous', 0) / 1024:,.0f} MB anonymous: heap and Python objects, the rest "
             f"file-backed code and libraries); measured peak {result['peak_rss_mb']:,.0f} MB, so the "
             f"upload added about {result['peak_rss_mb'] - rss * 1.024 / 1000:,.0f} MB"]
    report = next((r for r in found.reports if r.get("pid") == worker),
                  max(found.reports, key=lambda r: r.get("traced_peak", 0), default=None))
    if report and "traced_peak" in report:
        top = ", ".join(f"{_short(site)} {size / MB:.1f} MB" for site, size in report.get("traced_top", [])[:3])
        lines.append(f"again with tracemalloc on ({size_mib} MiB upload): peak {peaks[worker] / 1024:,.0f} MB "
                     f"RSS; Python's allocations peaked at {report['traced_peak'] / MB:.1f} MB above idle"
                     + (f"; largest sites at {report.get('snapshot_bytes', 0) / MB:.1f} MB traced: {top}"
                        if top else ""))
    try:
        costs = import_costs()
        groups = sorted(costs["imports"].items(), key=lambda kv: -kv[1])[:6]
        lines.append(f"idle contents: a fresh interpreter ({costs['start'] / MB:,.0f} MB) running the workers' "
                     f"preload reaches {costs['rss'] / MB:,.0f} MB RSS; its growth by first import: "
                     + " · ".join(f"{name} {size / MB:.1f} MB" for name, size in groups)
                     + f"; beyond the imports {costs['other'] / MB:.1f} MB")
    except (subprocess.SubprocessError, OSError, ValueError, KeyError) as exc:
        lines.append(f"(the import-cost measure failed: {exc})")
    return lines


# -- the listing -------------------------------------------------------------------------------

def listing_pass(peer: Peer, bucket: str, keys: int, why: Why) -> list[str]:
    found = profile_pass(peer, lambda: s3bench.listing_raw(peer, bucket, keys))
    pages = max(1, -(-keys // 1000))
    lines = [f"one profiled listing ({pages} page{'s' if pages > 1 else ''}): server CPU {found.cpu.server / pages * 1e3:,.1f} ms/page "
             f"(profiler on)"]
    return (lines + ["  " + line for line in stage_lines(found, stages.S3_STAGES, "event loop thread")]
            + why.keep("list_raw_ms", found))


def after_large(peer: Peer, bucket: str, files: dict, args, result: dict) -> None:
    why: Why = args.why_data
    targets = args.targets
    plan = []
    if _missed_low(result, "put_mbps", targets):
        plan.append(("put_mbps", lambda: large_pass(peer, bucket, files["large"], args.large_mib << 20, "put",
                                                    args, result)))
    if _missed_low(result, "get_mbps", targets):
        plan.append(("get_mbps", lambda: large_pass(peer, bucket, files["large"], args.large_mib << 20, "get",
                                                    args, result)))
    if _missed_high(result, "peak_rss_mb", targets):
        plan.append(("peak_rss_mb", lambda: memory_pass(peer, bucket, files["gib"], args.gib_mib, result)))
    if _missed_high(result, "list_raw_ms", targets):
        plan.append(("list_raw_ms", lambda: listing_pass(peer, bucket, args.keys, why)))
    for key, run in plan:
        try:
            why.add(key, run())
        except Exception as exc:  # noqa: BLE001 (a pass that fails is said, not fatal)
            _failed(why, key, exc)
