"""EC2 benchmark: launch times of real VMs, and DescribeInstances at scale next to moto's server.

    python -m bench.ec2 [--runs 3] [--instances 10000] [--peer-instances 1000] [--samples 5]
                        [--peer-samples 3] [--skip-vms] [--skip-describe]

- RunInstances -> ``running`` and RunInstances -> user data done (a marker the user data prints,
  with the instance id it read from the metadata service, seen through GetConsoleOutput), on the
  QEMU driver with the tiny image (TCG where the host has no hardware virtualisation): the median
  of ``--runs`` launches, one after the other. moto boots nothing, so these have no peer.
- DescribeInstances with a tag filter on Nimbo's fake driver and on moto's server, measured in
  the same run at ``--peer-instances`` instances each, then on Nimbo alone grown to
  ``--instances``: the p50 of signed requests (timed to the last byte of the response, not
  parsed) for the first page of tag:Env=prod (MaxResults=1000; half the instances are prod) and
  for tag:Role=canary (ten matches). The instances are made with RunInstances (500 a call);
  Nimbo's per-account instance limit (``max_instances``) and host capacity are raised for it with
  a config file. moto is not taken to 10,000: its RunInstances of 1,000 takes ~30 s and its
  DescribeInstances grows to 30-60 s a call at 4,000 instances, so the whole would take hours.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.peers import REPO, Peer, moto_installed, start_moto, start_nimbo
from bench.table import Row, at_most, render

TINY_IMAGE_CACHE = os.environ.get("NIMBO_TINY_IMAGE_CACHE",
                                  os.path.join(REPO, "tests", "backend", ".cache", "tiny-image"))
MARKER_SCRIPT = """#!/bin/sh
id=$(printf 'GET /latest/meta-data/instance-id HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\n\\r\\n' \\
     | nc -w 5 169.254.169.254 80 | tail -n 1)
echo "BENCH-MARKER-$id"
"""
BATCH = 500
CANARIES = 10
# The targets of issue 12, by row key (ms); ``python -m bench --test-target KEY=VALUE`` replaces one.
TARGETS = {"describe_page_ms": 100, "describe_filter_ms": 20, "run100_ms": 1000}


def ec2_client(peer: Peer):
    return boto3.client("ec2", endpoint_url=peer.endpoint, region_name="us-east-1",
                        aws_access_key_id=peer.access_key, aws_secret_access_key=peer.secret_key,
                        config=botocore.config.Config(retries={"max_attempts": 3}, read_timeout=600))


def data_dir_of(peer: Peer) -> str:
    return os.path.join(peer.workdir, "data")


def register_tiny_image(peer: Peer) -> str:
    """``nimbo image build-tiny`` into the running server's data directory, the image itself
    built once into the shared cache."""
    from backend.tiny_image import build_tiny_image  # noqa: PLC0415
    build_tiny_image(TINY_IMAGE_CACHE)
    link = os.path.join(data_dir_of(peer), "tiny-image")
    if not os.path.lexists(link):
        os.symlink(os.path.abspath(TINY_IMAGE_CACHE), link)
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "image", "build-tiny", "--if-missing",
                          "--data-dir", data_dir_of(peer)], cwd=peer.repo, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p50_ms(values: list[float]) -> float:
    return median(values) * 1000


# -- real VMs ----------------------------------------------------------------------------------------

def state_of(ec2, instance_id: str) -> str:
    out = ec2.describe_instances(InstanceIds=[instance_id])
    return out["Reservations"][0]["Instances"][0]["State"]["Name"]


def one_launch(ec2, image_id: str, timeout: float = 180.0) -> tuple[float, float]:
    """(seconds to running, seconds to the user data's marker) of one RunInstances."""
    started = time.monotonic()
    out = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t2.nano",
                            UserData=MARKER_SCRIPT)
    instance_id = out["Instances"][0]["InstanceId"]
    try:
        while state_of(ec2, instance_id) != "running":
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{instance_id} not running after {timeout:.0f}s")
            time.sleep(0.05)
        to_running = time.monotonic() - started
        marker = f"BENCH-MARKER-{instance_id}"
        while marker not in (ec2.get_console_output(InstanceId=instance_id).get("Output") or ""):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"no user data marker from {instance_id} after {timeout:.0f}s")
            time.sleep(0.1)
        return to_running, time.monotonic() - started
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        deadline = time.monotonic() + 60
        while state_of(ec2, instance_id) != "terminated" and time.monotonic() < deadline:
            time.sleep(0.2)


