"""Bootstrap intervals over test items and paired win probabilities (`mosecrot.uncertainty`), and how a run's
summary carries them."""

import numpy as np
import pytest

from mosecrot.metrics import classification_scores
from mosecrot.run import summarize
from mosecrot.uncertainty import draws, macro_f1_resampled, paired_comparison, table_uncertainty


def test_resampled_macro_f1_is_scikit_learns_on_every_resample():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 4, size=60)
    gold[gold == 3] = 2  # class 3 never in gold: it must still count (F1 = 0) in every resample
    pred = np.where(rng.random(60) < 0.6, gold, rng.integers(0, 4, size=60))
    idx = draws({"x": 60}, 50, seed=3)["x"]
    fast = macro_f1_resampled(gold, pred, idx, 4)
    slow = [classification_scores(gold[i], pred[i], 4)["macro_f1"] for i in idx]
    assert fast == pytest.approx(slow, abs=1e-12)


def test_interval_covers_the_score_and_narrows_with_more_items():
    rng = np.random.default_rng(0)

    def width(n):
        gold = rng.integers(0, 3, size=n)
        pred = np.where(rng.random(n) < 0.7, gold, (gold + 1) % 3)
        out = table_uncertainty({"de": gold}, {"m": {"de": [pred]}}, 3)
        low, high = out.cells["m"]["de"]["ci"]
        assert low <= classification_scores(gold, pred, 3)["macro_f1"] <= high
        return high - low

    assert width(2000) < width(100) / 2  # ~ 1/sqrt(n)


def test_paired_win_probability_sees_a_small_consistent_gain_that_unpaired_intervals_hide():
    """B is A with 4 of 400 wrong answers fixed: the intervals overlap almost entirely, yet B never scores lower
    on any resample, so P(B beats A) ~ 1; a system compared with itself is a coin flip (0.5)."""
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 2, size=400)
    a = np.where(rng.random(400) < 0.7, gold, 1 - gold)
    b = a.copy()
    wrong = np.flatnonzero(a != gold)[:4]
    b[wrong] = gold[wrong]
    out = table_uncertainty({"de": gold}, {"a": {"de": [a]}, "b": {"de": [b]}}, 2, references=["a"])
    assert out.cells["b"]["de"]["p_beats"]["a"] > 0.95
    assert "a" not in out.cells["a"]["de"]["p_beats"]  # never compared with itself
    assert out.cells["b"]["de"]["ci"][0] < out.cells["a"]["de"]["ci"][1]  # the unpaired intervals overlap
    same = paired_comparison(gold, [a], [a], 2)
    assert same["p_a_beats_b"] == 0.5 and same["difference"]["value"] == 0.0


def test_mean_over_languages_is_resampled_per_language_with_the_same_draws_for_every_method():
    rng = np.random.default_rng(4)
    gold = {"de": rng.integers(0, 3, 80), "sw": rng.integers(0, 3, 50)}
    good = {lang: [np.where(rng.random(len(g)) < 0.8, g, (g + 1) % 3)] for lang, g in gold.items()}
    bad = {lang: [(g + 1) % 3] for lang, g in gold.items()}  # always wrong
    out = table_uncertainty(gold, {"good": good, "bad": bad, "partial": {"de": good["de"]}}, 3, references=["bad"])
    assert out.means["good"]["p_beats"]["bad"] == 1.0
    assert out.means["bad"]["ci"] == [0.0, 0.0]
    assert "partial" not in out.means  # lacks sw: no mean over languages
    again = table_uncertainty(gold, {"good": good}, 3)
    assert again.means["good"]["ci"] == out.means["good"]["ci"]  # fixed draws: reproducible


