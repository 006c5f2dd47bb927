"""Run one experiment: every method x seed, then one XTREME-style JSON report and a table.

The report (``results.json`` beside ``config.yaml`` in the run directory) holds per-language scores
(mean, std and the per-seed values) and averages over target languages for every method, the raw
per-seed metric dictionaries, the resolved config, timings and provenance.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mosecrot.cache import texts_fingerprint
from mosecrot.config import ExperimentConfig, seeded_data_config
from mosecrot.configschema import flatten, holds_default, to_dict
from mosecrot.errors import InputError
from mosecrot.loop import Record, preflight_methods, run_methods
from mosecrot.methods import MethodConfig, default_methods, needs_static
from mosecrot.metrics import SCORED_SPLITS, item_key, metric_key, seed_summary
from mosecrot.prepare import Prepared, prepare
from mosecrot.provenance import environment
from mosecrot.training import LoopHooks
from mosecrot.uncertainty import table_uncertainty


@dataclass
class RunReport:
    config: ExperimentConfig
    records: list[Record]
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    directory: Path | None = None
    environment: dict[str, Any] = field(default_factory=environment)  # taken when the run starts
    items: dict[str, Any] = field(default_factory=dict)  # `evaluation_items`: gold labels the records score

    def summarize(self) -> dict[str, Any]:
        return summarize(
            self.records,
            list(self.config.target_languages),
            gold=self.items.get("gold"),
            num_labels=self.items.get("num_labels"),
        )


def evaluation_items(prepared: Prepared) -> dict[str, Any]:
    """Gold labels and a text fingerprint of every scored split, by `mosecrot.metrics.item_key`: what the
    records' per-item predictions are aligned with (bootstrap intervals here, `mosecrot compare` later)."""
    gold, fingerprints = {}, {}
    for lang, task in prepared.tasks.items():
        for split in SCORED_SPLITS:
            if split in task.splits:
                gold[item_key(split, lang)] = [int(v) for v in task.splits[split]["label"]]
                fingerprints[item_key(split, lang)] = texts_fingerprint(list(task.splits[split]["text"]))
    source = prepared.tasks[prepared.config.source_language].splits["train"]
    return {"num_labels": int(source.features["label"].num_classes), "gold": gold, "fingerprints": fingerprints}


def predictions_of(records: list[Record], items: dict[str, Any], split: str = "test") -> dict[str, Any] | None:
    """One method's per-item ``split`` predictions over its seeds, with the gold labels they are scored against
    (``{"num_labels", "seeds", "deterministic", "gold": {lang: labels}, "fingerprints": {lang: hash},
    "predictions": {lang: [one list per seed]}}``): what a sweep logs beside a trial's or a baseline's metrics
    so its report can give intervals. None without predictions."""
    runs = [r for r in records if "error" not in r and r.get("predictions")]
    if not runs or not items.get("gold"):
        return None
    prefix = f"{split}."
    languages = [k[len(prefix) :] for k in items["gold"] if k.startswith(prefix)]
    languages = [lang for lang in languages if all(item_key(split, lang) in r["predictions"] for r in runs)]
    return {
        "num_labels": items["num_labels"],
        "seeds": [r["seed"] for r in runs],
        "deterministic": bool(runs[0].get("deterministic")),
        "gold": {lang: items["gold"][item_key(split, lang)] for lang in languages},
        "fingerprints": {lang: items["fingerprints"].get(item_key(split, lang)) for lang in languages},
        "predictions": {lang: [r["predictions"][item_key(split, lang)] for r in runs] for lang in languages},
    }


def method_predictions(records: list[Record], prepared: Prepared) -> dict[str, Any] | None:
    """`predictions_of` one method's records on ``prepared``'s test items; None when they kept no predictions."""
    if not any(r.get("predictions") for r in records):
        return None
    return predictions_of(records, evaluation_items(prepared))


REFERENCE_KINDS = ("ls", "own_tokenizer")  # every zero-shot method is compared with the first method of each


