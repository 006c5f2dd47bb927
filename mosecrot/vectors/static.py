"""Static word vectors: one in-memory form for every source (fastText .vec/.bin, gensim, our training).

Everything downstream (dictionary induction, anchor selection, embedding stitching) needs only a word
list, a float32 matrix and word frequencies, so that is what `StaticVectors` holds. A fastText
subword model is kept alongside when the source has one, so a word missing from the stored
vocabulary can still get a vector composed from its character n-grams.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class SubwordModel(Protocol):
    """What we use of gensim's ``FastTextKeyedVectors``: a vector for any string (via n-grams)."""

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray: ...


class StaticVectors:
    """A vocabulary with one float32 vector per word.

    ``counts`` are corpus frequencies aligned with ``words``. When a source gives none (fastText
    ``.vec`` files), the file order is taken as frequency order, as fastText writes its vectors
    most frequent first; `frequency` then returns a rank-based stand-in (``len - position``), which
    orders words correctly but is not a count.
    """

    def __init__(
        self,
        words: list[str],
        matrix: np.ndarray,
        *,
        counts: np.ndarray | None = None,
        subwords: SubwordModel | None = None,
        source: str = "",
        meta: dict[str, Any] | None = None,
    ) -> None:
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"matrix shape {matrix.shape} does not fit {len(words)} words")
        index = {w: i for i, w in enumerate(words)}
        if len(index) != len(words):
            raise ValueError("words must be unique")
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(words),):
                raise ValueError(f"counts shape {counts.shape} does not fit {len(words)} words")
        self.words = list(words)
        self.matrix = matrix
        self.index = index
        self.counts = counts
        self.subwords = subwords
        self.source = source
        self.meta: dict[str, Any] = dict(meta or {})
        self._unit: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        sub = ", subwords" if self.has_subwords else ""
        return f"StaticVectors({len(self)} words x {self.dim}{sub}, source={self.source!r})"

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def has_subwords(self) -> bool:
        return self.subwords is not None

    def oov_vector(self, word: str) -> np.ndarray | None:
        """The subword model's vector for `word`; None without a subword model or when the word
        yields no known n-gram (gensim then returns the zero vector, which is useless)."""
        if self.subwords is None:
            return None
        try:
            vec = np.asarray(self.subwords.get_vector(word), dtype=np.float32)
        except KeyError:
            return None
        return vec if np.any(vec) else None

    def vector(self, word: str) -> np.ndarray:
        """The stored row of `word`, else its subword vector; KeyError when neither exists."""
        i = self.index.get(word)
        if i is not None:
            return self.matrix[i]
        vec = self.oov_vector(word)
        if vec is None:
            raise KeyError(f"{word!r} is not in {self.source or 'the vectors'} and has no subword vector")
        return vec

    def _unit_matrix(self) -> np.ndarray:
        if self._unit is None:
            norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
            self._unit = self.matrix / np.maximum(norms, 1e-12)
        return self._unit

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The `k` stored words closest to `word` by cosine, the word itself excluded.

        Works for out-of-vocabulary words when a subword model is present.
        """
        query = self.vector(word)
        norm = float(np.linalg.norm(query))
        own = self.index.get(word)
        k = min(k, len(self) - (own is not None))
        if norm == 0.0 or k <= 0:
            return []
        sims = self._unit_matrix() @ (query / norm)
        if own is not None:
            sims[own] = -np.inf
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.words[i], float(sims[i])) for i in top]

    def frequency(self, word: str) -> int:
        """Corpus count of `word`; 0 if not stored. Without counts: rank stand-in (see class doc)."""
        i = self.index.get(word)
        if i is None:
            return 0
        return int(self.counts[i]) if self.counts is not None else len(self.words) - i
