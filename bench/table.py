"""One table of figures measured in the same run: a row per metric, a column per server, and the
target the row is checked against (an absolute bound on Nimbo's figure, or a ratio to a peer's)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Target:
    """``text`` as printed; ``check(figures) -> (met, how far)`` or None when a figure is missing."""

    text: str
    check: Callable[[dict[str, float]], tuple[bool, str] | None]


def at_least(value: float, unit: str = "") -> Target:
    def check(f: dict[str, float]) -> tuple[bool, str] | None:
        if f.get("nimbo") is None:
            return None
        mine = f["nimbo"]
        return mine >= value, "" if mine >= value else f"{(1 - mine / value) * 100:.0f}% short"
    return Target(f">= {value:,.0f}{unit}", check)


def at_most(value: float, unit: str = "") -> Target:
    def check(f: dict[str, float]) -> tuple[bool, str] | None:
        if f.get("nimbo") is None:
            return None
        mine = f["nimbo"]
        return mine <= value, "" if mine <= value else f"{mine / value:.1f}x over"
    return Target(f"< {value:,.0f}{unit}", check)


def ratio_to(peer: str, ratio: float, higher_better: bool = True) -> Target:
    """Nimbo's figure against ``peer``'s of the same run: ``ratio`` x (a fraction below 1 reads
    as a share: 0.45 is '>= 45% of')."""
    text = f">= {ratio * 100:.0f}% {peer}" if ratio < 1 else f">= {ratio:g}x {peer}"

    def check(f: dict[str, float]) -> tuple[bool, str] | None:
        if f.get("nimbo") is None or not f.get(peer):
            return None
        got = f["nimbo"] / f[peer] if higher_better else f[peer] / f["nimbo"]
        shown = f"{got * 100:.0f}%" if ratio < 1 else f"{got:.1f}x"
        return got >= ratio, shown
    return Target(text, check)


@dataclass
class Row:
    label: str
    figures: dict[str, float | None]
    targets: list[Target] = field(default_factory=list)
    digits: int = 0
    key: str = ""        # the figure's name (e.g. "get_ops"): what ``--why`` explains it by


def misses(row: Row) -> list[str]:
    """The row's targets that Nimbo's figure misses, as printed ('>= 12,000 (45% short)')."""
    found = []
    for target in row.targets:
        outcome = target.check({k: v for k, v in row.figures.items() if v is not None})
        if outcome is not None and not outcome[0]:
            found.append(f"{target.text}{' (' + outcome[1] + ')' if outcome[1] else ''}")
    return found


def render(rows: list[Row], servers: list[str], notes: list[str] = ()) -> str:
    width = max(len(r.label) for r in rows) + 1
    head = f"{'metric':{width}}" + "".join(f"{s:>11}" for s in servers) + "   target: result"
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for server in servers:
            value = row.figures.get(server)
            cells.append(f"{'-':>11}" if value is None else f"{value:11,.{row.digits}f}")
        verdicts = []
        for target in row.targets:
            outcome = target.check({k: v for k, v in row.figures.items() if v is not None})
            if outcome is None:
                verdicts.append(f"{target.text}: n/a")
            else:
                met, how = outcome
                verdicts.append(f"{target.text}: {'yes' if met else 'NO'}{' (' + how + ')' if how else ''}")
        lines.append(f"{row.label:{width}}" + "".join(cells) + "   " + "; ".join(verdicts))
    lines += list(notes)
    return "\n".join(lines)
