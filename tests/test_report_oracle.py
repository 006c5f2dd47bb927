"""The sweep report's answer per language (`orchestrator.report_languages`): the oracle row (best trial per
language on its own test set) beside the selected and confirmed configurations, ASHA-stopped trials listed apart,
the per-language plot with intervals, and which parameters matter (`orchestrator.importance`), all attached to the
sweep's MLflow parent run. Synthetic MLflow stores in tmp_path: no Ray, no training."""

import json
import random

import numpy as np
import pytest

from orchestrator.importance import optuna_importances, parameter_table, value_groups
from orchestrator.report import sweep_report, write_report
from orchestrator.report_languages import ORACLE_LABEL, oracle

W = "method.stitch.relative.weighting"
N = "anchors.count"


def test_oracle_picks_per_language_the_trial_with_the_best_test_score():
    trials = [  # best objective first, as sweep_report lists them
        {"run_id": "a", "configuration": "softmax k=100", "objective": 0.9, "de": 0.20, "sw": 0.30, "mean": 0.25},
        {"run_id": "b", "configuration": "softmax k=10", "objective": 0.5, "de": 0.40, "sw": 0.10, "mean": 0.25},
        {"run_id": "c", "configuration": "standard", "objective": 0.1, "de": 0.30, "sw": 0.35, "mean": 0.325},
    ]
    best = oracle(trials, ["de", "sw"])
    assert {lang: v["run_id"] for lang, v in best["languages"].items()} == {"de": "b", "sw": "c"}
    assert best["mean"] == pytest.approx((0.40 + 0.35) / 2)
    assert best["single"]["run_id"] == "c" and best["single"]["mean"] == pytest.approx(0.325)
    assert oracle([{"run_id": "x", "objective": 1.0}], ["de"]) is None  # no test scores: no oracle


def test_a_parameter_that_drives_the_objective_ranks_first_and_floats_are_binned():
    rng = random.Random(0)
    trials = []
    for i in range(40):
        weighting = ["softmax", "standard", "sparsemax"][i % 3]
        lr = 10 ** rng.uniform(-5, -3)  # noise: does not change the objective
        k = rng.choice([5, 10, 50])
        objective = {"softmax": 0.6, "standard": 0.3, "sparsemax": 0.45}[weighting] + rng.gauss(0, 0.02)
        trials.append({W: weighting, "training.lr": str(lr), "k": str(k), "objective": objective})
    table = parameter_table(trials, ["training.lr", "k", W])
    assert table[0]["param"] == W and table[0]["best"] == "softmax" and table[0]["eta2"] > 0.9
    assert all(r["eta2"] < 0.3 for r in table[1:])
    lr = next(r for r in table if r["param"] == "training.lr")
    assert 2 <= len(lr["groups"]) <= 4 and sum(g["n"] for g in lr["groups"]) == 40
    assert all(g["value"].startswith("[") for g in lr["groups"])  # quantile bins, not 40 single values
    low = parameter_table(trials, [W], mode="min")
    assert low[0]["best"] == "standard"  # the best group follows the objective's direction
    labels, order = value_groups(["None", "0.1", "0.05"])  # few values: kept as they are, numbers in order
    assert order == ["0.05", "0.1", "None"] and labels == ["None", "0.1", "0.05"]


def test_optuna_importances_of_a_study_in_sqlite(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path}/optuna.db"
    assert optuna_importances(url, "s") is None  # no database: None, and none is created
    assert not (tmp_path / "optuna.db").exists()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="s", storage=url, direction="maximize", sampler=optuna.samplers.RandomSampler(0)
    )
    study.optimize(lambda t: 3 * t.suggest_float("x", 0, 1) + 0.01 * t.suggest_float("y", 0, 1), n_trials=30)
    importances = optuna_importances(url, "s")
    assert list(importances)[0] == "x" and importances["x"] > importances["y"]
    assert optuna_importances(url, "other") is None


