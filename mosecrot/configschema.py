"""Typed configs from YAML: dataclasses filled from mappings, every error naming its key.

Hand-written rather than pydantic/OmegaConf because the errors must name the file and the dotted key
in our own words (and because the same schema code serves experiments, EMS configs and search spaces).
Supported field types: str, int, float, bool, Literal[...], list[T], dict[str, T], T | None, nested
dataclasses, and unions of scalars such as ``int | Literal["all"]``. A dataclass with a ``from_config``
classmethod (and a ``to_config`` method) reads and writes itself (a method or task entry, whose options depend
on its kind or task; a ``config_field_type`` classmethod then answers for its keys). `field_type` answers what
type a dotted key addresses (search spaces check their keys with it).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args, get_origin

import yaml

from mosecrot.errors import InputError
from mosecrot.paths import data_dir

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-3`` and ``5E+2`` are numbers, not strings
    (YAML 1.1 demands a dot, ``1.0e-3``, which nobody types on a command line)."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml_text(text: str) -> Any:
    """Parse config YAML (a file's text or a ``--set`` value) with `ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, key: str, file: str | None = None) -> Any:
    """``value`` as type ``tp`` (see the module doc), or an InputError at ``key``."""
    return _convert(value, tp, key, file)


def _convert(value: Any, tp: Any, key: str, file: str | None) -> Any:
    origin = get_origin(tp)
    bad = InputError(f"bad value {value!r}", path=file, key=key, expected=_type_name(tp))
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _convert(value, option, key, file)
            except InputError as err:
                errors.append((option, err))
        # A value shaped like one option (a list for `list[str] | None`) gets that option's error: it names the item
        shaped = [err for option, err in errors if _same_shape(value, option)]
        raise shaped[0] if len(shaped) == 1 else bad
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, prefix=key, file=file)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item,) = get_args(tp)
        return [_convert(v, item, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        _, item = get_args(tp)
        return {str(k): _convert(v, item, f"{key}.{k}", file) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, bool):  # `no` (Norwegian), `on`, `yes` unquoted: YAML 1.1 reads them as booleans
            raise InputError(
                f"bad value {value!r}: YAML reads an unquoted yes/no/on/off/true/false as a boolean",
                path=file,
                key=key,
                expected="a string: quote it, e.g. 'no'",
            )
        raise bad
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def _same_shape(value: Any, tp: Any) -> bool:
    """Whether ``value`` is the container ``tp`` expects (a list for ``list[...]``, a mapping for a dict or a
    dataclass), so that an error converting it to ``tp`` is about its contents."""
    tp = get_origin(tp) or tp
    if isinstance(value, list):
        return tp is list
    return isinstance(value, dict) and (tp is dict or dataclasses.is_dataclass(tp))


def from_dict(cls: type[T], data: dict, prefix: str = "", file: str | None = None) -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types by dotted key."""
    reader = getattr(cls, "from_config", None)
    if reader is not None:
        return reader(data, prefix=prefix, file=file)
    if not isinstance(data, dict):
        raise InputError("expected a mapping", path=file, key=prefix or None)
    hints = typing.get_type_hints(cls)
    # Without a from_config reader, `cls` is a dataclass (fields() raises TypeError otherwise).
    fields = {f.name: f for f in dataclasses.fields(cast("type[DataclassInstance]", cls)) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise InputError("unknown key", path=file, key=key, expected="one of: " + ", ".join(sorted(fields)))
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key, file)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError("missing required key", path=file, key=key, expected=_type_name(hints[name]))
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            # A validate(prefix) names its keys under the dotted path it was loaded from.
            params = inspect.signature(check).parameters
            if prefix and "prefix" in params:
                check(prefix=prefix)
            else:
                check()
        except InputError as err:
            if err.path is None and file is not None:
                raise InputError(str(err), path=file, key=None if err.key else prefix or None) from err
            raise
    return obj


def entry_keys(data: Any, reserved: tuple[str, ...], prefix: str, file: str | None) -> list[str]:
    """The string values of the ``reserved`` keys of an entry whose options sit flat beside them (a method's
    ``name`` and ``kind``, a task's ``name``): what decides the options' schema (`from_flat_entry`)."""
    if not isinstance(data, dict):
        raise InputError("expected a mapping", path=file, key=prefix)
    for key in reserved:
        if key not in data:
            raise InputError("missing required key", path=file, key=f"{prefix}.{key}", expected="a string")
    return [convert(data[key], str, f"{prefix}.{key}", file) for key in reserved]


def from_flat_entry(
    options: type[T],
    data: dict,
    reserved: tuple[str, ...],
    prefix: str,
    file: str | None,
    misplaced: Callable[[str], InputError | None] = lambda key: None,
) -> T:
    """Dataclass ``options`` read from an entry that holds its fields flat beside the ``reserved`` keys (see
    `entry_keys`). A key that is neither is the error ``misplaced(key)`` gives (an option of another kind or
    task), else an unknown key."""
    names = [f.name for f in dataclasses.fields(cast("type[DataclassInstance]", options)) if f.init]
    for key in data:
        if key not in reserved and key not in names:
            raise misplaced(key) or InputError(
                "unknown key",
                path=file,
                key=f"{prefix}.{key}",
                expected="one of: " + ", ".join(sorted([*reserved, *names])),
            )
    return from_dict(options, {k: v for k, v in data.items() if k not in reserved}, prefix=prefix, file=file)


def to_dict(obj: Any) -> Any:
    """Inverse of `from_dict`: plain data ready for YAML/JSON (the resolved config of a run)."""
    writer = getattr(obj, "to_config", None)
    if writer is not None and not isinstance(obj, type):
        return to_dict(writer())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def interpolate(value: Any) -> Any:
    """Replace ``${data_dir}`` in every string by the data directory (../shared/data or env)."""
    if isinstance(value, str):
        return value.replace("${data_dir}", str(data_dir()))
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path=path)
    try:
        data = load_yaml_text(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(
            f"invalid YAML: {getattr(err, 'problem', err)}", path=path, line=mark.line + 1 if mark else None
        ) from err
    if not isinstance(data, dict):
        raise InputError("a config file must hold a mapping at top level", path=path)
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML), as the CLI's ``--set`` does."""
    data = dict(data)
    for item in overrides:
        dotted, value = parse_override(item)
        data = apply_settings(data, {dotted: value})
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """One ``--set KEY=VALUE`` as (dotted key, YAML value), or an InputError that names the override itself
    (never the config file it would have changed): no ``=``, an empty or malformed key, a value that is not YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(
            f"bad override {item!r}: " + ("no '='" if not sep else "empty key before '='"),
            key="--set",
            expected="KEY=VALUE, e.g. anchors.count=500",
        )
    if any(not part.strip() for part in key.split(".")):
        raise InputError(f"bad override {item!r}: empty part in key {key!r}", key="--set", expected="a dotted key")
    if raw == "":
        return key, None
    try:
        return key, load_yaml_text(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(
            f"bad override {item!r}: the value of {key} is not valid YAML ({problem})",
            key="--set",
            expected="a YAML value such as 500 or [1, 2]",
        ) from None


def apply_settings(data: dict, settings: dict[str, Any]) -> dict:
    """A copy of config ``data`` with each dotted key of ``settings`` set to its value (copy on write:
    the mappings along each path are copied, the input is never mutated)."""
    data = dict(data)
    for dotted, value in settings.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> X, so optional sub-configs and mappings can be addressed into."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def field_type(cls: Any, dotted: str, key: str | None = None, shown: str | None = None, what: str = "config") -> Any:
    """The declared type at ``dotted`` in dataclass ``cls`` (``anchors.count`` -> ``int | Literal["all"]``), or
    an InputError at ``key`` naming where the path breaks and the valid names there. ``shown`` is the key as
    the user wrote it (its part before ``dotted`` is its prefix in messages). A mapping field whose metadata
    has ``settings`` (a function like this one) addresses, with the rest of the path, another schema: an EMS
    method's ``ems_set.loss.temperature`` is the EMS config's ``loss.temperature``."""
    key = key or dotted
    shown = shown or dotted
    prefix = shown[: len(shown) - len(dotted)].rstrip(".")
    noun = f"an {what}" if what[:1] in "AEIOUaeiou" else f"a {what}"
    tp: Any = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        tp = unwrap_optional(tp)
        where = ".".join(([prefix] if prefix else []) + parts[:i]) or f"the {what}"
        hook = getattr(tp, "config_field_type", None)
        if hook is not None:  # a class that reads itself (from_config) answers for its own keys
            return hook(".".join(parts[i:]), key, shown)
        if dataclasses.is_dataclass(tp):
            fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
            if part not in fields:
                raise InputError(
                    f"{shown!r} is not {noun} field: {where} has no {part!r}",
                    key=key,
                    expected="one of: " + ", ".join(sorted(fields)),
                )
            settings = fields[part].metadata.get("settings")
            if settings is not None and i + 1 < len(parts):
                rest = ".".join(parts[i + 1 :])
                return settings(rest, key, shown)
            tp = typing.get_type_hints(tp)[part]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            raise InputError(f"{shown!r} is not {noun} field: {where} is not a mapping", key=key)
    return tp


def schema_default(cls: Any, dotted: str) -> tuple[bool, Any]:
    """The default value at ``dotted`` of dataclass ``cls`` (nested defaults followed); (False, None) where a
    field on the path has no default."""
    value: Any = dataclasses.MISSING
    for part in dotted.split("."):
        if value is not dataclasses.MISSING:
            if not hasattr(value, part):
                return False, None
            value = getattr(value, part)
            continue
        if not dataclasses.is_dataclass(cls):
            return False, None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return False, None
        f = fields[part]
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = cast("Callable[[], Any]", f.default_factory)()
        else:
            cls = typing.get_type_hints(cls)[part]
    return value is not dataclasses.MISSING, None if value is dataclasses.MISSING else value


def holds_default(cls: Any, dotted: str, value: Any) -> bool:
    """Whether ``value`` (JSON-normalised, as configs are compared) is the default at ``dotted`` of ``cls``: an
    option a logged config lacks because it was added to the tool since, which changes nothing that ran."""
    found, default = schema_default(cls, dotted)
    return found and json.loads(json.dumps(to_dict(default), default=str)) == value


def named_config_path(name_or_path: str, directory: Path, what: str) -> Path:
    """``NAME`` -> ``directory/NAME.yaml``; YAML paths and existing paths pass through."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    candidate = directory / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(x.stem for x in directory.glob("*.yaml"))
        raise InputError(f"no {what} named {name_or_path!r}", expected="a YAML path or one of: " + ", ".join(known))
    return candidate


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings (and dataclasses) to dotted keys; lists and scalars are leaves."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = to_dict(data)
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
