"""How the gateway calls any EC2 action: the checks every action gets before its handler.

1. Malformed resource ids in the input (``ids.check_request_ids``): ``InvalidInstanceID.Malformed``
   and friends, from the member names, for every action, the ones added later included.
2. ``DryRun=true``: EC2 answers 412 ``DryRunOperation`` ("Request would have succeeded, but DryRun
   flag is set.") once the request is valid and permitted, and does nothing. A handler that checks
   its resources first and then calls ``errors.check_dry_run`` (most of them) gets the request and
   answers itself, so that a DryRun on a missing resource still gets ``.NotFound``; any other handler
   is never called with DryRun=true: the request stops here after the codec's validation and the
   id checks, with the same answer. So no action ever acts on a dry run, whoever wrote it.

(Nimbo has no IAM policies yet: every authenticated caller is permitted its own resources, so
``UnauthorizedOperation`` is never the DryRun answer.)
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from ec2_api import ids
from ec2_api.errors import DryRunOperation

Handler = Callable[[Any, dict], Awaitable[dict]]

_CHECKER = "check_dry_run"


def checks_dry_run_itself(handler: Handler) -> bool:
    """True when the handler calls ``check_dry_run`` (by name) or says so with a
    ``checks_dry_run = True`` attribute."""
    explicit = getattr(handler, "checks_dry_run", None)
    if explicit is not None:
        return bool(explicit)
    code = getattr(handler, "__code__", None)
    return code is not None and _CHECKER in code.co_names


async def invoke(ctx: Any, action: str, handler: Handler, params: dict) -> dict:
    ids.check_request_ids(action, params)
    if params.get("DryRun") is True and not checks_dry_run_itself(handler):
        raise DryRunOperation()
    return await handler(ctx, params)
