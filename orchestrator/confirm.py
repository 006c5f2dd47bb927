"""``mosecrot confirm``: the best trials of a sweep re-run with several seeds, and the confirm table.

A sweep's best trial is one seed on one split. `confirm` takes the N best finished trials by the sweep's own
selection objective (`orchestrator.export.load_sweep`, checked against the current space by
`orchestrator.export.check_revision`), runs each with every seed in this process (no Ray: the same
`mosecrot.loop.run_methods` as ``mosecrot run``), and logs one MLflow run per (trial, seed) under the sweep's
parent run, tagged ``kind=confirm``, ``confirm_trial_id``, ``seed`` and ``confirm_of`` (the trial's run), with the
trial's metric keys (``test_macro_f1.de``, ``objective``, ``report_mean``, ...) and its ``predictions.json``.

Trials that share their data configuration (every experiment key but the method's options) are run by one
`run_methods` call per group, so one English fine-tuning per seed serves every trial whose fine-tuning is the
same (`mosecrot.methods.context.RunContext` keys fine-tunings by what decides them). A re-run skips the
(trial, seed) pairs already logged FINISHED: an interrupted confirm continues where it stopped.

The table (`confirm_table`): per confirmed trial, mean and sample standard deviation over seeds of the
objective and of each report language's test score, the 95% bootstrap interval of the mean over test items and
the paired probability of beating LS and the own-tokenizer floor (`mosecrot.uncertainty.table_uncertainty`,
as ``mosecrot report``), beside the sweep's baselines: the reference baselines (LS, the own-tokenizer floor)
re-run at the confirm seeds (`run_confirm_baselines`), the others as the sweep logged them (their own seeds).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mosecrot.cache import DiskCache
from mosecrot.configschema import to_dict
from mosecrot.errors import InputError
from mosecrot.loop import Record, run_methods
from mosecrot.methods import needs_static
from mosecrot.prepare import prepare
from mosecrot.run import REFERENCE_KINDS, evaluation_items, predictions_of
from mosecrot.training import LoopHooks
from orchestrator import output
from orchestrator.export import (
    CONFIRM,
    CONFIRM_BASELINE_TAG,
    CONFIRM_OF_TAG,
    CONFIRM_TRIAL_TAG,
    Sweep,
    Trial,
    check_revision,
    confirm_runs,
    confirm_winner,
    finished_pairs,
    load_sweep,
)
from orchestrator.search_space import SearchSpace, baseline_methods, trial_configs
from orchestrator.tracking import (
    KIND_TAG,
    PREDICTIONS_ARTIFACT,
    SWEEP_TAG,
    SweepTracker,
    method_params,
    metric_values,
    param_values,
)
from orchestrator.trial import OBJECTIVE, REPORT_MEAN, final_metrics, seeded_preparer

DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_TOP = 3


def parse_seeds(text: str | None) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2] (distinct integers, at least one)."""
    if text is None:
        return list(DEFAULT_SEEDS)
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(
            f"bad seeds {text!r}", key="--seeds", expected="distinct integers separated by commas, e.g. 0,1,2"
        )
    return seeds


# --- running --------------------------------------------------------------------------------------------


def _data_key(exp: Any) -> str:
    data = to_dict(exp)
    data.pop("methods", None)
    data.pop("seeds", None)
    return json.dumps(data, sort_keys=True, default=str)


