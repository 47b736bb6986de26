"""Cost Explorer (``ce``) through its handlers, with requests serialised by botocore and
responses parsed by botocore."""
from __future__ import annotations

from decimal import Decimal

import pytest

from billing import cost_explorer as ce
from billing import errors
from billing.rating import rate_pending

from _billing_testkit import (ACCOUNT, ADMIN, OTHER, FakeAccount, FakeContext, T, call, counts, instance_state,
                      lines, stored_bytes)

GIB = 1 << 30
NOVEMBER = {"Start": "2026-11-01", "End": "2026-12-01"}


@pytest.fixture
async def usage(db, prices):
    await instance_state(db, "i-1", "running", "2026-11-03T10:30:00Z", tags={"Env": "prod", "Team": "a"})
    await instance_state(db, "i-1", "stopped", "2026-11-03T12:00:00Z", tags={"Env": "prod", "Team": "a"})
    await instance_state(db, "i-2", "running", "2026-11-04T00:00:00Z", instance_type="t3.micro",
                         tags={"Env": "dev"})
    await instance_state(db, "i-2", "stopped", "2026-11-04T02:00:00Z", instance_type="t3.micro")
    await stored_bytes(db, "b1", 10 * GIB, "2026-11-03T00:00:00Z", tags={"Env": "prod"})
    await counts(db, "Requests-Tier1", "PutObject", 2000, "2026-11-03T05:00:00Z", resource="b1")
    await counts(db, "Requests-Tier2", "GetObject", 100000, "2026-11-05T05:00:00Z", resource="untagged")
    await instance_state(db, "i-9", "running", "2026-11-03T00:00:00Z", account=OTHER, region="eu-west-1")
    await instance_state(db, "i-9", "stopped", "2026-11-03T03:00:00Z", account=OTHER, region="eu-west-1")
    await rate_pending(db, prices, T("2026-12-01T00:00:00Z"))      # November is rated completely
    return db


def tenant(db, account=ACCOUNT):
    return FakeContext(db, FakeAccount(account))


def admin(db):
    return FakeContext(db, FakeAccount(ADMIN, is_admin=True))


async def cost(ctx, **params):
    params.setdefault("TimePeriod", NOVEMBER)
    params.setdefault("Granularity", "MONTHLY")
    params.setdefault("Metrics", ["UnblendedCost"])
    return await call("ce", "GetCostAndUsage", ce.get_cost_and_usage, ctx, params)


def line_total(rows, account=None):
    return sum((Decimal(r["cost"]) for r in rows if account is None or r["account_id"] == account), Decimal(0))


