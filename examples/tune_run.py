"""Use the project's trainable with the functional `tune.run` API (same trial, same metrics as `tune.Tuner`).

    python examples/tune_run.py                         # quickstart, embedded Ray, ./ray_results/example-tune-run
    python examples/tune_run.py num_trials=2 fixed.training.max_steps=4   # any search-space overrides

Everything comes from one import, `orchestrator.api`: `tune_kit` loads the space, prepares its data once, starts
Ray and returns the trainable (the project's Tune function, one Ray Train `TorchTrainer` per trial), the Optuna
searcher, the scheduler, the concurrency the machine allows and the MLflow callback (one child run per trial in
./mlruns.db, or $MLFLOW_TRACKING_URI); `kit.run_kwargs()` hands them to `tune.run`.
"""

from __future__ import annotations

import sys

from ray import tune

from orchestrator.api import OBJECTIVE, REPORT_MEAN, trial_params, tune_kit


def main(overrides: list[str]) -> None:
    kit = tune_kit("quickstart", overrides, name="example-tune-run", progress=True)
    analysis = tune.run(kit.trainable, **kit.run_kwargs())
    kit.finish(analysis)  # the MLflow parent run: FINISHED with the best objective
    best = analysis.get_best_trial(metric=OBJECTIVE, mode=kit.mode)
    print(f"best {OBJECTIVE} {best.last_result[OBJECTIVE]:.4f}  {REPORT_MEAN} {best.last_result.get(REPORT_MEAN)}")
    print("params:", trial_params(best.config))


if __name__ == "__main__":
    main(sys.argv[1:])
