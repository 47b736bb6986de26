"""The conformance suite against a Nimbo it starts itself: every scenario must pass, every
response must validate against botocore's shapes and AWS's wire format."""
import json
import os
import re
import subprocess
import sys

from tests.conftest import REPO

_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d ")     # a new line of the server's log


def _server_errors(tmp_path) -> str:
    """What the started server logged as errors (its data directory is kept under tmp_path)."""
    found = []
    for log in tmp_path.glob("nimbo-conformance-*/server.log"):
        in_traceback = False
        for line in log.read_text(errors="replace").splitlines():
            if _LOG_LINE.match(line):
                in_traceback = False
            elif line.startswith("Traceback"):
                in_traceback = True
            if in_traceback or " ERROR " in line:
                found.append(line)
    return "\n".join(found)[-4000:]


def test_conformance_suite_passes_against_nimbo(tmp_path):
    report = tmp_path / "matrix.json"
    run = subprocess.run([sys.executable, "-m", "conformance", "--start-nimbo", "--nimbo-arg=--backend=fake", "--nimbo-tiny-image",
                          "--keep-data", "-j", "4", "--json", str(report), "-q"], cwd=REPO, capture_output=True,
                         text=True, timeout=900, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert run.returncode == 0, (run.stdout[-6000:] + run.stderr[-3000:]
                                 + "\nthe server's errors:\n" + _server_errors(tmp_path))
    results = json.loads(report.read_text())
    summary = results["summary"]
    # s3fs is not a test dependency (its current releases pin an older botocore): its row may skip.
    assert summary["fail"] == 0 and summary["pass"] >= 80 and summary["skip"] <= 1, summary
    for service in ("sts:GetCallerIdentity", "ec2:DescribeRegions", "s3:ListBuckets", "s3:PutObject"):
        assert results["matrix"][service]["boto3"] == "PASS"
    print(run.stdout[-4000:])
