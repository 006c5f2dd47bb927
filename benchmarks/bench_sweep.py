"""What a sweep costs over a plain loop: the same N short trials (the same params), run

  (a) in a plain Python loop, calling the #3 loop (`orchestrator.trainable.run_trial_locally`: the resources
      loaded once before the loop, as a sweep's driver does; per trial its anchors, the method's fine-tuning,
      swap, evaluation), and
  (b) through `orchestrator.sweep.run_sweep`, what ``mosecrot sweep`` runs (embedded Ray, Tune + Ray Train,
      MLflow in a new SQLite store), once with one concurrent trial and once with two,

on the same machine in one run. The trials are the points of a one-parameter grid (``anchors.count``) over
the quickstart space cut down to German: each is a quickstart trial (one epoch of 19 length-grouped batches of
32 verses, English dev and German test scored), the "short trial" the goals are about. N defaults to 6, the
quickstart sweep's number of trials.

Fairness:
* Each arm is a fresh Python process timed from spawn to exit, so each pays what its user pays: (a) its
  imports and loading the resources, (b) its imports, ``ray.init``, the MLflow store, the trial processes.
* Each arm starts from its own copy of one warm cache holding what a sweep prepares once (task splits, static
  vectors), so no arm inherits another's F_s/F_t or tokenisation cache entries.
* The machine's speed drifts (a shared VM: 10-30 % over minutes, measured), so the arms alternate: (a), the
  sweeps, (a), the sweeps again, ..., (a) (``--repeats`` rounds). Each sweep is divided by the mean of the two
  runs of (a) around it; the goals are checked on the median over the rounds, and every round is in the JSON.
* With one concurrent trial the trial gets both cores (``cpus_per_worker=2``, as the plain loop's torch has),
  with two concurrent trials one core each. `calibrate` measures what two one-thread processes can gain over
  one two-thread process on this machine at all (``best_c2_ratio``: the ratio two concurrent trials would
  reach with no overhead).

Per-trial overhead (goal <= 10 s): what the sweep adds to a trial's start. ``start_to_first_step_s`` is the wall
time from Tune starting the trial (a driver callback's ``on_trial_start``) to the trial's first optimizer step
(a torch optimizer hook in the Train worker, reported as ``timing.first_step_at``); ``timing.worker_start_s``
splits off the Train worker's start. The same trial in the plain loop also spends time before its first step
(its anchors, model, tokenisation): ``loop_first_step_s``. The fixed overhead is the difference,
``overhead_s = start_to_first_step_s - loop_first_step_s`` (same params); both are in the JSON, with the
sweep's fixed phases (``timing.sweep.*`` of its MLflow parent run).

Writes JSON (default benchmarks/results/bench_sweep.json). Goals: (b)/(a) <= 1.25 with one concurrent
trial, <= 0.8 with two.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
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


def arm_loop(space, points: list[dict]) -> dict:
    """(a): the plain loop, timed from the first trial's start to the last one's end."""
    from mosecrot.methods import needs_static
    from mosecrot.prepare import load_resources
    from orchestrator.trial import FirstStepClock, run_trial_locally

    trials = []
    t0 = time.perf_counter()
    # What a sweep's driver does once (from the warm cache), timed here as in arm (b): load the task
    # splits, vectors and dictionaries, and hand them to every trial.
    shared = load_resources(space.experiment_config(), progress=False, static=needs_static([space.tuned_method()]))
    for params in points:
        start = time.time()
        clock = FirstStepClock()
        try:
            payload = run_trial_locally(space, params, shared=shared)
        finally:
            clock.close()
        trials.append(
            {
                "params": params,
                "seconds": round(time.time() - start, 2),
                "first_step_s": round(clock.at - start, 2) if clock.at else None,
                "prepare_s": payload["metrics"].get("timing.prepare_s"),
                "train_examples_per_second": payload["metrics"].get("train_examples_per_second"),
                "objective": payload["metrics"].get("objective"),
            }
        )
    return {"seconds": round(time.perf_counter() - t0, 2), "trials": trials}


def trial_starts_callback():
    """A Tune callback noting the driver-side wall time at which Tune started each trial. Built on first use,
    so that arm (a)'s process never imports Ray; kept as the module global ``TrialStarts`` (Tune pickles its
    callbacks, and pickle finds classes by module and name)."""
    cls = globals().get("TrialStarts")
    if cls is None:
        from ray.tune import Callback

        class TrialStarts(Callback):
            def __init__(self):
                self.started: dict[str, float] = {}

            def on_trial_start(self, iteration, trials, trial, **info):
                self.started.setdefault(trial.trial_id, time.time())

        TrialStarts.__qualname__ = "TrialStarts"
        globals()["TrialStarts"] = cls = TrialStarts
    return cls()


def _point_key(params: dict) -> str:
    """One grid point's params as a key shared by the two arms."""
    return json.dumps(params, sort_keys=True)


