"""Sweep specs (``search_spaces/*.yaml``), one concept a module:

- `schema`: what a spec may say (`SearchSpace` and its sections);
- `loading`: `load_search_space` reads, overrides and validates a spec before any data or Ray;
- `trials`: active parameters, the grid, a trial's configs, objective and report values;
- `optuna_bridge`: the define-by-run function and the sampler for Optuna.

The schema is documented in ``search_spaces/README.md``.
"""

from orchestrator.search_space.loading import (
    SPACES_DIR,
    baseline_methods,
    load_search_space,
    search_space_path,
    space_names,
)
from orchestrator.search_space.optuna_bridge import DefineByRun, define_by_run, optuna_sampler
from orchestrator.search_space.schema import (
    ObjectiveConfig,
    Param,
    ResourcesConfig,
    SchedulerConfig,
    SearcherConfig,
    SearchSpace,
)
from orchestrator.search_space.trials import (
    grid_points,
    objective_keys,
    objective_value,
    report_keys,
    report_value,
    trial_configs,
)

__all__ = [
    "SPACES_DIR",
    "DefineByRun",
    "ObjectiveConfig",
    "Param",
    "ResourcesConfig",
    "SchedulerConfig",
    "SearchSpace",
    "SearcherConfig",
    "baseline_methods",
    "define_by_run",
    "grid_points",
    "load_search_space",
    "objective_keys",
    "objective_value",
    "optuna_sampler",
    "report_keys",
    "report_value",
    "search_space_path",
    "space_names",
    "trial_configs",
]
