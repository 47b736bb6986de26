"""The billing commands a user types: `nimbo billing report` and `aws ce get-cost-and-usage`
against the live server, agreeing on the same period and account."""
import datetime as dt
import json
from decimal import Decimal

from tests.e2e.test_foundation import aws_cli


def test_report_and_cost_explorer_cli_agree(server, tenant):
    today = dt.datetime.now(dt.timezone.utc).date()
    period = today.strftime("%Y-%m")
    start = today.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    account_id = server.client("sts", account=tenant).get_caller_identity()["Account"]
    out = server.nimbo("billing", "report", "--data-dir", server.data_dir, "--period", period,
                       "--account", account_id, "--format", "json")
    report = json.loads(out.stdout)
    table = server.nimbo("billing", "report", "--data-dir", server.data_dir, "--period", period,
                         "--account", tenant).stdout
    assert f"Nimbo bill for {period}" in table and "Total" in table
    cli = aws_cli(server, "ce", "get-cost-and-usage", "--time-period",
                  f"Start={start.isoformat()},End={end.isoformat()}", "--granularity", "DAILY",
                  "--metrics", "UnblendedCost", "--group-by", "Type=DIMENSION,Key=SERVICE",
                  account=tenant)
    assert cli.returncode == 0, cli.stderr
    answer = json.loads(cli.stdout)
    assert len(answer["ResultsByTime"]) == (end - start).days
    ce_total = sum(Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
                   for day in answer["ResultsByTime"] for g in day["Groups"])
    assert ce_total == Decimal(report["total"])
    bad = aws_cli(server, "ce", "get-cost-and-usage", "--time-period", "Start=2026-13-01,End=2026-01-01",
                  "--granularity", "DAILY", "--metrics", "UnblendedCost", account=tenant)
    assert bad.returncode != 0 and "ValidationException" in bad.stderr
