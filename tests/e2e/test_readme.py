"""The README works literally (issue 9 item 22): its shell blocks hold commands only, the `aws` it
uses honours AWS_ENDPOINT_URL (the virtual environment's aws-cli v1, first on the PATH), `nimbo`
runs bare, periods are current, the CUR example is a valid report definition. The first-use,
S3 and billing blocks are run as written against a live server."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import botocore.session
import botocore.validate
import pytest

from tests.conftest import REPO, NimboServer

with open(os.path.join(REPO, "README.md")) as _fh:
    README = _fh.read()

BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
SHELL = [body for lang, body in BLOCKS if lang == "sh"]
BUILTINS = {"export", "eval", "cd", "until", "for", "do", "done", "if", "then", "fi", "echo", "printf"}


def _commands(block: str):
    """The commands of a shell block: one per line, not its continuation lines, comments or the
    bodies of here-documents."""
    continued, heredoc_end = False, None
    for line in block.splitlines():
        text = line.strip()
        if heredoc_end is not None:
            heredoc_end = None if text == heredoc_end else heredoc_end
            continue
        if not text or text.startswith("#"):
            continued = False
            continue
        if not continued:
            yield text
        continued = text.endswith("\\")
        opened = re.search(r"<<-?\s*(['\"]?)([A-Za-z_]+)\1", text)
        heredoc_end = opened.group(2) if opened else None


def test_shell_blocks_hold_commands_only():
    assert SHELL
    for block in SHELL:
        done = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
        assert done.returncode == 0, (block, done.stderr)
        for command in _commands(block):
            word = command.split()[0]
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):   # name=$(...)
                continue
            assert (word in BUILTINS or word in ("nimbo", "aws", "make")
                    or shutil.which(word)), f"not a command: {command!r}"


def test_the_documented_aws_honours_the_endpoint():
    first_aws = min(i for i, block in enumerate(SHELL) if re.search(r"^aws ", block, re.M))
    before = "\n".join(SHELL[:first_aws + 1])
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in before
    assert "AWS_ENDPOINT_URL" in README and "--endpoint-url" in README and "2.9" in README
    with open(os.path.join(REPO, "pyproject.toml")) as fh:
        dependencies = fh.read().split("[project.optional-dependencies]")[0]
    assert re.search(r'^\s*"awscli', dependencies, re.M), "make run must install the venv's aws-cli"


def test_periods_are_current_and_make_test_args_do_not_repeat_q():
    assert not re.search(r"--period \d{4}-\d{2}", README)
    assert not re.search(r"Start=\d{4}-\d{2}-\d{2}", README)
    for args in re.findall(r'make test ARGS="([^"]*)"', README):
        assert "-q" not in args.split()
    assert "already passes `-q`" in README


def test_the_report_json_example_is_a_valid_report_definition():
    (example,) = [json.loads(body) for lang, body in BLOCKS if lang == "json" and "ReportName" in body]
    shape = botocore.session.get_session().get_service_model("cur").operation_model(
        "PutReportDefinition").input_shape
    report = botocore.validate.ParamValidator().validate({"ReportDefinition": example}, shape)
    assert not report.has_errors(), report.generate_report()
    assert "file://report.json" in README


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


@pytest.mark.skipif(shutil.which("date") is None, reason="needs date")
def test_first_use_s3_and_billing_blocks_run_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("NIMBO_RUNTIME_DIR", str(tmp_path / "runtime"))
    server = NimboServer(str(tmp_path / "server-data"), extra_args=["--backend", "fake"]).start()
    try:
        work = tmp_path / "checkout"
        venv_bin = work / ".venv" / "bin"          # what `make run` leaves: nimbo and aws
        venv_bin.mkdir(parents=True)
        shims = {"nimbo": f'PYTHONPATH={REPO} exec {sys.executable} -m gateway.cli "$@"',
                 "aws": f'exec {sys.executable} -m awscli "$@"'}
        for name, line in shims.items():
            path = venv_bin / name
            path.write_text(f"#!/bin/sh\n{line}\n")
            path.chmod(path.stat().st_mode | stat.S_IEXEC)
        using = _sh_blocks(_section("Using it"))[-1]
        script = "set -e\n" + using + "\n".join(_sh_blocks(_section("S3"))) + "\n" + \
            _sh_blocks(_section("Billing"))[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", HOME=str(tmp_path))
        env.pop("NIMBO_DATA_DIR", None)
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, text=True, capture_output=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert '"Account"' in done.stdout and "us-east-1" in done.stdout
        assert "Nimbo bill for" in done.stdout and "ResultsByTime" in done.stdout
        assert "X-Amz-Signature" in done.stdout or "Signature=" in done.stdout
    finally:
        server.stop()
