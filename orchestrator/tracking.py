"""MLflow records of a sweep: one experiment per sweep name, a parent run per sweep, one child per trial,
one child per baseline — all with the same metric keys (``test_macro_f1.de``, ``dev_macro_f1.en``, ...).

Everything is logged from the sweep driver with an `MlflowClient` (never from Ray workers), so a run
is always ended explicitly: FINISHED or FAILED, never left RUNNING. The tracking URI comes from the flag,
else ``$MLFLOW_TRACKING_URI``, else a SQLite file ``mlruns.db`` in the working directory; the same
URI opens the UI: ``mlflow ui --backend-store-uri URI``.

Ray is not imported here (the Tune callback that feeds `SweepTracker` lives in `orchestrator.ray_tune`);
`orchestrator.report` reads the records back.
"""

from __future__ import annotations

import contextlib
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
TUNE_KEYS = frozenset(
    {
        "training_iteration",
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
        "done",
        "trial_id",
        "node_ip",
        "hostname",
        "date",
        "experiment_tag",
        "config",
        "checkpoint_dir_name",
        "should_checkpoint",
        "checkpoint_path",
        "timesteps_total",
        "episodes_total",
        "timesteps_since_restore",
        "warmup_time",
        "epoch",
    }
)
SWEEP_TAG, KIND_TAG, TRIAL_TAG, BASELINE_TAG = "mosecrot.sweep", "kind", "trial_id", "baseline"
PARENT_TAG = "mlflow.parentRunId"
PREDICTIONS_ARTIFACT = "predictions.json"  # a child run's per-item test predictions (`mosecrot.run.predictions_of`)
CONFIG_ARTIFACT = "config.resolved.yaml"  # a child run's experiment and method as they ran
METRIC_DECIMALS = 4  # logged metrics are rounded: the UI shows them as logged (0.1733 not 0.17333333)
SYSTEM_SAMPLING_S = 5.0  # seconds between system-metric samples (driver and trials' rank 0)
EPOCH_PREFIX = "epoch/"  # per-epoch metrics of a trial (dev_macro_f1.en at each epoch of its first fine-tuning)
SYSTEM_PREFIX = "system/"  # MLflow's system-metrics keys (its UI's System metrics tab shows these)
# Short names of search keys in run names (`config_name`); others are named by their last dotted part.
SHORT_KEYS = {"anchors.count": "n"}
_BARE_WORDS = {"all", "none", "null", "true", "false", "auto"}


# --- URIs ---------------------------------------------------------------------------------------------


def resolve_tracking_uri(flag: str | None = None, cwd: str | Path | None = None) -> str:
    """The flag, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns.db`` (absolute path)."""
    if flag:
        return flag
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + str((Path(cwd) if cwd else Path.cwd()).resolve() / DEFAULT_DB)


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a ``sqlite:///DIR/NAME.db`` store, in
    ``DIR/NAME-artifacts/EXPERIMENT`` (MLflow's default would be ``./mlruns`` of whatever directory the command
    ran in, shared between stores). None (the server's or store's default) for other URIs."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :]).expanduser().resolve()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment) or "experiment"
    return (db.parent / f"{db.stem}-artifacts" / safe).as_uri()


UI_VIEW_KEY = "mosecrot"  # the shared view state (`publish_view`) that the UI link opens
UI_VIEW_TAG = "mlflow.sharedViewState." + UI_VIEW_KEY  # an experiment tag the MLflow UI reads


def ui_command(sweep: str | None = None, flag: str | None = None) -> str:
    """The one command that opens a sweep's runs in the MLflow UI: ``mosecrot ui [SWEEP] [--tracking-uri URI]``
    (``flag``: the --tracking-uri the user gave, repeated so the UI reads the same store; with a server URI the
    command prints the server's address of the sweep)."""
    return " ".join(["mosecrot ui", *([sweep] if sweep else []), *([f"--tracking-uri {flag}"] if flag else [])])


