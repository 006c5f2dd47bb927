"""What every task hands over: per-language splits with one shared label space, plus coverage.

A task returns, for one language, a `datasets.DatasetDict` whose splits (train/dev/test) have the
columns ``id`` (string), ``text`` (string) and ``label`` (a `datasets.ClassLabel`). The ClassLabel
names are the same list, in the same order, for every language of a task: a classifier trained on
English then predicts label indices that mean the same thing in every target language.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import get_language
from mosecrot.text.bible import Bible

SPLITS = ("train", "dev", "test")
EVALUATION_SPLITS = ("dev", "test")
_DROPPED_IDS_SHOWN = 20


@dataclass
class TaskData:
    """One task in one language.

    ``coverage[split]`` says how much of the task survived in this language:
    ``{"expected", "kept", "dropped", "dropped_ids"}`` (the first 20 dropped ids). Only tasks whose
    target text is looked up elsewhere (a Bible) drop anything. ``meta`` records where the data came
    from (files, hub id, Bible edition, exclusions) so results can say what they were computed on.
    """

    task: str
    language: str
    splits: DatasetDict
    coverage: dict[str, dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return label_names(self.splits)


@dataclass(frozen=True)
class TaskSpec:
    """Everything the rest of the code knows about a task. Each task module defines one (``TASK``) and
    `mosecrot.tasks.TASKS` lists them: a new task is a module plus one line there.

    ``load(language, **options)`` returns the task in one language; Bible-based tasks (``reads_bible``) also
    take ``bible=`` and ``edition=`` and number their examples by verse id. ``options`` is the dataclass of
    the settings an experiment's ``task:`` section may give (flat beside ``name``; a null value means the
    loader's default), ``extra_options`` the loader's other keywords (for code, not configs).
    ``labels(options)`` gives the label names without reading any text, ``evaluation_ids(options, bible)``
    the Bible verse ids of every dev/test example (the same in every language: text that static vectors,
    dictionaries and EMS must never train on; empty for a task whose examples are not Bible verses).
    ``check(options)`` makes the cheap checks before anything is loaded. ``reference`` holds published
    numbers (row name -> language -> score) printed beside ours. The ``options`` mappings these functions
    take are the set (non-null) options."""

    name: str
    load: Callable[..., TaskData]
    labels: Callable[[Mapping[str, Any]], list[str]]
    evaluation_ids: Callable[[Mapping[str, Any], Bible | None], set[str]]
    options: type
    extra_options: tuple[str, ...] = ()
    reads_bible: bool = False
    check: Callable[[Mapping[str, Any]], None] | None = None
    reference: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def option_names(self) -> tuple[str, ...]:
        """The config options (fields of ``options``)."""
        return tuple(f.name for f in dataclasses.fields(self.options) if f.init)

    @property
    def loader_options(self) -> tuple[str, ...]:
        """Every keyword ``load`` takes besides the language."""
        return (*self.option_names, *self.extra_options, *(("bible", "edition") if self.reads_bible else ()))


def split_ids(ids: Mapping[str, Sequence[str]], splits: Iterable[str] = EVALUATION_SPLITS) -> set[str]:
    """The union of the ids of ``splits`` in a ``{split: ids}`` mapping."""
    return {v for split in splits for v in ids.get(split, [])}


def label_names(splits: DatasetDict) -> list[str]:
    first = next(iter(splits.values()))
    return list(first.features["label"].names)


def make_split(ids: Sequence[str], texts: Sequence[str], labels: Sequence[str], class_label: ClassLabel) -> Dataset:
    """A split with the task's columns; ``labels`` are label names, stored as ClassLabel indices."""
    if not len(ids) == len(texts) == len(labels):
        raise ValueError(f"ids/texts/labels differ in length: {len(ids)}/{len(texts)}/{len(labels)}")
    features = Features({"id": Value("string"), "text": Value("string"), "label": class_label})
    return Dataset.from_dict(
        {"id": list(ids), "text": list(texts), "label": [class_label.str2int(x) for x in labels]},
        features=features,
    )


def coverage_entry(expected_ids: Sequence[str], kept_ids: Iterable[str]) -> dict[str, Any]:
    """How many of the expected examples a language kept, and which ids it lost."""
    kept = set(kept_ids)
    dropped = [i for i in expected_ids if i not in kept]
    return {
        "expected": len(expected_ids),
        "kept": len(expected_ids) - len(dropped),
        "dropped": len(dropped),
        "dropped_ids": dropped[:_DROPPED_IDS_SHOWN],
    }


def full_coverage(splits: DatasetDict) -> dict[str, dict[str, Any]]:
    """Coverage of a task whose text comes with its labels (nothing can be missing)."""
    return {name: coverage_entry(ds["id"], ds["id"]) for name, ds in splits.items()}


def check_same_labels(a: list[str], b: list[str], where_a: str, where_b: str) -> None:
    """Refuse two label lists that differ: label indices must mean the same across languages."""
    if a == b:
        return
    only_a = [x for x in a if x not in b]
    only_b = [x for x in b if x not in a]
    if only_a or only_b:
        detail = f"only in {where_a}: {only_a}; only in {where_b}: {only_b}"
    else:
        detail = f"same names in a different order: {a} vs {b}"
    raise InputError(
        f"labels differ from those of {where_b} ({detail})",
        path=where_a,
        expected="the same label names, in the same order, for every language of a task",
    )


def bible_texts(bible: Bible, language: str, edition: str | None) -> tuple[dict[str, str], str]:
    """A language's verse texts and the edition they came from; a named edition must be that language's."""
    if edition is None:
        return bible.texts(language), bible.resolve(language).code
    editions = bible.editions()
    if edition not in editions:
        raise unknown_choice("Bible edition", edition, list(editions), key="edition")
    found = editions[edition]
    want = get_language(language).code
    if found.language != want:
        raise InputError(
            f"edition {edition!r} is {found.language} text, not {want}",
            key="edition",
            expected="an edition of: " + ", ".join(bible.editions_for(want)),
        )
    return bible.texts(edition), edition
