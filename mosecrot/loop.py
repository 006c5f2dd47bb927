"""The one loop over methods and seeds: `mosecrot run`, a sweep trial and a sweep's baselines all run it.

Seeds are the outer loop: the methods of one seed share English fine-tunings (LS, the floor and
``source_side: original`` variants reuse one model; a ``union`` anchor set's model serves every language),
which are dropped before the next seed. Each (seed, method) gives one record with the metric keys of
`mosecrot.metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any, TypedDict

from tqdm.auto import tqdm

from mosecrot.cache import DiskCache
from mosecrot.configschema import to_dict
from mosecrot.methods import MethodConfig, RunContext
from mosecrot.methods.registry import method_anchors, method_training
from mosecrot.metrics import mean_over_seeds
from mosecrot.prepare import Prepared, with_anchors
from mosecrot.training import LoopHooks, TrainingConfig

log = logging.getLogger(__name__)


class Record(TypedDict, total=False):
    """One method x seed: what results.json keeps, and what sweeps average over seeds."""

    method: str
    kind: str
    supervision: str
    seed: int
    params: dict[str, Any]
    metrics: dict[str, float]
    predictions: dict[str, list[int]]  # per-item predicted labels by `mosecrot.metrics.item_key` (``test.de``)
    deterministic: bool  # the method's result does not depend on the seed (`MethodSpec.deterministic`)
    seconds: float
    error: str  # only when the method raised and ``errors="record"``


def preflight_methods(methods: list[MethodConfig]) -> None:
    """Each method's own cheap checks (`MethodSpec.preflight`), before any data is prepared."""
    for method in methods:
        if method.spec.preflight is not None:
            method.spec.preflight(method.options)


def run_methods(
    prepared: Prepared | Callable[[int], Prepared],
    methods: list[MethodConfig],
    seeds: list[int],
    training: TrainingConfig,
    hooks: LoopHooks | None = None,
    *,
    cache: DiskCache | None = None,
    done: Collection[tuple[int, str]] = (),
    on_record: Callable[[Record], None] | None = None,
    errors: str = "raise",
    progress: bool = False,
) -> list[Record]:
    """Every method for every seed on ``prepared``; returns the records in run order.

    ``prepared``: the data every seed shares (``seed_scope: fine-tuning``), or a function that prepares each
    seed's own (``seed_scope: all``, `mosecrot.config.seeded_data_config`), called once per seed that has methods
    left to run. ``done``: (seed, method name) pairs to skip (a resumed run). ``on_record`` is called after each
    record (a run writes its results file). ``errors="record"``: a method that raises gets one record with
    ``error`` and is not run for later seeds, the others go on (a sweep's baselines); ``"raise"`` stops.
    ``progress``: one bar over the (seed, method) runs."""
    hooks = hooks or LoopHooks(progress=progress)

    def context(seed: int) -> RunContext:
        data = prepared(seed) if callable(prepared) else prepared
        return RunContext(data, training, hooks, cache or DiskCache(data.config.cache_dir))

    shared = None if callable(prepared) else context(0)
    todo = [(seed, m) for seed in seeds for m in methods if (seed, m.name) not in done]
    records: list[Record] = []
    failed: set[str] = set()
    bar = tqdm(total=len(todo), desc="methods", unit="run", disable=not progress or len(todo) < 2)
    ctx: RunContext | None = shared
    try:
        for i, (seed, method) in enumerate(todo):
            if ctx is None:  # the first method of a seed that prepares its own data
                ctx = context(seed)
            bar.set_postfix_str(f"{method.name} seed {seed}")
            if method.name not in failed:
                record = _run_one(ctx, method, seed, errors)
                if "error" in record:
                    failed.add(method.name)
                records.append(record)
                if on_record is not None:
                    on_record(record)
            bar.update()
            if i + 1 == len(todo) or todo[i + 1][0] != seed:
                ctx.forget_finetuned()
                ctx = shared
    finally:
        bar.close()
    return records


def _run_one(ctx: RunContext, method: MethodConfig, seed: int, errors: str) -> Record:
    record: Record = {
        "method": method.name,
        "kind": method.kind,
        "supervision": method.supervision,
        "seed": seed,
        "params": to_dict(method),
        "deterministic": method.spec.deterministic,
    }
    t = time.perf_counter()
    ctx.predictions = {}
    base, base_training = ctx.prepared, ctx.training
    try:
        if method.anchors:  # the method's own anchors, from the same vectors and dictionaries
            ctx.prepared = with_anchors(base, method_anchors(base.config.anchors, method.anchors))
        if method.training:  # its own fine-tuning budget (kept apart: fine-tunings are keyed by their settings)
            ctx.training = method_training(base_training, method.training)
        record["metrics"] = method.spec.run(ctx, method.options, seed)
        record["predictions"] = ctx.predictions
    except Exception as err:
        if errors != "record":
            raise
        log.exception("%s (seed %d) failed", method.name, seed)
        record.update({"metrics": {}, "error": f"{type(err).__name__}: {err}"})
    finally:
        ctx.prepared, ctx.training = base, base_training
    record["seconds"] = round(time.perf_counter() - t, 2)
    return record


def mean_metrics(records: list[Record]) -> dict[str, dict[str, float]]:
    """Per method name: every metric averaged over its seeds (`mosecrot.metrics.mean_over_seeds`); methods
    with a failed record are left out."""
    names = dict.fromkeys(r["method"] for r in records)
    out = {}
    for name in names:
        runs = [r for r in records if r["method"] == name]
        if not any("error" in r for r in runs):
            out[name] = mean_over_seeds([r["metrics"] for r in runs])
    return out
