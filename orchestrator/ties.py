"""Ties at the top of a sweep's objective: the best value shared by several trials.

Under the ``english-dev`` protocol the objective is English dev, measured before the target side exists: every
option that acts only on F_t or on the target evaluation (``stitch.target_anchor_rows``, ``stitch.oov``, the
relative-representation options of a ``source_side: original`` trial, ...) is invisible to it. Trials that differ
only there reach *exactly* the same objective (the same English fine-tuning, cached and reused), and the "best"
among them is whichever the tie-break picked. Which params they are is read off the tied trials themselves (the
params in which trials with the same objective differ), not from a hand-kept list, so a new target-side option
is covered the day it exists.

`find_tie` finds the tie; `tie_message` says it in one line for the report, the console and MLflow.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TIE_TOLERANCE = 1e-12  # objective values this close are the same value (float noise of a mean)


@dataclass
class Tie:
    """Trials (by name) that share the best objective `value`, and the params in which they differ (values in
    the order of `trials`)."""

    value: float
    trials: list[str]
    differing: dict[str, list[Any]]


def find_tie(trials: Iterable[tuple[str, dict[str, Any], float]], mode: str, tol: float = TIE_TOLERANCE) -> Tie | None:
    """The tie at the top of ``(name, params, objective)`` trials (``mode`` max or min), else None. Non-finite
    objectives are ignored."""
    ok = [(n, p, float(v)) for n, p, v in trials if v is not None and math.isfinite(float(v))]
    if len(ok) < 2:
        return None
    best = max(v for *_, v in ok) if mode == "max" else min(v for *_, v in ok)
    tied = [(n, p) for n, p, v in ok if abs(v - best) <= tol]
    if len(tied) < 2:
        return None
    keys = sorted({k for _, p in tied for k in p})
    differing = {k: [p.get(k) for _, p in tied] for k in keys if len({repr(p.get(k)) for _, p in tied}) > 1}
    return Tie(best, [n for n, _ in tied], differing)


MAX_LISTED = 6  # beyond this many tied trials, the message names a few and summarises each param's values


def tie_message(tie: Tie, protocol: str) -> str:
    """One line: the warning, the tied trials, the params they differ in, and (english-dev) why. Many tied trials
    (a budget too small to train anything ties them all) are summarised so the line stays readable."""
    names = (
        tie.trials
        if len(tie.trials) <= MAX_LISTED
        else [*tie.trials[:MAX_LISTED], f"and {len(tie.trials) - MAX_LISTED} more"]
    )
    params = "; ".join(f"{k} = {_values(v)}" for k, v in tie.differing.items()) or "none"
    line = (
        f"WARNING: objective tie: {len(tie.trials)} trials share the best objective {tie.value:.6g} "
        f"({', '.join(names)}); they differ in {params}. The objective cannot distinguish them: "
        "the best trial among them is an arbitrary tie-break"
    )
    if protocol == "english-dev":
        line += (
            " (english-dev selects on English dev, measured before the target side is built: params that act "
            "only on the target side, F_t and the target evaluation, cannot move it; and a training budget too "
            "small to teach the English model anything scores every trial alike)"
        )
    return line + "."


def _values(values: list[Any]) -> str:
    """A param's values over the tied trials: listed when few, else a range (numbers) or counts (choices)."""
    if len(values) <= MAX_LISTED:
        return ", ".join(map(str, values))
    given = [v for v in values if v is not None]
    unset = f"; unset in {len(values) - len(given)}" if len(given) < len(values) else ""
    if given and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        low, high = min(given), max(given)
        return f"{low:.3g} to {high:.3g} over {len(given)} trials{unset}"
    counts = Counter(map(str, given))
    return ", ".join(f"{value} x{n}" for value, n in counts.most_common()) + unset


__all__ = ["MAX_LISTED", "TIE_TOLERANCE", "Tie", "find_tie", "tie_message"]
