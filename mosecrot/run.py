"""Run one experiment: every method x seed, then one XTREME-style JSON report and a table.

The report (``results.json`` beside ``config.yaml`` in the run directory) holds per-language scores
(mean, std and the per-seed values) and averages over target languages for every method, the raw
per-seed metric dictionaries, the resolved config, timings and provenance.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mosecrot.config import ExperimentConfig
from mosecrot.configschema import flatten, to_dict
from mosecrot.errors import InputError
from mosecrot.loop import Record, preflight_methods, run_methods
from mosecrot.methods import MethodConfig, default_methods, needs_static
from mosecrot.metrics import metric_key, seed_summary
from mosecrot.prepare import prepare
from mosecrot.provenance import environment
from mosecrot.training import LoopHooks


@dataclass
class RunReport:
    config: ExperimentConfig
    records: list[Record]
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    directory: Path | None = None
    environment: dict[str, Any] = field(default_factory=environment)  # taken when the run starts


def summarize(
    records: list[Record], languages: list[str], split: str = "test", metric: str = "macro_f1"
) -> dict[str, Any]:
    """Per method: mean/std over seeds per language, and of the per-seed average over languages."""
    methods: dict[str, Any] = {}
    keys = {lang: metric_key(split, metric, lang) for lang in languages}
    for name in dict.fromkeys(r["method"] for r in records):
        runs = [r for r in records if r["method"] == name]
        per_lang = {}
        for lang, key in keys.items():
            vals = [r["metrics"][key] for r in runs if key in r["metrics"]]
            if vals:
                per_lang[lang] = {**seed_summary(vals), "seeds": vals}
        averages = [
            statistics.fmean(r["metrics"][k] for k in keys.values())
            for r in runs
            if all(k in r["metrics"] for k in keys.values())
        ]
        methods[name] = {
            "kind": runs[0]["kind"],
            "supervision": runs[0]["supervision"],
            "languages": per_lang,
            "average": seed_summary(averages) if averages else None,
        }
    return {"metric": f"{split}_{metric}", "languages": languages, "methods": methods}


def load_unfinished(directory: str | Path, cfg: ExperimentConfig) -> dict[str, Any]:
    """The ``results.json`` of an earlier run of the same config in `directory`, to continue it.

    Refused (before any work) when the directory has no results, the run is complete, or its resolved
    config differs from `cfg` (the differing keys are named): records of another config must not mix."""
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise InputError("no results.json to resume", path=path, expected="a run directory of `mosecrot run`")
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"results.json is not valid JSON ({err})", path=path) from err
    if old.get("complete"):
        raise InputError("this run is complete; nothing to resume", path=path)
    now, before = _comparable(to_dict(cfg)), _comparable(old.get("config") or {})
    differ = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    if differ:
        raise InputError(
            "the config differs from the run's: "
            + ", ".join(f"{k} ({before.get(k)!r} there, {now.get(k)!r} here)" for k in differ[:5]),
            path=path,
            expected="the same experiment and --set overrides as the interrupted run",
        )
    return old


def _comparable(config: dict) -> dict[str, Any]:
    """Dotted keys with JSON-normalised values (tuples and lists compare alike)."""
    return {k: json.loads(json.dumps(v, default=str)) for k, v in flatten(config).items()}


def run_experiment(
    cfg: ExperimentConfig,
    progress: bool = True,
    methods: list[MethodConfig] | None = None,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
) -> RunReport:
    """Every method x seed of `cfg`. ``resume``: the directory of an interrupted run of the same config;
    its finished (seed, method) records are kept and only the rest run."""
    t0 = time.perf_counter()
    methods = methods or cfg.methods or default_methods()
    preflight_methods(methods)  # cheap checks before the expensive prepare
    old = load_unfinished(resume, cfg) if resume else None
    prepared = prepare(cfg, static=needs_static(methods), progress=progress)
    timings = {"prepare": time.perf_counter() - t0}
    report = RunReport(cfg, [], {}, timings)
    if old is not None:
        assert resume is not None  # old was loaded from it
        report.directory = Path(resume)
        report.records = list(old.get("records", []))
        report.environment = {
            **old.get("environment", {}),
            "resumed": [*old.get("environment", {}).get("resumed", []), environment()],
        }
        # An interrupted session writes no total: count its prepare and the seconds of the finished records.
        before = old.get("timings_s", {})
        timings["earlier_sessions"] = float(before.get("prepare", 0.0)) + sum(
            float(r.get("seconds", 0.0)) for r in report.records
        )
    else:
        report.directory = run_directory(cfg, Path(output_dir or cfg.output_dir))

    def keep(record: Record) -> None:
        # Written after every method: a long run that dies keeps what it finished (complete: false).
        report.records.append(record)
        report.summary = summarize(report.records, list(cfg.target_languages))
        write_run(report, complete=False)

    run_methods(
        prepared,
        methods,
        cfg.seeds,
        cfg.training,
        LoopHooks(progress=progress),
        done={(r["seed"], r["method"]) for r in report.records},
        on_record=keep,
    )
    timings["methods"] = time.perf_counter() - t0 - timings["prepare"]
    timings["total"] = time.perf_counter() - t0  # this session; earlier ones under "earlier_sessions"
    report.summary = summarize(report.records, list(cfg.target_languages))
    write_run(report, complete=True)
    return report


def run_directory(cfg: ExperimentConfig, root: Path) -> Path:
    """``ROOT/NAME/STAMP/`` with the resolved ``config.yaml`` written before any work starts."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    directory = root / cfg.name / stamp
    directory.mkdir(parents=True, exist_ok=True)
    resolved = to_dict(cfg)
    (directory / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    return directory


def write_run(report: RunReport, complete: bool = True) -> Path:
    """``results.json`` beside ``config.yaml`` (atomically replaced, so a reader never sees half a file)."""
    assert report.directory is not None
    payload = {
        "experiment": report.config.name,
        "task": report.config.task.name,
        "complete": complete,
        "summary": report.summary,
        "records": report.records,
        "timings_s": {k: round(v, 1) for k, v in report.timings.items()},
        "training": to_dict(report.config.training),
        "seeds": report.config.seeds,
        "config": to_dict(report.config),
        "environment": report.environment,
    }
    tmp = report.directory / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str))
    tmp.replace(report.directory / "results.json")
    return report.directory
