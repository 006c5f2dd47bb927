"""What a sweep costs over a plain loop: the same N short trials (the same params), run

  (a) in a plain Python loop in this process, calling the #3 loop (`orchestrator.trainable.run_trial_locally`:
      the resources loaded once before the loop, as a sweep's driver does; per trial its anchors, the
      method's fine-tuning, swap, evaluation), and
  (b) through `orchestrator.sweep.run_sweep` (embedded Ray, Tune + Ray Train workers, MLflow in a SQLite
      store in a temp dir), once with one concurrent trial and once with two,

on the same machine in one run. The trials are the points of a one-parameter grid (``anchors.count``) over
the quickstart space cut down to German: each is a quickstart trial (one epoch of 19 length-grouped batches of
32 verses, English dev and German test scored), the "short trial" the goals are about.

Fairness: every arm starts from its own copy of one warm cache holding what a sweep prepares once (task
splits, static vectors), so no arm inherits another's F_s/F_t or tokenisation cache entries; Ray is
started inside arm (b)'s timing (``ray.init`` is part of a sweep's cost) and shut down after it. With one
concurrent trial the trial's Train worker gets both cores (``cpus_per_worker=2``, as the plain loop's torch
has), with two concurrent trials one core each.

Per-trial overhead (goal <= 10 s): what the sweep adds to a trial's start. ``start_to_first_step_s`` is the wall
time from Tune starting the trial (a driver callback's ``on_trial_start``) to the trial's first optimizer step
(a torch optimizer hook in the Train worker, reported as ``timing.first_step_at``); ``timing.worker_start_s``
splits off the Train worker's start. The same trial in the plain loop also spends time before its first step
(its anchors, model, tokenisation): ``loop_first_step_s``. The fixed overhead is the difference,
``overhead_s = start_to_first_step_s - loop_first_step_s`` (same params); both are in the JSON.

Writes JSON (default benchmarks/results/bench_sweep.json). Goals: (b)/(a) <= 1.25 with one concurrent
trial, <= 0.8 with two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_sweep.json"
GOALS = {"ratio_1": 1.25, "ratio_2": 0.8, "overhead_s": 10.0}
ANCHOR_COUNTS = [600, 700, 800, 900, 1000, 1100, 1200, 1300]


def bench_overrides(trials: int, max_steps: int | None, train_per_class: int) -> list[str]:
    """The quickstart sweep's trial (one epoch of batch 32 at length 64, length-grouped, English dev and the
    target test set scored) on German alone; small static vectors (prepared once, outside every arm)."""
    counts = ANCHOR_COUNTS[:trials]
    return [
        "name=bench_sweep",
        "fixed.target_languages=[de]",
        "report_languages=[de]",
        "fixed.dictionary.per_language={}",
        f"fixed.task.per_class={{train: {train_per_class}, dev: 50, test: 60}}",
        "fixed.vectors.training={dim: 32, epochs: 1, min_count: 3}",
        f"fixed.training.max_steps={'null' if max_steps is None else max_steps}",
        f"space={{anchors.count: {{type: categorical, choices: {counts}}}}}",
        "searcher={kind: grid}",
        "num_trials=null",
        "baselines=[]",
    ]


def _fresh_cache(warm: Path, root: Path, name: str) -> Path:
    dest = root / f"cache-{name}"
    shutil.copytree(warm, dest)
    os.environ["MOSECROT_CACHE_DIR"] = str(dest)
    return dest


def arm_loop(space, points: list[dict]) -> dict:
    """(a): the plain loop, timed from the first trial's start to the last one's end."""
    from mosecrot.prepare import load_resources
    from orchestrator.trainable import FirstStepClock, base_experiment, run_trial_locally

    trials = []
    t0 = time.perf_counter()
    # What a sweep's driver does once (from the warm cache), timed here as in arm (b): load the task
    # splits, vectors and dictionaries, and hand them to every trial.
    shared = load_resources(base_experiment(space), progress=False)
    for params in points:
        start = time.time()
        clock = FirstStepClock()
        try:
            payload = run_trial_locally(space, params, shared=shared)
        finally:
            clock.close()
        trials.append({"params": params, "seconds": round(time.time() - start, 2),
                       "first_step_s": round(clock.at - start, 2) if clock.at else None,
                       "prepare_s": payload["metrics"].get("timing.prepare_s"),
                       "objective": payload["metrics"].get("objective")})
    return {"seconds": round(time.perf_counter() - t0, 2), "trials": trials}


from ray.tune import Callback  # noqa: E402 (the benchmark needs Ray anyway)


class TrialStarts(Callback):
    """Driver-side wall time at which Tune started each trial (module level: Tune pickles callbacks)."""

    def __init__(self):
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, time.time())


def _point_key(params: dict) -> str:
    """One grid point's params as a key shared by the two arms."""
    return json.dumps(params, sort_keys=True)


