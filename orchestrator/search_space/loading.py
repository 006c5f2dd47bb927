"""Loading a sweep spec: read, override (``--set``), and check everything that can be checked without data
or Ray — every key addresses a real config field, every listed value builds a valid config, the selection
protocol is honest — so a typo fails in a second instead of after a cluster has started.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mosecrot.config import ExperimentConfig, experiment_path
from mosecrot.configschema import (
    apply_overrides,
    apply_settings,
    field_type,
    from_dict,
    interpolate,
    named_config_path,
    parse_override,
    read_yaml,
    unwrap_optional,
)
from mosecrot.errors import InputError, unknown_choice
from mosecrot.methods import MethodConfig
from mosecrot.methods.registry import kinds, option_type
from mosecrot.paths import REPO_ROOT
from orchestrator.search_space.schema import SearchSpace, same
from orchestrator.search_space.trials import active, build, covers, grid_points, param_order

SPACES_DIR = REPO_ROOT / "search_spaces"
# Keys a parameter may not search: they define the sweep's languages (hence the protocol) or its method.
_RESERVED_PARAMS = ("name", "methods", "target_languages", "source_language", "method.name", "method.kind")
_RESERVED_FIXED = ("name", "methods")


def space_names() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def search_space_path(name_or_path: str | Path) -> Path:
    """``quickstart`` -> search_spaces/quickstart.yaml; paths pass through."""
    return named_config_path(str(name_or_path), SPACES_DIR, "search space")


def load_search_space(path_or_name: str | Path, overrides: list[str] | None = None) -> SearchSpace:
    """Read, override (``KEY=VALUE``, as the CLI's ``--set``) and fully validate a sweep spec."""
    path = search_space_path(path_or_name)
    file = _display(path)
    for item in overrides or []:  # a malformed --set names the override, not the file
        parse_override(item)
    try:
        data = _apply_overrides(read_yaml(path), overrides or [])
        space = from_dict(SearchSpace, data)  # no file: errors keep their key, located below
        space.file = file
        _validate(space, path)
    except InputError as err:
        raise InputError(
            err.message, path=err.path or file, line=err.line, key=err.key, expected=err.expected
        ) from None
    return space


def _display(path: Path) -> str:
    """Paths under the working directory as relative (``search_spaces/x.yaml``), others as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Like `apply_overrides`, except that ``fixed.X`` and ``space.P.attr`` keep dotted X and P whole."""
    data = dict(data)
    for item in overrides:
        key, value = parse_override(item)
        head, _, rest = key.partition(".")
        if head not in ("fixed", "space") or not rest:
            data = apply_overrides(data, [item])
            continue
        section = dict(data.get(head) or {})
        if head == "fixed":
            section[rest] = value
        else:
            name = max((p for p in section if rest == p or rest.startswith(p + ".")), key=len, default=rest)
            attr = rest[len(name) + 1 :]
            param: Any = dict(section.get(name) or {})  # or, for the whole parameter, the YAML value
            if not attr:
                param = value
            elif attr.startswith("when."):
                param["when"] = {**(param.get("when") or {}), attr[len("when.") :]: value}
            else:
                param[attr] = value
            section[name] = param
        data[head] = section
    return data


def _validate(space: SearchSpace, path: Path) -> None:
    if not space.name:
        raise InputError("empty sweep name", key="name", expected="a name (the MLflow experiment and Optuna study)")
    for key, check in (
        ("searcher", space.searcher.check),
        ("scheduler", space.scheduler.check),
        ("objective", space.objective.check),
        ("resources", space.resources.check),
    ):
        check(key)
    if space.num_trials is not None and space.num_trials < 1:
        raise InputError(f"num_trials {space.num_trials} is not positive", key="num_trials", expected=">= 1")
    for key, param in space.space.items():
        if key in _RESERVED_PARAMS or key.startswith("methods."):
            raise InputError(
                f"{key!r} cannot be searched",
                key=f"space.{key}",
                expected="a field of the experiment or of `method` (languages and the method kind are fixed)",
            )
        if key in space.fixed:
            raise InputError(f"{key!r} is both fixed and searched", key=f"space.{key}")
        param.check(f"space.{key}")
    param_order(space)  # `when` structure: parents exist, are categorical, no cycles
    exp = _resolve_base(space, path)
    _check_params(space)
    _check_objective(space, exp)
    _check_searcher(space)
    if space.scheduler.kind == "asha" and space.scheduler.max_t is None:
        epochs = space.space.get("training.epochs")
        space.scheduler.max_t = exp.training.epochs if epochs is None else max(v for _, v in epochs.representatives())
        space.scheduler.check("scheduler")
    baseline_methods(space)


def _resolve_base(space: SearchSpace, path: Path) -> ExperimentConfig:
    """The experiment with ``fixed`` applied, built once: bad fixed keys/values fail here, by key."""
    exp_ref = Path(space.experiment)
    local = path.parent / exp_ref
    try:
        exp_file = (
            local
            if exp_ref.suffix in (".yaml", ".yml") and not exp_ref.is_absolute() and local.is_file()
            else experiment_path(space.experiment)
        )
    except InputError as err:
        raise InputError(err.message, key="experiment", expected=err.expected) from None
    space.experiment_file = _display(exp_file)
    data = read_yaml(exp_file)
    for key, value in space.fixed.items():
        if key in _RESERVED_FIXED:
            raise InputError(
                f"{key!r} cannot be fixed here",
                key=f"fixed.{key}",
                expected="the tuned method under `method:`, baselines under `baselines:`",
            )
        field_type(ExperimentConfig, key, f"fixed.{key}")
        data = apply_settings(data, {key: value})
    data.pop("methods", None)  # the sweep's method is `method`; the experiment's list does not apply
    space.base = interpolate(data)
    try:
        exp = from_dict(ExperimentConfig, space.base)
    except InputError as err:
        owner = next((k for k in space.fixed if covers(k, err.key)), None)
        if owner is None:  # the experiment file itself is broken
            raise InputError(err.message, path=space.experiment_file, key=err.key, expected=err.expected) from None
        raise InputError(err.message, key=f"fixed.{owner}", expected=err.expected) from None
    space.base_config = exp
    space.method_config = from_dict(MethodConfig, space.method_data(), prefix="method")
    return exp


def param_type(space: SearchSpace, key: str) -> Any:
    """The config type a parameter sets: ``method.X``, option X of the tuned method's kind; any other key, a
    field of the experiment. An unknown key is an InputError at ``space.KEY`` naming the valid ones."""
    if key.startswith("method."):
        kind = space.method_data()["kind"]
        return option_type(kind, key[len("method.") :], f"space.{key}", shown=key)
    return field_type(ExperimentConfig, key, f"space.{key}")


def _check_params(space: SearchSpace) -> None:
    """Every parameter addresses one setting, and every listed value (and both bounds) builds a config."""
    for key in space.space:
        tp = unwrap_optional(param_type(space, key))
        if dataclasses.is_dataclass(tp):
            names = sorted(f.name for f in dataclasses.fields(tp) if f.init)
            raise InputError(
                f"{key} is a whole block of the config, not one setting",
                key=f"space.{key}",
                expected="one of: " + ", ".join(f"{key}.{n}" for n in names),
            )
    reps = {key: param.representatives() for key, param in space.space.items()}
    first = {key: r[0][1] for key, r in reps.items()}
    for key, options in reps.items():
        for sub, value in options:
            params = _representative(space, first, key, value)
            try:
                build(space, params)
            except InputError as err:
                owner = next((k for k in params if covers(k, err.key)), key)
                shown = params.get(owner, value)
                where = sub if owner == key else next((s for s, v in reps[owner] if same(v, shown)), reps[owner][0][0])
                also = f" (with {key} = {value!r})" if owner != key else ""
                raise InputError(
                    f"{owner} = {shown!r} is not valid: {err.message}{also}",
                    key=f"space.{owner}.{where}",
                    expected=err.expected,
                ) from None


def _representative(space: SearchSpace, first: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """The params of a trial with ``key = value``, the other parameters at their first value, and only the
    active ones set (``key``'s parents at the first values that activate it), as a real trial would have:
    a space may allow values together that no trial combines (both loss weights 0 behind a `when`)."""
    wanted, stack = {key: value}, [key]
    while stack:
        for parent, values in space.space[stack.pop()].when.items():
            if parent not in wanted and values:
                wanted[parent] = values[0]
                stack.append(parent)
    params: dict[str, Any] = {}
    for k in param_order(space):
        if active(space.space[k], params):
            params[k] = wanted.get(k, first[k])
    return params


def _check_objective(space: SearchSpace, exp: ExperimentConfig) -> None:
    obj, targets, src = space.objective, list(exp.target_languages), exp.source_language
    if obj.protocol == "english-dev":
        if obj.languages is None:
            obj.languages = [src]
        if obj.languages != [src]:
            raise InputError(
                f"english-dev selects on the source language's dev set only, got {obj.languages}",
                key="objective.languages",
                expected=f"[{src}] (or protocol selection-languages-dev)",
            )
    else:
        if not obj.languages:
            raise InputError(
                "selection-languages-dev needs the languages it selects on",
                key="objective.languages",
                expected="some target languages, e.g. [de, es, ru]",
            )
        for i, lang in enumerate(obj.languages):
            if lang not in targets:
                raise InputError(
                    f"selection language {lang!r} is not a target language",
                    key=f"objective.languages[{i}]",
                    expected="one of: " + ", ".join(targets),
                )
        if len(set(obj.languages)) != len(obj.languages):
            raise InputError("duplicate selection language", key="objective.languages")
    selection = set(obj.languages) if obj.protocol == "selection-languages-dev" else set()
    if selection and obj.split not in exp.training.eval_target_splits:
        raise InputError(
            f"the objective selects on the {obj.split} sets of {sorted(selection)}, which "
            f"training.eval_target_splits {exp.training.eval_target_splits} does not evaluate",
            key="fixed.training.eval_target_splits",
            expected=f"a list that includes {obj.split}",
        )
    if "test" not in exp.training.eval_target_splits:
        raise InputError(
            "the sweep reports target test scores, which training.eval_target_splits "
            f"{exp.training.eval_target_splits} leaves out",
            key="fixed.training.eval_target_splits",
            expected="a list that includes test",
        )
    if space.report_languages is None:
        space.report_languages = [t for t in targets if t not in selection]
    report = space.report_languages
    if not report:
        raise InputError(
            "no report languages left",
            key="report_languages",
            expected="target languages that are not selection languages",
        )
    for i, lang in enumerate(report):
        if lang not in targets:
            raise InputError(
                f"report language {lang!r} is not a target language",
                key=f"report_languages[{i}]",
                expected="one of: " + ", ".join(targets),
            )
        if lang in selection:
            raise InputError(
                f"{lang!r} is both a selection and a report language: its scores would be selected on",
                key=f"report_languages[{i}]",
                expected="report languages disjoint from objective.languages",
            )
    if len(set(report)) != len(report):
        raise InputError("duplicate report language", key="report_languages")


def _check_searcher(space: SearchSpace) -> None:
    grid = space.searcher.kind == "grid"
    for key, param in space.space.items():
        if grid and param.type != "categorical" and param.values is None:
            raise InputError(
                f"the grid searcher needs the values of {key}",
                key=f"space.{key}.values",
                expected="categorical choices, or an explicit values: list",
            )
        if not grid and param.values is not None:
            raise InputError(
                f"values: lists are for the grid searcher, not {space.searcher.kind}",
                key=f"space.{key}.values",
                expected="low/high only",
            )
    if grid:
        size = len(grid_points(space))
        if space.num_trials is None:
            space.num_trials = size
        elif space.num_trials != size:
            raise InputError(
                f"num_trials {space.num_trials} differs from the grid size {size}",
                key="num_trials",
                expected=f"{size} or null",
            )
    elif space.num_trials is None:
        raise InputError(
            f"the {space.searcher.kind} searcher needs num_trials", key="num_trials", expected="an integer >= 1"
        )


def baseline_methods(space: SearchSpace) -> list[MethodConfig]:
    """The baselines logged once per sweep, as MethodConfigs (a bare kind becomes ``{name: kind, kind: kind}``);
    any kind but the tuned method's."""
    tuned = space.method_data()["kind"]
    valid = [k for k in kinds() if k != tuned]
    out: list[MethodConfig] = []
    for i, item in enumerate(space.baselines):
        key = f"baselines[{i}]"
        data = {"name": item, "kind": item} if isinstance(item, str) else item
        if not isinstance(data, dict) or data.get("kind") not in valid:
            kind = data.get("kind") if isinstance(data, dict) else item
            err = unknown_choice("baseline method", kind, valid, key=key if isinstance(item, str) else f"{key}.kind")
            if kind == tuned:
                err = InputError(f"{tuned} is the tuned method, not a baseline", key=err.key, expected=err.expected)
            raise err
        data = {"name": data["kind"], **data}
        out.append(from_dict(MethodConfig, data, prefix=key))
        if any(m.name == out[-1].name for m in out[:-1]):
            raise InputError(f"duplicate baseline {out[-1].name!r}", key=key, expected="unique names")
    return out