def sweep_phases(uri: str, name: str) -> dict[str, float]:
    """The sweep's fixed phases (``timing.sweep.*``: MLflow start, ray.init, prepare, Tune) from its parent run."""
    from mlflow import MlflowClient

    from orchestrator.tracking import KIND_TAG

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], f"tags.`{KIND_TAG}` = 'sweep'") if exp else []
    return {
        k.removeprefix("timing.sweep."): v
        for k, v in (runs[0].data.metrics if runs else {}).items()
        if k.startswith("timing.sweep.")
    }


def arm_sweep(
    space, root: Path, concurrency: int, workers_per_trial: int | None = None, dashboard: bool = False
) -> dict:
    """(b): `run_sweep` on embedded Ray with MLflow in SQLite; timed around the whole call. ``workers_per_trial``
    0 is Train's local mode (the loop in the Tune trial's process); None keeps the space's value."""
    import copy

    import ray

    from orchestrator.sweep import run_sweep
    from orchestrator.trial import trial_params

    space = copy.deepcopy(space)
    space.name = f"bench_sweep_c{concurrency}"
    space.resources.max_concurrent_trials = concurrency
    space.resources.cpus_per_worker = 2.0 / concurrency
    if workers_per_trial is not None:
        space.resources.workers_per_trial = workers_per_trial
    callback = trial_starts_callback()
    t0 = time.perf_counter()
    uri = f"sqlite:///{root}/mlruns-c{concurrency}.db"
    results = run_sweep(
        space,
        tracking_uri=uri,
        storage_path=str(root / f"ray_results-c{concurrency}"),
        baselines=False,
        num_cpus=2,
        callbacks=[callback],
        dashboard=dashboard,
    )
    seconds = time.perf_counter() - t0
    driver_cpu_s = resource.getrusage(resource.RUSAGE_SELF)
    t_shutdown = time.perf_counter()
    ray.shutdown()
    shutdown_s = time.perf_counter() - t_shutdown
    trials = []
    for r in results:
        m = r.metrics or {}
        trial_id = m.get("trial_id")
        started = callback.started.get(trial_id)
        first = m.get("timing.first_step_at")
        params = dict(r.config or {})
        start_to_first = round(first - started, 2) if first and started else None
        trials.append(
            {
                "trial_id": trial_id,
                "params": params,
                "point": trial_params(params),
                "error": str(r.error)[:300] if r.error else None,
                "seconds": round(m.get("time_total_s", float("nan")), 2),
                "start_to_first_step_s": start_to_first,
                "tune_fn_to_worker_s": m.get("timing.worker_start_s"),
                "tune_fn_to_first_step_s": m.get("timing.first_step_s"),
                "prepare_s": m.get("timing.prepare_s"),
                "shared_resources": m.get("timing.shared_resources"),
                "objective": m.get("objective"),
                "train_examples_per_second": m.get("train_examples_per_second"),
                "cpu_percent": m.get("system.cpu_percent"),
            }
        )
    phases = sweep_phases(uri, space.name)
    return {
        "concurrency": concurrency,
        "dashboard": dashboard,
        "phases": phases,
        "cpus_per_worker": space.resources.cpus_per_worker,
        "workers_per_trial": space.resources.workers_per_trial,
        "seconds": round(seconds, 2),
        "errors": results.num_errors,
        "trials": trials,
        # where the process's time outside the trials goes: the driver's own CPU (Tune's event loop,
        # callbacks, MLflow, imports) competes with the trials for the 2 cores; ray.shutdown is paid at exit
        "driver_cpu_s": round(driver_cpu_s.ru_utime + driver_cpu_s.ru_stime, 2),
        "ray_shutdown_s": round(shutdown_s, 2),
    }


CALIBRATION = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
if sys.argv[3] == "minilm":  # the trials' own model: a fine-tuning step of MiniLM-L6 (batch 32, length 64)
    from transformers import AutoModelForSequenceClassification
    from mosecrot.plm import resolve_model
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model("minilm"), num_labels=6)
    x, y = torch.randint(1000, 20000, (32, 64)), torch.randint(0, 6, (32,))
    loss = lambda: model(input_ids=x, labels=y).loss
else:  # a generic small Transformer
    model = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(384, 6, 1536, batch_first=True), 4)
    x = torch.randn(32, 64, 384)
    loss = lambda: model(x).sum()
opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
for _ in range(2):
    loss().backward(); opt.step(); opt.zero_grad()
t, n = time.perf_counter(), 0
while time.perf_counter() - t < float(sys.argv[2]):
    loss().backward(); opt.step(); opt.zero_grad(); n += 1
