"""One sweep trial, without Ray: from Tune's sampled params to per-language metrics.

`run_trial` builds the trial's experiment and method (`trial_configs`), prepares (the sweep's shared
resources, else the disk cache) and runs `mosecrot.loop.run_methods` for every seed; Ray Train workers
(`orchestrator.ray_tune`) and `run_trial_locally` (debugging, tests, benchmarks) call it alike.

What Tune sees, per trial:

* one report per epoch of the trial's *first* English fine-tuning (seed 0, first language group):
  ``dev_macro_f1.en``, ``dev_accuracy.en``, ``dev_loss.en``, ``epoch`` and, under the english-dev
  protocol, ``objective`` (what ASHA and Optuna's intermediate values read). Later fine-tunings (other
  seeds, per-language groups) are not forwarded, so ``training_iteration`` counts epochs of one run and
  the final report is iteration ``epochs + 1``. Under selection-languages-dev with ASHA the method scores
  the selection languages' dev sets after every epoch where it can (F_t swapped into the model being trained:
  `epoch_languages`), and those reports carry their mean as ``objective``; without such scores (other
  methods, or no ASHA) no per-epoch report is forwarded;
* one final report: every metric averaged over seeds (``test_macro_f1.de``, ``dev_macro_f1.en``, ...),
  ``objective`` (`OBJECTIVE`), ``report_mean`` (`REPORT_MEAN`) and ``{split}_{metric}.mean`` over the
  report languages, plus ``timing.*`` and ``system.*`` measurements of the worker, and (strings) the
  ``fingerprint.vectors.de`` / ``fingerprint.dictionary.de`` / ``fingerprint.anchors.de`` of the resources it
  used (`orchestrator.resources`; tags of the trial's MLflow run).
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mosecrot.cache import DiskCache
from mosecrot.config import ExperimentConfig, seeded_data_config
from mosecrot.configschema import to_dict
from mosecrot.loop import mean_metrics, run_methods
from mosecrot.methods import MethodConfig, needs_static
from mosecrot.metrics import language_means, metric_key
from mosecrot.prepare import Prepared, SharedResources, prepare, resource_key
from mosecrot.run import method_predictions
from mosecrot.training import LoopHooks
from orchestrator.resources import adopt, check_expected, check_fingerprints, fingerprint_metrics, resource_fingerprints
from orchestrator.search_space import SearchSpace, objective_value, report_value, trial_configs

OBJECTIVE = "objective"  # the Tune/Optuna metric: mean of the objective keys
REPORT_MEAN = "report_mean"  # mean test score over the report languages (never selected on)
GRID_KEY = "grid_point"  # grid sweeps: Tune's grid generator hands the whole point under this key
CHECKPOINT_FILE = "trial.json"  # the final payload in a trial's checkpoint
log = logging.getLogger(__name__)


def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The sampled params from a Tune config: Optuna's flat dotted keys, or the grid point under `GRID_KEY`."""
    if GRID_KEY in config:
        return dict(config[GRID_KEY])
    return dict(config)


def final_metrics(space: SearchSpace, metrics: dict[str, float]) -> dict[str, float]:
    """A trial's (or baseline's) metrics plus `OBJECTIVE`, `REPORT_MEAN` and means over report languages.

    Baselines that lack the objective's keys (e.g. LR has no English dev) simply get no `OBJECTIVE`."""
    out = dict(metrics)
    for key, value in ((OBJECTIVE, objective_value), (REPORT_MEAN, report_value)):
        try:
            out[key] = value(space, metrics)
        except ValueError:
            pass
    out.update(language_means(metrics, list(space.report_languages or [])))
    return out


