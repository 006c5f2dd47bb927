"""The Tune trainable: one sweep trial = one `TorchTrainer` fit of the #3 loop on the trial's configs.

Layers (Ray 2.60, Train V2):

* `train_loop_per_worker(config)` runs inside each Ray Train worker (a DDP rank). It builds the trial's
  experiment and method from the flat sampled params (`trial_configs`), loads the prepared resources from
  the disk cache the sweep driver warmed, and runs ``METHODS[kind]`` for every seed with
  ``LoopHooks(prepare_model/prepare_loader from ray.train.torch, report=ray.train.report)``. Every rank
  calls ``ray.train.report`` the same number of times (Train V2 makes it a barrier); only rank 0's
  metrics reach Tune, and only rank 0 attaches a checkpoint (a small JSON, not weights).
* `tune_trainable(config, space=...)` is the Tune function: it builds and fits the `TorchTrainer`;
  `TuneReportCallback` forwards each worker report to Tune (a `TorchTrainer` cannot be passed to `Tuner`).
* ``resources.workers_per_trial: 0``: the same `TorchTrainer` in Ray Train's local mode
  (``ScalingConfig(num_workers=0)``): `train_loop_per_worker` runs in the Tune trial's process as rank 0
  of 1, reports with ``ray.tune.report`` (``ray.train.*`` refuses to run in a Tune session), and a resumed
  trial whose Tune checkpoint holds the final payload is reported again, not retrained.
* `run_trial_locally(space, params)` runs the same trial in this process, without Ray (debugging, tests).

What Tune sees, per trial:

* one report per epoch of the trial's *first* English fine-tuning (seed 0, first language group):
  ``dev_macro_f1.en``, ``dev_accuracy.en``, ``dev_loss.en``, ``epoch`` and, under the english-dev
  protocol, ``objective`` (what ASHA and Optuna's intermediate values read). Later fine-tunings (other
  seeds, per-language groups) are not forwarded, so ``training_iteration`` counts epochs of one run and
  the final report is iteration ``epochs + 1``. Under selection-languages-dev no per-epoch report is
  forwarded (the objective needs target dev sets, which exist only after the swap);
* one final report: every metric averaged over seeds (``test_macro_f1.de``, ``dev_macro_f1.en``, ...),
  ``objective`` (`OBJECTIVE`), ``report_mean`` (`REPORT_MEAN`) and ``{split}_{metric}.mean`` over the
  report languages.

Timing: every trial's final report also carries ``timing.first_step_s`` (Tune function start to the
first optimizer step on rank 0: Train controller, worker start, imports, model load, data) and
``timing.worker_start_s``; the absolute ``timing.started_at`` / ``timing.first_step_at`` (epoch seconds)
are for benchmarks and are not logged to MLflow.

Fault injection (tests only): ``MOSECROT_FAULT_INJECT=N[,N...]`` in the sweep driver's environment makes
the trials numbered N (Tune's trial number, 1 for the first trial, as in the trial directory name
``tune_trainable_<id>_<N>_...``) raise `InjectedFault` in every Train worker before training (Train and
Tune then retry them as configured). Unset (the default) it does nothing.

Ray is imported inside functions only, so this module (and `run_trial_locally`) works without it.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mosecrot.cache import DiskCache
from mosecrot.config import ExperimentConfig
from mosecrot.configschema import from_dict, to_dict
from orchestrator.search_space import SearchSpace, objective_value, report_value, trial_configs

if TYPE_CHECKING:
    from mosecrot.prepare import SharedResources

log = logging.getLogger(__name__)

OBJECTIVE = "objective"  # the Tune/Optuna metric: mean of the objective keys
REPORT_MEAN = "report_mean"  # mean test score over the report languages (never selected on)
GRID_KEY = "grid_point"  # grid sweeps: Tune's grid generator hands the whole point under this key
CHECKPOINT_FILE = "trial.json"
FAULT_ENV = "MOSECROT_FAULT_INJECT"  # test-only: trial indices whose Train workers raise (see the module doc)
# Env vars the driver hands to every Ray worker (caches and data must resolve the same everywhere).
# S3-compatible storage (MinIO, moto, Ceph) is reached through the AWS SDKs' standard endpoint variables;
# credentials are not propagated (they would show in the dashboard): workers take them from their nodes.
PROPAGATED_ENV = ("MOSECROT_CACHE_DIR", "MOSECROT_DATA_DIR", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                  "TOKENIZERS_PARALLELISM", "TRANSFORMERS_OFFLINE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                  "AWS_REGION", "AWS_DEFAULT_REGION")
TRAIN_CONTROLLER_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5", "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC": "0"}


# --- params and metrics -------------------------------------------------------------------------------

def trial_params(config: dict[str, Any]) -> dict[str, Any]:
    """The sampled params from a Tune config: Optuna's flat dotted keys, or the grid point under `GRID_KEY`."""
    if GRID_KEY in config:
        return dict(config[GRID_KEY])
    return dict(config)


