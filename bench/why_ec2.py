"""``--why`` for the EC2 rows: the row's own request again, a few times, with ``bench.probe`` on in
every Nimbo process (the worker that answers and, with several workers, the leader it relays EC2
to): the server's CPU per call, which process spent it, and the event loop thread's stages
(``bench.stages.EC2_STAGES``: rows, tags, dict building, network details, XML encoding ...) and
garbage collection. Bounded: ``calls`` requests (2 or 3), one RunInstances.
"""
from __future__ import annotations

import os
import re
import urllib.parse

from bench import stages
from bench.peers import Peer
from bench.profile_pass import Pass, profile_pass
from bench.why import Why, stage_lines, thread_line


def _leader(peer: Peer) -> int:
    """The pid in the data directory's leader lock file (gateway.leader), 0 when unknown."""
    try:
        from gateway.leader import LOCK_FILE  # noqa: PLC0415
        with open(os.path.join(peer.workdir, "data", LOCK_FILE)) as fh:
            text = fh.read().strip()
        return int(text) if text.isdigit() else 0
    except (ImportError, OSError):
        return 0


def _by_process(peer: Peer, found: Pass) -> str | None:
    """'by process: the leader 97% · a worker 3%' (a worker relays EC2 to the leader)."""
    spent = {r["pid"]: sum(r.get("threads", {}).values()) for r in found.reports}
    total = sum(spent.values())
    if len(spent) < 2 or total <= 0:
        return None
    leader = _leader(peer)
    return "CPU by process: " + " · ".join(
        f"{'the leader' if pid == leader else 'worker'} {pid} {seconds / total * 100:.0f}%"
        for pid, seconds in sorted(spent.items(), key=lambda kv: -kv[1]))


def _lines(peer: Peer, found: Pass, calls: int, what: str) -> list[str]:
    cpu = found.cpu
    lines = [f"{what}: server CPU {cpu.server / calls * 1e3:,.0f} ms a call (kernel "
             f"{cpu.server_system / calls * 1e3:,.0f}), {cpu.wall / calls * 1e3:,.0f} ms wall a call, "
             f"profiler on"]
    for extra in (_by_process(peer, found), thread_line(found)):
        if extra:
            lines.append("  " + extra)
    return lines + ["  " + line for line in stage_lines(found, stages.EC2_STAGES, "event loop threads")]


def query_pass(peer: Peer, query: dict[str, str], key: str, why: Why, calls: int = 2) -> None:
    from bench.ec2 import signed_request  # noqa: PLC0415
    body = urllib.parse.urlencode({"Action": "DescribeInstances", "Version": "2016-11-15", **query})
    answers: list[bytes] = []
    try:
        found = profile_pass(peer, lambda: answers.extend(signed_request(peer, body)[1] for _ in range(calls)))
        size = len(answers[-1]) if answers else 0
        instances = len(re.findall(rb"<instanceId>", answers[-1])) if answers else 0
        why.add(key, _lines(peer, found, calls, f"{calls} profiled calls ({instances:,} instances, "
                                          f"{size / 1e6:.2f} MB of XML each)") + why.keep(key, found))
    except Exception as exc:  # noqa: BLE001 (a pass that fails is said, not fatal)
        why.add(key, [f"(the profile pass failed: {type(exc).__name__}: {exc})"])


def run_pass(peer: Peer, image_id: str, count: int, key: str, why: Why) -> None:
    from bench.ec2 import ec2_client  # noqa: PLC0415
    ec2 = ec2_client(peer)
    launched: list[str] = []
    try:
        def run() -> None:
            out = ec2.run_instances(ImageId=image_id, MinCount=count, MaxCount=count, InstanceType="t2.nano")
            launched.extend(i["InstanceId"] for i in out["Instances"])
        found = profile_pass(peer, run)
        why.add(key, _lines(peer, found, 1, f"one profiled RunInstances of {count}") + why.keep(key, found))
    except Exception as exc:  # noqa: BLE001 (a pass that fails is said, not fatal)
        why.add(key, [f"(the profile pass failed: {type(exc).__name__}: {exc})"])
    finally:
        if launched:
            ec2.terminate_instances(InstanceIds=launched)
