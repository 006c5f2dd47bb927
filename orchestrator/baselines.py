"""A sweep's baselines: every baseline method run once (no Ray) by the same loop as `mosecrot run`, and
logged as a ``kind=baseline`` MLflow child run with the metric keys of the trials."""

from __future__ import annotations

import time
from typing import Any

from mosecrot.configschema import to_dict
from mosecrot.loop import Record, mean_metrics, run_methods
from mosecrot.methods import needs_static
from mosecrot.prepare import Prepared, prepare
from mosecrot.run import method_predictions
from mosecrot.training import LoopHooks
from orchestrator.search_space import SearchSpace, baseline_methods
from orchestrator.tracking import BASELINE_TAG, SweepTracker
from orchestrator.trial import final_metrics, seeded_preparer


def log_baselines(
    space: SearchSpace,
    tracker: SweepTracker | None = None,
    tracking_uri: str | None = None,
    progress: bool = False,
    prepared: Prepared | None = None,
) -> dict[str, dict[str, float]]:
    """Run every baseline of the sweep not yet logged and log it as a ``kind=baseline`` child run, with
    metrics averaged over the experiment's seeds under the same keys as trials. Returns name -> metrics.
    A baseline that raises is logged FAILED (with the error) and the others still run; it is tried again
    next time. ``prepared``: the sweep's data, used when it has every static part the baselines read.

    Without a `tracker`, a parent run is started (and ended) for the baselines alone."""
    methods = baseline_methods(space)
    own = tracker is None
    if tracker is None:
        tracker = SweepTracker(space, tracking_uri, sweep_key=f"{space.name}:baselines")
        tracker.start(tags={"baselines_only": "true"}, resume=True)
    out: dict[str, dict[str, float]] = {}
    status = "FINISHED"
    try:
        todo = [m for m in methods if not tracker.logged(BASELINE_TAG, m.name, finished_only=True)]
        if not todo:
            return out
        exp = space.experiment_config()
        static = needs_static(todo)
        if prepared is None or (static and not prepared.static):  # the sweep's data lacks static parts
            prepared = prepare(exp, static=static, progress=progress)
        spans: dict[str, tuple[float, float]] = {}  # method -> (start, end), epoch seconds, over its seeds

        def timed(record: Record) -> None:
            end = time.time()
            start = end - float(record.get("seconds") or 0.0)
            first, _ = spans.get(record["method"], (start, end))
            spans[record["method"]] = (min(first, start), end)

        records = run_methods(
            seeded_preparer(exp, prepared, static, progress) if exp.seed_scope == "all" else prepared,
            todo,
            exp.seeds,
            exp.training,
            LoopHooks(progress=progress),
            errors="record",
            progress=progress,
            on_record=timed,
        )
        means = mean_metrics(records)
        errors = {r["method"]: r["error"] for r in records if "error" in r}
        for method in todo:
            params: dict[str, Any] = method.to_config()
            started, ended = spans.get(method.name, (None, None))
            config = {"method": params, "experiment": to_dict(exp)}
            if method.name in errors:
                tracker.log_baseline(
                    method.name,
                    method.kind,
                    method.supervision,
                    {},
                    list(exp.seeds),
                    params,
                    status="FAILED",
                    error=errors[method.name],
                    started_at=started,
                    ended_at=ended,
                    config=config,
                )
                continue
            out[method.name] = final_metrics(space, means[method.name])
            tracker.log_baseline(
                method.name,
                method.kind,
                method.supervision,
                out[method.name],
                list(exp.seeds),
                params,
                predictions=method_predictions([r for r in records if r["method"] == method.name], prepared),
                started_at=started,
                ended_at=ended,
                config=config,
            )
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if own:
            tracker.end(status)
    return out
