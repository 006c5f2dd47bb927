"""Sweep specs: the schema of ``search_spaces/*.yaml``, validated on load, and its translation to trials.

A sweep = a base experiment (``experiments/*.yaml``) + ``fixed`` overrides + the tuned ``method`` +
parameters addressed by dotted config keys. Loading checks everything that can be checked without data
or Ray (every key addresses a real config field, every listed value builds a valid config, the selection
protocol is honest), so a typo fails in a second instead of after a cluster has started.

Ray is never imported here: ``define_by_run`` is what ``OptunaSearch(space=...)`` takes, ``grid_points``
what Tune's grid generator takes, ``trial_configs`` what a trial turns its sampled params into.
The schema is documented in ``search_spaces/README.md``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin


from mosecrot.config import ExperimentConfig, MethodConfig, experiment_path
from mosecrot.configschema import apply_overrides, from_dict, interpolate, load_yaml_text, read_yaml
from mosecrot.errors import InputError, unknown_choice
from mosecrot.paths import REPO_ROOT

if TYPE_CHECKING:
    import optuna

SPACES_DIR = REPO_ROOT / "search_spaces"
PARAM_TYPES = ("categorical", "int", "float")
SEARCHERS = ("optuna-tpe", "random", "grid")
SCHEDULERS = ("none", "asha")
PROTOCOLS = ("english-dev", "selection-languages-dev")
METRICS = ("macro_f1", "accuracy")
_SCALARS = (type(None), bool, int, float, str)  # what Optuna's categorical distribution accepts
# Keys a parameter may not search: they define the sweep's languages (hence the protocol) or its method.
_RESERVED_PARAMS = ("name", "methods", "target_languages", "source_language", "method.name", "method.kind")
_RESERVED_FIXED = ("name", "methods")
_EMS_SET = "method.ems_set."  # method.ems_set.loss.temperature: a dotted key of the EMS config (kind ems)


# --- schema -----------------------------------------------------------------------------------------

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
                raise InputError("a categorical parameter needs choices", key=at("choices"), expected="a non-empty list")
            for i, choice in enumerate(self.choices):
                if not isinstance(choice, _SCALARS):
                    raise InputError(f"bad choice {choice!r}", key=f"{at('choices')}[{i}]",
                                     expected="null, a bool, a number or a string")
                if any(_same(choice, c) for c in self.choices[:i]):
                    raise InputError(f"duplicate choice {choice!r}", key=f"{at('choices')}[{i}]")
            for name in ("low", "high", "step", "values"):
                if getattr(self, name) is not None:
                    raise InputError(f"{name} is for int and float parameters", key=at(name), expected="choices only")
            if self.log:
                raise InputError("log is for int and float parameters", key=at("log"))
            return
        if self.choices is not None:
            raise InputError("choices is for categorical parameters", key=at("choices"),
                             expected="low and high (and values under the grid searcher)")
        for name in ("low", "high"):
            bound = getattr(self, name)
            if bound is None:
                raise InputError(f"an {self.type} parameter needs {name}", key=at(name), expected="a number")
            if self.type == "int" and not isinstance(bound, int):
                raise InputError(f"{bound!r} is not an integer", key=at(name), expected="an integer")
            if not math.isfinite(bound):
                raise InputError(f"{bound!r} is not finite", key=at(name), expected="a finite number")
        if not self.low < self.high:
            raise InputError(f"low ({self.low}) is not below high ({self.high})", key=at("low"), expected="low < high")
        if self.log and self.low <= 0:
            raise InputError(f"a log scale needs low > 0, got {self.low}", key=at("low"), expected="low > 0 with log: true")
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
                    raise InputError(f"value {v!r} is outside the parameter", key=f"{at('values')}[{i}]",
                                     expected=f"an {self.type} in [{self.low}, {self.high}]")

    def representatives(self) -> list[tuple[str, Any]]:
        """(sub-key, value) pairs that loading builds a config from: every choice/value, and both bounds."""
        if self.type == "categorical":
            return [(f"choices[{i}]", c) for i, c in enumerate(self.choices or [])]
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
            raise InputError(f"the {self.kind} searcher needs a seed (a sweep must be reproducible)",
                             key=f"{key}.seed", expected="an integer")
        if self.constant_liar is not None and self.kind != "optuna-tpe":
            raise InputError(f"constant_liar applies to optuna-tpe only, not {self.kind}",
                             key=f"{key}.constant_liar", expected="no constant_liar, or kind optuna-tpe")
        if self.n_startup_trials is not None:
            if self.kind != "optuna-tpe":
                raise InputError(f"n_startup_trials applies to optuna-tpe only, not {self.kind}",
                                 key=f"{key}.n_startup_trials")
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
            raise InputError(f"grace_period {self.grace_period} is not positive", key=f"{key}.grace_period",
                             expected=">= 1 epoch")
        if self.reduction_factor < 2:
            raise InputError(f"reduction_factor {self.reduction_factor} would stop no trial",
                             key=f"{key}.reduction_factor", expected=">= 2")
        if self.max_t is not None and self.max_t < self.grace_period:
            raise InputError(f"max_t {self.max_t} is below grace_period {self.grace_period}", key=f"{key}.max_t",
                             expected=f">= {self.grace_period}")


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
            raise InputError("selecting on the test split is not honest: test scores are what the sweep reports",
                             key=f"{key}.split", expected="dev (English dev, or the dev sets of selection languages)")
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
            raise InputError(f"workers_per_trial {self.workers_per_trial} is negative",
                             key=f"{key}.workers_per_trial",
                             expected=">= 1 Ray Train workers, or 0 for local mode (the loop in the trial's process)")
        if not self.cpus_per_worker > 0:
            raise InputError(f"cpus_per_worker {self.cpus_per_worker} is not positive", key=f"{key}.cpus_per_worker",
                             expected="> 0 (fractions allowed)")
        if self.gpus_per_worker < 0:
            raise InputError(f"gpus_per_worker {self.gpus_per_worker} is negative", key=f"{key}.gpus_per_worker",
                             expected=">= 0")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise InputError(f"max_concurrent_trials {self.max_concurrent_trials} is not positive",
                             key=f"{key}.max_concurrent_trials", expected=">= 1 or null")


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

    def method_data(self) -> dict:
        data = dict(self.method)
        data.setdefault("kind", "mosecrot")
        data.setdefault("name", data["kind"])
        return data


# --- loading ----------------------------------------------------------------------------------------

def space_names() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def search_space_path(name_or_path: str | Path) -> Path:
    """``quickstart`` -> search_spaces/quickstart.yaml; paths pass through."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    candidate = SPACES_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise InputError(f"no search space named {str(name_or_path)!r}",
                         expected="a YAML path or one of: " + ", ".join(space_names()))
    return candidate


