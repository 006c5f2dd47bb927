"""Cross-lingual alignment of static spaces and aligned-neighbour initialisation (WECHSEL / FOCUS).

Three steps, each a function of arrays so it can be tested and cached on its own:

1. `token_vectors`: an English static vector for every PLM token - whole words from the stored vectors,
   ``##`` / ``▁`` / ``Ġ`` pieces (and words missing from the vocabulary) through fastText's subword model,
   as WECHSEL (Minixhofer et al., NAACL 2022) does. Tokens that get no vector are left out as neighbours.
2. `fit_alignment`: an orthogonal map from a target space to the English one (orthogonal Procrustes on
   dictionary pairs plus identical strings), optionally refined by self-learning: mutual nearest neighbours
   under CSLS among the most frequent words are added to the seed pairs and the map is re-fitted (the
   refinement of VecMap, Artetxe et al. 2018, and MUSE, Conneau et al. 2018). Vectors are unit-length
   normalised, mean-centred and re-normalised first (VecMap's ``unit center unit``).
3. `neighbour_rows`: a target word's embedding row = softmax(cos / tau) over its k nearest PLM tokens in the
   aligned space, times those tokens' embedding rows.

Written with numpy/torch rather than VecMap or MUSE: neither is a maintained installable package, and each
step is a few matrix products; scipy's `orthogonal_procrustes` does the fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes

from mosecrot.errors import InputError
from mosecrot.text.tokenize import is_word
from mosecrot.vectors import StaticVectors

log = logging.getLogger(__name__)

PIECE_PREFIXES = ("##", "▁", "Ġ")  # WordPiece continuation, SentencePiece / byte-level BPE word start


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def normalise(x: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """VecMap's ``unit center unit``: unit rows, minus the mean (``mean`` or the rows' own), unit again.
    Returns the normalised rows and the mean used (apply the same mean to words mapped later)."""
    u = _unit(np.asarray(x, dtype=np.float32))
    mu = u.mean(0) if mean is None else mean
    return _unit(u - mu), mu


def token_vectors(tokens: list[str], special: set[int], english: StaticVectors) -> tuple[np.ndarray, np.ndarray]:
    """English static vectors of PLM tokens (``tokens[i]`` is token id i): ``(ids, matrix)`` of the tokens
    that get one. A stored word is used as is; anything else (pieces, rare words) through the subword model."""
    ids, rows = [], []
    for i, tok in enumerate(tokens):
        if i in special:
            continue
        text = tok
        for prefix in PIECE_PREFIXES:
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        if not text:
            continue
        j = english.index.get(text)
        vec = english.matrix[j] if j is not None else english.oov_vector(text)
        if vec is None or not np.any(vec):
            continue
        ids.append(i)
        rows.append(vec)
    if not ids:
        raise InputError(
            "no PLM token got an English static vector",
            key="english_vectors",
            expected="English vectors of the PLM's language (with a subword model for word pieces)",
        )
    return np.asarray(ids, dtype=np.int64), np.stack(rows).astype(np.float32)


def identical_pairs(target: StaticVectors, english: StaticVectors, min_length: int = 1) -> list[tuple[str, str]]:
    """Words spelled the same in both vocabularies (numbers, names, shared loanwords) as ``(en, tgt)`` pairs."""
    return [(w, w) for w in target.words if w in english.index and len(w) >= min_length and is_word(w)]


@dataclass
class AlignmentConfig:
    """How a target space is aligned to the English static space."""

    # Seed pairs: the experiment's dictionary, words spelled the same in both languages, or both.
    seed: str = "dictionary+identical"
    # Self-learning rounds (0: Procrustes on the seed pairs only).
    refine: int = 1
    # Self-learning looks for mutual CSLS neighbours among this many most frequent words of each language.
    refine_vocabulary: int = 20000
    csls_k: int = 10  # CSLS neighbourhood size (r_a terms)

    SEEDS = ("dictionary", "identical", "dictionary+identical")

    def validate(self, prefix: str = "alignment") -> None:
        if self.seed not in self.SEEDS:
            raise InputError(
                f"unknown alignment seed {self.seed!r}", key=f"{prefix}.seed", expected=" | ".join(self.SEEDS)
            )
        for name in ("refine_vocabulary", "csls_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected a positive integer, got {value!r}", key=f"{prefix}.{name}")
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise InputError(f"expected an integer >= 0, got {self.refine!r}", key=f"{prefix}.refine")


@dataclass
class Alignment:
    """An orthogonal map ``W`` (d x d) with the means that centre each side: ``aligned(x) = unit(unit(x) -
    mean_t) @ W``, comparable by cosine with ``unit(unit(y) - mean_e)`` of English vectors ``y``."""

    w: np.ndarray
    mean_target: np.ndarray
    mean_english: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def map_target(self, x: np.ndarray) -> np.ndarray:
        return normalise(x, self.mean_target)[0] @ self.w

    def map_english(self, y: np.ndarray) -> np.ndarray:
        return normalise(y, self.mean_english)[0]


def _frequent_rows(vectors: StaticVectors, n: int) -> np.ndarray:
    """Indices of the ``n`` most frequent stored words (file order where the source has no counts)."""
    if vectors.counts is None:
        return np.arange(min(n, len(vectors)))
    return np.argsort(-vectors.counts, kind="stable")[:n]


def csls_mutual_neighbours(a: np.ndarray, b: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` where row j of ``b`` is row i of ``a``'s nearest neighbour under CSLS and vice versa
    (rows are unit vectors; CSLS = 2 cos - r_a - r_b with r the mean cosine of the k nearest neighbours)."""
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    sims = ta @ tb.T
    k_a, k_b = min(k, sims.shape[1]), min(k, sims.shape[0])
    r_a = sims.topk(k_a, dim=1).values.mean(1)
    r_b = sims.topk(k_b, dim=0).values.mean(0)
    csls = 2 * sims - r_a[:, None] - r_b[None, :]
    best_b = csls.argmax(1)
    best_a = csls.argmax(0)
    return [(i, int(j)) for i, j in enumerate(best_b.tolist()) if int(best_a[j]) == i]


