"""What runs inside Ray (`orchestrator.ray_tune`), with Ray's functions replaced where no cluster is needed:
the worker loop's reports and checkpoints, the Tune function's TorchTrainer, the restart of a finished
trial, shared resources, the Optuna searcher and ASHA, the dashboard switch, and trial errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import ray
import ray.train
import ray.train.torch
from ray import tune

import orchestrator.ray_tune as ray_tune
from mosecrot.prepare import SharedResources
from orchestrator.search_space import load_search_space
from orchestrator.sweep import max_concurrent_trials, sweep_paths
from orchestrator.trial import CHECKPOINT_FILE, GRID_KEY, OBJECTIVE, REPORT_MEAN, EpochReporter, final_metrics


def _with_resources(space, **kw):
    space = copy.deepcopy(space)
    for k, v in kw.items():
        setattr(space.resources, k, v)
    return space


def _fake_run_trial(rank: int | None = None, epochs: int = 2):
    """A stand-in for `run_trial` that reports ``epochs`` epochs through the hooks it is given."""

    def run(space, params, hooks_factory, sink=None, progress=False, shared=None, expected=None):
        reporter = EpochReporter(space, "en", sink)
        hooks = hooks_factory(reporter)
        if rank is None:  # local mode: one process, no DDP
            assert hooks.is_main and hooks.prepare_model(reporter) is reporter
        else:
            assert hooks.prepare_model is ray.train.torch.prepare_model and hooks.is_main == (rank == 0)
        for epoch in range(1, epochs + 1):
            hooks.report({"epoch": epoch, "dev_macro_f1": 0.5, "dev_accuracy": 0.5, "dev_loss": 1.0})
        metrics = final_metrics(
            space, {"dev_macro_f1.en": 0.5, "test_macro_f1.de": 0.1, "test_macro_f1.fr": 0.2, "test_macro_f1.sw": 0.3}
        )
        return {"params": params, "metrics": metrics}

    return run


class _Rank:
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def get_world_rank(self) -> int:
        return self.rank


def _recording_report(reports: list):
    def report(metrics, checkpoint=None):
        saved = None
        if checkpoint is not None:  # read now: the worker's temp dir is gone after report returns
            saved = json.loads((Path(checkpoint.path) / CHECKPOINT_FILE).read_text())
        reports.append((metrics, saved))

    return report


@pytest.mark.parametrize("rank", [0, 1])
def test_worker_loop_reports_equally_on_every_rank_and_checkpoints_on_rank_0(quickstart_space, monkeypatch, rank):
    reports: list = []
    monkeypatch.setattr(ray.train, "get_context", lambda: _Rank(rank))
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray.train, "report", _recording_report(reports))
    monkeypatch.setattr(ray_tune, "run_trial", _fake_run_trial(rank))
    ray_tune.train_loop_per_worker({"space": quickstart_space, "params": {"anchors.count": 600}})
    assert len(reports) == 3  # two epochs + the final report, on every rank alike
    assert [m[OBJECTIVE] for m, _ in reports] == [0.5, 0.5, 0.5]
    final, saved = reports[-1]
    assert final[REPORT_MEAN] == pytest.approx(0.2)
    if rank == 0:
        assert saved["params"] == {"anchors.count": 600} and saved["metrics"][REPORT_MEAN] == pytest.approx(0.2)
    else:
        assert saved is None


def test_a_restarted_trial_reports_its_finished_train_run_instead_of_training(quickstart_space, monkeypatch, tmp_path):
    """The Train run is named after the trial: a trial restarted after its run finished gets the final
    checkpoint back from ray.train.get_checkpoint() and reports it again, without training."""
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps({"metrics": {OBJECTIVE: 0.7, REPORT_MEAN: 0.3, "x": "a"}}))
    reports: list = []
    monkeypatch.setattr(ray.train, "get_context", lambda: _Rank(0))
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: ray.train.Checkpoint.from_directory(tmp_path))
    monkeypatch.setattr(ray.train, "report", _recording_report(reports))
    monkeypatch.setattr(ray_tune, "run_trial", lambda *a, **k: pytest.fail("trained again"))
    ray_tune.train_loop_per_worker({"space": quickstart_space, "params": {"anchors.count": 600}})
    assert reports == [({OBJECTIVE: 0.7, REPORT_MEAN: 0.3, "x": "a"}, None)]


def test_local_mode_loop_reports_to_tune_without_ray_train(quickstart_space, monkeypatch):
    """workers_per_trial 0: the loop runs in the Tune trial's process, where ray.train.* refuses to run; it
    must report (epochs + final with the checkpoint) through ray.tune.report and never touch ray.train."""
    reports: list = []

    def refuse(*args, **kwargs):
        raise DeprecationWarning("ray.train.* is refused inside a Tune session")

    def tune_report(metrics, checkpoint=None):
        assert checkpoint is None or isinstance(checkpoint, tune.Checkpoint)
        _recording_report(reports)(metrics, checkpoint)

    for name in ("get_context", "report", "get_checkpoint"):
        monkeypatch.setattr(ray.train, name, refuse)
    monkeypatch.setattr(tune, "report", tune_report)
    monkeypatch.setattr(ray_tune, "run_trial", _fake_run_trial(None, epochs=1))
    ray_tune.train_loop_per_worker({"space": quickstart_space, "params": {"anchors.count": 700}, "local": True})
    assert [m[OBJECTIVE] for m, _ in reports] == [0.5, 0.5]
    assert reports[0][1] is None and reports[-1][1]["params"] == {"anchors.count": 700}


@pytest.mark.parametrize("workers", [0, 1])
def test_the_train_run_is_named_after_the_trial_and_only_workers_report_through_the_callback(
    quickstart_space, monkeypatch, workers
):
    """Local mode reports straight to Tune: its TorchTrainer gets no TuneReportCallback, whose queue actor (a
    process per trial) the trial's main thread would poll every 0.2 s while training (measured: seconds per
    trial on 2 cores). With Train workers the callback is what forwards their reports."""
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

    monkeypatch.setattr(ray_tune, "TorchTrainer", FakeTrainer)
    monkeypatch.setattr(ray_tune, "TuneReportCallback", FakeCallback)
    monkeypatch.setattr(tune, "get_context", lambda: FakeContext())
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    space = _with_resources(quickstart_space, workers_per_trial=workers, cpus_per_worker=1.0)
    ray_tune.tune_trainable({"anchors.count": 700}, space=space, storage_path="/storage")
    run_config = built["run_config"]
    assert run_config.name == "abc12_00000" and run_config.storage_path == "/storage/exp-train"
    assert built["train_loop_config"]["local"] is (workers == 0)
    assert [type(c) for c in run_config.callbacks] == ([] if workers == 0 else [FakeCallback])


def test_finished_local_trial_is_found_in_its_own_directory(tmp_path):
    def put(directory: Path, metrics: dict) -> None:
        directory.mkdir(parents=True)
        (directory / CHECKPOINT_FILE).write_text(json.dumps({"metrics": metrics}))

    put(tmp_path / "exp" / "tune_trainable_abc12_3_anchors=600_2026" / "checkpoint_000000", {"objective": 0.2})
    (tmp_path / "exp" / "tune_trainable_abc99_4_anchors=700_2026").mkdir()  # unfinished: no checkpoint
    assert ray_tune.finished_local_trial(str(tmp_path / "exp"), "abc12")["metrics"] == {"objective": 0.2}
    assert ray_tune.finished_local_trial(str(tmp_path / "exp"), "abc99") is None
    assert ray_tune.finished_local_trial(str(tmp_path / "exp"), "abc1") is None  # ids match whole
    assert ray_tune.finished_local_trial(str(tmp_path / "nowhere"), "abc12") is None


def test_local_mode_trial_holds_the_worker_resources(quickstart_space):
    local = _with_resources(quickstart_space, workers_per_trial=0, cpus_per_worker=0.5)
    assert local.resources.local_mode and local.resources.processes_per_trial == 1
    assert max_concurrent_trials(_with_resources(local, max_concurrent_trials=None), {"CPU": 2}) == 4
    fn = ray_tune.make_trainable(local, None, worker_resources={"worker_node": 0.01})
    assert fn._resources.required_resources == {"CPU": 0.5, "worker_node": 0.01}
    ray_workers = ray_tune.make_trainable(quickstart_space, None, driver_resources={"head": 0.01})
    assert ray_workers._resources.required_resources == {"head": 0.01}  # Train workers hold the CPUs


def test_a_reused_trial_process_fetches_the_shared_resources_once(monkeypatch):
    """What a trial loads lazily into the shared resources (fastText subword models) stays for the next trial
    in the same process, as in the plain loop; a new sweep's resources replace the old ones."""

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
    monkeypatch.setattr(ray_tune, "FETCHED_SHARED", {})
    first = ray_tune.resolve_shared(ray_tune.SharedRef(Ref("a")))
    assert ray_tune.resolve_shared(ray_tune.SharedRef(Ref("a"))) is first and fetched == ["a"]
    other = ray_tune.resolve_shared(ray_tune.SharedRef(Ref("b")))
    assert other is not first and other.key == {"sweep": "b"} and fetched == ["a", "b"]
    assert list(ray_tune.FETCHED_SHARED) == ["b"]
    assert ray_tune.resolve_shared(None) is None


