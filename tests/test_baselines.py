"""A sweep's baselines (`orchestrator.baselines`): each logged once as a ``kind=baseline`` MLflow child run, a
failing one recorded FAILED without stopping the others, and static resources prepared only when needed.
The method kinds' run functions are replaced (no data, no training)."""

from __future__ import annotations

import dataclasses
import types

import pytest

import orchestrator.baselines as baselines_module
from mosecrot.methods import METHODS
from orchestrator.baselines import log_baselines
from orchestrator.search_space import load_search_space
from orchestrator.tracking import SweepTracker
from orchestrator.trial import REPORT_MEAN

LANGUAGES = ("de", "fr", "sw")


def _prepared(static: bool) -> types.SimpleNamespace:
    return types.SimpleNamespace(static=static, config=types.SimpleNamespace(cache_dir=None))


def _replace_run(monkeypatch, kind: str, run) -> None:
    monkeypatch.setitem(METHODS, kind, dataclasses.replace(METHODS[kind], run=run))


def test_log_baselines_records_each_baseline_once_and_failures_as_failed(tmp_path, monkeypatch):
    space = load_search_space("quickstart", ["baselines=[lr, ls]"])
    calls = []

    def fake_lr(ctx, options, seed):
        calls.append(("lr", seed))
        return {f"test_macro_f1.{lang}": 0.5 for lang in LANGUAGES}

    def broken_ls(ctx, options, seed):
        raise RuntimeError("no anchors")

    monkeypatch.setattr(baselines_module, "prepare", lambda cfg, static, progress=False: _prepared(static))
    _replace_run(monkeypatch, "lr", fake_lr)
    _replace_run(monkeypatch, "ls", broken_ls)
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    out = log_baselines(space, tracking_uri=uri)
    assert set(out) == {"lr"} and out["lr"][REPORT_MEAN] == 0.5 and calls == [("lr", 0)]
    assert log_baselines(space, tracking_uri=uri) == {} and len(calls) == 1  # lr logged once; ls tried again
    tracker = SweepTracker(space, uri, sweep_key="quickstart:baselines")
    tracker.start(resume=True)
    kids = {r.data.tags["baseline"]: r for r in tracker.children()}
    assert sorted(r.data.tags["baseline"] for r in tracker.children()) == ["lr", "ls", "ls"]
    assert kids["lr"].info.status == "FINISHED" and kids["lr"].data.metrics["test_macro_f1.de"] == 0.5
    # the trials' key space (method.*), its own options only, no stitching settings
    assert kids["lr"].data.params["method.classifier_c"] == "1.0" and kids["lr"].data.params["method.kind"] == "lr"
    assert not any(k.startswith(("stitch", "method.stitch")) for k in kids["lr"].data.params)
    assert kids["lr"].info.run_name == "baseline: lr" and kids["lr"].info.end_time >= kids["lr"].info.start_time
    assert kids["ls"].info.status == "FAILED" and "no anchors" in kids["ls"].data.tags["error"]
    tracker.end()


@pytest.mark.parametrize("baselines,prepares", [("[lr, frozen_encoder]", True), ("[frozen_encoder]", False)])
def test_baselines_prepare_static_resources_the_sweep_did_not(baselines, prepares, tmp_path, monkeypatch):
    """A sweep of sentence encoders prepares no static vectors; a baseline that reads them gets its own."""
    space = load_search_space("quickstart", [f"baselines={baselines}"])
    prepared_for = []

    def fake_prepare(cfg, static, progress=False):
        prepared_for.append(static)
        return _prepared(static)

    def fake_lr(ctx, options, seed):
        assert ctx.prepared.static  # static parts exist whenever a static method runs
        return {f"test_macro_f1.{lang}": 0.5 for lang in LANGUAGES}

    monkeypatch.setattr(baselines_module, "prepare", fake_prepare)
    _replace_run(monkeypatch, "lr", fake_lr)
    _replace_run(
        monkeypatch, "frozen_encoder", lambda ctx, options, seed: {f"test_macro_f1.{lang}": 0.4 for lang in LANGUAGES}
    )
    out = log_baselines(space, tracking_uri=f"sqlite:///{tmp_path}/mlruns.db", prepared=_prepared(False))
    assert set(out) == ({"lr", "frozen_encoder"} if prepares else {"frozen_encoder"})
    assert prepared_for == ([True] if prepares else [])