def fit_alignment(
    target: StaticVectors,
    english: StaticVectors,
    pairs: list[tuple[str, str]],
    config: AlignmentConfig,
    language: str = "",
) -> Alignment:
    """Orthogonal map of ``target`` onto ``english`` from ``(en, tgt)`` seed pairs, refined by self-learning."""
    if target.dim != english.dim:
        raise InputError(
            f"{language} vectors have dimension {target.dim}, the English ones {english.dim}",
            key="english_vectors",
            expected="English static vectors of the targets' dimension (trained the same way)",
        )
    seeds = [(english.index[en], target.index[t]) for en, t in dict.fromkeys(pairs) if en in english and t in target]
    if len(seeds) < 2:
        raise InputError(
            f"only {len(seeds)} seed pairs with both vectors for {language}",
            key="alignment.seed",
            expected="a dictionary (or identical strings) with at least 2 words of both vocabularies",
        )
    x, mean_t = normalise(target.matrix)
    y, mean_e = normalise(english.matrix)
    seed_pairs = sorted(set(seeds))
    current = seed_pairs
    w = _procrustes(x, y, current)
    added = 0
    if config.refine:
        rows_t = _frequent_rows(target, config.refine_vocabulary)
        rows_e = _frequent_rows(english, config.refine_vocabulary)
        for _ in range(config.refine):
            mutual = csls_mutual_neighbours(y[rows_e], x[rows_t] @ w, config.csls_k)
            learned = {(int(rows_e[i]), int(rows_t[j])) for i, j in mutual}
            current = sorted(set(seed_pairs) | learned)
            added = len(current) - len(seed_pairs)
            w = _procrustes(x, y, current)
    accuracy = _seed_accuracy(x @ w, y, seed_pairs)
    stats = {"seed_pairs": len(seed_pairs), "learned_pairs": added, "seed_top1": accuracy}
    log.info("alignment %s: %s", language, stats)
    return Alignment(w.astype(np.float32), mean_t, mean_e, stats)


def mutual_pairs(
    alignment: Alignment, target: StaticVectors, english: StaticVectors, vocabulary: int, csls_k: int
) -> list[tuple[str, str]]:
    """``(en, tgt)`` word pairs that are mutual nearest neighbours under CSLS in the aligned space, among the
    ``vocabulary`` most frequent words of each side (English frequency order)."""
    rows_t = _frequent_rows(target, vocabulary)
    rows_e = _frequent_rows(english, vocabulary)
    x = alignment.map_target(target.matrix[rows_t])
    y = alignment.map_english(english.matrix[rows_e])
    mutual = csls_mutual_neighbours(y, x, csls_k)
    return [(english.words[int(rows_e[i])], target.words[int(rows_t[j])]) for i, j in mutual]


def _procrustes(x: np.ndarray, y: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    e, t = np.asarray(pairs).T
    w, _ = orthogonal_procrustes(x[t].astype(np.float64), y[e].astype(np.float64))
    return w.astype(np.float32)


def _seed_accuracy(x_aligned: np.ndarray, y: np.ndarray, pairs: list[tuple[int, int]], n: int = 2000) -> float:
    """Share of (a sample of) seed pairs whose target word's nearest English word is its pair (a sanity
    diagnostic of the fit, not a held-out score)."""
    sample = pairs[:: max(1, len(pairs) // n)]
    e, t = np.asarray(sample).T
    sims = torch.from_numpy(x_aligned[t]) @ torch.from_numpy(y).T
    return float((sims.argmax(1).numpy() == e).mean())


def neighbour_rows(
    words_aligned: np.ndarray,
    tokens_english: np.ndarray,
    token_rows: torch.Tensor,
    k: int,
    tau: float,
    chunk_size: int = 2048,
) -> torch.Tensor:
    """softmax(cos / tau) over each word's ``k`` nearest tokens, times the tokens' rows (``words_aligned``
    and ``tokens_english`` unit rows in the shared space, ``token_rows`` the tokens' PLM embeddings)."""
    if k < 1 or isinstance(k, bool):
        raise InputError(f"k must be a positive integer, got {k!r}", key="stitch.k")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise InputError(f"tau must be a positive number, got {tau!r}", key="stitch.tau")
    k = min(k, tokens_english.shape[0])
    tokens = torch.from_numpy(np.ascontiguousarray(tokens_english, dtype=np.float32))
    rows = token_rows.detach().float()
    out = torch.empty(words_aligned.shape[0], rows.shape[1])
    with torch.inference_mode():
        for start in range(0, words_aligned.shape[0], chunk_size):
            chunk = torch.from_numpy(np.ascontiguousarray(words_aligned[start : start + chunk_size], np.float32))
            values, index = (chunk @ tokens.T).topk(k, dim=1)
            weights = torch.softmax(values / tau, dim=1)
            out[start : start + chunk.shape[0]] = torch.nn.functional.embedding_bag(
                index, rows, per_sample_weights=weights, mode="sum"
            )
    return out
