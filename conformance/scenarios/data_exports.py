"""AWS Data Exports scenarios (``bcm-data-exports``, JSON protocol): a FOCUS 1.2 export's life
cycle and the errors of a query Nimbo does not serve and of an export that does not exist."""
from __future__ import annotations

from conformance import scenario

TABLE = "FOCUS_1_2_AWS"


def _export(name: str, bucket: str, query: str = f"SELECT * FROM {TABLE}") -> dict:
    return {"Name": name, "DataQuery": {"QueryStatement": query},
            "DestinationConfigurations": {"S3Destination": {
                "S3Bucket": bucket, "S3Prefix": "focus", "S3Region": "us-east-1",
                "S3OutputConfigurations": {"OutputType": "CUSTOM", "Format": "TEXT_OR_CSV",
                                           "Compression": "GZIP", "Overwrite": "OVERWRITE_REPORT"}}},
            "RefreshCadence": {"Frequency": "SYNCHRONOUS"}}


def _delete_quietly(ctx, arn: str) -> None:
    try:
        ctx.client("bcm-data-exports", validate=False).delete_export(ExportArn=arn)
    except Exception:  # noqa: BLE001 - a clean-up
        pass


@scenario("bcm-data-exports", ["CreateExport", "GetExport", "ListExports", "UpdateExport", "DeleteExport"],
          client="boto3")
def focus_export_life_cycle(ctx):
    """A FOCUS 1.2 export is created, read back, listed, changed to chosen columns and deleted."""
    name = ctx.name("focus").replace(".", "-")
    arn = ctx.call("bcm-data-exports", "CreateExport", Export=_export(name, ctx.name("bucket")))["ExportArn"]
    ctx.defer(_delete_quietly, ctx, arn)
    ctx.check(arn.startswith("arn:aws:bcm-data-exports:"), f"ExportArn {arn!r}")
    got = ctx.call("bcm-data-exports", "GetExport", ExportArn=arn)
    ctx.check_equal(got["Export"]["Name"], name, "Export.Name")
    ctx.check_equal(got["ExportStatus"]["StatusCode"], "HEALTHY", "ExportStatus.StatusCode")
    listed = ctx.call("bcm-data-exports", "ListExports")["Exports"]
    ctx.check(arn in [e["ExportArn"] for e in listed], "the export is listed")
    narrower = _export(name, ctx.name("bucket"), f"SELECT BilledCost, ServiceName FROM {TABLE}")
    ctx.call("bcm-data-exports", "UpdateExport", ExportArn=arn, Export=narrower)
    query = ctx.call("bcm-data-exports", "GetExport", ExportArn=arn)["Export"]["DataQuery"]["QueryStatement"]
    ctx.check_equal(query, narrower["DataQuery"]["QueryStatement"], "the updated query")
    ctx.call("bcm-data-exports", "DeleteExport", ExportArn=arn)
    with ctx.expect_error("ResourceNotFoundException"):
        ctx.call("bcm-data-exports", "GetExport", ExportArn=arn)


@scenario("bcm-data-exports", ["CreateExport"], client="boto3", variant="errors")
def focus_export_errors(ctx):
    """A query of a table that is not there is a ValidationException."""
    with ctx.expect_error("ValidationException"):
        ctx.call("bcm-data-exports", "CreateExport",
                 Export=_export(ctx.name("bad").replace(".", "-"), ctx.name("bucket"), "SELECT * FROM NO_SUCH_TABLE"))
