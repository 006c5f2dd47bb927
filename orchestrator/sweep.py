"""The sweep driver: Ray Tune over the project's trainable, Optuna as searcher, MLflow records.

Programmatic use (the documented entry; the CLI's ``mosecrot sweep`` calls the same function)::

    from orchestrator.search_space import load_search_space
    from orchestrator.sweep import run_sweep

    space = load_search_space("quickstart", ["fixed.training.max_steps=2"])
    results = run_sweep(space)                      # embedded Ray, ./mlruns.db, ./ray_results/quickstart
    best = results.get_best_result()                # metric "objective", the space's mode
    print(best.metrics["report_mean"], best.config)

What a sweep does, in order:

1. checks the MLflow store (an unreachable server fails here, in seconds) and whether the Tune experiment
   ``STORAGE/NAME`` exists: a new sweep refuses to overwrite one, ``resume=True`` requires one;
2. starts (or on resume reopens) the parent MLflow run;
3. prepares the base experiment once in the driver (task splits, static vectors, dictionaries, anchors go
   to the disk cache), puts its `SharedResources` (task splits, vectors, dictionaries) in Ray's object
   store for every trial's workers, and logs the baselines once (``kind=baseline`` children);
4. ``ray.init(address)`` (None: an embedded local cluster), sizes concurrency, and fits a `Tuner` over
   ``tune_trainable`` with `OptunaSearch` (the study in SQLite at ``STORAGE/NAME/optuna.db``, study name =
   the sweep name, or the space's ``searcher.storage``/``study_name``) or Tune's grid generator, optional
   ASHA, and FailureConfig at both layers; or restores it (``Tuner.restore(resume_errored=True)``, finished
   trials are kept, not rerun);
5. logs one child run per trial as each trial ends (FINISHED or FAILED), and ends the parent run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from mosecrot.errors import InputError
from orchestrator.search_space import SearchSpace, define_by_run, grid_points, optuna_sampler
from orchestrator.trainable import (
    SharedRef,
    FAULT_ENV,
    GRID_KEY,
    OBJECTIVE,
    REPORT_MEAN,
    base_experiment,
    fault_indices,
    trial_params,
    tune_trainable,
    worker_env,
    worker_resources as per_worker_resources,
)
from orchestrator.tracking import SweepTracker, check_tracking, log_baselines, resolve_tracking_uri, ui_command

if TYPE_CHECKING:
    from ray.tune import ResultGrid

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_STORAGE = "ray_results"
# The Tune function only waits on its TorchTrainer: no CPU, so trials never deadlock on a 2-core machine.
# A placement group bundle cannot be all zeros, hence a small memory reservation.
DEFAULT_DRIVER_RESOURCES: dict[str, float] = {"CPU": 0, "memory": 128 * 1024 ** 2}
# Placement on a cluster without code changes: JSON resource maps read by the sweep driver, e.g.
#   MOSECROT_DRIVER_RESOURCES='{"CPU": 0, "head": 0.01}'   trial drivers (Tune function + Train controller)
#   MOSECROT_WORKER_RESOURCES='{"gpu_node": 0.01}'          added to every Train worker's CPU/GPU request
DRIVER_RESOURCES_ENV, WORKER_RESOURCES_ENV = "MOSECROT_DRIVER_RESOURCES", "MOSECROT_WORKER_RESOURCES"


# --- pure helpers (tested without Ray) -------------------------------------------------------------------

def is_uri(path: str) -> bool:
    return "://" in str(path)


def resources_from_env(name: str) -> dict[str, float] | None:
    """A resource map from a JSON environment variable (None when unset or empty)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError) as err:
        raise InputError(f"${name}={raw!r} is not a JSON resource map ({err})", key=name,
                         expected='e.g. {"CPU": 0, "head": 0.01}') from None


@dataclass
class SweepPaths:
    storage_path: str  # Tune's RunConfig(storage_path): absolute local dir, NFS path or s3://...
    experiment_path: str  # STORAGE/NAME: what Tuner.restore/can_restore take
    optuna_storage: str  # Optuna RDB URL
    study_name: str