def load_search_space(path_or_name: str | Path, overrides: list[str] | None = None) -> SearchSpace:
    """Read, override (``KEY=VALUE``, as the CLI's ``--set``) and fully validate a sweep spec."""
    path = search_space_path(path_or_name)
    file = _display(path)
    try:
        data = _apply_overrides(read_yaml(path), overrides or [])
        space = from_dict(SearchSpace, data)  # no file: errors keep their key, located below
        space.file = file
        _validate(space, path)
    except InputError as err:
        raise InputError(err.message, path=err.path or file, line=err.line, key=err.key,
                         expected=err.expected) from None
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
        key, sep, raw = item.partition("=")
        head, _, rest = key.strip().partition(".")
        if not sep or head not in ("fixed", "space") or not rest:
            data = apply_overrides(data, [item])
            continue
        value = load_yaml_text(raw) if raw != "" else None
        section = dict(data.get(head) or {})
        if head == "fixed":
            section[rest] = value
        else:
            name = max((p for p in section if rest == p or rest.startswith(p + ".")), key=len, default=rest)
            attr = rest[len(name) + 1:]
            param = dict(section.get(name) or {})
            if not attr:
                param = value
            elif attr.startswith("when."):
                param["when"] = {**(param.get("when") or {}), attr[len("when."):]: value}
            else:
                param[attr] = value
            section[name] = param
        data[head] = section
    return data


