"""MLflow records of a sweep: one experiment per sweep name, a parent run per sweep, one child per trial,
one child per baseline — all with the same metric keys (``test_macro_f1.de``, ``dev_macro_f1.en``, ...).

Everything is logged from the sweep driver with an `MlflowClient` (never from Ray workers), so a run
is always ended explicitly: FINISHED or FAILED, never left RUNNING. The tracking URI comes from the flag,
else ``$MLFLOW_TRACKING_URI``, else a SQLite file ``mlruns.db`` in the working directory; the same
URI opens the UI: ``mlflow ui --backend-store-uri URI``.

Ray is not imported here (the Tune callback that feeds `SweepTracker` lives in `orchestrator.sweep`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from mosecrot.configschema import flatten, to_dict
from mosecrot.errors import InputError
from orchestrator.search_space import SearchSpace

log = logging.getLogger(__name__)

DEFAULT_DB = "mlruns.db"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")  # MLflow allows alphanumerics, _ - . space / (and :)
# Keys Tune adds to every result: bookkeeping, not trial metrics.
TUNE_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "time_since_restore",
    "iterations_since_restore", "pid", "done", "trial_id", "node_ip", "hostname", "date", "experiment_tag",
    "config", "checkpoint_dir_name", "should_checkpoint", "checkpoint_path", "timesteps_total",
    "episodes_total", "timesteps_since_restore", "warmup_time", "epoch",
})
SWEEP_TAG, KIND_TAG, TRIAL_TAG, BASELINE_TAG = "mosecrot.sweep", "kind", "trial_id", "baseline"
PARENT_TAG = "mlflow.parentRunId"


# --- URIs ---------------------------------------------------------------------------------------------

def resolve_tracking_uri(flag: str | None = None, cwd: str | Path | None = None) -> str:
    """The flag, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns.db`` (absolute path)."""
    if flag:
        return flag
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + str((Path(cwd) if cwd else Path.cwd()).resolve() / DEFAULT_DB)


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on the store `uri` (a server URI is already a UI)."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} (the MLflow server's UI)"
    return f"mlflow ui --backend-store-uri {uri}"


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear message when an MLflow server is unreachable (before any trial starts)."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (user-given tracking URI)
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
        except (OSError, urllib.error.URLError) as err:
            raise InputError(f"the MLflow tracking server {uri} is unreachable ({err})",
                             key="--tracking-uri",
                             expected="a running `mlflow server` (or a sqlite:/// or file: URI)") from None
    elif uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


# --- flattening ----------------------------------------------------------------------------------------

def sanitize_key(key: str) -> str:
    """A valid MLflow param/metric key (dots and slashes kept: ``test_macro_f1.de`` stays as is)."""
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip("/") or "_"
    while "//" in key:
        key = key.replace("//", "/")
    return key[:250]


def param_values(params: dict[str, Any]) -> dict[str, str]:
    """MLflow params: flattened, sanitized keys, string values (None as "null", lists as JSON)."""
    out = {}
    for k, v in flatten(params).items():
        if v is None:
            s = "null"
        elif isinstance(v, (list, tuple)):
            s = json.dumps(list(v), default=str)
        else:
            s = str(v)
        out[sanitize_key(k)] = s[:MAX_PARAM_VALUE]
    return out


def metric_values(result: dict[str, Any]) -> dict[str, float]:
    """MLflow metrics from a trial result: finite numbers only, Tune's bookkeeping keys and absolute
    timestamps (``timing.*_at``, for benchmarks) dropped."""
    out = {}
    for k, v in result.items():
        if k in TUNE_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if k.startswith("timing.") and k.endswith("_at"):
            continue
        if math.isfinite(v):
            out[sanitize_key(k)] = float(v)
    return out


def resolved_space(space: SearchSpace) -> dict[str, Any]:
    """The sweep spec as loaded, validated and resolved (defaults filled, base experiment included)."""
    data = {f.name: to_dict(getattr(space, f.name)) for f in dataclasses.fields(space) if f.name != "base"}
    data["resolved_experiment"] = to_dict(space.base)
    return data


def resolved_space_yaml(space: SearchSpace) -> str:
    return yaml.safe_dump(resolved_space(space), sort_keys=False, allow_unicode=True)


def trial_tags(space: SearchSpace, seeds: list[int] | None = None) -> dict[str, str]:
    method = space.method_data()
    tags = {"method": str(method["name"]), "method_kind": str(method["kind"]),
            "selection_protocol": space.objective.protocol, "searcher": space.searcher.kind,
            "objective": f"{space.objective.split}_{space.objective.metric}." + ",".join(space.objective.languages or [])}
    if seeds is not None:
        tags["seeds"] = ",".join(map(str, seeds))
        if len(seeds) == 1:
            tags["seed"] = str(seeds[0])
    return tags


# --- the tracker -----------------------------------------------------------------------------------------

class SweepTracker:
    """The sweep's MLflow experiment and parent run, and its children (trials and baselines).

    Idempotent on resume: the parent is found again by its sweep key (the Tune experiment path), and a
    trial or baseline already logged under it is not logged twice."""

    def __init__(self, space: SearchSpace, tracking_uri: str | None = None, sweep_key: str | None = None) -> None:
        from mlflow import MlflowClient

        self.space = space
        self.uri = resolve_tracking_uri(tracking_uri)
        check_tracking(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.sweep_key = sweep_key or space.name
        self.experiment_id = self._experiment()
        self.parent_id: str | None = None

    def _experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.space.name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        try:
            return self.client.create_experiment(self.space.name, tags={"mosecrot.search_space": self.space.file or ""})
        except Exception:  # created concurrently by another driver
            exp = self.client.get_experiment_by_name(self.space.name)
            if exp is None:
                raise
            return exp.experiment_id

    # parent ------------------------------------------------------------------------------------------
    def start(self, tags: dict[str, str] | None = None, resume: bool = False) -> str:
        """Create the parent run, or on resume reopen the one logged for this sweep key."""
        from mosecrot.provenance import git_revision

        if resume:
            found = self._runs(f"tags.`{SWEEP_TAG}` = '{_quote(self.sweep_key)}' and tags.`{KIND_TAG}` = 'sweep'")
            if found:
                self.parent_id = found[0].info.run_id
                self.client.update_run(self.parent_id, status="RUNNING")
                return self.parent_id
        all_tags = {SWEEP_TAG: self.sweep_key, KIND_TAG: "sweep", "git_revision": git_revision(),
                    "search_space": self.space.file or "", "mlflow.runName": f"sweep {self.space.name}",
                    **trial_tags(self.space), **(tags or {})}
        run = self.client.create_run(self.experiment_id, tags={k: str(v)[:MAX_TAG_VALUE] for k, v in all_tags.items()})
        self.parent_id = run.info.run_id
        self.client.log_text(self.parent_id, resolved_space_yaml(self.space), "search_space.resolved.yaml")
        if self.space.file and Path(self.space.file).is_file():
            self.client.log_artifact(self.parent_id, self.space.file)
        fixed = {f"fixed.{k}": v for k, v in self.space.fixed.items()}
        self._log(self.parent_id, params={**param_values(fixed), "num_trials": str(self.space.num_trials),
                                          "scheduler": self.space.scheduler.kind})
        return self.parent_id

    def end(self, status: str = "FINISHED", metrics: dict[str, float] | None = None) -> None:
        if self.parent_id is None:
            return
        if metrics:
            self._log(self.parent_id, metrics=metrics)
        self.client.set_terminated(self.parent_id, status=status)

    # children ----------------------------------------------------------------------------------------
    def logged(self, tag: str, value: str, finished_only: bool = False) -> bool:
        if self.parent_id is None:
            return False
        status = " and attributes.status = 'FINISHED'" if finished_only else ""
        return bool(self._runs(f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{tag}` = '{_quote(value)}'{status}"))

    def log_trial(self, trial_id: str, name: str, params: dict[str, Any], result: dict[str, Any] | None,
                  status: str, error: str | None = None, seeds: list[int] | None = None) -> str | None:
        """One child run per trial (skipped when this trial was already logged under the parent).

        A child left RUNNING (the driver died while logging it) is replaced, and so is a FAILED one when
        the trial, resumed, finished: a trial keeps exactly one child run, with its final status."""
        if self.parent_id is not None:
            earlier = self._runs(f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{TRIAL_TAG}` = '{_quote(trial_id)}'")
            final = [r for r in earlier if r.info.status == "FINISHED" or (r.info.status == "FAILED" and status == "FAILED")]
            if final:
                return None
            for r in earlier:  # a stale RUNNING record, or FAILED superseded by FINISHED
                self.client.delete_run(r.info.run_id)
        result = result or {}
        tags = {KIND_TAG: "trial", TRIAL_TAG: trial_id, "mlflow.runName": name, **trial_tags(self.space, seeds)}
        if status == "FINISHED" and "report_mean" not in result:
            tags["stopped_early"] = "true"  # ASHA stopped it: English dev only, no target scores
        if error:
            tags["error"] = error[-MAX_TAG_VALUE:]
        metrics = metric_values(result)
        if "time_total_s" in result and isinstance(result["time_total_s"], (int, float)):
            metrics["trial_seconds"] = float(result["time_total_s"])
        return self._child(tags, param_values(params), metrics, status)

    def log_baseline(self, name: str, kind: str, supervision: str, metrics: dict[str, float], seeds: list[int],
                     params: dict[str, Any] | None = None, status: str = "FINISHED", error: str | None = None) -> str | None:
        if self.logged(BASELINE_TAG, name, finished_only=True):  # a FAILED baseline is tried again
            return None
        tags = {KIND_TAG: "baseline", BASELINE_TAG: name, "method": name, "method_kind": kind,
                "supervision": supervision, "selection_protocol": self.space.objective.protocol,
                "seeds": ",".join(map(str, seeds)), "mlflow.runName": f"baseline {name}"}
        if len(seeds) == 1:
            tags["seed"] = str(seeds[0])
        if error:
            tags["error"] = error[-MAX_TAG_VALUE:]
        return self._child(tags, param_values(params or {}), metric_values(metrics), status)

    def _child(self, tags: dict[str, str], params: dict[str, str], metrics: dict[str, float], status: str) -> str:
        assert self.parent_id is not None, "start() the parent run first"
        run = self.client.create_run(self.experiment_id, tags={PARENT_TAG: self.parent_id, SWEEP_TAG: self.sweep_key,
                                                                **{k: str(v)[:MAX_TAG_VALUE] for k, v in tags.items()}})
        run_id = run.info.run_id
        try:
            self._log(run_id, params=params, metrics=metrics)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        self.client.set_terminated(run_id, status=status)
        return run_id

    def _log(self, run_id: str, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        ps = [Param(k, v) for k, v in (params or {}).items()]
        ms = [Metric(k, v, now, 0) for k, v in (metrics or {}).items()]
        for i in range(0, max(len(ps), 1), 100):  # MLflow: at most 100 params per batch
            chunk = ps[i:i + 100]
            if chunk:
                self.client.log_batch(run_id, params=chunk)
        for i in range(0, len(ms), 1000):
            self.client.log_batch(run_id, metrics=ms[i:i + 1000])

    def _runs(self, filter_string: str) -> list:
        return list(self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=1000))

    def children(self) -> list:
        assert self.parent_id is not None
        return self._runs(f"tags.`{PARENT_TAG}` = '{self.parent_id}'")


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


# --- baselines -----------------------------------------------------------------------------------------

def log_baselines(space: SearchSpace, tracker: SweepTracker | None = None, tracking_uri: str | None = None,
                  progress: bool = False, prepared: Any = None) -> dict[str, dict[str, float]]:
    """Run every baseline of the sweep once (no Ray) and log it as a ``kind=baseline`` child run, with
    metrics averaged over the experiment's seeds under the same keys as trials. Returns name -> metrics.

    Without a `tracker`, a parent run is started (and ended) for the baselines alone."""
    from mosecrot.cache import DiskCache
    from mosecrot.methods import METHODS, RunContext, seeds_then_methods, supervision
    from mosecrot.prepare import needs_static, prepare
    from orchestrator.search_space import baseline_methods
    from orchestrator.trainable import base_experiment, final_metrics, mean_over_seeds

    methods = baseline_methods(space)
    own = tracker is None
    if own:
        tracker = SweepTracker(space, tracking_uri, sweep_key=f"{space.name}:baselines")
        tracker.start(tags={"baselines_only": "true"}, resume=True)
    assert tracker is not None
    out: dict[str, dict[str, float]] = {}
    status = "FINISHED"
    try:
        todo = [m for m in methods if not tracker.logged(BASELINE_TAG, m.name, finished_only=True)]
        if not todo:
            return out
        exp = base_experiment(space)
        exp.methods = list(todo)
        if prepared is None or (not prepared.static and needs_static(exp, todo)):  # the sweep's lacks vectors
            prepared = prepare(exp, progress=progress, methods=todo)
        from mosecrot.training import LoopHooks

        ctx = RunContext(prepared, exp.training, LoopHooks(progress=progress), DiskCache(exp.cache_dir))
        per_seed: dict[str, list[dict[str, float]]] = {m.name: [] for m in todo}
        failed: dict[str, str] = {}
        from tqdm.auto import tqdm

        bar = tqdm(seeds_then_methods(ctx, exp.seeds, todo), desc="baselines", unit="run",  # LS and the floor
                   total=len(exp.seeds) * len(todo), disable=not progress)  # share a fine-tuning (lazily)
        for seed, method in bar:
            bar.set_postfix_str(f"{method.name} seed {seed}")
            if method.name in failed:
                continue
            try:
                per_seed[method.name].append(METHODS[method.kind](ctx, method, seed))
            except Exception as err:  # one broken baseline is recorded FAILED; the others still run
                log.exception("baseline %s failed", method.name)
                failed[method.name] = f"{type(err).__name__}: {err}"
        bar.close()
        for method in todo:
            if method.name in failed:
                tracker.log_baseline(method.name, method.kind, supervision(method.kind), {}, list(exp.seeds),
                                     to_dict(method), status="FAILED", error=failed[method.name])
                continue
            metrics = final_metrics(space, mean_over_seeds(per_seed[method.name]))
            out[method.name] = metrics
            tracker.log_baseline(method.name, method.kind, supervision(method.kind), metrics, list(exp.seeds),
                                 to_dict(method))
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if own:
            tracker.end(status)
    return out


# --- report --------------------------------------------------------------------------------------------

def sweep_report(experiment: str, tracking_uri: str | None = None, metric: str = "test_macro_f1",
                 objective: str = "objective", mode: str = "max", languages: list[str] | None = None) -> dict[str, Any]:
    """Best trial per tuned method (by `objective`, never by test) beside every baseline, per language.

    Reads the latest sweep (parent run) of MLflow experiment `experiment`. Returns ``{"languages", "rows",
    "trials", "searched", "parent_run_id", "tracking_uri"}``; each row: method, kind (trial/baseline),
    supervision, run_id, objective, the ``{metric}.{lang}`` scores and their mean. ``trials`` holds every
    finished trial the same way, best objective first, with the values of the ``searched`` params (those
    that differ between trials), so a grid such as the paper's weighting x k reads as one table."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise InputError(f"no MLflow experiment named {experiment!r} in {uri}", key="SWEEP",
                         expected="the name of a sweep logged to this tracking URI")
    parents = list(client.search_runs([exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'sweep'",
                                      order_by=["attributes.start_time DESC"], max_results=50))
    parents = [p for p in parents if p.data.tags.get("baselines_only") != "true"] or parents
    if not parents:
        raise InputError(f"experiment {experiment!r} has no sweep run", key="SWEEP")
    parent = parents[0]
    runs = list(client.search_runs([exp.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
                                   max_results=5000))
    if not any(r.data.tags.get(KIND_TAG) == "baseline" for r in runs):  # baselines logged on their own
        for p in parents:
            if p.data.tags.get("baselines_only") == "true" or p.info.run_id != parent.info.run_id:
                more = client.search_runs([exp.experiment_id],
                                          filter_string=f"tags.`{PARENT_TAG}` = '{p.info.run_id}' and "
                                                        f"tags.`{KIND_TAG}` = 'baseline'", max_results=100)
                if more:
                    runs += list(more)
                    break
    prefix = metric + "."
    if languages is None:
        found = {k[len(prefix):] for r in runs for k in r.data.metrics if k.startswith(prefix)}
        languages = sorted(found - {"mean"})
    best: dict[str, Any] = {}
    rows, finished = [], []
    sign = 1 if mode == "max" else -1
    for r in runs:
        tags, m = r.data.tags, r.data.metrics
        if r.info.status != "FINISHED":
            continue
        if tags.get(KIND_TAG) == "trial":
            if objective not in m or not any(k.startswith(prefix) for k in m):
                continue
            finished.append(r)
            name = tags.get("method", "trial")
            if name not in best or sign * m[objective] > sign * best[name].data.metrics[objective]:
                best[name] = r
        elif tags.get(KIND_TAG) == "baseline":
            rows.append(_report_row(r, "baseline", languages, prefix, objective))
    rows = [_report_row(r, "trial", languages, prefix, objective) for r in best.values()] + rows
    keys = sorted({k for r in finished for k in r.data.params})
    searched = [k for k in keys if len({r.data.params.get(k) for r in finished}) > 1]
    finished.sort(key=lambda r: -sign * r.data.metrics[objective])
    trials = [{**{k: r.data.params.get(k) for k in searched}, **_report_row(r, "trial", languages, prefix, objective)}
              for r in finished]
    return {"languages": languages, "rows": rows, "trials": trials, "searched": searched,
            "parent_run_id": parent.info.run_id, "tracking_uri": uri, "metric": metric, "experiment": experiment}


def _report_row(run, kind: str, languages: list[str], prefix: str, objective: str) -> dict[str, Any]:
    m, tags = run.data.metrics, run.data.tags
    row: dict[str, Any] = {"method": tags.get("method", run.info.run_name), "kind": kind,
                           "supervision": tags.get("supervision", "zero-shot"), "run_id": run.info.run_id,
                           "objective": m.get(objective)}
    scores = [m.get(prefix + lang) for lang in languages]
    for lang, v in zip(languages, scores):
        row[lang] = v
    row["mean"] = sum(scores) / len(scores) if scores and all(v is not None for v in scores) else None
    return row


def trial_columns(report: dict[str, Any]) -> list[str]:
    """Columns of the every-trial table: the searched params, then objective and scores (run_id last)."""
    return [*report.get("searched", []), "objective", *report["languages"], "mean", "run_id"]


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """``report.md`` (best per method beside the baselines, then every trial), ``report.csv``, ``trials.csv``
    and ``report.png`` (per-language scores per method) in `out_dir`."""
    import csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    langs, rows = report["languages"], report["rows"]
    cols = ["method", "kind", "supervision", "objective", *langs, "mean", "run_id"]

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("–" if v is None else str(v))

    def md_table(columns: list[str], records: list[dict[str, Any]]) -> list[str]:
        return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                + ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in records])

    md = [f"# {report['experiment']}: {report['metric']} per language (best trial per method by objective; "
          f"baselines)", "", *md_table(cols[:-1], rows)]
    trials = report.get("trials", [])
    if trials:
        md += ["", f"## Every finished trial ({len(trials)}), best objective first", "",
               *md_table(trial_columns(report)[:-1], trials)]
    md += ["", f"MLflow: {report['tracking_uri']} (parent run {report['parent_run_id']})"]
    paths = {"markdown": out / "report.md", "csv": out / "report.csv", "trials_csv": out / "trials.csv",
             "png": out / "report.png"}
    paths["markdown"].write_text("\n".join(md) + "\n")
    for path, columns, records in ((paths["csv"], cols, rows), (paths["trials_csv"], trial_columns(report), trials)):
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            for r in records:
                w.writerow({c: r.get(c) for c in columns})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(langs) * max(1, len(rows)) / 2), 4))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [j + i * width for j in range(len(langs))]
        ax.bar(xs, [r.get(lang) or 0.0 for lang in langs], width, label=f"{r['method']} ({r['kind']})")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(langs))], langs)
    ax.set_ylabel(report["metric"])
    ax.set_title(report["experiment"])
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