def test_summary_has_sample_std_intervals_and_win_probabilities_against_ls_and_the_floor():
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 3, 90)

    def record(method, kind, seed, accuracy, deterministic=False):
        pred = np.where(np.random.default_rng(seed).random(90) < accuracy, gold, (gold + 1) % 3)
        score = classification_scores(gold, pred, 3)["macro_f1"]
        return {
            "method": method,
            "kind": kind,
            "supervision": "zero-shot",
            "seed": seed,
            "deterministic": deterministic,
            "metrics": {"test_macro_f1.de": score},
            "predictions": {"test.de": pred.tolist()},
        }

    records = [
        *(record("rr", "mosecrot", s, 0.8) for s in (0, 1, 2)),
        *(record("ls", "ls", s, 0.5) for s in (0, 1, 2)),
        *(record("floor", "own_tokenizer", s, 0.3) for s in (0, 1, 2)),
        *(record("e5", "frozen_encoder", 7, 0.9, deterministic=True) for _ in (0, 1, 2)),
    ]
    summary = summarize(records, ["de"], gold={"test.de": gold.tolist()}, num_labels=3)
    rr, e5 = summary["methods"]["rr"], summary["methods"]["e5"]
    assert rr["languages"]["de"]["n"] == 3 and rr["languages"]["de"]["std"] > 0
    assert rr["languages"]["de"]["p_beats"] == {"ls": 1.0, "floor": 1.0}
    assert rr["average"]["ci"][0] < rr["average"]["mean"] < rr["average"]["ci"][1]
    assert e5["languages"]["de"]["n"] == 1 and e5["languages"]["de"]["std"] is None and e5["deterministic"]
    assert summary["methods"]["ls"]["languages"]["de"]["p_beats"] == {"floor": 1.0}
    assert summary["uncertainty"]["references"] == ["ls", "floor"]


def _results(directory, methods, gold, fingerprint="f"):
    """A results.json as `mosecrot run` writes it: records with per-item predictions, items with gold labels."""
    import json

    directory.mkdir()
    records = [
        {"method": m, "kind": "mosecrot", "supervision": "zero-shot", "seed": s, "metrics": {}, "predictions": p}
        for m, per_seed in methods.items()
        for s, p in enumerate(per_seed)
    ]
    items = {"num_labels": 3, "gold": gold, "fingerprints": {k: fingerprint for k in gold}}
    summary = {"metric": "test_macro_f1", "languages": ["de", "sw"], "methods": {}}
    payload = {"task": "taxi1500", "records": records, "items": items, "summary": summary, "config": {}}
    (directory / "results.json").write_text(json.dumps(payload))
    return directory


def test_compare_two_runs_item_by_item(tmp_path, capsys):
    import json

    from mosecrot.compare import compare_runs
    from mosecrot.errors import InputError
    from orchestrator.cli import main

    rng = np.random.default_rng(6)
    gold = {"test.de": rng.integers(0, 3, 70).tolist(), "test.sw": rng.integers(0, 3, 40).tolist()}
    right = {k: list(v) for k, v in gold.items()}
    wrong = {k: [(g + 1) % 3 for g in v] for k, v in gold.items()}
    a = _results(tmp_path / "a", {"good": [right, right]}, gold)
    b = _results(tmp_path / "b", {"bad": [wrong]}, gold)
    out = compare_runs(f"{a}:good", f"{b}:bad")
    assert out["languages"] == ["de", "sw"] and out["rows"]["mean"]["p_a_beats_b"] == 1.0
    assert out["rows"]["de"]["difference"] == pytest.approx(1.0) and out["a"]["seeds"] == [0, 1]
    assert main(["compare", f"{a}:good", f"{b}:bad", "-o", str(tmp_path / "c.json")]) == 0
    assert "P(A > B)" in capsys.readouterr().out and json.loads((tmp_path / "c.json").read_text())["rows"]
    # other items (a different edition or split) are never compared; a missing method is named with the choices
    c = _results(tmp_path / "c", {"bad": [wrong]}, gold, fingerprint="g")
    with pytest.raises(InputError, match="no language scored on the same items"):
        compare_runs(f"{a}:good", f"{c}:bad")
    with pytest.raises(InputError, match="no finished records of method 'nope'.*good"):
        compare_runs(f"{a}:nope", f"{b}:bad")
    assert main(["compare", str(a), f"{b}:bad"]) == 2
    assert "RUN_A:METHOD" in capsys.readouterr().out
