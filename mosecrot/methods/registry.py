"""The method registry (kind -> `MethodSpec`) and `MethodConfig`, one entry of an experiment's ``methods:``.

The kinds come from the family modules' ``SPECS``. A new kind is one module plus one entry in `FAMILIES`;
from outside the package, `register` adds one at run time, and the modules named in ``$MOSECROT_PLUGINS``
(comma-separated, importable; the sweep driver passes the variable on to its Ray workers) are imported the
first time a kind is looked up, so their `register` calls reach every process of a sweep.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mosecrot.configschema import (
    apply_settings,
    entry_keys,
    field_type,
    flatten,
    from_dict,
    from_flat_entry,
    to_dict,
)
from mosecrot.data_config import AnchorConfig
from mosecrot.errors import InputError, unknown_choice
from mosecrot.methods import aligned, ems, finetuned, probes, stitched
from mosecrot.methods.spec import MethodSpec
from mosecrot.training import TrainingConfig

T = TypeVar("T")
FAMILIES = (stitched, aligned, finetuned, probes, ems)
METHODS: dict[str, MethodSpec] = {spec.kind: spec for family in FAMILIES for spec in family.SPECS}
PLUGINS_ENV = "MOSECROT_PLUGINS"
_plugins_loaded: set[str] = set()


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method kind (a kind registered again is replaced: reloading a plugin module is harmless)."""
    METHODS[spec.kind] = spec
    return spec


def load_plugins() -> None:
    """Import the modules named in ``$MOSECROT_PLUGINS`` (once each); an unimportable one is an error."""
    for name in (x.strip() for x in os.environ.get(PLUGINS_ENV, "").split(",")):
        if name and name not in _plugins_loaded:
            try:
                importlib.import_module(name)
            except ImportError as err:
                raise InputError(
                    f"cannot import plugin module {name!r}: {err}",
                    key=f"${PLUGINS_ENV}",
                    expected="importable module names, comma-separated (PYTHONPATH)",
                ) from err
            _plugins_loaded.add(name)


def method_spec(kind: str, key: str = "methods.kind") -> MethodSpec:
    load_plugins()
    if kind not in METHODS:
        raise unknown_choice("method kind", kind, list(METHODS), key=key)
    return METHODS[kind]


def kinds() -> list[str]:
    """Every registered kind (plugins included)."""
    load_plugins()
    return list(METHODS)


def option_names(spec: MethodSpec) -> list[str]:
    return [f.name for f in dataclasses.fields(spec.options) if f.init]


def kinds_with_option(name: str) -> list[str]:
    return [kind for kind in kinds() if name in option_names(METHODS[kind])]


def option_type(kind: str, dotted: str, key: str, shown: str) -> Any:
    """The type of option ``dotted`` of ``kind`` (``stitch.relative.k``), or an InputError at ``key`` that names
    the valid options (and, for an option of other kinds, which kinds take it)."""
    spec = method_spec(kind)
    first, _, rest = dotted.partition(".")
    section = OWN_SECTIONS.get(first)
    if section is not None and section.applies(spec) and rest:  # a method's own anchors / training, searched
        return field_type(section.schema, rest, key, shown)
    names = option_names(spec)
    if first not in names:
        owners = kinds_with_option(first)
        if owners:
            raise InputError(
                f"{shown} sets {first}, an option of kind {', '.join(owners)}, not of kind {kind}",
                key=key,
                expected="one of: " + ", ".join(f"method.{n}" for n in names),
            )
    return field_type(spec.options, dotted, key, shown)


def _option_of_other_kinds(name: str, kind: str, key: str, file: str | None) -> InputError | None:
    """The error for an entry of ``kind`` that gives option ``name`` of other kinds (None if no kind has it)."""
    owners = kinds_with_option(name)
    if not owners:
        return None
    return InputError(
        f"{name} applies to kind {', '.join(owners)} only, not {kind}",
        path=file,
        key=key,
        expected=f"no {name}, or kind: {' / '.join(owners)}",
    )