def summarize(
    records: list[Record],
    languages: list[str],
    split: str = "test",
    metric: str = "macro_f1",
    gold: dict[str, list[int]] | None = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """Per method: mean, sample std and n over seeds per language and of the per-seed average over languages;
    with ``gold`` (labels by `mosecrot.metrics.item_key`) and the records' predictions, a 95% bootstrap
    interval over test items per cell and for the mean, and the paired-bootstrap probability of beating LS
    and the own-tokenizer floor (`mosecrot.uncertainty`)."""
    methods: dict[str, Any] = {}
    keys = {lang: metric_key(split, metric, lang) for lang in languages}
    names = list(dict.fromkeys(r["method"] for r in records))
    for name in names:
        runs = [r for r in records if r["method"] == name]
        deterministic = bool(runs[0].get("deterministic"))
        per_lang = {}
        for lang, key in keys.items():
            vals = [r["metrics"][key] for r in runs if key in r["metrics"]]
            if vals:
                per_lang[lang] = {**seed_summary(vals, deterministic), "seeds": vals}
        averages = [
            statistics.fmean(r["metrics"][k] for k in keys.values())
            for r in runs
            if all(k in r["metrics"] for k in keys.values())
        ]
        methods[name] = {
            "kind": runs[0]["kind"],
            "supervision": runs[0]["supervision"],
            "deterministic": deterministic,
            "languages": per_lang,
            "average": seed_summary(averages, deterministic) if averages else None,
        }
    out: dict[str, Any] = {"metric": f"{split}_{metric}", "languages": languages, "methods": methods}
    if gold and num_labels:
        out["uncertainty"] = _add_uncertainty(methods, records, languages, split, metric, gold, num_labels)
    return out


def _add_uncertainty(
    methods: dict[str, Any],
    records: list[Record],
    languages: list[str],
    split: str,
    metric: str,
    gold: dict[str, list[int]],
    num_labels: int,
) -> dict[str, Any]:
    """Bootstrap intervals and win probabilities into ``methods`` (in place); returns the settings used."""
    test_gold = {lang: gold[item_key(split, lang)] for lang in languages if item_key(split, lang) in gold}
    predictions: dict[str, dict[str, list[list[int]]]] = {}
    for name, summary in methods.items():
        runs = [r for r in records if r["method"] == name and "error" not in r]
        if summary["deterministic"]:
            runs = runs[:1]
        predictions[name] = {
            lang: [r["predictions"][item_key(split, lang)] for r in runs]
            for lang in test_gold
            if runs and all(item_key(split, lang) in r.get("predictions", {}) for r in runs)
        }
    references = [
        next(name for name, m in methods.items() if m["kind"] == kind)
        for kind in REFERENCE_KINDS
        if any(m["kind"] == kind for m in methods.values())
    ]
    result = table_uncertainty(test_gold, predictions, num_labels, references, metric=metric)
    for name, summary in methods.items():
        for lang, extra in result.cells.get(name, {}).items():
            if lang in summary["languages"]:
                summary["languages"][lang].update(extra)
        if name in result.means and summary["average"] is not None and set(test_gold) == set(languages):
            summary["average"].update(result.means[name])
    return result.settings


def load_unfinished(directory: str | Path, cfg: ExperimentConfig) -> dict[str, Any]:
    """The ``results.json`` of an earlier run of `cfg` in `directory`, to continue or extend it.

    Refused (before any work) when the directory has no results or its resolved config differs from `cfg`
    (the differing keys are named): records of another config must not mix. Two differences are growth, not
    another config: more seeds, and more methods (those that ran unchanged)."""
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise InputError("no results.json to resume", path=path, expected="a run directory of `mosecrot run`")
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"results.json is not valid JSON ({err})", path=path) from err
    before_config = dict(old.get("config") or {})
    if isinstance(before_config.get("methods"), list):
        before_config["methods"] = [_with_defaults(m) for m in before_config["methods"]]
    now, before = _comparable(to_dict(cfg)), _comparable(before_config)
    differ = sorted(
        k
        for k in set(now) | set(before)
        if now.get(k) != before.get(k) and not _added(k, before, now) and not _grown(k, before, now)
    )
    if differ:
        raise InputError(
            "the config differs from the run's: "
            + ", ".join(_difference(k, before.get(k), now.get(k)) for k in differ[:5]),
            path=path,
            expected="the same experiment and --set overrides as the run (seeds and methods may only be added)",
        )
    return old


def _difference(key: str, before: Any, now: Any) -> str:
    """``key (X there, Y here)``; for the methods, the first one that is gone or defined otherwise."""
    if key == "methods" and isinstance(before, list) and isinstance(now, list):
        new = {m.get("name"): flatten(m) for m in now if isinstance(m, dict)}
        for m in before:
            name, old = m.get("name"), flatten(m)
            if name not in new:
                return f"method {name!r} (in the run, not here)"
            changed = sorted(k for k in set(old) | set(new[name]) if old.get(k) != new[name].get(k))
            if changed:
                k = changed[0]
                return f"method {name!r}: {k} ({old.get(k)!r} there, {new[name].get(k)!r} here)"
    return f"{key} ({before!r} there, {now!r} here)"


def _added(key: str, before: dict[str, Any], now: dict[str, Any]) -> bool:
    """An option the run's config lacks that holds its default here: added to the tool since, it changes
    nothing the run did (a run survives an upgrade)."""
    return key not in before and holds_default(ExperimentConfig, key, now[key])


