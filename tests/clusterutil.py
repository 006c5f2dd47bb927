"""Real components for integration tests: a Ray cluster started with `ray start` (head + worker nodes on
127.0.0.1), an `mlflow server` on loopback, and helpers to read their state.

Everything is started as a subprocess of the test and stopped by the PIDs the test started (never by
name): `mlflow server` by its process group, Ray nodes by the processes that carry the cluster's own temp
dir in their command line or environment (GCS, raylets, dashboard, log monitors, and the dashboard and
runtime-env agents and the Ray client server, which outlive their raylet and ignore SIGTERM), plus the
descendants of those. Ray's unix sockets live under that temp dir, so it is short and in /tmp (107-byte
limit).

Authentication: Ray 2.60 enables token authentication for a new cluster whenever ``~/.ray/auth_token``
exists (any earlier ``ray.init()`` on the machine writes one), and the dashboard/job server then answers
401 to requests without the token. `ray_auth_env` gives every test cluster its own token, passed by
environment to the nodes and to every client (sweep drivers, ``ray job submit``), so a test never depends
on, nor touches, the user's ``~/.ray``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
RAY_BIN, MLFLOW_BIN = str(VENV_BIN / "ray"), str(VENV_BIN / "mlflow")
OBJECT_STORE = str(200 * 1024**2)


# Variables of this shell that would point a test's processes at another store, cluster or placement.
FOREIGN_ENV = (
    "MLFLOW_TRACKING_URI",
    "RAY_ADDRESS",
    "RAY_AUTH_TOKEN_PATH",
    "MOSECROT_DRIVER_RESOURCES",
    "MOSECROT_WORKER_RESOURCES",
)


def sweep_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a sweep a test starts (driver, Ray nodes, job entrypoints): offline hubs, Ray usage
    stats off, the data directory by absolute path (job working dirs are copies), ``cache`` as the disk
    cache when given, ``extra`` on top, and nothing of `FOREIGN_ENV`."""
    from mosecrot.paths import data_dir

    env = {
        **os.environ,
        "MOSECROT_DATA_DIR": str(data_dir().resolve()),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if cache is not None:
        env["MOSECROT_CACHE_DIR"] = str(cache)
    for key in FOREIGN_ENV:
        env.pop(key, None)
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_auth_env() -> dict[str, str]:
    """Token authentication with a fresh token for one test cluster and its clients (see the module doc)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def wait_http(url: str, timeout: float, token: str | None = None) -> None:
    """Poll `url` until it answers 200 (with ``Authorization: Bearer token`` when given); TimeoutError with
    the last failure otherwise."""
    deadline = time.time() + timeout
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    last: object = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as err:
            last = err
            if err.code in (401, 403):  # the server is up and refuses us: waiting will not help
                raise PermissionError(f"{url}: {err}") from None
        except OSError as err:
            last = err
        time.sleep(1)
    raise TimeoutError(f"{url} not answering within {timeout:.0f} s (last: {last})")


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes (TimeoutError)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


# --- MLflow ---------------------------------------------------------------------------------------------


def mlflow_runs(base: str, experiment: str) -> list[dict]:
    """Every run of `experiment` through the server's REST API ([] when the experiment does not exist)."""

    def post(path, body):
        req = urllib.request.Request(
            base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    q = urllib.parse.urlencode({"experiment_name": experiment})
    try:
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?{q}", timeout=10) as r:
            exp_id = json.loads(r.read())["experiment"]["experiment_id"]
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return []
        raise
    return post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 1000}).get("runs", [])