def _validate(space: SearchSpace, path: Path) -> None:
    if not space.name:
        raise InputError("empty sweep name", key="name", expected="a name (the MLflow experiment and Optuna study)")
    for key, check in (("searcher", space.searcher.check), ("scheduler", space.scheduler.check),
                       ("objective", space.objective.check), ("resources", space.resources.check)):
        check(key)
    if space.num_trials is not None and space.num_trials < 1:
        raise InputError(f"num_trials {space.num_trials} is not positive", key="num_trials", expected=">= 1")
    for key, param in space.space.items():
        if key in _RESERVED_PARAMS or key.startswith("methods."):
            raise InputError(f"{key!r} cannot be searched", key=f"space.{key}",
                             expected="a field of the experiment or of `method` (languages and the method kind are fixed)")
        if key in space.fixed:
            raise InputError(f"{key!r} is both fixed and searched", key=f"space.{key}")
        param.check(f"space.{key}")
    _order(space)  # `when` structure: parents exist, are categorical, no cycles
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
        exp_file = local if exp_ref.suffix in (".yaml", ".yml") and not exp_ref.is_absolute() and local.is_file() \
            else experiment_path(space.experiment)
    except InputError as err:
        raise InputError(err.message, key="experiment", expected=err.expected) from None
    space.experiment_file = _display(exp_file)
    data = read_yaml(exp_file)
    for key, value in space.fixed.items():
        if key in _RESERVED_FIXED:
            raise InputError(f"{key!r} cannot be fixed here", key=f"fixed.{key}",
                             expected="the tuned method under `method:`, baselines under `baselines:`")
        _field_type(ExperimentConfig, key, f"fixed.{key}")
        data = _set(data, key, value)
    data.pop("methods", None)  # the sweep's method is `method`; the experiment's list does not apply
    space.base = interpolate(data)
    try:
        exp = from_dict(ExperimentConfig, space.base)
    except InputError as err:
        owner = next((k for k in space.fixed if _covers(k, err.key)), None)
        if owner is None:  # the experiment file itself is broken
            raise InputError(err.message, path=space.experiment_file, key=err.key, expected=err.expected) from None
        raise InputError(err.message, key=f"fixed.{owner}", expected=err.expected) from None
    from_dict(MethodConfig, space.method_data(), prefix="method")
    return exp


def _check_params(space: SearchSpace) -> None:
    """Every parameter addresses a real field, and every listed value (and both bounds) builds a config."""
    for key in space.space:
        if key.startswith(_EMS_SET):
            _check_ems_key(space, key)
        elif key.startswith("method."):
            _field_type(MethodConfig, key[len("method."):], f"space.{key}", shown=key)
        else:
            _field_type(ExperimentConfig, key, f"space.{key}")
    reps = {key: param.representatives() for key, param in space.space.items()}
    first = {key: r[0][1] for key, r in reps.items()}
    for key, options in reps.items():
        for sub, value in options:
            params = _representative(space, first, key, value)
            try:
                _build(space, params)
            except InputError as err:
                owner = next((k for k in params if _covers(k, err.key)), key)
                shown = params.get(owner, value)
                where = sub if owner == key else next(
                    (s for s, v in reps[owner] if _same(v, shown)), reps[owner][0][0])
                also = f" (with {key} = {value!r})" if owner != key else ""
                raise InputError(f"{owner} = {shown!r} is not valid: {err.message}{also}",
                                 key=f"space.{owner}.{where}", expected=err.expected) from None


def _check_ems_key(space: SearchSpace, key: str) -> None:
    """``method.ems_set.X``: X is a field of the EMS config (mosecrot/ems/config.py), of the tuned ems method."""
    from mosecrot.ems.config import setting_type

    if space.method_data().get("kind") != "ems":
        raise InputError(f"{key} tunes the EMS config of a kind ems method, not of {space.method_data()['kind']}",
                         key=f"space.{key}", expected="method: {kind: ems, ems: CONFIG}")
    dotted = key[len(_EMS_SET):]
    tp = setting_type(dotted, f"space.{key}", shown=key)
    if dataclasses.is_dataclass(_unwrap(tp)):
        names = sorted(f.name for f in dataclasses.fields(_unwrap(tp)) if f.init)
        raise InputError(f"{key} is a whole block of the EMS config, not one setting", key=f"space.{key}",
                         expected="one of: " + ", ".join(f"{key}.{n}" for n in names))


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
    for k in _order(space):
        if _active(space.space[k], params):
            params[k] = wanted.get(k, first[k])
    return params


