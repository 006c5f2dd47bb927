"""What people compare: per-language tables of `mosecrot run` results and of sweeps, as markdown, CSV and
a plot.

- Run tables (`merge_runs`): several `mosecrot run` results in one table (XTREME style: rows methods,
  columns languages and mean, cells mean ± std over seeds), with the task's published numbers beside them.
  Why several: the paper-faithful ``pair``-anchor runs and the ``union``-anchor runs with the baselines are
  separate experiments (different anchor sets mean different English fine-tunings).
- Sweep reports (`sweep_report`): the best trial per tuned method (by the objective, never by test)
  beside every baseline, read back from MLflow, and every finished trial with its searched parameters.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from mosecrot.errors import InputError
from mosecrot.metrics import seed_summary
from orchestrator.importance import optuna_importances, parameter_table
from orchestrator.report_languages import oracle
from orchestrator.tables import MAX_PLOT_INCHES, markdown_table
from orchestrator.tracking import KIND_TAG, PARENT_TAG, check_tracking, resolve_tracking_uri

# --- run tables ------------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    supervision: str
    # language -> `mosecrot.run.summarize`'s cell ({"mean", "std", "n", "ci", "p_beats", ...}) or a float (paper)
    cells: dict[str, dict | float | None]
    average: dict | None = None
    source: str = ""
    common: dict | float | None = None  # mean over `MergedTable.common_languages`, when rows differ


@dataclass
class MergedTable:
    task: str
    metric: str
    languages: list[str]
    rows: list[Row] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    common_languages: list[str] = field(default_factory=list)  # languages every row has (if not all)
    references: list[str] = field(default_factory=list)  # methods the paired win probabilities compare with

    @property
    def common_column(self) -> str | None:
        return "mean " + "/".join(self.common_languages) if self.common_languages else None


def _results_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise InputError(f"{path}: no results.json (expected a `mosecrot run` directory or its results.json)")
    return p


def load_results(path: str | Path) -> dict:
    p = _results_path(path)
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc})") from exc
    for key in ("summary", "config", "task"):
        if key not in data:
            raise InputError(f"{p}: missing key {key!r}; is this a `mosecrot run` results.json?")
    data["_path"] = str(p)
    return data


def merge_runs(paths: list[str | Path], paper: dict[str, dict[str, float]] | None = None) -> MergedTable:
    """Rows of every run in order; a method name that occurs in several runs is labelled with its anchor
    scope (``rr-softmax [pair]``). Columns are the union of the runs' languages, first-seen order."""
    runs = [load_results(p) for p in paths]
    tasks = {r["task"] for r in runs}
    if len(tasks) != 1:
        raise InputError(f"runs are on different tasks {sorted(tasks)}; a table compares one task")
    metrics = {r["summary"]["metric"] for r in runs}
    if len(metrics) != 1:
        raise InputError(f"runs report different metrics {sorted(metrics)}")
    languages: list[str] = []
    for r in runs:
        languages += [lang for lang in r["summary"]["languages"] if lang not in languages]
    counts: dict[str, int] = {}
    for r in runs:
        for name in r["summary"]["methods"]:
            counts[name] = counts.get(name, 0) + 1
    table = MergedTable(task=tasks.pop(), metric=metrics.pop(), languages=languages)
    for r in runs:
        scope = r["config"].get("anchors", {}).get("scope", "?")
        table.sources.append(
            {
                "path": r["_path"],
                "experiment": r.get("experiment"),
                "anchors": scope,
                "complete": r.get("complete"),
                "seeds": r.get("seeds"),
                "seed_scope": r["config"].get("seed_scope", "fine-tuning"),
                "training": r.get("training"),
                "timings_s": r.get("timings_s"),
                "uncertainty": r["summary"].get("uncertainty"),
            }
        )
        for ref in (r["summary"].get("uncertainty") or {}).get("references", []):
            if ref not in table.references:
                table.references.append(ref)
        for name, m in r["summary"]["methods"].items():
            label = f"{name} [{scope}]" if counts[name] > 1 or scope == "pair" else name
            table.rows.append(
                Row(label, m["supervision"], dict(m["languages"]), m.get("average"), r.get("experiment", ""))
            )
    for name, scores in (paper or {}).items():
        if any(scores.get(lang) is not None for lang in languages):
            table.rows.append(Row(name, "paper", {lang: scores.get(lang) for lang in languages}, None, "paper"))
    covered = [{lang for lang, v in r.cells.items() if v is not None} for r in table.rows]
    shared = [lang for lang in languages if all(lang in c for c in covered)]
    if shared and len(shared) < len(languages):  # rows cover different languages: add a like-for-like mean
        table.common_languages = shared
        for row in table.rows:
            row.common = _common_mean(row, shared)
    return table