def tags_of(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def metrics_of(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


def runs_by_kind(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(tags_of(r).get("kind", "?"), []).append(r)
    return out


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with a SQLite store and local artifacts under `root`."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = Path(root), env
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                MLFLOW_BIN,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{self.root}/mlflow.db",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--workers",
                "1",
            ],
            env=self.env,
            stdout=open(self.root / "mlflow.out", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(self.uri + "/health", timeout)
        return self

    def runs(self, experiment: str) -> list[dict]:
        return mlflow_runs(self.uri, experiment)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (then SIGKILL) the process group of a process started with ``start_new_session=True``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


# --- Ray ------------------------------------------------------------------------------------------------


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_with(marker: str) -> list[int]:
    """PIDs (not this process) whose command line contains `marker`."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid() and marker in cmdline(int(proc.name)):
            out.append(int(proc.name))
    return out


def children_of(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(proc.name))
    return out


def environ_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def descendants(pids: set[int]) -> set[int]:
    """`pids` and every process below them (by parent PID)."""
    parent: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, frontier = set(pids), set(pids)
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ray_pids(ray_tmp: Path) -> set[int]:
    """The live processes of the Ray nodes that use `ray_tmp`: those naming it in their command line or
    carrying ``RAY_TMPDIR=ray_tmp`` in their environment (agents and the client server rename themselves
    and lose the marker from their command line), and their descendants (workers)."""
    marker, env_marker = str(ray_tmp), f"RAY_TMPDIR={ray_tmp}\0"
    own = os.getpid()
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != own:
            pid = int(proc.name)
            if marker in cmdline(pid) or environ_has(pid, env_marker):
                found.add(pid)
    return {p for p in descendants(found) if p != own and alive(p)}


def stop_our_ray(ray_tmp: Path) -> None:
    """Stop the Ray nodes a test started, by PID (`ray_pids`): SIGTERM, then SIGKILL what is left after
    8 s (Ray's agents ignore SIGTERM once their raylet is gone)."""
    pids = ray_pids(ray_tmp)
    for sig, wait in ((signal.SIGTERM, 8), (signal.SIGKILL, 15)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and any(alive(pid) for pid in pids):
            time.sleep(0.5)


class RayCluster:
    """A head node (optionally with the dashboard and its job server) plus worker nodes, all on 127.0.0.1,
    each started with `ray start` under one short temp dir; `stop()` ends them by PID."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
        # The nodes use the clients' token when `env` has one (`ray_auth_env`), else their own.
        auth = {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN") if k in env} or ray_auth_env()
        self.env = {**env, **auth, "RAY_TMPDIR": str(self.tmp), "RAY_USAGE_STATS_ENABLED": "0"}
        self.token = self.env["RAY_AUTH_TOKEN"] if self.env.get("RAY_AUTH_MODE") == "token" else None
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_port: int | None = None
        self.workers: dict[str, int] = {}  # name -> raylet PID

    @property
    def dashboard_url(self) -> str:
        assert self.dashboard_port, "the head was started without the dashboard"
        return f"http://127.0.0.1:{self.dashboard_port}"

    def raylets(self) -> set[int]:
        return {p for p in pids_with(str(self.tmp)) if "/raylet/raylet" in cmdline(p).split(" ", 1)[0]}

    def _ray_start(self, args: list[str], log: str, timeout: float = 240) -> None:
        out = subprocess.run(
            [
                RAY_BIN,
                "start",
                *args,
                "--node-ip-address",
                "127.0.0.1",
                "--object-store-memory",
                OBJECT_STORE,
                "--disable-usage-stats",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        with open(self.logs / log, "a") as f:
            f.write(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")

    def start_head(
        self, num_cpus: int = 1, resources: dict[str, float] | None = None, dashboard: bool = False
    ) -> RayCluster:
        args = ["--head", "--port", str(self.port), "--num-cpus", str(num_cpus), "--temp-dir", str(self.tmp)]
        if dashboard:
            self.dashboard_port = free_port()
            args += [
                "--include-dashboard",
                "true",
                "--dashboard-host",
                "127.0.0.1",
                "--dashboard-port",
                str(self.dashboard_port),
                "--dashboard-agent-listen-port",
                str(free_port()),
                "--ray-client-server-port",
                str(free_port()),
            ]
        else:
            args += ["--include-dashboard", "false"]
        if resources:
            args += ["--resources", json.dumps(resources)]
        self._ray_start(args, "head.out")
        if dashboard:
            wait_http(self.dashboard_url + "/api/version", 120, token=self.token)
        return self

    def add_worker(self, name: str, num_cpus: int = 1, resources: dict[str, float] | None = None) -> int:
        """Start a worker node; returns its raylet's PID (the one `kill_worker` kills)."""
        before = self.raylets()
        # Its own temp dir (under the head's, so `stop` finds it), as a node of a real cluster has its own
        # disk: nodes sharing one session dir share ``runtime_resources``, and a node that sets up a job's
        # working_dir re-extracts it (overwrite) under the feet of the job driver running in it on the head.
        args = ["--address", self.address, "--num-cpus", str(num_cpus), "--temp-dir", str(self.tmp / name)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        self._ray_start(args, f"{name}.out")
        new = wait_for(lambda: self.raylets() - before, 30, what=f"raylet of worker node {name}")
        assert len(new) == 1, new
        self.workers[name] = new.pop()
        return self.workers[name]

    def kill_worker(self, name: str) -> int:
        """SIGKILL the worker node's raylet (its workers and agents die with it); returns the PID."""
        pid = self.workers.pop(name)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10, what=f"raylet {pid} gone")
        return pid

    def train_workers_on(self, name: str) -> list[int]:
        """PIDs of Ray Train worker processes whose raylet is worker node `name`'s."""
        raylet = self.workers.get(name)
        if raylet is None:
            return []
        return [p for p in children_of(raylet) if "RayTrainWorker" in cmdline(p)]

    def pids_that_logged(self, text: str) -> set[str]:
        """PIDs of the worker processes, on any node of this cluster (killed ones included), whose log files
        (``worker-<id>-<job>-<pid>.out|err`` under each node's session dir) hold `text`. The files are written
        by the process itself, unlike the copy streamed to the driver, which a driver that exits soon after
        may never receive."""
        pids = set()
        for f in self.tmp.glob("**/session_*/logs/worker-*"):
            # session_latest links to a session dir the glob also visits: read each file once
            if f.suffix in (".out", ".err") and f.is_file() and "session_latest" not in f.parts:
                try:
                    if text in f.read_text(errors="replace"):
                        pids.add(f.stem.rsplit("-", 1)[1])
                except OSError:
                    continue
        return pids

    def stop(self) -> None:
        stop_our_ray(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- sweeps ----------------------------------------------------------------------------------------------


def sweep_command(
    space: str,
    sets: list[str],
    *,
    address: str | None,
    tracking_uri: str,
    storage: Path,
    output_dir: Path,
    extra: list[str] = (),
    verbose: bool = True,
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        # the workers' output in the terminal (fault tests read their "first optimizer step" lines there)
        *(["--verbose"] if verbose else []),
        "sweep",
        space,
        "--tracking-uri",
        tracking_uri,
        "--storage-path",
        str(storage),
        "--no-progress",
        "--output-dir",
        str(output_dir),
    ]
    if address:
        cmd += ["--address", address]
    return [*cmd, *[a for s in sets for a in ("--set", s)], *extra]


def optuna_states(db: Path) -> list[str]:
    """Trial states of every study in an Optuna SQLite file, in trial order."""
    con = sqlite3.connect(db)
    try:
        return [s for (s,) in con.execute("select state from trials order by trial_id")]
    finally:
        con.close()


def train_runs(storage: Path, name: str) -> dict[str, list[str]]:
    """The Ray Train runs of a sweep's trials (one per trial, named after it) and their checkpoint directories
    (a finished trial has one: its final payload)."""
    d = storage / f"{name}-train"
    runs = sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
    return {p.name: sorted(c.name for c in p.glob("checkpoint_*") if c.is_dir()) for p in runs}
