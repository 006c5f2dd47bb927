"""Classification tasks: English labelled data to train on, target languages to evaluate on.

Every task gives, per language, a `TaskData` whose splits share one `datasets.ClassLabel`, and describes
itself once as a `TaskSpec` (how it loads, its options, labels, evaluation ids, whether it reads a Bible,
published numbers). The registry:

- ``sib200``: SIB-200 topics (7 classes), parallel FLORES-200 sentences;
- ``taxi1500``: Taxi1500 topics (6 classes) of Bible verses, target text from a Bible;
- ``bible_genre``: book group of a verse (6 classes), built from the Bible alone.

A new task is a module defining ``TASK = TaskSpec(...)`` plus one line in `TASKS`.
"""

from __future__ import annotations

from typing import Any

from mosecrot.errors import unknown_choice
from mosecrot.tasks import bible_genre, sib200, taxi1500
from mosecrot.tasks.base import TaskData, TaskSpec
from mosecrot.text.bible import Bible

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (sib200.TASK, taxi1500.TASK, bible_genre.TASK)}

__all__ = ["TASKS", "TaskData", "TaskSpec", "get_task", "load_task", "task_evaluation_ids", "task_labels"]


def get_task(name: str, key: str = "task.name") -> TaskSpec:
    """The task named ``name`` (``bible-genre`` and ``bible_genre`` alike)."""
    canonical = name.replace("-", "_")
    if canonical not in TASKS:
        raise unknown_choice("task", name, list(TASKS), key=key)
    return TASKS[canonical]


def _checked(name: str, options: dict[str, Any]) -> TaskSpec:
    spec = get_task(name, key="task")
    for key in options:
        if key not in spec.loader_options:
            raise unknown_choice(f"option of task {spec.name}", key, spec.loader_options, key=key)
    return spec


def load_task(name: str, language: str, **options: Any) -> TaskData:
    """One task in one language; options are the loader's keyword arguments."""
    return _checked(name, options).load(language, **options)


def task_labels(name: str, **options: Any) -> list[str]:
    """The task's label names in ClassLabel order, without loading any split text."""
    return _checked(name, options).labels(options)


def task_evaluation_ids(name: str, bible: Bible | None = None, **options: Any) -> set[str]:
    """Verse ids of every evaluation (dev/test) split, the same in every language (`TaskSpec.evaluation_ids`)."""
    return _checked(name, options).evaluation_ids(options, bible)
