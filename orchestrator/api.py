"""The public Python API for scripts: one import for `run_sweep` and for driving Ray Tune yourself.

    from orchestrator.api import load_search_space, run_sweep, tune_kit

    results = run_sweep(load_search_space("quickstart", ["num_trials=2"]))    # what `mosecrot sweep` does

    kit = tune_kit("quickstart", ["num_trials=2", "fixed.training.max_steps=4"], name="my-tuner")
    results = tune.Tuner(kit.trainable, param_space=kit.param_space, tune_config=kit.tune_config(),
                         run_config=kit.run_config()).fit()                    # or: kit.tuner().fit()
    kit.finish(results)                                                        # ends the MLflow parent run
    analysis = tune.run(kit.trainable, **kit.run_kwargs())                    # the functional API, the same pieces

`tune_kit` loads the space (a name, a path or a `SearchSpace`), runs the sweep's checks (storage writable, a Ray
cluster at ``address``, trials that fit on a node), prepares the space's data once into the disk cache, starts
Ray, and returns a `TuneKit`: the trainable (the project's Tune function, each trial a Ray Train
`TorchTrainer`), the search algorithm (Optuna over the define-by-run space, or the grid), the scheduler (None or
ASHA), each trial's resources, the concurrency the cluster allows, Tune's configs, and the MLflow callback (one
child run per trial under a parent run for the kit; ``mlflow=False`` leaves it out). `examples/tune_run.py` and
`examples/tune_tuner.py` use nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from orchestrator.preflight import (
    check_cluster_fit,
    check_ray_address,
    check_trials_fit,
    check_writable_dir,
    embedded_nodes,
)
from orchestrator.ray_tune import (
    DEFAULT_DRIVER_RESOURCES,
    MlflowTrialCallback,
    ResumableOptunaSearch,
    ensure_ray,
    make_scheduler,
    make_searcher,
    make_trainable,
    per_worker_resources,
)
from orchestrator.search_space import SearchSpace, define_by_run, load_search_space, optuna_sampler
from orchestrator.sweep import (
    SweepInterrupted,
    clamp_notice,
    is_uri,
    max_concurrent_trials,
    prepare_sweep,
    run_sweep,
    summary_lines,
    sweep_paths,
)
from orchestrator.tracking import SweepTracker, resolve_tracking_uri
from orchestrator.trial import OBJECTIVE, REPORT_MEAN, trial_params

__all__ = [
    "OBJECTIVE",
    "REPORT_MEAN",
    "SearchSpace",
    "SweepInterrupted",
    "TuneKit",
    "load_search_space",
    "run_sweep",
    "summary_lines",
    "trial_params",
    "tune_kit",
]

log = logging.getLogger(__name__)


@dataclass
class TuneKit:
    """What `tune.run` and `tune.Tuner` need for one search space (see the module docstring)."""

    space: SearchSpace
    name: str  # the Tune experiment name (STORAGE/NAME)
    storage_path: str
    trainable: Any  # tune_trainable bound to the space and sized (tune.with_resources)
    search_alg: Any  # OptunaSearch over the define-by-run space, or None for the grid
    param_space: dict[str, Any]  # {} for Optuna (define-by-run); the grid for grid search
    scheduler: Any  # None or ASHAScheduler
    resources: dict[str, float]  # what each trial's Tune function reserves (its Train workers ask for their own)
    num_samples: int
    max_concurrent_trials: int
    mode: str
    metric: str = OBJECTIVE
    max_failures: int = 1
    callbacks: list[Any] = field(default_factory=list)  # the MLflow callback, when MLflow is on
    tracker: SweepTracker | None = None  # the MLflow parent run the callback logs children under
    tracking_uri: str | None = None

    def tune_config(self, **overrides: Any) -> tune.TuneConfig:
        kw: dict[str, Any] = dict(
            metric=self.metric,
            mode=self.mode,
            search_alg=self.search_alg,
            scheduler=self.scheduler,
            num_samples=self.num_samples,
            max_concurrent_trials=self.max_concurrent_trials,
            reuse_actors=self.space.resources.local_mode,
        )
        return tune.TuneConfig(**{**kw, **overrides})

    def run_config(self, **overrides: Any) -> tune.RunConfig:
        kw: dict[str, Any] = dict(
            name=self.name,
            storage_path=self.storage_path,
            failure_config=tune.FailureConfig(max_failures=self.max_failures),
            callbacks=list(self.callbacks),
        )
        return tune.RunConfig(**{**kw, **overrides})

    def tuner(self, **run_config: Any) -> tune.Tuner:
        return tune.Tuner(
            self.trainable,
            param_space=self.param_space,
            tune_config=self.tune_config(),
            run_config=self.run_config(**run_config),
        )

    def run_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``tune.run(kit.trainable, **kit.run_kwargs())``."""
        kw: dict[str, Any] = dict(
            config=self.param_space,
            name=self.name,
            storage_path=self.storage_path,
            metric=self.metric,
            mode=self.mode,
            search_alg=self.search_alg,
            scheduler=self.scheduler,
            num_samples=self.num_samples,
            max_concurrent_trials=self.max_concurrent_trials,
            max_failures=self.max_failures,
            callbacks=list(self.callbacks),
            raise_on_failed_trial=False,
        )
        return {**kw, **overrides}

    def finish(self, results: Any = None, status: str | None = None) -> None:
        """End the MLflow parent run: FINISHED with the best objective when some trial reported one (a
        `ResultGrid` or `ExperimentAnalysis`), else FAILED (or ``status``). Nothing without MLflow."""
        if self.tracker is None:
            return
        metrics: dict[str, float] = {}
        best = _best_metrics(results, self.mode) if results is not None else None
        if best:
            metrics = {f"best_{k}": float(v) for k, v in best.items() if k in (OBJECTIVE, REPORT_MEAN)}
        self.tracker.end(status or ("FINISHED" if best else "FAILED"), metrics)