def _payload(gold, accuracy, seed):
    preds = {
        lang: [
            [
                g if r < accuracy[lang] else (g + 1) % 3
                for g, r in zip(gl, np.random.default_rng(seed).random(len(gl)), strict=True)
            ]
        ]
        for lang, gl in gold.items()
    }
    return {
        "num_labels": 3,
        "seeds": [0],
        "deterministic": False,
        "gold": gold,
        "fingerprints": {lang: "f" for lang in gold},
        "predictions": preds,
    }


@pytest.fixture
def oracle_sweep(quickstart_space, tmp_path):
    """Trials: sel (best objective, weak on de), de_best (best on de's test), sw_best (best on sw's test), one
    more, and one ASHA stopped after 2 epochs; the baseline ls; all with per-item predictions."""
    from orchestrator.tracking import SweepTracker
    from orchestrator.trial import OBJECTIVE, REPORT_MEAN

    rng = np.random.default_rng(0)
    gold = {lang: rng.integers(0, 3, 80).tolist() for lang in ("de", "sw")}
    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "s"))
    tracker.start()
    ids = {}
    for name, weighting, count, objective, de, sw in [
        ("sel", "softmax", 2471, 0.90, 0.30, 0.50),
        ("de_best", "standard", 600, 0.40, 0.70, 0.20),
        ("sw_best", "softmax", 600, 0.85, 0.25, 0.60),
        ("other", "standard", 2471, 0.35, 0.40, 0.30),
    ]:
        scores = {
            OBJECTIVE: objective,
            "dev_macro_f1.en": objective,
            "test_macro_f1.de": de,
            "test_macro_f1.sw": sw,
            REPORT_MEAN: (de + sw) / 2,
        }
        ids[name] = tracker.log_trial(
            name,
            None,
            {N: count, W: weighting},
            scores,
            "FINISHED",
            seeds=[0],
            predictions=_payload(gold, {"de": de, "sw": sw}, len(ids)),
        )
    ids["stopped"] = tracker.log_trial(
        "stopped",
        None,
        {N: 100, W: "standard"},
        {OBJECTIVE: 0.1, "dev_macro_f1.en": 0.1},
        "FINISHED",
        epochs=[{"epoch": e, OBJECTIVE: 0.1 * e, "timestamp": 1.0e9 + e} for e in (1, 2)],
    )
    ls = {OBJECTIVE: 0.3, "dev_macro_f1.en": 0.3, "test_macro_f1.de": 0.2, "test_macro_f1.sw": 0.2}
    ids["ls"] = tracker.log_baseline(
        "ls", "ls", "zero-shot", ls, [0], {"kind": "ls"}, predictions=_payload(gold, {"de": 0.4, "sw": 0.4}, 9)
    )
    tracker.end("FINISHED")
    return tracker, ids


def test_report_has_the_oracle_row_regret_stopped_trials_and_importances(oracle_sweep, tmp_path):
    """The oracle picks per language by that language's test set (here other trials than the selected one), is
    labelled as no result, and the regret is stated; the ASHA-stopped trial is listed with its epochs and is
    neither selected nor the oracle; the importance table ranks the parameter that drives the objective first."""
    tracker, ids = oracle_sweep
    report = sweep_report("quickstart", tracker.uri, languages=["de", "sw"])
    selected = next(r for r in report["rows"] if r["kind"] == "trial")
    assert selected["run_id"] == ids["sel"]
    orc = report["oracle"]
    assert orc["languages"]["de"]["run_id"] == ids["de_best"] != selected["run_id"]
    assert orc["languages"]["sw"]["run_id"] == ids["sw_best"]
    assert orc["mean"] == pytest.approx((0.70 + 0.60) / 2)
    low, high = orc["languages"]["de"]["ci"]  # the oracle trial's bootstrap interval (70% of items right)
    assert 0.45 < low < high < 0.95
    assert [s["run_id"] for s in report["stopped"]] == [ids["stopped"]] and report["stopped"][0]["epochs"] == 2
    assert ids["stopped"] not in {t["run_id"] for t in report["trials"]}
    # weighting decides the objective (softmax .90/.85, standard .40/.35); anchors.count changes nothing on average
    importance = {r["param"]: r for r in report["importance"]}
    assert report["importance"][0]["param"] == W and importance[W]["best"] == "softmax"
    assert importance[N]["eta2"] == pytest.approx(0.0, abs=1e-9) and importance[W]["eta2"] > 0.9
    md = write_report(report, tmp_path / "out", mlflow=False)["markdown"].read_text()
    assert f"**{ORACLE_LABEL}**: best trial per language" in md
    assert "| de | standard n=600 | 0.700 | 0.300 | 0.400 |" in md  # per-language regret of the selection
    assert "Mean regret: 0.250 (per-language oracle)" in md
    assert "## Trials stopped early by ASHA (1)" in md and "| standard n=100 | 2" in md
    assert "## Which parameters matter (4 trials that ran to the end)" in md
    assert "No confirm rows" in md


