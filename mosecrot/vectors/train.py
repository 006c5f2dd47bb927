"""Training fastText vectors on a monolingual corpus (for languages without pre-trained vectors).

The corpus is split by `get_tokenizer`, the tokeniser every other module uses, so a trained word is
exactly the string that dictionaries, anchors and evaluation data will look up. Results are cached
on disk by corpus fingerprint, configuration, tokeniser and gensim version.

Determinism: initial vectors and sampling are seeded by ``seed``, but gensim trains with several
threads whose scheduling changes the result; only ``workers=1`` is bit-for-bit reproducible. The
default is 2 workers for speed; the cache makes a finished run reproducible anyway.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.errors import InputError
from mosecrot.text.bible import Bible, with_neighbours
from mosecrot.text.tokenize import get_tokenizer
from mosecrot.vectors.static import StaticVectors

log = logging.getLogger(__name__)

CACHE_NAMESPACE = "vectors"
KV_FILE = "vectors.kv"
COUNTS_FILE = "counts.npy"
META_FILE = "meta.json"
# The fast layout: the composed word vectors and the vocabulary, so a load is two file reads. gensim's
# own load recomputes every word vector from its n-grams in a Python loop (seconds per language, on
# every prepare of every sweep trial); the subword model is then loaded only when an OOV word needs it.
WORDS_FILE = "words.json"
MATRIX_FILE = "matrix.npy"


class CachedSubwords:
    """The fastText subword model of a cache entry, loaded on first use.

    Pickles as its path only, so shared resources sent to Ray workers stay small; `available` says
    whether the file exists where this object is used (another node may have its own cache)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wv = None

    @property
    def loaded(self) -> bool:
        """Whether the subword model has been read (it is, on first use)."""
        return self._wv is not None

    @property
    def available(self) -> bool:
        return self._wv is not None or self.path.is_file()

    @property
    def model(self):
        if self._wv is None:
            from gensim.models.fasttext import FastTextKeyedVectors

            self._wv = FastTextKeyedVectors.load(str(self.path))
        return self._wv

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        return self.model.get_vector(word, norm=norm)

    def __getstate__(self) -> dict[str, str]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.path, self._wv = Path(state["path"]), None

    def __repr__(self) -> str:
        return f"CachedSubwords({str(self.path)!r}, loaded={self._wv is not None})"


@dataclass
class VectorTrainingConfig:
    """fastText hyper-parameters (gensim names). `lowercase` is applied by the shared tokeniser."""

    dim: int = 100
    epochs: int = 10
    min_count: int = 3
    window: int = 5
    sg: int = 1
    min_n: int = 3
    max_n: int = 6
    bucket: int = 200_000
    negative: int = 5
    sample: float = 1e-3  # 1e-4 gave spelling-dominated neighbours on Bible-sized corpora
    seed: int = 0
    workers: int = 2
    lowercase: bool = True

    def validate(self, prefix: str = "vectors") -> None:
        """Raise `InputError` naming the first bad option as ``<prefix>.<name>`` (``vectors.dim``)."""
        positive = ("dim", "epochs", "min_count", "window", "min_n", "max_n", "bucket", "negative", "workers")
        for name in (*positive, "sg", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"{value!r} is not an integer", key=f"{prefix}.{name}", expected="an integer")
            if name in positive and value < 1:
                raise InputError(f"{value} is too small", key=f"{prefix}.{name}", expected="an integer >= 1")
        if self.seed < 0:
            raise InputError(f"{self.seed} is negative", key=f"{prefix}.seed", expected="an integer >= 0")
        if self.sg not in (0, 1):
            raise InputError(f"{self.sg} is not 0 or 1", key=f"{prefix}.sg", expected="1 (skip-gram) or 0 (CBOW)")
        if self.max_n < self.min_n:
            raise InputError(
                f"max_n {self.max_n} is below min_n {self.min_n}", key=f"{prefix}.max_n", expected=f">= {self.min_n}"
            )
        if isinstance(self.sample, bool) or not isinstance(self.sample, int | float) or not 0 <= self.sample < 1:
            raise InputError(f"{self.sample!r} is out of range", key=f"{prefix}.sample", expected="a number in [0, 1)")
        if not isinstance(self.lowercase, bool):
            raise InputError(
                f"{self.lowercase!r} is not a boolean", key=f"{prefix}.lowercase", expected="true or false"
            )


