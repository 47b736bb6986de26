"""Scenarios and the decorator that registers them.

A scenario is a function of one argument, a :class:`conformance.context.Context`::

    @scenario("s3", "ListBuckets", client="boto3")
    def list_buckets(ctx):
        bucket = ctx.bucket()
        names = [b["Name"] for b in ctx.call("s3", "ListBuckets")["Buckets"]]
        ctx.check(bucket in names, f"{bucket} not listed")

It appears in the matrix on the row ``service:Operation`` (one row per operation it names, plus a
``variant`` in brackets when given, e.g. negative scenarios) and in the column of its client.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Iterable

CLIENT_ORDER = ("boto3", "awscli", "awscli2", "rclone", "s3cmd", "pyarrow", "s3fs", "curl", "raw")
SERVICE_ORDER = ("sts", "ec2", "s3", "ssm", "kms")


@dataclass(frozen=True)
class Scenario:
    service: str
    operations: tuple[str, ...]
    client: str
    func: Callable = field(compare=False)
    name: str = ""
    variant: str = ""
    doc: str = ""

    @property
    def rows(self) -> list[str]:
        suffix = f" ({self.variant})" if self.variant else ""
        return [f"{self.service}:{op}{suffix}" for op in self.operations]

    @property
    def id(self) -> str:
        return f"{self.service}.{self.name}"

    def matches(self, token: str) -> bool:
        """``--only`` tokens: a service (``s3``), an operation (``s3:ListBuckets``, variants
        included), a whole row (``s3:ListBuckets (wrong secret)``), a scenario id
        (``s3.list_buckets``) or its bare function name."""
        token = token.strip()
        if not token:
            return False
        if token == self.service or token in (self.id, self.name) or token in self.rows:
            return True
        if ":" in token:
            service, _, op = token.partition(":")
            return service == self.service and op in self.operations
        return False


REGISTRY: list[Scenario] = []


def scenario(service: str, operations: str | Iterable[str], client: str = "boto3",
             variant: str = "", name: str | None = None):
    """Register the decorated function as a scenario of ``service`` exercising ``operations``
    (an operation name or several) with ``client`` (boto3, awscli, ...)."""
    ops = (operations,) if isinstance(operations, str) else tuple(operations)
    if not ops:
        raise ValueError("a scenario names at least one operation")

    def register(func: Callable) -> Callable:
        entry = Scenario(service=service, operations=ops, client=client, func=func,
                         name=name or func.__name__, variant=variant,
                         doc=" ".join((func.__doc__ or "").split()))
        if any(s.id == entry.id and s.client == entry.client for s in REGISTRY):
            raise ValueError(f"scenario {entry.id} [{client}] registered twice")
        REGISTRY.append(entry)
        return func

    return register


def load_scenarios() -> list[Scenario]:
    """Import every module of ``conformance.scenarios`` (registering its scenarios)."""
    import conformance.scenarios as package  # noqa: PLC0415
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return list(REGISTRY)


def select(scenarios: list[Scenario], only: list[str] | None = None,
           clients: list[str] | None = None, skip: list[str] | None = None) -> list[Scenario]:
    """The scenarios matching a token of ``only`` (all when empty), run by one of ``clients``,
    and matching no token of ``skip``."""
    chosen = scenarios
    if only:
        chosen = [s for s in chosen if any(s.matches(token) for token in only)]
    if skip:
        chosen = [s for s in chosen if not any(s.matches(token) for token in skip)]
    if clients:
        chosen = [s for s in chosen if s.client in clients]
    return chosen


def sort_key_for_row(row: str) -> tuple:
    service, _, rest = row.partition(":")
    operation, _, variant = rest.partition(" (")
    rank = SERVICE_ORDER.index(service) if service in SERVICE_ORDER else len(SERVICE_ORDER)
    return (rank, service, operation, variant)


def sort_key_for_client(client: str) -> tuple:
    return (CLIENT_ORDER.index(client) if client in CLIENT_ORDER else len(CLIENT_ORDER), client)
