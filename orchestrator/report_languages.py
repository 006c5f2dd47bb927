"""The sweep report's answer per report language: the selected configuration, the confirm rows (`mosecrot
confirm`'s table, where it exists), the baselines and the *oracle* (per language, the trial with the best score on
that language's own test set: peeking, labelled "oracle, not a result"), so that the selection regret shows; and a
plot of per-language scores with 95% bootstrap intervals (`plot_scores`). Trials stopped early by ASHA are listed
apart (`stopped_lines`): they have no target scores and are neither selected nor oracle candidates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ORACLE_LABEL = "oracle, not a result"
CONFIRM_JSON = "confirm.json"


def oracle(trials: list[dict[str, Any]], languages: list[str]) -> dict[str, Any] | None:
    """Per language the finished trial with the best test score there (``{"languages": {lang: {"value",
    "configuration", "run_id"}}, "mean"}``), and ``"single"``: the one trial with the best test mean over the
    languages. None without trials that have test scores."""
    per_lang: dict[str, dict[str, Any]] = {}
    for lang in languages:
        scored = [t for t in trials if isinstance(t.get(lang), int | float)]
        if scored:
            top = max(scored, key=lambda t: t[lang])
            per_lang[lang] = {
                "value": float(top[lang]),
                "configuration": top.get("configuration") or top["run_id"],
                "run_id": top["run_id"],
            }
    if not per_lang:
        return None
    full = len(per_lang) == len(languages)
    with_mean = [t for t in trials if isinstance(t.get("mean"), int | float)]
    single = max(with_mean, key=lambda t: t["mean"]) if with_mean else None
    return {
        "languages": per_lang,
        "mean": sum(v["value"] for v in per_lang.values()) / len(per_lang) if full else None,
        "single": None
        if single is None
        else {
            "run_id": single["run_id"],
            "configuration": single.get("configuration") or single["run_id"],
            "mean": float(single["mean"]),
            **{lang: single.get(lang) for lang in languages},
        },
    }


def load_confirm(path: str | Path, parent_run_id: str | None = None) -> dict[str, Any] | None:
    """`mosecrot confirm`'s ``confirm.json`` (a file or the directory holding it), or None when there is none or it
    belongs to another sweep run (its ``parent_run_id`` differs)."""
    p = Path(path)
    if p.is_dir():
        p = p / CONFIRM_JSON
    if not p.is_file():
        return None
    try:
        table = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if parent_run_id and table.get("parent_run_id") not in (None, parent_run_id):
        return None
    return table


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and math.isfinite(value) else "–"


def _confirm_cell(value: Any) -> str:
    if not isinstance(value, dict) or value.get("mean") is None:
        return "–"
    return _num(value["mean"]) + (f" ± {value['sd']:.3f}" if value.get("sd") is not None else "")


def _ci(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return value if isinstance(value, str) else "–"


def language_section(report: dict[str, Any]) -> list[str]:
    """The markdown section: one table (selected trials, confirm rows, baselines, the oracle rows) and the
    per-language regret of the selection."""
    from orchestrator.tables import markdown_table

    langs = list(report["languages"])
    columns = ["row", "kind", "seeds", *langs, "mean", "mean 95% CI"]
    rows: list[list[str]] = []
    for r in report["rows"]:
        if r["kind"] == "trial":
            rows.append(
                [
                    f"{r['method']}: {r.get('configuration') or r['run_id']}",
                    "selected trial",
                    str(r.get("seeds") or "1"),
                    *[_num(r.get(lang)) for lang in langs],
                    _num(r.get("mean")),
                    _ci(r.get("mean_ci") or r.get("mean 95% CI")),
                ]
            )
    confirm = report.get("confirm")
    winner = ((confirm or {}).get("winner") or {}).get("trial_id")
    for r in (confirm or {}).get("rows", []):
        if r.get("kind") != "confirm":
            continue
        rows.append(
            [
                str(r.get("method")) + (" (winner)" if r.get("row_id") == winner else ""),
                f"confirm (sweep rank {r.get('sweep_rank', '?')})",
                ",".join(map(str, r.get("seeds") or [])) or "–",
                *[_confirm_cell(r.get(lang)) for lang in langs],
                _confirm_cell(r.get("mean")),
                _ci(r.get("mean 95% CI")),
            ]
        )
    for r in report["rows"]:
        if r["kind"] == "baseline":
            rows.append(
                [
                    r["method"],
                    "baseline" + (", target-supervised" if r.get("supervision") == "target-supervised" else ""),
                    str(r.get("seeds") or "–"),
                    *[_num(r.get(lang)) for lang in langs],
                    _num(r.get("mean")),
                    _ci(r.get("mean_ci") or r.get("mean 95% CI")),
                ]
            )
    orc = report.get("oracle")
    if orc:
        rows.append(
            [
                f"**{ORACLE_LABEL}**: best trial per language on its test set",
                "oracle",
                "1",
                *[_num((orc["languages"].get(lang) or {}).get("value")) for lang in langs],
                _num(orc.get("mean")),
                "–",
            ]
        )
        single = orc.get("single")
        if single:
            rows.append(
                [
                    f"**{ORACLE_LABEL}**: one configuration, best test mean ({single['configuration']})",
                    "oracle",
                    "1",
                    *[_num(single.get(lang)) for lang in langs],
                    _num(single.get("mean")),
                    "–",
                ]
            )
    lines = [
        "## Per report language: selected, confirmed, baselines and the oracle",
        "",
        f"{report['metric']} on each report language's test set. Selected trial: one seed, chosen by the objective. "
        + (
            "Confirm rows: `mosecrot confirm` (mean ± sample sd over its seeds). "
            if confirm
            else "No confirm rows: `mosecrot confirm` has not been run for this sweep. "
        )
        + f"The oracle rows pick by the test set itself ({ORACLE_LABEL}): they bound what any selection could reach "
        "among these trials, and the gap to them is the selection regret.",
        "",
        *markdown_table(columns, rows),
    ]
    selected = [r for r in report["rows"] if r["kind"] == "trial"]
    if orc and selected:
        sel = selected[0]
        regret_rows = []
        for lang in langs:
            o = orc["languages"].get(lang)
            s = sel.get(lang)
            regret = o["value"] - s if o and isinstance(s, int | float) else None
            regret_rows.append(
                [lang, o["configuration"] if o else "–", _num(o["value"] if o else None), _num(s), _num(regret)]
            )
        lines += [
            "",
            f"Selection regret per language (oracle minus the selected {sel['method']} trial):",
            "",
            *markdown_table(["language", "oracle trial", "oracle", "selected", "regret"], regret_rows),
        ]
        if orc.get("mean") is not None and isinstance(sel.get("mean"), int | float):
            lines += ["", f"Mean regret: {orc['mean'] - sel['mean']:.3f} (per-language oracle)"]
            if orc.get("single"):
                lines[-1] += f", {orc['single']['mean'] - sel['mean']:.3f} (one-configuration oracle)"
            lines[-1] += "."
    return lines


def stopped_lines(report: dict[str, Any]) -> list[str]:
    """The trials ASHA stopped early, as a markdown section (empty when none)."""
    from orchestrator.tables import markdown_table

    stopped = report.get("stopped") or []
    if not stopped:
        return []
    total = report.get("epochs")
    return [
        f"## Trials stopped early by ASHA ({len(stopped)})",
        "",
        "Stopped after the epochs shown on English dev: no target scores, not selectable, not in the oracle nor in "
        "the parameter importances.",
        "",
        *markdown_table(
            ["configuration", "epochs", "last objective", "run_id"],
            [
                [
                    s.get("configuration") or s["run_id"],
                    (str(s.get("epochs") or "?") + (f" of {total}" if total else "")),
                    _num(s.get("objective")),
                    s["run_id"],
                ]
                for s in stopped
            ],
        ),
    ]


def score_series(report: dict[str, Any]) -> list[dict[str, Any]]:
    """What `plot_scores` draws: per series a label, a style kind, per language ``(value, ci or None)`` and the
    mean's ``(value, ci)``."""
    langs = list(report["languages"])
    out = []

    def interval(ci: Any) -> tuple[float, float] | None:
        return (float(ci[0]), float(ci[1])) if isinstance(ci, list | tuple) and len(ci) == 2 else None

    for r in report["rows"]:
        if r["kind"] not in ("trial", "baseline"):
            continue
        iv = r.get("intervals") or {}
        out.append(
            {
                "label": f"{r['method']} (selected trial)" if r["kind"] == "trial" else f"{r['method']} (baseline)",
                "style": "selected" if r["kind"] == "trial" else "baseline",
                "values": {lang: (r.get(lang), interval(iv.get(lang))) for lang in langs},
                "mean": (r.get("mean"), interval(r.get("mean_ci"))),
            }
        )
    confirm = report.get("confirm") or {}
    winner = (confirm.get("winner") or {}).get("trial_id")
    for r in confirm.get("rows", []):
        if r.get("kind") != "confirm" or (winner and r.get("row_id") != winner):
            continue
        iv = r.get("intervals") or {}
        out.append(
            {
                "label": f"{r.get('method')} (confirm, seeds {','.join(map(str, r.get('seeds') or []))})",
                "style": "confirm",
                "values": {lang: ((r.get(lang) or {}).get("mean"), interval(iv.get(lang))) for lang in langs},
                "mean": ((r.get("mean") or {}).get("mean"), interval(r.get("mean 95% CI"))),
            }
        )
    orc = report.get("oracle")
    if orc:
        out.append(
            {
                "label": f"{ORACLE_LABEL} (best trial per language)",
                "style": "oracle",
                "values": {
                    lang: (
                        (orc["languages"].get(lang) or {}).get("value"),
                        interval((orc["languages"].get(lang) or {}).get("ci")),
                    )
                    for lang in langs
                },
                "mean": (orc.get("mean"), None),
            }
        )
    return out


