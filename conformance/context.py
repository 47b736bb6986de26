"""What a scenario gets: the endpoint, clients that validate every response, and helpers.

Every boto3 client made through ``ctx.client`` (and so ``ctx.call``) has a hook on botocore's
``after-call`` event that sees the raw HTTP response and the parsed dict of *every* call, including
those boto3's transfer manager makes on its own threads. The hook records :class:`Problem`s (shape
and wire deviations, a missing request id) without raising: the scenario runs to its end and the
runner fails it if any error-level problem was recorded.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import secrets
import shutil
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import boto3
import botocore.config
import botocore.session
from botocore.exceptions import ClientError

from conformance import awscli_runner, rawhttp, wire
from conformance.errors import AwsCliError, RawHTTPError, ScenarioFailure, ServiceError, Skip
from conformance.shapes import (AWSCLI, BOTO3, ERROR, SYNTHETIC_MEMBERS, WARNING, Problem,
                                validate_output)

SERVICE_PROTOCOLS = {"s3": "rest-xml", "ec2": "ec2", "sts": "query"}


@dataclass
class Target:
    """The endpoint under test and the credentials to use on it."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    session_token: str | None = None
    verify_ssl: bool = True


@dataclass
class RunState:
    """Shared by every scenario of one run: a boto3 session, the name prefix, options."""

    target: Target
    prefix: str = field(default_factory=lambda: "nimbo-conf-" + secrets.token_hex(3))
    retries: int = 1
    timeout: float = 300.0
    aws_command: list[str] | None = field(default_factory=awscli_runner.aws_command)
    counter: Iterable[int] = field(default_factory=itertools.count)
    _session: boto3.Session | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def make_client(self, service: str, **kwargs: Any):
        """A boto3 client from the run's one session (sessions are not thread-safe: locked)."""
        with self._lock:
            if self._session is None:
                self._session = boto3.Session()
            return self._session.client(service, **kwargs)

    def service_model(self, service: str):
        with self._lock:
            return _service_model(service)

    def next_number(self) -> int:
        with self._lock:
            return next(self.counter)


@dataclass
class CallRecord:
    client: str
    service: str
    operation: str
    status: int | None                 # the HTTP status (None where the client hides it)
    request_id: str | None = None
    exit_code: int | None = None       # aws-cli's