def ui_target(uri: str, sweep: str | None = None) -> tuple[str | None, bool]:
    """(experiment id, whether it has the shared view state) of sweep ``sweep``, else of the sweep experiment
    updated last (None: no sweep in the store, the UI lists the experiments)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if sweep:
        found = client.get_experiment_by_name(sweep)
        candidates = [found] if found is not None else []
    else:
        candidates = [e for e in client.search_experiments() if "mosecrot.search_space" in e.tags]
        candidates.sort(key=lambda e: e.last_update_time or 0, reverse=True)
    if not candidates:
        return None, False
    return candidates[0].experiment_id, UI_VIEW_TAG in candidates[0].tags


def ui_url(base: str, experiment_id: str | None = None, view: bool = True) -> str:
    """The MLflow UI address of an experiment's runs in model-training mode: MLflow 3 opens an experiment in
    GenAI mode (traces, empty for a sweep) unless ``workflowType=machine_learning``; ``view``: with the sweep's
    shared view state (`publish_view`: its columns, sort and pinned baselines)."""
    base = base.rstrip("/")
    if experiment_id is None:
        return base + "/#/experiments?workflowType=machine_learning"
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={UI_VIEW_KEY}" if view else "")
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"  # the runs route: the shared view applies there


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear message when an MLflow server is unreachable (before any trial starts)."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (user-given tracking URI)
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
        except (OSError, urllib.error.URLError) as err:
            raise InputError(
                f"the MLflow tracking server {uri} is unreachable ({err})",
                key="--tracking-uri",
                expected="a running `mlflow server` (or a sqlite:/// or file: URI)",
            ) from None
    elif uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)


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
            out[sanitize_key(k)] = round(float(v), METRIC_DECIMALS)
    return out


def resolved_space(space: SearchSpace) -> dict[str, Any]:
    """The sweep spec as loaded, validated and resolved (defaults filled, base experiment included)."""
    data = {
        f.name: to_dict(getattr(space, f.name))
        for f in dataclasses.fields(space)
        if f.name not in ("base", "base_config", "method_config")
    }
    data["resolved_experiment"] = to_dict(space.base)
    return data


def resolved_space_yaml(space: SearchSpace) -> str:
    return yaml.safe_dump(resolved_space(space), sort_keys=False, allow_unicode=True)


def trial_tags(space: SearchSpace, seeds: list[int] | None = None) -> dict[str, str]:
    method = space.method_data()
    tags = {
        "method": str(method["name"]),
        "method_kind": str(method["kind"]),
        "selection_protocol": space.objective.protocol,
        "searcher": space.searcher.kind,
        "objective": f"{space.objective.split}_{space.objective.metric}." + ",".join(space.objective.languages or []),
    }
    if seeds is not None:
        tags["seeds"] = ",".join(map(str, seeds))
        if len(seeds) == 1:
            tags["seed"] = str(seeds[0])
    return tags


def config_name(params: dict[str, Any]) -> str:
    """A trial's run name from its searched configuration: ``softmax topk k=10 tau=0.05 n=2471``: categorical
    words bare, numbers as ``name=value`` (2 significant digits for floats), by the keys' last dotted part."""
    words, numbers = [], []
    for key, value in params.items():
        short = SHORT_KEYS.get(key, str(key).rsplit(".", 1)[-1])
        if isinstance(value, str) and value.lower() not in _BARE_WORDS:
            words.append(value)
        else:
            text = f"{value:.2g}" if isinstance(value, float) else str(value)
            numbers.append((not str(key).startswith("method."), short, f"{short}={text}"))
    # a choice named by its own setting (sparsify: threshold, threshold=0.66) is said once, by the setting
    words = [w for w in words if w not in {short for _, short, _ in numbers}]
    # the method's options first (alphabetically), then the experiment's (anchors.count as n)
    return " ".join(words + [n for *_, n in sorted(numbers)]) or "trial"


def baseline_name(name: str) -> str:
    return f"baseline: {name}"


def method_params(method: dict[str, Any]) -> dict[str, Any]:
    """A method's MLflow params in the key space of search keys (``method.kind``, ``method.stitch.oov``): the
    options of its own kind only, so a trial and a baseline share the keys they have in common."""
    return {f"method.{k}": v for k, v in flatten(method).items()}


# --- the tracker -----------------------------------------------------------------------------------------


