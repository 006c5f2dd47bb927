"""orchestrator: Ray Train/Tune, Optuna, MLflow, the CLI and reporting, on top of `mosecrot`."""
