"""Everything that runs inside Ray (Ray 2.60, Train V2), in one module that imports Ray normally.

* `train_loop_per_worker(config)` runs inside each Ray Train worker (a DDP rank): `orchestrator.trial.run_trial`
  with ``LoopHooks(prepare_model from ray.train.torch, prepare_loader=prepare_worker_loader, report=ray.train.report)``
  (the loader's `DistributedSampler` is seeded by the run seed). Every rank calls ``ray.train.report`` the same
  number of times (Train V2 makes it a barrier); only rank 0's metrics reach Tune, and only rank 0 attaches a
  checkpoint (the final payload, a small JSON, not weights).
* `tune_trainable(config, space=...)` is the Tune function. As in Ray's Train-in-Tune example, it builds a
  `TorchTrainer` whose Train run is named after the Tune trial (``RunConfig(name=trial_id)``, beside the Tune
  experiment): a trial restarted after its Train run finished (a sweep driver that died before Tune saved
  the trial as done) gets its final checkpoint back from ``ray.train.get_checkpoint()`` and reports it again
  instead of training again. `TuneReportCallback` forwards the workers' reports to Tune.
* ``resources.workers_per_trial: 0``: the same `TorchTrainer` in Ray Train's local mode
  (``ScalingConfig(num_workers=0)``): `train_loop_per_worker` runs in the Tune trial's process as rank 0
  of 1 and reports with ``ray.tune.report`` (``ray.train.*`` refuses to run in a Tune session); the trial's
  own Tune checkpoints then hold the final payload.
* The sweep driver's Ray pieces: `make_trainable`, `make_searcher` (`ResumableOptunaSearch` or Tune's grid),
  `make_scheduler` (ASHA), `MlflowTrialCallback` (one MLflow child run per trial) and `ensure_ray`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs as pafs
import ray
import ray.train
import ray.train.torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray import tune
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune import Callback
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch
from torch.utils.data import DataLoader

from mosecrot.configschema import to_dict
from mosecrot.prepare import SharedResources
from mosecrot.training import LoopHooks, distributed_loader
from orchestrator.search_space import SearchSpace, define_by_run, grid_points, optuna_sampler, trial_configs
from orchestrator.trial import (
    FIRST_STEP_LINE,
    GRID_KEY,
    OBJECTIVE,
    EpochReporter,
    FirstStepClock,
    SystemSampler,
    checkpoint_payload,
    run_trial,
    system_metrics,
    timing_metrics,
    trial_params,
    write_payload,
)

log = logging.getLogger(__name__)
SYSTEM_SAMPLING_S = 5.0  # = orchestrator.tracking.SYSTEM_SAMPLING_S (not imported: it would import MLflow here)

# Env vars the driver hands to every Ray worker (caches, data and method plugins must resolve the same
# everywhere). S3-compatible storage (MinIO, moto, Ceph) is reached through the AWS SDKs' standard endpoint
# variables; credentials are not propagated (they would show in the dashboard): workers take them from
# their nodes.
PROPAGATED_ENV = (
    "MOSECROT_CACHE_DIR",
    "MOSECROT_DATA_DIR",
    "MOSECROT_PLUGINS",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "TRANSFORMERS_OFFLINE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
TRAIN_CONTROLLER_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5", "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC": "0"}
# The Tune function only waits on its TorchTrainer: no CPU, so trials never deadlock on a 2-core machine.
# A placement group bundle cannot be all zeros, hence a small memory reservation.
DEFAULT_DRIVER_RESOURCES: dict[str, float] = {"CPU": 0, "memory": 128 * 1024**2}


def worker_env() -> dict[str, str]:
    """The driver's settings that Ray workers must share (runtime_env env_vars)."""
    env = {k: os.environ[k] for k in PROPAGATED_ENV if k in os.environ}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Ray Train V2 starts each trial's TrainController with these two variables as its runtime env; when the
    # job's env already holds them (same values), the controller is an idle pooled worker instead of a fresh
    # process. The controller polls its workers every HEALTH_CHECK_INTERVAL_S (default 2 s) and each state
    # change waits for a poll: 0.5 s cuts about 3-4 s off every trial (measured, 1-worker trials).
    env.update({key: os.environ.get(key, value) for key, value in TRAIN_CONTROLLER_ENV.items()})
    return env