def _common_mean(row: Row, languages: list[str]) -> dict | float | None:
    """Mean over `languages`: per seed, then mean and sample std over seeds for our rows (no interval: items
    are not resampled across runs here), plain mean for paper rows."""
    cells = [row.cells.get(lang) for lang in languages]
    if all(isinstance(c, float | int) for c in cells):
        return sum(cast(list[float], cells)) / len(cells)
    seeds: list[Any] = [c.get("seeds") for c in cells if isinstance(c, dict)]
    if len(seeds) != len(cells) or any(s is None or len(s) != len(seeds[0]) for s in seeds):
        return None
    per_seed = [sum(vals) / len(vals) for vals in zip(*seeds, strict=True)]
    deterministic = all(isinstance(c, dict) and c.get("deterministic") for c in cells)
    return seed_summary(per_seed, deterministic)


def _number(value: float, digits: int, compact: bool) -> str:
    """``0.365``, or ``.365`` in compact form (terminal tables with many languages)."""
    text = f"{value:.{digits}f}"
    return text[1:] if compact and text.startswith("0.") else text


def format_cell(value: dict | float | None, digits: int = 3, compact: bool = False, spread: bool = True) -> str:
    """``0.365 ± 0.012`` (mean ± sample std over seeds); ``0.365 (det.)`` for a method the seed does not change,
    ``0.365 (n=1)`` for one seed: never a "± 0.000" that reads as "no variance". ``compact`` (``.365±.012``,
    and the det./n=1 note moves to the row label, `row_note`) keeps 12 languages on one terminal line;
    ``spread=False`` prints the mean alone (per-language spread and intervals are in report.md)."""
    if value is None:
        return "–"
    if isinstance(value, dict):
        mean = _number(value["mean"], digits, compact)
        if compact and (value.get("std") is None or not spread):
            return mean
        if value.get("std") is None:
            return f"{mean} (det.)" if value.get("deterministic") else f"{mean} (n={value.get('n', 1)})"
        return f"{mean}±{_number(value['std'], digits, True)}" if compact else f"{mean} ± {value['std']:.{digits}f}"
    return f"{value:.2f}"


def row_note(row: Row) -> str:
    """`` (det.)`` or `` (n=1)`` when the row's cells have no spread, for compact tables."""
    cells = [v for v in [row.average, *row.cells.values()] if isinstance(v, dict)]
    if cells and all(c.get("std") is None for c in cells):
        return " (det.)" if all(c.get("deterministic") for c in cells) else " (n=1)"
    return ""


def format_interval(value: dict | float | None, digits: int = 2, compact: bool = False) -> str:
    ci = value.get("ci") if isinstance(value, dict) else None
    if not ci:
        return "–"
    low, high = (_number(v, digits, compact) for v in ci)
    return f"[{low},{high}]" if compact else f"[{low}, {high}]"


def format_probability(value: dict | float | None, reference: str, compact: bool = False) -> str:
    p = (value.get("p_beats") or {}).get(reference) if isinstance(value, dict) else None
    return "–" if p is None else _number(p, 2, compact)


def value_columns(table: MergedTable) -> list[str]:
    """The columns after method and supervision: languages, "mean", and the common-language mean if any."""
    return [*table.languages, "mean", *([table.common_column] if table.common_column else [])]


def cell_value(table: MergedTable, row: Row, column: str) -> dict | float | None:
    if column == "mean":
        return row.average
    if column == table.common_column:
        return row.common
    return row.cells.get(column)


def header(table: MergedTable, compact: bool = False) -> list[str]:
    """Method, supervision, the value columns, then the mean's 95% interval over test items and its paired
    probability of beating each reference (LS, the floor). ``compact``: no supervision column (`row_cells`
    notes target-supervised rows in their label; paper rows say "paper")."""
    return [
        "method",
        *([] if compact else ["supervision"]),
        *value_columns(table),
        "mean 95% CI",
        *[f"P(>{r})" for r in table.references],
    ]


