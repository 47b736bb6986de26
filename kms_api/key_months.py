"""Key-months: what AWS bills for keeping a KMS key, fed to the usage ledger (``storage.usage``).

AWS charges each customer managed key $1 a month, prorated hourly, while it exists, Enabled or
Disabled (usage type ``<region>-KMS-Keys`` of product ``awskms``; KMS prefixes its usage types
with the region *name*, ``us-east-1-KMS-Keys``, not a billing code). Not charged: AWS managed keys
(``alias/aws/s3`` ...), and a key scheduled for deletion, unless its deletion is cancelled, in
which case "the key incurs charges as though it was never scheduled for deletion" (AWS KMS
pricing). The ledger therefore gets one ``kms_key_state`` event per change that matters:

- CreateKey: ``Enabled`` at the key's creation time;
- ScheduleKeyDeletion: ``PendingDeletion`` (billing stops) at the request's time;
- CancelKeyDeletion: ``Disabled`` (billed) dated back to the moment the deletion was scheduled
  (DeletionDate minus the waiting period): it sorts after the schedule event of the same instant,
  so the waiting period bills as if never scheduled, and the rater re-rates from there;
- the deletion sweep: ``Deleted`` at the key's deletion date (terminal: nothing bills after).

EnableKey/DisableKey change nothing billed. Each event is written in the same transaction as the
key's state change (``storage.kms_keys``) and carries a dedupe key, so a crash leaves both or
neither, and a replay records nothing twice. The rater (``billing.ledger``) integrates the billed
time exactly and reports it as key-months (``Keys``): hours billed / hours in the month.

Keys made before key-months were metered have no event: at start-up (``meter_existing_keys``)
each gets one dated *now* (its state then), so metering starts with the upgrade and months
already billed are not rewritten. (One edge: such a key that was pending deletion and is then
cancelled bills its waiting period from the scheduled date, as AWS would.)
"""
from __future__ import annotations

from typing import Any

from kms_api.identifiers import arn_of
from storage import kms_keys as store
from storage.kms_keys import KeyRow

PRODUCT_CODE = "awskms"
EVENT_KIND = "kms_key_state"
USAGE_TYPE = "KMS-Keys"
DAY_US = 86_400 * 1_000_000


def _event(key: KeyRow, state: str, at_us: int, dedupe: str) -> dict:
    return {"dedupe_key": f"kms:{dedupe}:{key.key_id}:{at_us}", "account_id": key.account_id,
            "region": key.region, "service": PRODUCT_CODE, "kind": EVENT_KIND, "resource_id": arn_of(key),
            "at_us": at_us, "quantity": 0, "attrs": {"state": state}}


def billed(key: KeyRow) -> bool:
    """Whether AWS charges key-months for this key at all (customer managed keys only)."""
    return key.key_manager == "CUSTOMER"


def created(key: KeyRow) -> list[dict]:
    return [_event(key, key.state, key.created_us, "create")] if billed(key) else []


def deletion_scheduled(key: KeyRow, now_us: int) -> list[dict]:
    return [_event(key, "PendingDeletion", now_us, "schedule")] if billed(key) else []


def deletion_cancelled(key: KeyRow) -> list[dict]:
    """``key`` as it was while pending deletion (its deletion date and waiting period known)."""
    if not billed(key) or key.deletion_us is None or key.pending_days is None:
        return []
    scheduled_us = key.deletion_us - key.pending_days * DAY_US
    return [_event(key, "Disabled", scheduled_us, "cancel")]


def deleted(key: KeyRow) -> list[dict]:
    if not billed(key) or key.deletion_us is None:
        return []
    return [_event(key, "Deleted", key.deletion_us, "delete")]


def _existing(now_us: int):
    def events_of(key: KeyRow) -> list[dict]:
        event = _event(key, key.state, now_us, "existing")
        event["dedupe_key"] = f"kms:existing:{key.key_id}"     # once per key, whichever worker runs first
        return [event]
    return events_of


async def meter_existing_keys(db: Any, now_us: int) -> int:
    """Start-up: customer managed keys without any ledger event start being metered at ``now_us``."""
    return await store.record_unmetered(db, EVENT_KIND, _existing(now_us))
