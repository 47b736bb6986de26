"""What the real-client scenarios share: running a client binary in the scenario's work directory
with a clean environment, and curl with its response checked like any S3 answer."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse

from conformance import rawhttp, wire
from conformance.context import CallRecord
from conformance.errors import ScenarioFailure, Skip

CURL = "curl"
# Variables that would make a Debian /usr/bin/python3 script (aws v2, s3cmd) load our packages.
PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")


# --- running command-line clients --------------------------------------------------------------
def tool_env(ctx, **extra: str) -> dict[str, str]:
    """The environment for a client binary: nothing of the user's AWS setup (AWS_CA_BUNDLE alone
    breaks rclone on http), no Python variables, HOME in the work directory."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_", "S3CMD")) and k not in PYTHON_VARIABLES}
    home = os.path.join(ctx.workdir, ".home")
    os.makedirs(home, exist_ok=True)
    env["HOME"] = home
    env.update(extra)
    return env


def run_tool(ctx, client: str, argv: list[str], env: dict[str, str], label: str,
             check: bool = True, record: bool = True) -> subprocess.CompletedProcess:
    """Run a client; record the call; a non-zero exit fails the scenario (with ``check``)."""
    try:
        proc = subprocess.run(argv, cwd=ctx.workdir, env=env, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=ctx.run.timeout)
    except subprocess.TimeoutExpired:
        ctx.recorder.call(CallRecord(client, "s3", label, None, exit_code=None))
        raise ScenarioFailure(f"`{label}` did not finish in {ctx.run.timeout:.0f} s") from None
    if record or proc.returncode != 0:
        ctx.recorder.call(CallRecord(client, "s3", label, None, exit_code=proc.returncode))
    if check and proc.returncode != 0:
        raise ScenarioFailure(f"`{label}` exited {proc.returncode}: "
                              f"{error_lines(proc.stderr or proc.stdout)}")
    return proc


def error_lines(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    wanted = [line for line in lines if re.search(r"error|fail|denied|invalid", line, re.I)]
    out = " | ".join((wanted or lines)[-3:])
    return out[:limit] or "(no output)"


def need_binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise Skip(f"{name} is not installed")
    return path


# --- curl --------------------------------------------------------------------------------------
def _parse_header_file(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The final response's status line and headers from curl's ``-D`` dump (which holds any
    ``100 Continue`` first)."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip().startswith("HTTP/")]
    if not blocks:
        return "", []
    lines = blocks[-1].splitlines()
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return lines[0].strip(), headers


def curl(ctx, url: str, *options: str, client: str = CURL) -> rawhttp.RawResponse:
    """curl on ``url`` with ``options`` (``-T file``, ``-F ...``); any status comes back (the
    request id and, on errors, the S3 error body are checked)."""
    exe = need_binary("curl")
    n = ctx.run.next_number()
    head_file = os.path.join(ctx.workdir, f".curl-{n}.head")
    body_file = os.path.join(ctx.workdir, f".curl-{n}.body")
    argv = [exe, "-sS", "-g", "--noproxy", "*", "-D", head_file, "-o", body_file,
            "-w", "%{http_code}", *options]
    if not ctx.run.target.verify_ssl:
        argv.append("-k")
    argv.append(url)
    method = "PUT" if "-T" in options else "POST" if "-F" in options else "GET"
    path = urllib.parse.urlsplit(url).path
    label = f"curl {method} {path}"
    proc = run_tool(ctx, client, argv, tool_env(ctx), label, record=False)
    with open(head_file, encoding="latin-1") as fh:
        status_line, header_list = _parse_header_file(fh.read())
    body = b""
    if os.path.exists(body_file):
        with open(body_file, "rb") as fh:
            body = fh.read()
    status = int(proc.stdout.strip()[-3:])
    headers = dict(header_list)
    what = f"s3 {method} {path} (curl)"
    problems = wire.check_request_id("rest-xml", status, headers, body, what)
    if status >= 300:
        problems += wire.check_error_body("rest-xml", status, body, what)
    ctx.recorder.add(problems)
    ctx.recorder.call(CallRecord(client, "s3", label, status, exit_code=0))
    return rawhttp.RawResponse(status, headers, body, status_line, header_list)