print(n / (time.perf_counter() - t))
"""


def calibrate(seconds: float = 15.0) -> dict:
    """What two concurrent one-thread trials can gain over one two-thread trial on this machine, whatever the
    sweep does: fine-tuning steps per second, one process with 2 torch threads against two processes with 1
    thread each at once, for a generic small Transformer and for the trials' own model (MiniLM-L6, whose
    embedding matrix makes part of each step memory-bound: two processes share the memory bandwidth).
    ``best_c2_ratio`` = 1 / that gain is the lowest (b)/(a) two concurrent trials could reach with no
    overhead at all (the 0.8 goal assumes a gain of 1.25 or more)."""

    def run(threads: int, procs: int, model: str) -> float:
        started = [
            subprocess.Popen(
                [sys.executable, "-c", CALIBRATION, str(threads), str(seconds), model],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
                env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            )
            for _ in range(procs)
        ]
        return sum(float(p.communicate()[0]) for p in started)

    out = {}
    for model in ("transformer", "minilm"):
        one, two = run(2, 1, model), run(1, 2, model)
        out[model] = {
            "steps_per_s_1x2_threads": round(one, 3),
            "steps_per_s_2x1_thread": round(two, 3),
            "c2_gain": round(two / one, 3),
            "best_c2_ratio": round(one / two, 3),
        }
    return out


def run_arm(arm: str, args, root: Path, warm: Path, concurrency: str = "", tag: str = "") -> dict:
    """One arm in a fresh Python process from its own copy of the warm cache, timed from spawn to exit: each arm
    pays its own interpreter start and imports (torch, transformers, and for (b) Ray, MLflow, Optuna), as a
    user's plain script and ``mosecrot sweep`` do."""
    name = f"{arm}{concurrency or ''}{tag}"
    cache = root / f"cache-{name}"
    shutil.copytree(warm, cache)
    (root / name).mkdir()
    out = root / f"{name}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--arm",
        arm,
        "--arm-out",
        str(out),
        "--trials",
        str(args.trials),
        "--train-per-class",
        str(args.train_per_class),
        "--concurrency",
        str(concurrency),
        "--root",
        str(root / name),
    ]  # its own MLflow store, Tune dir
    if args.max_steps is not None:
        cmd += ["--max-steps", str(args.max_steps)]
    if args.workers_per_trial is not None:
        cmd += ["--workers-per-trial", str(args.workers_per_trial)]
    env = {**os.environ, "MOSECROT_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"arm {name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result["process_seconds"] = round(seconds, 2)
    return result


def child(args) -> None:
    """``--arm loop|sweep``: run one arm in this (fresh) process and write its JSON to ``--arm-out``."""
    t0 = time.perf_counter()
    from orchestrator.search_space import grid_points, load_search_space

    space = load_search_space("quickstart", bench_overrides(args.trials, args.max_steps, args.train_per_class))
    loaded_s = time.perf_counter() - t0
    if args.arm == "loop":
        result = arm_loop(space, grid_points(space))
    else:
        variant = str(args.concurrency)
        result = arm_sweep(
            space, Path(args.root), int(variant.rstrip("d")), args.workers_per_trial, dashboard=variant.endswith("d")
        )
    result["space_loaded_s"] = round(loaded_s, 2)  # this process's imports and the search space's validation
    Path(args.arm_out).write_text(json.dumps(result, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials",
        type=int,
        default=6,
        help=f"N (at most {len(ANCHOR_COUNTS)}; default 6, the quickstart sweep's trial count)",
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="cap on optimizer steps per trial (default: one epoch, 19 steps)"
    )
    parser.add_argument("--train-per-class", type=int, default=100, help="English train verses per class")
    parser.add_argument(
        "--concurrency",
        default="1,2",
        help="arm (b) runs, comma-separated; a 'd' suffix (1d) starts Ray's dashboard, as "
        "'mosecrot sweep --dashboard' does (default off)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="rounds of arm (b); (a) runs before the first and after every round (default 2)",
    )
    parser.add_argument(
        "--workers-per-trial",
        type=int,
        default=None,
        help="Ray Train workers per trial in arm (b); 0 = Train's local mode (the loop runs in the "
        "Tune trial's process); default: the quickstart space's",
    )
    parser.add_argument("--no-calibration", action="store_true", help="skip the machine's 2x1 vs 1x2 calibration")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--arm", choices=["loop", "sweep"], help=argparse.SUPPRESS)  # internal: one arm
    parser.add_argument("--arm-out", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.arm:
        child(args)
        return

    from orchestrator.search_space import grid_points, load_search_space
    from orchestrator.sweep import prepare_sweep

    root = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    concurrencies = [x.strip() for x in args.concurrency.split(",") if x.strip()]
    try:
        warm = root / "cache-warm"
        os.environ["MOSECROT_CACHE_DIR"] = str(warm)
        space = load_search_space("quickstart", bench_overrides(args.trials, args.max_steps, args.train_per_class))
        points = grid_points(space)
        t = time.perf_counter()
        prepare_sweep(space)  # once per sweep: splits, static vectors
        prepare_s = time.perf_counter() - t
        calibration = None if args.no_calibration else calibrate()
        # The machine's speed drifts by 10-30 % over minutes (a shared VM). The arms alternate, (a) before and
        # after every round of sweeps: loop, sweeps, loop, sweeps, ..., loop. Each sweep is divided by the mean
        # of the two loops around it, so a drift favours neither arm, and the rounds show the spread.
        loops = [run_arm("loop", args, root, warm, tag="-0")]
        print(f"(a) plain loop: {loops[0]['process_seconds']:.1f} s", flush=True)
        sweeps = []
        for r in range(1, args.repeats + 1):
            for c in concurrencies:
                sweeps.append(run_arm("sweep", args, root, warm, concurrency=c, tag=f"-{r}"))
                sweeps[-1]["round"] = r
                sweeps[-1]["variant"] = c
                print(f"(b) round {r}, sweep, {c} concurrent: {sweeps[-1]['process_seconds']:.1f} s", flush=True)
            loops.append(run_arm("loop", args, root, warm, tag=f"-{r}"))
            print(f"(a) plain loop: {loops[-1]['process_seconds']:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    loop_s = statistics.fmean(loop["process_seconds"] for loop in loops)
    for sweep in sweeps:
        around = (loops[sweep["round"] - 1]["process_seconds"] + loops[sweep["round"]]["process_seconds"]) / 2
        sweep["loop_seconds_around"] = round(around, 2)
        sweep["ratio"] = round(sweep["process_seconds"] / around, 3)
    own = {
        _point_key(t["params"]): statistics.fmean(loop["trials"][i]["first_step_s"] for loop in loops)
        for i, t in enumerate(loops[0]["trials"])
    }
    for sweep in sweeps:
        for t in sweep["trials"]:
            first = own.get(_point_key(t["point"]))
            t["loop_first_step_s"] = round(first, 2) if first is not None else None
            t["overhead_s"] = (
                round(t["start_to_first_step_s"] - first, 2)
                if t["start_to_first_step_s"] is not None and first is not None
                else None
            )
    overheads = [t["overhead_s"] for s in sweeps for t in s["trials"] if t["overhead_s"] is not None]
    starts = [t["start_to_first_step_s"] for s in sweeps for t in s["trials"] if t["start_to_first_step_s"] is not None]
    out = {
        "benchmark": "bench_sweep",
        "trials": len(points),
        "params": points,
        "size": {
            "max_steps": args.max_steps,
            "epochs": space.base["training"]["epochs"],
            "batch_size": space.base["training"].get("batch_size"),
            "max_length": space.base["training"]["max_length"],
            "train_per_class": args.train_per_class,
            "languages": ["de"],
        },
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "calibration": calibration,
        "prepare_once_s": round(prepare_s, 2),
        "timing": "each arm is a fresh process timed from spawn to exit (process_seconds); the arms alternate "
        "(loop, sweeps, loop, ...) and each sweep is divided by the mean of the loops before and after it",
        "repeats": args.repeats,
        "loop_seconds": round(loop_s, 2),
        "loops": loops,
        "sweeps": sweeps,
        # per concurrency: the median over the rounds (what the goals are checked on) and every round's ratio
        "ratios": {
            f"sweep_c{c}_over_loop": round(statistics.median(s["ratio"] for s in sweeps if s["variant"] == c), 3)
            for c in concurrencies
        },
        "ratios_per_round": {
            f"sweep_c{c}_over_loop": [s["ratio"] for s in sweeps if s["variant"] == c] for c in concurrencies
        },
        "loop_seconds_per_round": [loop["process_seconds"] for loop in loops],
        "overhead_s": {
            "median": round(statistics.median(overheads), 2) if overheads else None,
            "max": max(overheads) if overheads else None,
        },
        "start_to_first_step_s": {
            "median": round(statistics.median(starts), 2) if starts else None,
            "max": max(starts) if starts else None,
        },
        "loop_first_step_s": {"median": round(statistics.median(own.values()), 2) if own else None},
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
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "ratios",
                    "ratios_per_round",
                    "loop_seconds_per_round",
                    "loop_seconds",
                    "calibration",
                    "overhead_s",
                    "start_to_first_step_s",
                    "loop_first_step_s",
                    "goals_met",
                )
            },
            indent=1,
        )
    )
    for s in sweeps:
        print(f"(b) round {s['round']} c{s['variant']} phases: {s.get('phases')}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
