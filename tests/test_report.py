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
    assert (
        paths["csv"]
        .read_text()
        .splitlines()[0]
        .startswith("method,kind,supervision,configuration,objective,de,fr,sw,mean")
    )
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


def _png_size(path) -> tuple[int, int]:
    import struct

    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


def test_sweep_report_names_the_selected_configuration_and_warns_when_it_does_not_beat_ls(quickstart_space, tmp_path):
    """The top table names the selected trial's configuration and the objective; a warning says that it does not
    beat LS and that a trial that was not selected scored higher; the files are attached to the sweep's run and
    the UI's view is published."""
    from mlflow import MlflowClient

    from orchestrator.tracking import UI_VIEW_TAG, SweepTracker
    from orchestrator.trial import OBJECTIVE

    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "s"))
    tracker.start()
    weighting = "method.stitch.relative.weighting"

    def scores(objective, test):
        return {OBJECTIVE: objective, "dev_macro_f1.en": objective, "test_macro_f1.de": test, "test_macro_f1.sw": test}

    selected = tracker.log_trial(
        "t1", None, {"anchors.count": 2471, weighting: "softmax"}, scores(0.9, 0.20123), "FINISHED"
    )
    tracker.log_trial("t2", None, {"anchors.count": 600, weighting: "standard"}, scores(0.5, 0.25), "FINISHED")
    tracker.log_baseline("ls", "ls", "zero-shot", scores(0.3, 0.21), [0], {"name": "ls", "kind": "ls"})
    tracker.end("FINISHED")
    report = sweep_report("quickstart", tracker.uri, languages=["de", "sw"])
    assert report["objective_name"] == "dev_macro_f1.en"
    top = report["rows"][0]
    assert top["run_id"] == selected and top["configuration"] == "softmax n=2471"
    assert report["selected_params"]["mosecrot"] == {"anchors.count": "2471", weighting: "softmax"}
    assert any("does not beat LS (0.210)" in w for w in report["warnings"])
    assert any(
        "1 trial(s) not selected score higher on test (best 0.250, standard n=600)" in w for w in report["warnings"]
    )
    paths = write_report(report, tmp_path / "out")
    md = paths["markdown"].read_text()
    assert "objective `dev_macro_f1.en`" in md and "**WARNING: the selected mosecrot configuration" in md
    assert "| mosecrot | trial | zero-shot | softmax n=2471 | 0.900 | 0.201 | 0.201 | 0.201 |" in md  # rounded
    assert "Selected mosecrot configuration: `anchors.count` = 2471" in md
    client = MlflowClient(tracking_uri=tracker.uri)
    attached = {a.path for a in client.list_artifacts(tracker.parent_id, "report")}
    assert attached == {
        f"report/{n}" for n in ("report.md", "report.csv", "trials.csv", "report.png", "scores.png", "importance.png")
    }
    assert client.get_run(selected).data.tags["selected"] == "true"
    view = json.loads(client.get_experiment(tracker.experiment_id).tags[UI_VIEW_TAG])
    assert view["runsHiddenMode"] == "SHOW_ALL" and "metrics.`test_macro_f1.sw`" in view["selectedColumns"]


@pytest.mark.parametrize("languages", [2, 12, 40])
def test_report_plot_width_is_bounded_and_has_a_mean_group_and_chance_line(tmp_path, languages):
    """From 2 to 40 languages the plot stays within a bounded width (legend outside, mean group, chance line)."""
    import matplotlib

    matplotlib.use("Agg")
    from orchestrator.report import MAX_PLOT_INCHES, plot_report

    langs = [f"l{i:02d}" for i in range(languages)]
    rows = [
        {
            "method": m,
            "kind": k,
            "supervision": s,
            **{lang: 0.1 + 0.01 * i for i, lang in enumerate(langs)},
            "mean": 0.3,
        }
        for m, k, s in [
            ("mosecrot", "trial", "zero-shot"),
            ("ls", "baseline", "zero-shot"),
            ("lr", "baseline", "target-supervised"),
            ("own_tokenizer", "baseline", "zero-shot"),
        ]
    ]
    report = {"languages": langs, "rows": rows, "metric": "test_macro_f1", "experiment": "x", "num_labels": 6}
    plot_report(report, tmp_path / "p.png")
    width, height = _png_size(tmp_path / "p.png")
    assert 6 * 120 <= width <= (MAX_PLOT_INCHES + 2.6) * 120 and height <= 4.2 * 120 + 1