def arm_sweep(space, root: Path, concurrency: int, loop_first_step: dict[str, float],
              workers_per_trial: int | None = None) -> dict:
    """(b): `run_sweep` on embedded Ray with MLflow in SQLite; timed around the whole call. ``workers_per_trial``
    0 is Train's local mode (the loop in the Tune trial's process); None keeps the space's value."""
    import copy

    import ray

    from orchestrator.sweep import run_sweep
    from orchestrator.trainable import trial_params

    space = copy.deepcopy(space)
    space.name = f"bench_sweep_c{concurrency}"
    space.resources.max_concurrent_trials = concurrency
    space.resources.cpus_per_worker = 2.0 / concurrency
    if workers_per_trial is not None:
        space.resources.workers_per_trial = workers_per_trial
    callback = TrialStarts()
    t0 = time.perf_counter()
    results = run_sweep(space, tracking_uri=f"sqlite:///{root}/mlruns-c{concurrency}.db",
                        storage_path=str(root / f"ray_results-c{concurrency}"), baselines=False, num_cpus=2,
                        callbacks=[callback])
    seconds = time.perf_counter() - t0
    ray.shutdown()
    trials = []
    for r in results:
        m = r.metrics or {}
        trial_id = m.get("trial_id")
        started = callback.started.get(trial_id)
        first = m.get("timing.first_step_at")
        params = dict(r.config or {})
        start_to_first = round(first - started, 2) if first and started else None
        own = loop_first_step.get(_point_key(trial_params(params)))
        trials.append({
            "trial_id": trial_id, "params": params,
            "error": str(r.error)[:300] if r.error else None,
            "seconds": round(m.get("time_total_s", float("nan")), 2),
            "start_to_first_step_s": start_to_first,
            "loop_first_step_s": own,
            "overhead_s": round(start_to_first - own, 2) if start_to_first is not None and own is not None else None,
            "tune_fn_to_worker_s": m.get("timing.worker_start_s"),
            "tune_fn_to_first_step_s": m.get("timing.first_step_s"),
            "prepare_s": m.get("timing.prepare_s"),
            "shared_resources": m.get("timing.shared_resources"),
            "objective": m.get("objective"),
        })
    return {"concurrency": concurrency, "cpus_per_worker": space.resources.cpus_per_worker,
            "workers_per_trial": space.resources.workers_per_trial,
            "seconds": round(seconds, 2), "errors": results.num_errors, "trials": trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help=f"N (at most {len(ANCHOR_COUNTS)})")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap on optimizer steps per trial (default: one epoch, 19 steps)")
    parser.add_argument("--train-per-class", type=int, default=100, help="English train verses per class")
    parser.add_argument("--concurrency", default="1,2", help="arm (b) runs, comma-separated")
    parser.add_argument("--workers-per-trial", type=int, default=None,
                        help="Ray Train workers per trial in arm (b); 0 = Train's local mode (the loop runs in the "
                             "Tune trial's process); default: the quickstart space's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    t_import = time.perf_counter()
    from mosecrot.prepare import prepare
    from orchestrator.search_space import grid_points, load_search_space
    from orchestrator.trainable import base_experiment

    import_s = time.perf_counter() - t_import
    root = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    try:
        warm = root / "cache-warm"
        os.environ["MOSECROT_CACHE_DIR"] = str(warm)
        space = load_search_space("quickstart", bench_overrides(args.trials, args.max_steps, args.train_per_class))
        points = grid_points(space)
        t = time.perf_counter()
        prepare(base_experiment(space), progress=False)  # once per sweep: splits, static vectors
        prepare_s = time.perf_counter() - t

        _fresh_cache(warm, root, "loop")
        loop = arm_loop(space, points)
        print(f"(a) plain loop: {loop['seconds']:.1f} s", flush=True)
        sweeps = []
        own = {_point_key(t["params"]): t["first_step_s"] for t in loop["trials"]}
        for c in [int(x) for x in args.concurrency.split(",") if x]:
            _fresh_cache(warm, root, f"sweep{c}")
            sweeps.append(arm_sweep(space, root, c, own, args.workers_per_trial))
            print(f"(b) sweep, {c} concurrent: {sweeps[-1]['seconds']:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    overheads = [t["overhead_s"] for s in sweeps for t in s["trials"] if t["overhead_s"] is not None]
    starts = [t["start_to_first_step_s"] for s in sweeps for t in s["trials"] if t["start_to_first_step_s"] is not None]
    out = {
        "benchmark": "bench_sweep",
        "trials": len(points), "params": points,
        "size": {"max_steps": args.max_steps, "epochs": space.base["training"]["epochs"],
                 "batch_size": space.base["training"].get("batch_size"),
                 "max_length": space.base["training"]["max_length"],
                 "train_per_class": args.train_per_class, "languages": ["de"]},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "import_s": round(import_s, 2), "prepare_once_s": round(prepare_s, 2),
        "loop": loop, "sweeps": sweeps,
        "ratios": {f"sweep_c{s['concurrency']}_over_loop": round(s["seconds"] / loop["seconds"], 3) for s in sweeps},
        "overhead_s": {"median": round(statistics.median(overheads), 2) if overheads else None,
                       "max": max(overheads) if overheads else None},
        "start_to_first_step_s": {"median": round(statistics.median(starts), 2) if starts else None,
                                  "max": max(starts) if starts else None},
        "loop_first_step_s": {"median": statistics.median([t["first_step_s"] for t in loop["trials"]])},
        "goals": GOALS,
    }
    ratios = out["ratios"]
    out["goals_met"] = {
        "ratio_1": ratios.get("sweep_c1_over_loop", float("inf")) <= GOALS["ratio_1"],
        "ratio_2": ratios.get("sweep_c2_over_loop", float("inf")) <= GOALS["ratio_2"],
        "overhead_s": bool(overheads) and max(overheads) <= GOALS["overhead_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("ratios", "overhead_s", "start_to_first_step_s", "loop_first_step_s", "goals_met")}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
