"""Running scenarios, and the compatibility matrix they make."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable

from conformance.context import CallRecord, Context, Recorder, RunState, first_line
from conformance.errors import Skip
from conformance.registry import Scenario, sort_key_for_client, sort_key_for_row
from conformance.shapes import ERROR, WARNING, Problem

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NOT_RUN = "-"


@dataclass
class Result:
    scenario: Scenario
    status: str
    reason: str = ""
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    exception: str | None = None
    notes: list[str] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    duration: float = 0.0
    traceback: str | None = None

    @property
    def failures(self) -> list[str]:
        """Everything that failed, in the order it happened (the exception comes last)."""
        items = [str(p) for p in self.errors]
        if self.exception:
            items.append(self.exception)
        return items

    def as_dict(self) -> dict:
        s = self.scenario
        return {
            "id": s.id, "service": s.service, "operations": list(s.operations),
            "client": s.client, "variant": s.variant, "rows": s.rows, "doc": s.doc,
            "status": self.status, "reason": self.reason, "exception": self.exception,
            "errors": [p.as_dict() for p in self.errors],
            "warnings": [p.as_dict() for p in self.warnings],
            "notes": self.notes, "duration": round(self.duration, 3),
            "calls": [dataclasses.asdict(c) for c in self.calls],
        }


def apply_lenient(problems: Iterable[Problem], lenient: Iterable[str]) -> list[Problem]:
    """Turn the errors of the named checks (``request-id``, ``wire``, ``shape.enum``...) into
    warnings: for running against a peer whose known deviations are not the point."""
    names = [n.strip() for n in lenient if n.strip()]
    out = []
    for problem in problems:
        if problem.severity == ERROR and any(problem.check == n or problem.check.startswith(n + ".")
                                             for n in names):
            problem = dataclasses.replace(problem, severity=WARNING)
        out.append(problem)
    return out


def run_scenario(state: RunState, scenario: Scenario, lenient: Iterable[str] = ()) -> Result:
    recorder = Recorder()
    ctx = Context(state, recorder)
    started = time.monotonic()
    exception = tb = None
    skipped = None
    try:
        scenario.func(ctx)
    except Skip as exc:
        skipped = str(exc) or "skipped"
    except Exception as exc:  # noqa: BLE001 - any exception fails the scenario, never the run
        exception = first_line(exc)
        tb = traceback.format_exc()
    finally:
        for failure in ctx.cleanup():
            recorder.notes.append(failure)
    duration = time.monotonic() - started
    problems = apply_lenient(recorder.problems, lenient)
    errors = [p for p in problems if p.severity == ERROR]
    warnings = [p for p in problems if p.severity != ERROR]
    result = Result(scenario, PASS, errors=errors, warnings=warnings, exception=exception,
                    notes=list(recorder.notes), calls=list(recorder.calls), duration=duration,
                    traceback=tb)
    if skipped is not None and not errors:
        result.status, result.reason = SKIP, skipped
    elif errors or exception:
        failures = result.failures
        result.status = FAIL
        result.reason = failures[0] + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else "")
    return result


def run_all(state: RunState, scenarios: list[Scenario], lenient: Iterable[str] = (),
            progress: Callable[[Result], None] | None = None, jobs: int = 1) -> list[Result]:
    """Run the scenarios, ``jobs`` at a time (they use names of their own, so they may overlap);
    the results come back in the scenarios' order, ``progress`` sees each as it ends."""
    lenient = list(lenient)
    if jobs <= 1:
        results = []
        for scenario in scenarios:
            results.append(run_scenario(state, scenario, lenient))
            if progress:
                progress(results[-1])
        return results
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_scenario, state, s, lenient): i for i, s in enumerate(scenarios)}
        done: dict[int, Result] = {}
        for future in concurrent.futures.as_completed(futures):
            done[futures[future]] = future.result()
            if progress:
                progress(done[futures[future]])
    return [done[i] for i in range(len(scenarios))]


