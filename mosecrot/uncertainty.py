"""How sure a score is: bootstrap intervals over test items and paired win probabilities.

A Taxi1500 test split has 111 verses (7 of them one class), so which verses happen to be in it moves
macro-F1 by several points - more than the spread over fine-tuning seeds. Every cell of a table therefore
gets a 95% percentile-bootstrap interval over its test items, and "A beats B on L" is the share of
resamples in which A's score is higher (a paired bootstrap: both scored on the same resampled items).

Written here rather than with ``scipy.stats.bootstrap``: every method of a table, and the mean over
languages (items resampled within each language), must be scored on the *same* resamples so that
comparisons are paired, and scipy draws new resamples per call. Macro-F1 of a thousand resamples is one
vectorised count per class (`macro_f1_resampled`), checked against scikit-learn in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

N_RESAMPLES = 1000
CONFIDENCE = 0.95


def macro_f1_resampled(gold: np.ndarray, pred: np.ndarray, idx: np.ndarray, num_labels: int) -> np.ndarray:
    """Macro-F1 over ``num_labels`` classes for each row of resampled item indices ``idx`` (B x n) -> (B,).

    Same definition as `mosecrot.metrics.classification_scores`: a class without gold or predicted items in
    a resample counts F1 = 0."""
    g, p = gold[idx], pred[idx]
    b = idx.shape[0]
    offset = np.arange(b)[:, None] * num_labels
    size = b * num_labels
    tp = np.bincount((offset + g)[g == p], minlength=size).reshape(b, num_labels)
    n_gold = np.bincount((offset + g).ravel(), minlength=size).reshape(b, num_labels)
    n_pred = np.bincount((offset + p).ravel(), minlength=size).reshape(b, num_labels)
    denom = n_gold + n_pred  # = 2 tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape, dtype=float), where=denom > 0)
    return f1.mean(axis=1)


def accuracy_resampled(gold: np.ndarray, pred: np.ndarray, idx: np.ndarray, num_labels: int) -> np.ndarray:
    return (gold[idx] == pred[idx]).mean(axis=1)


RESAMPLED = {"macro_f1": macro_f1_resampled, "accuracy": accuracy_resampled}


def draws(sizes: Mapping[str, int], n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Resampled item indices (n_resamples x n) per language, drawn with replacement, independently per
    language, from a fixed seed (a table's intervals are reproducible)."""
    rng = np.random.default_rng(seed)
    return {lang: rng.integers(0, n, size=(n_resamples, n)) for lang, n in sorted(sizes.items()) if n > 0}


def seed_mean_resampled(
    gold: np.ndarray, per_seed: Sequence[np.ndarray], idx: np.ndarray, num_labels: int, metric: str = "macro_f1"
) -> np.ndarray:
    """Per resample, the mean over seeds of the metric of each seed's predictions: the bootstrap
    distribution of the number a table prints."""
    score = RESAMPLED[metric]
    return np.mean([score(gold, np.asarray(p), idx, num_labels) for p in per_seed], axis=0)