@dataclass
class EpochReporter:
    """``LoopHooks.report``: per-epoch English dev metrics of the first fine-tuning, under trial metric keys."""

    space: SearchSpace
    source_language: str
    sink: Callable[[dict[str, float]], None] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    _forwarding: bool = True
    _last_epoch: int = 0

    def __call__(self, entry: dict[str, Any]) -> None:
        self.history.append(dict(entry))
        epoch = int(entry.get("epoch", 0))
        if epoch <= self._last_epoch:  # a new fine-tuning started (another seed or language group)
            self._forwarding = False
        self._last_epoch = epoch
        if not self._forwarding or self.sink is None:
            return
        metrics = self.epoch_metrics(entry)
        if metrics is not None:
            self.sink(metrics)

    def epoch_metrics(self, entry: dict[str, Any]) -> dict[str, float] | None:
        obj = self.space.objective
        if obj.protocol != "english-dev":
            return self.selection_metrics(entry)
        out = {
            metric_key("dev", m, self.source_language): float(entry[f"dev_{m}"])
            for m in ("macro_f1", "accuracy", "loss")
            if f"dev_{m}" in entry
        }  # the loop's per-epoch entry
        out["epoch"] = int(entry.get("epoch", 0))
        key = f"dev_{obj.metric}"
        if key in entry:
            out[OBJECTIVE] = float(entry[key])
        return out

    def selection_metrics(self, entry: dict[str, Any]) -> dict[str, float] | None:
        """Under selection-languages-dev: the epoch's dev scores of the selection languages and their mean as
        ``objective``, when the method scored every one of them after the epoch (`epoch_languages`)."""
        obj = self.space.objective
        keys = [metric_key("dev", obj.metric, lang) for lang in obj.languages or []]
        if not keys or not all(k in entry for k in keys):
            return None
        out = {k: float(v) for k, v in entry.items() if k.startswith("dev_") and "." in k}
        out["epoch"] = int(entry.get("epoch", 0))
        out[OBJECTIVE] = sum(float(entry[k]) for k in keys) / len(keys)
        return out


def epoch_languages(space: SearchSpace) -> tuple[str, ...]:
    """The target languages a trial's method scores after every epoch: the selection languages when ASHA
    needs per-epoch objectives under selection-languages-dev (it costs their dev sets once per epoch)."""
    obj = space.objective
    if space.scheduler.kind == "asha" and obj.protocol == "selection-languages-dev":
        return tuple(obj.languages or ())
    return ()