def _grown(key: str, before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Seeds or methods added to a run (a seed-0 run extended to seeds 0-2, a row added to the YAML): what ran
    is unchanged, so its records stay valid beside the new ones."""
    if key not in before or key not in now:
        return False
    if key == "seeds":
        return set(before[key]) <= set(now[key])
    if key == "methods":
        new = {m.get("name"): m for m in now[key]}
        return all(m.get("name") in new and m == new[m.get("name")] for m in before[key])
    return False


def _with_defaults(method: Any) -> Any:
    """A logged method entry with every option the tool has now (added since: at its default), so that a run
    survives an upgrade; an entry that no longer loads is compared as it was logged."""
    try:
        return to_dict(MethodConfig.from_config(method))
    except InputError:
        return method


def _comparable(config: dict) -> dict[str, Any]:
    """Dotted keys with JSON-normalised values (tuples and lists compare alike)."""
    return {k: json.loads(json.dumps(v, default=str)) for k, v in flatten(config).items()}


def run_experiment(
    cfg: ExperimentConfig,
    progress: bool = True,
    methods: list[MethodConfig] | None = None,
    output_dir: str | Path | None = None,
    resume: str | Path | None = None,
    on_directory: Callable[[Path], object] | None = None,
    only: list[str] | None = None,
) -> RunReport:
    """Every method x seed of `cfg`. ``resume``: the directory of an earlier run of the same config (or of
    fewer seeds or methods); its finished (seed, method) records are kept and only the rest run. ``only``: the
    names of the methods to run now (the others wait for a later ``resume``; the run is complete when every
    method has every seed). ``on_directory``: called with the run directory once it exists, after prepare and
    before any method (the CLI opens its log file there)."""
    t0 = time.perf_counter()
    methods = methods or cfg.methods or default_methods()
    todo_methods = chosen_methods(methods, only)
    preflight_methods(todo_methods)  # cheap checks before the expensive prepare
    old = load_unfinished(resume, cfg) if resume else None
    if old is not None and all_finished(old.get("records", []), cfg.seeds, todo_methods):
        raise InputError(
            "nothing to resume: every seed x method asked for is finished",
            path=Path(str(resume)) / "results.json",
            expected="more seeds (--set 'seeds=[0,1,2]'), more methods in the YAML, or other --methods",
        )
    static = needs_static(todo_methods)  # rows left for later need not pay for static vectors now
    # under seed_scope all every seed prepares its own data (`seeded_data_config`); this is the first seed's
    prepared = prepare(seeded_data_config(cfg, cfg.seeds[0]), static=static, progress=progress)
    timings = {"prepare": time.perf_counter() - t0}
    report = RunReport(cfg, [], {}, timings, items=evaluation_items(prepared))
    if old is not None:
        assert resume is not None  # old was loaded from it
        report.directory = Path(resume)
        write_config(report.directory, cfg)
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
    else:  # after prepare: input that fails there leaves no run directory behind
        report.directory = run_directory(cfg, Path(output_dir or cfg.output_dir))
    if on_directory is not None:
        on_directory(report.directory)

    def keep(record: Record) -> None:
        # Written after every method: a long run that dies keeps what it finished (complete: false).
        report.records.append(record)
        report.summary = report.summarize()
        write_run(report, complete=False)

    def prepare_seed(seed: int) -> Prepared:  # seed_scope all: the seed's own vectors, dictionaries and anchors
        t = time.perf_counter()
        data = (
            prepared
            if seed == cfg.seeds[0]
            else prepare(seeded_data_config(cfg, seed), static=static, progress=progress)
        )
        timings["prepare"] += time.perf_counter() - t
        return data

    run_methods(
        prepare_seed if cfg.seed_scope == "all" else prepared,
        todo_methods,
        cfg.seeds,
        cfg.training,
        LoopHooks(progress=progress),
        done={(r["seed"], r["method"]) for r in report.records},
        on_record=keep,
    )
    timings["methods"] = time.perf_counter() - t0 - timings["prepare"]
    timings["total"] = time.perf_counter() - t0  # this session; earlier ones under "earlier_sessions"
    report.summary = report.summarize()
    write_run(report, complete=all_finished(report.records, cfg.seeds, methods))
    return report


def all_finished(records: list[Record], seeds: list[int], methods: list[MethodConfig]) -> bool:
    """Whether `records` hold every seed x method."""
    finished = {(r["seed"], r["method"]) for r in records}
    return all((s, m.name) in finished for s in seeds for m in methods)


def chosen_methods(methods: list[MethodConfig], only: list[str] | None) -> list[MethodConfig]:
    """The methods named in ``only`` (all when None), in the experiment's order; an unknown name is an error."""
    if only is None:
        return methods
    names = [m.name for m in methods]
    unknown = [n for n in only if n not in names]
    if unknown or not only:
        raise InputError(
            f"no method named {', '.join(map(repr, unknown))}" if unknown else "no method names given",
            key="--methods",
            expected="names of the experiment's methods: " + ", ".join(names),
        )
    return [m for m in methods if m.name in only]


def run_directory(cfg: ExperimentConfig, root: Path) -> Path:
    """``ROOT/NAME/STAMP/`` with the resolved ``config.yaml`` written before any work starts."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    directory = root / cfg.name / stamp
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory, cfg)
    return directory


def write_config(directory: Path, cfg: ExperimentConfig) -> None:
    """The resolved config as ``config.yaml`` (rewritten when a resume adds seeds or methods)."""
    (directory / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))


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
        "items": report.items,
    }
    tmp = report.directory / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str))
    tmp.replace(report.directory / "results.json")
    return report.directory