def row_cells(table: MergedTable, row: Row, compact: bool = False) -> list[str]:
    """One row's text cells; ``compact`` for terminals (see `format_cell`, `header`)."""
    target = " [target-supervised]" if row.supervision == "target-supervised" else ""
    return [
        *([row.label + row_note(row) + target] if compact else [row.label, row.supervision]),
        *[
            format_cell(cell_value(table, row, c), compact=compact, spread=not compact or c not in table.languages)
            for c in value_columns(table)
        ],
        format_interval(row.average, compact=compact),
        *[format_probability(row.average, ref, compact) for ref in table.references],
    ]


def explanation(table: MergedTable) -> list[str]:
    """What the numbers are: spread, intervals, probabilities and what a seed varies, per source run."""
    scopes = sorted({str(s.get("seed_scope")) for s in table.sources})
    settings = next((s["uncertainty"] for s in table.sources if s.get("uncertainty")), None)
    lines = [
        f"Cells: {table.metric}, mean ± sample std over seeds (n seeds; `det.`: the method does not depend on the "
        f"seed, one result); seeds vary: {', '.join(scopes)}"
        + (
            " (English fine-tuning only: static vectors, dictionaries and anchors are fixed)"
            if scopes == ["fine-tuning"]
            else ""
        )
        + "."
    ]
    if settings:
        lines.append(
            f"Intervals: {int(settings['confidence'] * 100)}% percentile bootstrap over test items "
            f"({settings['n_resamples']} resamples) of the seed-mean score. P(>X): share of paired resamples "
            "(same items for both) in which the row scores higher than method X of the same run."
        )
    else:
        lines.append("Intervals: none (these runs kept no per-item predictions).")
    return lines


def to_markdown(table: MergedTable) -> str:
    md = markdown_table(header(table), [row_cells(table, row) for row in table.rows])
    ours = [row for row in table.rows if row.supervision != "paper"]
    if any(isinstance(v, dict) and v.get("ci") for row in ours for v in row.cells.values()):
        md += ["", "95% bootstrap intervals over test items, per language", ""]
        md += markdown_table(
            ["method", *table.languages, "mean"],
            [
                [
                    row.label,
                    *[format_interval(row.cells.get(lang)) for lang in table.languages],
                    format_interval(row.average),
                ]
                for row in ours
            ],
        )
        for ref in table.references:
            md += ["", f"P(row beats {ref}), paired bootstrap per language", ""]
            md += markdown_table(
                ["method", *table.languages, "mean"],
                [
                    [
                        row.label,
                        *[format_probability(row.cells.get(lang), ref) for lang in table.languages],
                        format_probability(row.average, ref),
                    ]
                    for row in ours
                    if row.label != ref
                ],
            )
    return "\n".join([*md, "", *explanation(table)]) + "\n"


def to_csv(table: MergedTable) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    refs = table.references
    w.writerow(
        [
            "method",
            "supervision",
            "source",
            "language",
            "mean",
            "std",
            "n",
            "ci_low",
            "ci_high",
            *[f"p_beats_{r}" for r in refs],
        ]
    )
    for row in table.rows:
        for lang in value_columns(table):
            v = cell_value(table, row, lang)
            if isinstance(v, dict):
                ci = v.get("ci") or ["", ""]
                beats = v.get("p_beats") or {}
                w.writerow(
                    [
                        row.label,
                        row.supervision,
                        row.source,
                        lang,
                        v["mean"],
                        v.get("std"),
                        v.get("n"),
                        *ci,
                        *[beats.get(r, "") for r in refs],
                    ]
                )
            elif v is not None:
                w.writerow([row.label, row.supervision, row.source, lang, v, "", "", "", "", *["" for _ in refs]])
    return out.getvalue()


# --- sweep reports ----------------------------------------------------------------------------------


