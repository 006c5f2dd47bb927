"""The bridge to Optuna: the define-by-run function ``OptunaSearch(space=...)`` takes, and the sampler of
the space's searcher (the Tune side lives in `orchestrator.ray_tune`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, cast

import optuna

from mosecrot.errors import InputError
from orchestrator.search_space.schema import Param, SearchSpace
from orchestrator.search_space.trials import active, param_order


def suggest(trial: Any, key: str, p: Param) -> Any:
    if p.type == "categorical":
        assert p.choices is not None  # `Param.check`: categorical parameters have choices
        return trial.suggest_categorical(key, list(p.choices))
    assert p.low is not None and p.high is not None  # `Param.check`: int and float parameters have bounds
    if p.type == "int":
        return trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(key, float(p.low), float(p.high), step=p.step, log=p.log)


@dataclass
class DefineByRun:
    """``OptunaSearch(space=...)``'s define-by-run function; a class (not a closure) so that Tune can pickle
    the searcher for resume. Suggests active parameters in dependency order and returns None: the suggested
    values are the trial's whole config (Ray collects them from the suggest_* calls)."""

    space: SearchSpace

    def __call__(self, trial: optuna.trial.Trial) -> dict[str, Any] | None:
        params: dict[str, Any] = {}
        for key in param_order(self.space):
            param = self.space.space[key]
            if active(param, params):
                params[key] = suggest(trial, key, param)
        return None


def define_by_run(space: SearchSpace) -> DefineByRun:
    return DefineByRun(space)


def optuna_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The searcher's Optuna sampler. Grid only without conditional parameters (GridSampler takes a flat
    product); sweeps run grids through Tune's grid generator over `grid_points` instead (exact, no repeats)."""
    s = space.searcher
    if s.kind == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.kind == "grid":
        if any(p.when for p in space.space.values()):
            raise InputError(
                "Optuna's GridSampler cannot skip conditional parameters",
                path=space.file,
                key="searcher.kind",
                expected="grid_points(space) with Tune's grid generator",
            )
        return optuna.samplers.GridSampler(
            # Loading checked that a grid has the choices or values of every parameter.
            {
                k: list(cast(list[Any], v.choices if v.type == "categorical" else v.values))
                for k, v in space.space.items()
            },
            seed=s.seed,
        )
    kwargs: dict[str, Any] = {
        "seed": s.seed,
        "constant_liar": True if s.constant_liar is None else s.constant_liar,
        "multivariate": True,
    }
    if s.n_startup_trials is not None:
        kwargs["n_startup_trials"] = s.n_startup_trials
    if any(p.when for p in space.space.values()):
        kwargs["group"] = True  # multivariate TPE over each conditional subspace, not only the common one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(**kwargs)
    return optuna.samplers.TPESampler(**kwargs)