def bench_vms(runs: int) -> None:
    print(f"== real VMs: QEMU driver, tiny image, {runs} launches one after the other", flush=True)
    nimbo = start_nimbo(("--backend", "qemu"))
    try:
        image_id = register_tiny_image(nimbo)
        ec2 = ec2_client(nimbo)
        accel = _accel()
        results = []
        for run in range(runs):
            to_running, to_marker = one_launch(ec2, image_id)
            results.append((to_running, to_marker))
            print(f"   run {run + 1}: running after {to_running:.2f}s, user data done after {to_marker:.2f}s",
                  flush=True)
        print(f"RunInstances -> running            median {median([r for r, _ in results]):6.2f} s  ({accel})")
        print(f"RunInstances -> user data done     median {median([m for _, m in results]):6.2f} s  ({accel})")
    finally:
        nimbo.stop()


def _accel() -> str:
    try:
        from backend.qemu_cmdline import detect_accel  # noqa: PLC0415
        return detect_accel()
    except Exception:  # noqa: BLE001
        return "?"


# -- DescribeInstances at scale ----------------------------------------------------------------------

def populate(peer: Peer, image_id: str, count: int, canaries: bool) -> float:
    """``count`` more instances by RunInstances, ``BATCH`` at a time, batches tagged Env=prod and
    Env=dev in turn (so half are prod); ten of them tagged Role=canary when ``canaries``. Seconds
    until every instance is out of ``pending``."""
    ec2 = ec2_client(peer)
    zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
    started = time.monotonic()
    ids: list[str] = []
    for batch in range(count // BATCH):
        env = "prod" if batch % 2 == 0 else "dev"
        out = ec2.run_instances(ImageId=image_id, MinCount=BATCH, MaxCount=BATCH, InstanceType="t2.nano",
                                Placement={"AvailabilityZone": zones[batch % len(zones)]},
                                TagSpecifications=[{"ResourceType": "instance",
                                                    "Tags": [{"Key": "Env", "Value": env}]}])
        ids += [i["InstanceId"] for i in out["Instances"]]
    if canaries:
        ec2.create_tags(Resources=ids[:: max(1, len(ids) // CANARIES)][:CANARIES],
                        Tags=[{"Key": "Role", "Value": "canary"}])
    while ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending"]}],
                                 MaxResults=5)["Reservations"]:
        time.sleep(1)
    return time.monotonic() - started


def signed_request(peer: Peer, body: str) -> tuple[int, bytes, float]:
    """(status, body, seconds to the last byte) of a SigV4-signed EC2 query request."""
    request = AWSRequest(method="POST", url=peer.endpoint + "/", data=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(peer.access_key, peer.secret_key), "ec2", "us-east-1").add_auth(request)
    prepared = request.prepare()
    parts = urllib.parse.urlsplit(peer.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=900)
    try:
        started = time.monotonic()
        conn.request("POST", "/", body=prepared.body, headers=dict(prepared.headers))
        response = conn.getresponse()
        data = response.read()
        return response.status, data, time.monotonic() - started
    finally:
        conn.close()


def describe_latency(peer: Peer, query: dict[str, str], samples: int) -> tuple[float, int]:
    """(p50 seconds, instances in the answer) of DescribeInstances with ``query``; a first call
    (not counted) warms up and gives the size of the answer."""
    body = urllib.parse.urlencode({"Action": "DescribeInstances", "Version": "2016-11-15", **query})
    status, data, _ = signed_request(peer, body)
    if status != 200:
        raise RuntimeError(f"{peer.name}: DescribeInstances -> {status}: {data[:300]!r}")
    found = len(re.findall(rb"<instanceId>", data))
    times = [signed_request(peer, body)[2] for _ in range(samples)]
    return median(times), found


QUERIES = {
    "tag:Env=prod, MaxResults=1000 (first page)": {
        "Filter.1.Name": "tag:Env", "Filter.1.Value.1": "prod", "MaxResults": "1000"},
    f"tag:Role=canary ({CANARIES} match)": {"Filter.1.Name": "tag:Role", "Filter.1.Value.1": "canary"},
}


def _table(title: str, results: dict[str, dict[str, tuple[float, int]]]) -> None:
    names = list(results)
    print(title)
    print(f"  {'DescribeInstances':44}" + "".join(f"{n + ' p50':>13}" for n in names)
          + (f"{'moto/nimbo':>12}" if len(names) == 2 else "") + "   instances returned")
    for query in QUERIES:
        cells = [results[n][query] for n in names]
        line = f"  {query:44}" + "".join(f"{p * 1000:11.0f}ms" for p, _ in cells)
        if len(names) == 2:
            line += f"{cells[1][0] / cells[0][0]:11.1f}x"
        print(line + "   " + " / ".join(str(found) for _, found in cells))


def bench_describe(count: int, peer_count: int, samples: int, peer_samples: int) -> None:
    print(f"== DescribeInstances with a tag filter: Nimbo (fake driver) and moto at {peer_count:,} "
          f"instances, then Nimbo alone at {count:,}", flush=True)
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f"max_instances = {count + 100}\nhost_vcpus = {count * 4}\n"
                 f"host_memory_mib = {count * 2048}\nec2_housekeeping_seconds = 3600\n")
    config.close()
    peers: list[Peer] = []
    try:
        nimbo = start_nimbo(("--backend", "fake", "--config", config.name))
        peers.append(nimbo)
        moto = start_moto()
        peers.append(moto)
        nimbo_image = register_tiny_image(nimbo)
        moto_images = ec2_client(moto).describe_images(
            Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"]
        moto_image = moto_images[0]["ImageId"] if moto_images else "ami-12c6146b"
        launched = {}
        for peer, image_id in ((nimbo, nimbo_image), (moto, moto_image)):
            launched[peer.name] = populate(peer, image_id, peer_count, canaries=True)
        print(f"  RunInstances of {peer_count:,} ({BATCH} a call) until none is pending: "
              f"nimbo {launched['nimbo']:.1f}s, moto {launched['moto']:.1f}s "
              f"({launched['moto'] / launched['nimbo']:.1f}x)", flush=True)
        same = {"nimbo": {q: describe_latency(nimbo, query, samples) for q, query in QUERIES.items()},
                "moto": {q: describe_latency(moto, query, peer_samples) for q, query in QUERIES.items()}}
        _table(f"at {peer_count:,} instances (p50 of {samples} for nimbo, {peer_samples} for moto):", same)
        moto.stop()
        if count > peer_count:
            more = populate(nimbo, nimbo_image, count - peer_count, canaries=False)
            print(f"  nimbo: {count - peer_count:,} more instances launched in {more:.1f}s", flush=True)
            alone = {"nimbo": {q: describe_latency(nimbo, query, samples) for q, query in QUERIES.items()}}
            _table(f"at {count:,} instances (p50 of {samples}; moto is not taken this far, see "
                   f"`python -m bench.ec2 --help`):", alone)
    finally:
        for peer in peers:
            peer.stop()
        os.unlink(config.name)


ONE_PAGE = {"MaxResults": "1000"}
CANARY = QUERIES[f"tag:Role=canary ({CANARIES} match)"]


def run_instances_ms(peer: Peer, image_id: str, count: int, calls: int) -> float:
    """The median time of RunInstances of ``count`` instances (then terminated), over ``calls``."""
    ec2 = ec2_client(peer)
    times = []
    for _ in range(calls):
        started = time.monotonic()
        out = ec2.run_instances(ImageId=image_id, MinCount=count, MaxCount=count, InstanceType="t2.nano")
        times.append(time.monotonic() - started)
        ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in out["Instances"]])
    return median(times) * 1000