@pytest.mark.parametrize("mode", ["max", "min"])
def test_optuna_searcher_gets_metric_mode_and_a_sqlite_study(tmp_path, mode):
    import optuna

    space = load_search_space("quickstart", [f"objective.mode={mode}", "scheduler.kind=asha"])
    paths = sweep_paths(space, str(tmp_path))
    Path(paths.experiment_path).mkdir(parents=True)
    searcher, param_space = ray_tune.make_searcher(space, paths.optuna_storage, paths.study_name)
    assert param_space == {} and searcher.metric == OBJECTIVE and searcher.mode == mode
    study = optuna.load_study(study_name="quickstart", storage=paths.optuna_storage)
    assert study.direction.name == ("MAXIMIZE" if mode == "max" else "MINIMIZE")
    assert ray_tune.make_scheduler(space)._max_t == 2
    grid = load_search_space("paper_taxi1500")
    grid_paths = sweep_paths(grid, str(tmp_path))
    alg, grid_space = ray_tune.make_searcher(grid, grid_paths.optuna_storage, grid_paths.study_name)
    assert alg is None and len(grid_space[GRID_KEY]["grid_search"]) == grid.num_trials


def test_restored_optuna_searcher_fails_trials_asked_by_a_dead_driver(tmp_path):
    """A driver killed between Optuna's ask and Tune's state save leaves a RUNNING Optuna trial no Tune
    trial owns: the restored searcher marks it FAIL, and keeps the trials its state owns."""
    import optuna

    space = load_search_space("quickstart")
    paths = sweep_paths(space, str(tmp_path))
    Path(paths.experiment_path).mkdir(parents=True)
    searcher, _ = ray_tune.make_searcher(space, paths.optuna_storage, paths.study_name)
    assert searcher.suggest("t1") and searcher.suggest("t2")
    searcher.on_trial_complete("t1", {OBJECTIVE: 0.5})
    ckpt = tmp_path / "searcher.pkl"
    searcher.save(str(ckpt))  # Tune's last state save: it owns t1 (done) and t2 (running)
    study = optuna.load_study(study_name=space.name, storage=paths.optuna_storage)
    orphan = study.ask()  # the dead driver's next suggestion, never saved by Tune
    restored, _ = ray_tune.make_searcher(space, paths.optuna_storage, paths.study_name)
    restored.restore(str(ckpt))
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "COMPLETE", 1: "RUNNING", 2: "FAIL"} and orphan.number == 2
    assert restored.fail_orphaned_trials() == []  # idempotent
    restored.on_trial_complete("t2", {OBJECTIVE: 0.25})
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE", "FAIL"]