def sweep_paths(space: SearchSpace, storage_path: str | None = None, cwd: str | Path | None = None) -> SweepPaths:
    """Where a sweep lives. Local storage is made absolute (Ray requires it); the Optuna SQLite file sits in
    the sweep directory, or in the working directory when storage is remote (SQLite needs a local file)."""
    base = Path(cwd) if cwd else Path.cwd()
    storage = storage_path or str(base / DEFAULT_STORAGE)
    if not is_uri(storage):
        storage = str((base / Path(storage).expanduser()).resolve())
    exp_path = storage.rstrip("/") + "/" + space.name
    if space.searcher.storage:
        optuna_url = space.searcher.storage
    elif is_uri(storage):
        optuna_url = "sqlite:///" + str((base / f"optuna-{space.name}.db").resolve())
    else:
        optuna_url = "sqlite:///" + str(Path(exp_path) / "optuna.db")
    return SweepPaths(storage, exp_path, optuna_url, space.searcher.study_name or space.name)


def start_or_resume(resume: bool, restorable: bool, experiment_path: str) -> str:
    """``"start"`` or ``"restore"``; refuses to start over an existing sweep or to resume a missing one."""
    if resume and not restorable:
        raise InputError(f"nothing to resume: no Tune experiment at {experiment_path}", key="--resume",
                         expected="the --storage-path (and sweep name) of an earlier sweep, or no --resume")
    if not resume and restorable:
        raise InputError(f"a sweep already exists at {experiment_path}", key="--resume",
                         expected="--resume to continue it, or another --storage-path or name (--set name=...)")
    return "restore" if resume else "start"


def max_concurrent_trials(space: SearchSpace, cluster: dict[str, float]) -> int:
    """Concurrent trials: the space's value, capped by what the cluster holds now — cluster GPUs ÷ GPUs per
    trial when trials use GPUs (so trials never pile up waiting), else cluster CPUs ÷ CPUs per trial —
    and by the number of trials. A GPU cluster that has no GPU yet (autoscaling from zero) is not capped."""
    res = space.resources
    caps = []
    if res.max_concurrent_trials is not None:
        caps.append(res.max_concurrent_trials)
    if res.gpus_per_worker > 0:
        per_trial = res.processes_per_trial * res.gpus_per_worker
        gpus = float(cluster.get("GPU", 0))
        if gpus >= per_trial:
            caps.append(int(math.floor(gpus / per_trial + 1e-9)))
    else:
        per_trial = res.processes_per_trial * res.cpus_per_worker
        cpus = float(cluster.get("CPU", 0))
        if cpus >= per_trial:
            caps.append(int(math.floor(cpus / per_trial + 1e-9)))
    if space.num_trials:
        caps.append(space.num_trials)
    return max(1, min(caps)) if caps else 1


def asha_max_t(space: SearchSpace) -> int:
    """ASHA's horizon in Tune iterations: one per epoch of the first fine-tuning, plus the final report."""
    return int(space.scheduler.max_t or 1) + 1


# --- Ray pieces ----------------------------------------------------------------------------------------------

def make_trainable(space: SearchSpace, storage_path: str | None, train_max_failures: int = 1,
                   driver_resources: dict[str, float] | None = None,
                   worker_resources: dict[str, float] | None = None, fault_inject: frozenset[int] | None = None,
                   shared: Any = None):
    """`tune_trainable` bound to the space, sized at 0 CPU (its TorchTrainer's workers hold the resources), or,
    in local mode (``workers_per_trial: 0``), at one worker's resources (the trial's process trains).
    ``worker_resources`` are added to each Train worker's request; ``fault_inject`` is test-only; ``shared``:
    an object-store reference to the sweep's `SharedResources`, handed to every trial's workers."""
    from ray import tune

    fn = tune.with_parameters(tune_trainable, space=space, storage_path=storage_path,
                              train_max_failures=train_max_failures, worker_extra_resources=worker_resources,
                              fault_inject=fault_inject or None, shared=shared)
    if space.resources.local_mode:  # the trial's own process trains: it holds what a Train worker would
        return tune.with_resources(fn, {**per_worker_resources(space), **(worker_resources or {})})
    return tune.with_resources(fn, dict(driver_resources or DEFAULT_DRIVER_RESOURCES))


