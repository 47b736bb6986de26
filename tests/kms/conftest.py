"""Fixtures of the KMS tests (helpers are in ``_kms_testkit``)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from _kms_testkit import ALICE, BOB, Clock, Kms
from kms_api.state import close_state
from storage.db import Database


@pytest.fixture
async def app(tmp_path):
    db = await Database.open(os.path.join(tmp_path, "nimbo.db"))
    application = SimpleNamespace(db=db, clock=Clock(), states={},
                                  config=SimpleNamespace(data_dir=str(tmp_path), default_region="us-east-1"))
    yield application
    state = application.states.get("kms")
    if state is not None:
        await close_state(state)
    await application.db.close()


@pytest.fixture
def alice(app):
    return Kms(app, ALICE)


@pytest.fixture
def bob(app):
    return Kms(app, BOB)
