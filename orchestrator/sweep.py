"""The sweep driver: Ray Tune over the project's trainable, Optuna as searcher, MLflow records.

Programmatic use (the documented import is `orchestrator.api`; the CLI's ``mosecrot sweep`` calls the same
function)::

    from orchestrator.api import load_search_space, run_sweep

    space = load_search_space("quickstart", ["fixed.training.max_steps=2"])
    results = run_sweep(space)                      # embedded Ray, ./mlruns.db, ./ray_results/quickstart
    best = results.get_best_result()                # metric "objective", the space's mode
    print(best.metrics["report_mean"], best.config)

What a sweep does, in order:

1. checks the MLflow store (an unreachable server fails here, in seconds), that a local storage path is a
   writable directory, that a Ray cluster answers at ``address`` (a socket probe: ``ray.init`` would retry for
   minutes), that one trial's workers fit on some node (embedded Ray: this machine; else trials would wait
   forever), all in `orchestrator.preflight`, and whether the Tune experiment ``STORAGE/NAME`` exists: a new
   sweep refuses to overwrite one, ``resume=True`` requires one;
2. starts (or on resume reopens) the parent MLflow run;
3. prepares the base experiment once in the driver for the tuned method (task splits and, when the method
   reads them, static vectors, dictionaries and anchors go to the disk cache), puts its `SharedResources`
   in Ray's object store for every trial's workers, with the cache entries they came from (a trial on a node
   that lacks one installs the driver's instead of rebuilding it, and checks the fingerprints:
   `orchestrator.resources`), and logs the baselines once (``kind=baseline`` children,
   `orchestrator.baselines`);
4. ``ray.init(address)`` (None: an embedded local cluster), sizes concurrency, and fits a `Tuner` over
   ``tune_trainable`` with `OptunaSearch` (the study in SQLite at ``STORAGE/NAME/optuna.db``, study name =
   the sweep name, or the space's ``searcher.storage``/``study_name``) or Tune's grid generator, optional
   ASHA, and FailureConfig at both layers; or restores it (``Tuner.restore(resume_errored=True)``, finished
   trials are kept, not rerun). The Ray pieces (trainable, searcher, scheduler, callback) are in
   `orchestrator.ray_tune`;
5. logs one child run per trial as each trial ends (FINISHED or FAILED), and ends the parent run.

A concurrency below the space's ``resources.max_concurrent_trials`` is announced (stderr and the log). SIGINT or
SIGTERM stops the sweep (Tune saves its state), marks the parent run KILLED and raises `SweepInterrupted`
(a KeyboardInterrupt); ``resume=True`` continues it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import ray
from ray import tune

from mosecrot.cache import DiskCache, record_entries
from mosecrot.errors import InputError
from mosecrot.methods import needs_static
from mosecrot.prepare import Prepared, prepare
from orchestrator import output
from orchestrator.baselines import log_baselines
from orchestrator.preflight import (
    check_cluster_fit,
    check_ray_address,
    check_trials_fit,
    check_writable_dir,
    embedded_nodes,
    ray_address,
)
from orchestrator.ray_tune import (
    MlflowTrialCallback,
    SharedRef,
    ensure_ray,
    make_scheduler,
    make_searcher,
    make_trainable,
)
from orchestrator.resources import SweepResources, sweep_resources
from orchestrator.search_space import SearchSpace
from orchestrator.ties import Tie, find_tie, tie_message
from orchestrator.tracking import SweepTracker, check_tracking, resolve_tracking_uri
from orchestrator.trial import OBJECTIVE, REPORT_MEAN, trial_params

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_STORAGE = "ray_results"
# Placement on a cluster without code changes: JSON resource maps read by the sweep driver, e.g.
#   MOSECROT_DRIVER_RESOURCES='{"CPU": 0, "head": 0.01}'   trial drivers (Tune function + Train controller)
#   MOSECROT_WORKER_RESOURCES='{"gpu_node": 0.01}'          added to every Train worker's request: to its CPUs,
#       GPUs and resources.worker_resources of the space (this wins for a name both give; --worker-resources or
#       run_sweep(worker_resources=...) replace this variable)
DRIVER_RESOURCES_ENV, WORKER_RESOURCES_ENV = "MOSECROT_DRIVER_RESOURCES", "MOSECROT_WORKER_RESOURCES"
TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"  # the sweep handles SIGINT itself (`_Signals`)


# --- pure decisions ----------------------------------------------------------------------------------------


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resource_map(text: str | None, source: str) -> dict[str, float] | None:
    """A Ray resource map from JSON text (``{"CPU": 0, "head": 0.01}``; None when empty), or an InputError
    naming ``source`` (a flag or an environment variable)."""
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{text!r} is not JSON ({err})",
            key=source,
            expected='a JSON object such as \'{"CPU": 0, "trial_driver": 0.01}\'',
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        for k, v in value.items()
    ):
        raise InputError(f"got {text!r}", key=source, expected="a JSON object of resource name -> non-negative number")
    return {k: float(v) for k, v in value.items()}


def resources_from_env(name: str) -> dict[str, float] | None:
    """A resource map from a JSON environment variable (None when unset or empty)."""
    return resource_map(os.environ.get(name, ""), f"${name}")


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
        raise InputError(
            f"nothing to resume: no Tune experiment at {experiment_path}",
            key="--resume",
            expected="the --storage-path (and sweep name) of an earlier sweep, or no --resume",
        )
    if not resume and restorable:
        raise InputError(
            f"a sweep already exists at {experiment_path}",
            key="--resume",
            expected="--resume to continue it, or another --storage-path or name (--set name=...)",
        )
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


def clamp_notice(space: SearchSpace, concurrency: int, cluster: dict[str, float]) -> str | None:
    """The announcement when `max_concurrent_trials` runs fewer trials at once than the space asks for."""
    asked = space.resources.max_concurrent_trials
    if asked is None or concurrency >= asked:
        return None
    res = space.resources
    if space.num_trials and concurrency == space.num_trials:
        why = f"num_trials is {space.num_trials}"
    elif res.gpus_per_worker > 0:
        why = (
            f"the cluster has {cluster.get('GPU', 0):g} GPUs and a trial takes "
            f"{res.processes_per_trial * res.gpus_per_worker:g}"
        )
    else:
        why = (
            f"the cluster has {cluster.get('CPU', 0):g} CPUs and a trial takes "
            f"{res.processes_per_trial * res.cpus_per_worker:g}"
        )
    return f"resources.max_concurrent_trials={asked} clamped to {concurrency}: {why}"


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT or SIGTERM: its MLflow parent run is KILLED; ``--resume`` continues it."""

    def __init__(self, signal_name: str, experiment_path: str) -> None:
        super().__init__(f"{signal_name}: sweep stopped; resume it with --resume ({experiment_path})")
        self.signal_name = signal_name
        self.experiment_path = experiment_path


