"""The schema of ``search_spaces/*.yaml``: what a sweep spec may say (documented in
``search_spaces/README.md``). Each section checks its own values; `mosecrot`'s `configschema` reads them
from YAML, and `orchestrator.search_space.loading` checks what needs more than one section.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from mosecrot.config import ExperimentConfig
from mosecrot.errors import InputError, unknown_choice
from mosecrot.methods import MethodConfig

PARAM_TYPES = ("categorical", "int", "float")
SEARCHERS = ("optuna-tpe", "random", "grid")
SCHEDULERS = ("none", "asha")
PROTOCOLS = ("english-dev", "selection-languages-dev")
METRICS = ("macro_f1", "accuracy")
BUILTIN_RESOURCES = {"CPU": "cpus_per_worker", "GPU": "gpus_per_worker"}  # set by their own keys, not worker_resources
_SCALARS = (type(None), bool, int, float, str)  # what Optuna's categorical distribution accepts


def same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (Optuna hands back the choice objects themselves)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


@dataclass
class Param:
    """One searched parameter (the key in ``space`` is the dotted config path it sets)."""

    type: str
    choices: list[Any] | None = None  # categorical
    low: int | float | None = None  # int / float
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    values: list[int | float] | None = None  # int / float under the grid searcher: the grid's values
    when: dict[str, list[Any]] = field(default_factory=dict)  # parent parameter -> values that activate this one

    def check(self, key: str) -> None:
        def at(name: str) -> str:
            return f"{key}.{name}"

        if self.type not in PARAM_TYPES:
            raise unknown_choice("parameter type", self.type, PARAM_TYPES, key=at("type"))
        if self.type == "categorical":
            if not self.choices:
                raise InputError(
                    "a categorical parameter needs choices", key=at("choices"), expected="a non-empty list"
                )
            for i, choice in enumerate(self.choices):
                if not isinstance(choice, _SCALARS):
                    raise InputError(
                        f"bad choice {choice!r}",
                        key=f"{at('choices')}[{i}]",
                        expected="null, a bool, a number or a string",
                    )
                if any(same(choice, c) for c in self.choices[:i]):
                    raise InputError(f"duplicate choice {choice!r}", key=f"{at('choices')}[{i}]")
            for name in ("low", "high", "step", "values"):
                if getattr(self, name) is not None:
                    raise InputError(f"{name} is for int and float parameters", key=at(name), expected="choices only")
            if self.log:
                raise InputError("log is for int and float parameters", key=at("log"))
            return
        if self.choices is not None:
            raise InputError(
                "choices is for categorical parameters",
                key=at("choices"),
                expected="low and high (and values under the grid searcher)",
            )
        for name in ("low", "high"):
            bound = getattr(self, name)
            if bound is None:
                raise InputError(f"an {self.type} parameter needs {name}", key=at(name), expected="a number")
            if self.type == "int" and not isinstance(bound, int):
                raise InputError(f"{bound!r} is not an integer", key=at(name), expected="an integer")
            if not math.isfinite(bound):
                raise InputError(f"{bound!r} is not finite", key=at(name), expected="a finite number")
        assert self.low is not None and self.high is not None  # the loop above raised otherwise
        if not self.low < self.high:
            raise InputError(f"low ({self.low}) is not below high ({self.high})", key=at("low"), expected="low < high")
        if self.log and self.low <= 0:
            raise InputError(
                f"a log scale needs low > 0, got {self.low}", key=at("low"), expected="low > 0 with log: true"
            )
        if self.step is not None:
            if self.step <= 0 or (self.type == "int" and not isinstance(self.step, int)):
                raise InputError(f"bad step {self.step!r}", key=at("step"), expected=f"a positive {self.type}")
            if self.log and not (self.type == "int" and self.step == 1):  # Optuna refuses step with log
                raise InputError("step cannot be combined with log", key=at("step"), expected="step or log, not both")
        if self.values is not None:
            if not self.values:
                raise InputError("empty values", key=at("values"), expected="a non-empty list, or no values")
            for i, v in enumerate(self.values):
                if (self.type == "int" and not isinstance(v, int)) or not self.low <= v <= self.high:
                    raise InputError(
                        f"value {v!r} is outside the parameter",
                        key=f"{at('values')}[{i}]",
                        expected=f"an {self.type} in [{self.low}, {self.high}]",
                    )

    def representatives(self) -> list[tuple[str, Any]]:
        """(sub-key, value) pairs that loading builds a config from: every choice/value, and both bounds."""
        if self.type == "categorical":
            return [(f"choices[{i}]", c) for i, c in enumerate(self.choices or [])]
        assert self.low is not None and self.high is not None  # `check`: int and float parameters have bounds
        cast = int if self.type == "int" else float
        out = [("low", cast(self.low)), ("high", cast(self.high))]
        return out + [(f"values[{i}]", cast(v)) for i, v in enumerate(self.values or [])]


@dataclass
class SearcherConfig:
    kind: str = "optuna-tpe"  # optuna-tpe | random | grid
    seed: int | None = 0
    constant_liar: bool | None = None  # optuna-tpe only; null means true (parallel trials spread out)
    n_startup_trials: int | None = None  # optuna-tpe only: random trials first; null = Optuna's default (10)
    storage: str | None = None  # Optuna storage URL; null = the driver's SQLite file in the sweep directory
    study_name: str | None = None  # null = the sweep name

    def check(self, key: str = "searcher") -> None:
        if self.kind not in SEARCHERS:
            raise unknown_choice("searcher kind", self.kind, SEARCHERS, key=f"{key}.kind")
        if self.kind in ("optuna-tpe", "random") and self.seed is None:
            raise InputError(
                f"the {self.kind} searcher needs a seed (a sweep must be reproducible)",
                key=f"{key}.seed",
                expected="an integer",
            )
        if self.constant_liar is not None and self.kind != "optuna-tpe":
            raise InputError(
                f"constant_liar applies to optuna-tpe only, not {self.kind}",
                key=f"{key}.constant_liar",
                expected="no constant_liar, or kind optuna-tpe",
            )
        if self.n_startup_trials is not None:
            if self.kind != "optuna-tpe":
                raise InputError(
                    f"n_startup_trials applies to optuna-tpe only, not {self.kind}", key=f"{key}.n_startup_trials"
                )
            if self.n_startup_trials < 0:
                raise InputError("n_startup_trials is negative", key=f"{key}.n_startup_trials", expected=">= 0")


@dataclass
class SchedulerConfig:
    kind: str = "none"  # none | asha
    grace_period: int = 1  # asha: epochs every trial runs before it can be stopped
    reduction_factor: float = 2  # asha: 1 / fraction of trials promoted at each rung
    max_t: int | None = None  # asha: epochs of the longest trial; null = training.epochs (its high if searched)

    def check(self, key: str = "scheduler") -> None:
        if self.kind not in SCHEDULERS:
            raise unknown_choice("scheduler kind", self.kind, SCHEDULERS, key=f"{key}.kind")
        if self.grace_period < 1:
            raise InputError(
                f"grace_period {self.grace_period} is not positive", key=f"{key}.grace_period", expected=">= 1 epoch"
            )
        if self.reduction_factor < 2:
            raise InputError(
                f"reduction_factor {self.reduction_factor} would stop no trial",
                key=f"{key}.reduction_factor",
                expected=">= 2",
            )
        if self.max_t is not None and self.max_t < self.grace_period:
            raise InputError(
                f"max_t {self.max_t} is below grace_period {self.grace_period}",
                key=f"{key}.max_t",
                expected=f">= {self.grace_period}",
            )


@dataclass
class ObjectiveConfig:
    metric: str = "macro_f1"  # macro_f1 | accuracy
    split: str = "dev"  # dev only: selecting on test is not honest
    languages: list[str] | None = None  # english-dev: [source language] (the default)
    mode: Literal["max", "min"] = "max"
    protocol: str = "english-dev"  # english-dev | selection-languages-dev

    def check(self, key: str = "objective") -> None:
        if self.metric not in METRICS:
            raise unknown_choice("objective metric", self.metric, METRICS, key=f"{key}.metric")
        if self.split == "test":
            raise InputError(
                "selecting on the test split is not honest: test scores are what the sweep reports",
                key=f"{key}.split",
                expected="dev (English dev, or the dev sets of selection languages)",
            )
        if self.split != "dev":
            raise unknown_choice("objective split", self.split, ["dev"], key=f"{key}.split")
        if self.protocol not in PROTOCOLS:
            raise unknown_choice("selection protocol", self.protocol, PROTOCOLS, key=f"{key}.protocol")


@dataclass
class ResourcesConfig:
    # Ray Train workers (DDP ranks) per trial; 0 = local mode: the loop runs in the Tune trial's own process
    # (Ray Train local mode, no worker actor), which then holds the cpus/gpus "per worker" itself.
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0  # fractional values let trials share cores on a laptop
    gpus_per_worker: float = 0
    max_concurrent_trials: int | None = None  # null: the driver sizes it (cluster GPUs / GPUs per trial)
    # Custom Ray resources each Train worker (local mode: the trial) asks for besides its CPUs and GPUs, e.g.
    # {fake_gpu: 1} on the rehearsal cluster, {gpu_node: 0.01} to pin workers to a node type's marker resource.
    worker_resources: dict[str, float] = field(default_factory=dict)

    @property
    def local_mode(self) -> bool:
        """Ray Train local mode: no Train worker actor; the trial's process runs the loop as rank 0 of 1."""
        return self.workers_per_trial == 0

    @property
    def processes_per_trial(self) -> int:
        """Processes that hold the per-worker resources: the Train workers, or the trial itself in local mode."""
        return max(1, self.workers_per_trial)

    def check(self, key: str = "resources") -> None:
        if self.workers_per_trial < 0:
            raise InputError(
                f"workers_per_trial {self.workers_per_trial} is negative",
                key=f"{key}.workers_per_trial",
                expected=">= 1 Ray Train workers, or 0 for local mode (the loop in the trial's process)",
            )
        if not self.cpus_per_worker > 0:
            raise InputError(
                f"cpus_per_worker {self.cpus_per_worker} is not positive",
                key=f"{key}.cpus_per_worker",
                expected="> 0 (fractions allowed)",
            )
        if self.gpus_per_worker < 0:
            raise InputError(
                f"gpus_per_worker {self.gpus_per_worker} is negative", key=f"{key}.gpus_per_worker", expected=">= 0"
            )
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise InputError(
                f"max_concurrent_trials {self.max_concurrent_trials} is not positive",
                key=f"{key}.max_concurrent_trials",
                expected=">= 1 or null",
            )
        for name, amount in self.worker_resources.items():
            where = f"{key}.worker_resources.{name}"
            if not name.strip():
                raise InputError("empty resource name", key=f"{key}.worker_resources", expected="a resource name")
            if name in BUILTIN_RESOURCES:
                raise InputError(
                    f"{name} is not a custom resource",
                    key=where,
                    expected=f"{key}.{BUILTIN_RESOURCES[name]} for {name}; custom resource names here",
                )
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
                raise InputError(f"got {amount!r}", key=where, expected="a non-negative number")
            if amount < 0:
                raise InputError(f"{name} {amount:g} is negative", key=where, expected=">= 0 (fractions allowed)")