class SweepTracker:
    """The sweep's MLflow experiment and parent run, and its children (trials and baselines).

    Idempotent on resume: the parent is found again by its sweep key (the Tune experiment path), and a
    trial or baseline already logged under it is not logged twice."""

    def __init__(self, space: SearchSpace, tracking_uri: str | None = None, sweep_key: str | None = None) -> None:
        from mlflow import MlflowClient  # here, not at the top: MLflow takes seconds to import

        self.space = space
        self.uri = resolve_tracking_uri(tracking_uri)
        check_tracking(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.sweep_key = sweep_key or space.name
        self.experiment_id = self._experiment()
        self.parent_id: str | None = None
        self._monitor: Any = None  # MLflow's system-metrics monitor of the parent run (this driver process)

    def _experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.space.name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        try:
            return self.client.create_experiment(
                self.space.name,
                artifact_location=artifact_location(self.uri, self.space.name),
                tags={"mosecrot.search_space": self.space.file or ""},
            )
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
                self._monitor_system(resume=True)
                return self.parent_id
        all_tags = {
            SWEEP_TAG: self.sweep_key,
            KIND_TAG: "sweep",
            "git_revision": git_revision(),
            "search_space": self.space.file or "",
            "mlflow.runName": f"sweep {self.space.name}",
            **trial_tags(self.space),
            **(tags or {}),
        }
        run = self.client.create_run(self.experiment_id, tags={k: str(v)[:MAX_TAG_VALUE] for k, v in all_tags.items()})
        self.parent_id = run.info.run_id
        self.client.log_text(self.parent_id, resolved_space_yaml(self.space), "search_space.resolved.yaml")
        if self.space.file and Path(self.space.file).is_file():
            self.client.log_artifact(self.parent_id, self.space.file)
        fixed = {f"fixed.{k}": v for k, v in self.space.fixed.items()}
        self._log(
            self.parent_id,
            params={
                **param_values(fixed),
                "num_trials": str(self.space.num_trials),
                "scheduler": self.space.scheduler.kind,
            },
        )
        self._monitor_system()
        return self.parent_id

    def _monitor_system(self, resume: bool = False) -> None:
        """MLflow's system-metrics logging of the sweep driver into the parent run (the System metrics tab)."""
        if os.environ.get("MOSECROT_SYSTEM_METRICS", "1") == "0" or self.parent_id is None:
            return
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(
                self.parent_id, sampling_interval=SYSTEM_SAMPLING_S, resume_logging=resume, tracking_uri=self.uri
            )
            self._monitor.start()
        except Exception as err:  # psutil missing, an old MLflow: the sweep runs without them
            log.info("no system metrics for the sweep run: %s", err)
            self._monitor = None

    def annotate(self, tags: dict[str, str], text: str | None = None, artifact: str = "notes.txt") -> None:
        """Tags (and a text artifact) on the parent run, e.g. the objective-tie warning of `orchestrator.ties`."""
        if self.parent_id is None:
            return
        for key, value in tags.items():
            self.client.set_tag(self.parent_id, sanitize_key(key), str(value)[:MAX_TAG_VALUE])
        if text:
            self.client.log_text(self.parent_id, text, artifact)

    def end(self, status: str = "FINISHED", metrics: dict[str, float] | None = None) -> None:
        if self.parent_id is None:
            return
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.finish()
            self._monitor = None
        if metrics:
            self._log(self.parent_id, metrics=metrics)
        self.client.set_terminated(self.parent_id, status=status)

    # children ----------------------------------------------------------------------------------------
    def logged(self, tag: str, value: str, finished_only: bool = False) -> bool:
        if self.parent_id is None:
            return False
        status = " and attributes.status = 'FINISHED'" if finished_only else ""
        return bool(
            self._runs(f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{tag}` = '{_quote(value)}'{status}")
        )

    def log_trial(
        self,
        trial_id: str,
        name: str | None,
        params: dict[str, Any],
        result: dict[str, Any] | None,
        status: str,
        error: str | None = None,
        seeds: list[int] | None = None,
        predictions: dict[str, Any] | None = None,
        *,
        epochs: list[dict[str, Any]] | None = None,
        system: list[dict[str, Any]] | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> str | None:
        """One child run per trial (skipped when this trial was already logged under the parent), named by its
        configuration (`config_name` when ``name`` is None). ``params``: the sampled params; the run's params are
        the method's (``method.name``, ``method.kind``, its fixed options) and the sampled ones.

        The run spans the trial's real training time (``started_at``/``ended_at``, epoch seconds; from the
        result's ``timing.started_at`` / ``time_total_s`` when not given). ``epochs``: its per-epoch reports (Tune
        results), logged as ``epoch/<key>`` with ``step`` = epoch and their own timestamps (the UI draws them as
        curves in their own section); the final metrics keep the keys baselines share (one value each: the UI
        draws them as bars beside the baselines'). ``system``: rank 0's samples (`orchestrator.trial.
        SystemSampler`) as MLflow system metrics (``system/...``); ``predictions`` (`mosecrot.run.predictions_of`)
        as ``predictions.json``, ``config`` (the resolved experiment and method) as ``config.resolved.yaml``.

        A child left RUNNING (the driver died while logging it) is replaced, and so is a FAILED one when
        the trial, resumed, finished: a trial keeps exactly one child run, with its final status."""
        if self.parent_id is not None:
            earlier = self._runs(
                f"tags.`{PARENT_TAG}` = '{self.parent_id}' and tags.`{TRIAL_TAG}` = '{_quote(trial_id)}'"
            )
            final = [
                r for r in earlier if r.info.status == "FINISHED" or (r.info.status == "FAILED" and status == "FAILED")
            ]
            if final:
                return None
            for r in earlier:  # a stale RUNNING record, or FAILED superseded by FINISHED
                self.client.delete_run(r.info.run_id)
        result = result or {}
        method = self.space.method_data()
        fixed_method = {k: v for k, v in method.items() if k not in ("name", "kind")}
        tags = {
            KIND_TAG: "trial",
            TRIAL_TAG: trial_id,
            "mlflow.runName": name or config_name(params),
            **trial_tags(self.space, seeds),
        }
        if status == "FINISHED" and "report_mean" not in result:
            tags["stopped_early"] = "true"  # ASHA stopped it: English dev only, no target scores
        if error:
            tags["error"] = error[-MAX_TAG_VALUE:]
        # fingerprint.vectors.de etc. (orchestrator.resources): which resources the trial used, as tags
        tags.update(
            {sanitize_key(k): v for k, v in result.items() if k.startswith("fingerprint.") and isinstance(v, str)}
        )
        metrics = metric_values(result)
        total = result.get("time_total_s")
        if isinstance(total, (int, float)):
            metrics["trial_seconds"] = float(total)
        ended = ended_at or _number(result.get("timestamp"))
        started = started_at or _number(result.get("timing.started_at"))
        if started is None and ended is not None and isinstance(total, (int, float)):
            started = ended - float(total)
        series = [
            (
                int(e.get("epoch") or e.get("training_iteration") or i + 1),
                _number(e.get("timestamp")),
                {EPOCH_PREFIX + k: v for k, v in metric_values(e).items()},
            )
            for i, e in enumerate(epochs or [])
            if "report_mean" not in e  # the final report is logged as the final metrics
        ]
        series += system_series(system or [])
        all_params = {**method_params({"name": method["name"], "kind": method["kind"], **fixed_method}), **params}
        artifacts = {CONFIG_ARTIFACT: config} if config else {}
        return self._child(
            tags,
            param_values(all_params),
            metrics,
            status,
            predictions,
            series=series,
            times=(started, ended),
            artifacts=artifacts,
        )

    def log_baseline(
        self,
        name: str,
        kind: str,
        supervision: str,
        metrics: dict[str, float],
        seeds: list[int],
        params: dict[str, Any] | None = None,
        status: str = "FINISHED",
        error: str | None = None,
        predictions: dict[str, Any] | None = None,
        *,
        started_at: float | None = None,
        ended_at: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> str | None:
        """A ``kind=baseline`` child run named ``baseline: NAME``; ``params``: the method's config (`MethodConfig.
        to_config`), logged as ``method.*`` params like a trial's; ``started_at``/``ended_at``: when it ran."""
        if self.logged(BASELINE_TAG, name, finished_only=True):  # a FAILED baseline is tried again
            return None
        tags = {
            KIND_TAG: "baseline",
            BASELINE_TAG: name,
            "method": name,
            "method_kind": kind,
            "supervision": supervision,
            "selection_protocol": self.space.objective.protocol,
            "seeds": ",".join(map(str, seeds)),
            "mlflow.runName": baseline_name(name),
        }
        if len(seeds) == 1:
            tags["seed"] = str(seeds[0])
        if error:
            tags["error"] = error[-MAX_TAG_VALUE:]
        return self._child(
            tags,
            param_values(method_params(params or {"name": name, "kind": kind})),
            metric_values(metrics),
            status,
            predictions,
            times=(started_at, ended_at),
            artifacts={CONFIG_ARTIFACT: config} if config else {},
        )

    def _child(
        self,
        tags: dict[str, str],
        params: dict[str, str],
        metrics: dict[str, float],
        status: str,
        predictions: dict[str, Any] | None = None,
        *,
        series: list[tuple[int, float | None, dict[str, float]]] | None = None,
        step: int = 0,
        times: tuple[float | None, float | None] = (None, None),
        artifacts: dict[str, Any] | None = None,
    ) -> str:
        assert self.parent_id is not None, "start() the parent run first"
        started, ended = times
        run = self.client.create_run(
            self.experiment_id,
            start_time=None if started is None else int(started * 1000),
            tags={
                PARENT_TAG: self.parent_id,
                SWEEP_TAG: self.sweep_key,
                **{k: str(v)[:MAX_TAG_VALUE] for k, v in tags.items()},
            },
        )
        run_id = run.info.run_id
        end_ms = None if ended is None else int(ended * 1000)
        try:
            self._log(run_id, params=params, metrics=metrics, step=step, timestamp=end_ms, series=series)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED", end_time=end_ms)
            raise
        for name, content in {
            **(artifacts or {}),
            **({PREDICTIONS_ARTIFACT: predictions} if predictions else {}),
        }.items():
            try:  # optional: an artifact store problem must not turn a finished run into a failed one
                if name.endswith(".yaml"):
                    self.client.log_text(run_id, yaml.safe_dump(content, sort_keys=False, allow_unicode=True), name)
                else:
                    self.client.log_dict(run_id, content, name)
            except Exception as err:
                log.warning("could not log %s of run %s: %s", name, run_id, err)
        self.client.set_terminated(run_id, status=status, end_time=end_ms)
        return run_id

    def _log(
        self,
        run_id: str,
        params: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
        step: int = 0,
        timestamp: int | None = None,
        series: list[tuple[int, float | None, dict[str, float]]] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param

        now = timestamp or int(time.time() * 1000)
        ps = [Param(k, v) for k, v in (params or {}).items()]
        ms = [
            Metric(k, v, int(at * 1000) if at else now, s)
            for s, at, values in (series or [])
            for k, v in values.items()
        ]
        ms += [Metric(k, v, now, step) for k, v in (metrics or {}).items()]
        for i in range(0, max(len(ps), 1), 100):  # MLflow: at most 100 params per batch
            chunk = ps[i : i + 100]
            if chunk:
                self.client.log_batch(run_id, params=chunk)
        for i in range(0, len(ms), 1000):
            self.client.log_batch(run_id, metrics=ms[i : i + 1000])

    def _runs(self, filter_string: str) -> list:
        return list(self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=1000))

    def children(self) -> list:
        assert self.parent_id is not None
        return self._runs(f"tags.`{PARENT_TAG}` = '{self.parent_id}'")


def system_series(samples: list[dict[str, Any]]) -> list[tuple[int, float | None, dict[str, float]]]:
    """Rank 0's system samples (``{"timestamp": epoch s, key: value}``) as MLflow system metrics: keys under
    ``system/`` (MLflow's own names where it has one, e.g. ``system/cpu_utilization_percentage``), one step per
    sample."""
    out = []
    for i, sample in enumerate(samples):
        values = {
            SYSTEM_PREFIX + sanitize_key(k): float(v)
            for k, v in sample.items()
            if k != "timestamp" and isinstance(v, (int, float)) and math.isfinite(v)
        }
        out.append((i, _number(sample.get("timestamp")), values))
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def ui_view_state(
    languages: list[str], params: list[str], metric: str = "test_macro_f1", objective: str = "objective"
) -> dict[str, Any]:
    """The MLflow UI's shared view state of a sweep (`publish_view`): columns for the run name's configuration,
    the objective, the per-language scores and their mean, the searched params; runs sorted by the objective;
    every run shown in the charts (MLflow's default shows the first 10, which hides the baselines)."""

    def col(kind: str, key: str) -> str:
        return f"{kind}.`{key}`"

    return {
        "searchFilter": "",
        "orderByKey": col("metrics", objective),
        "orderByAsc": False,
        "selectedColumns": [
            col("tags", KIND_TAG),
            col("metrics", objective),
            *[col("metrics", f"{metric}.{lang}") for lang in languages],
            col("metrics", f"{metric}.mean"),
            *[col("params", p) for p in params],
        ],
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "useGroupedValuesInCharts": False,
    }


def publish_view(client: Any, experiment_id: str, state: dict[str, Any]) -> None:
    """Store the view state as the experiment tag the MLflow UI opens with ``viewStateShareKey`` (`ui_url`)."""
    client.set_experiment_tag(experiment_id, UI_VIEW_TAG, json.dumps(state))


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")
