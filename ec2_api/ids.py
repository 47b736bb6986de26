"""EC2 resource ids: ``i-`` + 17 hex digits and friends, made and checked in one place."""
from __future__ import annotations

import re
import secrets

from ec2_api.errors import ec2_error

_ID_RE = re.compile(r"^([a-z]+(?:-[a-z]+)*)-([0-9a-f]{8}|[0-9a-f]{17})$")


def new_id(prefix: str) -> str:
    """A fresh id in AWS's long form: ``<prefix>-`` + 17 lower-case hex digits."""
    return f"{prefix}-{secrets.token_hex(9)[:17]}"


def prefix_of(resource_id: str) -> str | None:
    """The prefix of a well-formed id (``i``, ``ami``, ``import-ami`` ...), else None."""
    match = _ID_RE.match(resource_id or "")
    return match.group(1) if match else None


def is_valid(resource_id: str, *prefixes: str) -> bool:
    return prefix_of(resource_id) in prefixes


InvalidInstanceIDMalformed = ec2_error("InvalidInstanceID.Malformed")
InvalidAMIIDMalformed = ec2_error("InvalidAMIID.Malformed")
InvalidKeyPairIDMalformed = ec2_error("InvalidKeyPair.Malformed")
InvalidID = ec2_error("InvalidID")


def check_instance_ids(ids: list[str]) -> None:
    for value in ids:
        if not is_valid(value, "i"):
            raise InvalidInstanceIDMalformed(f'Invalid id: "{value}"')


def check_image_ids(ids: list[str]) -> None:
    for value in ids:
        if not is_valid(value, "ami", "aki", "ari"):
            raise InvalidAMIIDMalformed(f'Invalid id: "{value}" (expecting "ami-...")')