@dataclass
class SearchSpace:
    """A loaded, validated sweep spec. Build it with `load_search_space`, never by hand."""

    name: str  # MLflow experiment and (by default) Optuna study name
    experiment: str  # base experiment: a name under experiments/ or a YAML path
    fixed: dict[str, Any] = field(default_factory=dict)  # dotted overrides of the experiment
    method: dict[str, Any] = field(default_factory=dict)  # the tuned MethodConfig (kind mosecrot by default)
    space: dict[str, Param] = field(default_factory=dict)
    searcher: SearcherConfig = field(default_factory=SearcherConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    num_trials: int | None = None  # grid: null = the grid size
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    report_languages: list[str] | None = None  # null = target languages minus selection languages
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    baselines: list[Any] = field(default_factory=list)  # method kinds, or MethodConfig mappings
    # Resolved by load_search_space:
    file: str | None = field(default=None, init=False)
    experiment_file: str | None = field(default=None, init=False)
    base: dict = field(default_factory=dict, init=False, repr=False)  # experiment data with `fixed` applied
    # `base` validated (no method: the sweep's method is `method`) and the tuned method, validated
    base_config: ExperimentConfig | None = field(default=None, init=False, repr=False)
    method_config: MethodConfig | None = field(default=None, init=False, repr=False)

    def experiment_config(self) -> ExperimentConfig:
        """A copy of the sweep's experiment without any searched value (what the driver prepares once)."""
        assert self.base_config is not None, "load the space with load_search_space"
        return copy.deepcopy(self.base_config)

    @property
    def seeds(self) -> list[int]:
        """The seeds every trial runs (the experiment's, after ``fixed``)."""
        assert self.base_config is not None, "load the space with load_search_space"
        return list(self.base_config.seeds)

    def tuned_method(self) -> MethodConfig:
        assert self.method_config is not None, "load the space with load_search_space"
        return self.method_config

    def method_data(self) -> dict:
        data = dict(self.method)
        data.setdefault("kind", "mosecrot")
        data.setdefault("name", data["kind"])
        return data