def base_experiment(space: SearchSpace) -> ExperimentConfig:
    """The sweep's experiment without any searched value (what the driver prepares once per sweep)."""
    return from_dict(ExperimentConfig, space.base)


def mean_over_seeds(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every numeric metric present in all seeds (a metric a seed lacks is dropped, not guessed)."""
    if not per_seed:
        return {}
    keys = [k for k in per_seed[0] if all(k in m for m in per_seed)]
    out = {}
    for k in keys:
        values = [m[k] for m in per_seed]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[k] = float(statistics.fmean(values))
    return out


def final_metrics(space: SearchSpace, metrics: dict[str, float]) -> dict[str, float]:
    """A trial's (or baseline's) metrics plus `OBJECTIVE`, `REPORT_MEAN` and means over report languages.

    Baselines that lack the objective's keys (e.g. LR has no English dev) simply get no `OBJECTIVE`."""
    out = dict(metrics)
    try:
        out[OBJECTIVE] = objective_value(space, metrics)
    except ValueError:
        pass
    try:
        out[REPORT_MEAN] = report_value(space, metrics)
    except ValueError:
        pass
    for split in ("dev", "test"):
        for metric in ("macro_f1", "accuracy"):
            keys = [f"{split}_{metric}.{lang}" for lang in space.report_languages or []]
            if keys and all(k in metrics for k in keys):
                out[f"{split}_{metric}.mean"] = float(statistics.fmean(metrics[k] for k in keys))
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
            return None
        src = self.source_language
        out = {f"{k}.{src}": float(entry[k]) for k in ("dev_macro_f1", "dev_accuracy", "dev_loss") if k in entry}
        out["epoch"] = int(entry.get("epoch", 0))
        key = f"dev_{obj.metric}"
        if key in entry:
            out[OBJECTIVE] = float(entry[key])
        return out


def run_trial(space: SearchSpace, params: dict[str, Any], hooks_factory: Callable[[EpochReporter], Any],
              sink: Callable[[dict[str, float]], None] | None = None, progress: bool = False,
              shared: "SharedResources | None" = None) -> dict[str, Any]:
    """Prepare (the sweep's `shared` resources, else from the disk cache), run the method for every seed,
    average. Returns a payload with ``metrics`` (final, averaged + objective), ``per_seed``, ``params``,
    ``history`` and ``seconds``."""
    from mosecrot.methods import METHODS, RunContext, seeds_then_methods
    from mosecrot.prepare import prepare

    t0 = time.perf_counter()
    exp, method = trial_configs(space, params)
    prepared = prepare(exp, progress=progress, shared=shared)
    reporter = EpochReporter(space, exp.source_language, sink)
    ctx = RunContext(prepared, exp.training, hooks_factory(reporter), DiskCache(exp.cache_dir))
    per_seed = [METHODS[m.kind](ctx, m, seed) for seed, m in seeds_then_methods(ctx, exp.seeds, [method])]
    metrics = final_metrics(space, mean_over_seeds(per_seed))
    metrics["timing.prepare_s"] = round(prepared.timings.get("total", 0.0), 3)
    metrics["timing.shared_resources"] = float(prepared.shared is shared and shared is not None)
    return {"params": params, "method": to_dict(method), "seeds": list(exp.seeds), "metrics": metrics,
            "per_seed": per_seed, "history": reporter.history, "seconds": round(time.perf_counter() - t0, 2)}


def run_trial_locally(space: SearchSpace, params: dict[str, Any], progress: bool = False,
                      shared: "SharedResources | None" = None) -> dict[str, Any]:
    """The trial without Ray, in this process: the same configs, loop, seeds and final metrics (`shared`:
    resources loaded once for several trials, `mosecrot.prepare.load_resources`)."""
    from mosecrot.training import LoopHooks

    reports: list[dict[str, float]] = []
    payload = run_trial(space, params, lambda reporter: LoopHooks(report=reporter, progress=progress),
                        sink=reports.append, progress=progress, shared=shared)
    payload["epoch_reports"] = reports
    return payload