def run_confirm(
    space: SearchSpace,
    tracking_uri: str | None = None,
    top: int = DEFAULT_TOP,
    seeds: list[int] | None = None,
    progress: bool = False,
    say: Any = print,
    log_file: str | Path | None = None,
) -> dict[str, Any]:
    """Run the ``top`` best trials with every seed (the pairs not yet logged) and log them (``log_file``: opened
    once the sweep and its trials' revision are checked, `orchestrator.output`); returns ``{"sweep",
    "trials", "seeds", "ran", "skipped", "baselines_ran", "notes", "fingerprints"}``."""
    seeds = list(seeds or DEFAULT_SEEDS)
    if top < 1:
        raise InputError(f"--top {top}", key="--top", expected="a positive number of trials")
    sweep = load_sweep(space, tracking_uri)
    notes = []
    if top > len(sweep.trials):
        notes.append(f"--top {top} clamped to {len(sweep.trials)}: the sweep has {len(sweep.trials)} finished trial(s)")
        top = len(sweep.trials)
    chosen = sweep.trials[:top]
    fingerprints = {t.trial_id: check_revision(sweep, t) for t in chosen}  # before any work
    if log_file is not None:
        output.attach_log_file(log_file)
    runs = confirm_runs(sweep)
    done = finished_pairs(runs)
    stale = [r for r in runs if r.info.status != "FINISHED"]
    tracker = SweepTracker(space, sweep.uri, sweep_key=sweep.parent.data.tags.get(SWEEP_TAG, space.name))
    tracker.parent_id = sweep.parent_id
    groups: dict[str, list[tuple[Trial, Any, Any]]] = {}
    for trial in chosen:
        exp, method = trial_configs(space, trial.params)
        exp.seeds = list(seeds)
        named = replace(method, name=f"{method.name}#{trial.rank}")  # one name per trial in the shared loop
        groups.setdefault(_data_key(exp), []).append((trial, exp, named))
    ran, skipped = 0, sum((t.trial_id, s) in done for t in chosen for s in seeds)
    for members in groups.values():
        exp = members[0][1]
        by_name = {named.name: trial for trial, _, named in members}
        todo_done = {(s, named.name) for trial, _, named in members for s in seeds if (trial.trial_id, s) in done}
        if len(todo_done) == len(members) * len(seeds):
            continue
        methods = [named for _, _, named in members]
        static = needs_static(methods)
        prepared = prepare(exp, static=static, progress=progress)
        items = evaluation_items(prepared)
        started = {"at": time.time()}

        def log(record: Record, by_name=by_name, items=items, started=started) -> None:
            nonlocal ran
            trial = by_name[record["method"]]
            for r in stale:  # a FAILED (or left RUNNING) record of this pair is replaced
                if r.data.tags.get(CONFIRM_TRIAL_TAG) == trial.trial_id and r.data.tags.get("seed") == str(
                    record["seed"]
                ):
                    tracker.client.delete_run(r.info.run_id)
            log_confirm_run(tracker, space, trial, record, items, fingerprints[trial.trial_id], started["at"])
            started["at"] = time.time()
            ran += 1
            say(f"confirm {trial.name} (rank {trial.rank}) seed {record['seed']}: " + _summary(space, record))

        _run_seeds(exp, prepared, static, methods, seeds, todo_done, log, progress)
    baselines_ran = run_confirm_baselines(space, sweep, seeds, tracker, runs, progress, say)
    return {
        "baselines_ran": baselines_ran,
        "sweep": sweep,
        "trials": chosen,
        "seeds": seeds,
        "ran": ran,
        "skipped": skipped,
        "notes": notes,
        "fingerprints": fingerprints,
    }


def _run_seeds(
    exp: Any, prepared: Any, static: bool, methods: list, seeds: list[int], done: set, log: Any, progress: bool
) -> None:
    """`run_methods` over ``seeds`` for confirm (the pairs in ``done`` skipped, errors recorded, each record to
    ``log``), with each seed's own data under ``seed_scope: all``."""
    run_methods(
        seeded_preparer(exp, prepared, static, progress) if exp.seed_scope == "all" else prepared,
        methods,
        seeds,
        exp.training,
        LoopHooks(progress=progress),
        cache=DiskCache(exp.cache_dir),
        done=done,
        on_record=log,
        errors="record",
        progress=progress,
    )


