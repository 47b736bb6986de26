"""The ``cur`` API: report definitions of the signer's account."""
from __future__ import annotations

import pytest

from billing import errors
from billing import report_definitions as cur

from _billing_testkit import ACCOUNT, OTHER, FakeAccount, FakeContext, call


def definition(name="daily", **changes):
    spec = {"ReportName": name, "TimeUnit": "HOURLY", "Format": "textORcsv", "Compression": "GZIP",
            "AdditionalSchemaElements": ["RESOURCES"], "S3Bucket": "reports", "S3Prefix": "cur",
            "S3Region": "us-east-1"}
    spec.update(changes)
    return spec


def ctx(db, account=ACCOUNT):
    return FakeContext(db, FakeAccount(account))


async def op(context, name, params):
    handler = cur.OPERATIONS[name]
    return await call("cur", name, handler, context, params)


async def test_put_describe_modify_delete(db):
    me = ctx(db)
    assert await op(me, "PutReportDefinition", {"ReportDefinition": definition(),
                                                 "Tags": [{"Key": "team", "Value": "ops"}]}) == {}
    described = await op(me, "DescribeReportDefinitions", {})
    assert described["ReportDefinitions"] == [{**definition(), "RefreshClosedReports": True,
                                                "ReportVersioning": "CREATE_NEW_REPORT"}]
    assert (await op(ctx(db, OTHER), "DescribeReportDefinitions", {}))["ReportDefinitions"] == []
    await op(me, "ModifyReportDefinition", {"ReportName": "daily",
                                            "ReportDefinition": definition(TimeUnit="DAILY")})
    assert (await op(me, "DescribeReportDefinitions", {}))["ReportDefinitions"][0]["TimeUnit"] == "DAILY"
    assert (await op(me, "ListTagsForResource", {"ReportName": "daily"}))["Tags"] == [{"Key": "team", "Value": "ops"}]
    await op(me, "TagResource", {"ReportName": "daily", "Tags": [{"Key": "cost", "Value": "1"}]})
    await op(me, "UntagResource", {"ReportName": "daily", "TagKeys": ["team"]})
    assert (await op(me, "ListTagsForResource", {"ReportName": "daily"}))["Tags"] == [{"Key": "cost", "Value": "1"}]
    deleted = await op(me, "DeleteReportDefinition", {"ReportName": "daily"})
    assert "daily" in deleted["ResponseMessage"]
    assert (await op(me, "DescribeReportDefinitions", {}))["ReportDefinitions"] == []


async def test_duplicates_limits_and_missing_reports(db):
    me = ctx(db)
    await op(me, "PutReportDefinition", {"ReportDefinition": definition("r0")})
    with pytest.raises(errors.BillingError) as caught:
        await op(me, "PutReportDefinition", {"ReportDefinition": definition("r0")})
    assert caught.value.code == "DuplicateReportNameException"
    await op(ctx(db, OTHER), "PutReportDefinition", {"ReportDefinition": definition("r0")})  # other account: fine
    for n in range(1, 5):
        await op(me, "PutReportDefinition", {"ReportDefinition": definition(f"r{n}")})
    with pytest.raises(errors.BillingError) as caught:
        await op(me, "PutReportDefinition", {"ReportDefinition": definition("r5")})
    assert caught.value.code == "ReportLimitReachedException"
    for name, params in (("ModifyReportDefinition", {"ReportName": "nope", "ReportDefinition": definition("nope")}),
                         ("DeleteReportDefinition", {"ReportName": "nope"})):
        with pytest.raises(errors.BillingError) as caught:
            await op(me, name, params)
        assert caught.value.code == "ValidationException"
    with pytest.raises(errors.BillingError) as caught:
        await op(me, "ListTagsForResource", {"ReportName": "nope"})
    assert caught.value.code == "ResourceNotFoundException"


async def test_describe_pages_by_five(db):
    me = FakeContext(db, FakeAccount(ACCOUNT))
    for n in range(5):
        await op(me, "PutReportDefinition", {"ReportDefinition": definition(f"r{n}")})
    page = await op(me, "DescribeReportDefinitions", {"MaxResults": 5})
    assert len(page["ReportDefinitions"]) == 5 and "NextToken" not in page
    async with db.transaction() as tx:   # a sixth (the limit is per account; add one directly)
        await tx.execute("INSERT INTO billing_report_definitions (account_id, report_name, definition, created_us)"
                         " VALUES (?, 'r9', ?, 0)", (ACCOUNT, '{"ReportName": "r9"}'))
    first = await op(me, "DescribeReportDefinitions", {})
    second = await op(me, "DescribeReportDefinitions", {"NextToken": first["NextToken"]})
    assert [d["ReportName"] for d in first["ReportDefinitions"] + second["ReportDefinitions"]] == \
        ["r0", "r1", "r2", "r3", "r4", "r9"]


@pytest.mark.parametrize("changes, words", [
    ({"ReportName": "bad name"}, "reportDefinition.reportName"),
    ({"TimeUnit": "WEEKLY"}, "Member must satisfy enum value set: [HOURLY, DAILY, MONTHLY]"),
    ({"S3Bucket": "no/slash"}, "reportDefinition.s3Bucket"),
    ({"S3Prefix": "a b"}, "reportDefinition.s3Prefix"),
    ({"Format": "Parquet", "Compression": "Parquet"}, "textORcsv with GZIP"),
    ({"Compression": "ZIP"}, "textORcsv with GZIP"),
    ({"AdditionalSchemaElements": ["EVERYTHING"]}, "additionalSchemaElements"),
])
async def test_bad_definitions_are_validation_exceptions(db, changes, words):
    with pytest.raises(errors.BillingError) as caught:
        await cur.put_report_definition(ctx(db), {"ReportDefinition": definition(**changes)})
    assert caught.value.code == "ValidationException" and words in caught.value.message


async def test_a_report_cannot_be_renamed(db):
    me = ctx(db)
    await op(me, "PutReportDefinition", {"ReportDefinition": definition("a")})
    with pytest.raises(errors.BillingError) as caught:
        await op(me, "ModifyReportDefinition", {"ReportName": "a", "ReportDefinition": definition("b")})
    assert caught.value.code == "ValidationException"
