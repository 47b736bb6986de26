"""Fixtures for billing tests (helpers are in ``_billing_testkit``)."""
from __future__ import annotations

import pytest

from billing.prices import DEFAULT_PRICE_LIST, parse_price_list
from billing.schema import ensure_schema
from storage.db import Database

from _billing_testkit import TEST_PRICES


@pytest.fixture
def prices():
    return parse_price_list(TEST_PRICES, "test-prices.toml")


@pytest.fixture
def default_prices():
    with open(DEFAULT_PRICE_LIST) as fh:
        return parse_price_list(fh.read(), DEFAULT_PRICE_LIST)


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(str(tmp_path / "nimbo.db"))
    await ensure_schema(database)
    yield database
    await database.close()