def run_confirm_baselines(
    space: SearchSpace,
    sweep: Sweep,
    seeds: list[int],
    tracker: SweepTracker,
    runs: list[Any],
    progress: bool = False,
    say: Any = print,
) -> int:
    """The sweep's reference baselines (LS, the own-tokenizer floor: `REFERENCE_KINDS`) at the confirm seeds, so
    the confirm table compares seed with seed (the sweep logged them at its own seeds only). Logged as
    ``kind=confirm`` runs tagged ``confirm_baseline``; pairs already FINISHED are skipped. Cheap: their English
    fine-tunings are those of the confirm runs (kept on disk). Returns how many ran."""
    methods = [m for m in baseline_methods(space) if m.kind in REFERENCE_KINDS]
    if not methods:
        return 0
    done = {
        (int(r.data.tags["seed"]), r.data.tags[CONFIRM_BASELINE_TAG])
        for r in runs
        if r.info.status == "FINISHED" and CONFIRM_BASELINE_TAG in r.data.tags and "seed" in r.data.tags
    }
    if all((s, m.name) in done for s in seeds for m in methods):
        return 0
    exp = space.experiment_config()
    exp.seeds = list(seeds)
    static = needs_static(methods)
    prepared = prepare(exp, static=static, progress=progress)
    items = evaluation_items(prepared)
    started = {"at": time.time()}
    ran = 0

    def log(record: Record) -> None:
        nonlocal ran
        seed, failed = int(record["seed"]), "error" in record
        for r in runs:  # a FAILED (or left RUNNING) record of this pair is replaced
            tags = r.data.tags
            if tags.get(CONFIRM_BASELINE_TAG) == record["method"] and tags.get("seed") == str(seed):
                tracker.client.delete_run(r.info.run_id)
        tags = {
            KIND_TAG: CONFIRM,
            CONFIRM_BASELINE_TAG: record["method"],
            "seed": str(seed),
            "seeds": str(seed),
            "method": record["method"],
            "method_kind": record["kind"],
            "supervision": str(record.get("supervision", "")),
            "selection_protocol": space.objective.protocol,
            "mlflow.runName": f"confirm: baseline: {record['method']} seed {seed}",
        }
        if failed:
            tags["error"] = str(record["error"])[-8000:]
        metrics = {} if failed else metric_values(final_metrics(space, record["metrics"]))
        metrics["trial_seconds"] = float(record.get("seconds") or 0.0)
        params = {**param_values(method_params(record.get("params") or {})), "seed": str(seed)}
        predictions = None if failed else predictions_of([record], items)
        tracker._child(
            tags, params, metrics, "FAILED" if failed else "FINISHED", predictions, times=(started["at"], time.time())
        )
        started["at"] = time.time()
        ran += 1
        say(f"confirm baseline {record['method']} seed {seed}: " + _summary(space, record))

    _run_seeds(exp, prepared, static, methods, seeds, done, log, progress)
    return ran


def _summary(space: SearchSpace, record: Record) -> str:
    if "error" in record:
        return f"FAILED ({record['error']})"
    m = final_metrics(space, record["metrics"])
    parts = [f"{k} {m[k]:.3f}" for k in (OBJECTIVE, REPORT_MEAN) if k in m]
    return ", ".join(parts) + f" ({record.get('seconds', 0):.0f} s)"


def log_confirm_run(
    tracker: SweepTracker,
    space: SearchSpace,
    trial: Trial,
    record: Record,
    items: dict[str, Any],
    fingerprint: str,
    started_at: float,
) -> str:
    """One ``kind=confirm`` child run of the sweep's parent: the trial at one seed, with the trial's params and
    metric keys, FINISHED (or FAILED with the error)."""
    seed = int(record["seed"])
    failed = "error" in record
    tags = {
        KIND_TAG: CONFIRM,
        CONFIRM_TRIAL_TAG: trial.trial_id,
        CONFIRM_OF_TAG: trial.run_id,
        "seed": str(seed),
        "seeds": str(seed),
        "sweep_rank": str(trial.rank),
        "config_fingerprint": fingerprint,
        "method": record["method"].split("#")[0],
        "method_kind": record["kind"],
        "selection_protocol": space.objective.protocol,
        "mlflow.runName": f"confirm: {trial.name} seed {seed}",
    }
    if failed:
        tags["error"] = str(record["error"])[-8000:]
    metrics = {} if failed else metric_values(final_metrics(space, record["metrics"]))
    metrics["trial_seconds"] = float(record.get("seconds") or 0.0)
    params = {**trial.logged_params, "seed": str(seed)}
    predictions = None if failed else predictions_of([record], items)
    return tracker._child(
        tags,
        params,
        metrics,
        "FAILED" if failed else "FINISHED",
        predictions,
        times=(started_at, time.time()),
    )