class Recorder:
    """Problems and calls of one scenario (thread-safe: the transfer manager uses threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.problems: list[Problem] = []
        self.calls: list[CallRecord] = []
        self.notes: list[str] = []

    def add(self, problems: Iterable[Problem]) -> None:
        with self._lock:
            self.problems.extend(problems)

    def call(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)


class ExpectedError:
    """What ``with ctx.expect_error(...) as caught`` holds afterwards: the error's code, status,
    message and the exception itself."""

    def __init__(self, codes: tuple[str, ...], status: int | None):
        self.codes = codes
        self.status = status
        self.code: str | None = None
        self.http_status: int | None = None
        self.message: str = ""
        self.exception: BaseException | None = None


class Context:
    """A scenario's view of the endpoint. See the module docstring and ``conformance/README``."""

    def __init__(self, run: RunState, recorder: Recorder | None = None,
                 access_key: str | None = None, secret_key: str | None = None,
                 workdir: str | None = None, cleanups: list | None = None):
        self.run = run
        self.recorder = recorder or Recorder()
        self.access_key = access_key if access_key is not None else run.target.access_key
        self.secret_key = secret_key if secret_key is not None else run.target.secret_key
        self._workdir = workdir
        self._cleanups: list[tuple[Callable, tuple, dict]] = (
            cleanups if cleanups is not None else [])
        self._clients: dict[tuple, Any] = {}

    # --- the target ------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return self.run.target.endpoint

    @property
    def region(self) -> str:
        return self.run.target.region

    @property
    def prefix(self) -> str:
        """Unique to this run: start bucket names and keys with it so runs never collide."""
        return self.run.prefix

    @property
    def workdir(self) -> str:
        """A temporary directory of this scenario's own (removed afterwards)."""
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="nimbo-conf-")
            self._cleanups.insert(0, (shutil.rmtree, (self._workdir,), {"ignore_errors": True}))
        return self._workdir

    def name(self, hint: str = "") -> str:
        """A fresh lower-case name (valid as a bucket name): ``<prefix>-<n>[-hint]``."""
        hint = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")
        text = f"{self.prefix}-{self.run.next_number()}" + (f"-{hint}" if hint else "")
        return text[:63].rstrip("-")

    def with_credentials(self, access_key: str | None = None,
                         secret_key: str | None = None) -> "Context":
        """The same scenario with other credentials (problems and clean-ups are shared)."""
        return Context(self.run, self.recorder, access_key if access_key is not None
                       else self.access_key, secret_key if secret_key is not None
                       else self.secret_key, self._workdir, self._cleanups)

    # --- boto3 -----------------------------------------------------------------------------------
    def client(self, service: str, validate: bool = True, **config: Any):
        """A boto3 client on the endpoint; every response it gets is checked (unless
        ``validate=False``, for clean-ups). ``config`` goes to ``botocore.config.Config``."""
        key = (service, validate, tuple(sorted((k, repr(v)) for k, v in config.items())))
        if key in self._clients:
            return self._clients[key]
        settings = {"retries": {"total_max_attempts": max(1, self.run.retries), "mode": "standard"},
                    "connect_timeout": 10, "read_timeout": 120, **config}
        client = self.run.make_client(
            service, endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            aws_session_token=self.run.target.session_token, verify=self.run.target.verify_ssl,
            config=botocore.config.Config(**settings))
        if validate:
            client.meta.events.register("after-call", self._after_call)
        self._clients[key] = client
        return client

    def _after_call(self, http_response, parsed, model, **_: Any) -> None:
        service = model.service_model.service_name
        status = http_response.status_code
        streamed = model.has_streaming_output and status < 300
        body = None if streamed else http_response.content
        problems = wire.check_response(model, status, http_response.headers, body)
        if status < 300:
            problems += validate_output(
                model.output_shape, parsed, model.name, BOTO3, wire.protocol_of(model),
                SYNTHETIC_MEMBERS.get((service, model.name), ()))
        self.recorder.add(problems)
        request_id = (parsed.get("ResponseMetadata") or {}).get("RequestId")
        self.recorder.call(CallRecord("boto3", service, model.name, status, request_id))

    def call(self, service: str, operation: str, **params: Any) -> dict:
        """Call ``operation`` (its AWS name) with boto3; returns the parsed response. Errors raise
        botocore's ClientError (use ``expect_error`` for the ones a scenario expects)."""
        client = self.client(service)
        methods = {api: method for method, api in client.meta.method_to_api_mapping.items()}
        if operation not in methods:
            raise ScenarioFailure(f"botocore's {service} model has no operation {operation}")
        return getattr(client, methods[operation])(**params)

    def validate(self, service: str, operation: str, value: Any, client: str = "boto3") -> list:
        """Check ``value`` (a parsed response got some other way) against ``operation``'s output
        shape as ``client`` renders it (boto3 or awscli); the problems count like any others."""
        model = self.run.service_model(service).operation_model(operation)
        flavour = AWSCLI if client == "awscli" else BOTO3
        problems = validate_output(model.output_shape, value, operation, flavour,
                                   wire.protocol_of(model),
                                   SYNTHETIC_MEMBERS.get((service, operation), ()))
        self.recorder.add(problems)
        return problems

    # --- aws-cli ---------------------------------------------------------------------------------
    def aws(self, *args: str, validate: bool = True, input_text: str | None = None,
            cwd: str | None = None) -> awscli_runner.AwsResult:
        """Run ``aws ARGS`` (aws-cli v1) against the endpoint with ``--output json``. For an API
        command (``aws ec2 describe-regions``) the JSON is validated against the operation's shape;
        high-level commands (``aws s3 cp``) return their text. A non-zero exit raises
        AwsCliError."""
        if not self.run.aws_command:
            raise Skip("aws-cli is not installed")
        args = [str(a) for a in args]
        env = awscli_runner.clean_env(self.access_key, self.secret_key, self.region, self.workdir,
                                      self.run.target.session_token, self.run.retries)
        resolved = awscli_runner.resolve_operation(args)
        try:
            result = awscli_runner.run(self.run.aws_command, args, self.endpoint, env,
                                       cwd or self.workdir, self.run.timeout,
                                       self.run.target.verify_ssl, input_text)
        except AwsCliError as exc:
            self.recorder.call(CallRecord("awscli", resolved[0] if resolved else args[0],
                                          resolved[1].name if resolved else " ".join(args[:2]),
                                          None, exit_code=exc.returncode))
            raise
        if resolved is None:
            self.recorder.call(CallRecord("awscli", args[0], " ".join(args[:2]), None,
                                          exit_code=0))
            return result
        service, model = resolved
        result.operation = model.name
        root = f"{model.name} (aws-cli)"
        self.recorder.call(CallRecord("awscli", service, model.name, None, exit_code=0))
        try:
            result.json = awscli_runner.parse_json(result.stdout)
        except ValueError:
            self.recorder.add([Problem(root, "output is not JSON: "
                                       f"{result.stdout[:80]!r}")])
            return result
        if validate and model.output_shape is not None and not model.has_streaming_output:
            self.recorder.add(validate_output(model.output_shape, result.json, root, AWSCLI,
                                              wire.protocol_of(model)))
        elif validate and model.has_streaming_output:
            shape = model.output_shape
            payload = shape.serialization.get("payload")
            data = {k: v for k, v in (result.json or {}).items() if k != payload}
            self.recorder.add(validate_output(shape, data, root, AWSCLI, wire.protocol_of(model)))
        return result

    # --- raw HTTP --------------------------------------------------------------------------------
    def url(self, path: str = "/", query: dict | list | str | None = None) -> str:
        """The endpoint's URL for ``path`` (already escaped) and an optional query."""
        url = self.endpoint.rstrip("/") + (path if path.startswith("/") else "/" + path)
        if query:
            url += "?" + (query if isinstance(query, str) else urllib.parse.urlencode(query))
        return url

    def raw(self, service: str, method: str = "GET", path: str = "/",
            query: dict | list | str | None = None, body: bytes | str = b"",
            headers: dict[str, str] | None = None, sign: bool = True, check: bool = True,
            region: str | None = None) -> rawhttp.RawResponse:
        """A hand-built request to the endpoint, SigV4-signed for ``service`` with this context's
        credentials (unless ``sign=False``). The response's request id and error format are
        checked; with ``check`` a status >= 300 raises RawHTTPError (code parsed from the body)."""
        url = self.url(path, query)
        data = body.encode() if isinstance(body, str) else body
        headers = dict(headers or {})
        if sign:
            headers = rawhttp.sign(method, url, service, region or self.region, self.access_key,
                                   self.secret_key, data, headers, self.run.target.session_token)
        response = rawhttp.send(method, url, data, headers, timeout=60,
                                verify=self.run.target.verify_ssl)
        protocol = SERVICE_PROTOCOLS.get(service)
        what = f"{service} {method} {path}"
        if protocol:
            problems = wire.check_request_id(protocol, response.status, response.headers,
                                             response.body, what)
            if response.status >= 300:
                problems += wire.check_error_body(protocol, response.status, response.body, what)
            self.recorder.add(problems)
        self.recorder.call(CallRecord("raw", service, f"{method} {path}", response.status,
                                      None))
        if check and response.status >= 300:
            code, message = wire.error_code_of(protocol or "rest-xml", response.body)
            raise RawHTTPError(code, message, response.status, response.headers, response.body,
                               what)
        return response

    def fetch(self, url: str, method: str = "GET", body: bytes = b"",
              headers: dict[str, str] | None = None) -> rawhttp.RawResponse:
        """An unsigned request to any URL (a presigned one, say) made with urllib; any status comes
        back as a RawResponse (nothing is checked, nothing raised)."""
        response = rawhttp.urlopen(method, url, body if body or method in ("PUT", "POST") else None,
                                   headers, timeout=60, verify=self.run.target.verify_ssl)
        self.recorder.call(CallRecord("raw", "-", f"{method} {url.split('?')[0]}",
                                      response.status))
        return response

    # --- expectations ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def expect_error(self, code: str | Iterable[str], status: int | None = None):
        """``with ctx.expect_error("NoSuchKey", 404): ctx.call(...)`` fails the scenario unless the
        block raises that error (from boto3, aws-cli or a raw request). aws-cli does not show the
        HTTP status, so only the code is compared there."""
        codes = (code,) if isinstance(code, str) else tuple(code)
        caught = ExpectedError(codes, status)
        wanted = " or ".join(codes) + (f" (HTTP {status})" if status else "")
        try:
            yield caught
        except ClientError as exc:
            error = exc.response.get("Error", {})
            caught.code = error.get("Code")
            caught.message = error.get("Message") or ""
            caught.http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            caught.exception = exc
        except ServiceError as exc:
            caught.code, caught.message, caught.http_status = exc.code, exc.message, exc.status
            caught.exception = exc
        else:
            raise ScenarioFailure(f"expected error {wanted}, but the call succeeded")
        got = f"{caught.code}" + (f" (HTTP {caught.http_status})" if caught.http_status else "")
        if caught.code not in codes or (status and caught.http_status
                                        and caught.http_status != status):
            raise ScenarioFailure(f"expected error {wanted}, got {got}: {caught.message}"
                                  .rstrip(": "))

    def check(self, condition: Any, message: str) -> None:
        """Fail the scenario with ``message`` unless ``condition`` holds."""
        if not condition:
            raise ScenarioFailure(message)

    def check_equal(self, got: Any, expected: Any, what: str) -> None:
        if got != expected:
            raise ScenarioFailure(f"{what}: expected {_brief(expected)}, got {_brief(got)}")

    def skip(self, reason: str) -> None:
        raise Skip(reason)

    def warn(self, where: str, message: str, check: str = "behaviour") -> None:
        """A deviation from AWS that clients tolerate: listed under the warnings, not a failure
        (unlike ``check``)."""
        self.recorder.add([Problem(where, message, WARNING, check)])

    def note(self, message: str) -> None:
        """An observation worth reporting that is not a failure."""
        self.recorder.notes.append(message)

    # --- resources -------------------------------------------------------------------------------
    def defer(self, func: Callable, *args: Any, **kwargs: Any) -> None:
        """Run ``func(*args, **kwargs)`` when the scenario ends (last deferred runs first)."""
        self._cleanups.append((func, args, kwargs))

    def bucket(self, hint: str = "") -> str:
        """Create a bucket (through the validating client), emptied and deleted at the end."""
        name = self.name(hint)
        params: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.call("s3", "CreateBucket", **params)
        self.defer(self.delete_bucket, name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it, quietly (not validated: it is a clean-up)."""
        s3 = self.client("s3", validate=False)
        try:
            uploads = s3.list_multipart_uploads(Bucket=name).get("Uploads", [])
            for upload in uploads:
                s3.abort_multipart_upload(Bucket=name, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
        except ClientError:
            pass
        for _ in range(100):
            listing = s3.list_objects_v2(Bucket=name)
            keys = [{"Key": item["Key"]} for item in listing.get("Contents", [])]
            if not keys:
                break
            try:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            except ClientError:
                for key in keys:
                    s3.delete_object(Bucket=name, **key)
        s3.delete_bucket(Bucket=name)

    def file(self, relpath: str, data: bytes | str) -> str:
        """Write ``data`` to ``relpath`` under the scenario's work directory; returns the path."""
        path = os.path.join(self.workdir, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        return path

    def cleanup(self) -> list[str]:
        """Run the deferred clean-ups; returns what went wrong (reported as notes)."""
        failures = []
        while self._cleanups:
            func, args, kwargs = self._cleanups.pop()
            try:
                func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a clean-up never fails a scenario
                failures.append(f"clean-up {getattr(func, '__name__', func)}{args!r}: "
                                f"{first_line(exc)}")
        return failures


@functools.lru_cache(maxsize=None)
def _service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, (ScenarioFailure, ClientError, ServiceError)):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _brief(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def error_problems(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]