def make_searcher(space: SearchSpace, paths: SweepPaths):
    """(search_alg, param_space): OptunaSearch over the define-by-run space, or Tune's grid generator."""
    from ray import tune

    if space.searcher.kind == "grid":
        return None, {GRID_KEY: tune.grid_search(grid_points(space))}
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(paths.optuna_storage)
    # With a define-by-run space, OptunaSearch takes metric and mode here (Tune does not pass them on).
    searcher = _resumable_optuna_class()(space=define_by_run(space), metric=OBJECTIVE, mode=space.objective.mode,
                            sampler=optuna_sampler(space), study_name=paths.study_name, storage=storage)
    return searcher, {}


def make_scheduler(space: SearchSpace):
    if space.scheduler.kind != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", max_t=asha_max_t(space),
                         grace_period=space.scheduler.grace_period,
                         reduction_factor=space.scheduler.reduction_factor)


def _tune_callback_class():
    """`MlflowTrialCallback`, built on first use so that importing this module does not import Ray."""
    if "MlflowTrialCallback" in globals():
        return globals()["MlflowTrialCallback"]
    from ray.tune import Callback

    class MlflowTrialCallback(Callback):
        """One MLflow child run per trial, logged from the driver when the trial ends.

        Picklable (Tune saves callbacks with the experiment): the tracker is rebuilt lazily."""

        def __init__(self, space: SearchSpace, tracking_uri: str, sweep_key: str, parent_id: str) -> None:
            self.space, self.tracking_uri, self.sweep_key, self.parent_id = space, tracking_uri, sweep_key, parent_id
            self._tracker: SweepTracker | None = None

        def __getstate__(self):
            state = self.__dict__.copy()
            state["_tracker"] = None
            return state

        @property
        def tracker(self) -> SweepTracker:
            if self._tracker is None:
                self._tracker = SweepTracker(self.space, self.tracking_uri, sweep_key=self.sweep_key)
                self._tracker.parent_id = self.parent_id
            return self._tracker

        def _log(self, trial, status: str, error: str | None = None) -> None:
            seeds = list(base_experiment(self.space).seeds)
            try:
                self.tracker.log_trial(trial.trial_id, str(trial), trial_params(trial.config), trial.last_result,
                                       status, error=error, seeds=seeds)
            except Exception:  # tracking must not kill the sweep; the trial stays in Tune's results
                log.exception("could not log trial %s to MLflow", trial.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._log(trial, "FINISHED")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._log(trial, "FAILED", error=trial_error_text(trial) or "trial raised (see the Tune trial directory)")

    MlflowTrialCallback.__module__ = __name__
    MlflowTrialCallback.__qualname__ = "MlflowTrialCallback"
    globals()["MlflowTrialCallback"] = MlflowTrialCallback
    return MlflowTrialCallback


def trial_error_text(trial) -> str | None:
    """The error a failed Tune trial recorded. `Trial.get_error` reads the copy on the sweep's storage, which
    Tune writes only at its next sync, so right after the failure (when callbacks run) it is often missing;
    the trial's local error file, written before the callbacks, is read then."""
    try:
        error = trial.get_error()
    except Exception:  # storage unreadable: try the local file
        error = None
    if error:
        return str(error)
    local = getattr(trial, "error_file", None)
    try:
        text = Path(local).read_text() if local and Path(local).is_file() else ""
    except OSError:
        text = ""
    return text.strip() or None


def _resumable_optuna_class():
    """`OptunaSearch` that tolerates results of trials the study already finished.

    A driver killed between Optuna's ``tell`` and Tune's next experiment-state save leaves a trial that is
    COMPLETE in the study but unfinished in Tune's state; on ``--resume`` Tune runs it again (the trainable
    re-reports the finished Train run instead of retraining), and stock `OptunaSearch` would then fail the
    whole sweep reporting an intermediate value to a finished Optuna trial.

    A driver killed after Optuna's ``ask`` for the next trial but before Tune saved that trial leaves a
    RUNNING Optuna trial that no restored Tune trial owns: nobody would ever finish it (it stayed RUNNING in
    the study, and constant-liar TPE kept lying about it). On restore such orphans are marked FAIL."""
    if "ResumableOptunaSearch" in globals():
        return globals()["ResumableOptunaSearch"]
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class ResumableOptunaSearch(OptunaSearch):
        def on_trial_result(self, trial_id: str, result: dict) -> None:
            try:
                super().on_trial_result(trial_id, result)
            except UpdateFinishedTrialError:
                log.info("trial %s already finished in the Optuna study; result not re-reported", trial_id)

        def restore(self, checkpoint_path: str) -> None:
            super().restore(checkpoint_path)
            self.fail_orphaned_trials()

        def fail_orphaned_trials(self) -> list[int]:
            """Mark FAIL every RUNNING trial of the study that no Tune trial of this searcher owns; returns
            their numbers."""
            if self._ot_study is None:
                return []
            owned = {getattr(t, "_trial_id", None) for t in self._ot_trials.values()}
            orphans = [t for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if t._trial_id not in owned]
            for t in orphans:
                self._ot_study.tell(t.number, state=TrialState.FAIL)
                log.warning("Optuna trial %d was asked by a driver that died before Tune recorded it: "
                            "marked FAIL (its params %s were never run)", t.number, t.params)
            return [t.number for t in orphans]

    ResumableOptunaSearch.__module__ = __name__
    ResumableOptunaSearch.__qualname__ = "ResumableOptunaSearch"
    globals()["ResumableOptunaSearch"] = ResumableOptunaSearch
    return ResumableOptunaSearch


def __getattr__(name: str):  # PEP 562: lets pickle find the lazily built callback and searcher classes
    if name == "MlflowTrialCallback":
        return _tune_callback_class()
    if name == "ResumableOptunaSearch":
        return _resumable_optuna_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PhaseClock:
    """Wall seconds of a sweep's phases (MLflow start, prepare, baselines, ``ray.init``, object store, Tune),
    logged to the parent run as ``timing.sweep.<phase>_s``: where a sweep's fixed cost goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0

    def timed(self, phase: str, fn: Callable[[], T]) -> Callable[[], T]:
        """`fn` timed as `phase` wherever it runs (e.g. in a thread beside another phase)."""

        def run() -> T:
            with self(phase):
                return fn()

        return run

    def metrics(self) -> dict[str, float]:
        return {f"timing.sweep.{k}_s": round(v, 3) for k, v in self.seconds.items()}

    def summary(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())


def in_background(fn: Callable[[], T], name: str) -> Callable[[], T]:
    """Start `fn` in a daemon thread; the returned callable waits for it and returns its result or raises its
    error. A daemon, so an interrupted sweep never waits for it (cache entries are written atomically)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to whoever waits for the result
            box["error"] = err

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result


def ensure_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False) -> bool:
    """``ray.init`` unless already connected; returns whether this call started/connected Ray.

    ``dashboard``: start the Ray dashboard with an embedded cluster (on 127.0.0.1:8265). Off by default: on a
    laptop it adds about 2 s to ``ray.init`` and a process that takes CPU from the trials all sweep long, and a
    sweep's progress is in its console output and in MLflow. A cluster (``address``) keeps its own dashboard."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": True}
    # Inside a `ray job submit` entrypoint the job's runtime env (working_dir, env_vars) already applies to
    # every worker: a second runtime env here would be merged into a new one (and env var keys the job sets
    # are refused), so the job's is used as is; set MOSECROT_* variables in the job's env_vars.
    if not os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        kwargs["runtime_env"] = {"env_vars": worker_env()}
    if address:
        kwargs["address"] = address
    else:
        kwargs["include_dashboard"] = dashboard
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)
    return True


def run_sweep(space: SearchSpace, tracking_uri: str | None = None, storage_path: str | None = None,
              resume: bool = False, address: str | None = None, *, baselines: bool = True, progress: bool = False,
              tune_max_failures: int = 1, train_max_failures: int = 1,
              driver_resources: dict[str, float] | None = None, worker_resources: dict[str, float] | None = None,
              num_cpus: int | None = None, callbacks: list | None = None, dashboard: bool = False) -> "ResultGrid":
    """Run (or with ``resume=True`` continue) the sweep and return Tune's `ResultGrid`.

    ``tracking_uri``: MLflow (flag > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///./mlruns.db``);
    ``storage_path``: Tune/Train storage (default ``./ray_results``; NFS or ``s3://`` on clusters);
    ``address``: a Ray cluster (``auto``, ``HOST:PORT``; None = embedded local Ray); ``dashboard``: start the
    Ray dashboard with embedded Ray (default off, see `ensure_ray`);
    ``driver_resources``: what each trial's Tune function reserves (default ``$MOSECROT_DRIVER_RESOURCES``,
    else 0 CPU; on a cluster e.g. ``{"CPU": 0, "trial_driver": 0.01}`` to pin drivers to the head node's
    custom resource); ``worker_resources``: added to every Train worker's request (default
    ``$MOSECROT_WORKER_RESOURCES``); ``callbacks``: extra Tune callbacks (new sweeps only; a restored sweep
    keeps the callbacks it was started with)."""
    phases = PhaseClock()
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)  # before importing Ray or touching storage: an unreachable server fails in seconds
    driver_resources = driver_resources or resources_from_env(DRIVER_RESOURCES_ENV)
    worker_resources = worker_resources or resources_from_env(WORKER_RESOURCES_ENV)
    fault_inject = fault_indices()
    if fault_inject:
        log.warning("$%s=%s: trials %s will raise (test-only fault injection)", FAULT_ENV,
                    sorted(fault_inject), sorted(fault_inject))

    from ray import tune

    paths = sweep_paths(space, storage_path)
    mode = start_or_resume(resume, tune.Tuner.can_restore(paths.experiment_path), paths.experiment_path)
    if mode == "start":
        _check_new_study(space, paths)

    def start_tracker() -> SweepTracker:
        started = SweepTracker(space, uri, sweep_key=paths.experiment_path)
        started.start(tags={"storage_path": paths.storage_path, "optuna_storage": paths.optuna_storage,
                            "study_name": paths.study_name}, resume=resume)
        return started

    from mosecrot.prepare import prepare

    # While Ray starts (seconds of waiting on its processes), threads create the MLflow parent run (a new SQLite
    # store builds its schema) and prepare the sweep's data once (from the cache: seconds of loading). A store
    # that fails stops the sweep before any trial; cache entries are complete or absent, whenever it stops.
    tracker_result = in_background(phases.timed("mlflow_start", start_tracker), "mlflow-start")
    prepared_result = in_background(phases.timed("prepare", lambda: prepare(base_experiment(space), progress=progress)),
                                    "prepare")
    try:
        with phases("ray_init"):
            ensure_ray(address, num_cpus, dashboard=dashboard)
        tracker = tracker_result()
    except BaseException:
        with contextlib.suppress(BaseException):  # no parent run left RUNNING
            tracker_result().end("FAILED")
        raise
    status = "FAILED"
    try:
        if not is_uri(paths.storage_path):
            Path(paths.experiment_path).mkdir(parents=True, exist_ok=True)
        with phases("prepare_wait"):
            prepared = prepared_result()  # once per sweep
        if baselines and space.baselines:
            with phases("baselines"):
                log_baselines(space, tracker, progress=progress, prepared=prepared)
        shared = prepared.shared
        del prepared
        import ray

        # Task splits, vectors and dictionaries go to the object store once; each trial's workers read them
        # (numpy arrays zero-copy) and build only their anchors, instead of reloading them from disk.
        with phases("object_store_put"):
            shared_ref = SharedRef(ray.put(shared))
        del shared
        trainable = make_trainable(space, paths.storage_path, train_max_failures, driver_resources, worker_resources,
                                   fault_inject, shared=shared_ref)
        if mode == "restore":
            tuner = tune.Tuner.restore(paths.experiment_path, trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = _new_tuner(space, paths, trainable, tracker, uri, tune_max_failures, callbacks)
        with phases("tune"):
            results = tuner.fit()
        metrics = {}
        ok = [r for r in results if r.error is None and r.metrics and OBJECTIVE in r.metrics]
        if ok:
            best = results.get_best_result(metric=OBJECTIVE, mode=space.objective.mode, filter_nan_and_inf=True)
            metrics = {f"best_{k}": float(v) for k, v in best.metrics.items()
                       if k in (OBJECTIVE, REPORT_MEAN) and isinstance(v, (int, float))}
        metrics.update(trials=float(len(results)), errored_trials=float(results.num_errors))
        metrics.update(phases.metrics())
        log.info("sweep %s: %s", space.name, phases.summary())
        tracker.end("FINISHED", metrics)
        status = "FINISHED"
        return results
    finally:
        if status != "FINISHED":
            tracker.end("FAILED")


def _check_new_study(space: SearchSpace, paths: SweepPaths) -> None:
    """A new sweep must not silently continue an old Optuna study that lives outside the sweep directory."""
    if space.searcher.kind == "grid" or not space.searcher.storage:
        return
    import optuna

    if paths.study_name in optuna.study.get_all_study_names(storage=paths.optuna_storage):
        raise InputError(f"the Optuna study {paths.study_name!r} already exists in {paths.optuna_storage}",
                         key="searcher.study_name", expected="a new study name, or --resume")


def _new_tuner(space: SearchSpace, paths: SweepPaths, trainable, tracker: SweepTracker, uri: str,
               tune_max_failures: int, callbacks: list | None = None):
    import ray
    from ray import tune

    search_alg, param_space = make_searcher(space, paths)
    concurrency = max_concurrent_trials(space, ray.cluster_resources())
    num_samples = 1 if space.searcher.kind == "grid" else int(space.num_trials or 1)
    callback = _tune_callback_class()(space, uri, tracker.sweep_key, tracker.parent_id)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode=space.objective.mode, search_alg=search_alg,
                                    scheduler=make_scheduler(space), num_samples=num_samples,
                                    max_concurrent_trials=concurrency,
                                    # Local mode trains in the trial's process: reusing it keeps torch,
                                    # transformers and the shared resources loaded from one trial to the next.
                                    reuse_actors=space.resources.local_mode),
        run_config=tune.RunConfig(name=space.name, storage_path=paths.storage_path,
                                  failure_config=tune.FailureConfig(max_failures=tune_max_failures),
                                  callbacks=[callback, *(callbacks or [])], verbose=1),
    )


def summary_lines(space: SearchSpace, results: "ResultGrid", tracking_uri: str | None = None) -> list[str]:
    """What the CLI prints after a sweep: trials, best objective and config, where the records are."""
    uri = resolve_tracking_uri(tracking_uri)
    lines = [f"sweep {space.name}: {len(results)} trials, {results.num_errors} errored"]
    try:
        best = results.get_best_result(metric=OBJECTIVE, mode=space.objective.mode, filter_nan_and_inf=True)
        lines.append(f"best {OBJECTIVE} ({space.objective.protocol}): {best.metrics.get(OBJECTIVE):.4f}, "
                     f"{REPORT_MEAN}: {best.metrics.get(REPORT_MEAN, float('nan')):.4f}")
        lines.append(f"best params: {trial_params(best.config)}")
    except Exception:  # no trial finished with an objective
        lines.append("no trial finished with an objective")
    lines.append(f"Tune experiment: {results.experiment_path}")
    lines.append(f"MLflow: {uri}   open the UI: {ui_command(uri)}")
    return lines