# --- the table ------------------------------------------------------------------------------------------


def _download(client: Any, run_id: str, tmp: str) -> dict[str, Any] | None:
    try:
        return json.loads(Path(client.download_artifacts(run_id, PREDICTIONS_ARTIFACT, tmp)).read_text())
    except Exception:
        return None


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def confirm_table(sweep: Sweep, trials: list[Trial], seeds: list[int]) -> dict[str, Any]:
    """The confirm table of ``trials`` (their FINISHED confirm runs at ``seeds``) beside the sweep's baselines:
    ``{"languages", "rows", "uncertainty", "seeds", "winner", ...}``; each row has ``{key: {"mean", "sd",
    "n"}}`` for the objective, each report language and the mean over them, the seeds it has, ``mean 95% CI`` and
    ``P(>ls)`` / ``P(>own_tokenizer)``."""
    from mosecrot.uncertainty import RESAMPLED, table_uncertainty

    space = sweep.space
    metric = space.objective.metric
    languages = list(space.report_languages or [])
    pairs = finished_pairs(confirm_runs(sweep))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    rows: list[dict[str, Any]] = []
    data: dict[str, dict[str, Any]] = {}  # row id -> predictions payload with per-seed lists
    seeded_baselines = _confirm_baseline_runs(sweep, seeds)
    with tempfile.TemporaryDirectory() as tmp:
        for trial in trials:
            runs = [(s, pairs[(trial.trial_id, s)]) for s in seeds if (trial.trial_id, s) in pairs]
            row: dict[str, Any] = {
                "row_id": trial.trial_id,
                "kind": "confirm",
                "method": trial.name,
                "sweep_rank": trial.rank,
                "trial_objective": trial.objective,
            }
            payload = seeded_row(row, runs, sweep, languages, metric, tmp)
            if payload is not None:
                data[trial.trial_id] = payload
            rows.append(row)
        for run in sweep.baselines:
            tags = run.data.tags
            name = tags.get("method", run.info.run_name)
            if name in seeded_baselines:  # re-run at the confirm seeds: compared seed with seed
                row = {
                    "row_id": f"baseline:{name}",
                    "kind": "baseline",
                    "method": name,
                    "method_kind": tags.get("method_kind", ""),
                    "supervision": tags.get("supervision", ""),
                    "at_confirm_seeds": True,
                }
                payload = seeded_row(row, seeded_baselines[name], sweep, languages, metric, tmp)
                if payload is not None:
                    data[row["row_id"]] = payload
                rows.append(row)
                continue
            tags, m = run.data.tags, run.data.metrics
            payload = _download(sweep.client, run.info.run_id, tmp)
            row = {
                "row_id": run.info.run_id,
                "kind": "baseline",
                "method": tags.get("method", run.info.run_name),
                "method_kind": tags.get("method_kind", ""),
                "supervision": tags.get("supervision", ""),
                "seeds": [int(s) for s in tags.get("seeds", "").split(",") if s.strip().lstrip("-").isdigit()],
                "run_ids": [run.info.run_id],
                "objective": {"mean": m.get(OBJECTIVE), "sd": None, "n": 1 if OBJECTIVE in m else 0},
            }
            per_seed: dict[str, list[float]] = {}
            if payload is not None and not payload.get("deterministic"):
                score = RESAMPLED.get(metric)
                for lang in languages:
                    if score is not None and lang in payload["predictions"]:
                        gold = np.asarray(payload["gold"][lang], dtype=np.int64)
                        full = np.arange(len(gold))[None, :]
                        per_seed[lang] = [
                            float(score(gold, np.asarray(p, dtype=np.int64), full, int(payload["num_labels"]))[0])
                            for p in payload["predictions"][lang]
                        ]
            for lang in languages:
                key = f"test_{metric}.{lang}"
                sd = statistics.stdev(per_seed[lang]) if len(per_seed.get(lang, [])) > 1 else None
                row[lang] = {"mean": m.get(key), "sd": sd, "n": len(per_seed.get(lang, [])) or (1 if key in m else 0)}
            vals = [row[lang]["mean"] for lang in languages]
            row["mean"] = {
                "mean": statistics.fmean(vals) if vals and all(v is not None for v in vals) else None,
                "sd": None,
                "n": 1,
            }
            row["deterministic"] = bool(payload and payload.get("deterministic"))
            if payload is not None:
                data[run.info.run_id] = payload
            rows.append(row)
    uncertainty = _uncertainty(rows, data, languages, metric, table_uncertainty)
    winner = confirm_winner(sweep)
    return {
        "sweep": space.name,
        "parent_run_id": sweep.parent_id,
        "tracking_uri": sweep.uri,
        "selection_protocol": space.objective.protocol,
        "objective": f"{space.objective.split}_{metric} on {', '.join(space.objective.languages or [])}",
        "metric": f"test_{metric}",
        "languages": languages,
        "seeds": seeds,
        "rows": rows,
        "uncertainty": uncertainty,
        "winner": None if winner is None else {"trial_id": winner[0].trial_id, "mean_objective": winner[1]},
    }