def train_vectors(
    texts: list[str],
    language: str,
    config: VectorTrainingConfig,
    cache: DiskCache | None = None,
    progress: bool = True,
) -> StaticVectors:
    """fastText vectors (with subwords) for `language` trained on `texts`, cached when `cache` is given.

    Raises `InputError` before training when the corpus is empty or no token reaches `min_count`.
    """
    config.validate()
    tokenize = get_tokenizer(language, lowercase=config.lowercase)
    if not texts:
        raise InputError(f"no text to train {language} vectors on", expected="a non-empty corpus")
    fingerprint = texts_fingerprint(texts)

    def train() -> tuple[Any, dict[str, Any]]:
        sentences = [tokens for tokens in (tokenize(t) for t in texts) if tokens]
        _check_corpus(sentences, language, config)
        model = fit_fasttext(sentences, config, progress, desc=f"fastText {language}")
        meta = {
            "source": f"fastText trained on {len(sentences)} {language} sentences",
            "language": language,
            "corpus_fingerprint": fingerprint,
            "n_sentences": len(sentences),
            "n_tokens": sum(map(len, sentences)),
            "tokenizer": tokenize.__name__,
            "config": asdict(config),
            "gensim": _gensim_version(),
        }
        return model.wv, meta

    if cache is None:
        wv, meta = train()
        return _to_static(wv, _counts(wv), meta)

    def build(directory: Path) -> None:
        wv, meta = train()
        wv.save(str(directory / KV_FILE))
        np.save(directory / COUNTS_FILE, _counts(wv))
        (directory / META_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        _write_fast_layout(directory, wv)

    def load(directory: Path) -> StaticVectors:
        return _load_entry(directory, cache)

    key = {
        "kind": "fasttext",
        "language": language,
        "texts": fingerprint,
        "tokenizer": tokenize.__name__,
        "config": asdict(config),
        "gensim": _gensim_version(),
    }
    return cache.get_or_build(CACHE_NAMESPACE, key, build, load)


def train_language_vectors(
    bible: Bible,
    language: str,
    exclude_ids: Iterable[str],
    config: VectorTrainingConfig,
    cache: DiskCache | None = None,
    progress: bool = True,
) -> StaticVectors:
    """Vectors trained on every Bible edition of `language` minus `exclude_ids` and their neighbours.

    The caller passes the verse ids of its evaluation data; they are left out with their +-1 neighbours
    (`with_neighbours`: an edition that merges an evaluated verse into the next or previous one would otherwise
    bring its text in), so that no test verse is seen in training; how many ids and verses that removed is
    recorded in ``meta`` for the run's provenance.
    """
    evaluation = set(exclude_ids)
    exclude = with_neighbours(evaluation)
    texts = bible.monolingual(language, exclude=exclude)
    vectors = train_vectors(texts, language, config, cache=cache, progress=progress)
    vectors.meta.update(
        bible=bible.fingerprint(),
        n_excluded_ids=len(evaluation),
        n_excluded_ids_with_neighbours=len(exclude),
        n_excluded_verses=len(bible.monolingual(language)) - len(texts),
    )
    return vectors


def _check_corpus(sentences: list[list[str]], language: str, config: VectorTrainingConfig) -> None:
    if not sentences:
        raise InputError(f"the {language} corpus has no tokens", expected="text with words in it")
    top = max(Counter(tok for s in sentences for tok in s).values())
    if top < config.min_count:
        raise InputError(
            f"no {language} token occurs {config.min_count} times (the most frequent occurs {top})",
            key="vectors.min_count",
            expected=f"at most {top}, or a larger corpus",
        )


def fit_fasttext(sentences: list[list[str]], config: VectorTrainingConfig, progress: bool, desc: str):
    """Build the vocabulary and train a gensim FastText model, one progress step per epoch."""
    from gensim.models import FastText
    from gensim.models.callbacks import CallbackAny2Vec

    class EpochBar(CallbackAny2Vec):
        def __init__(self, bar: tqdm) -> None:
            self.bar = bar

        def on_epoch_end(self, model) -> None:
            self.bar.update(1)

    model = FastText(
        vector_size=config.dim,
        window=config.window,
        min_count=config.min_count,
        sg=config.sg,
        min_n=config.min_n,
        max_n=config.max_n,
        bucket=config.bucket,
        negative=config.negative,
        sample=config.sample,
        seed=config.seed,
        workers=config.workers,
        epochs=config.epochs,
    )
    model.build_vocab(corpus_iterable=sentences)
    with tqdm(total=config.epochs, desc=desc, unit="epoch", disable=not progress) as bar:
        model.train(
            corpus_iterable=sentences,
            total_examples=model.corpus_count,
            epochs=model.epochs,
            callbacks=[EpochBar(bar)],
        )
    return model


def _counts(wv) -> np.ndarray:
    return np.array([wv.get_vecattr(w, "count") for w in wv.index_to_key], dtype=np.int64)


def _write_fast_layout(directory: Path, wv) -> None:
    (directory / WORDS_FILE).write_text(json.dumps(list(wv.index_to_key), ensure_ascii=False))
    np.save(directory / MATRIX_FILE, np.asarray(wv.vectors, dtype=np.float32))


def _load_entry(directory: Path, cache: DiskCache | None = None) -> StaticVectors:
    meta = json.loads((directory / META_FILE).read_text())
    counts = np.load(directory / COUNTS_FILE)
    if (directory / WORDS_FILE).is_file() and (directory / MATRIX_FILE).is_file():
        words = json.loads((directory / WORDS_FILE).read_text())
        return StaticVectors(
            words,
            np.load(directory / MATRIX_FILE),
            counts=counts,
            subwords=CachedSubwords(directory / KV_FILE),
            source=meta["source"],
            meta=meta,
        )
    from gensim.models.fasttext import FastTextKeyedVectors

    wv = FastTextKeyedVectors.load(str(directory / KV_FILE))  # an entry from before the fast layout
    if cache is not None:
        try:
            cache.add_files(directory, lambda tmp: _write_fast_layout(tmp, wv))
        except OSError as err:  # a read-only cache still works, only slower
            log.warning("could not add the fast layout to %s: %s", directory, err)
    return _to_static(wv, counts, meta)


def _to_static(wv, counts: np.ndarray, meta: dict[str, Any]) -> StaticVectors:
    return StaticVectors(
        list(wv.index_to_key), wv.vectors, counts=counts, subwords=wv, source=meta["source"], meta=meta
    )


def _gensim_version() -> str:
    import gensim

    return gensim.__version__
