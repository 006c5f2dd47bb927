"""`mosecrot export`: a sweep's selected trial as an experiment file `mosecrot run` accepts, and the bad input of
export and confirm (a missing store or sweep, no finished trial, another experiment revision), on synthetic MLflow
records (no training)."""

from pathlib import Path

import pytest

from mosecrot.config import load_experiment
from mosecrot.errors import InputError
from orchestrator.cli import main
from orchestrator.export import current_config, export_trial, load_sweep
from orchestrator.search_space import load_search_space
from orchestrator.tracking import SweepTracker

RELATIVE = "method.stitch.relative."


def _uri(tracker) -> str:
    return tracker.uri


def test_export_writes_the_best_trial_as_an_experiment_run_accepts(logged_sweep, tmp_path, capsys):
    tracker, ids, params = logged_sweep
    out = tmp_path / "best.yaml"
    assert main(["export", "quickstart", "--tracking-uri", tracker.uri, "-o", str(out)]) == 0
    text = out.read_text()
    # the header names the sweep, its protocol, selection languages and objective value
    assert "sweep 'quickstart'" in text and "english-dev" in text and "dev_macro_f1 on en" in text
    assert "= 0.9000" in text and "trial_1" in text and "rank 1 of 2" in text
    cfg = load_experiment(str(out))
    (method,) = cfg.methods
    rel = method.options.stitch.relative
    assert (rel.weighting, rel.tau, rel.sparsify, rel.k) == ("softmax", 0.1, "topk", "all")
    assert cfg.anchors.count == params["anchors.count"]
    assert cfg.name == "best"
    # the sweep's fixed settings came along: the quickstart sweep's one-epoch budget and its seeds
    assert cfg.training.epochs == 1 and cfg.seeds == [0]
    fr = load_experiment(str(out), ["target_languages=[fr]"])
    assert fr.target_languages == ["fr"] and fr.methods[0].options.stitch.relative.tau == 0.1
    assert "exported 'trial_1'" in capsys.readouterr().out


def test_export_rank_two_is_the_second_best_by_objective(logged_sweep, tmp_path):
    tracker, _, params = logged_sweep
    space = load_search_space("quickstart")
    out = export_trial(load_sweep(space, tracker.uri), tmp_path / "second.yaml", rank=2)
    assert out["trial"].trial_id == "t2" and "rank 2 of 2" in out["why"]
    cfg = load_experiment(str(out["path"]))
    assert cfg.methods[0].options.stitch.relative.k == 10  # t2's k, typed back from MLflow's string "10"
    with pytest.raises(InputError, match="rank 3") as err:
        export_trial(load_sweep(space, tracker.uri), tmp_path / "x.yaml", rank=3)
    assert err.value.key == "--rank"


def test_export_and_confirm_of_a_missing_store_create_nothing(tmp_path, capsys):
    db = tmp_path / "nothing.db"
    for cmd in (["export", "quickstart", "-o", str(tmp_path / "x.yaml")], ["confirm", "quickstart"]):
        assert main([*cmd, "--tracking-uri", f"sqlite:///{db}"]) == 2
        err = capsys.readouterr().out
        assert "no MLflow store" in err and "--tracking-uri" in err and "Traceback" not in err
    assert not db.exists() and not (tmp_path / "x.yaml").exists()


def test_export_of_a_sweep_that_is_not_in_the_store(logged_sweep, tmp_path, capsys):
    tracker, _, _ = logged_sweep
    assert main(["export", "quickstart", "--set", "name=elsewhere", "--tracking-uri", tracker.uri, "-o", "x.yaml"]) == 2
    assert "no sweep named 'elsewhere'" in capsys.readouterr().out


def test_export_and_confirm_of_a_sweep_without_a_finished_trial(quickstart_space, tmp_path, capsys):
    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/m.db")
    tracker.start()
    tracker.log_trial("t9", None, {"anchors.count": 900}, None, "FAILED", error="boom", seeds=[0])
    tracker.end("FAILED")
    for cmd in (["export", "quickstart", "-o", str(tmp_path / "x.yaml")], ["confirm", "quickstart"]):
        assert main([*cmd, "--tracking-uri", tracker.uri]) == 2
        out = capsys.readouterr().out
        assert "has no finished trial (1 FAILED)" in out and "key 'SWEEP'" in out
    assert not (tmp_path / "x.yaml").exists()