def _confirm_baseline_runs(sweep: Sweep, seeds: list[int]) -> dict[str, list[tuple[int, Any]]]:
    """Baseline name -> its FINISHED confirm-seed runs ``[(seed, run)]``, for baselines that have every seed."""
    by_name: dict[str, dict[int, Any]] = {}
    for r in confirm_runs(sweep):
        tags = r.data.tags
        if r.info.status == "FINISHED" and CONFIRM_BASELINE_TAG in tags and "seed" in tags:
            by_name.setdefault(tags[CONFIRM_BASELINE_TAG], {})[int(tags["seed"])] = r
    return {name: [(s, runs[s]) for s in seeds] for name, runs in by_name.items() if all(s in runs for s in seeds)}


def seeded_row(
    row: dict[str, Any], runs: list[tuple[int, Any]], sweep: Sweep, languages: list[str], metric: str, tmp: str
) -> dict[str, Any] | None:
    """Fill ``row`` from runs of one configuration at several seeds: mean and sample sd over seeds of the
    objective, each language and their mean; returns the predictions of all seeds merged (None if any is
    missing)."""
    row["seeds"] = [s for s, _ in runs]
    row["run_ids"] = [r.info.run_id for _, r in runs]
    keys = {"objective": OBJECTIVE, **{lang: f"test_{metric}.{lang}" for lang in languages}}
    for col, key in keys.items():
        vals = [r.data.metrics[key] for _, r in runs if key in r.data.metrics]
        mean, sd = _mean_sd(vals)
        row[col] = {"mean": mean, "sd": sd, "n": len(vals)}
    per_seed_means = [
        statistics.fmean(r.data.metrics[f"test_{metric}.{lang}"] for lang in languages)
        for _, r in runs
        if languages and all(f"test_{metric}.{lang}" in r.data.metrics for lang in languages)
    ]
    mean, sd = _mean_sd(per_seed_means)
    row["mean"] = {"mean": mean, "sd": sd, "n": len(per_seed_means)}
    payloads = [p for p in (_download(sweep.client, r.info.run_id, tmp) for _, r in runs) if p]
    if not payloads or len(payloads) != len(runs):
        return None
    merged = dict(payloads[0])
    merged["seeds"] = [s for p in payloads for s in p["seeds"]]
    merged["deterministic"] = all(p.get("deterministic") for p in payloads)
    merged["predictions"] = {
        lang: [seq for p in payloads for seq in p["predictions"].get(lang, [])] for lang in payloads[0]["predictions"]
    }
    row["deterministic"] = merged["deterministic"]
    return merged


