"""Use the project's trainable with `tune.Tuner` directly (what `run_sweep` does, minus MLflow and resume).

    python examples/tune_tuner.py                       # quickstart, embedded Ray, ./ray_results/example-tuner
    python examples/tune_tuner.py num_trials=2 fixed.training.max_steps=4   # any search-space overrides

Each trial is a Tune function that builds and fits a Ray Train `TorchTrainer` (Train V2: a trainer is
never passed to the Tuner itself); Optuna samples the space's define-by-run parameters (conditional
tau/k/threshold included). Results are Tune's: `ResultGrid`, metric "objective", per-language metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from orchestrator.ray_tune import make_trainable, worker_env
from orchestrator.search_space import define_by_run, load_search_space, optuna_sampler
from orchestrator.sweep import max_concurrent_trials, prepare_sweep
from orchestrator.trial import OBJECTIVE, REPORT_MEAN, trial_params


def main(overrides: list[str]) -> None:
    space = load_search_space("quickstart", overrides)
    storage = str(Path("ray_results").resolve())
    prepare_sweep(space, progress=True)  # once: every trial loads vectors/anchors from the cache
    ray.init(runtime_env={"env_vars": worker_env()})  # embedded Ray; pass address="auto" for a cluster

    searcher = OptunaSearch(
        space=define_by_run(space), metric=OBJECTIVE, mode=space.objective.mode, sampler=optuna_sampler(space)
    )  # in-memory study
    tuner = tune.Tuner(
        make_trainable(space, storage),  # tune_trainable bound to the space, sized at 0 CPU
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode=space.objective.mode,
            search_alg=searcher,
            num_samples=space.num_trials,
            max_concurrent_trials=max_concurrent_trials(space, ray.cluster_resources()),
        ),
        run_config=tune.RunConfig(
            name="example-tuner", storage_path=storage, failure_config=tune.FailureConfig(max_failures=1)
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(f"best {OBJECTIVE} {best.metrics[OBJECTIVE]:.4f}  {REPORT_MEAN} {best.metrics.get(REPORT_MEAN)}")
    print("params:", trial_params(best.config))
    print(
        results.get_dataframe(filter_metric=OBJECTIVE, filter_mode=space.objective.mode)
        .filter(regex=r"^(objective|report_mean|test_macro_f1\.)")
        .to_string()
    )


if __name__ == "__main__":
    main(sys.argv[1:])
