"""The exceptions a scenario raises or catches."""
from __future__ import annotations


class ScenarioFailure(AssertionError):
    """The endpoint did not behave as the scenario expects (raised by ``ctx.check`` and friends)."""


class Skip(Exception):
    """The scenario cannot run here (a client is missing, ...): shown as ``-`` in the matrix."""


class SetupError(Exception):
    """The suite itself could not start (no endpoint, Nimbo did not come up, ...)."""


class ServiceError(Exception):
    """An error response from the endpoint, however it was obtained (aws-cli, a raw request)."""

    def __init__(self, code: str | None, message: str | None, status: int | None, source: str):
        self.code = code
        self.message = message or ""
        self.status = status
        self.source = source
        super().__init__(f"{source}: {code or 'no error code'}"
                         f"{f' (HTTP {status})' if status else ''}: {self.message}")


class AwsCliError(ServiceError):
    """aws-cli exited non-zero; the code is parsed from its ``An error occurred (Code)`` line."""

    def __init__(self, code, message, returncode: int, stderr: str, args: list[str]):
        self.returncode = returncode
        self.stderr = stderr
        self.cli_args = args
        super().__init__(code, message, None, "aws " + " ".join(args[:2]))


class RawHTTPError(ServiceError):
    """A raw (hand-built) request got a status >= 300."""

    def __init__(self, code, message, status: int, headers: dict, body: bytes, what: str):
        self.headers = headers
        self.body = body
        super().__init__(code, message, status, what)
