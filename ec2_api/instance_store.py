"""Instance rows and their state machine: every state change is a compare-and-set on the row and
writes an ``instance_state`` usage event in the same transaction.

EC2's states and codes: 0 pending, 16 running, 32 shutting-down, 48 terminated, 64 stopping,
80 stopped. A terminated instance stays visible for an hour (``TERMINATED_VISIBLE_US``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from ec2_api import ids
from ec2_api.errors import InvalidInstanceIDNotFound, not_found
from storage import usage

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64,
               "stopped": 80}
ACTIVE_STATES = ("pending", "running", "stopping", "shutting-down")   # a VM exists or is coming
TERMINATED_VISIBLE_US = 3600 * 1_000_000
SERVICE = "AmazonEC2"

# StateReason codes and messages as EC2 words them
USER_SHUTDOWN = ("Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
GUEST_SHUTDOWN = ("Client.InstanceInitiatedShutdown",
                  "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
SERVER_ERROR = ("Server.InternalError", "Server.InternalError: Internal error on launch")
PENDING_REASON = ("pending", "pending")


def state_dict(state: str) -> dict:
    return {"Code": STATE_CODES[state], "Name": state}


def data_of(row: Any) -> dict:
    return json.loads(row["data"] or "{}")


def visible(row: Any, now_us: int) -> bool:
    """Terminated instances vanish an hour after they terminated."""
    return row["state"] != "terminated" or now_us - row["state_changed_us"] < TERMINATED_VISIBLE_US


async def load(db: Any, instance_id: str) -> Any | None:
    return await db.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance_id,))


async def load_owned(db: Any, account_id: str, region: str, instance_ids: Iterable[str],
                     now_us: int) -> list[Any]:
    """The caller's instances with these ids, in the order asked; malformed ids and ids that are
    not the caller's (or not in this region, or long gone) raise as EC2 does."""
    wanted = list(dict.fromkeys(instance_ids))
    ids.check_instance_ids(wanted)
    rows: dict[str, Any] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in await db.fetchall(
                f"SELECT * FROM ec2_instances WHERE account_id = ? AND region = ?"
                f" AND instance_id IN ({marks})", (account_id, region, *chunk)):
            if visible(row, now_us):
                rows[row["instance_id"]] = row
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise not_found(InvalidInstanceIDNotFound, "instance", missing)
    return [rows[i] for i in wanted]


async def usage_attrs(tx: Any, row: Any, state: str) -> dict:
    data = data_of(row)
    tag_rows = await tx.fetchall("SELECT key, value FROM ec2_tags WHERE account_id = ? AND resource_id = ?",
                                 (row["account_id"], row["instance_id"]))
    return {
        "state": state,
        "instance_type": row["instance_type"],
        "vcpus": data.get("vcpus"),
        "memory_mib": data.get("memory_mib"),
        "image_id": row["image_id"],
        "availability_zone": row["availability_zone"],
        "tags": {r["key"]: r["value"] for r in tag_rows},
    }


async def record_state_event(tx: Any, row: Any, state: str, seq: int, at_us: int) -> None:
    await usage.record_event(
        tx, dedupe_key=f"{row['instance_id']}:{seq}:{state}", account_id=row["account_id"],
        region=row["region"], service=SERVICE, kind="instance_state", resource_id=row["instance_id"],
        at_us=at_us, attrs=await usage_attrs(tx, row, state))


async def record_volume_event(tx: Any, row: Any, state: str, at_us: int) -> None:
    """The root volume's life in the ledger: in-use at launch; at termination deleted, or
    available when DeleteOnTermination is false (the file stays in ``volumes/``)."""
    root = data_of(row).get("root_volume") or {}
    await usage.record_event(
        tx, dedupe_key=f"{row['root_volume_id']}:{state}", account_id=row["account_id"],
        region=row["region"], service=SERVICE, kind="volume_state", resource_id=row["root_volume_id"],
        at_us=at_us, quantity=int(root.get("size_gib", 0)) * 1024 ** 3,
        attrs={"state": state, "volume_type": root.get("volume_type", "gp2"),
               "availability_zone": row["availability_zone"], "instance_id": row["instance_id"]})


@dataclass
class Change:
    """One state change that happened: what the instance was and is now."""
    instance_id: str
    previous: str
    current: str
    row: Any


async def change_state(db: Any, instance_id: str, new_state: str, at_us: int, *,
                       from_states: Iterable[str], reason: tuple[str, str] | None = None,
                       transition_reason: str | None = None, updates: dict[str, Any] | None = None,
                       tx: Any = None) -> Change | None:
    """Move the instance to ``new_state`` if it is in one of ``from_states``; None otherwise.

    The row update and the usage event share one transaction (``tx`` when the caller has one
    open). ``updates`` sets further columns in the same statement.
    """
    if tx is None:
        async with db.transaction() as own:
            return await change_state(db, instance_id, new_state, at_us, from_states=from_states,
                                      reason=reason, transition_reason=transition_reason,
                                      updates=updates, tx=own)
    row = await tx.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance_id,))
    if row is None or row["state"] not in tuple(from_states):
        return None
    seq = row["state_seq"] + 1
    columns = {"state": new_state, "state_seq": seq, "state_changed_us": at_us, **(updates or {})}
    if reason is not None:
        columns["state_reason_code"], columns["state_reason_message"] = reason
    if transition_reason is not None:
        columns["transition_reason"] = transition_reason
    assignments = ", ".join(f"{name} = ?" for name in columns)
    await tx.execute(f"UPDATE ec2_instances SET {assignments} WHERE instance_id = ?",
                     (*columns.values(), instance_id))
    fresh = await tx.fetchone("SELECT * FROM ec2_instances WHERE instance_id = ?", (instance_id,))
    await record_state_event(tx, fresh, new_state, seq, at_us)
    from ec2_api.instance_network import state_changed  # noqa: PLC0415 (interfaces, public addresses)
    await state_changed(tx, fresh, new_state)
    if new_state == "terminated":   # the root volume goes with it, or stays behind detached
        keep = not (data_of(fresh).get("root_volume") or {}).get("delete_on_termination", True)
        await record_volume_event(tx, fresh, "available" if keep else "deleted", at_us)
        from ec2_api import volume_attachments  # noqa: PLC0415 (EBS: the other volumes follow)
        await volume_attachments.on_instance_terminated(tx, fresh, at_us)
    return Change(instance_id, row["state"], new_state, fresh)


async def update_data(tx: Any, instance_id: str, **changes: Any) -> None:
    row = await tx.fetchone("SELECT data FROM ec2_instances WHERE instance_id = ?", (instance_id,))
    data = json.loads(row["data"] or "{}")
    data.update(changes)
    await tx.execute("UPDATE ec2_instances SET data = ? WHERE instance_id = ?",
                     (json.dumps(data, sort_keys=True), instance_id))
