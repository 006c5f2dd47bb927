"""What reaches the terminal, and what goes only to a command's log file.

Quiet by default: the terminal shows this tool's own messages (its warnings and errors, its tables, one progress
bar per phase where stderr is a terminal) and any library's errors. Everything else - Ray's, MLflow's,
Optuna's and transformers' INFO and WARNING lines, Python warnings, the output Ray streams from trial workers
(eflomal, Train controllers, per-step bars) - goes to the command's log file (``sweep.log`` beside the sweep's
report, ``run.log`` in a run directory), with timestamps. ``mosecrot --verbose CMD`` shows all of it in the
terminal as well, with Tune's trial-status tables.

Libraries install their own handlers (MLflow at import, Ray at import and ``ray.init``, Optuna at first use)
and stop propagation; `capture_libraries` takes those handlers away again so their records reach the root
logger's handlers (the log file, and the terminal's filter).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OWN_PACKAGES = ("mosecrot", "orchestrator", "__main__")
# Libraries whose loggers install their own stream handlers; taken back by `capture_libraries`.
LIBRARIES = ("ray", "mlflow", "optuna", "py.warnings")
# Libraries whose INFO lines are noise even in a log file (transformers prints whole model configs at INFO).
CHATTY = ("transformers", "huggingface_hub", "urllib3", "gensim", "filelock", "alembic")
WORKERS_LOGGER = "ray.workers"  # the lines Ray streams from trial processes, re-logged here (`route_worker_output`)
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _State:
    verbose = False
    console: logging.Handler | None = None
    files: dict[Path, logging.Handler] = {}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a redirected or captured stream included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def _terminal_filter(record: logging.LogRecord) -> bool:
    """Quiet mode: this tool's warnings and errors, and any library's errors."""
    if not _not_file_only(record):
        return False
    if record.levelno >= logging.ERROR:
        return True
    own = record.name.split(".", 1)[0] in OWN_PACKAGES
    return own and record.levelno >= logging.WARNING


def configure(verbose: bool) -> None:
    """Set up the terminal handler once per process (the CLI's first step)."""
    _State.verbose = verbose
    root = logging.getLogger()
    if _State.console is not None:
        root.removeHandler(_State.console)
    console = _StderrHandler()
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if verbose:
        console.setLevel(logging.DEBUG)
        console.addFilter(_not_file_only)
    else:
        console.setLevel(logging.WARNING)
        console.addFilter(_terminal_filter)
    root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in OWN_PACKAGES[:2]:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    _State.console = console
    # MLflow would install its own stream handler at import (its INFO lines in the terminal); ours decide instead
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    logging.captureWarnings(True)  # Python warnings become `py.warnings` records: the log file, not the terminal
    capture_libraries()


def reset() -> None:
    """Remove this module's handlers (the end of a CLI call: tests call `main` many times in one process)."""
    root = logging.getLogger()
    if _State.console is not None:
        root.removeHandler(_State.console)
        _State.console = None
    for path in list(_State.files):
        detach_log_file(path)
    logging.captureWarnings(False)


def verbose() -> bool:
    return _State.verbose


def capture_libraries() -> None:
    """Send the libraries' records to the root handlers: call again after a library (re)installs its own."""
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if _State.verbose else logging.WARNING)
    if "optuna" in sys.modules:  # Optuna's handler is added lazily; this keeps it off for good
        import optuna

        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()


def attach_log_file(path: str | Path) -> Path:
    """Append every record (INFO and up, all loggers) to ``path`` from now on; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path not in _State.files:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        handler.setLevel(logging.DEBUG if _State.verbose else logging.INFO)
        handler.setFormatter(logging.Formatter(FILE_FORMAT))
        logging.getLogger().addHandler(handler)
        _State.files[path] = handler
    capture_libraries()
    return path


def detach_log_file(path: str | Path) -> None:
    handler = _State.files.pop(Path(path), None)
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()


def route_worker_output() -> bool:
    """After ``ray.init(log_to_driver=True)``: the lines Ray streams from workers and actors go to the log file
    (logger `WORKERS_LOGGER`), and to the terminal only with ``--verbose``. Returns whether Ray's stream could
    be taken over.

    Written by hand because Ray has no public switch between "print worker output" and "drop it": this
    replaces the handler Ray's own driver registers (``ray_print_logs`` on its stream dispatcher), and keeps
    Ray's printing where that private interface is missing."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return False
    dispatcher = getattr(ray_worker, "global_worker_stdstream_dispatcher", None)
    printer = getattr(ray_worker, "print_to_stdstream", None)
    printer = getattr(printer, "__wrapped__", printer)  # a second call (sweep, then confirm) wraps Ray's own
    if dispatcher is None or printer is None or not hasattr(dispatcher, "remove_handler"):
        return False
    capture_libraries()  # ray.init configured the "ray" logger again
    logger = logging.getLogger(WORKERS_LOGGER)
    ignore_prefix = ray_worker._should_ignore_worker_log_prefix(ray_worker.global_worker)
    show = _State.verbose

    events = getattr(ray_worker, "filter_autoscaler_events", lambda lines: lines)

    def handle(data: dict[str, Any]) -> None:
        name = data.get("actor_name") or data.get("task_name")
        label = f"({name} pid={data.get('pid')})" if name else f"(pid={data.get('pid')})"
        lines = data.get("lines", [])
        if data.get("pid") == "autoscaler":  # its events, not its periodic status dumps (as Ray prints them)
            lines = events(lines)
        for line in lines:
            logger.info("%s %s", label, line, extra={"file_only": True})  # the terminal gets Ray's own print
        if show:
            printer(data, ignore_prefix=ignore_prefix)

    def raylet_message(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        # what the raylet pushes to the driver (`listen_error_messages` prints it through this module global):
        # its warnings ("8 PYTHON worker processes have been started...") go to the log file only, its errors
        # (a task killed for memory, a dead node) to the terminal as well
        if data.get("pid") != "raylet":
            printer(data, ignore_prefix=ignore_prefix)
            return
        lines = data.get("lines", [])
        for line in lines:
            logger.info("(raylet) %s", line, extra={"file_only": True})
        if show or any(not str(line).lstrip().startswith("WARNING") for line in lines):
            printer(data, ignore_prefix=ignore_prefix)

    dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("ray_print_logs", handle)
    raylet_message.__wrapped__ = printer  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = raylet_message
    return True


class _LogStream(io.TextIOBase):
    """A text stream whose lines become log records (file only): what a library prints, kept out of the terminal."""

    def __init__(self, name: str) -> None:
        self.logger, self.pending = logging.getLogger(name), ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.logger.info("%s", line, extra={"file_only": True})
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.info("%s", self.pending, extra={"file_only": True})
        self.pending = ""


@contextlib.contextmanager
def printed_to_log(name: str) -> Iterator[None]:
    """Inside: what is printed to stdout goes to the log file (logger ``name``), unless ``--verbose``. For Tune,
    which prints its experiment header and paths whatever its verbosity, and Ray's raylet warnings."""
    if _State.verbose:
        yield
        return
    stream = _LogStream(name)
    with contextlib.redirect_stdout(stream):
        try:
            yield
        finally:
            stream.flush()


def tune_verbosity() -> int:
    """Tune's console verbosity: its trial tables only with ``--verbose`` (the trial bar says enough)."""
    return 1 if _State.verbose else 0
