"""From a loaded space to trials: which parameters are active, the grid, a trial's configs, and the
objective and report values of its metrics. No Ray, no Optuna: the Optuna bridge and the Tune trainable
call these.
"""

from __future__ import annotations

from typing import Any

from mosecrot.config import ExperimentConfig
from mosecrot.configschema import apply_settings, from_dict, interpolate
from mosecrot.errors import InputError
from mosecrot.methods import MethodConfig
from mosecrot.metrics import mean_of, metric_keys
from orchestrator.search_space.schema import Param, SearchSpace, same


def active(param: Param, params: dict[str, Any]) -> bool:
    return all(
        parent in params and any(same(params[parent], v) for v in values) for parent, values in param.when.items()
    )


def param_order(space: SearchSpace) -> list[str]:
    """Parameter keys with every `when` parent before its children (file order otherwise)."""
    for key, param in space.space.items():
        for parent, values in param.when.items():
            at = f"space.{key}.when.{parent}"
            if parent == key or parent not in space.space:
                raise InputError(
                    f"{key} is conditional on {parent!r}, which is not another parameter of the space",
                    key=at,
                    expected="one of: " + ", ".join(k for k in space.space if k != key),
                )
            other = space.space[parent]
            if other.type != "categorical":
                raise InputError(
                    f"{key} is conditional on {parent}, which is {other.type}, not categorical",
                    key=at,
                    expected="a categorical parameter",
                )
            if not isinstance(values, list) or not values:
                raise InputError("empty condition", key=at, expected="a non-empty list of its choices")
            for i, v in enumerate(values):
                if not any(same(v, c) for c in other.choices or []):
                    raise InputError(
                        f"{v!r} is not a choice of {parent}",
                        key=f"{at}[{i}]",
                        expected="one of: " + ", ".join(map(str, other.choices or [])),
                    )
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(key: str, path: list[str]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            cycle = path[path.index(key) :] + [key]
            raise InputError("conditions form a cycle: " + " -> ".join(cycle), key=f"space.{key}.when")
        state[key] = "visiting"
        for parent in space.space[key].when:
            visit(parent, path + [key])
        state[key] = "done"
        order.append(key)

    for key in space.space:
        visit(key, [])
    return order


def build(space: SearchSpace, params: dict[str, Any]) -> tuple[ExperimentConfig, MethodConfig]:
    """The experiment (base + fixed + ``params``, ``methods = [method]``) and the tuned method, from dotted
    params: ``method.X`` sets option X of the tuned method, any other key a field of the experiment."""
    exp_data, method_data = space.base, space.method_data()
    for key, value in params.items():
        value = interpolate(value)
        if key.startswith("method."):
            method_data = apply_settings(method_data, {key[len("method.") :]: value})
        else:
            exp_data = apply_settings(exp_data, {key: value})
    method = from_dict(MethodConfig, method_data, prefix="method")
    exp = from_dict(ExperimentConfig, exp_data)
    exp.methods = [method]
    return exp, method


def covers(key: str, err_key: str | None) -> bool:
    """Whether an error at ``err_key`` is about the value set at ``key``."""
    if not err_key:
        return False
    return err_key == key or err_key.startswith((key + ".", key + "[")) or key.startswith(err_key + ".")


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every grid point; a conditional parameter branches only where it is active, so no point repeats."""
    points: list[dict[str, Any]] = [{}]
    for key in param_order(space):
        param = space.space[key]
        values = param.choices if param.type == "categorical" else param.values
        if values is None:
            raise InputError(
                f"the grid needs the values of {key}",
                path=space.file,
                key=f"space.{key}.values",
                expected="categorical choices, or an explicit values: list",
            )
        points = [new for pt in points for new in ([{**pt, key: v} for v in values] if active(param, pt) else [pt])]
    return points


def trial_configs(space: SearchSpace, params: dict[str, Any]) -> tuple[ExperimentConfig, MethodConfig]:
    """The trial's experiment (base + fixed + params, ``methods = [method]``) and tuned method, validated.

    ``params`` is what Tune hands the trial: exactly the active parameters, by dotted key."""
    for key in params:
        if key not in space.space:
            raise InputError(
                f"{key!r} is not a parameter of this space",
                path=space.file,
                key=f"space.{key}",
                expected="one of: " + ", ".join(space.space),
            )
    for key in param_order(space):
        param = space.space[key]
        is_active = active(param, params)
        if is_active and key not in params:
            raise InputError(f"active parameter {key} has no value", path=space.file, key=f"space.{key}")
        if not is_active and key in params:
            raise InputError(
                f"{key} is inactive here (when: {param.when}) but has a value", path=space.file, key=f"space.{key}"
            )
        if is_active and not in_domain(param, params[key]):
            raise InputError(
                f"{key} = {params[key]!r} is outside the parameter's domain", path=space.file, key=f"space.{key}"
            )
    try:
        return build(space, params)
    except InputError as err:
        owner = next((k for k in params if covers(k, err.key)), None)
        raise InputError(
            f"{err.message} (parameters: {params})",
            path=space.file,
            key=f"space.{owner}" if owner else err.key,
            expected=err.expected,
        ) from None


def in_domain(param: Param, value: Any) -> bool:
    if param.type == "categorical":
        return any(same(value, c) for c in param.choices or [])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if param.type == "int" and not isinstance(value, int):
        return False
    if param.values is not None and not any(same(value, v) for v in param.values):
        return False
    assert param.low is not None and param.high is not None  # `Param.check`: int and float parameters have bounds
    return param.low <= value <= param.high


def objective_keys(space: SearchSpace) -> list[str]:
    """The metric keys the objective averages, e.g. ``dev_macro_f1.en``."""
    obj = space.objective
    return metric_keys(obj.split, obj.metric, obj.languages or [])


def report_keys(space: SearchSpace) -> list[str]:
    """The metric keys the report averages: test scores of the report languages."""
    return metric_keys("test", space.objective.metric, space.report_languages or [])


def objective_value(space: SearchSpace, metrics: dict[str, float]) -> float:
    """Mean of ``{split}_{metric}.{lang}`` over the objective languages (what the searcher optimises)."""
    return mean_of(metrics, objective_keys(space), "objective")


def report_value(space: SearchSpace, metrics: dict[str, float]) -> float:
    """Mean of ``test_{metric}.{lang}`` over the report languages (what the sweep reports, never selects on)."""
    return mean_of(metrics, report_keys(space), "report")
