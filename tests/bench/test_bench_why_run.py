"""``python -m bench`` with ``--why`` (the default) runs end to end on a tiny subset and prints,
under the table, a why-section for the targets forced to miss (``--test-target``, for tests):
the small GET's CPU per request beside the null server's and its profile's stages, and the
DescribeInstances page's stages, every figure from that run. About 40 s; traffic on 127.0.0.1."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from bench.peers import REPO

pytestmark = [pytest.mark.bench,
              pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")]


def test_bench_explains_forced_misses(tmp_path):
    profiles = tmp_path / "profiles"
    command = [sys.executable, "-m", "bench", "--small-only", "--duration", "2", "--peers", "null",
               "--instances", "1000", "--page-instances", "1000", "--samples", "2",
               "--test-target", "get_ops=1000000000", "--test-target", "describe_page_ms=1",
               "--test-target", "run100_ms=1000000", "--why-profiles", str(profiles)]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    table, _, why = text.partition("== why:")
    assert re.search(r"4 KiB GET req/s .*>= 1,000,000,000: NO", table), text
    assert re.search(r"RunInstances of 100 .*< 1,000,000: yes", table), text

    get = re.search(r"why 4 KiB GET req/s \(16 conns\): misses >= 1,000,000,000 \(100% short\)(.*?)(?=\nwhy |\Z)",
                    why, re.S)
    assert get, text
    section = get.group(1)
    nimbo_us, null_us = re.search(r"server CPU ([\d,]+) µs/request \(null ([\d,]+) µs\)", section).groups()
    assert int(nimbo_us.replace(",", "")) > 0 and int(null_us.replace(",", "")) > 0
    assert re.search(r"profile pass \(2 s of wrk, [\d,]+ requests, cProfile on in \d worker", section), section
    stages_line = re.search(r"event loop thread: (.*)", section).group(1)
    shares = [int(s) for s in re.findall(r"(\d+)%", stages_line)]
    assert 95 <= sum(shares) <= 105 and "signature check" in stages_line, stages_line
    assert (profiles / "get_ops.prof").exists()

    page = re.search(r"why DescribeInstances 1,000 \(one page\), ms: misses < 1 (.*?)(?=\nwhy |\Z)", why, re.S)
    assert page, text
    assert re.search(r"2 profiled calls \(1,000 instances, [\d.]+ MB of XML each\): server CPU [\d,]+ ms a call",
                     page.group(1)), page.group(1)
    assert "XML encoding" in page.group(1)
    # a row that meets its target is not explained
    assert "why RunInstances of 100" not in why