@dataclass
class MethodConfig:
    """A method of an experiment: its ``name`` (rows of tables), its ``kind`` (a key of `METHODS`) and the
    kind's ``options`` (an instance of ``spec.options``; its defaults when None). In YAML the options sit
    flat beside name and kind: ``{name: rr, kind: mosecrot, stitch: {relative: {k: 10}}}``."""

    name: str
    kind: str
    options: Any = None
    # This method's changes to the experiment's ``anchors:`` (e.g. ``{grow: {identical: true}}``): its anchors
    # are chosen again with them (`mosecrot.prepare.with_anchors`), so one experiment compares anchor sets.
    anchors: dict[str, Any] | None = None
    # This method's changes to the experiment's ``training:`` (e.g. ``{learning_rate: 3.0e-5}`` for a larger
    # model than the experiment's): its fine-tunings use them, cached apart from the experiment's own.
    training: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.options is None:
            self.options = method_spec(self.kind).options()

    @property
    def spec(self) -> MethodSpec:
        return method_spec(self.kind)

    @property
    def supervision(self) -> str:
        return self.spec.supervision

    @classmethod
    def from_config(cls, data: Any, prefix: str = "methods", file: str | None = None) -> MethodConfig:
        """Build from a mapping, every error naming its dotted key (``methods[0].stitch.relative.k``)."""
        name, kind = entry_keys(data, ("name", "kind"), prefix, file)
        spec = method_spec(kind, key=f"{prefix}.kind")
        options: Any = from_flat_entry(
            spec.options,
            data,
            ("name", "kind", "anchors", "training"),
            prefix,
            file,
            lambda key: _option_of_other_kinds(key, kind, f"{prefix}.{key}", file),
        )
        own = {}
        for name_, section in OWN_SECTIONS.items():
            changes = data.get(name_)
            if changes is None:
                continue
            key = f"{prefix}.{name_}"
            if not section.applies(spec):
                raise InputError(f"kind {kind} {section.refusal}", path=file, key=key, expected=f"no {name_} key")
            if not isinstance(changes, dict) or not changes:
                raise InputError("expected a non-empty mapping", path=file, key=key)
            with_changes(section.schema(), changes, key, file)  # checked now, applied at run time
            own[name_] = changes
        return cls(name, kind, options, **own)

    def to_config(self) -> dict[str, Any]:
        """The flat mapping `from_config` reads (what resolved configs and MLflow params show)."""
        own = {name: getattr(self, name) for name in OWN_SECTIONS if getattr(self, name)}
        return {"name": self.name, "kind": self.kind, **to_dict(self.options), **own}


@dataclass(frozen=True)
class OwnSection:
    """An experiment section a method entry may change for itself (``anchors:``, ``training:``): its schema,
    which kinds it applies to, and what the others are told."""

    schema: type
    applies: Callable[[MethodSpec], bool]
    refusal: str


OWN_SECTIONS = {
    "anchors": OwnSection(AnchorConfig, lambda spec: spec.reads_static, "reads no anchors"),
    # a kind whose seeds change nothing (deterministic) trains no model
    "training": OwnSection(TrainingConfig, lambda spec: not spec.deterministic, "fine-tunes no model"),
}


def with_changes(base: T, changes: dict[str, Any], key: str, file: str | None = None) -> T:
    """``base`` (an experiment section) with a method's ``changes`` applied, validated."""
    return from_dict(type(base), apply_settings(to_dict(base), flatten(changes)), prefix=key, file=file)


def method_anchors(base: AnchorConfig, changes: dict[str, Any], key: str = "anchors") -> AnchorConfig:
    """``base`` (the experiment's ``anchors:``) with a method's ``changes`` applied, validated."""
    return with_changes(base, changes, key)


def method_training(base: TrainingConfig, changes: dict[str, Any], key: str = "training") -> TrainingConfig:
    """``base`` (the experiment's ``training:``) with a method's ``changes`` applied, validated."""
    return with_changes(base, changes, key)


def method_config(name: str, kind: str, **options: Any) -> MethodConfig:
    """A validated `MethodConfig` from keyword options, as YAML would give them."""
    return MethodConfig.from_config({"name": name, "kind": kind, **options})


def needs_static(methods: list[MethodConfig]) -> bool:
    """Whether any of ``methods`` reads static vectors, dictionaries or anchors (`MethodSpec.reads_static`)."""
    return any(m.spec.reads_static for m in methods)


def default_methods() -> list[MethodConfig]:
    """What an experiment without ``methods:`` runs: RR at k = 50 with cosine similarity, labelled by weighting:

    - ``rr-standard``: similarities normalised to sum 1, negative ones clipped to 0 (``negatives: clip``);
    - ``rr-softmax``, ``rr-sparsemax``: tau = 0.1, this project's choice (the paper gives no temperature);
    - ``rr-softmax-tau1``, ``rr-sparsemax-tau1``: tau = 1, softmax / sparsemax over the raw similarities, the
      paper's literal reading;

    then the ``source_side: original`` variant (F_t with the standard weighting, clipped), LS, the
    own-tokenizer floor, frozen e5 and LR."""

    def rr(name: str, weighting: str, **relative: Any) -> MethodConfig:
        return method_config(name, "mosecrot", stitch={"relative": {"weighting": weighting, "k": 50, **relative}})

    return [
        rr("rr-standard", "standard", negatives="clip"),
        rr("rr-softmax", "softmax", tau=0.1),
        rr("rr-sparsemax", "sparsemax", tau=0.1),
        rr("rr-softmax-tau1", "softmax", tau=1.0),
        rr("rr-sparsemax-tau1", "sparsemax", tau=1.0),
        method_config("rr-original", "mosecrot", stitch={"source_side": "original", "relative": {"negatives": "clip"}}),
        method_config("ls", "ls"),
        method_config("own-tokenizer", "own_tokenizer"),
        method_config("frozen-e5", "frozen_encoder"),
        method_config("lr", "lr"),
    ]
