"""Where a profile's time goes, in readable stages: a cProfile (``pstats``) grouped by module and
function-name patterns, so that ``python -m bench --why`` can say "signature check 21%" rather
than list 700 functions.

Each function's own time (``tottime``) goes to the first stage of the table its
``path:function`` matches (``path`` is relative to Nimbo's tree, or to site-packages, or to the
standard library; a C function's path is ``~``). A function that matches no stage (a builtin
such as ``dict.get``, a helper of the standard library) hands its own time to its callers, in
proportion to the time it spent under each (the call graph's edges), until a caller matches: so
``hmac.new`` called by the signature check counts as the signature check, and the shares add up
to 100 % of the profiled time. What reaches a function with no caller unmatched is "other".

The tables name modules, not single functions, so that a renamed function still lands in its
stage; a stage that a profile does not show is simply absent (never an error).
"""
from __future__ import annotations

import os
import re
import sys
import sysconfig
from typing import Iterable

from bench.peers import REPO

Stage = tuple[str, str]    # (name, regular expression over "path:function")

# The small S3 requests (4 KiB GET and PUT) and the big ones: first match wins.
S3_STAGES: list[Stage] = [
    ("response writing (socket send)", r"^aiohttp/http_writer\.py|posix\.(write|writev|send)\b"),
    ("signature check", r"^gateway/auth/"),
    ("fsync", r"posix\.f(data)?sync\b"),
    ("SQLite metadata", r"sqlite3|^aiosqlite/|^storage/(db|postgres|sql_dialect|metadata|object_rows|"
                        r"object_versions|object_batch|accounts|completed_uploads)\.py"),
    ("metering", r"^gateway/metering\.py|^billing/|^storage/usage\.py"),
    ("encryption (AES-GCM)", r"^storage/(sealed|key_wrap|master_key|kms_keys)\.py|^cryptography/|"
                             r"cryptography\.hazmat|^s3_api/(sealed_io|sealed_reads|encryption|"
                             r"object_encryption)\.py"),
    ("MD5 / checksums", r"^s3_api/(checksums|payload)\.py|_hashlib\.HASH|openssl_md5|crc32"),
    ("blob files", r"^storage/(blobs|object_files|space)\.py|posix\.(statvfs|open|rename|replace|unlink)\b"),
    ("hand-off to threads", r"SimpleQueue|^concurrent/futures/|^threading\.py|_thread\.lock"),
    ("S3 handler", r"^s3_api/"),
    ("storage (other)", r"^storage/"),
    ("routing / request decoding", r"^gateway/(dispatch|app|context|services|registry|connections|"
                                   r"connection_limits|leader|accounts)\.py|"
                                   r"^gateway/protocols/\w+\.py:decode|^urllib/parse\.py"),
    ("XML / response encoding", r"^gateway/protocols/|^<xml"),
    ("gateway (other)", r"^gateway/"),
    ("aiohttp / HTTP", r"^aiohttp/|^multidict/|^yarl/|^http/"),
    ("event loop", r"^asyncio/|uvloop"),
]

# An EC2 query (DescribeInstances, RunInstances): the handler's own parts first.
EC2_STAGES: list[Stage] = [
    ("XML encoding", r"^gateway/protocols/|^<xml|^xml/|ElementTree|^lxml/"),
    ("tags", r"^ec2_api/(tag_store|tags)\.py|^ec2_api/\w+\.py:\w*tag"),
    ("network details", r"^ec2_api/(instance_network|network_\w+|interface_hotplug|subnets|vpcs?|"
                        r"security_group\w*|addresses|imds_network)\.py"),
    ("filters", r"^ec2_api/filters\.py"),
    ("rows (SQL)", r"^ec2_api/(instance_query|instance_store|ebs_store)\.py|sqlite3|^aiosqlite/|^storage/"),
    ("dict building", r"^ec2_api/"),
    ("VM driver (fake)", r"^backend/"),
    ("signature check", r"^gateway/auth/"),
    ("relay to the leader", r"^gateway/(leader|cluster_relay|internal)\.py"),
    ("gateway / routing", r"^gateway/"),
    ("aiohttp / HTTP", r"^aiohttp/|^multidict/|^yarl/|^http/"),
    ("event loop", r"^asyncio/|uvloop"),
]

