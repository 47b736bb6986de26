"""The price list: versions with effective times, exact rates, refusal with the line at fault,
and the last good list kept in the data directory."""
from __future__ import annotations

import os
from decimal import Decimal

import pytest

from billing.prices import DEFAULT_PRICE_LIST, PriceListError, PriceSource, parse_price_list
from billing.rating import rate_pending, refresh_prices

from _billing_testkit import TEST_PRICES, T, instance_state, lines

V2 = TEST_PRICES + """
[[version]]
id = "v2"
effective = "2026-11-03T10:30:00Z"
[version.AmazonEC2]
"BoxUsage:m5.large" = "0.2"
"""


def test_the_shipped_price_list_parses_and_prices_the_usual_things(default_prices):
    rate = lambda product, usage: default_prices.rate(product, "us-east-1", usage, T("2026-11-01T00:00:00Z"))[0]  # noqa: E731
    assert rate("AmazonEC2", "BoxUsage:m5.large") == Decimal("0.096")
    assert rate("AmazonEC2", "BoxUsage:z9.huge") == Decimal("0.05")          # the wildcard
    assert rate("AmazonS3", "TimedStorage-ByteHrs") == Decimal("0.023")
    assert rate("AmazonS3", "Requests-Tier1") == Decimal("0.000005")
    assert rate("AmazonEC2", "EBS:VolumeUsage.gp3") == Decimal("0.08")
    assert all(isinstance(r, Decimal) for v in default_prices.versions for t in v.rates.values() for r in t.values())


def test_versions_inherit_and_apply_from_their_start(prices):
    later = parse_price_list(V2)
    assert later.rate("AmazonEC2", "us-east-1", "BoxUsage:m5.large", T("2026-11-03T10:29:59Z")) == (Decimal("0.096"), "v1")
    assert later.rate("AmazonEC2", "us-east-1", "BoxUsage:m5.large", T("2026-11-03T10:30:00Z")) == (Decimal("0.2"), "v2")
    assert later.rate("AmazonEC2", "us-east-1", "BoxUsage:m5.xlarge", T("2026-12-01T00:00:00Z")) == (Decimal("0.192"), "v2")
    assert later.rate("AmazonEC2", "eu-west-1", "BoxUsage:m5.large", T("2026-12-01T00:00:00Z"))[0] == Decimal("0.107")
    assert later.rate("AmazonS3", "us-east-1", "Unpriced", 0) == (Decimal(0), "v1")
    assert prices.first_difference(later) == T("2026-11-03T10:30:00Z")
    assert later.first_difference(parse_price_list(V2)) is None


@pytest.mark.parametrize("text, line, words", [
    ('currency = "USD"\n[[version]]\nid = "a"\neffective = 2026-01-01T00:00:00Z\n[version.AmazonEC2]\n'
     '"BoxUsage:m5.large" = 0.096\n', 6, "floats are not exact"),
    ('[[version]]\nid = "a"\neffective = 2026-01-01T00:00:00Z\n[version.AmazonEC2]\n"x" = "-1"\n', 5, "non-negative"),
    ('[[version]]\nid = "a"\neffective = "soon"\n', 3, "effective"),
    ('[[version]]\nid = "a"\neffective = 2026-01-01T00:00:00Z\n[version.AmazonRDS]\n"x" = "1"\n', 4, "unknown product"),
    ('[[version]]\nid = "a"\neffective = 2026-01-01T00:00:00Z\n[version.AmazonEC2\n"x" = "1"\n', 4, "not valid TOML"),
    ('currency = "EUR"\n[[version]]\nid = "a"\neffective = 2026-01-01T00:00:00Z\n', 1, "USD"),
])
def test_a_bad_file_is_refused_with_the_line_at_fault(text, line, words):
    with pytest.raises(PriceListError) as caught:
        parse_price_list(text, "prices.toml")
    assert caught.value.line == line and words in str(caught.value)
    assert f"prices.toml: line {line}:" in str(caught.value)


async def test_a_bad_file_at_start_up_leaves_the_last_good_one_in_force(tmp_path, caplog):
    path = tmp_path / "prices.toml"
    path.write_text(V2)
    source = PriceSource(str(path), str(tmp_path / "data"))
    assert source.load().versions[-1].version_id == "v2"
    kept = tmp_path / "data" / "billing" / "last-good-prices.toml"
    assert kept.read_text() == V2

    path.write_text(V2.replace('"0.2"', "0.2"))            # an operator's typo; the server restarts
    restarted = PriceSource(str(path), str(tmp_path / "data"))
    prices = restarted.load()
    assert restarted.error is not None and restarted.error.line == V2.count("\n", 0, V2.index('"0.2"')) + 1
    assert "price list refused" in caplog.text
    assert prices.versions[-1].version_id == "v2" and prices.source.endswith("last-good-prices.toml")
    assert kept.read_text() == V2                           # the good copy is not overwritten

    os.utime(path, (1, 1))
    current, replaced = restarted.refresh()                 # still bad: nothing changes
    assert current is prices and replaced is None


async def test_without_any_good_copy_the_shipped_list_is_used(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text("not toml [")
    prices = PriceSource(str(path), str(tmp_path / "data")).load()
    assert prices.source == DEFAULT_PRICE_LIST


async def test_a_changed_price_list_rates_again_from_its_first_difference(db, tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(TEST_PRICES)
    source = PriceSource(str(path), str(tmp_path / "data"))
    await instance_state(db, "i-1", "running", "2026-11-03T10:00:00Z")
    await rate_pending(db, await refresh_prices(db, source), T("2026-11-03T12:00:00Z"))
    assert [r["rate"] for r in await lines(db)] == ["0.096", "0.096"]

    path.write_text(V2)                                     # someone back-dates a price change
    os.utime(path, (2_000_000_000, 2_000_000_000))
    await rate_pending(db, await refresh_prices(db, source), T("2026-11-03T12:00:00Z"))
    assert [(r["rate"], r["amount"]) for r in await lines(db)] == [
        ("0.096", "0.500000000000"), ("0.2", "0.500000000000"), ("0.2", "1.000000000000")]

    restarted = PriceSource(str(path), str(tmp_path / "data"))
    assert (await refresh_prices(db, restarted)).digest == source.current.digest
