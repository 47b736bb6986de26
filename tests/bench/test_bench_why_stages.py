"""``python -m bench --why``: the grouping of a profile into stages and the why-section's shape,
on synthetic profiles (no server): what the printed shares are made of must be right."""
from __future__ import annotations

import marshal
import os
import pstats

import pytest

from bench import stages
from bench.peers import REPO
from bench.profile_pass import CpuWindow, Pass
from bench.table import Row, at_least, at_most, misses
from bench.why import Why, cpu_per_request_line, explain, stage_lines

AIOHTTP = ("/venv/lib/python3.11/site-packages/aiohttp/web_protocol.py", 1, "start")
SIGV4 = (os.path.join(REPO, "gateway/auth/sigv4.py"), 10, "authenticate")
HMAC = ("~", 0, "<built-in method _hashlib.hmac_digest>")
DICT_GET = ("~", 0, "<method 'get' of 'dict' objects>")
HANDLER = (os.path.join(REPO, "s3_api/objects.py"), 5, "get_object")
WALK = (os.path.join(REPO, "nowhere/helpers.py"), 1, "walk")
LEN = ("~", 0, "<built-in method builtins.len>")
PROBE = (os.path.join(REPO, "bench/probe.py"), 80, "_arm")


def synthetic() -> dict:
    """func -> (cc, nc, tt, ct, callers{caller: (cc, nc, tt, ct)}), as pstats holds them."""
    return {
        AIOHTTP: (1, 1, 1.0, 5.0, {}),
        SIGV4: (10, 10, 0.5, 3.0, {AIOHTTP: (10, 10, 0.5, 3.0)}),
        HMAC: (20, 20, 2.0, 2.0, {SIGV4: (20, 20, 2.0, 2.0)}),
        # dict.get: 0.3 s under the signature check, 0.1 s under the S3 handler
        DICT_GET: (40, 40, 0.4, 0.4, {SIGV4: (30, 30, 0.3, 0.3), HANDLER: (10, 10, 0.1, 0.1)}),
        HANDLER: (10, 10, 0.4, 1.0, {AIOHTTP: (10, 10, 0.4, 1.0)}),
        # an unmatched recursive helper under the handler: its time is the handler's
        WALK: (5, 2, 0.6, 0.6, {HANDLER: (2, 2, 0.2, 0.6), WALK: (3, 3, 0.4, 0.4)}),
        LEN: (7, 7, 0.2, 0.2, {}),              # no caller, no stage: "other"
        PROBE: (1, 1, 0.05, 0.05, {}),          # the profiler's own switching: not counted
    }


def test_where_names_paths_relative_to_their_tree():
    assert stages.where(SIGV4) == "gateway/auth/sigv4.py:authenticate"
    assert stages.where(AIOHTTP) == "aiohttp/web_protocol.py:start"
    assert stages.where(HMAC) == "~:<built-in method _hashlib.hmac_digest>"


def test_own_time_goes_to_the_nearest_matching_caller():
    seconds = stages.attribute(synthetic(), stages.S3_STAGES)
    assert seconds == pytest.approx({
        "aiohttp / HTTP": 1.0,
        "signature check": 0.5 + 2.0 + 0.3,     # its own, hmac's, 3/4 of dict.get's
        "S3 handler": 0.4 + 0.1 + 0.6,          # its own, 1/4 of dict.get's, the recursive helper's
        "other": 0.2,
    })
    parts = stages.shares(seconds)
    assert parts[0][0] == "signature check"
    assert sum(share for _, share in parts) == pytest.approx(1.0)


def test_a_stage_the_profile_lacks_is_absent_not_an_error():
    table = [("never seen", r"^no/such/module\.py"), *stages.S3_STAGES]
    seconds = stages.attribute(synthetic(), table)
    assert "never seen" not in seconds
    assert stages.attribute({}, table) == {}
    assert stages.format_shares([]) == ""


def test_a_real_pstats_file_groups_the_same(tmp_path):
    path = tmp_path / "synthetic.prof"
    with open(path, "wb") as fh:
        marshal.dump(synthetic(), fh)
    loaded = pstats.Stats(str(path))
    assert stages.attribute(loaded.stats, stages.S3_STAGES)["signature check"] == pytest.approx(2.8)


def test_format_shares_shows_the_largest_and_sums_the_rest():
    text = stages.format_shares([("a", 0.5), ("b", 0.3), ("c", 0.15), ("d", 0.05)], top=2)
    assert text == "a 50% · b 30% · rest 20%"


def test_stage_lines_print_the_stages_and_the_collector(tmp_path):
    path = tmp_path / "synthetic.prof"
    with open(path, "wb") as fh:
        marshal.dump(synthetic(), fh)
    found = Pass(stats=pstats.Stats(str(path)),
                 reports=[{"pid": 1, "threads": {"main (event loop)": 2.0}, "gc_seconds": 0.5, "gc_count": 3}])
    lines = stage_lines(found, stages.S3_STAGES, "event loop thread")
    # of 5.1 s: 2.8, 1.1, 1.0 and 0.2
    assert lines[0] == "event loop thread: signature check 55% · S3 handler 22% · aiohttp / HTTP 20% · other 4%"
    assert lines[1] == "  hottest functions (own time): ~:<built-in method _hashlib.hmac_digest> 39%, aiohttp/web_protocol.py:start 20%"
    assert "garbage collection: 500 ms in 3 collections = 25% of the event loop thread's CPU" in lines[-1]


def test_explain_prints_only_missed_rows_with_their_measured_lines():
    why = Why(enabled=True)
    why.record_load("nimbo", "get", CpuWindow(wall=2.0, server_user=1.5, server_system=0.5, client=0.4), 10_000)
    why.record_load("null", "get", CpuWindow(wall=2.0, server_user=0.4, server_system=0.1, client=0.6), 25_000)
    why.later["get_ops"] = lambda w: [cpu_per_request_line(w, "get", 2)]
    why.add("get_ops", ["profile pass: stages ..."])
    why.add("put_ops", ["never printed: the row meets its target"])
    rows = [Row("4 KiB GET req/s", {"nimbo": 5000.0}, [at_least(12000)], key="get_ops"),
            Row("4 KiB PUT req/s", {"nimbo": 6000.0}, [at_least(5000)], key="put_ops"),
            Row("peak RSS, MB", {"nimbo": 150.0}, [at_most(100)], key="peak_rss_mb")]
    assert misses(rows[0]) == [">= 12,000 (58% short)"]
    assert misses(rows[1]) == []
    text = explain(rows, why)
    assert "why 4 KiB GET req/s: misses >= 12,000 (58% short)" in text
    # 2.0 CPU seconds / 10,000 requests; the null server's 0.5 / 25,000
    assert "server CPU 200 µs/request (null 20 µs)" in text
    assert "used 1.00 of 2 cores (25% of it in the kernel), the load generator 0.20" in text
    assert "profile pass: stages ..." in text
    assert "never printed" not in text
    assert "why peak RSS, MB: misses < 100 (1.5x over)\n  (no profile for this row in this run)" in text
    assert explain(rows[1:2], why) == ""