def _check_objective(space: SearchSpace, exp: ExperimentConfig) -> None:
    obj, targets, src = space.objective, list(exp.target_languages), exp.source_language
    if obj.protocol == "english-dev":
        if obj.languages is None:
            obj.languages = [src]
        if obj.languages != [src]:
            raise InputError(f"english-dev selects on the source language's dev set only, got {obj.languages}",
                             key="objective.languages", expected=f"[{src}] (or protocol selection-languages-dev)")
    else:
        if not obj.languages:
            raise InputError("selection-languages-dev needs the languages it selects on", key="objective.languages",
                             expected="some target languages, e.g. [de, es, ru]")
        for i, lang in enumerate(obj.languages):
            if lang not in targets:
                raise InputError(f"selection language {lang!r} is not a target language", key=f"objective.languages[{i}]",
                                 expected="one of: " + ", ".join(targets))
        if len(set(obj.languages)) != len(obj.languages):
            raise InputError("duplicate selection language", key="objective.languages")
    selection = set(obj.languages) if obj.protocol == "selection-languages-dev" else set()
    if selection and obj.split not in exp.training.eval_target_splits:
        raise InputError(f"the objective selects on the {obj.split} sets of {sorted(selection)}, which "
                         f"training.eval_target_splits {exp.training.eval_target_splits} does not evaluate",
                         key="fixed.training.eval_target_splits", expected=f"a list that includes {obj.split}")
    if "test" not in exp.training.eval_target_splits:
        raise InputError("the sweep reports target test scores, which training.eval_target_splits "
                         f"{exp.training.eval_target_splits} leaves out", key="fixed.training.eval_target_splits",
                         expected="a list that includes test")
    if space.report_languages is None:
        space.report_languages = [t for t in targets if t not in selection]
    report = space.report_languages
    if not report:
        raise InputError("no report languages left", key="report_languages",
                         expected="target languages that are not selection languages")
    for i, lang in enumerate(report):
        if lang not in targets:
            raise InputError(f"report language {lang!r} is not a target language", key=f"report_languages[{i}]",
                             expected="one of: " + ", ".join(targets))
        if lang in selection:
            raise InputError(f"{lang!r} is both a selection and a report language: its scores would be selected on",
                             key=f"report_languages[{i}]", expected="report languages disjoint from objective.languages")
    if len(set(report)) != len(report):
        raise InputError("duplicate report language", key="report_languages")


def _check_searcher(space: SearchSpace) -> None:
    grid = space.searcher.kind == "grid"
    for key, param in space.space.items():
        if grid and param.type != "categorical" and param.values is None:
            raise InputError(f"the grid searcher needs the values of {key}", key=f"space.{key}.values",
                             expected="categorical choices, or an explicit values: list")
        if not grid and param.values is not None:
            raise InputError(f"values: lists are for the grid searcher, not {space.searcher.kind}",
                             key=f"space.{key}.values", expected="low/high only")
    if grid:
        size = len(grid_points(space))
        if space.num_trials is None:
            space.num_trials = size
        elif space.num_trials != size:
            raise InputError(f"num_trials {space.num_trials} differs from the grid size {size}", key="num_trials",
                             expected=f"{size} or null")
    elif space.num_trials is None:
        raise InputError(f"the {space.searcher.kind} searcher needs num_trials", key="num_trials",
                         expected="an integer >= 1")


def baseline_methods(space: SearchSpace) -> list[MethodConfig]:
    """The baselines logged once per sweep, as MethodConfigs (a bare kind becomes ``{name: kind, kind: kind}``)."""
    from mosecrot.methods import METHODS

    valid = [k for k in METHODS if k != "mosecrot"]
    out: list[MethodConfig] = []
    for i, item in enumerate(space.baselines):
        key = f"baselines[{i}]"
        data = {"name": item, "kind": item} if isinstance(item, str) else item
        if not isinstance(data, dict) or data.get("kind") not in valid:
            kind = data.get("kind") if isinstance(data, dict) else item
            err = unknown_choice("baseline method", kind, valid, key=key if isinstance(item, str) else f"{key}.kind")
            if kind == "mosecrot":
                err = InputError("mosecrot is the tuned method, not a baseline", key=err.key, expected=err.expected)
            raise err
        data = {"name": data["kind"], **data}
        out.append(from_dict(MethodConfig, data, prefix=key))
        if any(m.name == out[-1].name for m in out[:-1]):
            raise InputError(f"duplicate baseline {out[-1].name!r}", key=key, expected="unique names")
    return out


# --- config paths -----------------------------------------------------------------------------------