def ensure_ray(address: str | None = None, num_cpus: int | None = None, dashboard: bool = False) -> bool:
    """``ray.init`` unless already connected; returns whether this call started/connected Ray.

    ``dashboard``: start the Ray dashboard with an embedded cluster (on 127.0.0.1:8265). Off by default: on a
    laptop it adds about 2 s to ``ray.init`` and a process that takes CPU from the trials all sweep long, and a
    sweep's progress is in its console output and in MLflow. A cluster (``address``) keeps its own dashboard."""
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


# --- inside Ray Train workers ---------------------------------------------------------------------------


def worker_hooks(reporter: EpochReporter | None, rank: int, local: bool) -> LoopHooks:
    """The fine-tuning hooks of one Train worker: DDP model and sharded loader, unless in local mode."""
    if local:
        return LoopHooks(report=reporter, is_main=True, progress=False)
    return LoopHooks(
        prepare_model=ray.train.torch.prepare_model,
        prepare_loader=prepare_worker_loader,
        report=reporter,
        is_main=rank == 0,
        progress=False,  # a worker's output is a log (the sweep's log file): no per-step bars in it
    )


def prepare_worker_loader(loader: DataLoader, seed: int) -> DataLoader:
    """The training loader of this Train worker: with several workers, sharded by a `DistributedSampler` seeded
    with the run seed (`mosecrot.training.distributed_loader`; Ray's own would use seed 0 for every run), then
    Ray's ``prepare_data_loader`` (which keeps that sampler and moves batches to the worker's device)."""
    context = ray.train.get_context()
    world = context.get_world_size()
    if world > 1:
        loader = distributed_loader(loader, world, context.get_world_rank(), seed)
    return ray.train.torch.prepare_data_loader(loader)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker body. ``config = {"space": SearchSpace, "params": {dotted key: value}}`` plus, from
    `tune_trainable`, ``started_at`` (the Tune function's start), ``trial_id``, ``shared`` and ``local``."""
    worker_at, cpu_at = time.time(), time.process_time()
    # Local mode (workers_per_trial 0): this is the Tune trial's process, where Ray refuses ray.train.report /
    # get_context (a Tune session): rank 0 of 1, reports straight to Tune, no DDP wrapping.
    local = bool(config.get("local"))
    report, checkpoint_class = (tune.report, tune.Checkpoint) if local else (ray.train.report, ray.train.Checkpoint)
    rank = 0 if local else ray.train.get_context().get_world_rank()
    if not local:
        done = checkpoint_payload(ray.train.get_checkpoint())
        if done is not None:  # this trial's Train run finished before: report its result again, do not retrain
            report(_reportable(done["metrics"]))
            return
    space: SearchSpace = config["space"]
    started_at = config.get("started_at") or worker_at

    def announce(at: float) -> None:  # one line in the driver's log (log_to_driver): the trial is training
        if rank == 0:
            print(FIRST_STEP_LINE.format(trial_id=config.get("trial_id"), seconds=at - started_at), flush=True)

    clock = FirstStepClock(announce)
    sampler = SystemSampler(SYSTEM_SAMPLING_S).start() if rank == 0 else None

    def hooks(reporter: EpochReporter) -> LoopHooks:
        return worker_hooks(reporter, rank, local)

    try:
        handle = config.get("shared")
        shared = resolve_shared(handle)
        expected = (handle.key, handle.fingerprints) if shared is None and isinstance(handle, SharedRef) else None
        payload = run_trial(
            space, config["params"], hooks, sink=report, progress=False, shared=shared, expected=expected
        )
    finally:
        clock.close()
        samples = sampler.stop() if sampler is not None else []
    metrics = {
        **payload["metrics"],
        **timing_metrics(config.get("started_at"), worker_at, clock.at),
        **system_metrics(cpu_at, worker_at),
    }
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            write_payload(tmp, {**payload, "metrics": metrics, "system": samples})
            report(metrics, checkpoint=checkpoint_class.from_directory(tmp))
    else:
        report(metrics)


def _reportable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


@dataclass(frozen=True)
class SharedRef:
    """An object-store reference to the sweep's `SharedResources`. Wrapped because Tune's `with_parameters`
    resolves a bare ObjectRef in the Tune function, which would then pickle the resources into every
    trial's `train_loop_config`; wrapped, only the reference travels and each Train worker fetches it."""

    ref: Any
    fingerprints: dict[str, str] = field(default_factory=dict)  # the driver's vectors/dictionaries (resources)
    key: Any = None  # their `mosecrot.prepare.resource_key`


# The sweep's shared resources as this process fetched them, by object ref. A fresh copy per trial would
# also drop what they load lazily and keep (the fastText subword models, seconds per language); the plain
# loop keeps one copy for all its trials, and so does a reused trial process.
FETCHED_SHARED: dict[str, SharedResources] = {}


def resolve_shared(handle: Any) -> SharedResources | None:
    """The sweep's shared resources from a `SharedRef` (or the resources themselves); None (the trial then
    loads its own from the disk cache) when there are none, they cannot be fetched, or their files are not
    on this node."""
    if handle is None:
        return None
    shared = handle.ref if isinstance(handle, SharedRef) else handle
    ref = None
    if not isinstance(shared, SharedResources):
        ref = shared.hex() if hasattr(shared, "hex") else None
        if ref in FETCHED_SHARED:  # a reused trial process (local mode): what it loaded stays
            return FETCHED_SHARED[ref]
        try:
            shared = ray.get(shared, timeout=120)
        except Exception as err:  # lost with a dead driver, or a timeout: slower, not wrong
            log.warning("could not fetch the sweep's shared resources (%s); loading from the disk cache", err)
            return None
    if not shared.usable_here():
        log.info("the sweep's shared resources refer to files not on this node; loading from the disk cache")
        return None
    if ref is not None:
        FETCHED_SHARED.clear()  # one sweep's resources per process, never an accumulation
        FETCHED_SHARED[ref] = shared
    return shared


# --- the Tune function --------------------------------------------------------------------------------


def backend(space: SearchSpace) -> str:
    """DDP backend: NCCL on GPUs, gloo on CPUs."""
    return "nccl" if space.resources.gpus_per_worker > 0 else "gloo"


def per_worker_resources(space: SearchSpace) -> dict[str, float]:
    """What each Train worker asks for by the space: ``resources.cpus_per_worker``, ``gpus_per_worker`` and
    ``worker_resources`` (the sweep's ``worker_resources`` argument / ``$MOSECROT_WORKER_RESOURCES`` add to
    these, and win for a name both give)."""
    res = space.resources
    out = {"CPU": float(res.cpus_per_worker)}
    if res.gpus_per_worker > 0:
        out["GPU"] = float(res.gpus_per_worker)
    out.update({k: float(v) for k, v in res.worker_resources.items() if v > 0})
    return out


def train_storage_path(storage_path: str, experiment: str) -> str:
    """Where the trials' Train runs go: beside the Tune experiment, ``STORAGE/EXPERIMENT-train``."""
    return storage_path.rstrip("/") + "/" + experiment + "-train"


def finished_local_trial(experiment_root: str, trial_id: str) -> dict[str, Any] | None:
    """Local mode: the final payload in a checkpoint of this trial's own directory under the Tune experiment
    (``<trainable>_<trial_id>_<N>_...``), else None. The restored Tune state may predate the trial's last
    checkpoint (a driver killed between the two), so the directory is read, not the state."""
    try:
        fs, root = (
            pafs.FileSystem.from_uri(experiment_root)
            if "://" in experiment_root
            else (pafs.LocalFileSystem(), experiment_root)
        )
        for run in sorted(fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)), key=lambda i: i.path):
            if run.type != pafs.FileType.Directory or f"_{trial_id}_" not in run.base_name:
                continue
            for item in fs.get_file_info(pafs.FileSelector(run.path)):
                if item.type == pafs.FileType.Directory and item.base_name.startswith("checkpoint_"):
                    payload = checkpoint_payload(tune.Checkpoint(item.path, filesystem=fs))
                    if payload is not None:
                        return payload
    except OSError as err:  # unreadable storage: train again rather than fail the trial
        log.warning("could not look for a finished checkpoint of %s: %s", trial_id, err)
    return None