def sweep_report(
    experiment: str,
    tracking_uri: str | None = None,
    metric: str = "test_macro_f1",
    objective: str = "objective",
    mode: str = "max",
    languages: list[str] | None = None,
) -> dict[str, Any]:
    """Best trial per tuned method (by `objective`, never by test) beside every baseline, per language.

    Reads the latest sweep (parent run) of MLflow experiment `experiment`. Returns ``{"languages", "rows",
    "trials", "searched", "parent_run_id", "tracking_uri"}``; each row: method, kind (trial/baseline),
    supervision, run_id, objective, the ``{metric}.{lang}`` scores and their mean. ``trials`` holds every
    finished trial the same way, best objective first, with the values of the ``searched`` params (those
    that differ between trials), so a grid such as the paper's weighting x k reads as one table."""
    from mlflow import MlflowClient  # here, not at the top: run tables need no MLflow (seconds to import)

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise InputError(
            f"no MLflow experiment named {experiment!r} in {uri}",
            key="SWEEP",
            expected="the name of a sweep logged to this tracking URI",
        )
    parents = list(
        client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
    )
    parents = [p for p in parents if p.data.tags.get("baselines_only") != "true"] or parents
    if not parents:
        raise InputError(f"experiment {experiment!r} has no sweep run", key="SWEEP")
    parent = parents[0]
    runs = list(
        client.search_runs(
            [exp.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=5000
        )
    )
    if not any(r.data.tags.get(KIND_TAG) == "baseline" for r in runs):  # baselines logged on their own
        for p in parents:
            if p.data.tags.get("baselines_only") == "true" or p.info.run_id != parent.info.run_id:
                more = client.search_runs(
                    [exp.experiment_id],
                    filter_string=f"tags.`{PARENT_TAG}` = '{p.info.run_id}' and tags.`{KIND_TAG}` = 'baseline'",
                    max_results=100,
                )
                if more:
                    runs += list(more)
                    break
    prefix = metric + "."
    if languages is None:
        found = {k[len(prefix) :] for r in runs for k in r.data.metrics if k.startswith(prefix)}
        languages = sorted(found - {"mean"})
    best: dict[str, Any] = {}
    rows, finished, stopped = [], [], []
    sign = 1 if mode == "max" else -1
    for r in runs:
        tags, m = r.data.tags, r.data.metrics
        if r.info.status != "FINISHED":
            continue
        if tags.get(KIND_TAG) == "trial":
            scored = any(k.startswith(prefix) for k in m)
            if not scored and (tags.get("stopped_early") == "true" or objective in m):
                stopped.append(r)  # ASHA stopped it: English dev only, no target scores
                continue
            if objective not in m or not any(k.startswith(prefix) for k in m):
                continue
            finished.append(r)
            name = tags.get("method", "trial")
            if name not in best or sign * m[objective] > sign * best[name].data.metrics[objective]:
                best[name] = r
        elif tags.get(KIND_TAG) == "baseline":
            rows.append(_report_row(r, "baseline", languages, prefix, objective))
    rows = [_report_row(r, "trial", languages, prefix, objective) for r in best.values()] + rows
    kinds = {r.info.run_id: r.data.tags.get("method_kind", "") for r in runs}
    keys = sorted({k for r in finished for k in r.data.params})
    searched = [k for k in keys if len({r.data.params.get(k) for r in finished}) > 1]
    finished.sort(key=lambda r: -sign * r.data.metrics[objective])
    trials = [
        {**{k: r.data.params.get(k) for k in searched}, **_report_row(r, "trial", languages, prefix, objective)}
        for r in finished
    ]
    best_by_test = oracle(trials, languages)
    # the oracle's trials get intervals too (pseudo-rows: their predictions, compared on the same items)
    oracle_rows = [
        {"run_id": rid, "kind": "oracle", "method": f"oracle {rid}"}
        for rid in dict.fromkeys(v["run_id"] for v in (best_by_test or {}).get("languages", {}).values())
    ]
    uncertainty = add_row_uncertainty(client, rows + oracle_rows, kinds, languages, metric)
    for lang, v in (best_by_test or {}).get("languages", {}).items():
        v["ci"] = next((o.get("intervals") or {} for o in oracle_rows if o["run_id"] == v["run_id"]), {}).get(lang)
    for row in rows:
        row["method_kind"] = kinds.get(row["run_id"], "")
    selected = {r.data.tags.get("method", "trial"): dict(r.data.params) for r in best.values()}
    report = {
        "languages": languages,
        "rows": rows,
        "trials": trials,
        "selected_params": {
            name: {k: v for k, v in params.items() if k in searched or not k.startswith("method.")}
            for name, params in selected.items()
        },
        "objective_name": parent.data.tags.get("objective", objective),
        "selection_protocol": parent.data.tags.get("selection_protocol", ""),
        "budget": _budget(parent.data.params),
        "num_labels": (uncertainty or {}).get("num_labels"),
        "uncertainty": uncertainty,
        "tie": objective_tie_line(finished, objective, mode, parent.data.tags.get("selection_protocol", "")),
        "searched": searched,
        "oracle": best_by_test,
        "stopped": [_stopped_row(client, r, objective) for r in stopped],
        "epochs": parent.data.params.get("fixed.training.epochs"),
        "importance": parameter_table(trials, searched, "objective", mode),
        "optuna_importance": optuna_importances(
            parent.data.tags.get("optuna_storage"), parent.data.tags.get("study_name")
        ),
        "confirm": _confirm_artifact(client, parent.info.run_id),
        "parent_run_id": parent.info.run_id,
        "tracking_uri": uri,
        "metric": metric,
        "experiment": experiment,
    }
    report["warnings"] = selection_warnings(report)
    return report


def _stopped_row(client: Any, run: Any, objective: str) -> dict[str, Any]:
    """A trial ASHA stopped: its configuration, the epochs it trained (its ``epoch/...`` curve) and its last
    objective (English dev of that epoch)."""
    epochs = None
    key = next((k for k in (f"epoch/{objective}", *sorted(run.data.metrics)) if k.startswith("epoch/")), None)
    if key is not None:
        try:
            epochs = max((m.step for m in client.get_metric_history(run.info.run_id, key)), default=None)
        except Exception:  # the count is informative only
            epochs = None
    return {
        "configuration": run.info.run_name,
        "run_id": run.info.run_id,
        "epochs": epochs,
        "objective": run.data.metrics.get(objective, run.data.metrics.get(f"epoch/{objective}")),
    }


def _confirm_artifact(client: Any, parent_run_id: str) -> dict[str, Any] | None:
    """`mosecrot confirm`'s table as attached to the sweep's parent run (``confirm/confirm.json``), if any."""
    import tempfile

    from orchestrator.report_languages import CONFIRM_JSON, load_confirm

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(parent_run_id, f"confirm/{CONFIRM_JSON}", tmp)
            return load_confirm(path, parent_run_id)
    except Exception:  # not confirmed (or not attached): write_report also looks beside the report
        return None


def _budget(params: dict[str, str]) -> str | None:
    """A small training budget of the sweep (its fixed ``training.epochs`` / ``training.max_steps``), else None."""
    epochs, steps = params.get("fixed.training.epochs"), params.get("fixed.training.max_steps")
    if steps not in (None, "null"):
        return f"{steps} optimizer steps"
    if epochs is not None and epochs.isdigit() and int(epochs) <= 2:
        return f"{epochs} epoch" + ("s" if int(epochs) > 1 else "")
    return None


def selection_warnings(report: dict[str, Any]) -> list[str]:
    """What the reader must know before trusting the top row: the selected configuration does not beat LS (or
    not reliably: P(>ls) < 0.95), a trial that was not selected scores higher on test, a small budget."""
    rows = report["rows"]
    ls = next((r for r in rows if r["kind"] == "baseline" and r.get("method_kind") == "ls"), None)
    ls = ls or next((r for r in rows if r["kind"] == "baseline" and r["method"] == "ls"), None)
    out = []
    for row in (r for r in rows if r["kind"] == "trial"):
        mean, name = row.get("mean"), row["method"]
        if ls is not None and mean is not None and ls.get("mean") is not None:
            p = row.get(f"P(>{ls['method']})")
            if mean <= ls["mean"]:
                out.append(
                    f"the selected {name} configuration ({_fmt(mean)} mean {report['metric']}) does not beat LS "
                    f"({_fmt(ls['mean'])})"
                )
            elif p is not None and float(p) < 0.95:
                out.append(
                    f"the selected {name} configuration ({_fmt(mean)}) is not reliably better than LS "
                    f"({_fmt(ls['mean'])}): P(>{ls['method']}) = {p}"
                )
        better = [
            t for t in report.get("trials", []) if t.get("mean") is not None and mean is not None and t["mean"] > mean
        ]
        if better:
            top = max(better, key=lambda t: t["mean"])
            out.append(
                f"{len(better)} trial(s) not selected score higher on test (best {_fmt(top['mean'])}, "
                f"{top.get('configuration') or top['run_id']}): the objective "
                f"({report.get('objective_name')}) does not pick them, and picking by test would be peeking"
            )
    if report.get("budget"):
        out.append(
            f"a small training budget ({report['budget']}) made these numbers: they show the machinery, "
            "not what the methods can do"
        )
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("–" if value is None else str(value))


def _report_row(run, kind: str, languages: list[str], prefix: str, objective: str) -> dict[str, Any]:
    m, tags = run.data.metrics, run.data.tags
    row: dict[str, Any] = {
        "method": tags.get("method", run.info.run_name),
        "kind": kind,
        "supervision": tags.get("supervision", "zero-shot"),
        "configuration": run.info.run_name if kind == "trial" else "",
        "run_id": run.info.run_id,
        "objective": m.get(objective),
    }
    scores = [m.get(prefix + lang) for lang in languages]
    for lang, v in zip(languages, scores, strict=True):
        row[lang] = v
    row["mean"] = sum(scores) / len(scores) if scores and all(v is not None for v in scores) else None
    return row


def add_row_uncertainty(
    client: Any, rows: list[dict[str, Any]], kinds: dict[str, str], languages: list[str], metric: str
) -> dict[str, Any] | None:
    """Seeds, 95% intervals over test items and paired P(beats LS / the floor) into the report ``rows``, from the
    ``predictions.json`` each trial and baseline run logged (rows without it, e.g. older sweeps, get none).
    Only rows scored on the same items (fingerprints) as the first are compared."""
    import tempfile

    from mosecrot.run import REFERENCE_KINDS
    from mosecrot.uncertainty import table_uncertainty
    from orchestrator.tracking import PREDICTIONS_ARTIFACT

    if not metric.startswith("test_") or metric[len("test_") :] not in ("macro_f1", "accuracy"):
        return None
    import os

    found: dict[str, dict[str, Any]] = {}
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per downloaded file
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            try:
                path = client.download_artifacts(row["run_id"], PREDICTIONS_ARTIFACT, tmp)
                found[row["run_id"]] = json.loads(Path(path).read_text())
            except Exception:  # no artifact (an older sweep, a failed upload): the row keeps its plain scores
                continue
    if not found:
        return None
    first = next(iter(found.values()))
    gold = {lang: first["gold"][lang] for lang in languages if lang in first.get("gold", {})}
    predictions, seeds = {}, {}
    for row in rows:
        data = found.get(row["run_id"])
        if data is None:
            continue
        same = [
            lang
            for lang in gold
            if lang in data["predictions"] and data["fingerprints"].get(lang) == first["fingerprints"].get(lang)
        ]
        per_seed = {
            lang: data["predictions"][lang][:1] if data["deterministic"] else data["predictions"][lang] for lang in same
        }
        predictions[row["run_id"]] = per_seed
        seeds[row["run_id"]] = "det." if data["deterministic"] else str(len(data["seeds"]))
    first_of_kind: dict[str, str] = {}  # the first baseline of each kind that logged predictions
    for r in rows:
        if r["kind"] == "baseline" and r["run_id"] in predictions:
            first_of_kind.setdefault(kinds.get(r["run_id"], ""), r["run_id"])
    references = [first_of_kind[k] for k in REFERENCE_KINDS if k in first_of_kind]
    names = {r["run_id"]: r["method"] for r in rows}
    result = table_uncertainty(gold, predictions, int(first["num_labels"]), references, metric=metric[len("test_") :])
    for row in rows:
        rid = row["run_id"]
        row["seeds"] = seeds.get(rid)
        mean = result.means.get(rid)
        row["mean 95% CI"] = format_interval(mean) if mean else None
        row["mean_ci"] = mean["ci"] if mean else None
        for ref in references:
            p = (mean or {}).get("p_beats", {}).get(ref)
            row[f"P(>{names[ref]})"] = None if p is None else f"{p:.2f}"
        row["intervals"] = {lang: cell["ci"] for lang, cell in result.cells.get(rid, {}).items()}
    return {
        **result.settings,
        "references": [names[r] for r in references],
        "num_labels": int(first["num_labels"]),
    }


def objective_tie_line(finished: list, objective: str, mode: str, protocol: str) -> str | None:
    """The warning when several finished trials (MLflow runs) share the best objective, else None."""
    from orchestrator.ties import find_tie, tie_message

    tie = find_tie(
        ((r.info.run_name or r.info.run_id, dict(r.data.params), r.data.metrics[objective]) for r in finished), mode
    )
    return tie_message(tie, protocol) if tie else None


def trial_columns(report: dict[str, Any]) -> list[str]:
    """Columns of the every-trial table: the searched params, then objective and scores (run_id last)."""
    return [*report.get("searched", []), "objective", *report["languages"], "mean", "run_id"]


def write_report(report: dict[str, Any], out_dir: str | Path, mlflow: bool = True) -> dict[str, Path]:
    """``report.md`` (best per method beside the baselines, the selected configuration and the warnings, then
    every trial), ``report.csv``, ``trials.csv`` and ``report.png`` (`plot_report`) in `out_dir`; with ``mlflow``
    also attached to the sweep's MLflow run under ``report/`` (`attach_report`)."""
    from orchestrator.importance import plot_importance
    from orchestrator.importance import to_markdown as importance_markdown
    from orchestrator.report_languages import language_section, load_confirm, plot_scores, stopped_lines

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    langs, rows = report["languages"], report["rows"]
    unc = report.get("uncertainty")
    extra = ["seeds", "mean 95% CI", *[f"P(>{r})" for r in unc["references"]]] if unc else []
    cols = ["method", "kind", "supervision", "configuration", "objective", *langs, "mean", *extra, "run_id"]

    def md_table(columns: list[str], records: list[dict[str, Any]]) -> list[str]:
        return markdown_table(columns, [[_fmt(r.get(c)) for c in columns] for r in records])

    objective = report.get("objective_name") or "objective"
    protocol = report.get("selection_protocol")
    md = [
        f"# {report['experiment']}: {report['metric']} per language",
        "",
        f"Best trial per method by the objective `{objective}`"
        + (f" ({protocol} selection)" if protocol else "")
        + f", beside the baselines. Language columns and mean: {report['metric']} on each target's test set, "
        "never selected on; objective: the value the sweep selected on.",
        "",
        *[f"**WARNING: {w}**" for w in report.get("warnings", [])],
        *([""] if report.get("warnings") else []),
        *md_table(cols[:-1], rows),
    ]
    for name, params in (report.get("selected_params") or {}).items():
        if params:
            md += ["", f"Selected {name} configuration: " + ", ".join(f"`{k}` = {v}" for k, v in params.items())]
    if unc:
        md += [
            "",
            f"seeds: how many seeds the row averages (`det.`: the seed changes nothing). mean 95% CI: percentile "
            f"bootstrap over test items ({unc['n_resamples']} resamples, each language resampled). P(>X): share of "
            "paired resamples in which the row beats baseline X.",
        ]
    if report.get("tie"):  # the best objective is shared: the "best" trial is a tie-break (orchestrator.ties)
        md[1:1] = ["", f"**{report['tie']}**"]
    if not report.get("confirm"):  # `mosecrot confirm` writes its table beside the report
        report["confirm"] = load_confirm(out, report.get("parent_run_id"))
    md += ["", *language_section(report)]
    stopped = stopped_lines(report)
    if stopped:
        md += ["", *stopped]
    if report.get("importance"):
        md += [
            "",
            *importance_markdown(
                report["importance"], report.get("optuna_importance"), len(report.get("trials", [])), objective
            ),
        ]
    trials = report.get("trials", [])
    if trials:
        md += [
            "",
            f"## Every finished trial ({len(trials)}), best objective first",
            "",
            *md_table(trial_columns(report)[:-1], trials),
        ]
    md += ["", f"MLflow: {report['tracking_uri']} (parent run {report['parent_run_id']})"]
    paths = {
        "markdown": out / "report.md",
        "csv": out / "report.csv",
        "trials_csv": out / "trials.csv",
        "png": out / "report.png",
        "scores_png": out / "scores.png",
    }
    if report.get("importance"):
        paths["importance_png"] = out / "importance.png"
    md += [
        "",
        "Plots: `report.png` (scores per language), `scores.png` (with 95% intervals, the confirm winner and the "
        "oracle)" + (", `importance.png` (which parameters matter)" if "importance_png" in paths else "") + ".",
    ]
    paths["markdown"].write_text("\n".join(md) + "\n")
    for path, columns, records in ((paths["csv"], cols, rows), (paths["trials_csv"], trial_columns(report), trials)):
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            for r in records:
                w.writerow({c: r.get(c) for c in columns})
    plot_report(report, paths["png"])
    plot_scores(report, paths["scores_png"])
    if "importance_png" in paths:
        plot_importance(
            report["importance"],
            report.get("optuna_importance"),
            paths["importance_png"],
            f"{report['experiment']}: which parameters matter ({len(report.get('trials', []))} trials)",
            objective,
        )
    if mlflow and report.get("parent_run_id") and report.get("tracking_uri"):
        attach_report(report, paths)
    return paths


def attach_report(report: dict[str, Any], paths: dict[str, Path]) -> None:
    """The report files as artifacts of the sweep's MLflow run (``report/``), and the sweep's view in the UI
    (`orchestrator.tracking.publish_view`): the selected trials tagged ``selected``. Never fails the report."""
    import logging

    from mlflow import MlflowClient

    from orchestrator.tracking import publish_view, ui_view_state

    try:
        client = MlflowClient(tracking_uri=report["tracking_uri"])
        parent = client.get_run(report["parent_run_id"])
        for path in paths.values():
            client.log_artifact(parent.info.run_id, str(path), "report")
        for row in report["rows"]:
            if row["kind"] == "trial":
                client.set_tag(row["run_id"], "selected", "true")
        params = [k for k in report.get("searched", [])]
        publish_view(
            client,
            parent.info.experiment_id,
            ui_view_state(report["languages"], params, metric=report["metric"]),
        )
    except Exception as err:
        logging.getLogger(__name__).warning("could not attach the report to MLflow: %s", err)


def plot_report(report: dict[str, Any], path: str | Path) -> None:
    """Per-language scores of every row, then their mean (its own group), a chance line (1 / labels), target-
    supervised rows hatched, selected trials in strong colours, baselines in muted ones, the legend outside.
    Up to 60 bars as grouped bars; beyond, one marker per row and language (readable to 40+ languages)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs, rows = list(report["languages"]), report["rows"]
    groups = [*langs, "mean"]
    n = max(1, len(rows))
    bars = len(groups) * n <= 60
    width_in = min(MAX_PLOT_INCHES, max(6.0, 0.9 + (0.22 * n + 0.25) * len(groups) if bars else 0.32 * len(groups)))
    fig, ax = plt.subplots(figsize=(width_in + 2.6, 4.2))  # + the legend's column
    strong, muted = plt.get_cmap("tab10"), plt.get_cmap("Set2")
    xs = [j + (0.6 if g == "mean" else 0.0) for j, g in enumerate(groups)]  # a gap before the mean group
    width = 0.8 / n
    trial_i = base_i = 0
    for i, r in enumerate(rows):
        if r["kind"] == "trial":
            color, trial_i = strong(trial_i % 10), trial_i + 1
        else:
            color, base_i = muted(base_i % 8), base_i + 1
        target = r.get("supervision") == "target-supervised"
        label = f"{r['method']} ({'selected trial' if r['kind'] == 'trial' else 'baseline'})" + (
            ", target-supervised" if target else ""
        )
        values = [r.get(g) for g in langs] + [r.get("mean")]
        if bars:
            pos = [x - 0.4 + width * (i + 0.5) for x in xs]
            ax.bar(
                pos,
                [v if v is not None else 0.0 for v in values],
                width,
                color=color,
                label=label,
                hatch="//" if target else None,
                edgecolor="black" if r["kind"] == "trial" else "white",
                linewidth=0.6,
            )
        else:
            ax.plot(
                xs,
                [v if v is not None else float("nan") for v in values],
                marker="D" if r["kind"] == "trial" else ("x" if target else "o"),
                linestyle=":" if target else "-" if r["kind"] == "trial" else "--",
                linewidth=1.0,
                markersize=5,
                color=color,
                label=label,
            )
    chance = report.get("num_labels")
    if chance:
        ax.axhline(1.0 / chance, color="grey", linestyle="--", linewidth=1, label=f"chance (1/{chance} labels)")
    ax.axvline(xs[-1] - 0.8, color="lightgrey", linewidth=1)  # the mean group stands apart
    ax.set_xticks(xs, [*langs, "mean"], rotation=90 if len(groups) > 16 else 0)
    ax.set_xlim(xs[0] - 0.6, xs[-1] + 0.6)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{report['metric']} (test)")
    ax.set_title(f"{report['experiment']}: selected configuration vs baselines, {len(langs)} languages")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