def test_asha_horizon_counts_the_final_report():
    space = load_search_space("quickstart", ["scheduler.kind=asha"])
    assert space.scheduler.max_t == 1 and ray_tune.asha_max_t(space) == 2


@pytest.mark.parametrize("dashboard", [False, True])
def test_embedded_ray_serves_the_dashboard_only_when_asked(dashboard):
    """Embedded Ray starts without the dashboard's web UI (seconds of start-up and CPU on a small machine)
    unless ``mosecrot sweep --dashboard`` asks for it."""
    from ray._private import worker  # the driver's view of its node: where (if anywhere) the web UI listens

    assert not ray.is_initialized()
    try:
        assert ray_tune.ensure_ray(num_cpus=1, dashboard=dashboard)
        url = worker.get_dashboard_url()
        assert bool(url) is dashboard, url
        if dashboard:
            assert url.startswith("127.0.0.1:"), url  # loopback only
    finally:
        ray.shutdown()


def test_a_failed_trials_error_is_read_locally_before_storage_has_it(tmp_path):
    from types import SimpleNamespace

    local = tmp_path / "error.txt"
    local.write_text("Failure # 1\nInjectedFault: injected fault: trial abc\n")
    not_synced = SimpleNamespace(get_error=lambda: None, error_file=str(local))
    assert "InjectedFault" in ray_tune.trial_error_text(not_synced)

    def unreadable():
        raise OSError("storage down")

    assert "InjectedFault" in ray_tune.trial_error_text(SimpleNamespace(get_error=unreadable, error_file=str(local)))
    assert (
        ray_tune.trial_error_text(SimpleNamespace(get_error=lambda: "from storage", error_file=str(local)))
        == "from storage"
    )
    assert ray_tune.trial_error_text(SimpleNamespace(get_error=lambda: None, error_file=str(tmp_path / "none"))) is None


