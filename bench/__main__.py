"""``make bench``: the S3 and EC2 benchmarks of issue 12, Nimbo beside its peers measured in the
same run, printed as ONE table of figures and the targets they are checked against.

    python -m bench [--quick] [--peers null,s3rver,moto] [--baseline DIR] [--instances 10000]
                    [--duration 10] [--connections 16] [--skip-s3] [--skip-ec2] [--small-only]
                    [--no-why]

Every server runs alone on the machine's cores in its turn (the load generators are wrk and curl,
C programs); every load loop is bounded in count and time; all traffic is on 127.0.0.1. Figures
from a shared machine are noisy (a busy window halves them): compare the columns of one run, not
runs with each other. ``--baseline DIR`` (another checkout of Nimbo, e.g. ``git worktree add``
of main) adds a ``base`` column: a change measured before and after in the same run.
``NIMBO_BENCH_PROFILE=FILE`` runs Nimbo under cProfile (slower: for where the time goes only).

After the table, for each row whose target Nimbo misses: why (``bench.why``), from profile
passes run on Nimbo after its figures are taken, so they do not change them (``--no-why``: the
table only). It is the default because it costs little: a 2 s wrk run each for the 4 KiB GET
and PUT, and for any other missed row one more run of its own workload (two big transfers, one
upload, one listing, a few EC2 calls); rows that meet their targets add nothing.
"""
from __future__ import annotations

import argparse
import sys
import time

from bench import ec2, s3
from bench.peers import moto_installed
from bench.table import render
from bench.why import explain

ORDER = ["nimbo", "base", "null", "s3rver", "moto"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    s3.add_arguments(parser)
    parser.add_argument("--instances", type=int, default=10_000, help="instances for the filtered Describe")
    parser.add_argument("--page-instances", type=int, default=1_000, help="instances for the one-page Describe")
    parser.add_argument("--samples", type=int, default=5, help="DescribeInstances calls per figure (p50)")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-ec2", action="store_true")
    args = parser.parse_args(argv)
    s3.fix_arguments(args)
    if args.quick:
        args.instances, args.page_instances, args.samples = 2_000, 1_000, 3
    started = time.monotonic()
    rows, servers = [], set()
    if not args.skip_s3:
        s3_rows, s3_servers = s3.run(args)
        rows += s3_rows
        servers.update(s3_servers)
    if not args.skip_ec2:
        with_moto = "moto" in args.peers.split(",") and moto_installed()
        ec2_rows, ec2_servers = ec2.scale_rows(args.instances, args.page_instances, args.samples, 3,
                                               with_moto, args.baseline, args.notes,
                                               targets=args.targets, why=args.why_data)
        rows += ec2_rows
        servers.update(ec2_servers)
    columns = [name for name in ORDER if name in servers]
    notes = args.notes + [f"(2 shared cores: compare columns of this run; bench took "
                          f"{time.monotonic() - started:.0f}s)"]
    print(render(rows, columns, notes))
    if args.why_data.enabled:
        print(explain(rows, args.why_data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
