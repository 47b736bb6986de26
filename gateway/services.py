"""The services one endpoint serves, and how a request is matched to one of them."""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[Any, dict], Awaitable[dict]]

# The signing name in a SigV4 credential scope -> (botocore model name, wire protocol).
PROTOCOLS = {
    "s3": ("s3", "rest-xml"),
    "ec2": ("ec2", "ec2"),
    "sts": ("sts", "query"),
    "ce": ("ce", "json"),
    "cur": ("cur", "json"),
    "ssm": ("ssm", "json"),
    "kms": ("kms", "json"),
    "bcm-data-exports": ("bcm-data-exports", "json"),   # FOCUS exports (billing.data_exports)
}

_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"(?:^|&)X-Amz-Credential=[^&/]+(?:/|%2F)\d{8}(?:/|%2F)[^&/%]+(?:/|%2F)([^&/%]+)(?:/|%2F)",
                          re.IGNORECASE)


# Services whose endpoint is global: clients sign with whatever region they are configured for,
# and AWS accepts it (Cost Explorer and CUR live in us-east-1 only; STS has a global endpoint).
GLOBAL_SERVICES = frozenset({"sts", "ce", "cur", "bcm-data-exports"})


class AnyRegion(tuple):
    """The regions a global service accepts in a credential scope: all of them. Iterates over the
    regions served (the first is the one an error names)."""

    def __contains__(self, region: object) -> bool:
        return isinstance(region, str) and bool(region)


def accepted_regions(service: str, served: list[str]) -> tuple[str, ...]:
    return AnyRegion(served) if service in GLOBAL_SERVICES else tuple(served)


class DeferredOperations(Mapping):
    """A service's operations, imported by their first use (``load``): the API package of a
    service that only the leader serves (EC2) is not in the memory of the workers that relay it
    (``gateway.leader``), nor in their parent's."""

    def __init__(self, load: Callable[[], dict[str, Handler]]) -> None:
        self._load = load
        self._operations: dict[str, Handler] | None = None

    def load(self) -> dict[str, Handler]:
        if self._operations is None:
            self._operations = self._load()
        return self._operations

    def __getitem__(self, name: str) -> Handler:
        return self.load()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.load().get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.load())

    def __len__(self) -> int:
        return len(self.load())


@dataclass
class Service:
    """One AWS service as Nimbo serves it."""

    name: str                       # the signing name: s3, ec2, sts, ce, cur
    model: str                      # botocore's service model name
    protocol: str                   # ec2, query, rest-xml, json
    operations: Mapping[str, Handler] = field(default_factory=dict)
    open_state: Callable[[Any], Awaitable[Any]] | None = None
    close_state: Callable[[Any], Awaitable[None]] | None = None

    def load_operations(self) -> None:
        """Deferred operations imported now, and kept as the plain dict they are."""
        if isinstance(self.operations, DeferredOperations):
            self.operations = self.operations.load()


def protocol_of(service: str) -> str:
    return PROTOCOLS.get(service, ("", "query"))[1]


def signing_service(request: web.Request) -> str | None:
    """The service named in a SigV4 credential scope (header or presigned query), 's3' for S3's
    SigV2, None for an unsigned request or a Query API's SigV2 (whose scope-less signature names
    no service: ``unsigned_service`` finds it from the Action)."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("AWS4-"):
        match = _SCOPE.search(authorization)
        return match.group(2) if match else "s3"
    if authorization.startswith("AWS "):
        return "s3"
    raw_query = request.raw_path.partition("?")[2]
    if "X-Amz-Credential=" in raw_query or "x-amz-credential=" in raw_query.lower():
        match = _QUERY_SCOPE.search(raw_query)
        return match.group(1) if match else "s3"
    if "AWSAccessKeyId=" in raw_query and "Signature=" in raw_query:
        if "SignatureVersion=" in raw_query:
            return None    # a Query API's SigV2 (EC2 ...): its Action names the service
        return "s3"
    return None


# The JSON services by their models' ``metadata.targetPrefix`` (the first part of X-Amz-Target):
# named here so that an unsigned request does not load five models to be refused (a test checks
# them against the models).
JSON_TARGET_PREFIXES = {
    "AWSInsightsIndexService": "ce",
    "AWSOrigamiServiceGatewayService": "cur",
    "AmazonSSM": "ssm",
    "TrentService": "kms",
    "AWSBillingAndCostManagementDataExports": "bcm-data-exports",
}


def json_target_services() -> dict[str, str]:
    """The JSON services by their models' ``targetPrefix`` (``TrentService`` -> kms ...)."""
    return JSON_TARGET_PREFIXES


def unsigned_service(request: web.Request) -> str:
    """Where an unsigned request goes: a JSON target or a Query action names its service (which
    will then refuse it for want of a signature); everything else is anonymous S3."""
    target = request.headers.get("X-Amz-Target", "")
    if target:
        named = json_target_services().get(target.partition(".")[0])
        if named:
            return named
    raw_query = request.raw_path.partition("?")[2]
    content_type = request.headers.get("Content-Type", "")
    if re.search(r"(?:^|&)Action=", raw_query) or (
            request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded")
            and request.path == "/"):
        return "ec2"
    return "s3"
