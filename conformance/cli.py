"""``python -m conformance``: run the scenarios against an endpoint and print the matrix."""
from __future__ import annotations

import argparse
import json
import os
import sys

from conformance.context import RunState, Target
from conformance.errors import SetupError
from conformance.registry import load_scenarios, select
from conformance.runner import FAIL, as_json, render, run_all


def _csv(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Drive a live AWS-compatible endpoint with real clients (boto3, aws-cli), "
                    "validate every response against botocore's shapes, print a matrix.")
    where = parser.add_argument_group("endpoint")
    where.add_argument("--endpoint", help="the endpoint URL (default $AWS_ENDPOINT_URL)")
    where.add_argument("--access-key", help="default $AWS_ACCESS_KEY_ID")
    where.add_argument("--secret-key", help="default $AWS_SECRET_ACCESS_KEY")
    where.add_argument("--session-token", help="default $AWS_SESSION_TOKEN")
    where.add_argument("--region", help="default $AWS_DEFAULT_REGION, else us-east-1")
    where.add_argument("--start-nimbo", action="store_true",
                       help="start `python -m gateway.cli serve` on a free port over a temporary "
                            "data directory, and use its credentials")
    where.add_argument("--nimbo-arg", action="append", default=[], metavar="ARG",
                       help="an extra argument for `gateway.cli serve` (repeatable)")
    where.add_argument("--nimbo-tiny-image", action="store_true",
                       help="register the tiny image (`gateway.cli image build-tiny`, cached in "
                            "$NIMBO_TINY_IMAGE_CACHE) before starting Nimbo, so that the EC2 "
                            "instance scenarios have an image to launch")
    where.add_argument("--keep-data", action="store_true",
                       help="keep the started Nimbo's data directory (and its server.log)")
    where.add_argument("--no-verify-ssl", action="store_true", help="accept any TLS certificate")
    what = parser.add_argument_group("scenarios")
    what.add_argument("--only", action="append", metavar="LIST",
                      help="services (s3,ec2), rows (s3:ListBuckets) or scenario ids "
                           "(s3.list_buckets), comma-separated")
    what.add_argument("--skip", action="append", metavar="LIST",
                      help="leave out these services, rows or scenario ids (as --only)")
    what.add_argument("--clients", action="append", metavar="LIST",
                      help="clients to run (boto3,awscli), comma-separated")
    what.add_argument("--lenient", action="append", metavar="CHECKS",
                      help="report these checks as warnings, not failures: request-id, wire "
                           "(or wire.format, wire.element, ...), shape (or shape.extra, ...)")
    what.add_argument("--retries", type=int, default=1,
                      help="attempts per call (default 1: a retried failure is still a failure)")
    what.add_argument("-j", "--jobs", type=int, default=4,
                      help="scenarios run at once (default 4; 1 for one after the other)")
    what.add_argument("--list", action="store_true", help="list the scenarios and exit")
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the results as JSON")
    out.add_argument("-v", "--verbose", action="store_true",
                     help="every failure of a scenario, notes, and tracebacks on stderr")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def resolve_target(args: argparse.Namespace) -> Target:
    endpoint = args.endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise SetupError("no endpoint: pass --endpoint URL (or set AWS_ENDPOINT_URL), "
                         "or --start-nimbo")
    access_key = args.access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = args.secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise SetupError("no credentials: pass --access-key and --secret-key "
                         "(or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    region = (args.region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
              or "us-east-1")
    return Target(endpoint.rstrip("/"), access_key, secret_key, region,
                  args.session_token or os.environ.get("AWS_SESSION_TOKEN") or None,
                  verify_ssl=not args.no_verify_ssl)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scenarios = select(load_scenarios(), _csv(args.only), _csv(args.clients), _csv(args.skip))
    if args.list:
        for s in scenarios:
            print(f"{s.id:38} {s.client:7} {', '.join(s.rows)}")
            if args.verbose and s.doc:
                print(f"{'':47}{s.doc}")
        return 0
    if not scenarios:
        print("conformance: no scenario matches --only/--clients/--skip", file=sys.stderr)
        return 2
    nimbo = None
    try:
        if args.start_nimbo:
            from conformance.nimbo import NimboProcess  # noqa: PLC0415
            nimbo = NimboProcess(extra_args=args.nimbo_arg, keep_data=args.keep_data,
                                 tiny_image=args.nimbo_tiny_image)
            if not args.quiet:
                print(f"starting nimbo on port {nimbo.port} (data in {nimbo.data_dir})",
                      file=sys.stderr)
            target = nimbo.start(region=args.region)
            if args.nimbo_tiny_image and not args.quiet:
                print(f"tiny image: {nimbo.image_id}" if nimbo.image_id else
                      f"tiny image not registered: {nimbo.image_error}", file=sys.stderr)
            target.verify_ssl = not args.no_verify_ssl
        else:
            target = resolve_target(args)
        state = RunState(target, retries=args.retries)
        results = run_all(state, scenarios, _csv(args.lenient),
                          progress=None if args.quiet else _progress(args.verbose),
                          jobs=args.jobs)
    except SetupError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    finally:
        if nimbo is not None:
            nimbo.stop()
    print(render(results, target.endpoint, target.region, verbose=args.verbose))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(as_json(results, target.endpoint, target.region), fh, indent=2, default=str)
    return 1 if any(r.status == FAIL for r in results) else 0


def _progress(verbose: bool):
    def report(result) -> None:
        s = result.scenario
        line = f"{result.status:4} {s.id} [{s.client}] {result.duration:.2f}s"
        if result.reason:
            line += f"  {result.reason}"
        print(line, file=sys.stderr, flush=True)
        if verbose and result.traceback:
            print(result.traceback, file=sys.stderr)
    return report
