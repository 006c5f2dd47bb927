"""Reports people compare (`orchestrator.report`): `mosecrot table` merging run directories into one
per-language table, and a sweep's report read back from MLflow."""

import json

import pytest

from mosecrot.errors import InputError
from orchestrator.cli import main
from orchestrator.report import merge_runs, sweep_report, to_csv, to_markdown, write_report

W, TAU, K, SP = ("method.stitch.relative." + x for x in ("weighting", "tau", "k", "sparsify"))


def _run(tmp_path, name, scope, methods, task="taxi1500", languages=("de", "es")):
    d = tmp_path / name
    d.mkdir()
    summary = {
        "metric": "test_macro_f1",
        "languages": list(languages),
        "methods": {
            m: {
                "kind": "mosecrot",
                "supervision": "zero-shot",
                "languages": {
                    lang: {"mean": v, "std": 0.01, "n": 3, "seeds": [v - 0.01, v, v + 0.01]} for lang in languages
                },
                "average": {"mean": v, "std": 0.01, "n": 3},
            }
            for m, v in methods.items()
        },
    }
    (d / "results.json").write_text(
        json.dumps(
            {
                "experiment": name,
                "task": task,
                "complete": True,
                "summary": summary,
                "seeds": [0, 1, 2],
                "config": {"anchors": {"scope": scope}},
                "training": {"epochs": 4},
                "timings_s": {"total": 1.0},
            }
        )
    )
    return d


def test_pair_and_union_runs_merge_with_scope_labels_and_paper_rows(tmp_path):
    pair = _run(tmp_path, "paper", "pair", {"rr-softmax": 0.4})
    union = _run(tmp_path, "union", "union", {"rr-softmax": 0.3, "ls": 0.2}, languages=("de", "es", "sw"))
    table = merge_runs([pair, union], {"paper LS": {"de": 0.14, "es": 0.26, "mt": 0.08}})
    assert table.languages == ["de", "es", "sw"]
    assert [r.label for r in table.rows] == ["rr-softmax [pair]", "rr-softmax [union]", "ls", "paper LS"]
    md = to_markdown(table)
    # rows cover different languages: a like-for-like mean; no per-item predictions in these runs: no interval
    assert "| method | supervision | de | es | sw | mean | mean de/es | mean 95% CI |" in md
    cell = "0.400 ± 0.010"
    assert f"| rr-softmax [pair] | zero-shot | {cell} | {cell} | – | {cell} | {cell} | – |" in md
    assert "| paper LS | paper | 0.14 | 0.26 | – | – | 0.20 | – |" in md
    assert "mean ± sample std over seeds" in md and "Intervals: none" in md
    assert "rr-softmax [union],zero-shot,union,sw,0.3,0.01,3,,\r\n" in to_csv(table)


def test_common_mean_is_per_seed_over_the_shared_languages(tmp_path):
    pair = _run(tmp_path, "p", "pair", {"rr": 0.4})
    union = _run(tmp_path, "u", "union", {"rr": 0.2}, languages=("de", "es", "sw"))
    rows = {r.label: r for r in merge_runs([pair, union]).rows}
    assert rows["rr [union]"].common["mean"] == pytest.approx(0.2)
    assert rows["rr [union]"].common["std"] == pytest.approx(0.01)  # sample std of the per-seed means


def test_runs_on_different_tasks_are_refused(tmp_path):
    a = _run(tmp_path, "a", "union", {"ls": 0.2})
    b = _run(tmp_path, "b", "union", {"ls": 0.2}, task="sib200")
    with pytest.raises(InputError, match="different tasks"):
        merge_runs([a, b])


def test_cli_names_a_directory_without_results(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().out


def test_cli_writes_markdown_and_csv(tmp_path):
    run = _run(tmp_path, "r", "union", {"ls": 0.2})
    assert main(["table", str(run), "--output-dir", str(tmp_path / "out")]) == 0
    assert "paper RR softmax top-50" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "report.csv").read_text().startswith("method,supervision")


# --- sweep reports ----------------------------------------------------------------------------------