def tune_trainable(
    config: dict[str, Any],
    space: SearchSpace | None = None,
    storage_path: str | None = None,
    train_max_failures: int = 1,
    worker_extra_resources: dict[str, float] | None = None,
    shared: Any = None,
) -> None:
    """Tune function (wrap with ``tune.with_parameters(tune_trainable, space=space, ...)``): builds the
    trial's `TorchTrainer`, its Train run named after the trial, and fits it.

    ``worker_extra_resources`` are added to each Train worker's resources (e.g. a custom node resource
    that pins workers to GPU nodes); ``shared``: a `SharedRef` to the sweep's `SharedResources` (None: every
    trial loads from the disk cache)."""
    started_at = time.time()
    assert space is not None, "pass the SearchSpace: tune.with_parameters(tune_trainable, space=space)"
    ctx = tune.get_context()
    res = space.resources
    local = res.local_mode
    storage = storage_path  # the sweep's storage path (local dir, NFS or s3://); None: Ray's default
    if local:  # the trial's own checkpoints hold its final payload
        done = checkpoint_payload(tune.get_checkpoint())
        if done is None and storage:
            done = finished_local_trial(storage.rstrip("/") + "/" + ctx.get_experiment_name(), ctx.get_trial_id())
        if done is not None:  # finished before the sweep driver died: report it again, do not retrain
            tune.report(_reportable(done["metrics"]))
            return
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "space": space,
            "params": trial_params(config),
            "started_at": started_at,
            "trial_id": ctx.get_trial_id(),
            "shared": shared,
            "local": local,
        },
        torch_config=TorchConfig(backend=backend(space)),
        # workers_per_trial 0: Train's local mode (the loop runs here, as rank 0 of 1; Train's FailureConfig and
        # callbacks do not apply, Tune's FailureConfig retries the trial).
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers_per_trial,
            use_gpu=res.gpus_per_worker > 0,
            resources_per_worker=None if local else {**per_worker_resources(space), **(worker_extra_resources or {})},
        ),
        run_config=ray.train.RunConfig(
            name=ctx.get_trial_id(),  # a restarted trial resumes its own Train run (see the module doc)
            storage_path=train_storage_path(storage, ctx.get_experiment_name()) if storage else None,
            failure_config=ray.train.FailureConfig(max_failures=train_max_failures),
            # Local mode reports straight to Tune; the callback would only add a queue actor (a process started
            # per trial) that the trial's main thread polls every 0.2 s while it trains. (ray.train.RunConfig is
            # Train v2's at runtime, but mypy reads the v1 class ray.train imports first, whose callbacks differ.)
            callbacks=[] if local else [TuneReportCallback()],  # type: ignore[list-item]  # mypy sees v1 RunConfig
        ),
    )
    trainer.fit()


