"""STS, as far as a private cloud with root credentials needs it: who am I."""
from __future__ import annotations

from typing import Any


async def get_caller_identity(ctx: Any, params: dict) -> dict:
    account = ctx.account
    return {
        "UserId": account.account_id,
        "Account": account.account_id,
        "Arn": f"arn:aws:iam::{account.account_id}:root",
    }


OPERATIONS = {"GetCallerIdentity": get_caller_identity}
