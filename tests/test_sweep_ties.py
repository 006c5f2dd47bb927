"""Ties in a sweep objective (issue #20): the english-dev objective cannot see target-side settings, so trials that
differ only there tie, and the "best" is an arbitrary tie-break. The report and the sweep driver say so."""

from types import SimpleNamespace

import pytest

from orchestrator.trial import OBJECTIVE, REPORT_MEAN

STITCH = "method.stitch."
RESULT = {
    "test_macro_f1.de": 0.5,
    "test_macro_f1.fr": 0.4,
    "test_macro_f1.sw": 0.3,
    "dev_macro_f1.en": 0.9,
    OBJECTIVE: 0.9,
    REPORT_MEAN: 0.4,
}


@pytest.fixture
def tied_sweep(quickstart_space, tmp_path):
    """Three finished trials: t1 and t2 share the best objective (they differ in target-side settings only),
    t3 is worse."""
    from orchestrator.tracking import SweepTracker

    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "rr"))
    tracker.start()
    base = {"anchors.count": 800, STITCH + "oov": "subword", STITCH + "target_anchor_rows": "original"}
    tracker.log_trial("t1", "trial_1", base, RESULT, "FINISHED", seeds=[0])
    tracker.log_trial(
        "t2",
        "trial_2",
        {**base, STITCH + "oov": "unk", STITCH + "target_anchor_rows": "finetuned"},
        {**RESULT, "test_macro_f1.de": 0.2},
        "FINISHED",
        seeds=[0],
    )
    tracker.log_trial("t3", "trial_3", {**base, "anchors.count": 300}, {**RESULT, OBJECTIVE: 0.5}, "FINISHED")
    tracker.end("FINISHED")
    return tracker, tmp_path


def test_report_warns_when_the_best_objective_is_tied(tied_sweep, quickstart_space, tmp_path):
    from orchestrator.report import sweep_report, write_report

    tracker, _ = tied_sweep
    report = sweep_report(quickstart_space.name, tracker.uri, languages=["de", "fr", "sw"])
    md = write_report(report, tmp_path / "out")["markdown"].read_text()
    warning = next(line for line in md.splitlines() if "tie" in line.lower())
    assert "trial_1" in warning and "trial_2" in warning and "trial_3" not in warning
    assert STITCH + "oov" in warning and STITCH + "target_anchor_rows" in warning
    assert "anchors.count" not in warning  # the tied trials agree on it
    assert "cannot distinguish" in warning and "target side" in warning  # quickstart selects on English dev


def test_no_warning_without_a_tie(tied_sweep, quickstart_space, tmp_path):
    from orchestrator.ties import find_tie

    trials = [("a", {"x": 1}, 0.9), ("b", {"x": 2}, 0.9 - 1e-9), ("c", {"x": 3}, 0.1)]
    assert find_tie(trials, "max") is None
    tie = find_tie([*trials, ("d", {"x": 4}, 0.9 + 1e-13)], "max")
    assert tie is not None and tie.trials == ["a", "d"] and tie.differing == {"x": [1, 4]}
    low = find_tie([("a", {"x": 1}, 0.1), ("b", {"x": 2}, 0.1), ("c", {"x": 3}, 0.9)], "min")
    assert low is not None and low.trials == ["a", "b"]


def test_the_sweep_driver_prints_and_logs_the_tie(tied_sweep, quickstart_space):
    """`summary_lines` (what `mosecrot sweep` prints) names the tie; the parent MLflow run gets a tag and a text."""
    from orchestrator.sweep import log_objective_tie, summary_lines

    tracker, tmp_path = tied_sweep

    def result(trial_id, params, objective):
        return SimpleNamespace(
            error=None, metrics={"trial_id": trial_id, OBJECTIVE: objective, REPORT_MEAN: 0.4}, config=params
        )

    rows = [
        result("t1", {STITCH + "oov": "subword"}, 0.9),
        result("t2", {STITCH + "oov": "unk"}, 0.9),
        result("t3", {STITCH + "oov": "skip"}, 0.3),
    ]

    class Grid(list):
        num_errors = 0
        experiment_path = str(tmp_path)

        def get_best_result(self, **kw):
            return self[0]

    lines = summary_lines(quickstart_space, Grid(rows), tracker.uri)
    warning = next(line for line in lines if "tie" in line.lower())
    assert "t1" in warning and "t2" in warning and STITCH + "oov" in warning and "t3" not in warning
    # the CLI leaves the warning to the report it prints after the summary: said once
    assert not any(
        "tie" in line.lower() for line in summary_lines(quickstart_space, Grid(rows), tracker.uri, tie=False)
    )
    log_objective_tie(quickstart_space, Grid(rows), tracker)
    parent = tracker.client.get_run(tracker.parent_id)
    assert parent.data.tags["objective_tie"] == "t1,t2"
    assert STITCH + "oov" in parent.data.tags["objective_tie.params"]


def test_many_tied_trials_are_summarised():
    """50 trials of a budget too small to train anything all tie: the line names a few and summarises values."""
    from orchestrator.ties import find_tie, tie_message

    trials = [
        (f"t{i:02d}", {"n": 500 + 10 * i, "w": ["softmax", "standard"][i % 2], "k": i if i % 3 else None}, 0.05)
        for i in range(50)
    ]
    tie = find_tie(trials, "max")
    assert tie is not None and len(tie.trials) == 50
    message = tie_message(tie, "english-dev")
    assert "t00" in message and "t05" in message and "t06" not in message and "and 44 more" in message
    assert "n = 500 to 990 over 50 trials" in message
    assert "w = softmax x25, standard x25" in message and "unset in 17" in message
    assert len(message) < 900, message
