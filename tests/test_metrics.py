"""Metric keys, classification scores and seed aggregation (`mosecrot.metrics`)."""

import pytest

from mosecrot.metrics import (
    classification_scores,
    language_means,
    mean_of,
    mean_over_seeds,
    metric_key,
    seed_summary,
    split_metrics,
)


def test_metric_keys_are_split_metric_dot_language():
    assert metric_key("test", "macro_f1", "de") == "test_macro_f1.de"
    assert split_metrics("dev", "en", {"macro_f1": 0.5, "accuracy": 0.75, "loss": 1.0}) == {
        "dev_macro_f1.en": 0.5,
        "dev_accuracy.en": 0.75,
    }


def test_classification_scores_are_computed_over_the_whole_split():
    scores = classification_scores([0, 0, 1, 1], [0, 1, 1, 1], 2)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)  # per-class F1 averaged, not per batch


def test_macro_f1_averages_over_every_class_of_the_task():
    """A class absent from the split and never predicted counts F1 = 0; it does not drop out of the average
    (without labels= scikit-learn averaged over the classes seen: 1.0 here, 0.5 over the task's 2 classes)."""
    assert classification_scores([0, 0], [0, 0], 2)["macro_f1"] == pytest.approx(0.5)
    assert classification_scores([0, 0, 1], [0, 0, 1], 3)["macro_f1"] == pytest.approx(2 / 3)


def test_mean_over_seeds_keeps_common_numeric_keys():
    out = mean_over_seeds([{"a": 1.0, "b": 2, "c": "x"}, {"a": 3.0, "b": 4}])
    assert out == {"a": 2.0, "b": 3.0}
    assert mean_over_seeds([]) == {}


def test_seed_summary_and_language_means():
    # the sample standard deviation (n - 1), not the population one (0.1 here)
    assert seed_summary([0.4, 0.6]) == {"mean": pytest.approx(0.5), "std": pytest.approx(0.02**0.5), "n": 2}
    assert seed_summary([0.3]) == {"mean": 0.3, "std": None, "n": 1}  # one seed: no spread, not "± 0"
    # a method that ignores the seed is one result: n = 1 and no spread, however many seeds ran
    assert seed_summary([0.3, 0.3, 0.3], deterministic=True) == {
        "mean": 0.3,
        "std": None,
        "n": 1,
        "deterministic": True,
    }
    assert seed_summary([0.3, 0.4], deterministic=True)["n"] == 2  # said deterministic but was not: the spread shows
    means = language_means({"test_macro_f1.de": 0.4, "test_macro_f1.sw": 0.2, "test_accuracy.de": 0.5}, ["de", "sw"])
    assert means == {"test_macro_f1.mean": pytest.approx(0.3)}  # sw accuracy missing: no partial mean
    with pytest.raises(ValueError, match="test_macro_f1.fr"):
        mean_of({"test_macro_f1.de": 0.4}, ["test_macro_f1.de", "test_macro_f1.fr"], "report")