_PROBE = re.compile(r"^bench/probe\.py:")     # the profiler's own switching, not the server's time

_PREFIXES = sorted({p for p in (REPO, sysconfig.get_paths().get("purelib"),
                                sysconfig.get_paths().get("platlib"),
                                sysconfig.get_paths().get("stdlib"), os.path.dirname(os.__file__))
                    if p}, key=len, reverse=True)


def where(func: tuple[str, int, str]) -> str:
    """``path:function`` of a pstats key, the path relative to the tree it comes from."""
    filename, _, name = func
    path = filename
    for prefix in _PREFIXES:
        if filename.startswith(prefix.rstrip("/") + "/"):
            path = filename[len(prefix.rstrip("/")) + 1:]
            break
    else:
        marker = "site-packages/"
        if marker in filename:
            path = filename.split(marker, 1)[1]
    return f"{path}:{name}"


def _matcher(table: Iterable[Stage]):
    compiled = [(name, re.compile(pattern)) for name, pattern in table]

    def match(func) -> str | None:
        text = where(func)
        for name, pattern in compiled:
            if pattern.search(text):
                return name
        return None
    return match


def attribute(stats: dict, table: Iterable[Stage]) -> dict[str, float]:
    """Seconds of own time per stage (``stats``: a ``pstats.Stats().stats`` dict:
    func -> (cc, nc, tt, ct, callers)); they sum to the profile's total own time."""
    match = _matcher(table)
    memo: dict = {}
    busy: set = set()

    def resolve(func) -> dict[str, float]:
        if func in memo:
            return memo[func]
        stage = match(func)
        if stage is not None:
            memo[func] = {stage: 1.0}
            return memo[func]
        entry = stats.get(func)
        callers = {c: e for c, e in (entry[4] if entry else {}).items() if c != func and c not in busy}
        if not callers:
            result = {"other": 1.0}
        else:
            busy.add(func)
            weights = {c: (e[2] if len(e) > 2 else 0.0) for c, e in callers.items()}
            if sum(weights.values()) <= 0:
                weights = {c: float(e[1] if len(e) > 1 else 1) for c, e in callers.items()}
            total = sum(weights.values()) or 1.0
            result = {}
            for caller, weight in weights.items():
                for stage, share in resolve(caller).items():
                    result[stage] = result.get(stage, 0.0) + share * weight / total
            busy.discard(func)
        memo[func] = result
        return result

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        seconds: dict[str, float] = {}
        for func, entry in stats.items():
            own = entry[2]
            if own <= 0 or _PROBE.match(where(func)):
                continue
            for stage, share in resolve(func).items():
                seconds[stage] = seconds.get(stage, 0.0) + own * share
    finally:
        sys.setrecursionlimit(limit)
    return seconds


def shares(seconds: dict[str, float]) -> list[tuple[str, float]]:
    """(stage, fraction of the total), largest first."""
    total = sum(seconds.values())
    if total <= 0:
        return []
    return sorted(((name, value / total) for name, value in seconds.items()), key=lambda x: -x[1])


def format_shares(parts: list[tuple[str, float]], top: int = 6, min_share: float = 0.02) -> str:
    """'aiohttp / HTTP 24% · signature check 21% · ... · rest 9%': the ``top`` largest stages
    (each at least ``min_share``), the remainder summed as 'rest'."""
    if not parts:
        return ""
    shown = [(n, s) for n, s in parts[:top] if s >= min_share]
    rest = 1.0 - sum(s for _, s in shown)
    text = " · ".join(f"{n} {s * 100:.0f}%" for n, s in shown)
    if rest >= 0.005:
        text += f"{' · ' if text else ''}rest {rest * 100:.0f}%"
    return text


def top_functions(stats: dict, count: int = 3, own: bool = True) -> list[tuple[str, float]]:
    """The ``count`` functions with the most own (or cumulative) time, as (path:function, share
    of the total own time)."""
    mine = {f: e for f, e in stats.items() if not _PROBE.match(where(f))}
    total = sum(e[2] for e in mine.values()) or 1.0
    index = 2 if own else 3
    best = sorted(mine.items(), key=lambda kv: -kv[1][index])[:count]
    return [(where(func), entry[index] / total) for func, entry in best]
