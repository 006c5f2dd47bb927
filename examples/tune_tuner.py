"""Use the project's trainable with `tune.Tuner` directly (what `run_sweep` does, minus resume).

    python examples/tune_tuner.py                       # quickstart, embedded Ray, ./ray_results/example-tuner
    python examples/tune_tuner.py num_trials=2 fixed.training.max_steps=4   # any search-space overrides

Everything comes from one import, `orchestrator.api`. Each trial is a Tune function that builds and fits a Ray
Train `TorchTrainer` (Train V2: a trainer is never passed to the Tuner itself); Optuna samples the space's
define-by-run parameters (conditional tau/k/threshold included); the MLflow callback logs one child run per
trial. Results are Tune's: `ResultGrid`, metric "objective", per-language metrics.
"""

from __future__ import annotations

import sys

from ray import tune

from orchestrator.api import OBJECTIVE, REPORT_MEAN, trial_params, tune_kit


def main(overrides: list[str]) -> None:
    kit = tune_kit("quickstart", overrides, name="example-tuner", progress=True)  # address="auto": a cluster
    tuner = tune.Tuner(
        kit.trainable,  # tune_trainable bound to the space, sized at 0 CPU (its Train workers hold the CPUs)
        param_space=kit.param_space,  # {}: Optuna samples define-by-run
        tune_config=kit.tune_config(),  # metric, mode, searcher, scheduler, num_samples, concurrency
        run_config=kit.run_config(),  # name, storage, failure config, the MLflow callback
    )
    results = tuner.fit()
    kit.finish(results)
    best = results.get_best_result()
    print(f"best {OBJECTIVE} {best.metrics[OBJECTIVE]:.4f}  {REPORT_MEAN} {best.metrics.get(REPORT_MEAN)}")
    print("params:", trial_params(best.config))
    print(
        results.get_dataframe(filter_metric=OBJECTIVE, filter_mode=kit.mode)
        .filter(regex=r"^(objective|report_mean|test_macro_f1\.)")
        .to_string()
    )


if __name__ == "__main__":
    main(sys.argv[1:])