def trial_resources(
    space: SearchSpace, driver_resources: dict[str, float] | None, worker_resources: dict[str, float] | None
) -> dict[str, float]:
    """What each trial's Tune function reserves (as `make_trainable` sizes it): the driver's share, or in local
    mode a Train worker's."""
    if space.resources.local_mode:
        return {**per_worker_resources(space), **(worker_resources or {})}
    return dict(driver_resources or DEFAULT_DRIVER_RESOURCES)


def _best_metrics(results: Any, mode: str) -> dict[str, Any] | None:
    try:
        if hasattr(results, "get_best_result"):  # ResultGrid
            return dict(results.get_best_result(metric=OBJECTIVE, mode=mode, filter_nan_and_inf=True).metrics or {})
        trial = results.get_best_trial(metric=OBJECTIVE, mode=mode)  # ExperimentAnalysis (tune.run)
        return dict(trial.last_result) if trial is not None else None
    except Exception:  # no trial reported the objective
        return None


def tune_kit(
    space: SearchSpace | str | Path,
    overrides: list[str] | None = None,
    *,
    name: str | None = None,
    storage_path: str | None = None,
    tracking_uri: str | None = None,
    mlflow: bool = True,
    optuna_storage: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    prepare: bool = True,
    progress: bool = False,
    driver_resources: dict[str, float] | None = None,
    worker_resources: dict[str, float] | None = None,
    max_failures: int = 1,
) -> TuneKit:
    """Everything `tune.run`/`tune.Tuner` need for ``space`` (a `SearchSpace`, or a name or path loaded with
    ``overrides``), with Ray started (``address``: a cluster, None: embedded; ``num_cpus`` for embedded Ray).

    ``name``: the Tune experiment (default: the space's name); ``storage_path``: Tune/Train storage (default
    ``./ray_results``); ``optuna_storage``: an Optuna RDB URL for the study (default: in memory);
    ``tracking_uri``: MLflow, resolved as for ``mosecrot sweep``; ``mlflow=False``: no MLflow callback;
    ``prepare``: build the space's data into the disk cache once, before any trial."""
    if not isinstance(space, SearchSpace):
        space = load_search_space(space, overrides or [])
    elif overrides:
        raise ValueError("overrides apply to a search space loaded by name or path, not to a SearchSpace")
    paths = sweep_paths(space, storage_path)
    if not is_uri(paths.storage_path):
        check_writable_dir(paths.storage_path, "storage_path")
    check_ray_address(address, flag="address")
    if not ray.is_initialized() and address is None:
        check_trials_fit(space, embedded_nodes(num_cpus), driver_resources, worker_resources)
    if prepare:
        prepare_sweep(space, progress=progress)  # once: every trial loads its data from the cache
    ensure_ray(address, num_cpus)
    # a cluster: its live nodes and the node types its autoscaler may launch
    check_cluster_fit(space, driver_resources, worker_resources)
    trainable = make_trainable(space, paths.storage_path, max_failures, driver_resources, worker_resources)
    tune_name = name or space.name
    if space.searcher.kind == "grid" or optuna_storage:
        search_alg, param_space = make_searcher(
            space, optuna_storage or "sqlite://", space.searcher.study_name or tune_name
        )
    else:  # an in-memory study
        search_alg = ResumableOptunaSearch(
            space=define_by_run(space), metric=OBJECTIVE, mode=space.objective.mode, sampler=optuna_sampler(space)
        )
        param_space = {}
    cluster = ray.cluster_resources()
    concurrency = max_concurrent_trials(space, cluster)
    notice = clamp_notice(space, concurrency, cluster)
    if notice:
        log.warning("%s: %s", tune_name, notice)
    kit = TuneKit(
        space=space,
        name=tune_name,
        storage_path=paths.storage_path,
        trainable=trainable,
        search_alg=search_alg,
        param_space=param_space,
        scheduler=make_scheduler(space),
        resources=trial_resources(space, driver_resources, worker_resources),
        num_samples=1 if space.searcher.kind == "grid" else int(space.num_trials or 1),
        max_concurrent_trials=concurrency,
        mode=space.objective.mode,
        max_failures=max_failures,
    )
    if mlflow:
        uri = resolve_tracking_uri(tracking_uri)
        tracker = SweepTracker(space, uri, sweep_key=paths.storage_path.rstrip("/") + "/" + tune_name)
        tracker.start(tags={"storage_path": paths.storage_path, "entry": "orchestrator.api.tune_kit"})
        assert tracker.parent_id is not None
        kit.tracker, kit.tracking_uri = tracker, uri
        kit.callbacks.append(MlflowTrialCallback(space, uri, tracker.sweep_key, tracker.parent_id))
    return kit