def _unwrap(tp: Any) -> Any:
    """``X | None`` -> X, so optional sub-configs and mappings can be addressed into."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _field_type(cls: type, dotted: str, key: str, shown: str | None = None) -> Any:
    """The declared type at ``dotted`` in ``cls``, or an InputError listing the valid names where it breaks."""
    tp, parts = cls, dotted.split(".")
    shown = shown or dotted
    prefix = shown[: len(shown) - len(dotted)].rstrip(".")
    for i, part in enumerate(parts):
        tp = _unwrap(tp)
        where = ".".join(([prefix] if prefix else []) + parts[:i]) or "the experiment"
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp) if f.init]
            if part not in names:
                raise InputError(f"{shown!r} is not a config field: {where} has no {part!r}", key=key,
                                 expected="one of: " + ", ".join(sorted(names)))
            tp = typing.get_type_hints(tp)[part]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            raise InputError(f"{shown!r} is not a config field: {where} is not a mapping", key=key)
    return tp


def _covers(key: str, err_key: str | None) -> bool:
    """Whether an error at ``err_key`` is about the value set at ``key``."""
    if not err_key:
        return False
    return err_key == key or err_key.startswith((key + ".", key + "[")) or key.startswith(err_key + ".")


def _set(data: dict, dotted: str, value: Any) -> dict:
    """A copy of ``data`` with ``dotted`` set (intermediate mappings copied, never shared)."""
    head, _, rest = dotted.partition(".")
    out = dict(data)
    if not rest:
        out[head] = value
    else:
        child = out.get(head)
        out[head] = _set(child if isinstance(child, dict) else {}, rest, value)
    return out


def _build(space: SearchSpace, params: dict[str, Any]) -> tuple[ExperimentConfig, MethodConfig]:
    exp_data, method_data = space.base, space.method_data()
    for key, value in params.items():
        value = interpolate(value)
        if key.startswith(_EMS_SET):  # one dotted key of the flat ems_set mapping, not a nested path
            from mosecrot.ems.config import normalize_settings

            ems_set = normalize_settings(method_data.get("ems_set") or {}, key="method.ems_set")
            method_data = {**method_data, "ems_set": {**ems_set, key[len(_EMS_SET):]: value}}
        elif key.startswith("method."):
            method_data = _set(method_data, key[len("method."):], value)
        else:
            exp_data = _set(exp_data, key, value)
    method = from_dict(MethodConfig, method_data, prefix="method")
    exp = from_dict(ExperimentConfig, exp_data)
    exp.methods = [method]
    return exp, method


# --- trials -----------------------------------------------------------------------------------------

def _same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (Optuna hands back the choice objects themselves)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _active(param: Param, params: dict[str, Any]) -> bool:
    return all(parent in params and any(_same(params[parent], v) for v in values)
               for parent, values in param.when.items())


def _order(space: SearchSpace) -> list[str]:
    """Parameter keys with every `when` parent before its children (file order otherwise)."""
    for key, param in space.space.items():
        for parent, values in param.when.items():
            at = f"space.{key}.when.{parent}"
            if parent == key or parent not in space.space:
                raise InputError(f"{key} is conditional on {parent!r}, which is not another parameter of the space",
                                 key=at, expected="one of: " + ", ".join(k for k in space.space if k != key))
            other = space.space[parent]
            if other.type != "categorical":
                raise InputError(f"{key} is conditional on {parent}, which is {other.type}, not categorical", key=at,
                                 expected="a categorical parameter")
            if not isinstance(values, list) or not values:
                raise InputError("empty condition", key=at, expected="a non-empty list of its choices")
            for i, v in enumerate(values):
                if not any(_same(v, c) for c in other.choices or []):
                    raise InputError(f"{v!r} is not a choice of {parent}", key=f"{at}[{i}]",
                                     expected="one of: " + ", ".join(map(str, other.choices or [])))
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(key: str, path: list[str]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            cycle = path[path.index(key):] + [key]
            raise InputError("conditions form a cycle: " + " -> ".join(cycle), key=f"space.{key}.when")
        state[key] = "visiting"
        for parent in space.space[key].when:
            visit(parent, path + [key])
        state[key] = "done"
        order.append(key)

    for key in space.space:
        visit(key, [])
    return order


def _suggest(trial: Any, key: str, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(key, list(p.choices))
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
        for key in _order(self.space):
            param = self.space.space[key]
            if _active(param, params):
                params[key] = _suggest(trial, key, param)
        return None


def define_by_run(space: SearchSpace) -> DefineByRun:
    return DefineByRun(space)


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every grid point; a conditional parameter branches only where it is active, so no point repeats."""
    points: list[dict[str, Any]] = [{}]
    for key in _order(space):
        param = space.space[key]
        values = param.choices if param.type == "categorical" else param.values
        if values is None:
            raise InputError(f"the grid needs the values of {key}", path=space.file, key=f"space.{key}.values",
                             expected="categorical choices, or an explicit values: list")
        points = [new for pt in points
                  for new in ([{**pt, key: v} for v in values] if _active(param, pt) else [pt])]
    return points


