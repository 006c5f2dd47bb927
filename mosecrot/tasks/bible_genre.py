"""Bible genre: which group of books a verse comes from. A task built from the Bible alone, so it
exists in every language a Bible edition exists for, with the same verses everywhere.

Labels (fixed order): law (books 1-5), history (6-17), wisdom (18-22), prophets (23-39), gospels
(40-43), letters (44-66, Acts to Revelation).

Selection, designed to be stable:

- candidates are the verses with text in *every* edition of the Bible source (computed once per
  source and cached in memory), so each language gets the same verse ids and nothing is dropped;
- minus excluded ids: by default the verses of Taxi1500 (read from ``taxi1500_path``), so that this
  task never shares a verse with Taxi1500's evaluation or training data;
- each verse's split is decided by its own seeded hash, ``sha256(f"{seed}:{verse_id}")``: the hash
  modulo 7 puts it in the train (4/7), dev (1/7) or test (2/7) pool, and the hash ranks it in its
  pool. Each split takes the ``per_class`` top-ranked verses of each class from its pool;
- dev and test are chosen first; the train pool then loses the +-1 neighbours (same book and chapter) of
  every dev and test verse, so that no edition that merges a verse into its neighbour puts an evaluated
  verse's text into a training example.

Because a verse's pool and rank depend on nothing but its id and the seed, excluding a verse replaces
only that verse (by the next-ranked verse of the same pool: the other evaluation split does not move, and
train only where the replaced verse's neighbours were), and a larger ``per_class`` only adds verses. (Taking
train, dev and test one after another from a single ranking would shift a verse across split boundaries
whenever an earlier verse is excluded.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import ClassLabel, DatasetDict

from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import get_language
from mosecrot.tasks.base import (
    EVALUATION_SPLITS,
    SPLITS,
    TaskData,
    TaskSpec,
    bible_texts,
    coverage_entry,
    make_split,
    split_ids,
)
from mosecrot.tasks.taxi1500 import taxi1500_ids
from mosecrot.text.bible import NEIGHBOUR_RADIUS, Bible, book_of, open_bible, with_neighbours

GENRES = (
    ("law", 1, 5),
    ("history", 6, 17),
    ("wisdom", 18, 22),
    ("prophets", 23, 39),
    ("gospels", 40, 43),
    ("letters", 44, 66),
)
GENRE_LABELS = [name for name, _, _ in GENRES]
DEFAULT_PER_CLASS = {"train": 200, "dev": 50, "test": 100}
# Pools by hash modulo 7: fixed shares (the default per_class ratio), independent of per_class.
_POOL_OF_RESIDUE = ("train",) * 4 + ("dev",) + ("test",) * 2

_COMMON_IDS: dict[str, frozenset[str]] = {}


def genre_of(verse_id: str) -> str:
    book = book_of(verse_id)
    return next(name for name, first, last in GENRES if first <= book <= last)


def common_verse_ids(bible: Bible) -> frozenset[str]:
    """Verse ids with text in every edition of the source; cached per source content (fingerprint)."""
    key = bible.fingerprint() if hasattr(bible.source, "fingerprint") else f"{bible.source.name}@{id(bible.source)}"
    if key not in _COMMON_IDS:
        common: set[str] | None = None
        for edition in bible.editions():
            ids = bible.source.verses(edition).keys()
            common = set(ids) if common is None else common.intersection(ids)
        _COMMON_IDS[key] = frozenset(common or ())
    return _COMMON_IDS[key]


def bible_genre_ids(
    bible: Bible | None = None,
    seed: int = 13,
    per_class: Mapping[str, int] | None = None,
    exclude_ids: Iterable[str] | None = None,
    taxi1500_path: str | Path | None = None,
) -> dict[str, list[str]]:
    """{split: verse ids}, the same for every language."""
    return _select(bible, seed, per_class, exclude_ids, taxi1500_path)[0]


def load_bible_genre(
    language: str,
    bible: Bible | None = None,
    edition: str | None = None,
    seed: int = 13,
    per_class: Mapping[str, int] | None = None,
    exclude_ids: Iterable[str] | None = None,
    taxi1500_path: str | Path | None = None,
) -> TaskData:
    """Bible genre in one language (text from ``edition``, default the language's first edition)."""
    code = get_language(language).code
    bible = bible or open_bible()
    ids, meta = _select(bible, seed, per_class, exclude_ids, taxi1500_path)
    texts, used = bible_texts(bible, code, edition)
    class_label = ClassLabel(names=GENRE_LABELS)
    data = DatasetDict()
    coverage = {}
    for split, wanted in ids.items():
        kept = [v for v in wanted if v in texts]
        data[split] = make_split(kept, [texts[v] for v in kept], [genre_of(v) for v in kept], class_label)
        coverage[split] = coverage_entry(wanted, kept)
    meta.update(edition=used, text=f"Bible {bible.source.name} edition {used}")
    return TaskData("bible_genre", code, data, coverage, meta)


def _select(
    bible: Bible | None,
    seed: int,
    per_class: Mapping[str, int] | None,
    exclude_ids: Iterable[str] | None,
    taxi1500_path: str | Path | None,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The selection and a record of how it was made; all options are checked before the Bible is read."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed {seed!r} is not an integer", key="seed")
    sizes = _per_class(per_class)
    excluded = set(exclude_ids or ())
    sources = ["exclude_ids"] if exclude_ids is not None else []
    if taxi1500_path is not None:
        if not Path(taxi1500_path).is_dir():
            raise InputError(
                "Taxi1500 directory not found",
                path=taxi1500_path,
                key="taxi1500_path",
                expected="the folder of eng_{train,dev,test}.tsv, or no taxi1500_path",
            )
        excluded.update(v for split_ids in taxi1500_ids(taxi1500_path).values() for v in split_ids)
        sources.append(f"taxi1500:{taxi1500_path}")
    bible = bible or open_bible()

    pools: dict[tuple[str, str], list[tuple[str, str]]] = {}
    candidates = {name: 0 for name in GENRE_LABELS}
    for verse_id in common_verse_ids(bible) - excluded:
        digest = hashlib.sha256(f"{seed}:{verse_id}".encode()).hexdigest()
        genre = genre_of(verse_id)
        candidates[genre] += 1
        pools.setdefault((genre, _POOL_OF_RESIDUE[int(digest, 16) % 7]), []).append((digest, verse_id))

    ids: dict[str, list[str]] = {}
    near_evaluation: set[str] = set()
    # dev and test first: the train pool then loses their +-1 neighbours (`with_neighbours`), which an edition
    # that merges verses may fill with an evaluated verse's text; the evaluation splits never move.
    for split in sorted(sizes, key=lambda s: s == "train"):
        n = sizes[split]
        if split == "train":
            near_evaluation = with_neighbours(v for s in EVALUATION_SPLITS for v in ids.get(s, []))
        chosen: list[str] = []
        for genre in GENRE_LABELS:
            pool = sorted(p for p in pools.get((genre, split), []) if p[1] not in near_evaluation)
            if len(pool) < n:
                raise InputError(
                    f"only {len(pool)} verses of class {genre!r} in the {split} pool "
                    f"({candidates[genre]} candidates of that class in all pools)",
                    key=f"per_class.{split}",
                    expected=f"at most {len(pool)} per class, or a Bible with more verses",
                )
            chosen.extend(verse_id for _, verse_id in pool[:n])
        ids[split] = sorted(chosen)
    ids = {split: ids[split] for split in sizes}
    meta = {
        "seed": seed,
        "per_class": sizes,
        "excluded": {"sources": sources or ["none"], "count": len(excluded)},
        "train_not_beside": {"splits": list(EVALUATION_SPLITS), "neighbour_radius": NEIGHBOUR_RADIUS},
        "candidates": candidates,
        "bible": bible.fingerprint(),
    }
    return ids, meta


def _per_class(per_class: Mapping[str, int] | None) -> dict[str, int]:
    """Defaults overridden by the given splits; each a non-negative integer."""
    sizes = dict(DEFAULT_PER_CLASS)
    for split, n in (per_class or {}).items():
        if split not in SPLITS:
            raise unknown_choice("split", split, list(SPLITS), key="per_class")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InputError(f"{n!r} is not a count", key=f"per_class.{split}", expected="an integer >= 0")
        sizes[split] = n
    return sizes


def _evaluation_ids(options: Mapping[str, Any], bible: Bible | None = None) -> set[str]:
    wanted = ("seed", "per_class", "exclude_ids", "taxi1500_path")
    return split_ids(bible_genre_ids(bible, **{k: v for k, v in options.items() if k in wanted}))


@dataclass
class BibleGenreOptions:
    seed: int | None = None  # the split seed; null: 13
    per_class: dict[str, int] | None = None  # examples per class and split; null: train 200, dev 50, test 100
    taxi1500_path: str | None = None  # Taxi1500 verses (this folder's files) kept out of every split


TASK = TaskSpec(
    name="bible_genre",
    load=load_bible_genre,
    labels=lambda options: list(GENRE_LABELS),
    evaluation_ids=_evaluation_ids,
    options=BibleGenreOptions,
    extra_options=("exclude_ids",),
    reads_bible=True,
)