def scale_rows(count: int, peer_count: int, samples: int, peer_samples: int, with_moto: bool,
               baseline: str | None = None, notes: list[str] | None = None, targets: dict | None = None,
               why=None) -> tuple[list[Row], list[str]]:
    """The EC2 rows of the table: DescribeInstances of ``peer_count`` instances in one page
    (Nimbo, moto, and the baseline checkout when given, in the same run), of ``count`` instances
    with a tag filter matching ten, and RunInstances of 100 on the fake driver. Times are to the
    last byte of the answer over loopback (the server's time plus a few ms of the client's).
    ``why`` (a ``bench.why.Why``, enabled): a profile pass of each row Nimbo misses (bench.why_ec2)."""
    from bench import why_ec2  # noqa: PLC0415 (it uses this module's signed requests)
    notes = notes if notes is not None else []
    targets = {**TARGETS, **(targets or {})}
    probed = why is not None and why.enabled
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f"max_instances = {count + 1000}\nhost_vcpus = {(count + 1000) * 4}\n"
                 f"host_memory_mib = {(count + 1000) * 2048}\nec2_housekeeping_seconds = 3600\n")
    config.close()
    one_page: dict[str, float | None] = {}
    canary: dict[str, float | None] = {}
    run100: dict[str, float | None] = {}
    launch: dict[str, float | None] = {}
    servers = ["nimbo"] + (["base"] if baseline else []) + (["moto"] if with_moto else [])
    try:
        for name in servers:
            print(f"   ec2: measuring {name} ...", flush=True)
            if name == "moto":
                peer = start_moto()
            else:
                peer = start_nimbo(("--backend", "fake", "--config", config.name),
                                   **({"repo": baseline, "name": "base"} if name == "base"
                                      else {"probe": probed}))
            try:
                if name == "moto":
                    images = ec2_client(peer).describe_images(
                        Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"]
                    image_id = images[0]["ImageId"] if images else "ami-12c6146b"
                else:
                    image_id = register_tiny_image(peer)
                launch[name] = populate(peer, image_id, peer_count, canaries=True)
                one_page[name] = describe_latency(peer, ONE_PAGE, samples if name != "moto" else peer_samples)[0] * 1000
                if peer.probe_dir and one_page[name] > targets["describe_page_ms"]:
                    why_ec2.query_pass(peer, ONE_PAGE, "describe_page_ms", why)
                if name != "moto" and count > peer_count:
                    populate(peer, image_id, count - peer_count, canaries=False)
                    seconds, found = describe_latency(peer, CANARY, samples)
                    canary[name] = seconds * 1000
                    if peer.probe_dir and canary[name] > targets["describe_filter_ms"]:
                        why_ec2.query_pass(peer, CANARY, "describe_filter_ms", why, calls=3)
                    if found != CANARIES:
                        notes.append(f"{name}: the canary filter found {found}, not {CANARIES}")
                run100[name] = run_instances_ms(peer, image_id, 100, 3 if name != "moto" else 1)
                if peer.probe_dir and run100[name] > targets["run100_ms"]:
                    why_ec2.run_pass(peer, image_id, 100, "run100_ms", why)
            except Exception as exc:  # noqa: BLE001 (a peer that fails is reported, not fatal)
                notes.append(f"{name}: failed: {exc}")
            finally:
                peer.stop()
    finally:
        os.unlink(config.name)
    rows = [
        Row(f"DescribeInstances {peer_count:,} (one page), ms", one_page, [at_most(targets["describe_page_ms"])],
            key="describe_page_ms"),
        Row(f"DescribeInstances {count:,}, tag filter ({CANARIES} match), ms", canary,
            [at_most(targets["describe_filter_ms"])], key="describe_filter_ms"),
        Row("RunInstances of 100 (fake driver), ms", run100, [at_most(targets["run100_ms"])], key="run100_ms"),
        Row(f"RunInstances of {peer_count:,} until none pending, s", launch, [], 1),
    ]
    return rows, servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ec2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="VM launches to take the median of (3)")
    parser.add_argument("--instances", type=int, default=10_000,
                        help="instances for Nimbo's DescribeInstances (10,000)")
    parser.add_argument("--peer-instances", type=int, default=1_000,
                        help="instances for the side-by-side with moto (1,000; moto's DescribeInstances "
                             "grows to a minute a call at 4,000)")
    parser.add_argument("--samples", type=int, default=5, help="Nimbo's DescribeInstances calls per query (5)")
    parser.add_argument("--peer-samples", type=int, default=3, help="moto's calls per query (3)")
    parser.add_argument("--skip-vms", action="store_true", help="no real VMs")
    parser.add_argument("--skip-describe", action="store_true", help="no DescribeInstances at scale")
    parser.add_argument("--table", action="store_true",
                        help="instead of the VMs and the two DescribeInstances tables: the targets' table "
                             "(DescribeInstances of --peer-instances in one page, of --instances with a "
                             "tag filter, RunInstances of 100), moto beside Nimbo")
    args = parser.parse_args(argv)
    if args.instances % (2 * BATCH) or args.peer_instances % (2 * BATCH):
        parser.error(f"--instances and --peer-instances are multiples of {2 * BATCH}")
    if args.peer_instances > args.instances:
        parser.error("--peer-instances is at most --instances")
    started = time.monotonic()
    if args.table:
        notes: list[str] = []
        rows, servers = scale_rows(args.instances, args.peer_instances, args.samples, args.peer_samples,
                                   moto_installed(), notes=notes)
        print(render(rows, servers, notes))
        return 0
    if not args.skip_vms:
        bench_vms(args.runs)
    if not args.skip_describe:
        bench_describe(args.instances, args.peer_instances, args.samples, args.peer_samples)
    print(f"(bench took {time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