# --- fault injection and timing ------------------------------------------------------------------------

class InjectedFault(RuntimeError):
    """Raised by a trial selected with ``MOSECROT_FAULT_INJECT`` (tests of the failure path)."""


def fault_indices(value: str | None = None) -> frozenset[int]:
    """Trial numbers from ``$MOSECROT_FAULT_INJECT`` (``"1"``, ``"1,3"``); empty when unset."""
    raw = os.environ.get(FAULT_ENV, "") if value is None else value
    try:
        return frozenset(int(x) for x in raw.replace(" ", "").split(",") if x)
    except ValueError:
        raise ValueError(f"${FAULT_ENV}={raw!r}: expected trial numbers such as 1 or 1,3") from None


def trial_number(trial_id: str, trial_dir: str | None) -> int | None:
    """Tune's trial number from the trial directory name: ``tune_trainable_9c971921_3_anchors...`` -> 3."""
    name = Path(str(trial_dir or "")).name
    _, sep, rest = name.partition(f"_{trial_id}_")
    head = rest.split("_", 1)[0]
    return int(head) if sep and head.isdigit() else None


FIRST_STEP_LINE = "mosecrot trial {trial_id}: first optimizer step {seconds:.1f} s after the trial started"


class FirstStepClock:
    """Wall time of the first optimizer step in this process (a global torch optimizer post-hook);
    `on_first` is called once, with that time."""

    def __init__(self, on_first: Callable[[float], None] | None = None) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.at: float | None = None
        self.on_first = on_first
        self._handle = register_optimizer_step_post_hook(self._hook)

    def _hook(self, optimizer, args, kwargs) -> None:
        if self.at is None:
            self.at = time.time()
            self._handle.remove()
            if self.on_first is not None:
                self.on_first(self.at)

    def close(self) -> None:
        self._handle.remove()