def test_a_trial_of_another_experiment_revision_is_refused_naming_the_keys(logged_sweep, tmp_path, capsys):
    """The synthetic trials logged no config.resolved.yaml: their params and the parent's fixed.* are compared."""
    tracker, _, _ = logged_sweep
    args = ["--tracking-uri", tracker.uri, "--set", "fixed.training.epochs=3"]
    assert main(["export", "quickstart", *args, "-o", str(tmp_path / "x.yaml")]) == 2
    out = capsys.readouterr().out
    assert "another experiment revision" in out and "fixed.training.epochs: ran '1', now '3'" in out
    assert not (tmp_path / "x.yaml").exists()
    assert main(["confirm", "quickstart", *args, "--output-dir", str(tmp_path / "r")]) == 2
    assert "fixed.training.epochs" in capsys.readouterr().out
    assert not (tmp_path / "r" / "sweeps" / "quickstart" / "confirm.md").exists()


def test_a_logged_resolved_config_is_compared_by_fingerprint(quickstart_space, tmp_path):
    params = {"anchors.count": 700, RELATIVE + "weighting": "standard", RELATIVE + "sparsify": "threshold"}
    params[RELATIVE + "threshold"] = 0.3
    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/m.db")
    tracker.start()
    metrics = {"objective": 0.5, "report_mean": 0.4, "test_macro_f1.de": 0.4}
    config = current_config(quickstart_space, params)
    tracker.log_trial("t1", None, params, metrics, "FINISHED", seeds=[0], config=config)
    tracker.end()
    out = export_trial(load_sweep(quickstart_space, tracker.uri), tmp_path / "ok.yaml")
    assert "config fingerprint " + out["fingerprint"] in Path(out["path"]).read_text()
    # a sweep logged before an option existed: absent at its default is the same revision, absent otherwise is not
    older = {**config, "experiment": {**config["experiment"], "anchors": {"scope": "union", "count": 700}}}
    older["experiment"]["anchors"].update(strategy="frequent", seed=0, one_to_one=True, on_shortfall="clamp")
    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/old.db")
    tracker.start()
    tracker.log_trial("t1", None, params, metrics, "FINISHED", seeds=[0], config=older)
    tracker.end()
    assert export_trial(load_sweep(quickstart_space, tracker.uri), tmp_path / "old.yaml")["path"]
    grown = load_search_space("quickstart", ["fixed.anchors.grow={identical: true}"])
    with pytest.raises(InputError, match=r"experiment.anchors.grow.identical: ran '\(absent\)', now True"):
        export_trial(load_sweep(grown, tracker.uri), tmp_path / "no.yaml")
    changed = load_search_space("quickstart", ["fixed.training.max_length=32"])
    with pytest.raises(
        InputError, match=r"config fingerprint \w+ != \w+.*experiment.training.max_length: ran 64, now 32"
    ):
        export_trial(load_sweep(changed, tracker.uri), tmp_path / "no.yaml")


def test_export_to_a_path_under_a_file_names_the_flag(logged_sweep, tmp_path, capsys):
    tracker, _, _ = logged_sweep
    (tmp_path / "file").write_text("x")
    assert main(["export", "quickstart", "--tracking-uri", tracker.uri, "-o", str(tmp_path / "file" / "x.yaml")]) == 2
    out = capsys.readouterr().out
    assert "key '-o'" in out and "a file, not a directory" in out


def test_the_confirm_winner_is_the_best_mean_objective_among_trials_with_the_most_seeds(logged_sweep, tmp_path):
    """Synthetic confirm runs: t2 (sweep rank 2) confirmed with two seeds beats t1, whose one seed scores higher."""
    from orchestrator.export import CONFIRM_TRIAL_TAG, confirm_winner

    tracker, ids, _ = logged_sweep
    for trial_id, seed, objective in (("t1", 0, 0.95), ("t2", 0, 0.5), ("t2", 1, 0.7)):
        tags = {"kind": "confirm", CONFIRM_TRIAL_TAG: trial_id, "seed": str(seed), "confirm_of": ids[trial_id]}
        tracker._child(tags, {"seed": str(seed)}, {"objective": objective}, "FINISHED")
    tags = {"kind": "confirm", CONFIRM_TRIAL_TAG: "t1", "seed": "1", "confirm_of": ids["t1"]}
    tracker._child(tags, {"seed": "1"}, {"objective": 0.99}, "FAILED")  # not counted
    sweep = load_sweep(load_search_space("quickstart"), tracker.uri)
    trial, mean, seeds = confirm_winner(sweep)
    assert (trial.trial_id, seeds) == ("t2", [0, 1]) and mean == pytest.approx(0.6)
    out = export_trial(sweep, tmp_path / "w.yaml")
    assert out["trial"].trial_id == "t2" and "the confirm winner" in out["why"]
    assert load_experiment(str(out["path"])).seeds == [0, 1]
    ranked = export_trial(sweep, tmp_path / "r.yaml", rank=1)  # --rank still means the sweep's ranking
    assert ranked["trial"].trial_id == "t1" and load_experiment(str(ranked["path"])).seeds == [0]
