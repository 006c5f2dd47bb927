"""English-centric parallel verse pairs for EMS, with every evaluation verse kept out.

Excluded from training (and from the tokenizer's corpus), by verse id, in every language, each with its +-1
neighbours in the same chapter (`mosecrot.text.bible.with_neighbours`: an edition that merges an excluded verse
into its neighbour would otherwise bring its text in):

- every Taxi1500 verse (train, dev and test: ``data.taxi1500_path`` when that folder exists);
- the dev and test verses of the bible-genre selections in ``data.bible_genre`` (computed with and
  without the Taxi1500 exclusion, the two ways experiments build that task);
- ``data.exclude_ids``;
- the retrieval test pairs: ``retrieval_test_size`` verses per language ranked by a seeded hash, and
  their union for every language (the English side of a Swahili test verse is in the English
  candidate pool of every other language too).

`assert_no_leak` re-checks the finished data against the excluded ids; training calls it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mosecrot.cache import stable_hash, texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.ems.config import EMSConfig
from mosecrot.errors import InputError, rebase_key
from mosecrot.tasks import task_evaluation_ids
from mosecrot.tasks.taxi1500 import taxi1500_ids
from mosecrot.text.bible import NEIGHBOUR_RADIUS, Bible, has_text, with_neighbours

log = logging.getLogger(__name__)


class LeakageError(RuntimeError):
    """An excluded (evaluation) verse reached the training data: a bug, never a user error."""


@dataclass
class LanguagePairs:
    """Aligned verse pairs of one language with the pivot: ``src[i]`` (language) ↔ ``tgt[i]`` (pivot)."""

    language: str
    ids: list[str]
    src: list[str]
    tgt: list[str]

    def __post_init__(self) -> None:
        validate_pairs(self.language, self.ids, self.src, self.tgt)

    def __len__(self) -> int:
        return len(self.ids)


def validate_pairs(language: str, ids: list[str], src: list[str], tgt: list[str]) -> None:
    """Refuse misaligned or empty pairs, naming the language and the first bad verse."""
    if not len(ids) == len(src) == len(tgt):
        raise InputError(
            f"misaligned pairs for {language!r}: {len(ids)} ids, {len(src)} source and {len(tgt)} pivot sentences",
            key=f"languages.{language}",
            expected="one source and one pivot sentence per verse id",
        )
    if len(set(ids)) != len(ids):
        raise InputError(f"a verse id appears twice in the {language!r} pairs", key=f"languages.{language}")
    for vid, a, b in zip(ids, src, tgt, strict=True):
        if not has_text(a) or not has_text(b):
            side = "source" if not has_text(a) else "pivot"
            raise InputError(
                f"empty {side} sentence in the {language!r} pair of verse {vid}",
                key=f"languages.{language}",
                expected="text on both sides of every pair",
            )


@dataclass
class EMSData:
    train: dict[str, LanguagePairs]
    heldout: dict[str, LanguagePairs]  # retrieval test pairs
    excluded: dict[str, set[str]]  # source -> verse ids ("taxi1500", "bible_genre", "extra", "retrieval")
    meta: dict = field(default_factory=dict)

    @property
    def excluded_ids(self) -> set[str]:
        return set().union(*self.excluded.values()) if self.excluded else set()

    def tokenizer_sentences(self) -> list[str]:
        """Both sides of the training pairs (the pivot side once per verse)."""
        pivot: dict[str, str] = {}
        out = []
        for pairs in self.train.values():
            out.extend(pairs.src)
            pivot.update(zip(pairs.ids, pairs.tgt, strict=True))
        return out + [pivot[k] for k in sorted(pivot)]

    def fingerprint(self) -> str:
        return stable_hash(
            {
                lang: [texts_fingerprint(p.ids), texts_fingerprint(p.src), texts_fingerprint(p.tgt)]
                for lang, p in sorted(self.train.items())
            }
        )

    def sizes(self) -> dict[str, int]:
        return {lang: len(p) for lang, p in self.train.items()}


def _rank(seed_tag: str, verse_id: str) -> str:
    return hashlib.sha256(f"{seed_tag}:{verse_id}".encode()).hexdigest()


def task_exclusions(cfg: EMSConfig, bible: Bible) -> tuple[dict[str, set[str]], dict]:
    """Verse ids of every task's evaluation data with their neighbours (`with_neighbours`), by source, and a record
    of what was found."""
    out: dict[str, set[str]] = {}
    record: dict = {}
    taxi = cfg.data.taxi1500_path
    taxi_dir = Path(taxi) if taxi and Path(taxi).is_dir() else None
    if taxi_dir is not None:
        out["taxi1500"] = {v for ids in taxi1500_ids(taxi_dir).values() for v in ids}
        record["taxi1500"] = str(taxi_dir)
    else:
        record["taxi1500"] = f"absent ({taxi})" if taxi else "not configured"
        if taxi:
            log.warning("Taxi1500 folder %s is absent: its verses are not excluded from EMS training", taxi)
    genre: set[str] = set()
    for i, spec in enumerate(cfg.data.bible_genre):
        for path in ([taxi_dir] if taxi_dir is not None else []) + [None]:
            try:
                genre |= task_evaluation_ids(
                    "bible_genre",
                    bible=bible,
                    seed=spec.seed,
                    per_class={"train": 0, **spec.per_class},
                    taxi1500_path=path,
                )
            except InputError as err:
                raise rebase_key(err, "per_class", f"data.bible_genre[{i}].per_class") from err
    if genre:
        out["bible_genre"] = genre
    record["bible_genre"] = [to_dict(s) for s in cfg.data.bible_genre]
    if cfg.data.exclude_ids:
        out["extra"] = set(cfg.data.exclude_ids)
    record["neighbour_radius"] = NEIGHBOUR_RADIUS
    return {source: with_neighbours(ids) for source, ids in out.items()}, record


def _language_texts(bible: Bible, cfg: EMSConfig) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    texts, editions = {}, {}
    for i, lang in enumerate(cfg.all_languages):
        key = "pivot" if i == 0 else f"languages[{i - 1}]"
        try:
            edition = bible.resolve(lang)
        except InputError as err:
            raise InputError(
                f"no parallel data for language {lang!r}: {err.message}", key=key, expected=err.expected
            ) from err
        editions[edition.language] = edition.code
        texts[edition.language] = {v: t for v, t in bible.source.verses(edition.code).items() if has_text(t)}
    return texts, editions


def build_ems_data(cfg: EMSConfig, bible: Bible | None = None) -> EMSData:
    """Training and held-out pairs for every language; every problem is an `InputError` raised here,
    before a tokenizer or model is trained."""
    bible = bible or cfg.bible.open()
    texts, editions = _language_texts(bible, cfg)
    pivot, *langs = list(texts)
    excluded, record = task_exclusions(cfg, bible)
    task_ids = set().union(*excluded.values()) if excluded else set()
    tag = f"ems-retrieval:{cfg.data.retrieval_seed}"
    common: dict[str, list[str]] = {}
    heldout: dict[str, LanguagePairs] = {}
    for i, lang in enumerate(langs):
        shared = [v for v in texts[lang] if v in texts[pivot]]
        if not shared:
            raise InputError(
                f"no parallel verses between {lang!r} and the pivot {pivot!r}",
                key=f"languages[{i}]",
                expected="a Bible edition with verses in common with the pivot",
            )
        common[lang] = shared
        candidates = sorted((v for v in shared if v not in task_ids), key=lambda v: _rank(tag, v))
        size = cfg.data.retrieval_test_size
        if len(candidates) <= size:
            raise InputError(
                f"only {len(candidates)} usable parallel verses for {lang!r}, not more than the "
                f"{size} held out for retrieval",
                key="data.retrieval_test_size",
                expected=f"fewer than {len(candidates)}",
            )
        ids = sorted(candidates[:size])
        heldout[lang] = LanguagePairs(lang, ids, [texts[lang][v] for v in ids], [texts[pivot][v] for v in ids])
    excluded["retrieval"] = with_neighbours(set().union(*(set(p.ids) for p in heldout.values())))
    banned = task_ids | excluded["retrieval"]
    train: dict[str, LanguagePairs] = {}
    train_tag = f"ems-train:{cfg.train.seed}"
    for i, lang in enumerate(langs):
        ids = [v for v in common[lang] if v not in banned]
        if cfg.data.max_pairs_per_language is not None and len(ids) > cfg.data.max_pairs_per_language:
            ids = sorted(sorted(ids, key=lambda v: _rank(train_tag, v))[: cfg.data.max_pairs_per_language])
        if not ids:
            raise InputError(
                f"no training pairs left for {lang!r} after excluding evaluation verses", key=f"languages[{i}]"
            )
        train[lang] = LanguagePairs(lang, ids, [texts[lang][v] for v in ids], [texts[pivot][v] for v in ids])
    data = EMSData(
        train,
        heldout,
        excluded,
        {
            "pivot": pivot,
            "editions": editions,
            "exclusions": record,
            "bible": bible.fingerprint(),
            "excluded_counts": {k: len(v) for k, v in excluded.items()},
        },
    )
    assert_no_leak(data)
    return data


def assert_no_leak(data: EMSData) -> None:
    """Raise `LeakageError` if any excluded verse id is among the training pairs of any language."""
    banned = data.excluded_ids
    for lang, pairs in data.train.items():
        leaked = sorted(banned.intersection(pairs.ids))
        if leaked:
            raise LeakageError(f"{len(leaked)} excluded verses in the {lang} training pairs, e.g. {leaked[:5]}")


def sampling_probabilities(sizes: dict[str, int], temperature: float) -> dict[str, float]:
    """Temperature-based language sampling: q_L ∝ n_L^(1/T) (T = 1 proportional, T → ∞ uniform)."""
    langs = list(sizes)
    n = np.array([sizes[lang] for lang in langs], dtype=np.float64)
    q = (n / n.sum()) ** (1.0 / temperature)
    q /= q.sum()
    return dict(zip(langs, q.tolist(), strict=True))


class BatchSampler:
    """One language per batch (so a verse never meets its own English side as a negative), chosen by
    temperature sampling; pairs drawn without replacement. A batch depends only on (seed, rank, step),
    so a resumed run draws exactly the batches the interrupted one would have.

    With ``lengths`` (a length per pair, e.g. characters of both sides) a batch is a window of
    similar-length pairs out of a random pool of ``pool_factor`` x batch_size: far less padding (the
    cost of a batch is set by its longest sentence), and the in-batch negatives stay random verses."""

    def __init__(
        self,
        sizes: dict[str, int],
        temperature: float,
        batch_size: int,
        seed: int,
        rank: int = 0,
        lengths: dict[str, np.ndarray] | None = None,
        pool_factor: int = 8,
    ):
        self.langs = list(sizes)
        self.sizes = sizes
        probs = sampling_probabilities(sizes, temperature)
        self.p = np.array([probs[lang] for lang in self.langs])
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.lengths, self.pool_factor = lengths, pool_factor

    def batch(self, step: int) -> tuple[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.rank, step])
        lang = self.langs[int(rng.choice(len(self.langs), p=self.p))]
        n = self.sizes[lang]
        if self.lengths is None or self.pool_factor <= 1:
            return lang, rng.choice(n, size=min(self.batch_size, n), replace=False)
        pool = rng.choice(n, size=min(self.batch_size * self.pool_factor, n), replace=False)
        pool = pool[np.argsort(self.lengths[lang][pool], kind="stable")]
        size = min(self.batch_size, len(pool))
        start = int(rng.integers(0, len(pool) - size + 1))
        return lang, pool[start : start + size]


def pair_lengths(pairs: LanguagePairs) -> np.ndarray:
    """Characters of both sides: a tokenizer-free proxy for a pair's padded cost."""
    return np.array([len(a) + len(b) for a, b in zip(pairs.src, pairs.tgt, strict=True)], dtype=np.int64)