def interval(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """Percentile interval of a bootstrap distribution."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def win_probability(a: np.ndarray, b: np.ndarray) -> float:
    """Share of paired resamples in which ``a`` scores higher than ``b`` (ties count half)."""
    return float(np.mean(a > b) + 0.5 * np.mean(a == b))


@dataclass
class Uncertainty:
    """Intervals and win probabilities of a table: ``cells[method][language]`` and ``means[method]`` are
    ``{"ci": [low, high], "p_beats": {reference: p}}``."""

    cells: dict[str, dict[str, dict[str, Any]]]
    means: dict[str, dict[str, Any]]
    settings: dict[str, Any]


def table_uncertainty(
    gold: Mapping[str, Sequence[int]],
    predictions: Mapping[str, Mapping[str, Sequence[Sequence[int]]]],
    num_labels: int,
    references: Sequence[str] = (),
    metric: str = "macro_f1",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Uncertainty:
    """Bootstrap over test items for every method x language of a table, and for each method's mean over
    the languages it has all of.

    ``gold[lang]``: gold labels of the test items; ``predictions[method][lang]``: one prediction list per
    seed. ``references``: methods every other method is compared with (LS, the own-tokenizer floor); a
    method is not compared with itself, nor with a reference it lacks languages of."""
    golds = {lang: np.asarray(g, dtype=np.int64) for lang, g in gold.items()}
    idx = draws({lang: len(g) for lang, g in golds.items()}, n_resamples, seed)
    dist: dict[str, dict[str, np.ndarray]] = {}
    for method, by_language in predictions.items():
        dist[method] = {}
        for lang, per_seed in by_language.items():
            if lang not in idx or not per_seed:
                continue
            seeds = [np.asarray(p, dtype=np.int64) for p in per_seed]
            if any(len(p) != len(golds[lang]) for p in seeds):
                raise ValueError(
                    f"{method} has {len(seeds[0])} predictions for {lang} but the split has {len(golds[lang])} items"
                )
            dist[method][lang] = seed_mean_resampled(golds[lang], seeds, idx[lang], num_labels, metric)
    languages = list(golds)
    means = {
        m: np.mean([d[lang] for lang in languages], axis=0)
        for m, d in dist.items()
        if all(lang in d for lang in languages)
    }
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for method, per_lang in dist.items():
        cells[method] = {}
        for lang, values in per_lang.items():
            beats = {
                ref: win_probability(values, dist[ref][lang])
                for ref in references
                if ref != method and lang in dist.get(ref, {})
            }
            cells[method][lang] = {"ci": interval(values, confidence), "p_beats": beats}
    mean_out = {
        method: {
            "ci": interval(values, confidence),
            "p_beats": {
                ref: win_probability(values, means[ref]) for ref in references if ref != method and ref in means
            },
        }
        for method, values in means.items()
    }
    settings = {
        "method": "percentile bootstrap over test items (per language; the mean resamples each language)",
        "metric": metric,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
        "paired": "every method is scored on the same resamples; p_beats = share of resamples it scores higher",
        "references": list(references),
    }
    return Uncertainty(cells, mean_out, settings)


def paired_comparison(
    gold: Sequence[int],
    a: Sequence[Sequence[int]],
    b: Sequence[Sequence[int]],
    num_labels: int,
    metric: str = "macro_f1",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Two systems' predictions (one list per seed each) on the same items: both scores with intervals, their
    difference with its interval, and the probability that ``a`` beats ``b``."""
    g = np.asarray(gold, dtype=np.int64)
    idx = draws({"x": len(g)}, n_resamples, seed)["x"]
    full = np.arange(len(g))[None, :]
    sa = seed_mean_resampled(g, [np.asarray(p) for p in a], idx, num_labels, metric)
    sb = seed_mean_resampled(g, [np.asarray(p) for p in b], idx, num_labels, metric)
    point_a = float(seed_mean_resampled(g, [np.asarray(p) for p in a], full, num_labels, metric)[0])
    point_b = float(seed_mean_resampled(g, [np.asarray(p) for p in b], full, num_labels, metric)[0])
    row = comparison_row(sa, sb, point_a, point_b, len(g), confidence)
    return {
        "n_items": len(g),
        "a": {"score": point_a, "ci": row["a_ci"], "seeds": len(a)},
        "b": {"score": point_b, "ci": row["b_ci"], "seeds": len(b)},
        "difference": {"value": row["difference"], "ci": row["difference_ci"]},
        "p_a_beats_b": row["p_a_beats_b"],
    }


def comparison_row(
    sa: np.ndarray, sb: np.ndarray, a: float, b: float, n_items: int, confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """A against B from their paired bootstrap distributions ``sa``, ``sb`` and full-data scores ``a``, ``b``:
    both scores with intervals, the difference with its interval and P(A > B)."""
    return {
        "a": a,
        "a_ci": interval(sa, confidence),
        "b": b,
        "b_ci": interval(sb, confidence),
        "difference": a - b,
        "difference_ci": interval(sa - sb, confidence),
        "p_a_beats_b": win_probability(sa, sb),
        "n_items": n_items,
    }