# --- the driver's Ray pieces ------------------------------------------------------------------------------


def make_trainable(
    space: SearchSpace,
    storage_path: str | None,
    train_max_failures: int = 1,
    driver_resources: dict[str, float] | None = None,
    worker_resources: dict[str, float] | None = None,
    shared: Any = None,
) -> Any:
    """`tune_trainable` bound to the space, sized at 0 CPU (its TorchTrainer's workers hold the resources), or,
    in local mode (``workers_per_trial: 0``), at one worker's resources (the trial's process trains).
    ``worker_resources`` are added to each Train worker's request; ``shared``: an object-store
    reference to the sweep's `SharedResources`, handed to every trial's workers."""
    fn = tune.with_parameters(
        tune_trainable,
        space=space,
        storage_path=storage_path,
        train_max_failures=train_max_failures,
        worker_extra_resources=worker_resources,
        shared=shared,
    )
    if space.resources.local_mode:  # the trial's own process trains: it holds what a Train worker would
        return tune.with_resources(fn, {**per_worker_resources(space), **(worker_resources or {})})
    return tune.with_resources(fn, dict(driver_resources or DEFAULT_DRIVER_RESOURCES))


def make_searcher(space: SearchSpace, optuna_storage: str, study_name: str) -> tuple[Any, dict[str, Any]]:
    """(search_alg, param_space): `ResumableOptunaSearch` over the define-by-run space with its study in
    ``optuna_storage``, or Tune's grid generator over `grid_points`."""
    if space.searcher.kind == "grid":
        return None, {GRID_KEY: tune.grid_search(grid_points(space))}
    storage = optuna.storages.RDBStorage(optuna_storage)
    # With a define-by-run space, OptunaSearch takes metric and mode here (Tune does not pass them on).
    searcher = ResumableOptunaSearch(
        space=define_by_run(space),
        metric=OBJECTIVE,
        mode=space.objective.mode,
        sampler=optuna_sampler(space),
        study_name=study_name,
        storage=storage,
    )
    return searcher, {}