async def test_a_tenant_sees_its_own_total_and_the_admin_sees_everyone(usage):
    rows = await lines(usage)
    mine = await cost(tenant(usage), Metrics=["UnblendedCost", "UsageQuantity", "BlendedCost"])
    [result] = mine["ResultsByTime"]
    assert result["TimePeriod"] == NOVEMBER and result["Groups"] == []
    assert Decimal(result["Total"]["UnblendedCost"]["Amount"]) == line_total(rows, ACCOUNT)
    assert result["Total"]["UnblendedCost"]["Unit"] == "USD"
    assert result["Total"]["BlendedCost"] == result["Total"]["UnblendedCost"]
    assert result["Total"]["UsageQuantity"]["Unit"] == "N/A"             # Hrs, GB-Mo and Requests mixed
    assert result["Estimated"] is False                                   # November is rated to its end
    december = await cost(tenant(usage), TimePeriod={"Start": "2026-11-30", "End": "2026-12-02"}, Granularity="DAILY")
    assert [r["Estimated"] for r in december["ResultsByTime"]] == [False, True]
    everyone = await cost(admin(usage))
    assert Decimal(everyone["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == line_total(rows)
    other = await cost(tenant(usage, OTHER))
    assert Decimal(other["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"]) == line_total(rows, OTHER)


async def test_group_by_service_and_usage_type_with_aws_names(usage):
    out = await cost(tenant(usage), Metrics=["UnblendedCost", "UsageQuantity"],
                     GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "USAGE_TYPE"}])
    groups = {tuple(g["Keys"]): g["Metrics"] for g in out["ResultsByTime"][0]["Groups"]}
    assert set(groups) == {
        ("Amazon Elastic Compute Cloud - Compute", "BoxUsage:m5.large"),
        ("Amazon Elastic Compute Cloud - Compute", "BoxUsage:t3.micro"),
        ("Amazon Simple Storage Service", "TimedStorage-ByteHrs"),
        ("Amazon Simple Storage Service", "Requests-Tier1"),
        ("Amazon Simple Storage Service", "Requests-Tier2")}
    box = groups[("Amazon Elastic Compute Cloud - Compute", "BoxUsage:m5.large")]
    assert box["UsageQuantity"] == {"Amount": "1.5", "Unit": "Hrs"}
    assert box["UnblendedCost"] == {"Amount": "0.144", "Unit": "USD"}
    assert groups[("Amazon Simple Storage Service", "Requests-Tier1")]["UsageQuantity"] == {
        "Amount": "2000", "Unit": "Requests"}
    assert out["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "USAGE_TYPE"}]
    assert out["ResultsByTime"][0]["Total"] == {}


async def test_linked_accounts_regions_and_tags(usage):
    out = await cost(admin(usage), GroupBy=[{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                                            {"Type": "DIMENSION", "Key": "REGION"}])
    keys = [g["Keys"] for g in out["ResultsByTime"][0]["Groups"]]
    assert keys == [[ACCOUNT, "us-east-1"], [OTHER, "eu-west-1"]]
    assert [a["Value"] for a in out["DimensionValueAttributes"]] == [ACCOUNT, OTHER]
    tags = await cost(tenant(usage), GroupBy=[{"Type": "TAG", "Key": "Env"}])
    assert {g["Keys"][0] for g in tags["ResultsByTime"][0]["Groups"]} == {"Env$prod", "Env$dev", "Env$"}


async def test_daily_and_hourly_granularity_split_the_same_total(usage):
    monthly = await cost(tenant(usage))
    daily = await cost(tenant(usage), Granularity="DAILY")
    assert len(daily["ResultsByTime"]) == 30
    assert daily["ResultsByTime"][2]["TimePeriod"] == {"Start": "2026-11-03", "End": "2026-11-04"}
    assert sum(Decimal(r["Total"]["UnblendedCost"]["Amount"]) for r in daily["ResultsByTime"]) == \
        Decimal(monthly["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"])
    hourly = await cost(tenant(usage), Granularity="HOURLY",
                        TimePeriod={"Start": "2026-11-03T10:00:00Z", "End": "2026-11-03T12:00:00Z"},
                        Filter={"Dimensions": {"Key": "INSTANCE_TYPE", "Values": ["m5.large"]}})
    assert [(r["TimePeriod"]["Start"], r["Total"]["UnblendedCost"]["Amount"]) for r in hourly["ResultsByTime"]] == [
        ("2026-11-03T10:00:00Z", "0.048"), ("2026-11-03T11:00:00Z", "0.096")]


async def test_filters(usage):
    async def total(**filter_):
        out = await cost(tenant(usage), Filter=filter_)
        return Decimal(out["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"])

    rows = await lines(usage, account_id=ACCOUNT)
    s3 = sum(Decimal(r["cost"]) for r in rows if r["product_code"] == "AmazonS3")
    assert await total(Dimensions={"Key": "SERVICE", "Values": ["Amazon Simple Storage Service"]}) == s3
    assert await total(Not={"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Simple Storage Service"]}}) == \
        line_total(rows) - s3
    assert await total(Dimensions={"Key": "USAGE_TYPE", "Values": ["boxusage"],
                                   "MatchOptions": ["STARTS_WITH", "CASE_INSENSITIVE"]}) == line_total(rows) - s3
    prod = sum(Decimal(r["cost"]) for r in rows if '"Env": "prod"' in r["tags"])
    assert await total(Tags={"Key": "Env", "Values": ["prod"]}) == prod
    assert await total(And=[{"Tags": {"Key": "Env", "Values": ["prod"]}},
                            {"Dimensions": {"Key": "SERVICE_CODE", "Values": ["AmazonEC2"]}}]) == Decimal("0.144")
    assert await total(Or=[{"Tags": {"Key": "Env", "MatchOptions": ["ABSENT"]}},
                           {"Dimensions": {"Key": "OPERATION", "Values": ["PutObject"]}}]) == \
        sum(Decimal(r["cost"]) for r in rows if r["tags"] == "{}" or r["operation"] == "PutObject")


