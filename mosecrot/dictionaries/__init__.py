"""Bilingual dictionaries (English -> target) that supply the anchors for embedding stitching.

Three kinds behind one loader, `load_dictionary`: ``muse`` (ground-truth files), ``freedict``
(Debian's dictd packages) and ``induced`` (eflomal alignment of the verse-aligned Bible).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mosecrot.cache import DiskCache
from mosecrot.dictionaries.base import BilingualDictionary
from mosecrot.dictionaries.freedict import freedict_path, read_freedict
from mosecrot.dictionaries.induce import (
    grow_diag_final_and,
    induce_dictionary,
    induce_from_bible,
    intersect,
    parallel_pairs,
)
from mosecrot.dictionaries.muse import muse_path, read_muse
from mosecrot.errors import InputError, unknown_choice
from mosecrot.paths import data_dir as default_data_dir
from mosecrot.text.bible import Bible

DICTIONARY_KINDS = ("muse", "freedict", "induced")

__all__ = [
    "DICTIONARY_KINDS",
    "BilingualDictionary",
    "freedict_path",
    "grow_diag_final_and",
    "induce_dictionary",
    "induce_from_bible",
    "intersect",
    "load_dictionary",
    "muse_path",
    "parallel_pairs",
    "read_freedict",
    "read_muse",
]


def load_dictionary(
    kind: str,
    target_lang: str,
    *,
    data_dir: str | Path | None = None,
    bible: Bible | None = None,
    exclude_ids: Iterable[str] = (),
    cache: DiskCache | None = None,
    path: str | Path | None = None,
    **options,
) -> BilingualDictionary:
    """One English->target dictionary of a kind; ``options`` go to that kind's reader.

    ``path`` overrides the default location (MUSE file, FreeDict prefix); ``induced`` needs ``bible``
    and takes ``exclude_ids`` (evaluation verses, never aligned) and ``cache``.
    """
    if kind == "muse":
        path = path or muse_path(data_dir or default_data_dir(), target_lang)
        return read_muse(path, target_lang, **options)
    if kind == "freedict":
        return read_freedict(path or freedict_path(target_lang), target_lang, **options)
    if kind == "induced":
        if bible is None:
            raise InputError("an induced dictionary needs a Bible to align", key="bible")
        return induce_from_bible(bible, target_lang, exclude_ids, cache=cache, **options)
    raise unknown_choice("dictionary kind", kind, DICTIONARY_KINDS, key="kind")