def test_a_trial_s_predictions_and_system_samples_come_from_its_train_run_when_tune_has_no_checkpoint(tmp_path):
    """Train V2 keeps the final checkpoint in the trial's Train run (``STORAGE/NAME-train/TRIAL_ID``): the MLflow
    callback reads the payload (predictions, rank 0's system samples) from its latest checkpoint there."""
    import json
    from types import SimpleNamespace

    import pyarrow.fs as pafs

    from orchestrator.ray_tune import trial_predictions
    from orchestrator.trial import CHECKPOINT_FILE

    run = tmp_path / "quickstart-train" / "abc123"
    for stamp, value in (("2026-12-07_02-08-11.1", 1), ("2026-12-07_02-09-30.5", 2)):
        (run / f"checkpoint_{stamp}").mkdir(parents=True)
        payload = {"metrics": {"objective": value}, "predictions": {"v": value}, "system": [{"timestamp": 1.0}]}
        (run / f"checkpoint_{stamp}" / CHECKPOINT_FILE).write_text(json.dumps(payload))
    trial = SimpleNamespace(
        checkpoint=None,
        trial_id="abc123",
        # what Tune's StorageContext holds (Ray 2.60's has no storage_path)
        storage=SimpleNamespace(
            storage_filesystem=pafs.LocalFileSystem(), storage_fs_path=str(tmp_path), experiment_dir_name="quickstart"
        ),
    )
    found = trial_predictions(trial)
    assert found is not None and found["predictions"] == {"v": 2} and found["system"] == [{"timestamp": 1.0}]
    trial.trial_id = "other"
    assert trial_predictions(trial) is None  # no Train run: logged without them, never not at all
