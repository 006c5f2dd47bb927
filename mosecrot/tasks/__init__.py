"""Classification tasks: English labelled data to train on, target languages to evaluate on.

Every task gives, per language, a `TaskData` whose splits share one `datasets.ClassLabel`:

- ``sib200``: SIB-200 topics (7 classes), parallel FLORES-200 sentences (`load_sib200`);
- ``taxi1500``: Taxi1500 topics (6 classes) of Bible verses, target text from a Bible (`load_taxi1500`);
- ``bible_genre``: book group of a verse (6 classes), built from the Bible alone (`load_bible_genre`).

`load_task`, `task_labels` and `task_evaluation_ids` take the same options (a config's task section),
so a caller can pass one mapping to all three; options a helper does not need are ignored by it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mosecrot.errors import InputError, unknown_choice
from mosecrot.tasks.base import EVALUATION_SPLITS, TaskData, check_same_labels, evaluation_ids, make_split
from mosecrot.tasks.bible_genre import GENRE_LABELS, bible_genre_ids, load_bible_genre
from mosecrot.tasks.sib200 import load_sib200, sib200_labels
from mosecrot.tasks.taxi1500 import TAXI1500_LABELS, load_taxi1500, taxi1500_ids

TASKS: dict[str, Callable[..., TaskData]] = {
    "sib200": load_sib200,
    "taxi1500": load_taxi1500,
    "bible_genre": load_bible_genre,
}

__all__ = [
    "TASKS", "TaskData", "bible_genre_ids", "check_same_labels", "evaluation_ids", "load_task",
    "make_split", "task_evaluation_ids", "task_labels",
]


def canonical_task_name(name: str) -> str:
    """Task names are written with '-' or '_' alike (``bible-genre`` is ``bible_genre``)."""
    return name.replace("-", "_")


def _loader(name: str, options: dict[str, Any]) -> Callable[..., TaskData]:
    """The task's loader, after checking that every option is one it takes."""
    name = canonical_task_name(name)
    if name not in TASKS:
        raise unknown_choice("task", name, list(TASKS), key="task")
    loader = TASKS[name]
    valid = [p for p in inspect.signature(loader).parameters if p != "language"]
    for key in options:
        if key not in valid:
            raise unknown_choice(f"option of task {name}", key, valid, key=key)
    return loader


def load_task(name: str, language: str, **options: Any) -> TaskData:
    """One task in one language; options are the loader's keyword arguments."""
    return _loader(name, options)(language, **options)


def task_labels(name: str, **options: Any) -> list[str]:
    """The task's label names in ClassLabel order, without loading any split text."""
    _loader(name, options)
    name = canonical_task_name(name)
    if name == "sib200":
        return sib200_labels(options.get("path"))
    return list(TAXI1500_LABELS if name == "taxi1500" else GENRE_LABELS)


def task_evaluation_ids(name: str, **options: Any) -> set[str]:
    """Verse ids of every evaluation (dev/test) split, the same in every language: text that must be
    kept out of whatever is trained on Bible text (static vectors, dictionaries, EMS).

    SIB-200 gives the empty set: its index_ids number FLORES-200 sentences, not Bible verses, so no
    Bible text can coincide with its evaluation data.
    """
    _loader(name, options)
    name = canonical_task_name(name)
    if name == "sib200":
        return set()
    if name == "taxi1500":
        if options.get("path") is None:
            raise InputError("taxi1500 needs the path of its files", key="path")
        ids = taxi1500_ids(options["path"])
    else:
        wanted = inspect.signature(bible_genre_ids).parameters
        ids = bible_genre_ids(**{k: v for k, v in options.items() if k in wanted})
    return {v for split in EVALUATION_SPLITS for v in ids.get(split, [])}