def test_sweep_report_picks_the_best_trial_by_objective_and_lists_every_trial(logged_sweep, tmp_path):
    """Best trial per method by the objective (never by a test score), beside the baselines; every finished
    trial with the params that differ between trials; markdown, CSV and a plot."""
    tracker, ids, _ = logged_sweep
    uri, t1, t2 = tracker.uri, ids["t1"], ids["t2"]
    report = sweep_report("quickstart", uri, languages=["de", "fr", "sw"])
    rows = {r["method"]: r for r in report["rows"]}
    assert rows["mosecrot"]["run_id"] == t1  # best by objective, not by test score
    assert rows["mosecrot"]["mean"] == pytest.approx(0.4) and rows["lr"]["kind"] == "baseline"
    # every finished trial, best objective first, with the params that differ between trials (not t3: FAILED)
    assert report["searched"] == [K]
    assert [(t["run_id"], t[K]) for t in report["trials"]] == [(t1, "all"), (t2, "10")]
    paths = write_report(report, tmp_path / "report")
    assert "| mosecrot | trial |" in paths["markdown"].read_text()
    assert "## Every finished trial (2)" in paths["markdown"].read_text()
    assert paths["trials_csv"].read_text().splitlines()[0] == f"{K},objective,de,fr,sw,mean,run_id"
    assert paths["csv"].read_text().splitlines()[0].startswith("method,kind,supervision,objective,de,fr,sw,mean")
    assert paths["png"].stat().st_size > 1000


def test_sweep_report_gives_intervals_and_win_probabilities_from_logged_predictions(quickstart_space, tmp_path, capsys):
    """Trials and baselines log their per-item test predictions (predictions.json); the report gives each row
    its seeds, a 95% interval over test items and P(beats LS / the floor) from them."""
    import numpy as np

    from orchestrator.tracking import SweepTracker
    from orchestrator.trial import OBJECTIVE

    rng = np.random.default_rng(0)
    gold = {lang: rng.integers(0, 3, 60).tolist() for lang in ("de", "sw")}

    def payload(accuracy, seeds, deterministic=False):
        preds = {
            lang: [
                [
                    g if r < accuracy else (g + 1) % 3
                    for g, r in zip(gl, np.random.default_rng(s).random(60), strict=True)
                ]
                for s in seeds
            ]
            for lang, gl in gold.items()
        }
        return {
            "num_labels": 3,
            "seeds": seeds,
            "deterministic": deterministic,
            "gold": gold,
            "fingerprints": {lang: "f" for lang in gold},
            "predictions": preds,
        }

    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "s"))
    tracker.start()
    scores = {"test_macro_f1.de": 0.5, "test_macro_f1.sw": 0.5, OBJECTIVE: 0.5, "dev_macro_f1.en": 0.5}
    tracker.log_trial(
        "t1", "trial_1", {"anchors.count": 10}, scores, "FINISHED", seeds=[0, 1], predictions=payload(0.9, [0, 1])
    )
    tracker.log_baseline("ls", "ls", "zero-shot", scores, [0, 1], {"kind": "ls"}, predictions=payload(0.4, [0, 1]))
    tracker.log_baseline("e5", "frozen_encoder", "zero-shot", scores, [0, 1], predictions=payload(0.95, [0, 1], True))
    tracker.log_baseline("floor", "own_tokenizer", "zero-shot", scores, [0, 1])  # an older run: no predictions
    tracker.end("FINISHED")
    report = sweep_report("quickstart", tracker.uri, languages=["de", "sw"])
    rows = {r["method"]: r for r in report["rows"]}
    assert report["uncertainty"]["references"] == ["ls"]  # the floor logged no predictions: not a reference
    assert rows["mosecrot"]["seeds"] == "2" and rows["e5"]["seeds"] == "det."
    assert rows["mosecrot"]["P(>ls)"] == "1.00" and rows["mosecrot"]["mean 95% CI"].startswith("[0.")
    assert rows["floor"]["mean 95% CI"] is None and "P(>ls)" not in {k for k, v in rows["ls"].items() if v}
    md = write_report(report, tmp_path / "out")["markdown"].read_text()
    assert "| seeds | mean 95% CI | P(>ls) |" in md and "percentile bootstrap over test items" in md
    assert main(["report", "quickstart", "--tracking-uri", tracker.uri, "--output-dir", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "P(>ls)" in out and "mean 95% CI" in out
