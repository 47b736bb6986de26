"""Running aws-cli v1 (the one installed next to ``sys.executable``) as a subprocess."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore import xform_name

from conformance.errors import AwsCliError

ERROR_LINE_RE = re.compile(r"An error occurred \(([^)]*)\)(?: when calling the (\w+) operation)?"
                           r"(?:[^:]*: ?(.*))?")
# aws-cli's command names that are not the botocore service name
CLI_SERVICE_NAMES = {"s3api": "s3"}
HIGH_LEVEL = {"s3", "configure", "help"}


@dataclass
class AwsResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    json: Any = None
    operation: str | None = None

    def __getitem__(self, key):
        return self.json[key]

    def get(self, key, default=None):
        return (self.json or {}).get(key, default)


def aws_command() -> list[str] | None:
    """``python -m awscli`` for this interpreter, or the ``aws`` next to it; None if neither."""
    if importlib.util.find_spec("awscli") is not None:
        return [sys.executable, "-m", "awscli"]
    sibling = os.path.join(os.path.dirname(sys.executable), "aws")
    if os.access(sibling, os.X_OK):
        return [sibling]
    found = shutil.which("aws")
    return [found] if found else None


_OPERATIONS: dict[str, dict[str, str]] = {}


def resolve_operation(args: list[str]) -> tuple[str, Any] | None:
    """(botocore service name, OperationModel) for ``aws SERVICE COMMAND ...``, or None for the
    high-level commands (``aws s3 cp``) and anything that is not one API call."""
    if len(args) < 2 or args[0] in HIGH_LEVEL or args[0].startswith("-"):
        return None
    service = CLI_SERVICE_NAMES.get(args[0], args[0])
    session = _session()
    try:
        model = session.get_service_model(service)
    except Exception:  # noqa: BLE001 - an unknown service: no shape to validate against
        return None
    if service not in _OPERATIONS:
        _OPERATIONS[service] = {xform_name(op, "-"): op for op in model.operation_names}
    op = _OPERATIONS[service].get(args[1])
    return (service, model.operation_model(op)) if op else None


_SESSION = None


def _session():
    global _SESSION
    if _SESSION is None:
        _SESSION = botocore.session.get_session()
    return _SESSION


def clean_env(access_key: str, secret_key: str, region: str, workdir: str,
              session_token: str | None = None, retries: int = 1) -> dict[str, str]:
    """An environment with these credentials and nothing of the user's AWS configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.path.join(workdir, ".aws-config-none"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(workdir, ".aws-credentials-none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": str(max(1, retries)),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONWARNINGS": "ignore",
    })
    if session_token:
        env["AWS_SESSION_TOKEN"] = session_token
    return env


def run(command: list[str], args: list[str], endpoint: str, env: dict[str, str], cwd: str,
        timeout: float, verify: bool = True, input_text: str | None = None) -> AwsResult:
    """Run ``aws --endpoint-url ENDPOINT --output json ARGS``; raise AwsCliError on failure."""
    flags = ["--endpoint-url", endpoint, "--output", "json"]
    if not verify:
        flags.append("--no-verify-ssl")
    proc = subprocess.run([*command, *flags, *args], cwd=cwd, env=env, capture_output=True,
                          timeout=timeout, input=input_text, text=True, encoding="utf-8",
                          errors="replace")
    result = AwsResult(list(args), proc.returncode, proc.stdout, proc.stderr)
    if proc.returncode != 0:
        code, operation, message = parse_error(proc.stderr)
        raise AwsCliError(code, message or _first_line(proc.stderr), proc.returncode,
                          proc.stderr, list(args))
    return result


def parse_error(stderr: str) -> tuple[str | None, str | None, str | None]:
    """(code, operation, message) from aws-cli's ``An error occurred (Code) when calling ...``."""
    for line in stderr.splitlines():
        match = ERROR_LINE_RE.search(line)
        if match:
            return match.group(1), match.group(2), (match.group(3) or "").strip() or line.strip()
    return None, None, None


def parse_json(text: str) -> Any:
    return json.loads(text) if text.strip() else {}


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