def trial_configs(space: SearchSpace, params: dict[str, Any]) -> tuple[ExperimentConfig, MethodConfig]:
    """The trial's experiment (base + fixed + params, ``methods = [method]``) and tuned method, validated.

    ``params`` is what Tune hands the trial: exactly the active parameters, by dotted key."""
    for key in params:
        if key not in space.space:
            raise InputError(f"{key!r} is not a parameter of this space", path=space.file, key=f"space.{key}",
                             expected="one of: " + ", ".join(space.space))
    for key in _order(space):
        param, active = space.space[key], _active(space.space[key], params)
        if active and key not in params:
            raise InputError(f"active parameter {key} has no value", path=space.file, key=f"space.{key}")
        if not active and key in params:
            raise InputError(f"{key} is inactive here (when: {param.when}) but has a value", path=space.file,
                             key=f"space.{key}")
        if active and not _in_domain(param, params[key]):
            raise InputError(f"{key} = {params[key]!r} is outside the parameter's domain", path=space.file,
                             key=f"space.{key}")
    try:
        return _build(space, params)
    except InputError as err:
        owner = next((k for k in params if _covers(k, err.key)), None)
        raise InputError(f"{err.message} (parameters: {params})", path=space.file,
                         key=f"space.{owner}" if owner else err.key, expected=err.expected) from None


def _in_domain(param: Param, value: Any) -> bool:
    if param.type == "categorical":
        return any(_same(value, c) for c in param.choices or [])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if param.type == "int" and not isinstance(value, int):
        return False
    if param.values is not None and not any(_same(value, v) for v in param.values):
        return False
    return param.low <= value <= param.high


# --- objective and report -----------------------------------------------------------------------------

def objective_keys(space: SearchSpace) -> list[str]:
    """The metric keys the objective averages, e.g. ``dev_macro_f1.en``."""
    obj = space.objective
    return [f"{obj.split}_{obj.metric}.{lang}" for lang in obj.languages or []]


def report_keys(space: SearchSpace) -> list[str]:
    """The metric keys the report averages: test scores of the report languages."""
    return [f"test_{space.objective.metric}.{lang}" for lang in space.report_languages or []]


def _mean(metrics: dict[str, float], keys: list[str], what: str) -> float:
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ValueError(f"the {what} needs {', '.join(missing)}, which the trial did not report "
                         f"(it reported: {', '.join(sorted(metrics)) or 'nothing'})")
    return sum(float(metrics[k]) for k in keys) / len(keys)


def objective_value(space: SearchSpace, metrics: dict[str, float]) -> float:
    """Mean of ``{split}_{metric}.{lang}`` over the objective languages (what the searcher optimises)."""
    return _mean(metrics, objective_keys(space), "objective")


def report_value(space: SearchSpace, metrics: dict[str, float]) -> float:
    """Mean of ``test_{metric}.{lang}`` over the report languages (what the sweep reports, never selects on)."""
    return _mean(metrics, report_keys(space), "report")


# --- Optuna -----------------------------------------------------------------------------------------

def optuna_sampler(space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The searcher's Optuna sampler. Grid only without conditional parameters (GridSampler takes a flat
    product); sweeps run grids through Tune's grid generator over `grid_points` instead (exact, no repeats)."""
    import optuna

    s = space.searcher
    if s.kind == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.kind == "grid":
        if any(p.when for p in space.space.values()):
            raise InputError("Optuna's GridSampler cannot skip conditional parameters", path=space.file,
                             key="searcher.kind", expected="grid_points(space) with Tune's grid generator")
        return optuna.samplers.GridSampler({k: list(v.choices if v.type == "categorical" else v.values)
                                            for k, v in space.space.items()}, seed=s.seed)
    kwargs: dict[str, Any] = {"seed": s.seed, "constant_liar": True if s.constant_liar is None else s.constant_liar,
                              "multivariate": True}
    if s.n_startup_trials is not None:
        kwargs["n_startup_trials"] = s.n_startup_trials
    if any(p.when for p in space.space.values()):
        kwargs["group"] = True  # multivariate TPE over each conditional subspace, not only the common one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(**kwargs)
    return optuna.samplers.TPESampler(**kwargs)