def test_report_includes_the_confirm_rows_written_beside_it(oracle_sweep, tmp_path):
    tracker, ids = oracle_sweep
    report = sweep_report("quickstart", tracker.uri, languages=["de", "sw"])
    out = tmp_path / "out"
    out.mkdir()
    cell = {"mean": 0.55, "sd": 0.02, "n": 3}
    confirm = {
        "parent_run_id": report["parent_run_id"],
        "winner": {"trial_id": "sw_best", "mean_objective": 0.86},
        "rows": [
            {"row_id": "sw_best", "kind": "confirm", "method": "softmax n=600", "sweep_rank": 2, "seeds": [0, 1, 2],
             "objective": cell, "de": cell, "sw": cell, "mean": cell, "mean 95% CI": [0.5, 0.6],
             "intervals": {"de": [0.5, 0.6], "sw": [0.5, 0.6]}},
            {"row_id": "lsrun", "kind": "baseline", "method": "ls", "seeds": [0], "de": cell, "sw": cell, "mean": cell},
        ],
    }  # fmt: skip
    (out / "confirm.json").write_text(json.dumps(confirm))
    md = write_report(report, out, mlflow=False)["markdown"].read_text()
    assert "| softmax n=600 (winner) | confirm (sweep rank 2) | 0,1,2 | 0.550 ± 0.020 | 0.550 ± 0.020 |" in md
    assert "| ls | confirm" not in md  # the baselines come once, from the sweep's own records
    confirm["parent_run_id"] = "another-sweep"  # a confirm table of another sweep run is not this report's
    (out / "confirm.json").write_text(json.dumps(confirm))
    report.pop("confirm")
    assert "(winner)" not in write_report(report, out, mlflow=False)["markdown"].read_text()


def test_plots_are_written_and_attached_to_the_parent_run(oracle_sweep, tmp_path):
    from mlflow import MlflowClient

    tracker, _ = oracle_sweep
    report = sweep_report("quickstart", tracker.uri, languages=["de", "sw"])
    paths = write_report(report, tmp_path / "out")
    for key in ("scores_png", "importance_png"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[key].stat().st_size > 5000
    client = MlflowClient(tracking_uri=tracker.uri)
    attached = {a.path for a in client.list_artifacts(tracker.parent_id, "report")}
    assert {"report/scores.png", "report/importance.png", "report/report.md"} <= attached
    md = client.download_artifacts(tracker.parent_id, "report/report.md", str(tmp_path / "dl"))
    assert ORACLE_LABEL in open(md).read()


def test_cli_report_prints_the_regret_the_stopped_trials_and_the_plots(oracle_sweep, tmp_path, capsys):
    from orchestrator.cli import main

    tracker, _ = oracle_sweep
    out = tmp_path / "cli"
    assert main(["report", "quickstart", "--tracking-uri", tracker.uri, "--output-dir", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "selection regret: 0.250 on the mean" in printed
    assert "1 trial(s) stopped early by ASHA" in printed
    assert "scores.png" in printed and "importance.png" in printed
    assert (out / "sweeps" / "quickstart" / "scores.png").is_file()
