"""What a method kind is: `MethodSpec`, its self-description (run function, options, supervision, what it
needs prepared).

A method runs as ``spec.run(ctx, options, seed) -> {metric key: value}`` (keys of `mosecrot.metrics`:
``test_macro_f1.de``, ``dev_macro_f1.en``, ...), where ``options`` is an instance of ``spec.options``: the
dataclass of the settings the kind reads, with its defaults, written flat beside ``name`` and ``kind`` in
an experiment's ``methods:`` list (``{name: rr, kind: mosecrot, stitch: {...}}``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ZERO_SHOT, TARGET_SUPERVISED = "zero-shot", "target-supervised"


@dataclass
class NoOptions:
    """For a kind without settings."""


@dataclass(frozen=True)
class MethodSpec:
    """One method kind, described once; `mosecrot.methods.registry.METHODS` maps kinds to specs.

    ``run(ctx, options, seed)`` computes the metrics (``ctx``: a `mosecrot.methods.context.RunContext`).
    ``options``: the dataclass of the kind's settings; its ``validate(prefix)``, if any, runs when a config
    is loaded. ``supervision``: zero-shot (trained on English only, selected on English dev) or
    target-supervised (trained on target labels: a reference, never a transfer result). ``reads_static``:
    whether it reads static vectors, dictionaries or anchors (`prepare` builds them only then).
    ``preflight(options)``: checks that need more than the option values (a model's tokenizer files), made
    before any data is prepared. ``summary``: one line for listings and errors. ``deterministic``: the run seed
    changes nothing (a closed-form or lbfgs classifier on fixed vectors): its seeds are one result, and tables
    show no spread for it."""

    kind: str
    run: Callable[[Any, Any, int], dict[str, float]]
    options: type = NoOptions
    supervision: str = ZERO_SHOT
    reads_static: bool = False
    preflight: Callable[[Any], None] | None = None
    summary: str = ""
    deterministic: bool = False