def asha_max_t(space: SearchSpace) -> int:
    """ASHA's horizon in Tune iterations: one per epoch of the first fine-tuning, plus the final report."""
    return int(space.scheduler.max_t or 1) + 1


def make_scheduler(space: SearchSpace) -> ASHAScheduler | None:
    if space.scheduler.kind != "asha":
        return None
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=asha_max_t(space),
        grace_period=space.scheduler.grace_period,
        reduction_factor=space.scheduler.reduction_factor,
    )


class ResumableOptunaSearch(OptunaSearch):
    """`OptunaSearch` that tolerates results of trials the study already finished.

    A driver killed between Optuna's ``tell`` and Tune's next experiment-state save leaves a trial that is
    COMPLETE in the study but unfinished in Tune's state; on ``--resume`` Tune runs it again (the trainable
    re-reports the finished Train run instead of retraining), and stock `OptunaSearch` would then fail the
    whole sweep reporting an intermediate value to a finished Optuna trial.

    A driver killed after Optuna's ``ask`` for the next trial but before Tune saved that trial leaves a
    RUNNING Optuna trial that no restored Tune trial owns: nobody would ever finish it (it stayed RUNNING in
    the study, and constant-liar TPE kept lying about it). On restore such orphans are marked FAIL."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            log.info("trial %s already finished in the Optuna study; result not re-reported", trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.fail_orphaned_trials()

    def fail_orphaned_trials(self) -> list[int]:
        """Mark FAIL every RUNNING trial of the study that no Tune trial of this searcher owns; returns their
        numbers."""
        if self._ot_study is None:
            return []
        owned = {getattr(t, "_trial_id", None) for t in self._ot_trials.values()}
        orphans = [
            t
            for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t._trial_id not in owned
        ]
        for t in orphans:
            self._ot_study.tell(t.number, state=TrialState.FAIL)
            log.warning(
                "Optuna trial %d was asked by a driver that died before Tune recorded it: "
                "marked FAIL (its params %s were never run)",
                t.number,
                t.params,
            )
        return [t.number for t in orphans]


class MlflowTrialCallback(Callback):
    """One MLflow child run per trial, logged from the driver when the trial ends.

    Picklable (Tune saves callbacks with the experiment): the tracker is rebuilt lazily."""

    def __init__(self, space: SearchSpace, tracking_uri: str, sweep_key: str, parent_id: str) -> None:
        self.space, self.tracking_uri, self.sweep_key, self.parent_id = space, tracking_uri, sweep_key, parent_id
        self._tracker: Any = None
        self._epochs: dict[str, list[dict[str, Any]]] = {}  # per-epoch reports of running trials

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tracker"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_epochs", {})  # a callback pickled before per-epoch logging

    @property
    def tracker(self) -> Any:
        if self._tracker is None:
            # Imported here: MLflow takes seconds to import, and only the driver logs (never a Train worker,
            # which imports this module for its loop).
            from orchestrator.tracking import SweepTracker

            self._tracker = SweepTracker(self.space, self.tracking_uri, sweep_key=self.sweep_key)
            self._tracker.parent_id = self.parent_id
        return self._tracker

    def _log(self, trial: Any, status: str, error: str | None = None) -> None:
        seeds = list(self.space.seeds)
        epochs = self._epochs.pop(trial.trial_id, [])
        try:
            payload = (trial_predictions(trial) if status == "FINISHED" else None) or {}
            params = trial_params(trial.config)
            self.tracker.log_trial(
                trial.trial_id,
                None,  # named by its configuration
                params,
                trial.last_result,
                status,
                error=error,
                seeds=seeds,
                predictions=payload.get("predictions"),
                epochs=epochs,
                system=payload.get("system"),
                config=resolved_trial_config(self.space, params),
            )
        except Exception:  # tracking must not kill the sweep; the trial stays in Tune's results
            log.exception("could not log trial %s to MLflow", trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Keep the trial's per-epoch reports (logged with their steps when it ends)."""
        if "report_mean" not in result:
            self._epochs.setdefault(trial.trial_id, []).append(dict(result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._log(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._log(trial, "FAILED", error=trial_error_text(trial) or "trial raised (see the Tune trial directory)")


def resolved_trial_config(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any] | None:
    """The trial's experiment and method as they ran (``config.resolved.yaml`` of its MLflow run)."""
    try:
        exp, method = trial_configs(space, params)
        return {"params": params, "method": method.to_config(), "experiment": to_dict(exp)}
    except Exception as err:  # a config that does not build failed the trial already
        log.info("no resolved config for params %s: %s", params, err)
        return None


def trial_predictions(trial: Any) -> dict[str, Any] | None:
    """The trial's final payload (its per-item predictions travel in its last checkpoint, not in Tune's result
    rows); None when it cannot be read: the trial is then logged without them, never not at all."""
    try:
        payload = checkpoint_payload(trial.checkpoint)
        if payload is None:  # Train V2: the final checkpoint stays in the trial's Train run, not with Tune
            storage = trial.storage  # Tune's StorageContext: the sweep's filesystem and path
            payload = train_run_payload(
                train_storage_path(storage.storage_fs_path, storage.experiment_dir_name),
                trial.trial_id,
                storage.storage_filesystem,
            )
        return payload
    except Exception as err:
        log.warning("could not read trial %s's checkpoint for its predictions: %s", trial.trial_id, err)
        return None


def train_run_payload(train_root: str, trial_id: str, fs: Any = None) -> dict[str, Any] | None:
    """The final payload in the latest checkpoint of the trial's Train run (``TRAIN_ROOT/TRIAL_ID/checkpoint_*``,
    `train_storage_path`; ``fs``: the pyarrow filesystem of a path without scheme), else None."""
    root = train_root
    if fs is None:
        fs, root = pafs.FileSystem.from_uri(train_root) if "://" in train_root else (pafs.LocalFileSystem(), train_root)
    run = root.rstrip("/") + "/" + trial_id
    checkpoints = [
        i
        for i in fs.get_file_info(pafs.FileSelector(run, allow_not_found=True))
        if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")
    ]
    for item in sorted(checkpoints, key=lambda i: i.base_name, reverse=True):  # names carry their time
        payload = checkpoint_payload(tune.Checkpoint(item.path, filesystem=fs))
        if payload is not None:
            return payload
    return None


def trial_error_text(trial: Any) -> str | None:
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
