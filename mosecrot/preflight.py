"""Cheap checks of a loaded experiment before any data is prepared, each error naming its full key path."""

from __future__ import annotations

from typing import Any

from mosecrot.errors import InputError


def check_methods_against_anchors(cfg: Any) -> None:
    """A method's top-k sparsification keeps at most as many anchors as the experiment asks for: ``k`` above
    ``anchors.count`` fails here, named ``methods[i].stitch.relative.k``, not after prepare built the anchors."""
    count = cfg.anchors.count
    if isinstance(count, bool) or not isinstance(count, int):
        return
    for i, method in enumerate(cfg.methods or []):
        stitch = getattr(method.options, "stitch", None)
        relative = getattr(stitch, "relative", None)
        if relative is None or not hasattr(relative, "validate"):
            continue
        try:
            relative.validate(count, prefix=f"methods[{i}].stitch.relative")
        except InputError as err:
            more = f" (anchors.count is {count})" if err.key and err.key.endswith(".k") else ""
            raise InputError(err.message + more, path=err.path, key=err.key, expected=err.expected) from None


def check_splits(tasks: dict[str, Any], task: str, source_language: str) -> None:
    """Every split a run reads has examples: an empty one (``task.per_class`` 0, a filter or a file that keeps
    nothing) is refused before vectors are built or a model is trained, naming the task, split and language."""
    for lang, data in tasks.items():
        for split, rows in data.splits.items():
            if len(rows) == 0 and (lang == source_language or split != "train"):
                role = "the source language" if lang == source_language else "a target language"
                raise InputError(
                    f"task {task}: the {split} split of {lang} ({role}) is empty",
                    key="task",
                    expected="at least one example per split: check task.per_class and the task's data files",
                )