def run_trial(
    space: SearchSpace,
    params: dict[str, Any],
    hooks_factory: Callable[[EpochReporter], LoopHooks],
    sink: Callable[[dict[str, float]], None] | None = None,
    progress: bool = False,
    shared: SharedResources | None = None,
    expected: tuple[Any, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Prepare (the sweep's `shared` resources, else from the disk cache, checked against ``expected``: the
    driver's resource key and fingerprints), run the method for every seed, average. Returns a payload with
    ``metrics`` (final, averaged + objective), ``per_seed``, ``predictions``, ``params``, ``history`` and
    ``seconds``."""
    t0 = time.perf_counter()
    exp, method = trial_configs(space, params)
    prepared, fingerprints = prepare_trial(exp, method, shared, progress, expected)
    reporter = EpochReporter(space, exp.source_language, sink)
    hooks = hooks_factory(reporter)
    hooks.epoch_languages = epoch_languages(space)
    records = run_methods(
        seeded_preparer(exp, prepared, needs_static([method]), progress) if exp.seed_scope == "all" else prepared,
        [method],
        exp.seeds,
        exp.training,
        hooks,
        cache=DiskCache(exp.cache_dir),
    )
    metrics: dict[str, Any] = final_metrics(space, mean_metrics(records)[method.name])
    metrics["timing.prepare_s"] = round(prepared.timings.get("total", 0.0), 3)
    metrics["timing.shared_resources"] = float(prepared.shared is shared and shared is not None)
    metrics.update(fingerprint_metrics(fingerprints))  # strings: MLflow tags of the trial's run
    return {
        "params": params,
        "method": to_dict(method),
        "seeds": list(exp.seeds),
        "fingerprints": fingerprints,
        "metrics": metrics,
        "per_seed": [r["metrics"] for r in records],
        "predictions": method_predictions(records, prepared),
        "history": reporter.history,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def seeded_preparer(
    exp: ExperimentConfig, first: Prepared, static: bool, progress: bool = False
) -> Callable[[int], Prepared]:
    """Under ``seed_scope: all``: each seed's own vectors, dictionary induction and anchors
    (`mosecrot.config.seeded_data_config`), as `mosecrot run` prepares them; ``first`` (the sweep's resources)
    serves a seed whose seeded config is the experiment's own (its data seeds are already that seed)."""

    def prepare_seed(seed: int) -> Prepared:
        seeded = seeded_data_config(exp, seed)
        if seeded == exp:
            return first
        return prepare(seeded, static=static, progress=progress)

    return prepare_seed


def prepare_trial(
    exp: ExperimentConfig,
    method: MethodConfig,
    shared: SharedResources | None,
    progress: bool = False,
    expected: tuple[Any, dict[str, str]] | None = None,
) -> tuple[Prepared, dict[str, str]]:
    """A trial's preparation from the sweep's `shared` resources: the driver's cache entries this node lacks are
    installed first (`orchestrator.resources.adopt`: never rebuilt here), and the vectors and dictionaries the
    trial uses are checked against the driver's by fingerprint when its config has the driver's resource key
    (`ResourceMismatch` otherwise). Returns the preparation and its fingerprints (vectors, dictionaries,
    anchors). Without `shared` (it could not be fetched), what the trial built is checked against
    ``expected`` (the driver's resource key and fingerprints) the same way."""
    adopt(shared, DiskCache(exp.cache_dir))
    prepared = prepare(exp, static=needs_static([method]), progress=progress, shared=shared)
    fingerprints = resource_fingerprints(prepared)
    if shared is not None:
        check_fingerprints(shared, fingerprints, shared.key == resource_key(exp))
    elif expected is not None:
        check_expected(expected[1], fingerprints, expected[0] == resource_key(exp))
    return prepared, fingerprints


def run_trial_locally(
    space: SearchSpace, params: dict[str, Any], progress: bool = False, shared: SharedResources | None = None
) -> dict[str, Any]:
    """The trial without Ray, in this process: the same configs, loop, seeds and final metrics (`shared`:
    resources loaded once for several trials, `mosecrot.prepare.load_resources`)."""
    reports: list[dict[str, float]] = []
    payload = run_trial(
        space,
        params,
        lambda reporter: LoopHooks(report=reporter, progress=progress),
        sink=reports.append,
        progress=progress,
        shared=shared,
    )
    payload["epoch_reports"] = reports
    return payload


def write_payload(directory: str | Path, payload: dict[str, Any]) -> None:
    Path(directory, CHECKPOINT_FILE).write_text(json.dumps(payload, indent=1, default=str))


def checkpoint_payload(checkpoint: Any) -> dict[str, Any] | None:
    """The final payload in a trial checkpoint (a Ray ``Checkpoint``), else None (also when unreadable: the
    trial then trains again rather than fail)."""
    if checkpoint is None:
        return None
    try:
        with checkpoint.as_directory() as directory:
            payload = json.loads(Path(directory, CHECKPOINT_FILE).read_text())
    except (OSError, ValueError) as err:
        log.warning("could not read the trial checkpoint %s: %s", checkpoint, err)
        return None
    return payload if isinstance(payload.get("metrics"), dict) else None


# --- timing ---------------------------------------------------------------------------------------------

FIRST_STEP_LINE = "mosecrot trial {trial_id}: first optimizer step {seconds:.1f} s after the trial started"


class FirstStepClock:
    """Wall time of the first optimizer step in this process (a global torch optimizer post-hook);
    `on_first` is called once, with that time."""

    def __init__(self, on_first: Callable[[float], None] | None = None) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.at: float | None = None
        self.on_first = on_first
        self._handle = register_optimizer_step_post_hook(self._hook)

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.at is None:
            self.at = time.time()
            self._handle.remove()
            if self.on_first is not None:
                self.on_first(self.at)

    def close(self) -> None:
        self._handle.remove()


def timing_metrics(started_at: float | None, worker_at: float, first_step_at: float | None) -> dict[str, float]:
    """``timing.first_step_s`` (trial start to the first optimizer step: Train controller, worker start,
    imports, model load, data) and ``timing.worker_start_s``; the absolute ``timing.*_at`` (epoch seconds)
    are for benchmarks and are not logged to MLflow."""
    if started_at is None:
        return {}
    out = {"timing.started_at": started_at, "timing.worker_start_s": round(worker_at - started_at, 3)}
    if first_step_at is not None:
        out["timing.first_step_at"] = first_step_at
        out["timing.first_step_s"] = round(first_step_at - started_at, 3)
    return out


def system_metrics(cpu_before: float, wall_before: float) -> dict[str, float]:
    """The worker's own resource use over its training (logged by rank 0 into the trial's MLflow run):
    mean CPU utilisation of its process (100 = one core), peak resident memory, peak GPU memory."""
    wall = max(time.time() - wall_before, 1e-9)
    cpu = time.process_time() - cpu_before
    out = {
        "system.cpu_percent": round(100.0 * cpu / wall, 1),
        # ru_maxrss is in KiB on Linux
        "system.peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "system.wall_s": round(wall, 2),
        "system.torch_threads": float(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        out["system.gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


class SystemSampler:
    """Rank 0's system metrics while it trains: a daemon thread samples CPU and memory (psutil; the GPU's memory
    through torch) every ``interval`` seconds under MLflow's system-metric names; `stop` returns the samples
    (``{"timestamp": epoch s, "cpu_utilization_percentage": ..., ...}``), which travel in the trial's final
    payload and reach its MLflow run as ``system/...`` metrics (`orchestrator.tracking.system_series`)."""

    def __init__(self, interval: float = 5.0, max_samples: int = 2000) -> None:
        import threading

        self.interval, self.max_samples = interval, max_samples
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)
        self._process: Any = None
        try:
            import psutil

            self._psutil: Any = psutil
            self._process = psutil.Process()
            self._process.cpu_percent(None)  # the first call only starts the measurement
            psutil.cpu_percent(None)
        except Exception:  # no psutil: no samples
            self._psutil = None

    def start(self) -> SystemSampler:
        if self._psutil is not None:
            self._thread.start()
        return self

    def sample(self) -> dict[str, float]:
        ps = self._psutil
        memory = ps.virtual_memory()
        out = {
            "timestamp": time.time(),
            "cpu_utilization_percentage": float(ps.cpu_percent(None)),
            "system_memory_usage_megabytes": round(memory.used / 2**20, 1),
            "system_memory_usage_percentage": float(memory.percent),
            "process_cpu_percentage": float(self._process.cpu_percent(None)),
            "process_memory_megabytes": round(self._process.memory_info().rss / 2**20, 1),
        }
        if torch.cuda.is_available():
            out["gpu_0_memory_usage_megabytes"] = round(torch.cuda.memory_allocated() / 2**20, 1)
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if len(self.samples) < self.max_samples:
                self.samples.append(self.sample())

    def stop(self) -> list[dict[str, float]]:
        if self._psutil is None:
            return []
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self.interval)
        if len(self.samples) < self.max_samples:
            self.samples.append(self.sample())  # the end of training: at least one sample per trial
        return self.samples


__all__ = [
    "CHECKPOINT_FILE",
    "GRID_KEY",
    "OBJECTIVE",
    "REPORT_MEAN",
    "EpochReporter",
    "SystemSampler",
    "checkpoint_payload",
    "final_metrics",
    "prepare_trial",
    "run_trial",
    "run_trial_locally",
    "trial_params",
]