def build_matrix(results: list[Result]) -> tuple[list[str], list[str], dict[str, dict[str, str]]]:
    """(rows, clients, cells): a cell is PASS when every scenario of that row and client passed,
    FAIL when one failed, ``-`` when none ran (skipped ones do not count)."""
    cells: dict[str, dict[str, str]] = {}
    clients: set[str] = set()
    for result in results:
        clients.add(result.scenario.client)
        for row in result.scenario.rows:
            cell = cells.setdefault(row, {})
            current = cell.get(result.scenario.client, NOT_RUN)
            if result.status == FAIL or current == FAIL:
                cell[result.scenario.client] = FAIL
            elif result.status == PASS:
                cell[result.scenario.client] = PASS
            else:
                cell[result.scenario.client] = current
    rows = sorted(cells, key=sort_key_for_row)
    ordered = sorted(clients, key=sort_key_for_client)
    for row in rows:
        for client in ordered:
            cells[row].setdefault(client, NOT_RUN)
    return rows, ordered, cells


def render(results: list[Result], endpoint: str, region: str, verbose: bool = False) -> str:
    rows, clients, cells = build_matrix(results)
    lines = [f"Conformance of {endpoint} (region {region})", ""]
    width = max([len("operation")] + [len(r) for r in rows]) + 2
    col = max([6] + [len(c) + 2 for c in clients])
    lines.append("operation".ljust(width) + "".join(c.ljust(col) for c in clients).rstrip())
    lines.append("-" * (width + col * len(clients)))
    for row in rows:
        lines.append(row.ljust(width) + "".join(cells[row][c].ljust(col) for c in clients).rstrip())
    counts = {status: sum(1 for r in results if r.status == status)
              for status in (PASS, FAIL, SKIP)}
    lines += ["", f"{len(results)} scenarios: {counts[PASS]} passed, {counts[FAIL]} failed, "
                  f"{counts[SKIP]} skipped"]
    failed = [r for r in results if r.status == FAIL]
    if failed:
        lines += ["", "Failures:"]
        for result in failed:
            lines.append(f"  {_label(result)}: {result.reason}")
            if verbose:
                for item in result.failures[1:]:
                    lines.append(f"      {item}")
    skipped = [r for r in results if r.status == SKIP]
    if skipped:
        lines += ["", "Skipped:"]
        lines += [f"  {_label(r)}: {r.reason}" for r in skipped]
    grouped = _group_warnings(results)
    if grouped:
        lines += ["", "Warnings (warning-level checks, and errors made lenient):"]
        for (check, message), (paths, scenario_ids) in grouped.items():
            where = ", ".join(sorted(paths)[:4]) + (", ..." if len(paths) > 4 else "")
            lines.append(f"  {check}: {message} [{len(scenario_ids)} scenario(s); {where}]")
            if verbose:
                lines.append(f"      in {', '.join(sorted(scenario_ids))}")
    if verbose:
        for result in results:
            lines += [f"  note {_label(result)}: {n}" for n in result.notes]
    return "\n".join(lines)


def as_json(results: list[Result], endpoint: str, region: str) -> dict:
    rows, clients, cells = build_matrix(results)
    return {
        "endpoint": endpoint, "region": region, "clients": clients,
        "summary": {status.lower(): sum(1 for r in results if r.status == status)
                    for status in (PASS, FAIL, SKIP)},
        "matrix": {row: cells[row] for row in rows},
        "scenarios": [r.as_dict() for r in results],
    }


def _label(result: Result) -> str:
    s = result.scenario
    return f"{s.id} [{s.client}]"


def _group_warnings(results: list[Result]) -> dict[tuple[str, str], tuple[set, set]]:
    """Warnings by (check, message): the paths they were seen at and the scenarios."""
    grouped: dict[tuple[str, str], tuple[set, set]] = {}
    for result in results:
        for warning in result.warnings:
            paths, ids = grouped.setdefault((warning.check, warning.message), (set(), set()))
            paths.add(warning.path)
            ids.add(_label(result))
    return grouped
