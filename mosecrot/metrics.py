"""Metric keys and classification scores: the one place that spells them.

Every result carries the same keys, whatever produced it (a fine-tuned model, a logistic regression, a
sweep trial or a baseline): ``{split}_{metric}.{language}``, e.g. ``test_macro_f1.de`` or
``dev_macro_f1.en``; a mean over report languages uses the language ``mean``. One table, one JSON report
and one MLflow view can then compare them all.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

SCORED_SPLITS = ("dev", "test")
CLASSIFICATION_METRICS = ("macro_f1", "accuracy")
MEAN = "mean"  # the "language" of a mean over report languages: test_macro_f1.mean


def metric_key(split: str, metric: str, language: str) -> str:
    """``test_macro_f1.de``."""
    return f"{split}_{metric}.{language}"


def metric_keys(split: str, metric: str, languages: Iterable[str]) -> list[str]:
    return [metric_key(split, metric, lang) for lang in languages]


def metric_prefix(split: str, metric: str) -> str:
    """``test_macro_f1.``: what every per-language key of that split and metric starts with."""
    return f"{split}_{metric}."


def classification_scores(
    gold: Sequence[int] | np.ndarray, pred: Sequence[int] | np.ndarray, num_labels: int
) -> dict[str, float]:
    """Macro-F1 and accuracy over a whole split (never averaged over batches). Macro-F1 averages over all
    ``num_labels`` classes: a class absent from the split and never predicted counts as F1 = 0 instead of
    silently leaving the average (which would make scores of splits with different classes incomparable)."""
    return {
        "macro_f1": float(f1_score(gold, pred, labels=list(range(num_labels)), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)),
    }


def item_key(split: str, language: str) -> str:
    """``test.de``: the key of one split's per-item gold labels and predictions in results.json."""
    return f"{split}.{language}"


def split_metrics(split: str, language: str, scores: dict[str, float]) -> dict[str, float]:
    """``scores`` (``{"macro_f1": .., "accuracy": ..}``) under the split's and language's metric keys."""
    return {metric_key(split, m, language): scores[m] for m in CLASSIFICATION_METRICS}


def mean_of(metrics: dict[str, Any], keys: list[str], what: str) -> float:
    """Mean of ``metrics[k]`` over ``keys``; a ValueError naming what is missing otherwise."""
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ValueError(
            f"the {what} needs {', '.join(missing)}, which were not reported "
            f"(reported: {', '.join(sorted(metrics)) or 'nothing'})"
        )
    return sum(float(metrics[k]) for k in keys) / len(keys)


def language_means(metrics: dict[str, Any], languages: list[str]) -> dict[str, float]:
    """``{split}_{metric}.mean`` over ``languages`` for every split and metric all of them have."""
    out = {}
    for split in SCORED_SPLITS:
        for metric in CLASSIFICATION_METRICS:
            keys = metric_keys(split, metric, languages)
            if keys and all(k in metrics for k in keys):
                out[metric_key(split, metric, MEAN)] = float(statistics.fmean(metrics[k] for k in keys))
    return out


# --- over seeds ---------------------------------------------------------------------------------------


def seed_summary(values: list[float], deterministic: bool = False) -> dict[str, Any]:
    """Mean, sample standard deviation and count of one score over seeds. ``std`` is None where a spread
    means nothing: one seed, or a method whose result does not depend on the seed (``deterministic``; its
    seeds are then one value counted once, ``n`` = 1)."""
    if deterministic and len(set(values)) == 1:
        return {"mean": values[0], "std": None, "n": 1, "deterministic": True}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def mean_over_seeds(per_seed: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of every numeric metric present in all seeds (a metric a seed lacks is dropped, not guessed)."""
    if not per_seed:
        return {}
    keys = [k for k in per_seed[0] if all(k in m for m in per_seed)]
    out = {}
    for k in keys:
        values = [m[k] for m in per_seed]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[k] = statistics.fmean(values)
    return out
