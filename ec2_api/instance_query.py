"""The SQL side of DescribeInstances: the rows a request's filters can keep, and no others.

DescribeInstances' filters are applied by the one filter engine (``ec2_api.filters``) on rows and
rendered instances; this module only narrows what is loaded before that engine runs, so that an
account of 10,000 instances asked for ``tag:Role=canary`` loads (and renders, and encodes) its ten
canaries, not 10,000 rows and their tags. The narrowing is a superset of the answer: every filter
the SQL answers is still checked by the engine afterwards, so the two can never disagree on what
is kept, only on how much is read.

What SQL answers here:

* visibility: a terminated instance is shown for an hour (``instance_store.visible``);
* ``tag:KEY`` (any values: exact ones narrow on the value too, wildcards on the key only),
  ``tag-key`` with exact values: a semi-join on ``ec2_tags`` (indexed by account, key, value);
* row columns with exact values (``instance-state-name``, ``instance-type``, ``instance-id`` ...).

EC2 wildcards (``*``, ``?``, ``\\`` escapes) are left to the engine: a filter with one is not
pushed down, except for a tag filter's key.

Crash story: nothing is written here but two indexes (``SCHEMA``), each created in its own migration
transaction; a crash before one commits leaves it uncreated and the next start creates it.
"""
from __future__ import annotations

from typing import Any, Sequence

from ec2_api.filters import _decode_token as decode_token
from ec2_api.instance_store import TERMINATED_VISIBLE_US
from storage.db import Schema

SCHEMA = Schema("ec2_instance_query", [
    "CREATE INDEX IF NOT EXISTS ec2_tags_by_key_value ON ec2_tags(account_id, key, value, resource_id)",
    # an unfiltered page (``page_window``) is a range of this index: no sort of the whole account
    "CREATE INDEX IF NOT EXISTS ec2_instances_by_owner_id ON ec2_instances(account_id, region, instance_id)",
])

# The columns DescribeInstances reads (``instances.render_instance`` and the row filters): not the
# user data (up to 16 KiB an instance), the disk path or the API-termination flags.
DESCRIBED = ("instance_id, account_id, region, reservation_id, launch_index, image_id, instance_type, key_name,"
             " state, state_changed_us, transition_reason, state_reason_code, state_reason_message, launch_time_us,"
             " pending_time_us, availability_zone, vpc_id, subnet_id, private_ip, mac, root_volume_id, client_token,"
             " data")

# Filter name -> column of ec2_instances holding the same text the filter compares.
COLUMNS = {
    "instance-id": "instance_id",
    "instance-state-name": "state",
    "instance-type": "instance_type",
    "image-id": "image_id",
    "key-name": "key_name",
    "availability-zone": "availability_zone",
    "placement-availability-zone": "availability_zone",
    "reservation-id": "reservation_id",
    "owner-id": "account_id",
    "client-token": "client_token",
}


def _exact(values: Sequence[str]) -> bool:
    """Values with no EC2 wildcard or escape: they match by equality."""
    return bool(values) and not any(ch in value for value in values for ch in "*?\\")


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def narrowing(account_id: str, filters: Sequence[dict] | None) -> tuple[list[str], list[Any]]:
    """(SQL conditions, their parameters) that every instance passing ``filters`` meets."""
    where: list[str] = []
    args: list[Any] = []
    for flt in filters or []:
        name = flt.get("Name")
        values = [str(v) for v in flt.get("Values") or []]
        if not isinstance(name, str) or not values:
            continue
        if name.startswith("tag:"):
            condition = "SELECT resource_id FROM ec2_tags WHERE account_id = ? AND key = ?"
            params: list[Any] = [account_id, name[4:]]
            if _exact(values):
                condition += f" AND value IN ({_marks(values)})"
                params += values
            where.append(f"instance_id IN ({condition})")
            args += params
        elif name == "tag-key" and _exact(values):
            where.append(f"instance_id IN (SELECT resource_id FROM ec2_tags WHERE account_id = ?"
                         f" AND key IN ({_marks(values)}))")
            args += [account_id, *values]
        elif name in COLUMNS and _exact(values):
            where.append(f"{COLUMNS[name]} IN ({_marks(values)})")
            args += values
    return where, args


async def candidate_rows(db: Any, account_id: str, region: str, filters: Sequence[dict] | None,
                         now_us: int, *, after: str | None = None, limit: int | None = None) -> list[Any]:
    """The visible instances of the account and region that may pass ``filters``, by id (the
    ``DESCRIBED`` columns of their rows); only
    those whose id sorts after ``after`` and at most ``limit`` of them when given (the caller
    pages in SQL only when nothing is filtered after this, see ``page_window``)."""
    where, args = narrowing(account_id, filters)
    sql = (f"SELECT {DESCRIBED} FROM ec2_instances WHERE account_id = ? AND region = ?"
           " AND (state != 'terminated' OR state_changed_us > ?)")
    for condition in where:
        sql += " AND " + condition
    if after is not None:
        sql += " AND instance_id > ?"
        args.append(after)
    sql += " ORDER BY instance_id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return await db.fetchall(sql, (account_id, region, now_us - TERMINATED_VISIBLE_US, *args))


def page_window(max_results: int | None, next_token: str | None, maximum: int = 1000) -> tuple[str | None, int | None]:
    """(after, limit) for ``candidate_rows`` of an unfiltered request: the rows after the token's
    id, and one more than the page (``filters.paginate`` then cuts the page and, seeing that one
    extra row, writes the next token, exactly as it does over all the rows). No limit when
    neither MaxResults nor NextToken is given (everything in one answer, as EC2)."""
    after = decode_token(next_token) if next_token else None
    if max_results is None and next_token is None:
        return after, None
    return after, (max_results if max_results is not None else maximum) + 1
