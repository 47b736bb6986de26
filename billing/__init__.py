"""Billing: the usage ledger's reading side, hourly rating against a price list, reports (table,
CSV, JSON), the CUR export with its scheduled delivery, and the ``ce`` / ``cur`` APIs.

What the server wires:

- Start-up / shutdown: ``billing.scheduler.start_billing(app, deliver=...)`` after the database is
  open (it applies billing's migrations, loads the price list, starts the rating + delivery task)
  and ``billing.scheduler.stop_billing(obj)`` before the database closes.
- The CUR delivery seam: ``deliver(bucket, key, data, account_id)`` (sync or async) that writes one
  object and raises when the bucket does not exist or is not ``account_id``'s
  (``billing.cur_export``).
- Services: ``ce`` -> ``billing.cost_explorer.OPERATIONS``, ``cur`` ->
  ``billing.report_definitions.OPERATIONS``; errors are ``billing.errors.BillingError``.
- CLI: ``nimbo billing report`` -> ``await billing.report.billing_report(db, config, period,
  account_id, fmt)``.
- Tables: ``billing.schema.SCHEMA`` (``ensure_schema(db)`` applies it and the ledger's).

Conventions (AWS's, where AWS has one):

- Usage types carry the region billing code (``EUW2-BoxUsage:m5.large``); us-east-1 has none and
  eu-west-1's code is ``EU``, not ``EUW1`` (AWS's "Region billing codes" table; see
  ``billing.catalog``).
- EC2: ``BoxUsage:<type>`` in Hrs, operation RunInstances, per-second billing measured to the
  microsecond, 60 s minimum per entry into ``running``; a minimum that a short run does not use
  up is added at the run's start, so it counts in the hour the run started even when the run
  itself ended in the next hour (10:59:50-11:00:10 bills 50 s at 10:00 and 10 s at 11:00).
  EBS ``EBS:VolumeUsage.<gp2|gp3|piops|io2|st1|sc1>`` in GB-Mo while the volume exists
  (no minimum), snapshots ``EBS:SnapshotUsage``; VM network bytes ``DataTransfer-In/Out-Bytes``.
- S3: ``TimedStorage-ByteHrs`` reported in GB-Mo (byte-hours / 2^30 / hours in the month),
  ``Requests-Tier1/2`` in Requests, ``DataTransfer-In/Out-Bytes`` in GB (2^30 bytes).
- KMS (``awskms``): usage types carry the region *name* (``us-east-1-KMS-Requests``,
  ``eu-west-2-KMS-Keys``); ``KMS-Keys`` in key-months (unit ``Keys``): a customer managed key
  bills while Enabled or Disabled, not while pending deletion unless the deletion is cancelled
  (then as if never scheduled); AWS managed keys are free (``kms_api.key_months``).
- Amounts: 12 decimal places, telescoping within each month so the month's lines add up to the
  exactly rounded total (see ``billing.rating``); ``cost = rate x amount`` exactly; Decimal only.
- Cost Explorer SERVICE values: "Amazon Elastic Compute Cloud - Compute" (BoxUsage),
  "EC2 - Other" (EBS, EC2 data transfer), "Amazon Simple Storage Service".

Left out: tiered prices (S3's first 50 TB ...), free tiers, credits, refunds, taxes, Savings Plans
and Reserved Instances (every line is ``Usage`` at its On-Demand rate), Parquet/ZIP CUR, CUR 2.0
(Data Exports), cost categories, forecasts.
"""
