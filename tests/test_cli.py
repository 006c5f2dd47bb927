"""CLI arguments that are parsed before any expensive work: errors name the flag, exit status 2."""

from __future__ import annotations

import contextlib

import pytest

from mosecrot.errors import InputError
from orchestrator.cli import build_parser, main
from orchestrator.sweep import resource_map


def test_driver_resources_parse_to_floats():
    flag = "--driver-resources"
    assert resource_map('{"CPU": 0, "trial_driver": 0.01}', flag) == {"CPU": 0.0, "trial_driver": 0.01}
    assert resource_map(None, flag) is None


@pytest.mark.parametrize("text", ["{bad", "[1, 2]", '{"CPU": -1}', '{"CPU": "one"}'])
def test_driver_resources_errors_name_the_flag(text):
    with pytest.raises(InputError, match="--driver-resources"):
        resource_map(text, "--driver-resources")


def test_sweep_with_bad_driver_resources_exits_2_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "quickstart", "--driver-resources", "{bad"]) == 2
    assert "--driver-resources" in capsys.readouterr().out
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "mlruns.db").exists()


def test_ui_command_is_registered_and_binds_loopback_by_default():
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1" and args.port == 5000 and args.func.__name__ == "cmd_ui"


def test_report_tables_stay_readable_from_2_to_40_languages():
    """Per-language scores: a column per language while they fit the terminal, else a row per language."""
    from orchestrator.cli import print_languages
    from orchestrator.console import console

    def printed(n: int) -> list[str]:
        languages = [f"l{i:02d}" for i in range(n)]
        records = [{"method": m, **{lang: 0.5 for lang in languages}} for m in ("aligned", "ls", "own_tokenizer")]
        with console.capture() as captured:
            print_languages(records, languages, "scores")
        return captured.get().splitlines()

    two, forty = printed(2), printed(40)
    assert any(line.split()[:3] == ["method", "l00", "l01"] for line in two)
    assert any(line.split() == ["language", "aligned", "ls", "own_tokenizer"] for line in forty)
    assert sum(line.split()[:1] == ["l39"] for line in forty) == 1 and all(len(x) <= console.width for x in forty)


@pytest.mark.timeout(900)
def test_ui_stops_its_whole_server_when_terminated(tmp_path):
    """`mosecrot ui` under SIGTERM (a supervisor, `kill`) stops ``mlflow ui`` with the uvicorn and job-consumer
    processes it started: no server outlives the command. Every process this test started is stopped by PID."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import psutil
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    MlflowClient(tracking_uri=uri).create_experiment("quickstart")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "orchestrator.cli", "ui", "quickstart", "--tracking-uri", uri, "--no-browser"]
    log = open(tmp_path / "ui.log", "wb")  # noqa: SIM115 (closed below)
    ui = subprocess.Popen([*cmd, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started: list[psutil.Process] = []
    try:
        for _ in range(1200):  # a loaded machine: minutes to import MLflow
            assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the UI never answered /health")
        time.sleep(3)  # the job consumers start after the server answers
        started = psutil.Process(ui.pid).children(recursive=True)
        assert started, "mosecrot ui started no server process"
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=120) is not None
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [p.cmdline()[:4] for p in alive]
    finally:
        for proc in [*started, psutil.Process(ui.pid) if ui.poll() is None else None]:
            if proc is not None:
                with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL) if proc.pid == ui.pid else proc.kill()
        log.close()
