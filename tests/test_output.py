"""Quiet by default (`orchestrator.output`): libraries' records and printed output reach the command's log file,
the terminal shows this tool's warnings and any error; ``--verbose`` shows everything."""

import logging
import warnings

import pytest

from orchestrator import output


@pytest.fixture
def quiet(tmp_path):
    output.configure(verbose=False)
    path = output.attach_log_file(tmp_path / "cmd.log")
    yield path
    output.reset()


def _emit() -> None:
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    logging.getLogger("ray._private.worker").warning("Token authentication is enabled")
    logging.getLogger("optuna.storages").error("storage failed")
    logging.getLogger("orchestrator.sweep").warning("sweep x: the selected trial does not beat LS")
    logging.getLogger("orchestrator.sweep").info("sweep x: phases")
    logging.getLogger("transformers.configuration_utils").info("Model config BertConfig {...}")
    warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)


def test_quiet_terminal_and_complete_log_file(quiet, capfd):
    warnings.simplefilter("always")
    _emit()
    with output.printed_to_log("ray.tune.output"):
        print("View detailed results here: /tmp/x")
    err = capfd.readouterr()
    terminal = err.out + err.err
    assert "the selected trial does not beat LS" in terminal  # our warning
    assert "storage failed" in terminal  # a library's error
    for hidden in ("Creating initial MLflow", "Token authentication", "sweep x: phases", "View detailed", "deprecat"):
        assert hidden not in terminal, hidden
    log_text = quiet.read_text()
    for kept in ("Creating initial MLflow", "Token authentication", "storage failed", "sweep x: phases"):
        assert kept in log_text, kept
    assert "View detailed results here" in log_text and "ray.tune.output" in log_text
    assert "a library's deprecation" in log_text
    assert "Model config" not in log_text  # transformers' INFO is noise even in the log


def test_verbose_shows_everything(tmp_path, capfd):
    output.configure(verbose=True)
    try:
        output.attach_log_file(tmp_path / "cmd.log")
        _emit()
        with output.printed_to_log("ray.tune.output"):
            print("View detailed results here: /tmp/x")
    finally:
        output.reset()
    err = capfd.readouterr()
    terminal = err.out + err.err
    for shown in ("Creating initial MLflow", "Token authentication", "sweep x: phases", "View detailed"):
        assert shown in terminal, shown


def test_reset_detaches_handlers(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers)
    output.configure(verbose=False)
    output.attach_log_file(tmp_path / "a.log")
    output.reset()
    assert root.handlers == before
    logging.getLogger("mlflow").info("after the command")
    assert "after the command" not in (tmp_path / "a.log").read_text()


def test_raylet_warnings_reach_the_log_file_and_its_errors_the_terminal(quiet, capfd, monkeypatch):
    """What the raylet pushes to the driver (Ray prints it through `print_to_stdstream`, prefixed "(raylet)")."""
    from ray._private import worker as ray_worker

    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)  # restored afterwards
    assert output.route_worker_output()
    assert output.route_worker_output()  # a second command in the same process wraps Ray's printer, not ours
    warning = "WARNING: 8 PYTHON worker processes have been started on node: abc"
    ray_worker.print_to_stdstream({"lines": [warning], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    ray_worker.print_to_stdstream({"lines": ["Task was killed due to low memory"], "pid": "raylet", "is_err": False})
    captured = capfd.readouterr()
    terminal = captured.out + captured.err
    assert "PYTHON worker processes" not in terminal
    assert terminal.count("Task was killed due to low memory") == 1
    log_text = quiet.read_text()
    assert "(raylet) " + warning in log_text and "Task was killed" in log_text