def timing_metrics(started_at: float | None, worker_at: float, first_step_at: float | None) -> dict[str, float]:
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
    import resource

    import torch

    wall = max(time.time() - wall_before, 1e-9)
    cpu = time.process_time() - cpu_before
    out = {"system.cpu_percent": round(100.0 * cpu / wall, 1),
           # ru_maxrss is in KiB on Linux
           "system.peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "system.wall_s": round(wall, 2), "system.torch_threads": float(torch.get_num_threads())}
    if torch.cuda.is_available():
        out["system.gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


# --- inside Ray Train workers ---------------------------------------------------------------------------

def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker body. ``config = {"space": SearchSpace, "params": {dotted key: value}}`` plus, from
    `tune_trainable`, ``started_at`` (the Tune function's start) and ``fault`` (test-only fault injection)."""
    worker_at, cpu_at = time.time(), time.process_time()
    import ray.train
    import ray.train.torch
    from mosecrot.training import LoopHooks

    # Local mode (workers_per_trial 0): this is the Tune trial's process, where Ray refuses ray.train.report /
    # get_context (a Tune session): rank 0 of 1, reports straight to Tune, no DDP wrapping.
    local = bool(config.get("local"))
    rank = 0 if local else ray.train.get_context().get_world_rank()
    report, checkpoint_class = _reporter(local)
    space: SearchSpace = config["space"]
    params: dict[str, Any] = config["params"]
    if config.get("fault"):
        raise InjectedFault(config["fault"])
    started_at = config.get("started_at") or worker_at

    def announce(at: float) -> None:  # one line in the driver's log (log_to_driver): the trial is training
        if rank == 0:
            print(FIRST_STEP_LINE.format(trial_id=config.get("trial_id"), seconds=at - started_at), flush=True)

    clock = FirstStepClock(announce)

    def hooks(reporter: EpochReporter) -> LoopHooks:
        if local:
            return LoopHooks(report=reporter, is_main=True, progress=False)
        return LoopHooks(prepare_model=ray.train.torch.prepare_model,
                         prepare_loader=ray.train.torch.prepare_data_loader,
                         report=reporter, is_main=rank == 0, progress=rank == 0)

    try:
        payload = run_trial(space, params, hooks, sink=report, progress=False,
                            shared=resolve_shared(config.get("shared")))
    finally:
        clock.close()
    metrics = {**payload["metrics"], **timing_metrics(config.get("started_at"), worker_at, clock.at),
               **system_metrics(cpu_at, worker_at)}
    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, CHECKPOINT_FILE).write_text(json.dumps(payload, indent=1, default=str))
            report(metrics, checkpoint=checkpoint_class.from_directory(tmp))
    else:
        report(metrics)


def _reporter(local: bool) -> tuple[Callable[..., None], type]:
    """(report, Checkpoint class) for the loop's reports. In Train's local mode (``workers_per_trial: 0``) the
    loop runs inside the Tune function, where ``ray.train.report`` is refused (and would only keep the last
    metrics: no callbacks, no storage): reports go straight to Tune (metrics, ASHA's intermediate values, the
    final checkpoint)."""
    if local:
        from ray import tune

        return tune.report, tune.Checkpoint
    import ray.train

    return ray.train.report, ray.train.Checkpoint


@dataclass(frozen=True)
class SharedRef:
    """An object-store reference to the sweep's `SharedResources`. Wrapped because Tune's `with_parameters`
    resolves a bare ObjectRef in the Tune function, which would then pickle the resources into every
    trial's `train_loop_config`; wrapped, only the reference travels and each Train worker fetches it."""

    ref: Any


# The sweep's shared resources as this process fetched them, by object ref. A fresh copy per trial would
# also drop what they load lazily and keep (the fastText subword models, seconds per language); the plain
# loop keeps one copy for all its trials, and so does a reused trial process.
_FETCHED: dict[str, "SharedResources"] = {}


def resolve_shared(handle: Any) -> "SharedResources | None":
    """The sweep's shared resources from a `SharedRef` (or the resources themselves); None (the trial then
    loads its own from the disk cache) when there are none, they cannot be fetched, or their files are not
    on this node."""
    if handle is None:
        return None
    from mosecrot.prepare import SharedResources

    shared = handle.ref if isinstance(handle, SharedRef) else handle
    ref = None
    if not isinstance(shared, SharedResources):
        import ray

        ref = shared.hex() if hasattr(shared, "hex") else None
        if ref in _FETCHED:  # a reused trial process (local mode): what it loaded stays
            return _FETCHED[ref]
        try:
            shared = ray.get(shared, timeout=120)
        except Exception as err:  # lost with a dead driver, or a timeout: slower, not wrong
            log.warning("could not fetch the sweep's shared resources (%s); loading from the disk cache", err)
            return None
    if not shared.usable_here():
        log.info("the sweep's shared resources refer to files not on this node; loading from the disk cache")
        return None
    if ref is not None:
        _FETCHED.clear()  # one sweep's resources per process, never an accumulation
        _FETCHED[ref] = shared
    return shared


# --- the Tune function --------------------------------------------------------------------------------

def backend(space: SearchSpace) -> str:
    """DDP backend: NCCL on GPUs, gloo on CPUs."""
    return "nccl" if space.resources.gpus_per_worker > 0 else "gloo"


def worker_resources(space: SearchSpace) -> dict[str, float]:
    res = space.resources
    out = {"CPU": float(res.cpus_per_worker)}
    if res.gpus_per_worker > 0:
        out["GPU"] = float(res.gpus_per_worker)
    return out


def train_storage_path(storage_path: str, experiment: str) -> str:
    """Where the trials' Train runs go: beside the Tune experiment, ``STORAGE/EXPERIMENT-train``."""
    return storage_path.rstrip("/") + "/" + experiment + "-train"


def checkpoint_payload(checkpoint: Any) -> dict[str, Any] | None:
    """The final payload in a trial checkpoint (local mode: the trial's own Tune checkpoint), else None."""
    if checkpoint is None:
        return None
    try:
        with checkpoint.as_directory() as directory:
            payload = json.loads(Path(directory, CHECKPOINT_FILE).read_text())
    except (OSError, ValueError) as err:  # unreadable: train again rather than fail the trial
        log.warning("could not read the trial checkpoint %s: %s", checkpoint, err)
        return None
    return payload if isinstance(payload.get("metrics"), dict) else None


def finished_train_payload(train_storage: str, trial_id: str, local_mode: bool = False) -> dict[str, Any] | None:
    """The final payload (``trial.json`` of the rank-0 checkpoint) of a Train run of `trial_id` that already
    finished under `train_storage` (a local path or a pyarrow-supported URI), else None. ``local_mode``:
    `train_storage` is the Tune experiment directory and the checkpoints are the trial's own (Tune trial
    directories are named ``<trainable>_<trial_id>_<N>_...``).

    A restored sweep restarts every trial its last saved Tune state did not mark finished; a trial whose
    Train run had completed before the driver died is then re-reported from this payload, not retrained."""
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(train_storage) if "://" in train_storage else \
            (pafs.LocalFileSystem(), train_storage)
        runs = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        for run in sorted(runs, key=lambda i: i.path):
            ours = f"_{trial_id}_" in run.base_name if local_mode else run.base_name.startswith(f"{trial_id}-")
            if run.type != pafs.FileType.Directory or not ours:
                continue
            for item in fs.get_file_info(pafs.FileSelector(run.path)):
                if item.type == pafs.FileType.Directory and item.base_name.startswith("checkpoint_"):
                    info = fs.get_file_info(f"{item.path}/{CHECKPOINT_FILE}")
                    if info.type == pafs.FileType.File:
                        with fs.open_input_stream(info.path) as f:
                            payload = json.loads(f.read().decode())
                        if isinstance(payload.get("metrics"), dict):
                            return payload
    except (OSError, ValueError) as err:  # unreadable storage: train again rather than fail the trial
        log.warning("could not look for a finished Train run of %s: %s", trial_id, err)
    return None


def tune_trainable(config: dict[str, Any], space: SearchSpace | None = None, storage_path: str | None = None,
                   train_max_failures: int = 1, worker_extra_resources: dict[str, float] | None = None,
                   fault_inject: frozenset[int] | None = None, shared: Any = None) -> None:
    """Tune function (wrap with ``tune.with_parameters(tune_trainable, space=space, ...)``): builds the
    trial's `TorchTrainer` and fits it; the Train workers' reports reach Tune through `TuneReportCallback`.

    ``worker_extra_resources`` are added to each Train worker's resources (e.g. a custom node resource
    that pins workers to GPU nodes); ``fault_inject``: trial indices that raise (tests only); ``shared``: an
    `SharedRef` to the sweep's `SharedResources` (None: every trial loads from the disk cache)."""
    started_at = time.time()
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    assert space is not None, "pass the SearchSpace: tune.with_parameters(tune_trainable, space=space)"
    ctx = tune.get_context()
    params = trial_params(config)
    res = space.resources
    storage = storage_path  # the sweep's storage path (local dir, NFS or s3://); None: Ray's default
    local = res.local_mode
    # Local mode: the trial's own checkpoints hold the final payload (no Train run directory); the restored
    # Tune state may predate the last one, so the trial directories on storage are searched as well.
    done = checkpoint_payload(tune.get_checkpoint()) if local else None
    train_storage = train_storage_path(storage, ctx.get_experiment_name()) if storage else None
    root = (storage.rstrip("/") + "/" + ctx.get_experiment_name() if local else train_storage) if storage else None
    if done is None and root:
        done = finished_train_payload(root, ctx.get_trial_id(), local_mode=local)
    if done is not None:  # finished before the sweep driver died: report it again, do not retrain
        tune.report({k: v for k, v in done["metrics"].items() if isinstance(v, (int, float, str))})
        return
    fault = None
    if fault_inject and trial_number(ctx.get_trial_id(), ctx.get_trial_dir()) in fault_inject:
        fault = f"injected fault: trial {ctx.get_trial_id()} selected by ${FAULT_ENV}"
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"space": space, "params": params, "started_at": started_at, "fault": fault,
                           "trial_id": ctx.get_trial_id(), "shared": shared, "local": local},
        torch_config=TorchConfig(backend=backend(space)),
        # workers_per_trial 0: Train's local mode (the loop runs here, as rank 0 of 1; Train's FailureConfig and
        # callbacks do not apply, Tune's FailureConfig retries the trial).
        scaling_config=ray.train.ScalingConfig(num_workers=res.workers_per_trial, use_gpu=res.gpus_per_worker > 0,
                                               resources_per_worker=None if local else {
                                                   **worker_resources(space), **(worker_extra_resources or {})}),
        run_config=ray.train.RunConfig(
            # A fresh name per attempt: a retried trial starts its Train run over instead of resuming a
            # finished or broken one.
            name=f"{ctx.get_trial_id()}-{uuid.uuid4().hex[:6]}",
            storage_path=train_storage,
            failure_config=ray.train.FailureConfig(max_failures=train_max_failures),
            # Local mode reports straight to Tune (`_reporter`); the callback would only add a queue actor (a
            # process started per trial) that the trial's main thread polls every 0.2 s while it trains.
            callbacks=[] if local else [TuneReportCallback()],
        ),
    )
    trainer.fit()


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
