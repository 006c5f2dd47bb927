"""Use the project's trainable with the functional `tune.run` API (same trial, same metrics as `tune.Tuner`).

    python examples/tune_run.py                         # quickstart, embedded Ray
    python examples/tune_run.py num_trials=2 fixed.training.max_steps=4

`tune.run` takes the searcher, scheduler and resources as arguments; the trainable is the project's Tune
function (`orchestrator.ray_tune.tune_trainable`), which fits one Ray Train `TorchTrainer` per trial.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator.ray_tune import make_scheduler, make_trainable, worker_env
from orchestrator.search_space import define_by_run, load_search_space, optuna_sampler
from orchestrator.sweep import max_concurrent_trials, prepare_sweep
from orchestrator.trial import OBJECTIVE, REPORT_MEAN, trial_params


def main(overrides: list[str]) -> None:
    space = load_search_space("quickstart", overrides)
    storage = str(Path("ray_results").resolve())
    prepare_sweep(space, progress=True)  # warm the cache once, before any trial
    ray.init(runtime_env={"env_vars": worker_env()})

    analysis = tune.run(
        make_trainable(space, storage),
        name="example-tune-run",
        storage_path=storage,
        metric=OBJECTIVE,
        mode=space.objective.mode,
        search_alg=OptunaSearch(
            space=define_by_run(space), metric=OBJECTIVE, mode=space.objective.mode, sampler=optuna_sampler(space)
        ),
        scheduler=make_scheduler(space),  # None, or ASHA when the space asks for it
        num_samples=space.num_trials,
        max_concurrent_trials=max_concurrent_trials(space, ray.cluster_resources()),
        max_failures=1,
        raise_on_failed_trial=False,
    )
    best = analysis.best_trial
    print(f"best {OBJECTIVE} {best.last_result[OBJECTIVE]:.4f}  {REPORT_MEAN} {best.last_result.get(REPORT_MEAN)}")
    print("params:", trial_params(best.config))


if __name__ == "__main__":
    main(sys.argv[1:])
