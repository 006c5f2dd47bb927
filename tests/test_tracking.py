"""MLflow records of a sweep (`orchestrator.tracking`): URIs, flattening, and the tracker's parent and child
runs on a SQLite store in a temp dir (no server)."""

from __future__ import annotations

import socket
import time

import pytest

from mosecrot.errors import InputError
from orchestrator.tracking import (
    SweepTracker,
    check_tracking,
    config_name,
    flatten,
    metric_values,
    param_values,
    resolve_tracking_uri,
    sanitize_key,
    ui_command,
)
from orchestrator.trial import OBJECTIVE

W, TAU, K, SP = ("method.stitch.relative." + x for x in ("weighting", "tau", "k", "sparsify"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_flattening_keeps_dotted_keys():
    assert sanitize_key("test_macro_f1.de") == "test_macro_f1.de"
    assert sanitize_key("a@b[0]") == "a_b_0_"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}
    assert param_values({K: "all", TAU: None, "seeds": [0, 1], "x": {"y": True}}) == {
        K: "all",
        TAU: "null",
        "seeds": "[0, 1]",
        "x.y": "True",
    }
    result = {
        "test_macro_f1.de": 0.5,
        "training_iteration": 3,
        "done": True,
        "config": {"a": 1},
        "date": "x",
        "nan": float("nan"),
        OBJECTIVE: 0.7,
        "anchors.de": 812,
    }
    assert metric_values(result) == {"test_macro_f1.de": 0.5, OBJECTIVE: 0.7, "anchors.de": 812.0}


def test_tracking_uri_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert config_name({"method.x.sparsify": "threshold", "method.x.threshold": 0.6554, "anchors.count": 9}) == (
        "threshold=0.66 n=9"
    )
    # one UI command everywhere: the sweep's runs, on the store the user named
    assert ui_command(sweep="quickstart") == "mosecrot ui quickstart"
    assert ui_command("q", "sqlite:///x.db") == "mosecrot ui q --tracking-uri sqlite:///x.db"


def test_unreachable_mlflow_server_fails_fast():
    t = time.perf_counter()
    with pytest.raises(InputError, match="unreachable"):
        check_tracking(f"http://127.0.0.1:{_free_port()}", timeout=2)
    assert time.perf_counter() - t < 5


def test_tracker_parent_children_statuses_and_dedupe(quickstart_space, logged_sweep):
    tracker, ids, params = logged_sweep
    assert all(ids.values())  # every child was logged
    assert tracker.log_trial("t1", "trial_1", params, {}, "FINISHED") is None  # exactly one child per trial
    parent = tracker.parent_id
    client = tracker.client
    assert client.get_run(parent).info.status == "FINISHED"
    assert client.get_run(parent).data.tags["git_revision"]
    assert "search_space.resolved.yaml" in [a.path for a in client.list_artifacts(parent)]
    kids = {r.data.tags.get("trial_id") or r.data.tags["baseline"]: r for r in tracker.children()}
    assert set(kids) == {"t1", "t2", "t3", "lr"}
    t1 = kids["t1"]
    assert t1.info.status == "FINISHED" and kids["t3"].info.status == "FAILED"
    assert kids["t3"].data.tags["error"] == "boom"
    assert t1.data.metrics["test_macro_f1.de"] == 0.5 and "training_iteration" not in t1.data.metrics
    assert t1.data.params[K] == "all" and t1.data.tags["method"] == "mosecrot"
    assert t1.data.tags["selection_protocol"] == "english-dev" and t1.data.tags["seed"] == "0"
    assert kids["lr"].data.tags["kind"] == "baseline" and kids["lr"].data.tags["supervision"] == "target-supervised"

    resumed = SweepTracker(quickstart_space, tracker.uri, sweep_key=tracker.sweep_key)
    assert resumed.start(resume=True) == parent  # resume reopens the same parent
    assert client.get_run(parent).info.status == "RUNNING"
    assert resumed.log_trial("t2", "trial_2", params, {}, "FINISHED") is None
    resumed.end("FINISHED")
    assert client.get_run(parent).info.status == "FINISHED"


def test_a_trial_run_spans_its_training_with_epoch_curves_system_metrics_and_the_baselines_keys(
    quickstart_space, tmp_path
):
    """A trial's run: named by its configuration, started and ended when it trained, per-epoch metrics with their
    steps, rank 0's system samples as ``system/`` metrics, its resolved config; its params share the ``method.``
    key space with a baseline's, which logs only its own kind's options."""
    from mlflow import MlflowClient

    from orchestrator.tracking import CONFIG_ARTIFACT

    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "s"))
    tracker.start()
    relative = "method.stitch.relative."
    params = {"anchors.count": 2471, relative + "weighting": "softmax", relative + "tau": 0.0512, relative + "k": 10}
    t0 = 1_800_000_000.0
    epochs = [{"epoch": e, "timestamp": t0 + 30 * e, "dev_macro_f1.en": 0.2 * e, "objective": 0.2 * e} for e in (1, 2)]
    system = [{"timestamp": t0 + 5 * i, "cpu_utilization_percentage": 50.0 + i} for i in range(3)]
    final = {"objective": 0.4, "test_macro_f1.de": 0.123456789, "report_mean": 0.12, "time_total_s": 70.0}
    run_id = tracker.log_trial(
        "t1", None, params, final, "FINISHED", epochs=epochs, system=system, ended_at=t0 + 70, config={"x": 1}
    )
    ls = tracker.log_baseline("ls", "ls", "zero-shot", {"test_macro_f1.de": 0.2}, [0], {"name": "ls", "kind": "ls"})
    client = MlflowClient(tracking_uri=tracker.uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "softmax k=10 tau=0.051 n=2471"
    assert (run.info.start_time, run.info.end_time) == (int(t0 * 1000), int((t0 + 70) * 1000))
    curve = client.get_metric_history(run_id, "epoch/dev_macro_f1.en")
    assert [(m.step, m.value, m.timestamp) for m in curve] == [
        (1, 0.2, int((t0 + 30) * 1000)),
        (2, 0.4, int((t0 + 60) * 1000)),
    ]
    assert [m.value for m in client.get_metric_history(run_id, "system/cpu_utilization_percentage")] == [50, 51, 52]
    assert run.data.metrics["test_macro_f1.de"] == 0.1235  # rounded for the UI
    assert run.data.params["method.kind"] == "mosecrot" and run.data.params[relative + "k"] == "10"
    assert {a.path for a in client.list_artifacts(run_id)} == {CONFIG_ARTIFACT}
    baseline = client.get_run(ls)
    assert baseline.info.run_name == "baseline: ls" and baseline.data.params["method.kind"] == "ls"
    assert not any(k.startswith(relative) for k in baseline.data.params)  # LS does not use relative options
