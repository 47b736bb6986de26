"""KMS's state in one server process: the master key, unwrapped key material kept in memory, and
the deletion sweep. The API handlers reach it as ``ctx.state``; other services (S3's SSE-KMS) and
tests reach it with ``await state_of(app)``, which opens it on first use when the gateway has not
(the tables are migrated, the master key loaded or made)."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import weakref
from collections import OrderedDict
from typing import Any

from kms_api import key_material
from storage import kms_keys as store
from storage import master_key
from storage.usage import SCHEMA as USAGE_SCHEMA
from storage.kms_keys import KeyRow

SERVICE = "kms"
_CACHE = 1024
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_opening: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # event loop -> its lock


class KmsState:
    def __init__(self, app: Any, master: bytes) -> None:
        self.app = app
        self.master_key = master
        self._materials: OrderedDict[str, bytes] = OrderedDict()
        self.sweeper: Any = None

    def __repr__(self) -> str:     # the keys stay out of logs
        return f"KmsState({len(self._materials)} keys in memory)"

    def now_us(self) -> int:
        delta = self.app.clock() - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds

    def material(self, key: KeyRow) -> bytes:
        """The key's unwrapped material (kept in memory for the next request)."""
        found = self._materials.get(key.key_id)
        if found is None:
            found = key_material.unwrap(self.master_key, key.key_id, key.material)
            self._materials[key.key_id] = found
            if len(self._materials) > _CACHE:
                self._materials.popitem(last=False)
        else:
            self._materials.move_to_end(key.key_id)
        return found

    def forget(self, key_id: str) -> None:
        self._materials.pop(key_id, None)

    def clear(self) -> None:
        self._materials.clear()


async def open_state(app: Any) -> KmsState:
    """The gateway's start-up hook: the state (opened once) and the deletion sweep started."""
    state = await state_of(app)
    if state.sweeper is None and getattr(app, "config", None) is not None:
        from kms_api.key_months import meter_existing_keys   # noqa: PLC0415
        await meter_existing_keys(app.db, state.now_us())
        from kms_api.deletion import deletion_sweeper   # noqa: PLC0415
        interval = float(getattr(app.config, "kms_deletion_sweep_seconds", 0) or 3600.0)
        state.sweeper = deletion_sweeper(state, os.path.join(app.config.data_dir, "kms-deletion.lock"), interval)
        state.sweeper.start()
    return state


async def close_state(state: KmsState) -> None:
    if state.sweeper is not None:
        await state.sweeper.stop()
        state.sweeper = None
    state.clear()
    states = getattr(state.app, "states", None)
    if isinstance(states, dict) and states.get(SERVICE) is state:
        del states[SERVICE]


async def state_of(app: Any) -> KmsState:
    states = getattr(app, "states", None)
    if states is None:
        states = {}
        try:
            app.states = states
        except AttributeError:
            pass
    found = states.get(SERVICE)
    if found is not None:
        return found
    lock = _opening.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        found = states.get(SERVICE)
        if found is None:
            await app.db.migrate(store.SCHEMA)
            await app.db.migrate(USAGE_SCHEMA)   # key-months go to the ledger (kms_api.key_months)
            master = await asyncio.to_thread(master_key.load_or_create, master_key.key_dir(app.config))
            found = states[SERVICE] = KmsState(app, master)
    return found