def _uncertainty(rows, data, languages, metric, table_uncertainty) -> dict[str, Any] | None:
    """Intervals and paired win probabilities into ``rows`` (those with predictions on the same items)."""
    if not data or metric not in ("macro_f1", "accuracy"):
        return None
    first = data.get(next((r["row_id"] for r in rows if r["kind"] == "baseline" and r["row_id"] in data), ""), None)
    first = first or next(iter(data.values()))
    gold = {lang: first["gold"][lang] for lang in languages if lang in first.get("gold", {})}
    predictions = {}
    for row in rows:
        d = data.get(row["row_id"])
        if d is None:
            continue
        same = [
            lang
            for lang in gold
            if lang in d["predictions"] and d["fingerprints"].get(lang) == first["fingerprints"].get(lang)
        ]
        predictions[row["row_id"]] = {
            lang: d["predictions"][lang][:1] if d.get("deterministic") else d["predictions"][lang] for lang in same
        }
    refs = []
    for kind in REFERENCE_KINDS:
        candidates = [r for r in rows if r["kind"] == "baseline" and r.get("method_kind") == kind]
        ref = next((r for r in candidates if r["row_id"] in predictions), None)
        if ref is not None:
            refs.append(ref)
    result = table_uncertainty(gold, predictions, int(first["num_labels"]), [r["row_id"] for r in refs], metric=metric)
    for row in rows:
        mean = result.means.get(row["row_id"])
        row["mean 95% CI"] = mean["ci"] if mean else None
        for ref in refs:
            p = (mean or {}).get("p_beats", {}).get(ref["row_id"])
            row[f"P(>{ref['method']})"] = p
        row["intervals"] = {lang: cell["ci"] for lang, cell in result.cells.get(row["row_id"], {}).items()}
    return {**result.settings, "references": [r["method"] for r in refs]}


# --- rendering ------------------------------------------------------------------------------------------


def _cell(value: dict[str, Any] | None, deterministic: bool = False) -> str:
    if not value or value.get("mean") is None:
        return "–"
    text = f"{value['mean']:.3f}"
    if value.get("sd") is not None:
        text += f" ± {value['sd']:.3f}"
    elif deterministic:
        text += " (det.)"
    return text


def table_columns(table: dict[str, Any]) -> list[str]:
    refs = (table.get("uncertainty") or {}).get("references", [])
    return [
        "row",
        "kind",
        "sweep rank",
        "seeds",
        "objective",
        *table["languages"],
        "mean",
        "mean 95% CI",
        *[f"P(>{r})" for r in refs],
    ]


def table_cells(table: dict[str, Any]) -> list[dict[str, str]]:
    refs = (table.get("uncertainty") or {}).get("references", [])
    winner = (table.get("winner") or {}).get("trial_id")
    out = []
    for row in table["rows"]:
        det = bool(row.get("deterministic"))
        ci = row.get("mean 95% CI")
        cells = {
            "row": row["method"] + (" (winner)" if row["kind"] == "confirm" and row["row_id"] == winner else ""),
            "kind": row["kind"] + (" (confirm seeds)" if row.get("at_confirm_seeds") else ""),
            "sweep rank": str(row.get("sweep_rank", "")),
            "seeds": ("det." if det else ",".join(map(str, row["seeds"]))) or "–",
            "objective": _cell(row.get("objective")),
            **{lang: _cell(row.get(lang), det) for lang in table["languages"]},
            "mean": _cell(row.get("mean"), det),
            "mean 95% CI": f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "–",
        }
        for ref in refs:
            p = row.get(f"P(>{ref})")
            cells[f"P(>{ref})"] = "–" if p is None else f"{p:.2f}"
        out.append(cells)
    return out


