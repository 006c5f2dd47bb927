"""One per-language table from several `mosecrot run` results (XTREME style: rows methods, columns
languages and mean, cells mean ± std over seeds), as markdown or CSV.

Why: the paper-faithful `pair`-anchor runs and the `union`-anchor runs with the baselines are separate
experiments (different anchor sets mean different English fine-tunings); people compare them in one
table, with the published numbers beside them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from mosecrot.errors import InputError


@dataclass
class Row:
    label: str
    supervision: str
    cells: dict[str, dict | float | None]   # language -> {"mean", "std", "n"} (ours) or a float (paper)
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
        table.sources.append({"path": r["_path"], "experiment": r.get("experiment"), "anchors": scope,
                              "complete": r.get("complete"), "seeds": r.get("seeds"),
                              "training": r.get("training"), "timings_s": r.get("timings_s")})
        for name, m in r["summary"]["methods"].items():
            label = f"{name} [{scope}]" if counts[name] > 1 or scope == "pair" else name
            table.rows.append(Row(label, m["supervision"], dict(m["languages"]), m.get("average"),
                                  r.get("experiment", "")))
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
    """Mean over `languages`: per seed then mean ± std over seeds for our rows, plain mean for paper rows."""
    cells = [row.cells.get(lang) for lang in languages]
    if all(isinstance(c, float | int) for c in cells):
        return sum(cells) / len(cells)
    seeds = [c.get("seeds") for c in cells if isinstance(c, dict)]
    if len(seeds) != len(cells) or any(s is None or len(s) != len(seeds[0]) for s in seeds):
        return None
    per_seed = [sum(vals) / len(vals) for vals in zip(*seeds)]
    mean = sum(per_seed) / len(per_seed)
    std = (sum((v - mean) ** 2 for v in per_seed) / len(per_seed)) ** 0.5
    return {"mean": mean, "std": std, "n": len(per_seed)}


def format_cell(value: dict | float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"
    return f"{value:.2f}"


def value_columns(table: MergedTable) -> list[str]:
    """The columns after method and supervision: languages, "mean", and the common-language mean if any."""
    return [*table.languages, "mean", *([table.common_column] if table.common_column else [])]


def cell_value(table: MergedTable, row: Row, column: str) -> dict | float | None:
    if column == "mean":
        return row.average
    if column == table.common_column:
        return row.common
    return row.cells.get(column)


def header(table: MergedTable) -> list[str]:
    return ["method", "supervision", *value_columns(table)]


def row_cells(table: MergedTable, row: Row) -> list[str]:
    return [row.label, row.supervision, *[format_cell(cell_value(table, row, c)) for c in value_columns(table)]]


def to_markdown(table: MergedTable) -> str:
    head = header(table)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row_cells(table, row)) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def to_csv(table: MergedTable) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["method", "supervision", "source", "language", "mean", "std", "n"])
    for row in table.rows:
        for lang in value_columns(table):
            v = cell_value(table, row, lang)
            if isinstance(v, dict):
                w.writerow([row.label, row.supervision, row.source, lang, v["mean"], v["std"], v.get("n")])
            elif v is not None:
                w.writerow([row.label, row.supervision, row.source, lang, v, "", ""])
    return out.getvalue()