class _Signals:
    """While a sweep runs in the main thread: SIGINT and SIGTERM stop it, and which signal came is remembered.
    Outside ``tuner.fit`` a signal raises KeyboardInterrupt; inside, it asks Tune to stop gracefully (SIGUSR1,
    Tune's stop signal: it saves the experiment state for a restore), and a second signal forces the stop."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = self.received or signal.Signals(signum).name
        raise KeyboardInterrupt(signal.Signals(signum).name)

    def _to_tune(self, signum: int, frame: Any) -> None:
        if self.received or not hasattr(signal, "SIGUSR1"):
            self._handle(signum, frame)
        self.received = signal.Signals(signum).name
        signal.raise_signal(signal.SIGUSR1)

    @contextlib.contextmanager
    def tune(self) -> Iterator[None]:
        """Around ``tuner.fit``: Tune's own SIGINT handler is off (it would stop Tune without telling us)."""
        if not self._saved:
            yield
            return
        old = os.environ.get(TUNE_SIGINT_ENV)
        os.environ[TUNE_SIGINT_ENV] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._to_tune)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(TUNE_SIGINT_ENV, None)
            else:
                os.environ[TUNE_SIGINT_ENV] = old
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handle)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def prepare_sweep(space: SearchSpace, progress: bool = False) -> Prepared:
    """The sweep's data, once, for its tuned method: a sweep of sentence encoders alone prepares the task
    splits only, never static vectors (the baselines that read them prepare their own)."""
    return prepare(space.experiment_config(), static=needs_static([space.tuned_method()]), progress=progress)