@pytest.mark.parametrize("params, message", [
    ({"TimePeriod": {"Start": "2026-12-01", "End": "2026-11-01"}}, "Start date (and hour) should be before end date"),
    ({"TimePeriod": {"Start": "2026-11-01", "End": "2026-11-01"}}, "should be before"),
    ({"TimePeriod": {"Start": "2026-02-30", "End": "2026-03-01"}}, "Invalid date"),
    ({"TimePeriod": {"Start": "11/01/2026", "End": "2026-12-01"}}, "Invalid date format"),
    ({"Granularity": "HOURLY"}, "HOURLY"),
    ({"Metrics": ["Dollars"]}, "Metric Dollars is not supported"),
    ({"GroupBy": [{"Type": "DIMENSION", "Key": k} for k in ("SERVICE", "REGION", "AZ")]}, "up to two"),
    ({"GroupBy": [{"Type": "COST_CATEGORY", "Key": "x"}]}, "Cost categories"),
    ({"GroupBy": [{"Type": "DIMENSION", "Key": "PLATFORM"}]}, "not supported"),
    ({"Filter": {"And": [{"Dimensions": {"Key": "SERVICE", "Values": ["x"]}}]}}, "And expression must have at least 2 operands"),
    ({"Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["x"]}, "Tags": {"Key": "a"}}}, "exactly one root"),
])
async def test_bad_requests_are_validation_exceptions(usage, params, message):
    with pytest.raises(errors.BillingError) as caught:
        await cost(tenant(usage), **params)
    assert caught.value.code == "ValidationException" and caught.value.status == 400
    assert message in caught.value.message


async def test_pagination_and_its_tokens(usage, monkeypatch):
    monkeypatch.setattr(ce, "PAGE_ITEMS", 4)
    request = dict(Granularity="DAILY", GroupBy=[{"Type": "DIMENSION", "Key": "USAGE_TYPE"}])
    pages, token = [], None
    while True:
        out = await cost(tenant(usage), **request, **({"NextPageToken": token} if token else {}))
        pages.append(out)
        token = out.get("NextPageToken")
        if not token:
            break
    assert len(pages) > 2
    monkeypatch.setattr(ce, "PAGE_ITEMS", 10_000)
    whole = await cost(tenant(usage), **request)
    merged: dict = {}
    for page in pages:
        for result in page["ResultsByTime"]:
            merged.setdefault(result["TimePeriod"]["Start"], []).extend(result["Groups"])
    assert merged == {r["TimePeriod"]["Start"]: r["Groups"] for r in whole["ResultsByTime"]}

    monkeypatch.setattr(ce, "PAGE_ITEMS", 4)
    token = pages[0]["NextPageToken"]
    with pytest.raises(errors.BillingError) as caught:
        await cost(tenant(usage), Granularity="MONTHLY", NextPageToken=token)
    assert caught.value.code == "RequestChangedException"
    with pytest.raises(errors.BillingError) as caught:
        await cost(tenant(usage), **request, NextPageToken="not-a-token")
    assert caught.value.code == "InvalidNextTokenException"


async def test_dimension_values_and_tags(usage):
    out = await call("ce", "GetDimensionValues", ce.get_dimension_values, tenant(usage),
                     {"TimePeriod": NOVEMBER, "Dimension": "SERVICE"})
    assert [v["Value"] for v in out["DimensionValues"]] == [
        "Amazon Elastic Compute Cloud - Compute", "Amazon Simple Storage Service"]
    assert (out["ReturnSize"], out["TotalSize"]) == (2, 2)
    accounts = await call("ce", "GetDimensionValues", ce.get_dimension_values, admin(usage),
                          {"TimePeriod": NOVEMBER, "Dimension": "LINKED_ACCOUNT"})
    assert [v["Value"] for v in accounts["DimensionValues"]] == [ACCOUNT, OTHER]
    mine = await call("ce", "GetDimensionValues", ce.get_dimension_values, tenant(usage),
                      {"TimePeriod": NOVEMBER, "Dimension": "LINKED_ACCOUNT"})
    assert [v["Value"] for v in mine["DimensionValues"]] == [ACCOUNT]
    paged = await call("ce", "GetDimensionValues", ce.get_dimension_values, tenant(usage),
                       {"TimePeriod": NOVEMBER, "Dimension": "USAGE_TYPE", "SearchString": "box", "MaxResults": 1,
                        "SortBy": [{"Key": "UnblendedCost", "SortOrder": "DESCENDING"}]})
    assert [v["Value"] for v in paged["DimensionValues"]] == ["BoxUsage:m5.large"]
    assert paged["TotalSize"] == 2 and paged["NextPageToken"]
    keys = await call("ce", "GetTags", ce.get_tags, tenant(usage), {"TimePeriod": NOVEMBER})
    assert keys["Tags"] == ["Env", "Team"]
    values = await call("ce", "GetTags", ce.get_tags, tenant(usage), {"TimePeriod": NOVEMBER, "TagKey": "Env"})
    assert values["Tags"] == ["dev", "prod"] and values["TotalSize"] == 2
    with pytest.raises(errors.BillingError):
        await call("ce", "GetDimensionValues", ce.get_dimension_values, tenant(usage),
                   {"TimePeriod": NOVEMBER, "Dimension": "PLATFORM"})