def to_markdown(table: dict[str, Any], notes: list[str] | None = None) -> str:
    from orchestrator.report import markdown_table

    columns = table_columns(table)
    lines = [
        f"# Confirm: sweep {table['sweep']}",
        "",
        f"The best trials by the sweep's objective ({table['objective']}, protocol {table['selection_protocol']}) "
        f"re-run with seeds {','.join(map(str, table['seeds']))}; {table['metric']} on the report languages, "
        "mean ± sample standard deviation over seeds, beside the sweep's baselines: LS and the own-tokenizer floor "
        "re-run at the same seeds (kind `baseline (confirm seeds)`: compared seed with seed), the others as the sweep "
        "logged them (their own seeds; det. = the seed changes nothing).",
        "",
        *markdown_table(columns, [[c[k] for k in columns] for c in table_cells(table)]),
        "",
    ]
    unc = table.get("uncertainty")
    if unc:
        lines.append(
            f"mean 95% CI: percentile bootstrap over test items ({unc['n_resamples']} resamples, the seeds' mean); "
            "P(>X): share of paired resamples in which the row beats baseline X."
        )
    if table.get("winner"):
        lines.append(
            f"Winner (best mean objective over the confirm seeds, never test): {table['winner']['trial_id']} "
            f"({table['winner']['mean_objective']:.4f}); `mosecrot export` exports it."
        )
    lines += [f"Note: {n}" for n in notes or []]
    return "\n".join(lines) + "\n"


def to_csv(table: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    refs = (table.get("uncertainty") or {}).get("references", [])
    w.writerow(
        [
            "row",
            "kind",
            "id",
            "sweep_rank",
            "seeds",
            "column",
            "mean",
            "sd",
            "n",
            "ci_low",
            "ci_high",
            *[f"p_beats_{r}" for r in refs],
        ]
    )
    for row in table["rows"]:
        for col in ["objective", *table["languages"], "mean"]:
            v = row.get(col) or {}
            ci = (
                (row.get("intervals") or {}).get(col)
                if col in table["languages"]
                else row.get("mean 95% CI")
                if col == "mean"
                else None
            )
            probs = [row.get(f"P(>{r})") if col == "mean" else "" for r in refs]
            w.writerow(
                [
                    row["method"],
                    row["kind"],
                    row["row_id"],
                    row.get("sweep_rank", ""),
                    ",".join(map(str, row["seeds"])),
                    col,
                    v.get("mean"),
                    v.get("sd"),
                    v.get("n"),
                    *(ci or ["", ""]),
                    *["" if p is None else p for p in probs],
                ]
            )
    return out.getvalue()


def write_table(
    table: dict[str, Any], out_dir: str | Path, notes: list[str] | None = None, client: Any = None
) -> dict[str, Path]:
    """confirm.md, confirm.csv and confirm.json in ``out_dir`` (and as ``confirm/`` artifacts of the parent run)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "confirm.md", "csv": out / "confirm.csv", "json": out / "confirm.json"}
    paths["markdown"].write_text(to_markdown(table, notes))
    paths["csv"].write_text(to_csv(table))
    paths["json"].write_text(json.dumps({**table, "notes": notes or []}, indent=1, default=str))
    if client is not None:
        for path in paths.values():
            try:
                client.log_artifact(table["parent_run_id"], str(path), "confirm")
            except Exception:  # the table on disk is what counts
                pass
    return paths


__all__ = [
    "CONFIRM",
    "confirm_runs",
    "confirm_table",
    "confirm_winner",
    "parse_seeds",
    "run_confirm",
    "to_csv",
    "to_markdown",
    "write_table",
]