def prepare_sweep_recorded(space: SearchSpace, progress: bool = False) -> tuple[Prepared, list[Path]]:
    """`prepare_sweep`, and the disk-cache entries it used (what trials on other nodes receive)."""
    with record_entries() as used:
        prepared = prepare_sweep(space, progress)
    return prepared, list(used)


def portable_shared(prepared: Prepared, used: list[Path], put: Callable[[Any], Any] | None = None) -> SweepResources:
    """The driver's shared resources with the cache entries they came from (`orchestrator.resources`): a trial
    on a node without them installs them instead of rebuilding other vectors and dictionaries."""
    assert prepared.shared is not None  # prepare always sets it
    return sweep_resources(prepared.shared, DiskCache(prepared.config.cache_dir), used, put)


# --- phases ------------------------------------------------------------------------------------------------


class PhaseClock:
    """Wall seconds of a sweep's phases (MLflow start, prepare, baselines, ``ray.init``, object store, Tune),
    logged to the parent run as ``timing.sweep.<phase>_s``: where a sweep's fixed cost goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
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


def run_sweep(
    space: SearchSpace,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    resume: bool = False,
    address: str | None = None,
    *,
    baselines: bool = True,
    progress: bool = False,
    tune_max_failures: int = 1,
    train_max_failures: int = 1,
    driver_resources: dict[str, float] | None = None,
    worker_resources: dict[str, float] | None = None,
    num_cpus: int | None = None,
    callbacks: list | None = None,
    dashboard: bool = False,
    log_file: str | Path | None = None,
) -> tune.ResultGrid:
    """Run (or with ``resume=True`` continue) the sweep and return Tune's `ResultGrid`.

    ``log_file``: where Ray's, MLflow's, Optuna's and the workers' output goes (`orchestrator.output`), opened
    once the checks below passed, so that bad input leaves no file behind.

    ``tracking_uri``: MLflow (flag > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///./mlruns.db``);
    ``storage_path``: Tune/Train storage (default ``./ray_results``; NFS or ``s3://`` on clusters);
    ``address``: a Ray cluster (``auto``, ``HOST:PORT``; None = embedded local Ray); ``dashboard``: start the
    Ray dashboard with embedded Ray (default off, see `ensure_ray`);
    ``driver_resources``: what each trial's Tune function reserves (default ``$MOSECROT_DRIVER_RESOURCES``,
    else 0 CPU; on a cluster e.g. ``{"CPU": 0, "trial_driver": 0.01}`` to pin drivers to the head node's
    custom resource); ``worker_resources``: added to every Train worker's request, on top of the space's
    ``resources.worker_resources`` (winning for a name both give; default ``$MOSECROT_WORKER_RESOURCES``);
    ``callbacks``: extra Tune callbacks (new sweeps only; a restored sweep keeps the callbacks it was started
    with)."""
    phases = PhaseClock()
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)  # before Ray starts or storage is touched: an unreachable server fails in seconds
    driver_resources = driver_resources or resources_from_env(DRIVER_RESOURCES_ENV)
    # added to resources.worker_resources of the space (and win for a name both give), see per_worker_resources
    worker_resources = worker_resources or resources_from_env(WORKER_RESOURCES_ENV)
    paths = sweep_paths(space, storage_path)
    if not is_uri(paths.storage_path):
        check_writable_dir(paths.storage_path, "--storage-path")
    # Ray next: a cluster that does not answer, or trials no node can hold, fail here in seconds (ray.init would
    # retry an unreachable address for minutes; an unplaceable trial would wait forever)
    check_ray_address(address)
    if ray.is_initialized():
        check_cluster_fit(space, driver_resources, worker_resources)
    elif ray_address(address) is None:
        check_trials_fit(space, embedded_nodes(num_cpus), driver_resources, worker_resources)
    mode = start_or_resume(resume, tune.Tuner.can_restore(paths.experiment_path), paths.experiment_path)
    if mode == "start":
        _check_new_study(space, paths)
    if log_file is not None:
        output.attach_log_file(log_file)

    def start_tracker() -> SweepTracker:
        started = SweepTracker(space, uri, sweep_key=paths.experiment_path)
        started.start(
            tags={
                "storage_path": paths.storage_path,
                "optuna_storage": paths.optuna_storage,
                "study_name": paths.study_name,
            },
            resume=resume,
        )
        return started

    # While Ray starts (seconds of waiting on its processes), threads create the MLflow parent run (a new SQLite
    # store builds its schema) and prepare the sweep's data once (from the cache: seconds of loading). A store
    # that fails stops the sweep before any trial; cache entries are complete or absent, whenever it stops.
    signals = _Signals().__enter__()
    try:
        return _run_sweep(
            space,
            paths,
            mode,
            uri,
            resume,
            address,
            phases,
            signals,
            start_tracker,
            baselines=baselines,
            progress=progress,
            tune_max_failures=tune_max_failures,
            train_max_failures=train_max_failures,
            driver_resources=driver_resources,
            worker_resources=worker_resources,
            num_cpus=num_cpus,
            callbacks=callbacks,
            dashboard=dashboard,
        )
    finally:
        signals.__exit__()


def _run_sweep(
    space: SearchSpace,
    paths: SweepPaths,
    mode: str,
    uri: str,
    resume: bool,
    address: str | None,
    phases: PhaseClock,
    signals: _Signals,
    start_tracker: Callable[[], SweepTracker],
    *,
    baselines: bool,
    progress: bool,
    tune_max_failures: int,
    train_max_failures: int,
    driver_resources: dict[str, float] | None,
    worker_resources: dict[str, float] | None,
    num_cpus: int | None,
    callbacks: list | None,
    dashboard: bool,
) -> tune.ResultGrid:
    tracker_result = in_background(phases.timed("mlflow_start", start_tracker), "mlflow-start")
    prepared_result = in_background(phases.timed("prepare", lambda: prepare_sweep_recorded(space, progress)), "prepare")
    try:
        with phases("ray_init"):
            connected = ensure_ray(address, num_cpus, dashboard=dashboard)
        if connected:
            output.route_worker_output()  # workers' output to the log file (the terminal too with --verbose)
        if connected and ray_address(address) is not None:
            # a cluster: trials no node (nor node type its autoscaler may launch) can hold fail here, not after
            # the baselines and never as trials pending forever; the parent run ends FAILED below
            check_cluster_fit(space, driver_resources, worker_resources)
        tracker = tracker_result()
    except BaseException as err:
        with contextlib.suppress(BaseException):  # no parent run left RUNNING
            tracker_result().end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        if isinstance(err, KeyboardInterrupt):
            raise SweepInterrupted(signals.received or "SIGINT", paths.experiment_path) from None
        raise
    status = "FAILED"
    try:
        if not is_uri(paths.storage_path):
            Path(paths.experiment_path).mkdir(parents=True, exist_ok=True)
        with phases("prepare_wait"):
            prepared, used_entries = prepared_result()  # once per sweep
        if baselines and space.baselines:
            with phases("baselines"):
                log_baselines(space, tracker, progress=progress, prepared=prepared)
        # Task splits, vectors and dictionaries go to the object store once; each trial's workers read them
        # (numpy arrays zero-copy) and build only their anchors, instead of reloading them from disk. The cache
        # entries they came from go beside them: a node that lacks one installs the driver's (never rebuilds).
        with phases("object_store_put"):
            portable = portable_shared(prepared, used_entries, ray.put)
            # the fingerprints travel with the reference too: a trial that cannot fetch the resources still
            # checks that what it builds itself is what the driver prepared (never a silent substitute)
            fingerprints = getattr(portable, "fingerprints", None) or {}
            shared_ref = SharedRef(ray.put(portable), fingerprints=dict(fingerprints), key=portable.key)
        del prepared
        trainable = make_trainable(
            space, paths.storage_path, train_max_failures, driver_resources, worker_resources, shared=shared_ref
        )
        if mode == "restore":
            tuner = tune.Tuner.restore(
                paths.experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True
            )
        else:
            tuner = _new_tuner(space, paths, trainable, tracker, uri, tune_max_failures, callbacks, progress)
        with phases("tune"), signals.tune(), output.printed_to_log("ray.tune.output"):
            results = tuner.fit()
        if signals.received:  # Tune stopped at a signal and saved its state: --resume continues
            status = "KILLED"
            tracker.end("KILLED")
            raise SweepInterrupted(signals.received, paths.experiment_path)
        metrics = {}
        trials = [results[i] for i in range(len(results))]  # ResultGrid has __getitem__, no __iter__
        ok = [r for r in trials if r.error is None and r.metrics and OBJECTIVE in r.metrics]
        if ok:
            best = results.get_best_result(metric=OBJECTIVE, mode=space.objective.mode, filter_nan_and_inf=True)
            assert best.metrics is not None  # the best of results that reported OBJECTIVE
            metrics = {
                f"best_{k}": float(v)
                for k, v in best.metrics.items()
                if k in (OBJECTIVE, REPORT_MEAN) and isinstance(v, (int, float))
            }
        log_objective_tie(space, results, tracker)
        metrics.update(trials=float(len(results)), errored_trials=float(results.num_errors))
        metrics.update(phases.metrics())
        log.info("sweep %s: %s", space.name, phases.summary())
        tracker.end("FINISHED", metrics)
        status = "FINISHED"
        return results
    except KeyboardInterrupt:
        if status != "KILLED":
            status = "KILLED"
            tracker.end("KILLED")
            raise SweepInterrupted(signals.received or "SIGINT", paths.experiment_path) from None
        raise
    finally:
        if status not in ("FINISHED", "KILLED"):
            tracker.end("FAILED")


def _check_new_study(space: SearchSpace, paths: SweepPaths) -> None:
    """A new sweep must not silently continue an old Optuna study that lives outside the sweep directory."""
    if space.searcher.kind == "grid" or not space.searcher.storage:
        return
    if paths.study_name in optuna.study.get_all_study_names(storage=paths.optuna_storage):
        raise InputError(
            f"the Optuna study {paths.study_name!r} already exists in {paths.optuna_storage}",
            key="searcher.study_name",
            expected="a new study name, or --resume",
        )


def _new_tuner(
    space: SearchSpace,
    paths: SweepPaths,
    trainable: Any,
    tracker: SweepTracker,
    uri: str,
    tune_max_failures: int,
    callbacks: list | None = None,
    progress: bool = False,
) -> tune.Tuner:
    assert tracker.parent_id is not None
    search_alg, param_space = make_searcher(space, paths.optuna_storage, paths.study_name)
    cluster = ray.cluster_resources()
    concurrency = max_concurrent_trials(space, cluster)
    notice = clamp_notice(space, concurrency, cluster)
    if notice:
        log.warning("sweep %s: %s", space.name, notice)  # stderr even where logging is not configured
    num_samples = 1 if space.searcher.kind == "grid" else int(space.num_trials or 1)
    callback = MlflowTrialCallback(space, uri, tracker.sweep_key, tracker.parent_id)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode=space.objective.mode,
            search_alg=search_alg,
            scheduler=make_scheduler(space),
            num_samples=num_samples,
            max_concurrent_trials=concurrency,
            # Local mode trains in the trial's process: reusing it keeps torch,
            # transformers and the shared resources loaded from one trial to the next.
            reuse_actors=space.resources.local_mode,
        ),
        run_config=tune.RunConfig(
            name=space.name,
            storage_path=paths.storage_path,
            failure_config=tune.FailureConfig(max_failures=tune_max_failures),
            callbacks=[callback, TrialBar(num_samples, progress, space.objective.mode), *(callbacks or [])],
            verbose=output.tune_verbosity(),
        ),
    )


class TrialBar(tune.Callback):
    """One progress bar for the trials phase (a terminal only): finished and errored trials, the best objective.
    Replaces Tune's trial-status tables, which ``--verbose`` brings back."""

    def __init__(self, total: int, enabled: bool, mode: str = "max") -> None:
        self.total, self.enabled, self.sign = total, enabled, 1.0 if mode == "max" else -1.0
        self._bar: Any = None
        self.best: float | None = None
        self.errored = 0

    def _ensure(self) -> Any:
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc="trials", unit="trial", disable=not self.enabled, leave=True)
        return self._bar

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        value = (trial.last_result or {}).get(OBJECTIVE)
        if isinstance(value, (int, float)) and (self.best is None or self.sign * (value - self.best) > 0):
            self.best = float(value)
        self._step()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.errored += 1
        self._step()

    def _step(self) -> None:
        bar = self._ensure()
        bar.update(1)
        note = {"best objective": f"{self.best:.3f}"} if self.best is not None else {}
        if self.errored:
            note["errored"] = str(self.errored)
        bar.set_postfix(note, refresh=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._bar is not None:
            self._bar.close()

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with its experiment state
        return {**self.__dict__, "_bar": None}


def objective_tie(space: SearchSpace, results: Any) -> Tie | None:
    """The tie at the top of the sweep's objective among its finished trials (`orchestrator.ties`), else None."""
    trials = [results[i] for i in range(len(results))]
    return find_tie(
        (
            (str(r.metrics.get("trial_id", i)), trial_params(r.config or {}), r.metrics[OBJECTIVE])
            for i, r in enumerate(trials)
            if r.error is None and r.metrics and isinstance(r.metrics.get(OBJECTIVE), (int, float))
        ),
        space.objective.mode,
    )


def log_objective_tie(space: SearchSpace, results: Any, tracker: SweepTracker) -> str | None:
    """Warn (log, parent-run tags ``objective_tie`` and ``objective_tie.params``, ``objective_tie.txt``) when
    several trials share the best objective; returns the warning."""
    tie = objective_tie(space, results)
    if tie is None:
        return None
    message = tie_message(tie, space.objective.protocol)
    log.info("sweep %s: %s", space.name, message)  # the log file; the report (or `summary_lines`) prints it once
    tracker.annotate(
        {"objective_tie": ",".join(tie.trials), "objective_tie.params": ",".join(tie.differing)},
        message + "\n",
        "objective_tie.txt",
    )
    return message


def summary_lines(
    space: SearchSpace, results: tune.ResultGrid, tracking_uri: str | None = None, tie: bool = True
) -> list[str]:
    """What the CLI prints after a sweep: trials, best objective and config, where the records are; with ``tie``,
    the objective-tie warning (the CLI leaves it to the report it prints next)."""
    uri = resolve_tracking_uri(tracking_uri)
    lines = [f"sweep {space.name}: {len(results)} trials, {results.num_errors} errored"]
    try:
        best = results.get_best_result(metric=OBJECTIVE, mode=space.objective.mode, filter_nan_and_inf=True)
        assert best.metrics is not None  # else caught below, like any failure here
        lines.append(
            f"best {OBJECTIVE} ({space.objective.protocol}): {best.metrics.get(OBJECTIVE):.4f}, "
            f"{REPORT_MEAN}: {best.metrics.get(REPORT_MEAN, float('nan')):.4f}"
        )
        assert best.config is not None
        lines.append(f"best params: {trial_params(best.config)}")
    except Exception:  # no trial finished with an objective
        lines.append("no trial finished with an objective")
    found = objective_tie(space, results) if tie else None
    if found is not None:
        lines.append(tie_message(found, space.objective.protocol))
    lines.append(f"Tune experiment: {results.experiment_path}")
    lines.append(f"MLflow: {uri}")
    return lines
