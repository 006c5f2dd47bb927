"""Which searched parameters matter, across a sweep's finished trials: a table of the mean objective per parameter
value (floats and many-valued integers binned by quantile) ranked by the share of the objective's variance the
parameter's values explain (eta squared), Optuna's parameter importances of the sweep's study where the study is
reachable (`optuna_importances`), and a plot of both (`plot_importance`).

Only trials that ran to the end count: a trial ASHA stopped has an English-dev value of an earlier epoch, not the
objective."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

MAX_GROUPS = 4  # a numeric parameter with more distinct values than this is binned into this many quantile bins


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _bins(values: list[float], n: int) -> list[tuple[float, float]]:
    """Up to ``n`` quantile bins ``(low, high)`` covering ``values`` (edges are distinct values)."""
    ordered = sorted(values)
    edges = sorted({ordered[min(len(ordered) - 1, round(i * (len(ordered) - 1) / n))] for i in range(n + 1)})
    if len(edges) < 2:
        return [(edges[0], edges[0])]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _label(low: float, high: float) -> str:
    return f"[{low:.4g}, {high:.4g}]"


def value_groups(values: list[Any], max_groups: int = MAX_GROUPS) -> tuple[list[str], list[str]]:
    """Each value's group label, and the labels in display order: the value itself (categorical, or few numbers),
    or its quantile bin ``[low, high]`` (numbers with more than ``max_groups`` distinct values)."""
    numbers = [_float(v) for v in values]
    distinct = {str(v) for v in values}
    if all(x is not None for x in numbers) and len(distinct) > max_groups:
        xs = [x for x in numbers if x is not None]
        bins = _bins(xs, max_groups)
        labels = []
        for x in xs:
            i = next((j for j, (_, high) in enumerate(bins) if x <= high), len(bins) - 1)
            labels.append(_label(*bins[i]))
        return labels, [_label(*b) for b in bins if _label(*b) in labels]
    order = sorted(distinct, key=lambda s: (_float(s) is None, _float(s) or 0.0, s))
    return [str(v) for v in values], order


def parameter_table(
    trials: list[dict[str, Any]], params: list[str], objective: str = "objective", mode: str = "max"
) -> list[dict[str, Any]]:
    """Per parameter (most important first): ``{"param", "eta2", "spread", "best", "groups": [{"value", "n",
    "mean"}]}``. ``eta2``: share of the objective's variance between the trials that the parameter's groups explain
    (0 = the value changes nothing on average, 1 = it alone decides the objective); ``spread``: best minus worst
    group mean; ``best``: the group with the best mean (by ``mode``). Trials without the objective are left out;
    a trial where the parameter does not apply (a conditional one) is in the group ``None``."""
    usable = [t for t in trials if _float(t.get(objective)) is not None]
    ys = [float(t[objective]) for t in usable]
    total = sum((y - statistics.fmean(ys)) ** 2 for y in ys) if ys else 0.0
    out = []
    for param in params:
        labels, order = value_groups([t.get(param) for t in usable])
        groups: list[dict[str, Any]] = []
        for label in order:
            vals = [y for y, lab in zip(ys, labels, strict=True) if lab == label]
            if vals:
                groups.append({"value": label, "n": len(vals), "mean": statistics.fmean(vals)})
        if not groups:
            continue
        mean = statistics.fmean(ys)
        between = sum(g["n"] * (g["mean"] - mean) ** 2 for g in groups)
        means = [g["mean"] for g in groups]
        best = (max if mode == "max" else min)(groups, key=lambda g: g["mean"])
        out.append(
            {
                "param": param,
                "eta2": between / total if total > 0 else 0.0,
                "spread": max(means) - min(means),
                "best": best["value"],
                "groups": groups,
            }
        )
    out.sort(key=lambda r: (-r["eta2"], -r["spread"], r["param"]))
    return out


def optuna_importances(storage: str | None, study_name: str | None) -> dict[str, float] | None:
    """Optuna's parameter importances (fANOVA, its default) of the sweep's study, or None where the study is not
    reachable (no storage recorded, a SQLite file that is gone, a grid sweep) or has too few complete trials."""
    if not storage or not study_name:
        return None
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///") :]).is_file():
        return None  # optuna would create an empty database there
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=study_name, storage=storage)
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(complete) < 2:
            return None
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:  # no such study, an unreadable database, a single-valued space: the table still answers
        return None


def to_markdown(
    table: list[dict[str, Any]], optuna: dict[str, float] | None, n_trials: int, objective: str
) -> list[str]:
    """The section's lines: Optuna's importances (if any), then the mean objective per value."""
    from orchestrator.tables import markdown_table

    lines = [f"## Which parameters matter ({n_trials} trials that ran to the end)", ""]
    if optuna:
        lines += [
            "Optuna's parameter importances (fANOVA over the sweep's study; they sum to 1):",
            "",
            *markdown_table(["param", "importance"], [[k, f"{v:.3f}"] for k, v in optuna.items()]),
            "",
        ]
    lines += [
        f"Mean objective (`{objective}`) per value, parameters ranked by eta² (the share of the objective's variance "
        "between trials that the parameter's values explain; numbers with more than "
        f"{MAX_GROUPS} values binned by quantile; `None`: the parameter does not apply):",
        "",
        *markdown_table(
            ["param", "eta²", "spread", "best value", "mean objective per value (n trials)"],
            [
                [
                    r["param"],
                    f"{r['eta2']:.2f}",
                    f"{r['spread']:.3f}",
                    f"`{r['best']}`",
                    "; ".join(f"`{g['value']}`: {g['mean']:.3f} ({g['n']})" for g in r["groups"]),
                ]
                for r in table
            ],
        ),
    ]
    return lines


def plot_importance(
    table: list[dict[str, Any]], optuna: dict[str, float] | None, path: str | Path, title: str, objective: str
) -> None:
    """Left: the parameters' importances (Optuna's where there are some, else eta²), most important on top; right:
    the mean objective per value of the (up to) three most important parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = table[:3]
    fig, axes = plt.subplots(1, 1 + len(top), figsize=(4.5 + 3.2 * len(top), 3.8), squeeze=False)
    ax = axes[0][0]
    scores = optuna if optuna else {r["param"]: r["eta2"] for r in table}
    names = list(scores)[::-1]
    ax.barh(range(len(names)), [scores[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), [n.removeprefix("method.") for n in names], fontsize="small")
    ax.set_xlabel("Optuna importance (fANOVA)" if optuna else "eta² (variance share)")
    ax.set_xlim(0, max(1e-9, max(scores.values(), default=1.0)) * 1.1)
    ax.set_title("which parameters matter", fontsize="medium")
    for ax, row in zip(axes[0][1:], top, strict=True):
        groups = row["groups"]
        ax.bar(range(len(groups)), [g["mean"] for g in groups], color="tab:orange")
        ax.set_xticks(
            range(len(groups)),
            [f"{g['value']}\n(n={g['n']})" for g in groups],
            fontsize="x-small",
            rotation=30 if len(groups) > 3 else 0,
        )
        low = min(g["mean"] for g in groups)
        high = max(g["mean"] for g in groups)
        pad = max(0.01, (high - low) * 0.3)
        ax.set_ylim(max(0.0, low - pad), high + pad)
        ax.set_ylabel(f"mean {objective}", fontsize="small")
        ax.set_title(f"{row['param'].removeprefix('method.')} (eta² {row['eta2']:.2f})", fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
