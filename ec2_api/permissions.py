"""Sharing an image or a snapshot: the rules its launch permissions (AMIs) and create-volume
permissions (snapshots) have in common.

A permission is ``{"Group": "all"}`` (public) or ``{"UserId": "<account>"}``. Modify*Attribute takes
them either as the structured ``Add``/``Remove`` lists or as the older ``OperationType`` with
``UserIds`` and groups; Describe* filters by owner (an account id, ``self`` or the owner's alias).
Pure functions: nothing here touches the database.
"""

from __future__ import annotations

from typing import Any

from ec2_api.errors import MissingParameter


def owner_matches(row: Any, owners: list[str], account: str) -> bool:
    """Whether a row (with ``account_id`` and ``owner_alias``) is owned by one of ``owners``."""
    for owner in owners:
        if owner == "self" and row["account_id"] == account:
            return True
        if owner == row["account_id"] or (row["owner_alias"] and owner == row["owner_alias"]):
            return True
    return False


def permission_changes(params: dict, permission_key: str, groups_key: str) -> tuple[list[dict], list[dict]]:
    """The permissions to add and to remove: from ``params[permission_key]`` (``Add``/``Remove``)
    when given, else from ``OperationType`` with ``params[groups_key]`` and ``UserIds``."""
    spec = params.get(permission_key)
    if spec:
        return list(spec.get("Add") or []), list(spec.get("Remove") or [])
    entries = [{"Group": g} for g in params.get(groups_key) or []]
    entries += [{"UserId": u} for u in params.get("UserIds") or []]
    operation = params.get("OperationType")
    if operation not in ("add", "remove"):
        raise MissingParameter("The request must contain the parameter OperationType")
    return (entries, []) if operation == "add" else ([], entries)


def apply_permission_changes(is_public: bool, users: list[str], add: list[dict],
                             remove: list[dict]) -> tuple[bool, list[str]]:
    """Public flag and user list after adding then removing permissions (``users`` is changed)."""
    for entry in add:
        if entry.get("Group") == "all":
            is_public = True
        elif entry.get("UserId") and entry["UserId"] not in users:
            users.append(entry["UserId"])
    for entry in remove:
        if entry.get("Group") == "all":
            is_public = False
        elif entry.get("UserId") in users:
            users.remove(entry["UserId"])
    return is_public, users