def plot_scores(report: dict[str, Any], path: str | Path) -> None:
    """Per-language test scores with 95% bootstrap intervals (where the runs logged per-item predictions): the
    selected trial, the confirm winner, the baselines and the oracle (hollow markers), then the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from orchestrator.tables import MAX_PLOT_INCHES

    langs = list(report["languages"])
    series = score_series(report)
    groups = [*langs, "mean"]
    xs = [j + (0.6 if g == "mean" else 0.0) for j, g in enumerate(groups)]
    n = max(1, len(series))
    width = min(0.8, 0.12 * n)
    fig, ax = plt.subplots(figsize=(min(MAX_PLOT_INCHES, max(6.0, 0.5 * len(groups) * max(1, n / 3))) + 2.8, 4.2))
    muted = plt.get_cmap("Set2")
    styles: dict[str, dict[str, Any]] = {
        "selected": {"color": "tab:blue", "marker": "D"},
        "confirm": {"color": "tab:red", "marker": "s"},
        "oracle": {"color": "black", "marker": "*", "markerfacecolor": "none"},
    }
    base_i = 0
    for i, s in enumerate(series):
        offset = -width / 2 + width * (i + 0.5) / n
        if s["style"] == "baseline":
            style: dict[str, Any] = {"color": muted(base_i % 8), "marker": "o"}
            base_i += 1
        else:
            style = dict(styles[s["style"]])
        points = [*[s["values"][lang] for lang in langs], s["mean"]]
        for x, (value, ci) in zip(xs, points, strict=True):
            if not isinstance(value, int | float):
                continue
            yerr = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]] if ci else None
            ax.errorbar(x + offset, value, yerr=yerr, linestyle="none", capsize=2, markersize=6, **style)
        ax.plot([], [], linestyle="none", label=s["label"], **style)
    chance = report.get("num_labels")
    if chance:
        ax.axhline(1.0 / chance, color="grey", linestyle="--", linewidth=1, label=f"chance (1/{chance} labels)")
    ax.axvline(xs[-1] - 0.8, color="lightgrey", linewidth=1)
    ax.set_xticks(xs, groups, rotation=90 if len(groups) > 16 else 0)
    ax.set_xlim(xs[0] - 0.6, xs[-1] + 0.6)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{report['metric']} (test)")
    ax.set_title(f"{report['experiment']}: per-language scores with 95% intervals")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
