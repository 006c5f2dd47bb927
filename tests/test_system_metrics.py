"""System metrics that rank 0 adds to a trial's final report (and so to its MLflow child run)."""

import time

from orchestrator.tracking import metric_values
from orchestrator.trial import system_metrics


def test_system_metrics_measure_this_process_and_reach_mlflow_keys():
    wall, cpu = time.time(), time.process_time()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn ~0.2 s of CPU
        pass
    m = system_metrics(cpu, wall)
    assert 50 <= m["system.cpu_percent"] <= 250  # one busy thread: about 100
    assert m["system.peak_rss_mib"] > 10 and m["system.wall_s"] >= 0.2
    assert set(metric_values(m)) >= {"system.cpu_percent", "system.peak_rss_mib", "system.wall_s"}
