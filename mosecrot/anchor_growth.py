"""Anchors beyond the dictionary, and how much each anchor is trusted (``anchors.grow``, ``anchors.weights``).

A bilingual dictionary gives few anchors for a low-resource language (an induced Swahili dictionary keeps a
few hundred PLM-compatible pairs). Two sources add pairs after the dictionary's, which keep precedence (the
first pair of a target word wins, `mosecrot.anchors.eligible_pairs`):

- ``identical``: target words spelled like a whole token of the PLM vocabulary (numbers, names, loanwords),
  paired with that token; the rule of the identical-strings seed of VecMap / MUSE, applied to anchors.
- ``self_learning``: the target static space is aligned to English static vectors trained the same way
  (orthogonal Procrustes on the dictionary pairs and identical strings, `mosecrot.alignment.fit_alignment`)
  and every pair of mutual nearest neighbours under CSLS among the most frequent words of both sides is added
  (the refinement step of VecMap, Artetxe et al. 2018, and MUSE, Conneau et al. 2018).

``anchors.weights: dictionary_score`` weights each anchor of a language by its dictionary pair's score
(induced dictionaries score pairs by their eflomal alignment counts, `mosecrot.dictionaries.induce`), divided
by the language's best score; pairs without a score (a MUSE dictionary, grown pairs) weigh 1. The weights
scale the anchors' shares of a target word's row (`mosecrot.relative.mapping.compute_mapping`) and the rows of
the least-squares fit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from mosecrot.alignment import AlignmentConfig, fit_alignment, identical_pairs, mutual_pairs
from mosecrot.anchors import AnchorSet, Pair
from mosecrot.errors import InputError, unknown_choice
from mosecrot.text.tokenize import is_word
from mosecrot.vectors import StaticVectors

log = logging.getLogger(__name__)

ANCHOR_WEIGHTS = ("uniform", "dictionary_score")


@dataclass
class AnchorGrowthConfig:
    """Which pairs are added to the dictionary's before anchors are chosen (``anchors.grow``)."""

    # Target words spelled like a whole token of the PLM vocabulary, paired with that token.
    identical: bool = False
    # Mutual CSLS nearest neighbours of the target space aligned to English static vectors.
    self_learning: bool = False
    # English static vectors for self-learning (.vec/.bin/.kv); default: fastText trained on the English Bible
    # minus the evaluation verses with the targets' ``vectors.training`` recipe.
    english_vectors: str | None = None
    # Self-learning looks among this many most frequent words of each side.
    vocabulary: int = 20000
    csls_k: int = 10  # CSLS neighbourhood size

    def validate(self, prefix: str = "anchors.grow") -> None:
        for name in ("vocabulary", "csls_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected a positive integer, got {value!r}", key=f"{prefix}.{name}")
        if self.english_vectors is not None and not self.self_learning:
            raise InputError(
                "english_vectors is read only by self-learning",
                key=f"{prefix}.english_vectors",
                expected=f"{prefix}.self_learning: true, or no english_vectors",
            )

    @property
    def enabled(self) -> bool:
        return self.identical or self.self_learning


def check_weights(value: object, key: str = "anchors.weights") -> None:
    if value not in ANCHOR_WEIGHTS:
        raise unknown_choice("anchor weighting", value, list(ANCHOR_WEIGHTS), key=key)


def identical_token_pairs(target: StaticVectors, plm_vocabulary: Container[str]) -> list[Pair]:
    """``(w, w)`` for target words (in the vectors' frequency order) that are whole tokens of the PLM."""
    return [(w, w) for w in target.words if is_word(w) and w in plm_vocabulary]


def self_learned_pairs(
    target: StaticVectors,
    english: StaticVectors,
    dictionary_pairs: Sequence[Pair],
    config: AnchorGrowthConfig,
    language: str = "",
) -> list[Pair]:
    """Mutual CSLS nearest neighbours ``(en, tgt)`` after aligning ``target`` to ``english`` on the dictionary
    pairs and identical strings (one self-learning round, as `fit_alignment` refines)."""
    seeds = list(dictionary_pairs) + identical_pairs(target, english)
    alignment_config = AlignmentConfig(refine=1, refine_vocabulary=config.vocabulary, csls_k=config.csls_k)
    alignment = fit_alignment(target, english, seeds, alignment_config, language)
    return mutual_pairs(alignment, target, english, config.vocabulary, config.csls_k)


def grown_pairs(
    language: str,
    dictionary_pairs: Sequence[Pair],
    target: StaticVectors,
    plm_vocabulary: Container[str],
    english: Callable[[], StaticVectors],
    config: AnchorGrowthConfig,
) -> tuple[list[Pair], dict[str, int]]:
    """The dictionary's pairs followed by the grown ones (``english`` is called only for self-learning), with
    how many each source added before eligibility and de-duplication."""
    pairs, meta = list(dictionary_pairs), {}
    if config.identical:
        identical = identical_token_pairs(target, plm_vocabulary)
        pairs += identical
        meta["grown_identical"] = len(identical)
    if config.self_learning:
        learned = self_learned_pairs(target, english(), dictionary_pairs, config, language)
        pairs += learned
        meta["grown_self_learned"] = len(learned)
    log.info("anchors %s grown: %s", language, meta)
    return pairs, meta


def dictionary_score_weights(anchors: AnchorSet, pairs: Sequence[Pair], scores: Sequence[float] | None) -> list[float]:
    """One weight per anchor: its dictionary pair's score over the best score of ``pairs``; 1 without a score."""
    if not scores:
        return [1.0] * len(anchors)
    score_of: dict[Pair, float] = {}
    for pair, score in zip(pairs, scores, strict=True):
        score_of.setdefault(pair, float(score))
    best = max(score_of.values())
    if best <= 0:
        return [1.0] * len(anchors)
    return [score_of[p] / best if p in score_of else 1.0 for p in anchors.pairs]
